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
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from memprog.core.errors import ConfigError, MemprogError
from memprog.core.jsonout import dumps
from memprog.reporting.outcome import accuracy_outcome, frame_outcome, palette

RUN_ID_RE = re.compile(r"[0-9a-f]{12}")
RUNS_LIMIT_MAX = 10_000
HIST_BINS = 60
CACHED_RUNS = 6
RUNS_PAGE = 200  # newest runs the table shows unless asked for more
CHOICES_TTL_S = 5.0
# the per-cell columns of a result row (Contract A); everything else is a protocol extra
CELL_COLUMNS = (
    "row", "col", "target_us", "final_us", "error_us", "tolerance_us",
    "pulses", "reads", "converged", "flags", "seq",
)  # fmt: skip

T = TypeVar("T")


class NotFound(MemprogError):
    """The requested run (or cell) is not in the store."""


class StoreBusy(MemprogError):
    """The store stayed locked by a writer for longer than the retry window."""


def valid_run_id(run_id: str) -> bool:
    """True when ``run_id`` has the store's form: 12 lowercase hexadecimal characters."""
    return isinstance(run_id, str) and RUN_ID_RE.fullmatch(run_id) is not None


def check_run_id(run_id: str) -> str:
    """``run_id`` unchanged, or :class:`NotFound` naming the allowed form."""
    if not valid_run_id(run_id):
        raise NotFound(
            f"run_id={run_id[:40]!r} is not a run id (allowed: 12 lowercase hex characters)"
        )
    return run_id


def clean(x: Any) -> Any:
    """A JSON-ready copy of ``x``: numpy scalars to Python, NaN/inf to None, times to ISO 8601."""
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return clean(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, pd.Timestamp):
        x = x.to_pydatetime()
    if isinstance(x, datetime):
        return _as_utc(x).isoformat()
    if x is None or isinstance(x, bool | int | str):
        return x
    if x is pd.NaT:
        return None
    return str(x)


def _as_utc(t: datetime) -> datetime:
    """Naive datetimes from the store are UTC (the store writes UTC)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _to_datetime(x: Any) -> datetime | None:
    if x is None or x is pd.NaT:
        return None
    if isinstance(x, pd.Timestamp):
        return None if pd.isna(x) else _as_utc(x.to_pydatetime())
    if isinstance(x, datetime):
        return _as_utc(x)
    if isinstance(x, str):
        try:
            return _as_utc(datetime.fromisoformat(x))
        except ValueError:
            return None
    return None


def progress_of(run: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """Progress of a run: done, total, fraction, elapsed seconds and mean cells per second."""
    done = int(run.get("cells_done") or 0)
    total = run.get("cells_total")
    total = int(total) if total is not None and not pd.isna(total) else None
    start = _to_datetime(run.get("started_at"))
    end = _to_datetime(run.get("ended_at"))
    if end is None and run.get("status") == "running":
        end = now or datetime.now(UTC)
    elapsed = (end - start).total_seconds() if start and end else None
    rate = done / elapsed if elapsed and elapsed > 0 else None
    frac = min(done / total, 1.0) if total else None
    return {
        "cells_done": done,
        "cells_total": total,
        "fraction": frac,
        "elapsed_s": elapsed,
        "cells_per_s": rate,
    }


def _iso_col(t: pd.Series) -> list[str | None]:
    t = pd.to_datetime(t, utc=True)
    iso = t.dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    return iso.where(t.notna(), None).tolist()


def runs_records(df: pd.DataFrame, now: datetime) -> list[dict[str, Any]]:
    """``list_runs`` rows as JSON-ready dicts with ``progress`` — column-wise, so 1,000 runs
    polled every second cost milliseconds (same figures as :func:`progress_of`)."""
    if not len(df):
        return []
    started = pd.to_datetime(df["started_at"], utc=True)
    ended = pd.to_datetime(df["ended_at"], utc=True)
    running = (df["status"] == "running").to_numpy()
    end = ended.where(~(running & ended.isna().to_numpy()), pd.Timestamp(now))
    elapsed = (end - started).dt.total_seconds().to_numpy(dtype=float)
    done = pd.to_numeric(df["cells_done"], errors="coerce").fillna(0).to_numpy(dtype=np.int64)
    total = pd.to_numeric(df["cells_total"], errors="coerce").to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(elapsed > 0, done / elapsed, np.nan)
        frac = np.where(total > 0, np.minimum(done / total, 1.0), np.nan)
    cols: dict[str, list[Any]] = {}
    for c in df.columns:
        if c in ("started_at", "ended_at"):
            cols[c] = _iso_col(df[c])
        elif c in ("cells_done", "cells_total"):
            continue
        else:
            v = df[c]
            cols[c] = v.astype(object).where(v.notna(), None).tolist()

    def num(x: float) -> float | None:
        return float(x) if np.isfinite(x) else None

    out = []
    names = list(cols)
    for i, values in enumerate(zip(*cols.values(), strict=True)):
        r = dict(zip(names, values, strict=True))
        t = None if np.isnan(total[i]) else int(total[i])
        r["cells_done"], r["cells_total"] = int(done[i]), t
        r["progress"] = {
            "cells_done": int(done[i]), "cells_total": t, "fraction": num(frac[i]),
            "elapsed_s": num(elapsed[i]), "cells_per_s": num(rate[i]),
        }  # fmt: skip
        out.append(r)
    return out


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

    # ---------------------------------------------------------------- plumbing
    def _default_variability(self, chip_id: str | None) -> Any:
        """A ``VariabilityDB`` over *this* read-only store (its constructor opens the store
        for writing, which the dashboard never does)."""
        import inspect

        from memprog.store import VariabilityDB

        if "store" in inspect.signature(VariabilityDB.__init__).parameters:
            return VariabilityDB(self.store.url, chip_id=chip_id, store=self.store)
        vdb = VariabilityDB.__new__(VariabilityDB)
        vdb.store, vdb.url, vdb.chip_id, vdb.technology = self.store, self.store.url, chip_id, None
        vdb._cache = {}
        return vdb

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
        from memprog.store import RUN_STATUSES

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
        }
        if "stats" not in derived:
            p, sm = run.get("params") or {}, run.get("summary") or {}
            derived["stats"] = clean(
                self._cell_stats(
                    cells, p.get("tolerance_us", sm.get("tolerance_us")), _outcome_kind(run), sm
                )
            )
        out.update(derived["stats"])
        out["palette"] = palette()
        return out

    @staticmethod
    def _cell_stats(
        cells: pd.DataFrame,
        tol_default: float | None = None,
        kind: str = "tune",
        summary: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Counts (from :func:`memprog.reporting.outcome.frame_outcome`, the CLI's function, on the
        stored final rows), error statistics and the error histogram."""
        n = len(cells)
        conv = (
            cells["converged"].astype(bool)
            if "converged" in cells and n
            else pd.Series([], dtype=bool)
        )
        err = _error_us(cells)
        tol = _float_col(cells, "tolerance_us")
        if (tol is None or not np.isfinite(tol).any()) and tol_default is not None:
            tol = np.full(n, float(tol_default))
        vmax = _float_col(cells, "verify_max_err_us")  # a ladder: every verification read counts
        counts = {w: int(idx.size) for w, idx in flag_index(cells).items()}
        fin = err[np.isfinite(err)] if err is not None else np.array([])
        rng = error_range_us(fin, tol)
        hist: dict[str, Any] = {"edges": [], "counts": [], "below": 0, "above": 0, "range_us": rng}
        if fin.size:
            bins = int(min(HIST_BINS, max(10, 2 * np.sqrt(fin.size))))
            c, e = np.histogram(fin, bins=bins, range=(-rng, rng))
            hist.update(edges=np.round(e, 4).tolist(), counts=c.tolist(),
                        below=int((fin < -rng).sum()), above=int((fin > rng).sum()))  # fmt: skip
        o = frame_outcome(cells, kind, tol_default) if n else None
        if o is not None and kind == "program":
            acc = ((summary or {}).get("outcome") or {}).get("accuracy")
            if acc:  # the test set ran in the job, not in the store: its figures, same rule
                o["accuracy"] = accuracy_outcome(acc["software"], acc["chip"], acc["tolerance"])
                o["ok"] = bool(o["pairs_failed"] == 0 and o["accuracy"]["ok"])
                o["exit_code"] = 0 if o["ok"] else 1
        return {
            "converged": o["converged"] if o is not None and o["converged"] is not None else int(conv.sum()),
            "within_tolerance": o["within_tolerance"]
            if o is not None and tol is not None
            else (0 if tol is not None else None),
            "outcome": o,
            "flag_counts": o["flags"] if o is not None else counts,
            "max_abs_error_us": float(np.abs(fin).max()) if fin.size else None,
            "mean_abs_error_us": float(np.abs(fin).mean()) if fin.size else None,
            "median_tolerance_us": float(np.nanmedian(tol)) if tol is not None and n else None,
            "max_verify_err_us": (
                float(np.nanmax(vmax))
                if vmax is not None and n and np.isfinite(vmax).any()
                else None
            ),  # fmt: skip
            "error_histogram": hist,
        }

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
            m = self._maps_of(run_id, cells)
            if encoding == "f32":
                for k in ("target_us", "final_us", "error_us"):
                    g = np.ascontiguousarray(m[k], dtype="<f4")
                    m[k] = base64.b64encode(g.tobytes()).decode("ascii")
                m["grid_encoding"] = "f32-base64"
                m["shape"] = [len(m["rows"]), len(m["cols"])]
            derived[slot] = encode(m)
        return derived[slot]

    @staticmethod
    def _maps_of(run_id: str, cells: pd.DataFrame) -> dict[str, Any]:
        empty = {"run_id": run_id, "cells": 0, "rows": [], "cols": [], "target_us": [],
                 "final_us": [], "error_us": [], "flags": {}}  # fmt: skip
        if not len(cells) or "row" not in cells or "col" not in cells:
            return empty
        if "level" in cells.columns:
            # a ladder visits one cell many times: keep the last level per cell on the map
            cells = cells.sort_values("level").drop_duplicates(["row", "col"], keep="last")
        r = cells["row"].to_numpy(dtype=np.int64)
        c = cells["col"].to_numpy(dtype=np.int64)
        r0, c0 = int(r.min()), int(c.min())
        nr, nc = int(r.max()) - r0 + 1, int(c.max()) - c0 + 1
        out: dict[str, Any] = {
            "run_id": run_id,
            "cells": len(cells),
            "rows": list(range(r0, r0 + nr)),
            "cols": list(range(c0, c0 + nc)),
        }
        err = _error_us(cells)
        out["error_range_us"] = error_range_us(
            err[np.isfinite(err)], _float_col(cells, "tolerance_us")
        )
        for name, values in (
            ("target_us", _float_col(cells, "target_us")),
            ("final_us", _float_col(cells, "final_us")),
            ("error_us", err),
        ):
            g = np.full((nr, nc), np.nan)
            if values is not None:
                g[r - r0, c - c0] = values
            out[name] = np.round(g, 3)  # NaN (no cell) becomes null in encode()
        out["flags"] = {
            w: [r[idx].tolist(), c[idx].tolist()] for w, idx in flag_index(cells).items()
        }
        out["palette"] = palette()  # one colour per flag (memprog.reporting.outcome), as the PNGs
        return out

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
        if not len(cells):
            return clean({"run_id": run_id, "levels": [], "target_us": [], "final_us": []})
        if "level" in cells.columns:
            cells = cells.sort_values("level")
            level = cells["level"].to_numpy()
        else:
            order = "seq" if "seq" in cells.columns else None
            cells = cells.sort_values(order) if order else cells
            level = np.arange(len(cells))
        target = _float_col(cells, "target_us")
        final = _float_col(cells, "final_us")
        tol = _float_col(cells, "tolerance_us")
        if tol is None or not np.isfinite(tol).any():
            t = (run.get("params") or {}).get("tolerance_us") or (run.get("summary") or {}).get(
                "tolerance_us"
            )
            tol = np.full(len(cells), float(t)) if t is not None else None
        out: dict[str, Any] = {
            "run_id": run_id,
            "levels": level,
            "target_us": target,
            "final_us": final,
            "tolerance_us": tol,
        }
        for extra in ("verify_mean_us", "verify_max_err_us", "pulses", "reads", "converged"):
            if extra in cells.columns:
                out[extra] = cells[extra].to_numpy()
        # individual verification reads, when the protocol stored them as a list column
        if "verify_reads_us" in cells.columns:
            out["verify_reads_us"] = [
                list(v) if v is not None else [] for v in cells["verify_reads_us"]
            ]
        err = final - target if final is not None and target is not None else None
        if "verify_max_err_us" in cells.columns and tol is not None:
            within = cells["verify_max_err_us"].to_numpy(dtype=float) <= tol
        elif err is not None and tol is not None:
            within = np.abs(err) <= tol
        else:
            within = None
        out["within"] = within
        out["levels_within_tolerance"] = int(np.sum(within)) if within is not None else None
        return clean(out)

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
        out: dict[str, Any] = {"chip_id": chip_id, "missing": {}}
        try:
            vdb = self._variability(chip_id)
        except MemprogError as exc:
            out["missing"]["all"] = str(exc)
            return out

        def table(name: str, fn: Callable[[], Any]) -> None:
            try:
                val = self._retry(fn)
            except MemprogError as exc:  # MissingDataError names the run that fills it
                out["missing"][name] = str(exc)
                return
            except (KeyError, ValueError, TypeError) as exc:  # samples of an unexpected shape
                out["missing"][name] = f"could not derive {name}: {type(exc).__name__}: {exc}"
                return
            if isinstance(val, pd.DataFrame):
                out[name] = {str(k): val[k].tolist() for k in val.columns}
            else:
                out[name] = val

        table("imprecision", vdb.imprecision)
        table("imprecision_fit", vdb.imprecision_fit)
        table("disturb", vdb.disturb)
        table("stuck", vdb.stuck)
        table("stuck_fractions", vdb.stuck_fractions)
        table("rtn", vdb.rtn)
        table("g_range_us", lambda: list(vdb.g_range_us()))
        if isinstance(out.get("disturb"), dict) and out["disturb"].get("later_writes"):
            d = pd.DataFrame(out["disturb"])
            s = d.groupby("later_writes")["delta_us"].agg(["mean", "std", "count"]).reset_index()
            out["disturb_by_writes"] = {str(k): s[k].tolist() for k in s.columns}
        return out


def encode(obj: Any) -> bytes:
    """Compact, strict JSON of ``obj`` (numpy arrays allowed), NaN/inf as null: the
    project's one encoder (:func:`memprog.core.jsonout.dumps`)."""
    return dumps(obj, separators=(",", ":")).encode()


def _outcome_kind(run: dict[str, Any]) -> str:
    """Which rule of :mod:`memprog.reporting.outcome` judges the run's cells."""
    k = str(run.get("kind") or "")
    return k if k in ("levels", "program") else "tune"


def flag_index(cells: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each flag word → the positions (in ``cells``) of the cells carrying it. Splits each
    distinct flag string once, not each cell's (65,536 cells carry a handful of distinct ones)."""
    if "flags" not in cells.columns or not len(cells):
        return {}
    codes, uniques = pd.factorize(cells["flags"].fillna("").astype(str), sort=True)
    out: dict[str, list[np.ndarray]] = {}
    for k, text in enumerate(uniques):
        words = [w for w in str(text).split(",") if w]
        if not words:
            continue
        idx = np.flatnonzero(codes == k)
        for w in words:
            out.setdefault(w, []).append(idx)
    return {w: np.sort(np.concatenate(parts)) for w, parts in sorted(out.items())}


def error_range_us(err: np.ndarray, tol: np.ndarray | None) -> float:
    """Half-width of the error colour scale and histogram: 4 tolerances (or the 99th
    percentile of |error| when no tolerance is known), shrunk to the largest error when all
    errors are smaller. Cells beyond it saturate the colour and are counted as outside the
    histogram — stuck cells 300 µS off must not flatten everything else to one colour."""
    if not err.size:
        return 1.0
    big = float(np.abs(err).max())
    t = float(np.nanmedian(tol)) if tol is not None and np.isfinite(tol).any() else None
    r = 4.0 * t if t else float(np.quantile(np.abs(err), 0.99))
    r = min(r, big) if big > 0 else 1.0
    if t:
        r = max(r, t)  # never narrower than the tolerance: in-band cells stay pale
    return float(r) if r > 0 else 1.0


def _is_bulky(v: object) -> bool:
    return hasattr(v, "__len__") and not isinstance(v, str | dict) and len(v) > 16  # type: ignore[arg-type]


def _isna(v: Any) -> bool:
    try:
        return v is None or (not isinstance(v, dict | list | str) and bool(pd.isna(v)))
    except (TypeError, ValueError):
        return False


def _float_col(cells: pd.DataFrame, name: str) -> np.ndarray | None:
    if name not in cells.columns:
        return None
    return pd.to_numeric(cells[name], errors="coerce").to_numpy(dtype=float)


def _error_us(cells: pd.DataFrame) -> np.ndarray:
    err = _float_col(cells, "error_us")
    if err is None or (len(err) and not np.isfinite(err).any()):
        f, t = _float_col(cells, "final_us"), _float_col(cells, "target_us")
        if f is not None and t is not None:
            return f - t
        return np.full(len(cells), np.nan)
    return err


__all__ = [
    "DashboardData",
    "NotFound",
    "StoreBusy",
    "check_run_id",
    "clean",
    "progress_of",
    "valid_run_id",
]
