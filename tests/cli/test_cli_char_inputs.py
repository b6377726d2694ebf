"""Inputs of ``memprog characterize``, ``sim calibrate`` and ``sim serve`` (review F3).

* ``sim serve --write-bench FILE`` refuses a FILE that is already there (exit 2, one line
  naming it) unless ``--force``, as every other output of a command;
* ``characterize --devices 65`` on an 8x8 bench (or ``--disturb-cells 1000``) is refused
  from the bench file, before a run is stored (before: a ``failed`` run for a typo);
* ``--disturb-cells 0`` / ``--response-repeats 0`` are listed under ``skipped`` with the
  option that turned them off (before: silently missing);
* ``sim calibrate`` ends with a ``memprog tune`` that runs as printed;
* characterize's text says what its range is (the imprecision levels, not the chip's
  range), prints RTN before ahead of after, and no ``nan`` for a one-sample disturb row.

Backend: the simulated benches (``@memprog``) and, for ``sim serve --force``, the served
simulator over loopback sockets.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest
import typer
import yaml
from typer.testing import CliRunner

from memprog.cli import app
from memprog.cli.db import format_variability
from memprog.cli.sim_calibrate import tune_command
from memprog.core.bench_config import load_bench_config

SMALL = ["--levels", "2", "--repeats", "1", "--reads", "2", "--response-repeats", "1"]


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


def _one_line(res) -> str:
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.output
    return lines[0]


# --- 1. sim serve --write-bench: an existing file only with --force -------------------


def test_sim_serve_refuses_an_existing_write_bench_before_serving(tmp_path, monkeypatch):
    def no_server(*args, **kwargs):  # reached: the refusal came too late (or never)
        raise AssertionError("a server was started")

    monkeypatch.setattr("memprog.cli.sim_serve.SimServer", no_server)
    out = tmp_path / "served.yaml"
    out.write_text("# the first server's bench file\n")
    res = _runner().invoke(app, ["sim", "serve", "sim_onchip", "--write-bench", str(out)])
    assert res.exit_code == 2, res.output
    line = _one_line(res)
    assert line.startswith("error: --write-bench=") and str(out) in line and "--force" in line
    assert res.stdout == ""  # nothing served: no resource line
    assert out.read_text() == "# the first server's bench file\n"


@pytest.mark.slow
def test_sim_serve_force_replaces_the_bench_file(tmp_path):
    out = tmp_path / "served.yaml"
    out.write_text("# the first server's bench file\n")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from memprog.cli import main; main()", "sim", "serve", "sim_onchip",
         "--port", "0", "--json", "--write-bench", str(out), "--force"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line, proc.communicate(timeout=10)[1]
        assert json.loads(line)["bench_file"] == str(out)
        served = yaml.safe_load(out.read_text())
        assert all(i["visa_library"] == "@py" for i in served["instruments"].values())
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


# --- 2. sizes the bench cannot hold: refused before the run exists ---------------------


SIZE_CASES = [
    pytest.param(["--bench", "sim_k4200_707b", "--devices", "65"], "--devices=65", "<= 64", id="8x8 --devices 65"),
    pytest.param(["--bench", "sim_k4200_707b", "--disturb-cells", "1000"], "--disturb-cells=1000", "<= 64", id="8x8 --disturb-cells 1000"),
    pytest.param(["--bench", "sim_b1500_wgfmu", "--devices", "2"], "--devices=2", "<= 1", id="one probed device --devices 2"),
    pytest.param(["--bench", "sim_k4200_707b", "--chips", "2", "--devices", "65"], "--devices=65", "<= 64",
                 marks=pytest.mark.slow, id="fleet --chips 2 --devices 65"),  # the fleet room loads: > 0.3 s
]


@pytest.mark.parametrize(("args", "what", "allowed"), SIZE_CASES)
def test_characterize_sizes_beyond_the_bench_are_refused_before_a_run(args, what, allowed, tmp_path):
    db = tmp_path / "store" / "memprog.sqlite"
    res = _runner().invoke(app, ["characterize", *args, "--db", f"sqlite:///{db}"])
    assert res.exit_code == 2, res.output
    line = _one_line(res)
    assert line.startswith(f"error: {what} ") and allowed in line, line
    assert "marked failed" not in line
    assert not db.parent.exists()  # no store opened: no run created, no bench opened


# --- 3. procedures an option of 0 turns off are listed under "skipped" -----------------


def test_characterize_help_documents_zero_as_none():
    cmd = typer.main.get_command(app).commands["characterize"]
    helps = {p.opts[0]: p.help for p in cmd.params if p.opts}
    assert "0: none" in helps["--disturb-cells"] and "0: none" in helps["--response-repeats"]


@pytest.mark.slow
def test_characterize_zero_options_are_listed_as_skipped(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.sqlite'}"
    args = ["characterize", "--bench", "sim_onchip", "--devices", "2", *SMALL[:-2],
            "--disturb-cells", "0", "--response-repeats", "0", "--db", db]  # fmt: skip
    res = _runner().invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["skipped"] == {"disturb": "turned off by --disturb-cells 0", "response": "turned off by --response-repeats 0"}
    assert "disturb" not in doc["counts"] and "response" not in doc["counts"]
    # 5. the range keeps its key and gains one saying what it is
    assert doc["imprecision_levels_us"] == doc["g_range_us"] and len(doc["g_range_us"]) == 2
    text = _runner().invoke(app, args).stdout
    assert "skipped: disturb (turned off by --disturb-cells 0)" in text
    assert "skipped: response (turned off by --response-repeats 0)" in text


# --- 4. sim calibrate's hint is a tune that runs -----------------------------------------


@pytest.mark.slow
def test_calibrate_suggests_a_tune_that_runs_as_printed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = f"sqlite:///{tmp_path / 'c.sqlite'}"
    r = _runner()
    res = r.invoke(app, ["characterize", "--bench", "sim_onchip", "--devices", "2", *SMALL, "--disturb-cells", "2", "--db", db, "--json"])
    assert res.exit_code == 0, res.output
    chip = json.loads(res.stdout)["chip_id"]
    res = r.invoke(app, ["sim", "calibrate", "--chip", chip, "--write-bench", "twin.yaml", "--db", db])
    assert res.exit_code == 0, res.output
    last = res.stdout.strip().splitlines()[-1]
    cmd = last.split("try: ", 1)[1]
    assert cmd.startswith("memprog tune --bench twin.yaml --rows 0:4 --cols 0:4 --target-us "), last
    res = r.invoke(app, [*shlex.split(cmd)[1:], "--db", db])  # before: refused (no --rows ...)
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(("bench", "cells"), [("sim_k4200_707b", "--rows 0:4 --cols 0:4"), ("sim_b1500_wgfmu", "--rows 0 --cols 0")])
def test_tune_command_names_cells_the_stack_reaches_and_a_target_in_range(bench, cells):
    cfg, path = load_bench_config(bench)
    cmd = tune_command(path)
    assert f" {cells} --target-us " in cmd, cmd
    target = float(cmd.rsplit(" ", 1)[1])
    p = cfg.chip.device_params()
    assert max(p.g_min_us, cfg.chip.limits.conductance_min_us) < target < min(p.g_max_us, cfg.chip.limits.conductance_max_us)


# --- 5, 6. characterize's text --------------------------------------------------------


def test_characterize_text_names_the_levels_range_orders_rtn_and_prints_no_nan():
    doc = {
        "g_range_us": [723.4, 3131.0],
        "disturb": [{"later_writes": 1, "mean_us": -2.0, "std_us": 3.5, "n": 3},
                    {"later_writes": 3, "mean_us": -6.8, "std_us": None, "n": 1}],
        "rtn": [{"phase": "after", "mean_us": 0.6, "p90_us": 0.7, "n": 2},
                {"phase": "before", "mean_us": 1.7, "p90_us": 2.6, "n": 2}],
    }  # fmt: skip
    text = format_variability(doc)
    lines = text.splitlines()
    assert lines[0].startswith("imprecision levels 723.4-3131.0 µS (working range"), lines[0]
    assert "nan" not in text
    row = next(ln for ln in lines if ln.split()[:1] == ["3"])
    assert row.split() == ["3", "-6.80", "-", "1"], row  # before: "nan"
    assert text.index("RTN before") < text.index("RTN after")


@pytest.mark.slow
def test_one_disturb_cell_asked_for_is_named_as_asked(tmp_path, monkeypatch):
    """--disturb-cells 1 on a full array: the stack reaches plenty, one was asked for."""
    from memprog import open_bench
    from memprog.protocols.characterize import CharacterizeParams, characterize

    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(tmp_path / "sim"))
    with open_bench("sim_onchip") as b:
        p = CharacterizeParams(devices=2, levels=2, repeats=1, reads=2, disturb_cells=1, response_repeats=0)
        counts = characterize(b.programmer, p)
    assert counts["skipped"]["disturb"] == "needs 2 working cells; disturb_cells=1 asked for one"
