"""Input checks and small helpers shared by every write-verify protocol.

Everything here runs before the first pulse: a bad target, cell or tolerance must fail
with a :class:`~memprog.core.errors.ConfigError` while the chip is still untouched.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
from tqdm import tqdm

from memprog.core.errors import ConfigError
from memprog.core.validation import require_finite
from memprog.protocols.programmer import CellProgrammer


def check_cells(
    programmer: CellProgrammer, rows: object, cols: object
) -> tuple[np.ndarray, np.ndarray]:
    """Equal-length int64 arrays of distinct cells inside the programmer's array."""
    info = programmer.info
    out = []
    for name, value, n in (("rows", rows, info.rows), ("cols", cols, info.cols)):
        a = np.atleast_1d(np.asarray(value))
        if a.dtype.kind not in "iu":
            if a.dtype.kind != "f" or (a.size and not np.all(np.mod(a, 1) == 0)):
                raise ConfigError(name, a.ravel()[0] if a.size else value, "integer cell indices")
        a = a.astype(np.int64).ravel()
        if a.size and (a.min() < 0 or a.max() >= n):
            bad = a[(a < 0) | (a >= n)][0]
            raise ConfigError(name, int(bad), f"[0, {n - 1}]")
        out.append(a)
    r, c = out
    if r.size != c.size:
        if r.size == 1:
            r = np.full(c.size, r[0])
        elif c.size == 1:
            c = np.full(r.size, c[0])
        else:
            raise ConfigError("rows/cols", (r.size, c.size), "equal lengths")
    if r.size == 0:
        raise ConfigError("rows/cols", 0, ">= 1 cell")
    flat = r * info.cols + c
    uniq, counts = np.unique(flat, return_counts=True)
    if uniq.size != flat.size:
        dup = uniq[counts > 1][0]
        raise ConfigError(
            "rows/cols", divmod(int(dup), info.cols), "each cell at most once per run"
        )
    return r, c


def target_range_us(programmer: CellProgrammer) -> tuple[float, float]:
    """Conductances a target may take: the technology's range within the safety limits."""
    lo, hi = programmer.info.g_range_us
    lim = programmer.limits
    return max(float(lo), float(lim.conductance_min_us)), min(
        float(hi), float(lim.conductance_max_us)
    )


def check_targets(programmer: CellProgrammer, targets_us: object, n: int) -> np.ndarray:
    """Targets as a float array of length ``n``, each inside :func:`target_range_us`."""
    t = np.atleast_1d(require_finite("targets_us", targets_us)).ravel()
    if t.size == 1 and n != 1:
        t = np.full(n, float(t[0]))
    if t.size != n:
        raise ConfigError("targets_us", f"{t.size} values", f"one per cell ({n}) or a scalar")
    lo, hi = target_range_us(programmer)
    bad = (t < lo) | (t > hi)
    if bad.any():
        raise ConfigError(
            "targets_us",
            float(t[bad][0]),
            f"[{lo:g}, {hi:g}] µS ({programmer.info.technology or 'chip'} range)",
        )
    return t.astype(float)


def check_amplitudes(
    programmer: CellProgrammer, set_max_v: float, reset_max_v: float, width_s: float
) -> None:
    """ConfigError (before any pulse) when a ramp could end outside the safety limits."""
    lim = programmer.limits
    if set_max_v > lim.set_v_max:
        raise ConfigError("set_max_v", set_max_v, f"<= the bench's set_v_max ({lim.set_v_max} V)")
    if reset_max_v > lim.reset_v_max:
        raise ConfigError(
            "reset_max_v", reset_max_v, f"<= the bench's reset_v_max ({lim.reset_v_max} V)"
        )
    if not lim.width_s_min <= width_s <= lim.width_s_max:
        raise ConfigError(
            "width_s", width_s, f"[{lim.width_s_min:g}, {lim.width_s_max:g}] s (bench limits)"
        )


def check_read_v(programmer: CellProgrammer, read_v: float | None) -> float:
    """The read voltage to use (programmer default if None), checked against the limits."""
    v = programmer.info.read_v if read_v is None else float(read_v)
    if not 0 < abs(v) <= programmer.limits.read_v_max:
        raise ConfigError(
            "read_v", v, f"0 < |read_v| <= {programmer.limits.read_v_max} V (bench limits)"
        )
    return v


class Clock:
    """Wall time and bench time of a run (bench time when the programmer exposes a clock)."""

    def __init__(self, programmer: CellProgrammer) -> None:
        self.programmer = programmer
        self.t0 = time.perf_counter()
        self.b0 = bench_clock(programmer)

    @property
    def wall_s(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self.t0

    @property
    def bench_s(self) -> float | None:
        """Bench seconds since the run started, or None when the programmer has no clock."""
        b = bench_clock(self.programmer)
        return None if b is None or self.b0 is None else b - self.b0


def bench_clock(programmer: CellProgrammer) -> float | None:
    """The programmer's bench clock (``bench_time_s`` attribute), or None."""
    v = getattr(programmer, "bench_time_s", None)
    if callable(v):
        v = v()
    return None if v is None else float(v)


class Progress:
    """A tqdm bar on stderr counting finished cells; does nothing when disabled."""

    def __init__(self, enabled: bool, total: int, desc: str) -> None:
        self._bar: Any = None
        if enabled:
            self._bar = tqdm(total=total, desc=desc, unit="cell", file=sys.stderr, leave=False)

    def update(self, n: int) -> None:
        """Count ``n`` more finished cells."""
        if self._bar is not None and n:
            self._bar.update(int(n))

    def finish(self) -> None:
        """Fill the bar: the work is done even where fewer cells qualified than planned."""
        if self._bar is not None and self._bar.total is not None:
            self._bar.update(max(int(self._bar.total) - int(self._bar.n), 0))
            self._bar.refresh()  # drawn at 100 % even within tqdm's redraw interval

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def gate_for_conductance(
    g_us: np.ndarray, g_range_us: tuple[float, float], gate_v_min: float, gate_v_max: float
) -> np.ndarray:
    """Gate voltage whose nominal SET compliance is ``g_us`` (linear over the range)."""
    lo, hi = g_range_us
    frac = (np.asarray(g_us, float) - lo) / (hi - lo)
    return gate_v_min + np.clip(frac, 0.0, 1.0) * (gate_v_max - gate_v_min)


__all__ = [
    "check_cells",
    "check_targets",
    "check_amplitudes",
    "check_read_v",
    "target_range_us",
    "Clock",
    "bench_clock",
    "Progress",
    "gate_for_conductance",
]
