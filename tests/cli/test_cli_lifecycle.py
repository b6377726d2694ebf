"""One run lifecycle for every command (issue 22): the same signals, exit codes and resume
rules whichever command runs.

What a user sees is checked: the exit status, the one stderr line, the run's status in the
store, the refusal text. ``train`` used to store its run without any signal handling (a
SIGTERM killed it on the spot: exit -15, the run left ``running``); ``tune --map`` and
``program`` each wrote their own resume rules (``program`` said "it is complete" where
``tune`` said "it finished").
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from memprog.bench.direct import DirectChipProgrammer
from memprog.cli import app
from memprog.core.bench_config import load_bench_config
from memprog.core.errors import ConfigError, FetchError, InstrumentError, ProtocolError, SafetyError
from memprog.core.jsonout import dumps, lenient, strict_loads
from memprog.core.signals import EXIT_BAD_INPUT, EXIT_INSTRUMENT
from memprog.protocols.alibart import AlibartParams
from memprog.protocols.characterize import CharacterizeParams, characterize
from memprog.reporting.outcome import exit_code_for_error
from memprog.sim_instruments import SimChip
from memprog.store import MissingDataError, StoreError, open_store, stored_run

CLI = [sys.executable, "-c", "from memprog.cli import main; main()"]


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["MEMPROG_DB"] = f"sqlite:///{tmp_path / 'db.sqlite'}"
    env["MPLBACKEND"] = "Agg"
    return env


# ----------------------------------------------------------------------- one exit rule
@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ConfigError("--x", 1, "0-0"), EXIT_BAD_INPUT),
        (MissingDataError("stuck", "chip A"), EXIT_BAD_INPUT),
        (SafetyError("v_set_v", 9.0, "0-3 V"), EXIT_BAD_INPUT),
        (InstrumentError("k4200", -113, "undefined header"), EXIT_INSTRUMENT),
        (ProtocolError("a number", "garbage"), EXIT_INSTRUMENT),
        (FetchError("https://example.org/w.pt", "HTTP 404"), EXIT_INSTRUMENT),
        (StoreError("sqlite:///x.db", "commit", "disk full"), EXIT_INSTRUMENT),
    ],
)
def test_one_exit_rule_for_errors(exc, code):
    """Bad input is the caller's (2); the bench's or the database's failure is 3."""
    assert exit_code_for_error(exc) == code


def test_lenient_records_keep_a_model_as_its_fields():
    """A run record holding a settings model is stored as its fields, never refused."""
    doc = strict_loads(dumps({"params": AlibartParams(), "odd": object(), "g": float("nan")}, fallback=lenient))
    assert doc["params"]["tolerance_rel"] == AlibartParams().tolerance_rel
    assert doc["odd"].startswith("<object object") and doc["g"] is None


# --------------------------------------------------------------- train: the shared lifecycle
def _train_args(tmp_path: Path) -> list[str]:
    return ["train", "--dataset", "halfmoons", "--epochs", "100000", "--out", str(tmp_path / "w.pt")]


@pytest.fixture(scope="module")
def characterized_db(tmp_path_factory) -> str:
    """A store holding a small characterisation run (what `train --db` trains from)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('lifecycle') / 'v.sqlite'}"
    s = open_store(url)
    with stored_run(s, kind="characterize", chip_id="SIM-8", technology="tio2_passive", quiet=True) as run:
        characterize(
            DirectChipProgrammer(SimChip(8, 8, "tio2_passive", seed=3)),
            CharacterizeParams(devices=2, levels=2, repeats=1, disturb_cells=64),
            sink=run.sink,
        )
    s.close()
    return url


@pytest.mark.slow
def test_train_stored_run_interrupted_by_sigterm(tmp_path, characterized_db):
    """SIGTERM mid-training: exit 143, one line naming the signal and the run, the run
    marked ``interrupted`` in the store, no half-written weight file."""
    env = _env(tmp_path)
    env["MEMPROG_DB"] = characterized_db
    p = subprocess.Popen(
        [*CLI, *_train_args(tmp_path), "--db", characterized_db, "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    first = p.stderr.readline()  # type: ignore[union-attr]
    assert first.startswith("memprog: run ") and "started" in first, first + p.stderr.read()  # type: ignore[union-attr]
    run_id = first.split()[2]
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 128 + signal.SIGTERM, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "interrupted by SIGTERM" in lines[0] and f"run {run_id} marked interrupted" in lines[0]
    assert out == ""
    store = open_store(env["MEMPROG_DB"], read_only=True)
    try:
        run = store.get_run(run_id)
    finally:
        store.close()
    assert run["kind"] == "train" and run["status"] == "interrupted"
    assert not (tmp_path / "w.pt").exists()


@pytest.mark.slow
def test_train_without_store_interrupted_by_sigterm(tmp_path):
    """Without --db nothing is stored, and a SIGTERM still ends in one line and exit 143."""
    env = _env(tmp_path)
    env.pop("MEMPROG_DB")
    p = subprocess.Popen(
        [*CLI, *_train_args(tmp_path), "--progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert p.stderr.read(1)  # type: ignore[union-attr]  # the progress bar: training is under way
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 128 + signal.SIGTERM, err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert "interrupted by SIGTERM" in last and "the run was not stored" in last, err
    assert "Traceback" not in err and out == ""


# ------------------------------------------------------------------ one set of resume rules
def _finished_run(url: str, kind: str, bench: str) -> str:
    store = open_store(url)
    try:
        rid = store.start_run(kind=kind, bench=bench, chip_id=load_bench_config(bench)[0].chip.id)
        store.finish_run(rid, "complete", {})
    finally:
        store.close()
    return rid


@pytest.mark.parametrize("kind", ["program", "array"])
def test_resume_rules_are_the_same_for_tune_and_program(tmp_path, kind):
    """A finished run, and a run of the other command, are refused by both commands with
    the same words, and no run is created."""
    url = _env(tmp_path)["MEMPROG_DB"]
    m = tmp_path / "m.npy"
    np.save(m, np.full((2, 2), 100.0))
    commands = {
        "array": ["tune", "--bench", "sim_k4200_707b", "--map", str(m)],
        "program": ["program", "--example", "digits", "--out", str(tmp_path / "rep")],
    }
    bench = "sim_k4200_707b" if kind == "array" else "sim_onchip"
    done = _finished_run(url, kind, bench)
    res = _runner().invoke(app, [*commands[kind], "--db", url, "--resume", done])
    assert res.exit_code == 2, res.stderr
    assert done in res.stderr and "it finished (status complete)" in res.stderr
    other = "program" if kind == "array" else "array"
    foreign = _finished_run(url, other, bench)
    res = _runner().invoke(app, [*commands[kind], "--db", url, "--resume", foreign])
    assert res.exit_code == 2, res.stderr
    assert foreign in res.stderr and f"it is a '{other}' run" in res.stderr
    store = open_store(url, read_only=True)
    try:
        assert len(store.list_runs()) == 2  # the two made here; the refusals created none
    finally:
        store.close()
