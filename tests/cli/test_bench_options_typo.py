"""A misspelt ``programmer.options`` key is refused before anything runs: by ``bench check``
(which promises the answer before a run) and by a command before it stores a run, in one
line naming the file and the bench-file field, never the settings class behind it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from memprog.bench.assembly import STACK_OPTIONS
from memprog.cli import app
from memprog.core.bench_config import BenchConfig
from memprog.core.strict_yaml import dump_yaml

BENCHES = Path(__file__).resolve().parents[2] / "benches"


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


def _with_typo(tmp_path: Path, bench: str) -> Path:
    data = yaml.safe_load((BENCHES / f"{bench}.yaml").read_text())
    data["programmer"].setdefault("options", {})["retrys"] = 3
    out = tmp_path / f"{bench}_typo.yaml"
    out.write_text(dump_yaml(data, sort_keys=False))
    return out


@pytest.mark.parametrize("bench", ["sim_onchip", "sim_k4200_707b", "sim_b1500_wgfmu"])
def test_bench_check_refuses_a_misspelt_programmer_option(tmp_path, bench):
    bad = _with_typo(tmp_path, bench)
    r = _runner().invoke(app, ["bench", "check", str(bad)])
    assert r.exit_code == 2
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"{bad.name}: programmer.options.retrys" in err and "unknown key" in err
    assert "Options" not in err  # the field the user wrote, not the class behind it
    # the shipped bench itself is valid
    assert _runner().invoke(app, ["bench", "check", str(BENCHES / f"{bench}.yaml")]).exit_code == 0


def test_a_command_refuses_it_before_storing_a_run(tmp_path, monkeypatch):
    db = tmp_path / "runs.sqlite"
    monkeypatch.setenv("MEMPROG_DB", f"sqlite:///{db}")
    bad = _with_typo(tmp_path, "sim_onchip")
    r = _runner().invoke(app, ["tune", "--bench", str(bad), "--rows", "0:2", "--cols", "0:2", "--target-us", "200"])
    assert r.exit_code == 2
    assert "programmer.options.retrys" in r.stderr and "Traceback" not in r.stderr
    assert not db.exists()  # refused before the store was opened: no failed run kept for a typo


def test_every_stack_has_its_options_model() -> None:
    stacks = BenchConfig.model_fields["programmer"].annotation.model_fields["stack"].annotation.__args__
    assert set(STACK_OPTIONS) == set(stacks)
