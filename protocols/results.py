"""Per-cell results of a write-verify run, shared by every protocol.

One :class:`TuneResult` holds one row per cell (numpy arrays, all the same length), so a
65,536-cell run is a handful of arrays, converts to a pandas DataFrame in one call, and
several partial runs (batches, a resumed array job) concatenate with :meth:`TuneResult.concat`.

Flags explain every cell that did not converge (and notable facts about ones that did):
they are comma-separated words from :data:`FLAG_WORDS`; an empty string means nothing to
report.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FLAG_BUDGET = "pulse_budget"  # stopped: the pulse budget ran out before convergence
FLAG_STUCK = "stuck"  # stopped: pulses at the maximum amplitude did not move the cell
FLAG_LIMIT_CYCLE = "limit_cycle"  # the polarity kept flipping: steps larger than the band
FLAG_AT_CAP = "at_voltage_cap"  # the ramp reached its maximum amplitude at least once
FLAG_NOISY = "noisy"  # denoise: the read spread stayed above the allowed error
FLAG_RETRIES = "retry_budget"  # denoise/feedforward: the retry budget ran out
FLAG_DISTURBED = "retuned"  # array: the re-verify pass found the cell disturbed and re-tuned it
FLAG_SKIPPED = "skipped"  # array: the cell was excluded (known stuck, masked out)
FLAG_NO_MODEL = "no_model"  # feedforward: the characterisation could not fit the cell
FLAG_RELAXED = "relaxed"  # settle: out of band after settling, re-tuned
FLAG_DRIFTED = "drifted_out"  # settle: still out of band after the last settle

FLAG_WORDS = (
    FLAG_BUDGET,
    FLAG_STUCK,
    FLAG_LIMIT_CYCLE,
    FLAG_AT_CAP,
    FLAG_NOISY,
    FLAG_RETRIES,
    FLAG_DISTURBED,
    FLAG_SKIPPED,
    FLAG_NO_MODEL,
    FLAG_RELAXED,
    FLAG_DRIFTED,
)


def compose_flags(masks: dict[str, np.ndarray]) -> np.ndarray:
    """Flag strings from boolean masks keyed by flag word (``""`` where none is set)."""
    arrays = [(w, np.asarray(m, dtype=bool)) for w, m in masks.items()]
    n = arrays[0][1].size if arrays else 0
    out = np.full(n, "", dtype=object)
    anyf = np.zeros(n, dtype=bool)
    for _, m in arrays:
        anyf |= m
    for i in np.flatnonzero(anyf):
        out[i] = ",".join(w for w, m in arrays if m[i])
    return out


def add_flag(flags: np.ndarray, mask: np.ndarray, word: str) -> None:
    """Append ``word`` to the flags of the cells where ``mask`` is true (in place, no dupes)."""
    for i in np.flatnonzero(mask):
        cur = flags[i]
        if not cur:
            flags[i] = word
        elif word not in cur.split(","):
            flags[i] = f"{cur},{word}"


@dataclass
class TuneResult:
    """Outcome of tuning a batch of cells, one entry per cell in the order given.

    Attributes:
        protocol: which algorithm produced it (``alibart``, ``feedforward``, ``denoise``, ...).
        rows, cols: cell addresses (int).
        target_us: requested conductance.
        final_us: the protocol's best estimate of the final conductance: the mean of the
            accepting reads for converged cells, the last read otherwise.
        pulses: programming pulses applied to the cell (denoise pulses are in ``extra``).
        reads: reads of the cell.
        converged: the cell met the protocol's acceptance criterion.
        flags: comma-separated words (see the module docstring); ``""`` when none.
        tolerance_us: the acceptance half-band used for the cell (absolute, µS).
        extra: protocol-specific per-cell columns (e.g. ``denoise_pulses``, ``spread_us``).
        wall_s: wall-clock duration of the run.
        bench_time_s: time the bench spent (simulated clock on the simulator), if known.
        params: the protocol's parameters as a dict, for the record.
    """

    protocol: str
    rows: np.ndarray
    cols: np.ndarray
    target_us: np.ndarray
    final_us: np.ndarray
    pulses: np.ndarray
    reads: np.ndarray
    converged: np.ndarray
    flags: np.ndarray
    tolerance_us: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    wall_s: float = 0.0
    bench_time_s: float | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = np.asarray(self.rows).size
        self.rows = np.asarray(self.rows, dtype=np.int64).reshape(n)
        self.cols = np.asarray(self.cols, dtype=np.int64).reshape(n)
        for name in ("target_us", "final_us", "tolerance_us"):
            setattr(
                self, name, np.broadcast_to(np.asarray(getattr(self, name), float), (n,)).copy()
            )
        self.pulses = np.asarray(self.pulses, dtype=np.int64).reshape(n)
        self.reads = np.asarray(self.reads, dtype=np.int64).reshape(n)
        self.converged = np.asarray(self.converged, dtype=bool).reshape(n)
        self.flags = np.asarray(self.flags, dtype=object).reshape(n)
        for k, v in self.extra.items():
            self.extra[k] = np.asarray(v).reshape(n)

    # ------------------------------------------------------------------ derived columns
    def __len__(self) -> int:
        return int(self.rows.size)

    @property
    def error_us(self) -> np.ndarray:
        """final - target (µS)."""
        return self.final_us - self.target_us

    @property
    def rel_error(self) -> np.ndarray:
        """(final - target) / target."""
        return self.error_us / self.target_us

    @property
    def within_tolerance(self) -> np.ndarray:
        """|final - target| <= the cell's tolerance."""
        return np.abs(self.error_us) <= self.tolerance_us * (1 + 1e-9)

    def has_flag(self, word: str) -> np.ndarray:
        """Boolean mask of the cells carrying ``word`` in their flags."""
        return np.array([word in f.split(",") for f in self.flags], dtype=bool)

    # ------------------------------------------------------------------ views
    def row_dict(self, i: int) -> dict[str, Any]:
        """Cell ``i`` as a plain dict (what sinks receive)."""
        d: dict[str, Any] = {
            "protocol": self.protocol,
            "row": int(self.rows[i]),
            "col": int(self.cols[i]),
            "target_us": float(self.target_us[i]),
            "final_us": float(self.final_us[i]),
            "error_us": float(self.final_us[i] - self.target_us[i]),
            "tolerance_us": float(self.tolerance_us[i]),
            "pulses": int(self.pulses[i]),
            "reads": int(self.reads[i]),
            "converged": bool(self.converged[i]),
            "flags": str(self.flags[i]),
        }
        for k, v in self.extra.items():
            x = v[i]
            d[k] = x.item() if isinstance(x, np.generic) else x
        return d

    def to_frame(self) -> Any:
        """One row per cell: row, col, target_us, final_us, error_us, pulses, ..., extras."""
        import pandas as pd  # deferred: pandas (~0.4 s) loads only when a DataFrame is asked for

        cols: dict[str, Any] = {
            "row": self.rows,
            "col": self.cols,
            "target_us": self.target_us,
            "final_us": self.final_us,
            "error_us": self.error_us,
            "tolerance_us": self.tolerance_us,
            "pulses": self.pulses,
            "reads": self.reads,
            "converged": self.converged,
            "flags": self.flags.astype(str),
        }
        cols.update(self.extra)
        return pd.DataFrame(cols)

    def summary(self) -> dict[str, Any]:
        """Headline numbers of the run (JSON-ready plain types).

        ``tolerance_us_min``/``tolerance_us_max`` are the half-bands the cells were judged
        against (``within_tolerance`` counts against them; a relative band differs from cell
        to cell), ``tolerance_us`` the one they share (None when they differ). A numeric
        extra column's ``<name>_mean`` is over the cells that have a value (a stuck cell has
        no settled read: one NaN used to make the whole mean null), ``<name>_n`` how many.
        """
        n = len(self)
        err = np.abs(self.error_us)
        tol = self.tolerance_us[np.isfinite(self.tolerance_us)]
        tol_min = float(tol.min()) if tol.size else None
        tol_max = float(tol.max()) if tol.size else None
        flag_counts: dict[str, int] = {}
        # split each distinct flag string once (65,536 cells hold a handful of them)
        for f, k in Counter(np.asarray(self.flags).tolist()).items():
            for w in str(f).split(","):
                if w:
                    flag_counts[w] = flag_counts.get(w, 0) + k
        out: dict[str, Any] = {
            "protocol": self.protocol,
            "cells": n,
            "converged": int(self.converged.sum()),
            "converged_fraction": float(self.converged.mean()) if n else 0.0,
            "within_tolerance": int(self.within_tolerance.sum()),
            "within_tolerance_fraction": float(self.within_tolerance.mean()) if n else 0.0,
            "pulses_total": int(self.pulses.sum()),
            "pulses_mean": float(self.pulses.mean()) if n else 0.0,
            "pulses_max": int(self.pulses.max()) if n else 0,
            "reads_total": int(self.reads.sum()),
            "max_abs_error_us": float(err.max()) if n else 0.0,
            "mean_abs_error_us": float(err.mean()) if n else 0.0,
            "flags": flag_counts,
            "wall_s": float(self.wall_s),
            "bench_time_s": None if self.bench_time_s is None else float(self.bench_time_s),
            "tolerance_us": tol_min if tol_min == tol_max else None,
            "tolerance_us_min": tol_min,
            "tolerance_us_max": tol_max,
        }
        if n and self.converged.any():
            out["max_abs_error_converged_us"] = float(err[self.converged].max())
        for k, v in self.extra.items():
            a = np.asarray(v)
            if np.issubdtype(a.dtype, np.number) and n:
                has = a[np.isfinite(a)]
                out[f"{k}_mean"] = float(has.mean()) if has.size else None
                out[f"{k}_n"] = int(has.size)
        return out

    def subset(self, mask: np.ndarray) -> TuneResult:
        """A result with only the cells where ``mask`` is true (same run metadata)."""
        m = np.asarray(mask)
        return TuneResult(
            protocol=self.protocol,
            rows=self.rows[m],
            cols=self.cols[m],
            target_us=self.target_us[m],
            final_us=self.final_us[m],
            pulses=self.pulses[m],
            reads=self.reads[m],
            converged=self.converged[m],
            flags=self.flags[m],
            tolerance_us=self.tolerance_us[m],
            extra={k: v[m] for k, v in self.extra.items()},
            wall_s=self.wall_s,
            bench_time_s=self.bench_time_s,
            params=dict(self.params),
        )

    @classmethod
    def concat(cls, parts: list[TuneResult], protocol: str | None = None) -> TuneResult:
        """Join results of several batches; times add up, extras missing in a part are NaN."""
        if not parts:
            raise ValueError("concat needs at least one TuneResult")
        keys: list[str] = []
        for p in parts:
            keys += [k for k in p.extra if k not in keys]

        def col(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        extra = {}
        for k in keys:
            extra[k] = np.concatenate(
                [p.extra[k] if k in p.extra else np.full(len(p), np.nan) for p in parts]
            )
        bt = [p.bench_time_s for p in parts]
        return cls(
            protocol=protocol or parts[0].protocol,
            rows=col("rows"),
            cols=col("cols"),
            target_us=col("target_us"),
            final_us=col("final_us"),
            pulses=col("pulses"),
            reads=col("reads"),
            converged=col("converged"),
            flags=col("flags"),
            tolerance_us=col("tolerance_us"),
            extra=extra,
            wall_s=float(sum(p.wall_s for p in parts)),
            bench_time_s=None if any(b is None for b in bt) else float(sum(bt)),  # type: ignore[arg-type]
            params=dict(parts[0].params),
        )


__all__ = [
    "TuneResult",
    "add_flag",
    "compose_flags",
    "FLAG_WORDS",
    "FLAG_BUDGET",
    "FLAG_STUCK",
    "FLAG_LIMIT_CYCLE",
    "FLAG_AT_CAP",
    "FLAG_NOISY",
    "FLAG_RETRIES",
    "FLAG_DISTURBED",
    "FLAG_SKIPPED",
]
