"""The CLI traps of issue 14 and connection failures as one line (backend: @memprog, and
pyvisa-py ``@py`` against a closed loopback port for the refused connection)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from memprog.cli import app
from memprog.cli.common import set_debug
from memprog.core.bench_config import BenchConfig
from memprog.core.errors import ConfigError
from memprog.core.strict_yaml import dump_yaml

BENCHES = Path(__file__).resolve().parents[2] / "benches"


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


@pytest.fixture(autouse=True)
def _no_debug():
    set_debug(False)
    yield
    set_debug(False)


def _lab_copy(tmp_path: Path, resource: str) -> Path:
    data = yaml.safe_load((BENCHES / "sim_onchip.yaml").read_text())
    inst = data["instruments"]["controller"]
    inst["resource"], inst["visa_library"] = resource, "@py"
    inst["timeout_ms"] = 1000
    inst["options"] = {}
    p = tmp_path / "lab.yaml"
    p.write_text(dump_yaml(data))
    return p


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_positive_reset_v_is_refused():
    r = _runner().invoke(app, ["sim", "demo", "--reset-v", "1.2", "--json"])
    assert r.exit_code == 2 and r.stdout == ""
    assert "--reset-v=1.2" in r.stderr and "RESET pulses are negative" in r.stderr


def test_too_many_levels_says_how_many_fit():
    r = _runner().invoke(app, ["levels", "--bench", "sim_onchip", "--levels", "100000", "--json"])
    assert r.exit_code == 2
    assert "--levels=100000" in r.stderr and "<= 2376" in r.stderr


def test_misspelled_limit_key_is_named():
    data = yaml.safe_load((BENCHES / "sim_onchip.yaml").read_text())
    data["chip"]["limits"]["set_vmax"] = data["chip"]["limits"].pop("set_v_max")
    with pytest.raises(ConfigError) as info:
        BenchConfig(**data)
    text = str(info.value)
    assert "chip.limits.set_vmax" in text and "did you mean 'set_v_max'" in text
    assert "Field required" not in text


def test_map_csv_with_a_header_row(tmp_path):
    good = tmp_path / "m.csv"
    good.write_text("c0,c1\n200,300\n")
    r = _runner().invoke(app, ["tune", "--bench", "sim_onchip", "--map", str(good), "--json"])
    assert r.exit_code == 0, r.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("c0,c1\n200,abc\n")
    r = _runner().invoke(app, ["tune", "--bench", "sim_onchip", "--map", str(bad), "--json"])
    assert r.exit_code == 2 and "map=" in r.stderr and "header row" in r.stderr
    assert "Traceback" not in r.stderr


def _error_lines(stderr: str) -> list[str]:
    """stderr without the run store's "run ... started" line (the run is opened first)."""
    return [ln for ln in stderr.strip().splitlines() if not ln.startswith("memprog: run ")]


def test_refused_connection_is_one_line_naming_instrument_resource_cause(tmp_path):
    resource = f"TCPIP0::127.0.0.1::{_free_port()}::SOCKET"
    bench = _lab_copy(tmp_path, resource)
    args = ["tune", "--bench", str(bench), "--rows", "0", "--cols", "0", "--target-us", "200"]
    r = _runner().invoke(app, args)
    assert r.exit_code == 3, r.stderr  # instrument error
    lines = _error_lines(r.stderr)
    assert len(lines) == 1, r.stderr
    assert "controller" in lines[0] and resource in lines[0] and "refused" in lines[0].lower()
    d = _runner().invoke(app, ["--debug", *args])
    assert "Traceback" in d.stderr and resource in d.stderr.splitlines()[-1]


@pytest.mark.parametrize(
    "resource, cause",
    [("TCPIP0::not a resource", ""), ("GPIB0::5::INSTR", "gpib")],
    ids=["bad-resource-string", "gpib-without-driver"],
)
def test_unreachable_resources_are_one_line(tmp_path, resource, cause):
    bench = _lab_copy(tmp_path, resource)
    r = _runner().invoke(
        app, ["tune", "--bench", str(bench), "--rows", "0", "--cols", "0", "--target-us", "200"]
    )
    assert r.exit_code != 0
    lines = _error_lines(r.stderr)
    assert len(lines) == 1 and resource in lines[0] and "controller" in lines[0], r.stderr
    assert cause in lines[0].lower()
