"""Runs survive what a lab throws at them: kill -9 then --resume, SIGTERM/SIGINT/SIGHUP, and
the ``memprog db`` commands (backend: the @memprog simulator through sim_k4200_707b, in a
``memprog`` subprocess; store on SQLite, and on PostgreSQL when CI provides a server)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from memprog.cli import app
from memprog.store import open_store
from tests.store_helpers import pg_url, store_url

BENCH = "sim_k4200_707b"
MEMPROG = [sys.executable, "-c", "from memprog.cli import main; main()"]


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


def _map(tmp_path: Path, rows: int = 2, seed: int = 0) -> Path:
    m = np.random.default_rng(seed).uniform(150.0, 380.0, (rows, 8)).round(1)
    p = tmp_path / f"map{seed}.npy"
    np.save(p, m)
    return p


def _start(args: list[str]) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen(
        MEMPROG + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    line = p.stderr.readline()  # type: ignore[union-attr]
    assert line.startswith("memprog: run "), line
    return p, line.split()[2]


def _wait_cells(url: str, run_id: str, n: int, timeout_s: float = 60.0) -> int:
    s = open_store(url)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < timeout_s:
            done = s.get_run(run_id)["cells_done"]
            if done >= n:
                return done
            time.sleep(0.05)
    finally:
        s.close()
    raise AssertionError(f"fewer than {n} cells stored after {timeout_s} s")


@pytest.mark.slow
def test_kill9_then_resume_then_export(tmp_path):
    # on the PostgreSQL server when CI provides one (the harder case), else on SQLite
    url = store_url("pg" if pg_url() else "sqlite", tmp_path)
    m = _map(tmp_path)
    p, rid = _start(["tune", "--bench", BENCH, "--map", str(m), "--db", url, "--json"])
    _wait_cells(url, rid, 3)
    p.kill()  # SIGKILL: nothing can be caught
    p.communicate()
    s = open_store(url)
    run = s.get_run(rid)
    assert run["status"] == "running"  # never marked complete
    kept = s.cells(rid)
    assert 3 <= len(kept) < 16
    r = _runner()
    res = r.invoke(app, ["tune", "--bench", BENCH, "--map", str(m), "--resume", rid, "--db", url, "--json"])
    assert res.exit_code in (0, 1), res.output
    d = json.loads(res.stdout)
    rid2 = d["run_id"]
    assert d["cells"] == 16 and d["resumed_from"] == rid
    start = s.events(rid2, "array_start")[0]
    # the finished cells were not programmed again, but for those the resume's re-read found
    # outside their band (issue 20: resume reads before it trusts), which it counts
    assert d["resume"]["cells_kept"] == len(kept)
    assert start["resume_from"] == len(kept) - d["resume"]["cells_retuned"]
    out = tmp_path / "cells.parquet"
    ex = r.invoke(app, ["db", "export", "--run", rid2, "--out", str(out), "--db", url, "--json"])
    assert ex.exit_code == 0, ex.output
    df = pd.read_parquet(out)
    assert len(df) == 16 and not df.duplicated(["row", "col"]).any()
    for col in ("row", "col", "target_us", "final_us", "pulses", "converged", "flags"):
        assert col in df
    assert s.get_run(rid2)["status"] == "complete"
    killed = s.get_run(rid)  # the new run found the killed one's process gone
    assert killed["status"] == "interrupted" and killed["summary"]["reaped"] is True
    # refusals, each with its reason, and no run started for them
    n_runs = len(s.list_runs())
    done = r.invoke(app, ["tune", "--bench", BENCH, "--map", str(m), "--resume", rid2, "--db", url])
    assert done.exit_code == 2 and "finished" in done.stderr
    other = r.invoke(app, ["tune", "--bench", BENCH, "--map", str(_map(tmp_path, seed=1)), "--resume", rid, "--db", url])
    assert other.exit_code == 2 and "different map" in other.stderr
    unknown = r.invoke(app, ["tune", "--bench", BENCH, "--map", str(m), "--resume", "0123456789ab", "--db", url])
    assert unknown.exit_code == 2 and "0123456789ab" in unknown.stderr
    assert len(s.list_runs()) == n_runs
    s.close()


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_marks_interrupted_keeps_cells(sig, code, tmp_path):
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    m = _map(tmp_path)
    csv = tmp_path / "out.csv"
    p, rid = _start(["tune", "--bench", BENCH, "--map", str(m), "--db", url, "--out", str(csv), "--json"])
    _wait_cells(url, rid, 2)
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode == code, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err  # exactly one line says what happened
    msg = lines[0]
    assert f"interrupted by {signal.Signals(sig).name}" in msg and "made safe" in msg
    assert f"run {rid} marked interrupted" in msg and str(csv) in msg
    doc = json.loads(out)
    assert doc["interrupted"] is True and doc["exit_code"] == code and doc["bench_safe"] is True
    s = open_store(url)
    assert s.get_run(rid)["status"] == "interrupted"
    n = len(s.cells(rid))
    assert n >= 2 and len(pd.read_csv(csv)) == n  # the finished cells, in the store and the CSV
    s.close()


@pytest.mark.slow
def test_db_commands(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    r = _runner()
    t = r.invoke(app, ["tune", "--bench", BENCH, "--rows", "0", "--cols", "0:2", "--target-us", "250",
                       "--db", url, "--json", "--no-progress"])
    assert t.exit_code in (0, 1), t.output
    rid = json.loads(t.stdout)["run_id"]
    assert f"memprog: run {rid} started" in t.stderr
    runs = r.invoke(app, ["db", "runs", "--db", url, "--json"])
    assert runs.exit_code == 0 and json.loads(runs.stdout)["runs"][0]["run_id"] == rid
    human = r.invoke(app, ["db", "runs", "--db", url])
    assert rid in human.stdout and "complete" in human.stdout
    summ = r.invoke(app, ["db", "summary", "--db", url, "--json"])
    d = json.loads(summ.stdout)
    assert d["runs"] == 1 and d["cells"] == 2 and d["variability"]["imprecision"] == 0
    bad = r.invoke(app, ["db", "runs", "--db", "postgresql+psycopg://u:pw1@127.0.0.1:1/x"])
    assert bad.exit_code == 2 and "pw1" not in bad.stderr and "***" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    missing = r.invoke(app, ["db", "export", "--run", "0123456789ab", "--out", str(tmp_path / "x.csv"), "--db", url])
    assert missing.exit_code == 2 and "0123456789ab" in missing.stderr
    up = r.invoke(app, ["db", "upgrade", "--db", url, "--json"])
    assert up.exit_code == 0 and json.loads(up.stdout)["revision"]
    reap = r.invoke(app, ["db", "reap", "--db", url, "--json"])  # nothing left running here
    assert reap.exit_code == 0 and json.loads(reap.stdout)["reaped"] == []
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    s = open_store(url)
    orphan = s.start_run(kind="tune")
    from sqlalchemy import update

    from memprog.store.models import Run

    with s.engine.begin() as c:  # as a run whose process was killed outright
        c.execute(update(Run).where(Run.run_id == orphan).values(pid=gone.pid))
    s.close()
    reap = r.invoke(app, ["db", "reap", "--db", url])
    assert reap.exit_code == 0 and orphan in reap.stdout and "1 run(s) marked interrupted" in reap.stdout
    lv = r.invoke(app, ["levels", "--bench", "sim_onchip", "--levels", "3", "--start-us", "1000",
                        "--out", str(tmp_path / "l.png"), "--db", url, "--json", "--no-progress"])
    assert lv.exit_code == 0, lv.output
    s = open_store(url)
    cells = s.cells(json.loads(lv.stdout)["run_id"])
    assert cells["level"].tolist() == [0, 1, 2] and s.list_runs(kind="levels")["status"].tolist() == ["complete"]
    s.close()


def test_store_failure_mid_run_stops_safely(tmp_path, monkeypatch):
    """A full disk (simulated: the sink's commit fails) stops the run, bench safe, one line."""
    from memprog.store import StoreError
    from memprog.store.sink import StoreSink

    real = StoreSink._commit
    calls = {"n": 0}

    def flaky(self, payload):  # the writer's transaction (in its background thread)
        calls["n"] += 1
        if calls["n"] >= 2:
            raise StoreError(self.store.url, "store finished cells", "database or disk is full")
        return real(self, payload)

    monkeypatch.setattr(StoreSink, "_commit", flaky)
    res = _runner().invoke(
        app,
        ["tune", "--bench", BENCH, "--rows", "0", "--cols", "0:4", "--target-us", "250",
         "--db", f"sqlite:///{tmp_path / 'f.sqlite'}", "--json", "--no-progress"],
    )  # fmt: skip
    assert res.exit_code == 3, res.output
    err = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "disk is full" in err[0] and "made safe" in err[0]
    assert res.stdout == ""


def test_db_runs_names_where_a_fleet_runs_cells_are(tmp_path):
    """A fleet run holds no cells itself (its chips' runs do): the listing must not say 0."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    s = open_store(url)
    fid = s.start_run(kind="fleet", bench="sim_onchip", params={"chips": 2})
    cid = s.start_run(kind="program", bench="sim_onchip", cells_total=4, params={"fleet_run_id": fid})
    s.close()
    out = _runner().invoke(app, ["db", "runs", "--db", url])
    assert out.exit_code == 0, out.output
    rows = {ln.split()[0]: ln for ln in out.stdout.splitlines()[1:]}
    assert "in chips" in rows[fid] and " 0 " not in rows[fid]
    assert "0/4" in rows[cid]  # a chip's run still counts its own cells
