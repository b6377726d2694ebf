"""What a run's figures show, computed from its stored cells: counts and the error
histogram, the row × column maps, the level ladder, the flag census.

Why a module of its own: these are pure functions of one cells frame (one snapshot of the
store, see :mod:`.data`), so the numbers a page draws can be checked without a server or
a store, and a map, its histogram and its counts always come from the same rows. Counts
use :mod:`memprog.reporting.outcome`, the CLI's own rule, so the page and the command
agree.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from memprog.dashboard.records import clean
from memprog.reporting.outcome import accuracy_outcome, frame_outcome, palette

HIST_BINS = 60
# the per-cell columns of a result row (Contract A); everything else is a protocol extra
CELL_COLUMNS = (
    "row", "col", "target_us", "final_us", "error_us", "tolerance_us",
    "pulses", "reads", "converged", "flags", "seq",
)  # fmt: skip


def cell_stats(
    cells: pd.DataFrame,
    tol_default: float | None = None,
    kind: str = "tune",
    summary: dict[str, Any] | None = None,
    complete: bool = True,
) -> dict[str, Any]:
    """Counts (from :func:`memprog.reporting.outcome.frame_outcome`, the CLI's function, on the
    stored final rows), error statistics and the error histogram of a run's cells.
    ``complete``: the run finished (a program run's rows are then the job's verified reads)."""
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
    o = frame_outcome(cells, kind, tol_default, reads_verified=complete) if n else None
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


def maps_of(run_id: str, cells: pd.DataFrame) -> dict[str, Any]:
    """Target, achieved and error grids over the cells' bounding box, and flagged cells
    (see :meth:`memprog.dashboard.data.DashboardData.maps`)."""
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


def ladder_of(run_id: str, run: dict[str, Any], cells: pd.DataFrame) -> dict[str, Any]:
    """A ``levels`` run: each level's target, achieved value, reads and tolerance band."""
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


def outcome_kind(run: dict[str, Any]) -> str:
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
    "CELL_COLUMNS",
    "cell_stats",
    "error_range_us",
    "flag_index",
    "ladder_of",
    "maps_of",
    "outcome_kind",
]
