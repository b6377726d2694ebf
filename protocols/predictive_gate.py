"""The predictive protocol's gate map: which pilot cells learn it, and a fit that holds.

Why a module of its own (issue 25): the coarse SET lands a 1T1R cell on the compliance its
gate sets, so a batch's gate -> compliance line decides where every coarse step lands.
The line is refitted per batch on a pilot slice, pulsed first with the current map. The
first version took every 16th far cell *in the batch's order* and fitted least squares
only to the pilot cells read above 5 % of the chip's range: on the program job's digits
map (targets 50-500 µS, the lowest decade of a 30-4,800 µS chip) that is 20-30 cells over a
60 mV lever (0.67-0.73 V), whose per-cell scatter (compliance c2c, d2d range, relaxation,
telegraph noise: 5-10 %) moved the slope by -32 % / +14 % depending on which 20-30 cells
the batch's order happened to put at every 16th place. Extrapolated down to the lowest
aims (0.61 V, 7 mV above the compliance onset) the line put the gate *below* the onset:
the SET could not move those cells, and two unmoved strong pulses flag a cell stuck —
1,593 working cells flagged stuck in the job's order (3,358 instead of 1,767).

Three changes, each with its physical reason:

* **The pilot is a function of the cells, not of their order**: the far cells sorted by
  target, ties broken by a fixed hash of (row, column), and every ``k``-th taken from the
  middle of each stratum. Strata by target give the fit the batch's whole lever (the line
  is used at every target, so it must be seen at every target); the hash spreads equal
  targets over rows and columns (a die's transistors vary across it: a pilot on one
  column would learn that column).
* **A robust fit over every pilot cell that landed on a compliance** (above 1.25x the
  range's low end: a cell there may sit on its own G_min, which says nothing about its
  gate; below 95 % of the range: the cell's own G_max caps it): Theil-Sen (the median of
  pairwise slopes, breakdown 29 %): a dead cell, a telegraph spike or a cell that relaxed
  far does not tilt the line. Where the pilot's lever cannot pin the slope (its standard
  error over 10 % of itself: all targets alike) only the offset is refitted (the prior's
  transconductance is the technology's, the offset follows the transistor's threshold).
* **A sanity check against the prior**: a slope outside a factor 2 of the technology's
  (Li 2018: the 0.6-2.0 V gate spans the chip's range) is not this technology's transistor
  but a bad fit; the prior is kept and the event says so.

The stuck test's side lives in :mod:`.predictive_model`: the confirming strong SET of a
cell that did not move goes ``confirm_gate_margin_v`` above the map's gate, so a cell the
map aimed below its onset moves and is not flagged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from memprog.protocols.predictive import PredictiveParams
    from memprog.protocols.predictive_model import Learned

# [choice] Theil-Sen on at most this many pilot cells (a stratified subset): 512 cells are
# 130,000 pairs (milliseconds), and the slope's error is already ~1 % of itself there
FIT_POINTS = 512
# [choice] the pilot's lever pins the slope when its standard error is under 10 % of it:
# below that the line's error at the ends of the batch's gate range is a few % of the range
SLOPE_SE_MAX_REL = 0.10
# [Li 2018] the technology's gate range spans the chip's range; a chip whose fitted slope
# is beyond a factor 2 of that is a fit gone wrong, not this technology
SLOPE_PRIOR_FACTOR = 2.0
# [choice] a read within 25 % of the range's low end may be a cell on its own G_min
FLOOR_REL = 1.25
CEILING_REL = 0.95


def _position_hash(r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random key per (row, column): the same cell, the same key, any order."""
    x = (np.asarray(r, np.uint64) << np.uint64(32)) | np.asarray(c, np.uint64)
    x = (x ^ (x >> np.uint64(33))) * np.uint64(0xFF51AFD7ED558CCD)
    x = (x ^ (x >> np.uint64(33))) * np.uint64(0xC4CEB9FE1A85EC53)
    return x ^ (x >> np.uint64(33))


def stratified(
    idx: np.ndarray, r: np.ndarray, c: np.ndarray, t: np.ndarray, every: int
) -> np.ndarray:
    """Every ``every``-th of ``idx`` by target (ties by position hash), from each stratum's middle.

    ``r``, ``c``, ``t`` are the batch's arrays (indexed by ``idx``). The result depends on
    the cells' addresses and targets only, never on where they sit in the batch.
    """
    if every <= 1 or idx.size == 0:
        return idx.copy()
    key = np.lexsort((_position_hash(r[idx], c[idx]), t[idx]))
    return np.sort(idx[key[every // 2 :: every]])


def pilot_cells(
    far: np.ndarray, r: np.ndarray, c: np.ndarray, t: np.ndarray, p: PredictiveParams
) -> np.ndarray:
    """The gate-map pilot among the far cells (none when the batch is too small to fit)."""
    k = p.pilot_every
    if not k or far.size < 4 * k:
        return far[:0]
    return stratified(far, r, c, t, k)


def theil_sen(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Median of pairwise slopes and the median intercept (nan slope when x has no spread)."""
    i, j = np.triu_indices(x.size, k=1)
    dx = x[j] - x[i]
    use = dx != 0
    if not use.any():
        return float("nan"), float("nan")
    slope = float(np.median((y[j] - y[i])[use] / dx[use]))
    return slope, float(np.median(y - slope * x))


def fit_gate_map(
    L: Learned,
    p: PredictiveParams,
    gate: np.ndarray,
    g: np.ndarray,
    r: np.ndarray,
    c: np.ndarray,
    t: np.ndarray,
) -> dict[str, Any]:
    """Refit ``L``'s gate map from pilot cells pulsed at ``gate`` that read ``g`` after.

    ``r``, ``c``, ``t``: those cells' addresses and targets (for the stratified subset).
    Returns the event that reports the fit (what was adopted and why).
    """
    span = L.g_hi - L.g_lo
    on = (g > FLOOR_REL * L.g_lo) & (g < L.g_lo + CEILING_REL * span)
    ev: dict[str, Any] = {
        "event": "gate_map_fit", "pilot_cells": int(g.size), "on_compliance": int(on.sum()),
        "prior_slope_us_per_v": L.gate_slope, "prior_gate0_v": L.gate0,
    }  # fmt: skip
    if on.sum() < 8:
        ev["adopted"] = "prior (too few pilot cells on a compliance)"
        return ev
    x, y = gate[on], g[on]
    if x.size > FIT_POINTS:
        keep = stratified(np.arange(x.size), r[on], c[on], t[on], -(-x.size // FIT_POINTS))
        x, y = x[keep], y[keep]
    slope, icpt = theil_sen(x, y)
    prior = L.gate_slope  # this run's map so far (the technology's, or an earlier batch's)
    tech = span / (p.gate_v_max - p.gate_v_min)
    resid_sd = float("inf")
    if np.isfinite(slope):
        resid = y - (icpt + slope * x)
        resid_sd = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
    x_sd = float(np.std(x))
    se_rel = resid_sd / (x_sd * np.sqrt(x.size) * abs(slope)) if x_sd > 0 and slope else np.inf
    if np.isfinite(slope) and slope > 0 and se_rel <= SLOPE_SE_MAX_REL:
        how = "slope and offset"
    else:
        # the lever does not pin the slope: keep the prior's, refit the offset only
        slope = prior
        icpt = float(np.median(y - slope * x))
        how = "offset only (the pilot's gate lever does not pin the slope)"
    ev.update(fit_slope_us_per_v=float(slope), slope_se_rel=float(se_rel), fit_points=int(x.size))
    if not (tech / SLOPE_PRIOR_FACTOR <= slope <= tech * SLOPE_PRIOR_FACTOR):
        ev["adopted"] = f"prior (fitted slope beyond {SLOPE_PRIOR_FACTOR:g}x the technology's)"
        return ev
    L.gate_slope = float(slope)
    L.gate0 = float((L.g_lo - icpt) / slope)
    ev.update(adopted=how, slope_us_per_v=L.gate_slope, gate0_v=L.gate0)
    return ev


__all__ = ["fit_gate_map", "pilot_cells", "stratified", "theil_sen"]
