"""What the dashboard shows, as JSON-ready dicts: the one place that reads the run store.

Why a layer of its own: every page is a view of a JSON endpoint, and every endpoint is a
thin wrapper over one method here, so a script, a test and the browser all see the same
numbers. It only calls the public run-store API (:class:`memprog.store.Store`, opened
read-only; the store builds every query, parameterised) — never SQL, never the file system.

Consistency while a run is being written: each view is computed from *one* read of the
cells table (one ``SELECT``, hence one snapshot of committed rows), so a map, its
histogram and its counts always agree with each other even if the run advances between
two requests. A finished run never changes, so its cells and derived views are kept for
the next request (a few runs, keyed on status, cells done and end time). A store that is momentarily busy (a writer holding an SQLite lock) is
retried for up to ~2 s before the request is answered 503 — never a 500.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from memprog.core.errors import ConfigError
from memprog.dashboard.cell_figures import (
    CELL_COLUMNS,
    cell_stats,
    ladder_of,
    maps_of,
    outcome_kind,
)
from memprog.dashboard.fleet_view import (
    chip_run_ids,
    fleet_chip_count,
    fleet_link,
    fleet_of,
)
from memprog.dashboard.records import (
    NotFound,
    StoreBusy,
    check_run_id,
    clean,
    encode,
    progress_of,
    runs_records,
)
from memprog.dashboard.variability_view import variability_of
from memprog.reporting.outcome import palette
from memprog.store import RUN_STATUSES, VariabilityDB

RUNS_LIMIT_MAX = 10_000
CACHED_RUNS = 6
RUNS_PAGE = 200  # newest runs the table shows unless asked for more
CHOICES_TTL_S = 5.0
FLEET_SCAN = 64  # program runs examined beyond a fleet's chip count when looking for its chips
OWNERS_KEPT = 50_000

T = TypeVar("T")


class DashboardData:
    """The dashboard's read-only views of one run store.

    Args:
        store: an open :class:`memprog.store.Store` (opened with ``read_only=True``).
        variability: builds a ``VariabilityDB`` for a chip id (None: all chips); the default
            uses :class:`memprog.store.VariabilityDB` on the store's URL.
        busy_retry_s: how long a locked store is retried before :class:`StoreBusy`.
    """

    def __init__(
        self,
        store: Any,
        *,
        variability: Callable[[str | None], Any] | None = None,
        busy_retry_s: float = 2.0,
    ) -> None:
        self.store = store
        self._variability = variability or self._default_variability
        self.busy_retry_s = float(busy_retry_s)
        # finished runs never change: their cells and derived views are kept (a few runs)
        self._cache: OrderedDict[str, tuple[Any, pd.DataFrame, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self._every: tuple[float, pd.DataFrame] | None = None
        # program run -> (fleet run, chip index) or None: each run's params are read once
        self._owners: OrderedDict[str, tuple[str, int] | None] = OrderedDict()
        self._finished: OrderedDict[str, dict[str, Any]] = OrderedDict()  # finished runs' records

    # ---------------------------------------------------------------- plumbing
    def _default_variability(self, chip_id: str | None) -> Any:
        """A ``VariabilityDB`` over *this* read-only store (its constructor opens the store
        for writing, which the dashboard never does)."""
        return VariabilityDB(self.store.url, chip_id=chip_id, store=self.store)

    def _retry(self, fn: Callable[[], T]) -> T:
        """Call ``fn``; retry while the store reports it is locked (a writer mid-commit)."""
        deadline = time.monotonic() + self.busy_retry_s
        delay = 0.02
        while True:
            try:
                return fn()
            except ConfigError:
                raise
            except Exception as exc:  # StoreError wrapping sqlalchemy's OperationalError, ...
                text = str(exc).lower()
                if "locked" not in text and "busy" not in text:
                    raise
                if time.monotonic() > deadline:
                    raise StoreBusy("the store stayed locked by a writer; try again") from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    def _get_run(self, run_id: str) -> dict[str, Any]:
        check_run_id(run_id)
        try:
            return self._retry(lambda: self.store.get_run(run_id))
        except ConfigError as exc:
            raise NotFound(f"no run {run_id} in this store") from exc

    def require_run(self, run_id: str) -> dict[str, Any]:
        """The run's record, or :class:`NotFound` (malformed or unknown id)."""
        return self._get_run(run_id)

    def events(self, run_id: str, kind: str | None = None, limit: int = 200) -> dict[str, Any]:
        """The run's newest ``limit`` events; bulky array fields summarised by their length."""
        self._get_run(run_id)
        events = self._retry(lambda: self.store.events(run_id, kind=kind))
        out = [
            {k: (f"[{len(v)} values]" if _is_bulky(v) else v) for k, v in e.items()}
            for e in events[-int(limit) :]
        ]
        return clean({"run_id": run_id, "count": len(events), "events": out})

    def _snapshot(self, run_id: str) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
        """The run record, its cells (one read: one consistent snapshot) and a dict for
        views derived from them — shared between requests once the run has finished."""
        run = self._get_run(run_id)
        finished = run.get("status") != "running"
        key = (run.get("status"), run.get("cells_done"), run.get("ended_at"))
        if finished:
            with self._lock:
                hit = self._cache.get(run_id)
                if hit is not None and hit[0] == key:
                    self._cache.move_to_end(run_id)
                    return run, hit[1], hit[2]
        cells = self._cells(run_id)
        derived: dict[str, Any] = {}
        if finished:
            with self._lock:
                self._cache[run_id] = (key, cells, derived)
                while len(self._cache) > CACHED_RUNS:
                    self._cache.popitem(last=False)
        return run, cells, derived

    def _cells(self, run_id: str) -> pd.DataFrame:
        df = self._retry(lambda: self.store.cells(run_id))
        return df if df is not None else pd.DataFrame(columns=list(CELL_COLUMNS))

    # ---------------------------------------------------------------- runs
    def runs(
        self,
        *,
        kind: str | None = None,
        bench: str | None = None,
        chip_id: str | None = None,
        status: str | None = None,
        limit: int = RUNS_PAGE,
    ) -> dict[str, Any]:
        """The runs table (newest first) with progress, plus the filter choices.

        Returns ``{"runs": [...], "count": n, "limit": l, "total": N or None, "filters": {...},
        "choices": {...}, "now": iso}``;
        each run has the store's columns and ``progress`` (see :func:`progress_of`).
        """
        if status is not None and status not in RUN_STATUSES:
            raise ConfigError("status", status, ", ".join(RUN_STATUSES))
        if not 1 <= int(limit) <= RUNS_LIMIT_MAX:
            raise ConfigError("limit", limit, f"1 to {RUNS_LIMIT_MAX}")
        df = self._retry(
            lambda: self.store.list_runs(
                kind=kind or None,
                bench=bench or None,
                chip_id=chip_id or None,
                status=status or None,
                limit=int(limit),
            )
        )
        now = datetime.now(UTC)
        runs = runs_records(df, now)
        for r in runs:
            if r.get("kind") == "fleet":
                self._fleet_progress(r)
        if not any((kind, bench, chip_id, status)) and len(df) < int(limit):
            every = df  # the table already holds every run
        else:
            every = self._every_runs()
        choices = {
            c: sorted({str(v) for v in every[c].dropna().unique()}) if c in every else []
            for c in ("kind", "bench", "chip_id")
        }
        choices["status"] = list(RUN_STATUSES)
        total = None
        if hasattr(self.store, "count_runs") and not any((kind, bench, chip_id, status)):
            total = int(sum(self._retry(self.store.count_runs).values()))
        return {
            "runs": runs,
            "count": len(runs),
            "limit": int(limit),
            "total": total
            if total is not None
            else (len(runs) if len(runs) < int(limit) else None),
            "filters": {"kind": kind, "bench": bench, "chip_id": chip_id, "status": status},
            "choices": choices,
            "now": now.isoformat(),
        }

    def _every_runs(self) -> pd.DataFrame:
        """Every run (for the filter choices), re-read at most every few seconds."""
        with self._lock:
            hit = self._every
        if hit is not None and time.monotonic() - hit[0] < CHOICES_TTL_S:
            return hit[1]
        df = self._retry(lambda: self.store.list_runs(limit=RUNS_LIMIT_MAX))
        with self._lock:
            self._every = (time.monotonic(), df)
        return df

    # ---------------------------------------------------------------- one run
    def run(self, run_id: str) -> dict[str, Any]:
        """One run: its record, progress, counts, flag census and error histogram."""
        run, cells, derived = self._snapshot(run_id)
        out: dict[str, Any] = {
            "run": clean({k: v for k, v in run.items() if not _isna(v)}),
            "progress": clean(progress_of(run)),
            "cells_stored": len(cells),
            "is_ladder": run.get("kind") == "levels" or "level" in cells.columns,
            "columns": [str(c) for c in cells.columns],
            "fleet": fleet_link(run),  # a chip's program run links back to its fleet run
            "is_fleet": run.get("kind") == "fleet",
        }
        if "stats" not in derived:
            p, sm = run.get("params") or {}, run.get("summary") or {}
            derived["stats"] = clean(
                cell_stats(
                    cells, p.get("tolerance_us", sm.get("tolerance_us")), outcome_kind(run), sm,
                    complete=run.get("status") == "complete",
                )
            )
        out.update(derived["stats"])
        out["palette"] = palette()
        return out

    def maps(self, run_id: str) -> dict[str, Any]:
        """Target, achieved and error conductance as row × column grids, and flagged cells.

        Grids span the stored cells' bounding box (``rows``/``cols`` give the array
        indices); a cell not (yet) stored is None. ``flags`` maps each flag word to the
        ``[rows, cols]`` of the cells carrying it. Values rounded to 0.001 µS.
        """
        return json.loads(self.maps_json(run_id))

    def maps_json(self, run_id: str, encoding: str = "json") -> bytes:
        """:meth:`maps` as encoded JSON (what the endpoint sends; kept for finished runs).

        ``encoding="f32"``: the same document with each grid as base64 of little-endian
        float32, row-major, NaN where no cell (``"grid_encoding": "f32-base64"``) — what the
        page fetches: a 256×256 run's three grids encode in a millisecond instead of the
        ~0.2 s that 196,608 decimal numbers take."""
        if encoding not in ("json", "f32"):
            raise ConfigError("encoding", encoding, "json, f32")
        run, cells, derived = self._snapshot(run_id)
        slot = f"maps_{encoding}"
        if slot not in derived:
            m = maps_of(run_id, cells)
            if encoding == "f32":
                for k in ("target_us", "final_us", "error_us"):
                    g = np.ascontiguousarray(m[k], dtype="<f4")
                    m[k] = base64.b64encode(g.tobytes()).decode("ascii")
                m["grid_encoding"] = "f32-base64"
                m["shape"] = [len(m["rows"]), len(m["cols"])]
            derived[slot] = encode(m)
        return derived[slot]

    def cell(self, run_id: str, row: int, col: int) -> dict[str, Any]:
        """One cell's stored result(s) and its pulse/read trace (empty when not traced)."""
        _, cells, _ = self._snapshot(run_id)
        mine = cells[(cells["row"] == row) & (cells["col"] == col)] if len(cells) else cells
        if not len(mine):
            raise NotFound(f"run {run_id} has no result for cell ({row}, {col})")
        try:
            tr = self._retry(lambda: self.store.traces(run_id, row=row, col=col))
        except ConfigError:
            tr = pd.DataFrame()
        tr = tr if tr is not None else pd.DataFrame()
        records = mine.to_dict("records")
        return clean(
            {
                "run_id": run_id,
                "row": row,
                "col": col,
                "results": records,
                "trace": {str(k): tr[k].tolist() for k in tr.columns},
                "trace_points": len(tr),
            }
        )

    def ladder(self, run_id: str) -> dict[str, Any]:
        """A ``levels`` run: each level's target, achieved value, reads and tolerance band."""
        run, cells, _ = self._snapshot(run_id)
        return ladder_of(run_id, run, cells)

    # ---------------------------------------------------------------- fleets
    def fleet(self, run_id: str) -> dict[str, Any]:
        """A ``fleet`` run: one row per chip (linking its program run), the totals, and for
        a yield study the histogram of chip accuracies (see :mod:`.fleet_view`)."""
        run = self._get_run(run_id)
        if run.get("kind") != "fleet":
            raise NotFound(f"run {run_id} is a {run.get('kind')} run, not a fleet run")
        events = self._retry(lambda: self.store.events(run_id, kind="worker_lost"))
        return fleet_of(run, self._fleet_children(run, with_summary=True), events)

    def _fleet_progress(self, r: dict[str, Any]) -> None:
        """A fleet row of the runs table: the fleet stores no cells, so its cells column
        shows its chips' (their runs' progress; a complete fleet's reported total)."""
        key = (r.get("status"), r.get("ended_at"))
        with self._lock:
            hit = self._finished.get("fleet-cells:" + r["run_id"])
        if hit is not None and hit["key"] == key:
            done, total, n = hit["done"], hit["total"], hit["n"]
        else:
            run = self._get_run(r["run_id"])
            rep = (run.get("summary") or {}).get("chips") or []
            if rep and all(isinstance(c, dict) and c.get("cells_total") is not None for c in rep):
                done = total = int(sum(int(c["cells_total"]) for c in rep))
            else:
                kids = self._fleet_children(run, with_summary=False).values()
                done = int(sum(int(k.get("cells_done") or 0) for k in kids))
                t = [k.get("cells_total") for k in kids]
                total = int(sum(t)) if t and all(_known(x) for x in t) else None
            n = fleet_chip_count(run)
            if r.get("status") != "running":
                self._keep(
                    "fleet-cells:" + r["run_id"], {"key": key, "done": done, "total": total, "n": n}
                )
        r["cells_done"], r["cells_total"] = done, total
        r["progress"] = clean(progress_of(r))
        r["fleet_chips"] = n  # the cells column counts these chips' cells

    def _fleet_children(
        self, run: dict[str, Any], *, with_summary: bool
    ) -> dict[int, dict[str, Any]]:
        """chip index → its program run's record (the runs table's columns; ``params`` and
        ``summary`` too when ``with_summary`` and the run has finished).

        A complete fleet names its chips' runs in its summary; a running or failed one is
        matched by reading the params of the program runs started after it (they are
        created together, before the first pulse), each run's params read once."""
        fid, n = run["run_id"], fleet_chip_count(run)
        programs = self._retry(lambda: self.store.list_runs(kind="program", limit=RUNS_LIMIT_MAX))
        ids = chip_run_ids(run)
        if len(ids) < n and len(programs):
            start = pd.to_datetime(run.get("started_at"), utc=True)
            t = pd.to_datetime(programs["started_at"], utc=True)
            later = programs[(t >= start).to_numpy()].sort_values("started_at")
            for rid in later["run_id"].head(n + FLEET_SCAN):
                owner = self._owner(str(rid))
                if owner is not None and owner[0] == fid:
                    ids.setdefault(owner[1], str(rid))
                if len(ids) >= n:
                    break
        rows = {str(x["run_id"]): x for x in programs.to_dict("records")} if len(programs) else {}
        out: dict[int, dict[str, Any]] = {}
        for i, rid in ids.items():
            rec = rows.get(rid)
            if rec is None:  # beyond the listing: read it alone
                try:
                    rec = self._get_run(rid)
                except NotFound:
                    continue
            rec = {k: v for k, v in rec.items() if not _isna(v)}
            if with_summary and rec.get("status") != "running":
                rec.update(self._finished_run(rid))
            out[i] = rec
        return out

    def _owner(self, run_id: str) -> tuple[str, int] | None:
        """(fleet run, chip index) of a program run, from its params (read once)."""
        with self._lock:
            if run_id in self._owners:
                return self._owners[run_id]
        link = fleet_link(self._retry(lambda: self.store.get_run(run_id)))
        owner = None
        if link is not None and link.get("chip_index") is not None:
            owner = (str(link["fleet_run_id"]), int(link["chip_index"]))
        with self._lock:
            self._owners[run_id] = owner
            while len(self._owners) > OWNERS_KEPT:
                self._owners.popitem(last=False)
        return owner

    def _finished_run(self, run_id: str) -> dict[str, Any]:
        """A finished chip run's summary and name, kept (a finished run never changes; its
        params, which repeat the whole fleet's, are not)."""
        with self._lock:
            hit = self._finished.get(run_id)
        if hit is None:
            full = self._get_run(run_id)
            p = full.get("params") or {}
            hit = {"summary": full.get("summary") or {},
                   "params": {k: p.get(k) for k in ("chip_name", "chip_index")}}  # fmt: skip
            if full.get("status") != "running":
                self._keep(run_id, hit)
        return hit

    def _keep(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._finished[key] = value
            while len(self._finished) > OWNERS_KEPT // 10:
                self._finished.popitem(last=False)

    # ---------------------------------------------------------------- variability
    def variability(self, chip_id: str | None = None) -> dict[str, Any]:
        """The variability tables as plot-ready columns, per chip, plus the chips available."""
        chips = self.chips()
        if chip_id is not None and chip_id not in chips:
            raise NotFound(f"no characterisation of chip {chip_id!r} in this store")
        wanted: list[str | None] = [chip_id] if chip_id is not None else (list(chips) or [None])
        per_chip = {str(c): self._variability_of(c) for c in wanted}
        return clean({"chips": chips, "chip_id": chip_id, "per_chip": per_chip})

    def chips(self) -> list[str]:
        """Chip ids with at least one stored characterisation run."""
        df = self._retry(lambda: self.store.list_runs(kind="characterize", limit=RUNS_LIMIT_MAX))
        if not len(df) or "chip_id" not in df:
            return []
        return sorted({str(v) for v in df["chip_id"].dropna().unique()})

    def _variability_of(self, chip_id: str | None) -> dict[str, Any]:
        return variability_of(self._variability, self._retry, chip_id)


def _is_bulky(v: object) -> bool:
    return hasattr(v, "__len__") and not isinstance(v, str | dict) and len(v) > 16  # type: ignore[arg-type]


def _known(v: Any) -> bool:
    return v is not None and not _isna(v)


def _isna(v: Any) -> bool:
    try:
        return v is None or (not isinstance(v, dict | list | str) and bool(pd.isna(v)))
    except (TypeError, ValueError):
        return False


__all__ = ["DashboardData"]
