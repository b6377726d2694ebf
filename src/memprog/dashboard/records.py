"""Store rows as JSON-ready records: run ids, clean values, progress, the one encoder.

Why a module of its own: every endpoint answers in the same JSON (numpy scalars as Python
numbers, NaN/inf as null, times as ISO 8601 UTC) and every run carries the same
``progress`` figures; the runs table computes them column-wise so that 1,000 runs polled
every second cost milliseconds. Nothing here reads the store: :mod:`.data` does, and hands
its frames and dicts to these functions.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from memprog.core.errors import MemprogError
from memprog.core.jsonout import dumps, sanitize

RUN_ID_RE = re.compile(r"[0-9a-f]{12}")


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
    """A JSON-ready copy of ``x`` (the one encoder, :mod:`memprog.core.jsonout`): numpy
    scalars to Python, NaN/inf and missing times to None, times to ISO 8601 in UTC, anything
    else as its text (a page must render whatever a run stored)."""
    return sanitize(x, fallback=str, utc=True)


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


def encode(obj: Any) -> bytes:
    """Compact, strict JSON of ``obj`` (numpy arrays allowed), NaN/inf as null: the
    project's one encoder (:func:`memprog.core.jsonout.dumps`)."""
    return dumps(obj, separators=(",", ":")).encode()


__all__ = [
    "NotFound",
    "StoreBusy",
    "check_run_id",
    "clean",
    "encode",
    "progress_of",
    "runs_records",
    "valid_run_id",
]
