"""A second run never overwrites the first's files behind the user's back (issue 27).

The rule (``memprog.cli.outputs``, README "Command line"): an output that is already there
is refused (exit 2, one stderr line naming it, before any run is stored) unless ``--force``.
Checked for every command that writes a file: ``sim demo``, ``levels``, ``tune --png/--out``,
``program`` (its report folder) and ``evaluate --png``. Backend: the simulated on-chip
bench (``@memprog``) and a run store in the test's folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from memprog.cli import app
from memprog.store import open_store

ROOT = Path(__file__).resolve().parents[2]
ONCHIP = str(ROOT / "benches" / "sim_onchip.yaml")


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


def _runs(url: str) -> int:
    s = open_store(url, read_only=True)
    try:
        return len(s.list_runs())
    finally:
        s.close()


@pytest.fixture
def db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    monkeypatch.setenv("MEMPROG_DB", url)
    open_store(url).close()
    return url


def _second_run_refused(args: list[str], target: Path, db: str) -> None:
    """The first run wrote ``target``; the same command again is refused and leaves it."""
    before = target.read_bytes()
    n = _runs(db)
    r = _runner().invoke(app, args)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--force" in lines[0] and target.name in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert target.read_bytes() == before  # the first run's file, untouched
    assert _runs(db) == n  # refused before a run was stored


@pytest.mark.slow
def test_demo_png_is_not_replaced_without_force(tmp_path, db, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default output, memprog_demo.png, lands here
    args = ["sim", "demo", "--bench", ONCHIP, "--cells", "2", "--pulses", "3"]
    r = _runner().invoke(app, args)
    assert r.exit_code == 0, r.output
    png = tmp_path / "memprog_demo.png"
    assert f"plot: {Path('memprog_demo.png')}" in r.stdout  # it says where
    _second_run_refused(args, png, db)
    png.write_bytes(b"old")
    r = _runner().invoke(app, [*args, "--force"])
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:4] == b"\x89PNG"  # --force replaced it


@pytest.mark.slow
def test_levels_default_png_is_not_replaced(tmp_path, db, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["levels", "--bench", ONCHIP, "--levels", "3", "--start-us", "100"]
    r = _runner().invoke(app, args)
    assert r.exit_code in (0, 1), r.output
    assert "plot: memprog_levels.png" in r.stdout
    _second_run_refused(args, tmp_path / "memprog_levels.png", db)
    # --force before or after --out: the same (the flag is parsed first)
    r = _runner().invoke(
        app, ["levels", "--force", "--bench", ONCHIP, "--levels", "3", "--start-us", "100"]
    )
    assert r.exit_code in (0, 1), r.output


@pytest.mark.slow
def test_tune_png_and_csv_are_not_replaced(tmp_path, db):
    png, csv = tmp_path / "maps.png", tmp_path / "cells.csv"
    args = ["tune", "--bench", ONCHIP, "--rows", "0:2", "--cols", "0:2", "--target-us", "300"]
    r = _runner().invoke(app, [*args, "--png", str(png), "--out", str(csv)])
    assert r.exit_code in (0, 1), r.output
    assert str(png) in r.stdout and str(csv) in r.stdout  # it says where
    _second_run_refused([*args, "--png", str(png)], png, db)
    _second_run_refused([*args, "--out", str(csv)], csv, db)
    r = _runner().invoke(app, [*args, "--png", str(png), "--out", str(csv), "--force"])
    assert r.exit_code in (0, 1), r.output


@pytest.mark.slow
def test_program_report_folder_is_not_replaced(tmp_path, db):
    m = np.full((3, 4), np.nan)
    m[1, :] = [200.0, 300.0, 400.0, 500.0]
    np.savetxt(tmp_path / "map.csv", m, delimiter=",")
    rep = tmp_path / "rep"
    args = ["program", str(tmp_path / "map.csv"), "--bench", ONCHIP, "--out", str(rep)]
    r = _runner().invoke(app, args)
    assert r.exit_code in (0, 1), r.output
    assert str(rep / "report.json") in r.stdout
    _second_run_refused(args, rep / "report.json", db)
    # an empty folder (or one without a report) is fine to write into
    empty = tmp_path / "empty"
    empty.mkdir()
    r = _runner().invoke(app, [*args[:-1], str(empty), "--json"])
    assert r.exit_code in (0, 1), r.output


def test_evaluate_png_is_not_replaced(tmp_path, db):
    png = tmp_path / "eval.png"
    png.write_bytes(b"an earlier figure")
    r = _runner().invoke(app, ["evaluate", str(tmp_path / "w.pt"), "--png", str(png)])
    assert r.exit_code == 2 and "--force" in r.stderr and str(png) in r.stderr, r.output
    assert png.read_bytes() == b"an earlier figure"


@pytest.mark.parametrize(
    "args",
    [["train", "--dataset", "halfmoons", "--epochs", "1"], ["insitu", "--epochs", "1"]],
    ids=["train", "insitu"],
)
def test_weight_files_are_not_replaced(tmp_path, db, args):
    """``train --out`` and ``insitu --out`` write weights a lab programs later: an earlier
    file is refused before any training (and before any run is stored)."""
    w = tmp_path / "w.pt"
    w.write_bytes(b"earlier weights")
    n = _runs(db)
    r = _runner().invoke(app, [*args, "--out", str(w)])
    assert r.exit_code == 2 and "--force" in r.stderr and "w.pt" in r.stderr, r.output
    assert w.read_bytes() == b"earlier weights" and _runs(db) == n
