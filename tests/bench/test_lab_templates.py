"""Lab templates cannot run unedited; ``memprog bench check`` (issue 20, deliverable 9).

Before: ``lab_onchip.yaml`` and ``lab_k4200_707b.yaml`` named real-looking private
addresses (in the private 192-168 range): run unedited they connected to whatever answered
there. Now each template's addresses are ``<...>`` placeholders that validation refuses
offline, naming the file and the field to edit; ``memprog bench check FILE`` says what a
bench file drives without connecting, and ``--connect`` what answered, or which resource
did not.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from pathlib import Path

import pytest
import pyvisa
from typer.testing import CliRunner

import memprog
from memprog.bench.assembly import ConnectionFailed
from memprog.cli import app
from memprog.core.bench_config import load_bench_config
from memprog.core.errors import ConfigError
from tests.lab_template_helpers import BENCHES, edited_text

#: template -> the field a user must edit first
LAB = {
    "lab_onchip": "instruments.controller.resource",
    "lab_k4200_707b": "instruments.k4200.resource",
    "lab_b1500_wgfmu": "instruments.b1500.resource",
}
SIM = ["sim_onchip", "sim_onchip_tio2x", "sim_k4200_707b", "sim_b1500_wgfmu"]
#: what each simulated bench's instruments answer to *IDN? (the WGFMU: its channels)
ANSWERS = {
    "sim_onchip": {"controller": "ONCHIP-256X256"},
    "sim_k4200_707b": {"k4200": "4200A-SCS", "k707b": "707B"},
    "sim_b1500_wgfmu": {"b1500": "B1500A", "wgfmu": "channels [101, 102]"},
}
PRIVATE = re.compile(r"\b(10\.\d+\.\d+\.\d+|172\.(1[6-9]|2\d|3[01])\.\d+\.\d+|192\.168\.\d+\.\d+)\b")


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


@pytest.mark.parametrize("name", sorted(LAB))
def test_unedited_template_is_refused_offline_naming_file_and_field(name, monkeypatch):
    def no_connecting(*a, **k):
        raise AssertionError("an unedited template must not reach any VISA library")

    monkeypatch.setattr(pyvisa, "ResourceManager", no_connecting)
    for attempt in (load_bench_config, memprog.open_bench):
        with pytest.raises(ConfigError) as err:
            attempt(name)
        text = str(err.value)
        assert f"{name}.yaml" in text and LAB[name] in text, text
        assert "placeholder" in text and "\n" not in text


def test_no_shipped_bench_names_a_private_address():
    for path in BENCHES.glob("*.yaml"):
        assert not PRIVATE.search(path.read_text()), path.name


@pytest.mark.parametrize("name", SIM)
def test_bench_check_accepts_every_sim_bench_without_connecting(name, monkeypatch):
    monkeypatch.setattr(pyvisa, "ResourceManager", lambda *a, **k: pytest.fail("connected"))
    r = _runner().invoke(app, ["bench", "check", name, "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    cfg, _ = load_bench_config(name)
    assert doc["valid"] and doc["stack"] == cfg.programmer.stack and doc["simulated"]
    assert doc["chip"]["technology"] == cfg.chip.technology
    assert {n: i["resource"] for n, i in doc["instruments"].items()} == {
        n: i.resource for n, i in cfg.instruments.items()
    }
    human = _runner().invoke(app, ["bench", "check", name])
    assert human.exit_code == 0 and "valid" in human.stdout
    assert all(i.resource in human.stdout for i in cfg.instruments.values())


@pytest.mark.parametrize("name", sorted(LAB))
def test_bench_check_refuses_each_unedited_template(name):
    r = _runner().invoke(app, ["bench", "check", str(BENCHES / f"{name}.yaml"), "--json"])
    assert r.exit_code == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{name}.yaml" in lines[0] and LAB[name] in lines[0]


def test_bench_check_refuses_a_resource_name_visa_cannot_parse(tmp_path):
    text = (BENCHES / "sim_onchip.yaml").read_text().replace("TCPIP0::127.0.0.1::5025::SOCKET", "not a resource")
    (tmp_path / "typo.yaml").write_text(text)
    r = _runner().invoke(app, ["bench", "check", str(tmp_path / "typo.yaml")])
    assert r.exit_code == 2 and "instruments.controller.resource" in r.stderr and "typo.yaml" in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_bench_check_connect_says_what_answered(name):
    r = _runner().invoke(app, ["bench", "check", name, "--connect", "--json"])
    assert r.exit_code == 0, r.output
    connect = json.loads(r.stdout)["connect"]
    assert set(connect) == set(ANSWERS[name])
    for inst, expected in ANSWERS[name].items():
        assert connect[inst]["ok"] and expected in connect[inst]["answer"], connect[inst]
    human = _runner().invoke(app, ["bench", "check", name, "--connect"])
    assert human.exit_code == 0
    assert all(f"{inst}: answered" in human.stdout for inst in ANSWERS[name])


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: a connection is refused
    return port


def _lab_onchip_at(tmp_path: Path, port: int, timeout_ms: int = 2000) -> Path:
    text = edited_text("lab_onchip").replace("127.0.0.1::5025", f"127.0.0.1::{port}")
    text = text.replace("timeout_ms: 10000", f"timeout_ms: {timeout_ms}")
    path = tmp_path / "my_lab.yaml"
    path.write_text(text)
    return path


def test_bench_check_connect_names_the_resource_when_refused(tmp_path):
    pytest.importorskip("pyvisa_py")
    path = _lab_onchip_at(tmp_path, _closed_port())
    resource = load_bench_config(path)[0].instruments["controller"].resource
    r = _runner().invoke(app, ["bench", "check", str(path), "--connect", "--json"])
    assert r.exit_code == 3, r.output
    result = json.loads(r.stdout)["connect"]["controller"]
    assert not result["ok"] and resource in result["error"]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and resource in lines[0] and "refused" in lines[0].lower()


@pytest.mark.slow
def test_bench_check_connect_names_the_resource_on_a_timeout(tmp_path):
    pytest.importorskip("pyvisa_py")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    held: list[socket.socket] = []
    t = threading.Thread(target=lambda: held.append(silent.accept()[0]), daemon=True)
    t.start()
    port = silent.getsockname()[1]
    try:
        path = _lab_onchip_at(tmp_path, port, timeout_ms=300)
        r = _runner().invoke(app, ["bench", "check", str(path), "--connect"])
    finally:
        for c in held:
            c.close()
        silent.close()
    assert r.exit_code == 3, r.output
    assert f"TCPIP0::127.0.0.1::{port}::SOCKET" in r.stderr and "timeout" in r.stderr


def test_bench_check_connect_names_a_missing_wgfmu_library(tmp_path):
    text = edited_text("lab_b1500_wgfmu").replace("C:/Windows/System32/wgfmu.dll", str(tmp_path / "no" / "wgfmu.dll"))
    path = tmp_path / "my_b1500.yaml"
    path.write_text(text)
    r = _runner().invoke(app, ["bench", "check", str(path), "--connect", "--json"])
    assert r.exit_code == 3, r.output
    connect = json.loads(r.stdout)["connect"]
    assert not connect["wgfmu"]["ok"] and str(tmp_path / "no" / "wgfmu.dll") in connect["wgfmu"]["error"]
    # the mainframe (no GPIB or no lab VISA library here) is named by its resource too
    assert not connect["b1500"]["ok"] and "GPIB0::17::INSTR" in connect["b1500"]["error"]
    assert all(name in r.stderr for name in ("wgfmu.dll", "GPIB0::17::INSTR"))


def test_open_bench_names_the_resource_it_cannot_reach(tmp_path):
    """The same connection errors from ``open_bench``: a refused socket, a served WGFMU
    library that nothing serves."""
    pytest.importorskip("pyvisa_py")
    path = _lab_onchip_at(tmp_path, _closed_port())
    resource = load_bench_config(path)[0].instruments["controller"].resource
    with pytest.raises(ConnectionFailed) as err:
        memprog.open_bench(path)
    assert resource in str(err.value) and "refused" in str(err.value).lower()
    library = f"tcp://127.0.0.1:{_closed_port()}"
    text = (BENCHES / "sim_b1500_wgfmu.yaml").read_text().replace('library: "@memprog"', f'library: "{library}"')
    (tmp_path / "b.yaml").write_text(text)
    with pytest.raises(ConnectionFailed) as err:
        memprog.open_bench(tmp_path / "b.yaml")
    assert library in str(err.value)
