"""A settle time chosen from the chip's own measured relaxation, per programmed step.

Why: the settle before a level's verification (:mod:`~memprog.protocols.settle`) exists
because part of what the last pulses moved relaxes back; its default (5 s per technology)
is a [choice] for a chip nobody has measured. ``memprog characterize`` measures it (its
``relax`` table: one switching pulse, reads at delays 0-10 s, procedure 7 of
:mod:`~memprog.protocols.characterize_twin`). A lab that has that table can ask how long
*this* step needs, instead of waiting the worst case every time.

The argument, written down (every number comes from the table or is a named [choice]):

1. **Law.** After a switching step ``S`` the state moves by ``r (1 - exp(-t / tau))``; the
   volatile part ``r`` is a fraction of the step. :func:`fit_relax_samples` fits one
   ``tau`` for the chip and ``f = r / S`` per measured step (least squares, as the twin's
   fit does), so it needs only reads, never a simulator parameter.
2. **Amplitude.** A write-verify level is many pulses; each leaves ``f_i dS_i``. Their sum
   is at most ``(|mean f| + K_SIGMA * std f) * M`` for nearly every level, ``M`` the gross
   movement of the level (sum of ``|dG|`` between the tuner's own reads): the signed mean
   part is at most ``|mean f| * M`` and the random part's spread at most ``std f * M``.
   Using the gross movement, not the net step, matters: a tuner that overshoots and comes
   back moved the filament twice.
3. **Budget.** What is still unrelaxed when the verification reads is what the level moves
   after it was accepted. It is held to :data:`BUDGET_FRACTION` of the tolerance: the
   resolution the settle's own verification averages to (``adaptive_read``'s SEM target,
   a quarter of the tolerance); a remainder below it is below what the verification
   resolves anyway.
4. **Settle.** ``tau * ln(A / budget)`` for an amplitude ``A`` above the budget, else 0.

What this does NOT claim: that the law holds for steps far smaller than the ones measured
(the relax table's steps are a full SET or RESET, mS); the ladder's validation levels
(wait the technology's full settle more, read again) are the check, and their figure is
reported beside the bench time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from memprog.core.errors import ConfigError

# [choice] three standard deviations of the measured fraction: 99.7 % of normal draws
K_SIGMA = 3.0
# [choice] the unrelaxed remainder allowed at the verification, as a fraction of the
# tolerance: the settle's own verification averages to a quarter of it (settle.py)
BUDGET_FRACTION = 0.25
# [choice] fewest measured steps a fit is believed from (a mean and a spread of the fraction)
MIN_SERIES = 4
# [choice] a measured step smaller than this part of the median step is too small to
# divide the relaxation by (its fraction is read noise over a small number)
MIN_STEP_OF_MEDIAN = 0.05

_COLUMNS = ("row", "col", "cycle", "delay_s", "g_before_us", "g_us")


@dataclass(frozen=True)
class RelaxFit:
    """The chip's relaxation as measured: ``tau_s`` and the volatile fraction of a step."""

    tau_s: float
    frac_mean: float  # signed mean of r / S (negative: the state relaxes back)
    frac_std: float
    n_series: int
    max_delay_s: float

    @property
    def frac_bound(self) -> float:
        """|mean| + K_SIGMA * std of the fraction: the amplitude per µS moved (step 2)."""
        return abs(self.frac_mean) + K_SIGMA * self.frac_std

    def settle_for_movement(self, movement_us: float | np.ndarray, budget_us: float) -> np.ndarray:
        """Settle (s) after a level that moved the cell ``movement_us`` in all (step 4)."""
        if not np.isfinite(budget_us) or budget_us <= 0:
            raise ConfigError("budget_us", budget_us, "> 0 µS")
        m = np.asarray(movement_us, dtype=float)
        if np.any(~np.isfinite(m)) or np.any(m < 0):
            raise ConfigError("movement_us", movement_us, "finite µS >= 0")
        amp = self.frac_bound * m
        with np.errstate(divide="ignore"):
            return np.where(
                amp > budget_us, self.tau_s * np.log(np.maximum(amp, budget_us) / budget_us), 0.0
            )

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the fit and the amplitude bound it implies."""
        return {
            "tau_s": self.tau_s, "frac_mean": self.frac_mean, "frac_std": self.frac_std,
            "frac_bound": self.frac_bound, "k_sigma": K_SIGMA, "n_series": self.n_series,
            "max_delay_s": self.max_delay_s, "budget_fraction_of_tolerance": BUDGET_FRACTION,
        }  # fmt: skip


@dataclass(frozen=True)
class RelaxSeries:
    """The relax table as one row per measured step (row, col, cycle), delays ascending,
    padded to one width: ``tt`` (s since the first read), ``dg`` (µS since it), ``use``
    (a real read, not padding), ``step`` (what the pulse moved the cell: the first read
    minus the read before the pulse), ``g0`` (the first read)."""

    tt: np.ndarray
    dg: np.ndarray
    use: np.ndarray
    step: np.ndarray
    g0: np.ndarray

    def subset(self, k: np.ndarray) -> RelaxSeries:
        """The series ``k`` (indices or a mask), e.g. a bootstrap resample."""
        return RelaxSeries(self.tt[k], self.dg[k], self.use[k], self.step[k], self.g0[k])


def relax_series(samples: Any) -> RelaxSeries:
    """:class:`RelaxSeries` of the relax table's columns (a mapping or a DataFrame); steps
    read at fewer than 3 delays are left out. ConfigError when a column is missing."""
    try:
        cols = {c: np.asarray(samples[c], dtype=float) for c in _COLUMNS}
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            "relax samples", "columns", f"numeric columns {list(_COLUMNS)}", str(exc)
        ) from exc
    key = np.stack([cols["row"], cols["col"], cols["cycle"]], axis=1)
    _, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.ravel()
    parts = []
    for k in range(int(inv.max()) + 1 if inv.size else 0):
        idx = np.flatnonzero(inv == k)
        o = np.argsort(cols["delay_s"][idx], kind="stable")
        t, g = cols["delay_s"][idx][o], cols["g_us"][idx][o]
        if t.size >= 3:
            parts.append(
                (t - t[0], g - g[0], float(g[0] - cols["g_before_us"][idx][0]), float(g[0]))
            )
    width = max((p[0].size for p in parts), default=0)

    def pad(i: int) -> np.ndarray:
        return (
            np.stack([np.pad(p[i], (0, width - p[i].size), constant_values=np.nan) for p in parts])
            if parts
            else np.zeros((0, 0))
        )

    tt, dg = pad(0), pad(1)
    use = np.isfinite(tt) & np.isfinite(dg)
    return RelaxSeries(np.where(use, tt, 0.0), np.where(use, dg, 0.0), use,
                       np.array([p[2] for p in parts]), np.array([p[3] for p in parts]))  # fmt: skip


def shared_tau(series: RelaxSeries) -> tuple[float, np.ndarray]:
    """One time constant for every step, and each step's relaxing amplitude at it.

    Least squares of ``dg = r (1 - exp(-t / tau))``: for a given tau each r is linear, so
    tau is searched on a log grid, then a finer one around the best. A best tau at the
    grid's top (3x the longest delay) means the reads still move at the end of the table:
    refused (ConfigError), never returned capped.
    """
    tt, dg, use = series.tt, series.dg, series.use
    tmax = float(tt.max()) if tt.size else 0.0
    positive = tt[tt > 0]
    if tmax <= 0 or positive.size == 0:
        raise ConfigError("relax samples", "delay_s", "delays after the pulse > 0 s")

    def sse(taus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b = -np.expm1(-tt[None] / taus[:, None, None]) * use[None]  # (tau, series, delay)
        r = (b * dg[None]).sum(2) / np.maximum((b * b).sum(2), 1e-300)
        return ((dg[None] - r[..., None] * b) ** 2 * use[None]).sum((1, 2)), r

    grid = np.logspace(np.log10(positive.min() / 3), np.log10(3 * tmax), 241)
    i = int(np.argmin(sse(grid)[0]))
    fine = np.logspace(
        np.log10(grid[max(i - 1, 0)]), np.log10(grid[min(i + 1, grid.size - 1)]), 201
    )
    e, r = sse(fine)
    j = int(np.argmin(e))
    if fine[j] >= 0.999 * grid[-1]:
        # the relaxation outlasts what the table measured: a settle (or a twin) built on a
        # capped tau would be too short
        raise ConfigError(
            "relax samples", f"tau >= {grid[-1]:.3g} s", f"a relaxation the delays measure (<= {3 * tmax:.3g} s)",
            "its reads still move at the longest delay: characterise with longer relax delays",
        )  # fmt: skip
    return float(fine[j]), r[j]


def fit_relax_samples(samples: Any) -> RelaxFit:
    """Fit :class:`RelaxFit` from the relax table's columns (a mapping or a DataFrame).

    One ``tau`` shared by every measured step (:func:`shared_tau`), the amplitude per step
    at that ``tau``; steps too small to divide by (:data:`MIN_STEP_OF_MEDIAN`) are left
    out. Raises ConfigError when the table lacks a column, holds fewer than
    :data:`MIN_SERIES` usable steps, or relaxes longer than its delays measure.
    """
    series = relax_series(samples)
    if series.step.size:
        series = series.subset(
            np.abs(series.step) > MIN_STEP_OF_MEDIAN * np.median(np.abs(series.step))
        )
    if series.step.size < MIN_SERIES:
        raise ConfigError(
            "relax samples", int(series.step.size), f">= {MIN_SERIES} measured steps with >= 3 delays",
            "run memprog characterize (its relax procedure) on this chip",
        )  # fmt: skip
    tau, r = shared_tau(series)
    frac = r / series.step
    return RelaxFit(
        tau_s=tau, frac_mean=float(frac.mean()), frac_std=float(frac.std(ddof=1)),
        n_series=int(series.step.size), max_delay_s=float(series.tt.max()),
    )  # fmt: skip


__all__ = [
    "RelaxFit",
    "RelaxSeries",
    "fit_relax_samples",
    "relax_series",
    "shared_tau",
    "K_SIGMA",
    "BUDGET_FRACTION",
]
