"""The run store: every run that pulses a chip kept in a database, finished cells first.

Why it exists: a run used to live in memory and in a CSV, so Ctrl-C lost it and nothing
accumulated. Now every pulsing command opens a run (:meth:`Store.start_run`), streams its
finished cells and events through a :class:`StoreSink` (the ``EventSink`` seam of
``protocols/events.py``), and ends ``complete``, ``failed`` or ``interrupted``. A run is
never marked complete unless its command finished; a crash leaves it ``running`` with its
committed cells, which ``memprog tune --map ... --resume RUN_ID`` continues from.

Any SQLAlchemy URL works: an SQLite file by default (:func:`default_db_url`), PostgreSQL
(``postgresql+psycopg://user:pw@host/db``) when a lab shares one server. The schema is
created and migrated by Alembic when the store is opened (:mod:`memprog.store.migrate`).

Storing must not slow programming down: cells, traces and samples are written in
column batches (see :mod:`memprog.store.models`), committed when ``batch_cells`` cells are
waiting or ``flush_s`` seconds after the oldest unflushed one, and at the end of a run.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import queue
import re
import secrets
import socket
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, delete, event, func, insert, select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from memprog.core.errors import ConfigError, MemprogError
from memprog.core.processes import process_alive
from memprog.protocols.results import TuneResult
from memprog.store import migrate
from memprog.store.columnar import from_ipc, table_from_columns, to_ipc
from memprog.store.models import CellBatch, Event, Run, SampleBatch, TraceBatch
from memprog.store.urls import check_url, mask_url, scrub

RUN_STATUSES = ("running", "complete", "interrupted", "failed")
RUN_KINDS = ("tune", "array", "levels", "characterize", "program", "insitu", "train")
SAMPLE_TABLES = ("imprecision", "disturb", "stuck", "rtn", "range", "response", "noise", "relax")
TRACE_EVENTS = ("pulse", "read")

_RUN_COLUMNS = [
    "run_id",
    "kind",
    "bench",
    "chip_id",
    "technology",
    "protocol",
    "status",
    "started_at",
    "ended_at",
    "cells_done",
    "cells_total",
]


def run_alive_here(run: dict[str, Any]) -> bool:
    """Whether a ``running`` run's process still lives on this host (a resume of it now
    would pulse its cells twice). Runs of another host, or without a pid, are not judged."""
    pid = run.get("pid") or (run.get("params") or {}).get("pid")
    if run.get("status") != "running" or not pid or run.get("host") != socket.gethostname()[:128]:
        return False
    return int(pid) != os.getpid() and process_alive(int(pid))


class StoreError(MemprogError):
    """The database failed while a run was being stored (disk full, read-only, server gone).

    The message says which database (password masked) and the cause, in one line.
    """

    def __init__(self, url: str, action: str, cause: BaseException | str) -> None:
        self.url = mask_url(url)  # an exception never carries a password, not even in .url
        self.action = action
        self.cause = scrub(_one_line(cause), url)
        super().__init__(f"run store {mask_url(url)}: {action} failed: {self.cause}")


# ---------------------------------------------------------------------------------- URLs
def default_db_url() -> str:
    """``$MEMPROG_DB``, else an SQLite file in the user's data directory (platformdirs)."""
    env = os.environ.get("MEMPROG_DB", "").strip()
    if env:
        return env
    import platformdirs

    return f"sqlite:///{Path(platformdirs.user_data_dir('memprog')) / 'memprog.sqlite'}"


# mask_url (netloc password and query credentials hidden) lives in .urls, re-exported here


def _one_line(exc: BaseException | str) -> str:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _json(obj: Any) -> str:
    # strict (NaN/inf -> null): a stored summary is read back by the dashboard and scripts
    from memprog.core.jsonout import dumps

    return dumps(obj, fallback=_jsonable)


def _jsonable(x: object) -> object:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path | datetime):
        return str(x)
    if hasattr(x, "model_dump"):
        return x.model_dump()
    return repr(x)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.isoformat()


# ---------------------------------------------------------------------------------- open
def _sqlite_pragmas_ro(dbapi_conn: Any, _record: Any) -> None:
    """A reader's connection: wait for a writer's lock, change nothing in the file (no
    journal-mode switch: that rewrites the header and leaves -wal/-shm behind)."""
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA busy_timeout=30000")
    finally:
        cur.close()


def _sqlite_read_only_url(u: Any, p: Path) -> Any:
    """``file:<p>?mode=ro`` (a URI SQLite opens read-only: nothing in the file can change).

    A directory the reader cannot write also gets ``immutable=1``: SQLite then needs no
    ``-shm``/``-wal`` beside the file (it could not create them), so a store on a read-only
    share opens. The price: a WAL store's ``-wal`` is ignored, so commits not yet
    checkpointed into the file are not seen (a WAL store closed by its last writer has
    none). A writable directory keeps plain ``mode=ro``: a live WAL store is read fully.
    """
    q = {k: v for k, v in u.query.items() if k not in ("mode", "immutable", "uri")}
    q["mode"] = "ro"
    if not os.access(p.parent, os.W_OK) or not os.access(p, os.W_OK):
        q["immutable"] = "1"
    q["uri"] = "true"
    return u.set(database=p.resolve().as_uri(), query=q)  # file:///C:/... on Windows too


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        mode = cur.execute("PRAGMA journal_mode").fetchone()
        if mode and str(mode[0]).lower() != "wal":
            try:
                cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            except Exception:  # noqa: BLE001 - read-only files keep their journal mode
                pass
        cur.execute("PRAGMA synchronous=NORMAL")  # commits survive a killed process
    finally:
        cur.close()


def _make_engine(url: str, read_only: bool) -> Engine:
    masked = mask_url(url)
    check_url(url)  # an unescaped @ or / in the password: refused before a driver sees it
    try:
        u = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(
            "db",
            masked,
            "an SQLAlchemy URL (sqlite:///path/memprog.sqlite, postgresql+psycopg://user@host/db)",
            scrub(_one_line(exc), url),
        ) from None
    kwargs: dict[str, Any] = {}
    if u.get_backend_name() == "sqlite":
        db = u.database or ""
        if db and db != ":memory:" and not db.startswith("file:"):
            p = Path(db).expanduser()
            if read_only and not p.exists():
                raise ConfigError("db", masked, "an existing store (read-only access)", "no such file")
            if read_only:
                u = _sqlite_read_only_url(u, p)
            if not read_only:
                try:
                    p.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise ConfigError("db", masked, "", f"cannot create {p.parent}: {exc.strerror}") from None
    elif u.get_backend_name().startswith("postgresql"):
        if "connect_timeout" not in u.query:
            kwargs["connect_args"] = {"connect_timeout": 10}
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(u, **kwargs)
    except (NoSuchModuleError, ArgumentError, ImportError) as exc:
        raise ConfigError(
            "db",
            masked,
            "a database driver that is installed (sqlite, postgresql+psycopg)",
            scrub(_one_line(exc), url),
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas_ro if read_only else _sqlite_pragmas)
    return engine


def open_store(url: str | None = None, *, read_only: bool = False) -> Store:
    """Open (and create or migrate, unless ``read_only``) the store at ``url``.

    Args:
        url: any SQLAlchemy URL; None: :func:`default_db_url`.
        read_only: never create or change the schema (an older schema is refused with the
            command that migrates it).

    Raises:
        ConfigError: a malformed or unreachable URL (one line: the masked URL and the
            cause), a database whose schema is newer than this memprog (both revisions
            named), a database that holds other tables but no memprog store.
    """
    url = url or default_db_url()
    masked = mask_url(url)
    engine = _make_engine(url, read_only)
    if read_only:
        return _check_and_migrate(engine, url, masked, read_only)
    with _sqlite_schema_lock(engine):
        return _check_and_migrate(engine, url, masked, read_only)


@contextmanager
def _sqlite_schema_lock(engine: Any) -> Iterator[None]:
    """Serialise the schema check and migration of an SQLite file across processes.

    Why: SQLite runs Alembic's DDL outside one transaction, so a second process opening
    a new store at the same moment could see half the tables and take the file for a
    foreign database. A lock file beside the database (``<file>.lock``, removed again when
    the block ends: :mod:`.schema_lock`) orders them; on PostgreSQL the migration takes an
    advisory lock instead.
    """
    from memprog.store.schema_lock import exclusive_beside

    path = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if not path or path == ":memory:":
        yield
        return
    with exclusive_beside(path):
        yield


def _check_and_migrate(engine: Any, url: str, masked: str, read_only: bool) -> Store:
    try:
        rev, other_tables = migrate.schema_state(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise ConfigError("db", masked, "", f"cannot connect: {scrub(_one_line(exc), url)}") from None
    known = migrate.known_revisions()
    head = known[-1]
    if rev is not None and rev not in known:
        engine.dispose()
        raise ConfigError(
            "db schema revision",
            rev,
            f"<= {head} (this memprog understands revisions {', '.join(known)})",
            f"{masked} was written by a newer memprog; upgrade memprog to use it",
        )
    if rev is None and other_tables:
        engine.dispose()
        raise ConfigError("db", masked, "an empty database or a memprog store", "it holds other tables")
    if rev != head:
        if read_only:
            engine.dispose()
            what = "has no memprog store" if rev is None else f"has schema revision {rev}"
            raise ConfigError(
                "db schema revision",
                rev,
                head,
                f"{masked} {what}; run `memprog db upgrade --db URL` to migrate it",
            )
        try:
            migrate.upgrade(engine)
        except SQLAlchemyError as exc:
            # another process may have created the schema at the same moment (SQLite)
            try:
                now = migrate.schema_state(engine)[0]
            except SQLAlchemyError:
                now = None
            if now != head:
                engine.dispose()
                raise ConfigError(
                    "db", masked, "", f"schema migration {rev} -> {head} failed: {scrub(_one_line(exc), url)}"
                ) from None
    return Store(engine, url, read_only=read_only)


# ---------------------------------------------------------------------------------- store
def _bench_hash(path: str | Path | None) -> str | None:
    if path is None:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _operator() -> str | None:
    try:
        return getpass.getuser()[:64]
    except Exception:  # noqa: BLE001 - no login name in some containers
        return None


class Store:
    """A connection to the run store (see the module docstring). Use :func:`open_store`.

    Attributes:
        url: the database URL as given (use :func:`mask_url` before printing it).
    """

    def __init__(self, engine: Engine, url: str, *, read_only: bool = False) -> None:
        self.engine = engine
        self.url = url
        self.read_only = read_only
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
            "bench_hash": _bench_hash(bench_path),
            "chip_id": chip_id,
            "technology": technology,
            "protocol": protocol,
            "params": None if params is None else _json(params),
            "memprog_version": _version(),
            "status": "running",
            "started_at": _now(),
            "cells_total": cells_total,
            "cells_done": 0,
            "resumed_from": resumed_from,
            "operator": _operator(),
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
        values: dict[str, Any] = {"status": status, "ended_at": None if status == "running" else _now()}
        if summary is not None:
            values["summary"] = _json(summary)
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
            values = {"status": "interrupted", "ended_at": _now(), "summary": _json(summary)}
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

    def list_runs(
        self,
        *,
        kind: str | None = None,
        bench: str | None = None,
        chip_id: str | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Runs, newest first: run_id, kind, bench, chip_id, technology, protocol, status,
        started_at, ended_at, cells_done, cells_total."""
        q = select(*(getattr(Run, c) for c in _RUN_COLUMNS)).order_by(Run.started_at.desc())
        for col, val in (("kind", kind), ("bench", bench), ("chip_id", chip_id), ("status", status)):
            if val is not None:
                q = q.where(getattr(Run, col) == val)
        if limit is not None:
            q = q.limit(int(limit))
        rows = self._read("list runs", lambda c: c.execute(q).all())
        df = pd.DataFrame([tuple(r) for r in rows], columns=_RUN_COLUMNS)
        for c in ("started_at", "ended_at"):
            df[c] = pd.to_datetime(df[c], utc=True)
        return df

    def get_run(self, run_id: str) -> dict[str, Any]:
        """Every column of the run, ``params`` and ``summary`` as dicts, times as ISO strings."""
        r = self._require_run(run_id)
        out = dict(r)
        for k in ("params", "summary"):
            out[k] = json.loads(out[k]) if out[k] else {}
        for k in ("started_at", "ended_at"):
            out[k] = _iso(out[k])
        return out

    def count_runs(self) -> dict[str, int]:
        """Runs by status."""
        q = select(Run.status, func.count()).group_by(Run.status)
        return {s: int(n) for s, n in self._read("count runs", lambda c: c.execute(q).all())}

    # ------------------------------------------------------------------ data
    def cells(self, run_id: str) -> pd.DataFrame:
        """One row per stored cell (the latest record of each), in arrival order (``seq``)."""
        self._require_run(run_id)
        q = select(CellBatch.data).where(CellBatch.run_id == run_id).order_by(CellBatch.seq, CellBatch.id)
        blobs = [b for (b,) in self._read("read cells", lambda c: c.execute(q).all())]
        tb = from_ipc(blobs)
        if tb is None:
            return pd.DataFrame(
                {
                    "row": pd.Series(dtype="int64"),
                    "col": pd.Series(dtype="int64"),
                    "target_us": pd.Series(dtype=float),
                    "final_us": pd.Series(dtype=float),
                    "error_us": pd.Series(dtype=float),
                    "tolerance_us": pd.Series(dtype=float),
                    "pulses": pd.Series(dtype="int64"),
                    "reads": pd.Series(dtype="int64"),
                    "converged": pd.Series(dtype=bool),
                    "flags": pd.Series(dtype=str),
                    "seq": pd.Series(dtype="int64"),
                }
            )
        df = tb.to_pandas()
        key = ["row", "col"] + (["level"] if "level" in df.columns else [])
        df = df.drop_duplicates(subset=key, keep="last").sort_values("seq", kind="stable")
        return df.reset_index(drop=True)

    def cell_count(self, run_id: str) -> int:
        """Distinct cells stored for the run (what ``cells_done`` counts)."""
        return int(self._require_run(run_id)["cells_done"] or 0)

    def events(self, run_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        """The run's events in order; each is the dict the protocol sent plus ``seq``, ``t_s``."""
        self._require_run(run_id)
        q = select(Event.seq, Event.t_s, Event.data).where(Event.run_id == run_id)
        if kind is not None:
            q = q.where(Event.kind == kind)
        q = q.order_by(Event.seq)
        out = []
        for seq, t_s, data in self._read("read events", lambda c: c.execute(q).all()):
            d = json.loads(data)
            d.setdefault("seq", seq)
            d.setdefault("t_s", t_s)
            out.append(d)
        return out

    def traces(self, run_id: str, row: int | None = None, col: int | None = None) -> pd.DataFrame:
        """Pulse/read trace rows: record (index of the trace record), kind (``pulse``/``read``),
        row, col, amplitude_v, width_s, gate_v (pulses), g_us (reads), n_reads (how many
        reads a read record averages: a burst or an adaptive average is one record; 0 for
        pulses; NaN in traces stored before it was recorded); NaN where n/a."""
        self._require_run(run_id)
        q = select(TraceBatch.data).where(TraceBatch.run_id == run_id).order_by(TraceBatch.seq)
        tb = from_ipc(b for (b,) in self._read("read traces", lambda c: c.execute(q).all()))
        if tb is None:
            return pd.DataFrame(
                columns=["record", "kind", "row", "col", "amplitude_v", "width_s", "gate_v", "g_us", "n_reads"]
            )
        df = tb.to_pandas()
        if "n_reads" not in df:
            df["n_reads"] = np.nan
        if row is not None:
            df = df[df["row"] == row]
        if col is not None:
            df = df[df["col"] == col]
        return df.reset_index(drop=True)

    def samples(self, table: str, run_ids: list[str] | None = None) -> pd.DataFrame:
        """Raw characterisation samples of ``table`` (with a ``run_id`` column)."""
        if table not in SAMPLE_TABLES:
            raise ConfigError("table", table, f"one of {list(SAMPLE_TABLES)}")
        q = select(SampleBatch.run_id, SampleBatch.data).where(SampleBatch.table_name == table)
        if run_ids is not None:
            q = q.where(SampleBatch.run_id.in_(list(run_ids)))
        q = q.order_by(SampleBatch.id)
        frames = []
        for rid, blob in self._read("read samples", lambda c: c.execute(q).all()):
            df = from_ipc([blob]).to_pandas()  # type: ignore[union-attr]
            df.insert(0, "run_id", rid)
            frames.append(df)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def resume_result(self, run_id: str) -> TuneResult:
        """The run's finished cells as a :class:`TuneResult` (for ``ArrayJob(resume=...)``).

        Raises:
            ConfigError: unknown run, or a run with no finished cell.
        """
        run = self.get_run(run_id)
        df = self.cells(run_id)
        if df.empty:
            raise ConfigError("resume", run_id, "a run with at least one finished cell", "it has none")
        base = {"row", "col", "target_us", "final_us", "error_us", "tolerance_us", "pulses", "reads", "converged", "flags", "seq"}
        extra = {
            c: df[c].to_numpy()
            for c in df.columns
            if c not in base and pd.api.types.is_numeric_dtype(df[c])
        }
        return TuneResult(
            protocol=str(run.get("protocol") or "array"),
            rows=df["row"].to_numpy(),
            cols=df["col"].to_numpy(),
            target_us=df["target_us"].to_numpy(float),
            final_us=df["final_us"].to_numpy(float),
            pulses=df["pulses"].fillna(0).to_numpy().astype(np.int64),
            reads=df["reads"].fillna(0).to_numpy().astype(np.int64),
            converged=df["converged"].fillna(False).to_numpy().astype(bool),
            flags=df["flags"].fillna("").to_numpy(dtype=object),
            tolerance_us=df["tolerance_us"].to_numpy(float),
            extra=extra,
        )

    def resumed_by(self, run_id: str) -> str | None:
        """The run that resumed ``run_id`` (the first one started), or None.

        Why: a run is resumed once. Two resumes of the same interrupted run would each
        copy its cells and pulse the same unfinished cells again, leaving two "complete"
        runs for one chip state; the second must continue the first resume instead.
        """
        self._require_run(run_id)
        q = (
            select(Run.run_id)
            .where(Run.resumed_from == run_id)
            .order_by(Run.started_at, Run.run_id)
            .limit(1)
        )
        r = self._read("find the resuming run", lambda c: c.execute(q).first())
        return None if r is None else str(r[0])

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
            values["params"] = _json(params)
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
    def _require_run(self, run_id: str) -> Any:
        if not isinstance(run_id, str) or not re.fullmatch(r"[0-9a-f]{12}", run_id):
            raise ConfigError("run_id", run_id, "12 lowercase hex characters (see `memprog db runs`)")
        q = select(Run.__table__).where(Run.run_id == run_id)
        r = self._read("read run", lambda c: c.execute(q).first())
        if r is None:
            raise ConfigError("run_id", run_id, "a run in this store (see `memprog db runs`)", f"unknown in {mask_url(self.url)}")
        return r._mapping

    def _read(self, action: str, fn: Any) -> Any:
        try:
            with self.engine.connect() as c:
                return fn(c)
        except SQLAlchemyError as exc:
            raise StoreError(self.url, action, exc) from exc

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


def _concat_columns(parts: list[dict[str, Any]]) -> Any:
    """One Arrow table from column dicts (a column missing in a part is null there)."""
    if len(parts) == 1:
        return table_from_columns(parts[0])
    names = list(dict.fromkeys(k for p in parts for k in p))
    if all(len(p) == len(names) for p in parts):
        return table_from_columns({k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in names})
    import pyarrow as pa

    return pa.concat_tables([table_from_columns(p) for p in parts], promote_options="permissive")


def _cell_keys(tb: Any) -> np.ndarray:
    """One int per distinct stored cell (row, col, and the ladder level when present)."""
    names = tb.column_names if hasattr(tb, "column_names") else list(tb.columns)

    def col(name: str) -> np.ndarray:
        v = tb.column(name).to_numpy(zero_copy_only=False) if hasattr(tb, "column_names") else tb[name].to_numpy()
        return np.nan_to_num(np.asarray(v, dtype=float), nan=-1).astype(np.int64)

    key = col("row") * 1_000_003 + col("col")
    if "level" in names:
        key = key * 100_003 + col("level")
    return key


def _version() -> str:
    from memprog import __version__

    return __version__


# ---------------------------------------------------------------------------------- sink
class StoreSink:
    """An ``EventSink`` that writes a run's cells, events, traces and samples in batches.

    Cells arrive one at a time (:meth:`record_result`, a dict per cell) or as a whole
    :class:`TuneResult` (:meth:`record_results`, the cheap bulk path); both are buffered and
    committed together when ``batch_cells`` cells wait, ``flush_s`` seconds after the oldest
    waiting one, on :meth:`flush`, and at the end of the run. Events are JSON rows; the
    ``pulse``/``read`` trace records (only sent when ``wants_trace``) and ``samples`` records
    (characterisation) are stored as column batches.

    Args:
        store: the open store.
        run_id: the run to write into.
        trace: ask protocols for the per-iteration pulse/read records.
        batch_cells: cells buffered before a commit.
        flush_s: cells arriving within this time of the last commit are batched with the
            next ones (a kill -9 can lose at most the cells finished in that window; a caught
            signal loses nothing); a cell arriving later is committed at once.
        background: encode and commit batches in a writer thread; :meth:`flush` waits for
            it, and a failed commit is raised at the sink's next call. Off by default: on
            the map job it doubled the wall time (the writer's Python work and the
            protocol's numpy hand the GIL back and forth; a convoy), while the synchronous
            commits cost a few per cent.
    """

    def __init__(
        self,
        store: Store,
        run_id: str,
        *,
        trace: bool = False,
        batch_cells: int = 4096,
        flush_s: float = 0.2,
        background: bool = False,
    ) -> None:
        if batch_cells < 1:
            raise ConfigError("batch_cells", batch_cells, ">= 1")
        if not flush_s >= 0:
            raise ConfigError("flush_s", flush_s, ">= 0 s")
        self.store = store
        self.run_id = run_id
        self.wants_trace = bool(trace)
        self.background = bool(background)
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.batch_cells = int(batch_cells)
        self.flush_s = float(flush_s)
        self._t0 = time.perf_counter()
        self._rows: list[dict[str, Any]] = []
        self._cell_tables: list[Any] = []
        self._cell_cols: list[dict[str, Any]] = []
        self._cells_buffered = 0
        self._last_flush = time.perf_counter()
        self._events: list[dict[str, Any]] = []
        self._traces: list[dict[str, Any]] = []
        self._trace_rows = 0
        self._samples: dict[str, list[Any]] = {}
        self._event_seq = 0
        self._cell_seq = self._next_cell_seq()
        self._trace_seq = 0
        self._keys: set[int] = set()
        if store.cell_count(run_id):
            self._keys.update(_cell_keys(store.cells(run_id)).tolist())
        self.cells_written = 0

    # ------------------------------------------------------------------ EventSink
    def record_event(self, event: dict[str, Any]) -> None:
        """Buffer one event (trace and samples records go to their bulk tables)."""
        kind = str(event.get("event", ""))
        if kind in TRACE_EVENTS:
            if self.wants_trace:
                self._add_trace(kind, event)
            return
        if kind == "samples":
            self._add_samples(event)
            return
        self._events.append(
            {
                "run_id": self.run_id,
                "seq": self._event_seq,
                "kind": kind[:64],
                "t_s": time.perf_counter() - self._t0,
                "data": _json(event),
            }
        )
        self._event_seq += 1
        if kind in ("checkpoint", "array_end", "tune_end", "ladder_end"):
            self._flush(wait=False)
        else:
            self._maybe_flush()

    def record_result(self, row: dict[str, Any]) -> None:
        """Buffer one finished cell (a dict as ``TuneResult.row_dict`` gives)."""
        self._raise_pending()
        row = {k: v for k, v in row.items() if k != "protocol"}
        self._rows.append(row)
        self._cells_buffered += 1
        self._maybe_flush()

    def record_results(self, result: TuneResult) -> None:
        """Buffer every cell of ``result`` at once (arrays, no per-cell Python work)."""
        self._raise_pending()
        n = len(result)
        if n == 0:
            return
        cols: dict[str, Any] = {
            "row": result.rows,
            "col": result.cols,
            "target_us": result.target_us,
            "final_us": result.final_us,
            "error_us": result.final_us - result.target_us,
            "tolerance_us": result.tolerance_us,
            "pulses": result.pulses,
            "reads": result.reads,
            "converged": result.converged,
            "flags": result.flags,
        }
        for k, v in result.extra.items():
            if k not in cols:
                cols[k] = v
        self._cell_cols.append(cols)  # arrays: the Arrow table is built once, at the flush
        self._cells_buffered += n
        self._maybe_flush()

    # ------------------------------------------------------------------ buffering
    def _maybe_flush(self) -> None:
        # commit at once when the last commit is older than flush_s (a serial stack's cell
        # takes longer than that: every cell is committed as it finishes); otherwise wait
        # for more cells, up to batch_cells (a lock-step batch finishing many at a time)
        now = time.perf_counter()
        if (
            self._cells_buffered >= self.batch_cells
            or now - self._last_flush >= self.flush_s
            or self._trace_rows >= 1_000_000
        ):
            self._flush(wait=False)

    def _add_trace(self, kind: str, ev: dict[str, Any]) -> None:
        rows = np.atleast_1d(np.asarray(ev.get("rows", []), dtype=np.int32))
        n = rows.size
        rec = {"kind": kind, "n": n, "rows": rows, "cols": np.atleast_1d(np.asarray(ev.get("cols", []), dtype=np.int32))}
        for f in ("amplitude_v", "width_s", "gate_v", "g_us"):
            v = ev.get(f)
            rec[f] = None if v is None else np.broadcast_to(np.asarray(v, dtype=np.float64), (n,))
        # a read record may be the mean of several reads (a burst, an adaptive average)
        nr = ev.get("n_reads", 1) if kind == "read" else 0
        rec["n_reads"] = np.broadcast_to(np.asarray(nr, dtype=np.int32), (n,))
        self._traces.append(rec)
        self._trace_rows += n
        self._maybe_flush()

    def _add_samples(self, ev: dict[str, Any]) -> None:
        table = str(ev.get("table", ""))
        if table not in SAMPLE_TABLES:
            raise ConfigError("samples table", table, f"one of {list(SAMPLE_TABLES)}")
        cols = ev.get("columns") or {}
        if cols:
            self._samples.setdefault(table, []).append(table_from_columns(cols))
        self._maybe_flush()

    def _next_cell_seq(self) -> int:
        q = select(func.coalesce(func.max(CellBatch.seq + CellBatch.n_cells), 0)).where(
            CellBatch.run_id == self.run_id
        )
        return int(self.store._read("read cells", lambda c: c.execute(q).scalar()))

    def _trace_table(self, recs: list[dict[str, Any]], seq0: int) -> Any:
        import pyarrow as pa

        n = np.array([r["n"] for r in recs], dtype=np.int64)
        rec_idx = np.repeat(np.arange(seq0, seq0 + len(recs)), n)
        cols: dict[str, Any] = {
            "record": rec_idx,
            "kind": pa.DictionaryArray.from_arrays(
                np.repeat(np.array([0 if r["kind"] == "pulse" else 1 for r in recs], np.int8), n),
                pa.array(["pulse", "read"]),
            ),
            "row": np.concatenate([r["rows"] for r in recs]),
            "col": np.concatenate([r["cols"] for r in recs]),
        }
        for f in ("amplitude_v", "width_s", "gate_v", "g_us"):
            cols[f] = np.concatenate(
                [r[f] if r[f] is not None else np.full(r["n"], np.nan) for r in recs]
            )
        cols["n_reads"] = np.concatenate([r["n_reads"] for r in recs])
        return pa.table(cols)

    def flush(self) -> None:
        """Commit everything buffered, and wait until every earlier batch is committed.

        Raises:
            StoreError: the database failed (disk full, read-only, server gone), now or in
                an earlier background commit.
        """
        self._flush(wait=True)

    def close(self) -> None:
        """Commit what is buffered and stop the background writer."""
        try:
            self.flush()
        finally:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join(timeout=60)
                self._thread = None

    def _raise_pending(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def _flush(self, wait: bool) -> None:
        self._last_flush = time.perf_counter()
        self._raise_pending()
        payload = self._take()
        if payload is not None:
            if self.background:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._writer, name=f"memprog-store-{self.run_id}", daemon=True
                    )
                    self._thread.start()
                self._queue.put(payload)
            else:
                self._commit(payload)
        if wait and self._thread is not None:
            self._queue.join()
        self._raise_pending()

    def _writer(self) -> None:
        """Background thread: Arrow encoding and the database transaction of each batch."""
        while True:
            payload = self._queue.get()
            try:
                if payload is None:
                    return
                if self._error is None:
                    self._commit(payload)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                self._error = exc if isinstance(exc, MemprogError) else StoreError(
                    self.store.url, "store finished cells", exc
                )
            finally:
                self._queue.task_done()

    def _take(self) -> dict[str, Any] | None:
        """Move the buffers into one payload (main thread; cheap: no encoding here)."""
        if not (self._rows or self._cell_tables or self._cell_cols or self._events or self._traces or self._samples):
            return None
        n_cells = sum(len(next(iter(c.values()))) for c in self._cell_cols)
        n_cells += sum(t.num_rows for t in self._cell_tables) + len(self._rows)
        payload = {
            "cell_cols": self._cell_cols,
            "cell_tables": self._cell_tables,
            "rows": self._rows,
            "cell_seq": self._cell_seq,
            "n_cells": n_cells,
            "events": self._events,
            "traces": self._traces,
            "trace_seq": self._trace_seq,
            "samples": self._samples,
        }
        self._cell_seq += n_cells
        self._trace_seq += len(self._traces)
        self.cells_written += n_cells
        self._rows, self._cell_tables, self._cell_cols = [], [], []
        self._events, self._traces, self._samples = [], [], {}
        self._cells_buffered = 0
        self._trace_rows = 0
        return payload

    def _commit(self, pl: dict[str, Any]) -> None:
        """Encode one payload and write it in one transaction."""
        import pyarrow as pa

        cell_blob = None
        n_cells = pl["n_cells"]
        keys_before = len(self._keys)
        tables = list(pl["cell_tables"])
        if pl["cell_cols"]:
            tables.append(_concat_columns(pl["cell_cols"]))
        if pl["rows"]:
            tables.append(pa.Table.from_pylist(pl["rows"]))
        if tables:
            tb = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
            seq0 = pl["cell_seq"]
            tb = tb.append_column("seq", pa.array(np.arange(seq0, seq0 + tb.num_rows)))
            cell_blob = to_ipc(tb)
            self._keys.update(_cell_keys(tb).tolist())
        trace_blob = None
        n_trace = 0
        if pl["traces"]:
            ttb = self._trace_table(pl["traces"], pl["trace_seq"])
            n_trace = ttb.num_rows
            trace_blob = to_ipc(ttb)
        sample_rows = [
            {
                "run_id": self.run_id,
                "table_name": name,
                "n_rows": sum(t.num_rows for t in tabs),
                "data": to_ipc(pa.concat_tables(tabs, promote_options="permissive")),
            }
            for name, tabs in pl["samples"].items()
        ]
        new_keys = len(self._keys) - keys_before
        events = pl["events"]

        def go(conn: Any) -> None:
            if cell_blob is not None:
                conn.execute(
                    insert(CellBatch).values(
                        run_id=self.run_id, seq=pl["cell_seq"], n_cells=n_cells, data=cell_blob
                    )
                )
            if events:
                conn.execute(insert(Event), events)
            if trace_blob is not None:
                conn.execute(
                    insert(TraceBatch).values(
                        run_id=self.run_id, seq=pl["trace_seq"], n_rows=n_trace, data=trace_blob
                    )
                )
            if sample_rows:
                conn.execute(insert(SampleBatch), sample_rows)
            if new_keys:
                conn.execute(
                    update(Run).where(Run.run_id == self.run_id).values(cells_done=len(self._keys))
                )

        self.store._write("store finished cells", go)


# ---------------------------------------------------------------------------------- runs
@dataclass
class RunHandle:
    """What :func:`stored_run` yields: the run id, its sink, and how it should end."""

    store: Store
    run_id: str
    sink: StoreSink
    status: str = "complete"
    summary: dict[str, Any] = field(default_factory=dict)
    #: after the block: whether the run's final status reached the store
    finished: bool = False


@contextmanager
def stored_run(store: Store, *, trace: bool = False, quiet: bool = False, **start_run_kwargs: Any) -> Iterator[RunHandle]:
    """Start a run, yield a :class:`RunHandle`, end the run however the block ends.

    Prints ``memprog: run <id> started (db <masked url>)`` to stderr (unless ``quiet``).
    Normal exit: status ``complete`` (or the handle's ``status``). KeyboardInterrupt or
    :class:`memprog.core.signals.Interrupted`: the buffered cells are committed, the run is
    marked ``interrupted`` and the exception re-raised. Any other exception: ``failed``.
    """
    from memprog.core.signals import interrupt_signum, signal_name

    run_id = store.start_run(**start_run_kwargs)
    if not quiet:
        print(f"memprog: run {run_id} started (db {mask_url(store.url)})", file=sys.stderr, flush=True)
    handle = RunHandle(store, run_id, store.sink(run_id, trace=trace))
    try:
        yield handle
    except BaseException as exc:
        signum = interrupt_signum(exc)
        status = "interrupted" if signum is not None else "failed"
        summary = dict(handle.summary)
        summary.setdefault("error" if signum is None else "interrupted_by", signal_name(signum) if signum is not None else _one_line(exc))
        try:
            handle.sink.close()
        except BaseException:  # noqa: BLE001 - the original exception matters more
            pass
        try:
            store.finish_run(run_id, status, summary)
            handle.finished = True
        except BaseException:  # noqa: BLE001
            pass
        raise
    else:
        handle.sink.close()
        store.finish_run(run_id, handle.status, handle.summary)
        handle.finished = True


__all__ = [
    "RUN_KINDS",
    "RUN_STATUSES",
    "RunHandle",
    "Store",
    "StoreError",
    "StoreSink",
    "default_db_url",
    "mask_url",
    "open_store",
    "stored_run",
]
