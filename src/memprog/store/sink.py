"""The event sink protocols write a run into: finished cells, events, traces, samples.

Why it exists: a protocol knows nothing of databases; it sends its results through the
``EventSink`` seam of ``protocols/events.py``. :class:`StoreSink` is the store's side of
that seam, and storing must not slow programming down: cells, traces and samples are
buffered and written in column batches (see :mod:`memprog.store.models`), committed when
``batch_cells`` cells are waiting or ``flush_s`` seconds after the oldest unflushed one,
and at the end of a run.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from sqlalchemy import func, insert, select, update

from memprog.core.errors import ConfigError, MemprogError
from memprog.protocols.results import TuneResult
from memprog.store.columnar import table_from_columns, to_ipc
from memprog.store.errors import StoreError
from memprog.store.models import CellBatch, Event, Run, SampleBatch, TraceBatch
from memprog.store.records import SAMPLE_TABLES, TRACE_EVENTS, json_text

if TYPE_CHECKING:  # the store creates its sinks; a sink only calls back into it
    from memprog.store.runs import Store


def _concat_columns(parts: list[dict[str, Any]]) -> Any:
    """One Arrow table from column dicts (a column missing in a part is null there)."""
    if len(parts) == 1:
        return table_from_columns(parts[0])
    names = list(dict.fromkeys(k for p in parts for k in p))
    if all(len(p) == len(names) for p in parts):
        return table_from_columns({k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in names})
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
        self._event_seq = self._next_event_seq()  # a run continued by a new sink: after its events
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
                "data": json_text(event),
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

    def _next_event_seq(self) -> int:
        q = select(func.coalesce(func.max(Event.seq) + 1, 0)).where(Event.run_id == self.run_id)
        return int(self.store._read("read events", lambda c: c.execute(q).scalar()))

    def _next_cell_seq(self) -> int:
        q = select(func.coalesce(func.max(CellBatch.seq + CellBatch.n_cells), 0)).where(
            CellBatch.run_id == self.run_id
        )
        return int(self.store._read("read cells", lambda c: c.execute(q).scalar()))

    def _trace_table(self, recs: list[dict[str, Any]], seq0: int) -> Any:
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


__all__ = ["StoreSink"]
