"""The read side of a run store: which runs exist, and what each one holds.

Why a module of its own: readers (``memprog db``, the dashboard, the variability tables,
a resume) only ever need these queries, and they are where the store's layout is undone:
cells stored in Arrow column batches come back as one pandas frame with the latest record
of each cell, events as the dicts the protocol sent, traces and samples as frames. The
write side (:class:`memprog.store.runs.Store`) builds on this class.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from memprog.core.errors import ConfigError
from memprog.protocols.results import TuneResult
from memprog.store.columnar import from_ipc
from memprog.store.errors import StoreError
from memprog.store.models import CellBatch, Event, Run, SampleBatch, TraceBatch
from memprog.store.records import SAMPLE_TABLES, iso
from memprog.store.urls import mask_url

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


class StoreReader:
    """Queries over the runs of one database; :class:`memprog.store.runs.Store` adds writing.

    Attributes:
        engine: the SQLAlchemy engine (see :func:`memprog.store.open_store`).
        url: the database URL as given (use :func:`mask_url` before printing it).
        read_only: whether the store was opened for reading only.
    """

    def __init__(self, engine: Engine, url: str, *, read_only: bool = False) -> None:
        self.engine = engine
        self.url = url
        self.read_only = read_only

    # ------------------------------------------------------------------ runs
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
            out[k] = iso(out[k])
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


__all__ = ["StoreReader"]
