"""The run store (``memprog.store``) on SQLite, and on PostgreSQL when CI provides a server
(backend: DirectChipProgrammer on SimChip for the protocol runs; database named per test)."""

from __future__ import annotations

import os
import signal
import sys
import threading

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from memprog.bench.direct import DirectChipProgrammer
from memprog.core.errors import ConfigError
from memprog.core.signals import Interrupted, exit_code_for_signal, handle_signals
from memprog.protocols.alibart import tune_alibart
from memprog.protocols.array import ArrayJob, ArrayParams
from memprog.protocols.results import TuneResult
from memprog.sim_instruments import SimChip
from memprog.store import (
    RUN_STATUSES,
    StoreError,
    default_db_url,
    mask_url,
    migrate,
    open_store,
    stored_run,
)
from tests.store_helpers import store_url

KINDS = ["sqlite", "pg"]


@pytest.fixture(params=KINDS)
def url(request, tmp_path):
    return store_url(request.param, tmp_path)


def _result(n: int, protocol: str = "alibart", start: int = 0) -> TuneResult:
    i = np.arange(start, start + n)
    return TuneResult(
        protocol=protocol,
        rows=i // 8,
        cols=i % 8,
        target_us=np.full(n, 200.0),
        final_us=200.0 + 0.1 * i,
        pulses=i,
        reads=2 * i,
        converged=i % 5 != 0,
        flags=np.where(i % 5 == 0, "pulse_budget", "").astype(object),
        tolerance_us=2.0,
        extra={"polarity_flips": i % 3},
    )


def test_urls(monkeypatch, tmp_path):
    assert mask_url("postgresql+psycopg://lab:s3cret@db.example/mem") == (
        "postgresql+psycopg://lab:***@db.example/mem"
    )
    assert "s3cret" not in mask_url("not a url://lab:s3cret@x")
    monkeypatch.setenv("MEMPROG_DB", "sqlite:///x.sqlite")
    assert default_db_url() == "sqlite:///x.sqlite"
    monkeypatch.delenv("MEMPROG_DB")
    import platformdirs

    monkeypatch.setattr(platformdirs, "user_data_dir", lambda app: str(tmp_path / app))
    assert default_db_url() == f"sqlite:///{tmp_path / 'memprog' / 'memprog.sqlite'}"


def test_runs_cells_events_round_trip(url):
    s = open_store(url)
    rid = s.start_run(kind="tune", bench="b1", chip_id="C1", technology="tio2_passive",
                      protocol="alibart", params={"a": 1}, cells_total=20)
    assert len(rid) == 12 and int(rid, 16) >= 0
    sink = s.sink(rid, batch_cells=8, flush_s=3600, background=False)
    sink.record_event({"event": "tune_start", "cells": 20, "arr": np.arange(3)})
    res = _result(12)
    for i in range(5):  # the per-cell path
        sink.record_result(res.row_dict(i))
    sink.record_results(res.subset(np.arange(12) >= 5))  # the bulk path -> a flush (>= 8)
    assert s.get_run(rid)["cells_done"] == 12
    sink.record_results(_result(8, start=12))
    sink.flush()
    s.finish_run(rid, "complete", {"cells": 20})
    df = s.cells(rid)
    assert len(df) == 20 and df["seq"].is_monotonic_increasing
    assert list(df.columns[:10]) == ["row", "col", "target_us", "final_us", "error_us",
                                     "tolerance_us", "pulses", "reads", "converged", "flags"]
    assert df["flags"].iloc[0] == "pulse_budget" and "polarity_flips" in df
    run = s.get_run(rid)
    assert run["status"] == "complete" and run["params"] == {"a": 1}
    assert run["summary"] == {"cells": 20} and run["cells_done"] == 20
    assert run["memprog_version"] and run["ended_at"]
    ev = s.events(rid)
    assert ev[0]["event"] == "tune_start" and ev[0]["arr"] == [0, 1, 2]
    runs = s.list_runs(bench="b1")
    assert list(runs.columns) == ["run_id", "kind", "bench", "chip_id", "technology", "protocol",
                                  "status", "started_at", "ended_at", "cells_done", "cells_total"]
    assert runs["run_id"].tolist() == [rid]
    # a later record of a cell replaces the earlier one (an array job's re-verified result)
    sink2 = s.sink(rid)
    again = _result(3)
    again.final_us[:] = 999.0
    sink2.record_results(again)
    sink2.flush()
    df2 = s.cells(rid)
    assert len(df2) == 20 and (df2.set_index(["row", "col"]).loc[(0, 1), "final_us"] == 999.0)
    assert s.get_run(rid)["cells_done"] == 20
    back = s.resume_result(rid)
    assert len(back) == 20 and back.extra["polarity_flips"].dtype.kind in "iu"
    with pytest.raises(ConfigError, match="status"):
        s.finish_run(rid, "done")
    with pytest.raises(ConfigError, match="run_id"):
        s.get_run("0123456789ab")
    with pytest.raises(ConfigError, match="kind"):
        s.start_run(kind="tuning")
    s.close()


def test_traces_and_samples(url):
    s = open_store(url)
    with stored_run(s, kind="tune", trace=True, quiet=True) as run:
        prog = DirectChipProgrammer(SimChip(4, 4, "tio2_passive", seed=8))
        res = tune_alibart(prog, [0, 1], [0, 1], [150.0, 250.0], sink=run.sink)
        run.sink.record_event({"event": "samples", "table": "rtn",
                               "columns": {"phase": np.array(["before", "after"], object),
                                           "spread_us": [1.0, 0.2], "row": [0, 0], "col": [1, 1]}})
    tr = s.traces(run.run_id)
    pulses = tr[tr["kind"] == "pulse"]
    reads = tr[tr["kind"] == "read"]
    assert len(pulses) == int(res.pulses.sum())  # every pulse, the settle's re-tunes included
    # one read record per verify round (an averaged round records its mean); the noise
    # probe and the settle's re-reads are counted in ``reads`` but are not trace records
    assert 0 < len(reads) <= int(res.reads.sum())
    assert pulses["amplitude_v"].notna().all() and reads["g_us"].notna().all()
    assert len(s.traces(run.run_id, row=1, col=1)) < len(tr)
    sm = s.samples("rtn", [run.run_id])
    assert sm["spread_us"].tolist() == [1.0, 0.2] and (sm["run_id"] == run.run_id).all()
    assert s.get_run(run.run_id)["status"] == "complete"
    assert len(s.cells(run.run_id)) == 2  # streamed through the bulk path


@pytest.mark.parametrize(
    "exc, status",
    [(KeyboardInterrupt(), "interrupted"), (Interrupted(15), "interrupted"), (RuntimeError("x"), "failed")],
)
def test_stored_run_end_states(tmp_path, capsys, exc, status):
    s = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    with pytest.raises(type(exc)):
        with stored_run(s, kind="array", bench="b") as run:
            run.sink.record_results(_result(3))
            raise exc
    r = s.get_run(run.run_id)
    assert r["status"] == status and r["cells_done"] == 3  # the buffered cells were kept
    assert f"memprog: run {run.run_id} started (db sqlite:///" in capsys.readouterr().err
    assert status in RUN_STATUSES


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_handle_signals_turns_sigterm_sighup_into_interrupted(sig, code):
    before = signal.getsignal(sig)
    with pytest.raises(Interrupted) as ei:
        with handle_signals():
            os.kill(os.getpid(), sig)
            threading.Event().wait(2)
    assert ei.value.signum == sig and ei.value.name == signal.Signals(sig).name
    assert exit_code_for_signal(ei.value.signum) == code
    assert signal.getsignal(sig) is before
    with pytest.raises(KeyboardInterrupt):
        with handle_signals():
            os.kill(os.getpid(), signal.SIGINT)
            threading.Event().wait(2)
    assert exit_code_for_signal(signal.SIGINT) == 130


def test_resume_interrupted_array_job_pulses_no_finished_cell(tmp_path):
    """An array job interrupted half-way (a lock-step batch), resumed from the store."""
    s = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    chip = SimChip(16, 16, "hfo2_1t1r", seed=3)
    prog = DirectChipProgrammer(chip)
    m = np.linspace(200.0, 3000.0, 64).reshape(8, 8)

    class Stop(KeyboardInterrupt):
        pass

    class Breaker:
        def __init__(self, inner):
            self.inner, self.wants_trace, self.n = inner, False, 0

        def record_event(self, e):
            self.inner.record_event(e)

        def record_results(self, r):
            self.inner.record_results(r)
            self.n += len(r)
            if self.n >= 20:
                raise Stop

    with pytest.raises(Stop):
        with stored_run(s, kind="array", quiet=True) as run:
            ArrayJob(prog, m, ArrayParams()).run(sink=Breaker(run.sink))
    done = s.cells(run.run_id)
    assert 20 <= len(done) < 64 and s.get_run(run.run_id)["status"] == "interrupted"
    pulsed: list[np.ndarray] = []
    orig = prog.pulse

    def spy(rows, cols, *a, **k):
        pulsed.append(np.atleast_1d(rows) * 16 + np.atleast_1d(cols))
        return orig(rows, cols, *a, **k)

    prog.pulse = spy  # type: ignore[method-assign]
    with stored_run(s, kind="array", resumed_from=run.run_id, quiet=True) as run2:
        assert len(s.cells(run2.run_id)) == len(done)  # the finished cells were carried over
        res = ArrayJob(prog, m, ArrayParams(reverify=False), resume=s.resume_result(run.run_id)).run(sink=run2.sink)
        run2.sink.record_results(res)
    again = np.isin(np.concatenate(pulsed), done["row"].to_numpy() * 16 + done["col"].to_numpy())
    assert not again.any(), "a finished cell was pulsed again"
    out = s.cells(run2.run_id)
    assert len(out) == 64 and not out.duplicated(["row", "col"]).any()
    assert s.get_run(run2.run_id)["resumed_from"] == run.run_id


def test_migration_from_first_schema(url):
    eng = create_engine(url)
    from alembic import command

    with eng.begin() as c:
        command.upgrade(migrate.alembic_config(c), "0001")
    with eng.begin() as c:
        c.execute(text(
            "INSERT INTO runs (run_id, kind, status, started_at, cells_done) "
            "VALUES ('00000000abcd', 'tune', 'complete', '2026-01-01 00:00:00', 0)"
        ))
    eng.dispose()
    with pytest.raises(ConfigError, match=r"memprog db upgrade"):
        open_store(url, read_only=True)  # read-only: refused with the command that migrates
    s = open_store(url)  # migrated to the newest revision on open
    with s.engine.connect() as c:
        assert migrate.current_revision(c) == migrate.head_revision()
    r = s.get_run("00000000abcd")
    assert r["kind"] == "tune" and r["operator"] is None
    assert s.get_run(s.start_run(kind="tune"))["operator"]
    s.close()


def test_newer_schema_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    open_store(url).close()
    eng = create_engine(url)
    with eng.begin() as c:
        c.execute(text(f"UPDATE {migrate.VERSION_TABLE} SET version_num = '0099'"))
    eng.dispose()
    with pytest.raises(ConfigError) as ei:
        open_store(url)
    msg = str(ei.value)
    assert "0099" in msg and migrate.head_revision() in msg and "newer memprog" in msg


def test_bad_urls_one_line_masked(tmp_path):
    for bad in ("postgresql+psycopg://lab:s3cret@127.0.0.1:1/mem", "nosuchdb://lab:s3cret@x/y", "::::"):
        with pytest.raises(ConfigError) as ei:
            open_store(bad)
        msg = str(ei.value)
        assert "s3cret" not in msg and "\n" not in msg and msg.startswith("db=")
    with pytest.raises(ConfigError, match="refused|connect"):
        open_store("postgresql+psycopg://lab:s3cret@127.0.0.1:1/mem")
    with pytest.raises(ConfigError, match="no such file"):
        open_store(f"sqlite:///{tmp_path / 'none.sqlite'}", read_only=True)


def test_full_disk_is_a_store_error(tmp_path):
    from sqlalchemy import event

    s = open_store(f"sqlite:///{tmp_path / 'full.sqlite'}")
    rid = s.start_run(kind="array")
    sink = s.sink(rid, flush_s=3600)

    @event.listens_for(s.engine, "connect")
    def _tiny(dbapi_conn, _rec):  # the file may not grow: "database or disk is full"
        cur = dbapi_conn.cursor()
        n = cur.execute("PRAGMA page_count").fetchone()[0]
        cur.execute(f"PRAGMA max_page_count={n}")
        cur.close()

    s.engine.dispose()
    sink.record_results(_result(64))
    big = _result(64)
    big.extra["blob"] = np.random.default_rng(0).random(64)
    for _ in range(30):
        sink.record_results(big)
    with pytest.raises(StoreError, match="full") as ei:
        sink.flush()
    assert "\n" not in str(ei.value) and "store finished cells" in str(ei.value)


def test_two_runs_write_concurrently(url):
    """Two processes' worth of writers (own engines) fill two runs at the same time."""
    errors: list[BaseException] = []
    ids: list[str] = []

    def writer(k: int) -> None:
        try:
            s = open_store(url)
            rid = s.start_run(kind="array", bench=f"concurrent-{k}")
            ids.append(rid)
            sink = s.sink(rid, batch_cells=8, flush_s=3600)
            for b in range(8):
                sink.record_results(_result(8, start=8 * b))  # 8 cells -> one commit each
                sink.record_event({"event": "checkpoint", "next_index": 8 * (b + 1)})
            sink.flush()
            s.finish_run(rid, "complete")
            s.close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    s = open_store(url, read_only=True)
    for rid in ids:
        assert len(s.cells(rid)) == 64 and s.get_run(rid)["cells_done"] == 64
        assert len(s.events(rid, "checkpoint")) == 8
    s.close()


def test_runs_left_running_by_a_gone_process_are_reaped(url):
    """kill -9 leaves a run 'running'; a run whose process is gone from this host is marked
    interrupted (by the next run, or `memprog db reap`), a live or foreign one is not."""
    import socket
    import subprocess

    from sqlalchemy import update

    from memprog.core.processes import process_alive
    from memprog.store.models import Run
    from memprog.store.runs import run_alive_here

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    s = open_store(url)
    try:
        ids = {name: s.start_run(kind="tune") for name in ("gone", "live", "foreign", "mine")}
        for name, pid, host in (
            ("gone", gone.pid, None), ("live", live.pid, None), ("foreign", gone.pid, "another-host"),
        ):  # fmt: skip
            vals = {"pid": pid} | ({"host": host} if host else {})
            with s.engine.begin() as c:
                c.execute(update(Run).where(Run.run_id == ids[name]).values(**vals))
        assert not process_alive(gone.pid) and process_alive(live.pid) and process_alive(os.getpid())
        assert run_alive_here(s.get_run(ids["live"])) and not run_alive_here(s.get_run(ids["gone"]))
        assert not run_alive_here(s.get_run(ids["mine"]))  # this process: a resume is its own
        assert s.get_run(ids["mine"])["host"] == socket.gethostname()[:128]
        assert s.reap_dead_runs() == [ids["gone"]]
        run = s.get_run(ids["gone"])
        assert run["status"] == "interrupted" and run["ended_at"]
        assert run["summary"]["reaped"] is True and str(gone.pid) in run["summary"]["reason"]
        for name in ("live", "foreign", "mine"):
            assert s.get_run(ids[name])["status"] == "running", name
        assert s.reap_dead_runs() == []  # nothing twice
        live.kill()
        live.wait()
        s.start_run(kind="tune")  # every new run reaps
        assert s.get_run(ids["live"])["status"] == "interrupted"
    finally:
        if live.poll() is None:
            live.kill()
        s.close()
