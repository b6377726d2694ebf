"""A run's life in the database: created ``running``, ended ``complete``, ``failed`` or
``interrupted``, resumed once, reaped when its process died, deleted on request.

Why it exists: a run used to live in memory and in a CSV, so Ctrl-C lost it and nothing
accumulated. Now every pulsing command opens a run (:meth:`Store.start_run`), streams its
finished cells and events through a :class:`memprog.store.sink.StoreSink` (the
``EventSink`` seam of ``protocols/events.py``), and ends ``complete``, ``failed`` or
``interrupted``. A run is never marked complete unless its command finished; a crash
leaves it ``running`` with its committed cells, which ``memprog tune --map ...
--resume RUN_ID`` continues from. The rules a resume must respect (a run is resumed once;
a run whose process still lives here is not resumed) are here too, beside the rows they
read. The queries are in :mod:`memprog.store.queries`.
"""

from __future__ import annotations

import os
import secrets
import socket
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from memprog import __version__
from memprog.core.errors import ConfigError
from memprog.core.processes import process_alive
from memprog.store.columnar import table_from_columns
from memprog.store.errors import StoreError
from memprog.store.models import CellBatch, Event, Run, SampleBatch, TraceBatch
from memprog.store.queries import StoreReader
from memprog.store.records import (
    RUN_KINDS,
    RUN_STATUSES,
    bench_hash,
    json_text,
    operator_name,
    utc_now,
)
from memprog.store.sink import StoreSink
from memprog.store.urls import mask_url


def run_alive_here(run: dict[str, Any]) -> bool:
    """Whether a ``running`` run's process still lives on this host (a resume of it now
    would pulse its cells twice). Runs of another host, or without a pid, are not judged."""
    pid = run.get("pid") or (run.get("params") or {}).get("pid")
    if run.get("status") != "running" or not pid or run.get("host") != socket.gethostname()[:128]:
        return False
    return int(pid) != os.getpid() and process_alive(int(pid))


class Store(StoreReader):
    """A connection to the run store: the queries of :class:`StoreReader` plus a run's life
    (see the module docstring). Use :func:`memprog.store.open_store`.

    Attributes:
        url: the database URL as given (use :func:`mask_url` before printing it).
    """

    def __init__(self, engine: Engine, url: str, *, read_only: bool = False) -> None:
        super().__init__(engine, url, read_only=read_only)
        self._sinks: weakref.WeakSet[StoreSink] = weakref.WeakSet()

    # ------------------------------------------------------------------ runs
    def start_run(
        self,
        *,
        kind: str,
        bench: str | None = None,
        bench_path: str | Path | None = None,
        chip_id: str | None = None,
        technology: str | None = None,
        protocol: str | None = None,
        params: dict[str, Any] | None = None,
        cells_total: int | None = None,
        resumed_from: str | None = None,
    ) -> str:
        """Record a new run (status ``running``); returns its id (12 lowercase hex chars).

        A run ``resumed_from`` another starts with a copy of that run's finished cells, so
        it holds every cell of the job on its own (and can itself be resumed).
        """
        if kind not in RUN_KINDS:
            raise ConfigError("kind", kind, f"one of {list(RUN_KINDS)}")
        if cells_total is not None and cells_total < 0:
            raise ConfigError("cells_total", cells_total, ">= 0")
        if resumed_from is not None:
            self._require_run(resumed_from)
            check_not_resumed(self, resumed_from)
        run_id = secrets.token_hex(6)
        row = {
            "run_id": run_id,
            "kind": kind,
            "bench": bench,
            "bench_path": None if bench_path is None else str(Path(bench_path).resolve()),
            "bench_hash": bench_hash(bench_path),
            "chip_id": chip_id,
            "technology": technology,
            "protocol": protocol,
            "params": None if params is None else json_text(params),
            "memprog_version": __version__,
            "status": "running",
            "started_at": utc_now(),
            "cells_total": cells_total,
            "cells_done": 0,
            "resumed_from": resumed_from,
            "operator": operator_name(),
            "host": socket.gethostname()[:128],
            "pid": os.getpid(),
        }
        self.reap_dead_runs()
        self._write("start run", lambda c: c.execute(insert(Run).values(**row)))
        if resumed_from is not None:
            self._copy_cells(resumed_from, run_id)
        return run_id

    def finish_run(self, run_id: str, status: str, summary: dict[str, Any] | None = None) -> None:
        """Mark the run ``complete``, ``failed`` or ``interrupted`` (with its summary)."""
        if status not in RUN_STATUSES:
            raise ConfigError("status", status, f"one of {list(RUN_STATUSES)}")
        self._require_run(run_id)
        values: dict[str, Any] = {"status": status, "ended_at": None if status == "running" else utc_now()}
        if summary is not None:
            values["summary"] = json_text(summary)
        self._write("finish run", lambda c: c.execute(update(Run).where(Run.run_id == run_id).values(**values)))

    def reap_dead_runs(self) -> list[str]:
        """Mark ``interrupted`` the runs still ``running`` whose process is gone from this host.

        Why: a run whose process was killed outright (kill -9, a power cut) never reached
        its end and would read ``running`` for ever. Only runs started on this host with a
        recorded pid are judged (another host's processes cannot be seen from here); a pid
        that is alive, or alive under another user, keeps its run ``running``, so a reused
        pid errs on the side of leaving a run alone. The summary says what happened.
        Called by every new run (:meth:`start_run`) and by ``memprog db reap``.

        Returns:
            The ids of the runs marked interrupted.
        """
        if self.read_only:
            return []
        host = socket.gethostname()[:128]
        q = select(Run.run_id, Run.pid).where(
            (Run.status == "running") & (Run.host == host) & Run.pid.is_not(None)
        )
        dead = [
            (rid, pid)
            for rid, pid in self._read("find running runs", lambda c: c.execute(q).all())
            if not process_alive(pid)
        ]
        for rid, pid in dead:
            summary = {"reaped": True, "reason": f"process {pid} on {host} ended without ending the run"}
            values = {"status": "interrupted", "ended_at": utc_now(), "summary": json_text(summary)}
            self._write(
                "reap run",
                lambda c, rid=rid, values=values: c.execute(
                    update(Run).where((Run.run_id == rid) & (Run.status == "running")).values(**values)
                ),
            )
        return [rid for rid, _ in dead]

    def sink(
        self,
        run_id: str,
        *,
        trace: bool = False,
        batch_cells: int = 4096,
        flush_s: float = 0.2,
        background: bool = False,
    ) -> StoreSink:
        """A :class:`StoreSink` writing into ``run_id`` (see its arguments)."""
        self._require_run(run_id)
        sink = StoreSink(
            self, run_id, trace=trace, batch_cells=batch_cells, flush_s=flush_s, background=background
        )
        self._sinks.add(sink)
        return sink

    def update_run(
        self, run_id: str, *, params: dict[str, Any] | None = None, cells_total: int | None = None
    ) -> None:
        """Replace a running run's ``params`` and/or ``cells_total``.

        Why: a job whose plan needs the open bench (the program job's placement) starts its
        run before the bench opens, so that a signal at any moment after it finds a run to
        mark; the plan a resume must follow is recorded here once it is known.
        """
        self._require_run(run_id)
        if cells_total is not None and cells_total < 0:
            raise ConfigError("cells_total", cells_total, ">= 0")
        values: dict[str, Any] = {}
        if params is not None:
            values["params"] = json_text(params)
        if cells_total is not None:
            values["cells_total"] = int(cells_total)
        if values:
            self._write(
                "update run", lambda c: c.execute(update(Run).where(Run.run_id == run_id).values(**values))
            )

    def delete_run(self, run_id: str) -> None:
        """Remove a run and everything stored for it."""
        self._require_run(run_id)

        def go(c: Any) -> None:
            for m in (CellBatch, Event, TraceBatch, SampleBatch):
                c.execute(delete(m).where(m.run_id == run_id))
            c.execute(delete(Run).where(Run.run_id == run_id))

        self._write("delete run", go)

    def close(self) -> None:
        """Commit what the store's sinks still buffer, then release the connections."""
        try:
            for sink in list(self._sinks):
                sink.close()
        finally:
            self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _write(self, action: str, fn: Any) -> Any:
        if self.read_only:
            raise ConfigError("db", mask_url(self.url), "a store opened for writing", f"cannot {action}: opened read-only")
        try:
            with self.engine.begin() as c:
                return fn(c)
        except SQLAlchemyError as exc:
            raise StoreError(self.url, action, exc) from exc

    def _copy_cells(self, src: str, dst: str) -> None:
        df = self.cells(src)
        if df.empty:
            return
        df = df.drop(columns=["seq"])
        sink = StoreSink(self, dst, batch_cells=len(df) + 1, background=False)
        sink._cell_tables.append(table_from_columns({c: df[c].to_numpy() for c in df.columns}))
        sink._cells_buffered = len(df)
        sink.flush()


def check_not_resumed(store: Store, run_id: str) -> None:
    """ConfigError naming the run that already resumed ``run_id`` (a run is resumed once)."""
    by = store.resumed_by(run_id)
    if by is not None:
        raise ConfigError(
            "--resume",
            run_id,
            "a run not resumed yet",
            f"run {by} already resumed it (it holds its cells: resume {by} instead, if it was interrupted)",
        )


__all__ = ["Store", "check_not_resumed", "run_alive_here"]
