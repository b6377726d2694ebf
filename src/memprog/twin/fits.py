"""The fits behind a digital twin: one function per measurement, each returning fields.

Why one function per measurement: a field is only as good as the measurement it comes
from, and a lab that skipped one characterisation must still get the others (the fields of
a missing one keep the preset's value and say which characterisation to run). Every
function reads raw samples (pandas frames from :class:`memprog.store.VariabilityDB`) and
nothing else: never a bench's ``sim_params``, never the simulator.

Each returns ``{field: Fit}``; a :class:`Fit` carries its value, its uncertainty (one
standard error: fit covariance, binomial or sampling) and the measurement it came from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from memprog.core.errors import ConfigError
from memprog.protocols.settle_choice import relax_series, shared_tau

MIN_CELLS = 3  # fewer cells: no device-to-device spread
# [choice] a series is two-level when its levels are this many white-noise sd apart: a
# 256-read series of white noise alone splits by ~3 sd, a fluctuator must clear that
TELEGRAPH_DETECT_SD = 6.0


@dataclass
class Fit:
    """One fitted field: value, one standard error, the measurement (table) it came from."""

    value: float | tuple[float, float]
    std: float | None
    source: str


class NotConverged(Exception):
    """A fit that does not describe its data; carries the residual."""

    def __init__(self, what: str, residual: float, limit: float) -> None:
        super().__init__(f"{what}: residual {residual:.3g} > {limit:.3g}")
        self.what, self.residual, self.limit = what, residual, limit


# ---------------------------------------------------------------------- census
def fit_census(stuck: pd.DataFrame) -> dict[str, Fit]:
    """Defect fractions and their conductances from the stuck census.

    Low cells that do not move are *unresponsive* when they sit at one conductance (their
    spread under 15 %, as a failed device at its forming level) and *HRS-stuck* spread over
    a range otherwise; high ones are LRS-stuck.
    """
    n = len(stuck)
    src = f"census ({n} cells)"
    out: dict[str, Fit] = {}

    def frac(k: int) -> Fit:
        p = k / n
        return Fit(p, float(np.sqrt(max(p * (1 - p), 1.0 / n) / n)), src)

    low = stuck.loc[stuck["kind"] == "hrs", "g_us"].to_numpy(float)
    high = stuck.loc[stuck["kind"] == "lrs", "g_us"].to_numpy(float)
    # the tight cluster around the most common low conductance: unresponsive; the rest
    # (spread over a range, or cells merely too weak for the census' pulses): HRS-stuck
    core = np.zeros(low.size, dtype=bool)
    if low.size >= MIN_CELLS:
        mode = float(np.median(low[low <= np.quantile(low, 0.5)])) if low.size else 0.0
        core = np.abs(low - mode) < 0.5 * mode  # read noise and RTN ride on a low state
    out["unresponsive_fraction"] = frac(int(core.sum()))
    out["stuck_hrs_fraction"] = frac(int((~core).sum()))
    if core.sum() >= MIN_CELLS:
        out["unresponsive_us"] = Fit(float(np.median(low[core])), float(np.std(low[core]) / np.sqrt(core.sum())), src)
    if (~core).sum() >= MIN_CELLS:
        out["stuck_hrs_range_us"] = Fit((float(low[~core].min()), float(low[~core].max())), None, src)
    out["stuck_lrs_fraction"] = frac(high.size)
    if high.size >= MIN_CELLS:
        out["stuck_lrs_mean_us"] = Fit(float(high.mean()), float(high.std(ddof=1) / np.sqrt(high.size)), src)
        out["stuck_lrs_std_us"] = Fit(float(high.std(ddof=1)), float(high.std(ddof=1) / np.sqrt(2 * high.size)), src)
    return out


# ---------------------------------------------------------------------- noise
def _white_sigma(series: np.ndarray) -> float:
    """White noise of a read series from its successive differences (a telegraph jump is
    an outlier there, so the median ignores the few a fast series has)."""
    d = np.diff(series)
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2))


def fit_read_noise(noise: pd.DataFrame, settled_form: bool) -> dict[str, Fit]:
    """Read noise sd = abs + rel * G from the back-to-back series in the off and on states
    (or, where the technology describes its read spread as a settled device spread, that
    spread: std / G = rel + rel_per_us * G)."""
    w = noise[noise["kind"] == "white"]
    if w.empty:
        return {}
    rows = []
    for (_, _, _, st), s in w.sort_values("read").groupby(["row", "col", "cycle", "state"]):
        v = s["g_us"].to_numpy(float)
        if v.size >= 4:
            rows.append((st, float(np.median(v)), _white_sigma(v)))
    t = pd.DataFrame(rows, columns=["state", "g", "sd"])
    src = f"noise, back-to-back reads ({len(t)} series)"
    out: dict[str, Fit] = {}
    lo, hi = t[t["state"] == "off"], t[t["state"] == "on"]
    if len(lo) < MIN_CELLS or len(hi) < MIN_CELLS:
        return out
    rng = np.random.default_rng(0)

    def solve(a: pd.DataFrame, b: pd.DataFrame) -> tuple[float, float]:
        g1, s1, g2, s2 = a["g"].median(), a["sd"].median(), b["g"].median(), b["sd"].median()
        if settled_form:
            r1, r2 = s1 / g1, s2 / g2
            slope = (r2 - r1) / (g2 - g1)
            return r1 - slope * g1, slope
        # sd = abs + rel * G (the simulator's form: linear, not in quadrature)
        rel = max((s2 - s1) / (g2 - g1), 0.0)
        return max(s1 - rel * g1, 0.0), rel

    a0, b0 = solve(lo, hi)
    boots = np.array([solve(lo.sample(len(lo), replace=True, random_state=rng.integers(1 << 31)),
                            hi.sample(len(hi), replace=True, random_state=rng.integers(1 << 31))) for _ in range(100)])  # fmt: skip
    names = ("settled_spread_rel", "settled_spread_rel_per_us") if settled_form else ("read_noise_abs_us", "read_noise_rel")
    out[names[0]] = Fit(float(a0), float(boots[:, 0].std()), src)
    out[names[1]] = Fit(float(b0), float(boots[:, 1].std()), src)
    return out


def _two_level(v: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Otsu split of a series: (separation of the two levels, the smaller occupancy, states)."""
    s = np.sort(v)
    n = s.size
    c = np.cumsum(s)
    k = np.arange(1, n)
    m1 = c[:-1] / k
    m2 = (c[-1] - c[:-1]) / (n - k)
    between = k * (n - k) * (m2 - m1) ** 2
    i = int(np.argmax(between))
    thr = 0.5 * (s[i] + s[i + 1])
    st = v > thr
    occ = min(st.mean(), 1 - st.mean())
    return float(m2[i] - m1[i]), float(occ), st


def fit_telegraph(noise: pd.DataFrame, white_sd: float | None) -> dict[str, Fit]:
    """The large fluctuator: how often a programmed state carries one, its peak-to-peak
    (log-normal) and its dwell times (log-uniform), from the spaced read series. A series
    is two-level when its levels are apart by more than 6 white-noise sd and each holds at
    least 5 % of the reads."""
    t = noise[noise["kind"] == "telegraph"]
    if t.empty:
        return {}
    amps, dwells, n = [], [], 0
    for _, s in t.sort_values("read").groupby(["row", "col", "cycle"]):
        v = s["g_us"].to_numpy(float)
        if v.size < 16:
            continue
        n += 1
        v = v - np.polyval(np.polyfit(np.arange(v.size), v, 1), np.arange(v.size)) + v.mean()  # no drift
        sd = white_sd if white_sd is not None else _white_sigma(v)
        d, occ, st = _two_level(v)
        if d > TELEGRAPH_DETECT_SD * sd and occ >= 0.05:
            amps.append(d)
            flips = int(np.count_nonzero(np.diff(st.astype(int))))
            dt = float(s["interval_s"].iloc[0])
            if flips >= 2 and dt > 0:
                dwells.append(v.size * dt / (flips + 1))
    src = f"noise, spaced reads ({n} series)"
    out: dict[str, Fit] = {}
    if n < MIN_CELLS:
        return out
    p = len(amps) / n
    out["rtn_large_probability"] = Fit(p, float(np.sqrt(max(p * (1 - p), 1 / n) / n)), src)
    if len(amps) >= MIN_CELLS:
        la = np.log(amps)
        out["rtn_large_amp_us"] = Fit(float(np.exp(np.median(la))), float(np.exp(np.median(la)) * la.std() / np.sqrt(la.size)), src)
        out["rtn_large_amp_log_std"] = Fit(float(la.std(ddof=1)), float(la.std(ddof=1) / np.sqrt(2 * la.size)), src)
    if len(dwells) >= 10:
        # log-uniform dwell times: the upper end from the top quantile (a fluctuator faster
        # than the read spacing looks white, so the lower end is not measured here)
        ld = np.log(dwells)
        q50, q95 = np.quantile(ld, [0.5, 0.95])
        out["rtn_dwell_max_s"] = Fit(float(np.exp(q95 + 0.05 * (q95 - q50) / 0.45)), None, src)
    return out


# ---------------------------------------------------------------------- relaxation
def fit_relax(relax: pd.DataFrame, g_model: bool) -> dict[str, Fit]:
    """G(t) = G(0) + r * (1 - exp(-t / tau)) after one switching pulse: tau shared, r per
    cell and pulse (the fit the ladder's measured settle uses too,
    :func:`memprog.protocols.settle_choice.shared_tau`); r as a fraction of the step (or,
    where the technology relaxes by a fraction of G, of G) gives the mean and spread of the
    volatile part. A relaxation longer than the delays measure fits nothing (the field
    keeps the preset's value)."""
    series = relax_series(relax)
    if series.step.size < MIN_CELLS:
        return {}
    try:
        tau, r = shared_tau(series)
    except ConfigError:
        return {}
    base, name = (series.g0, "relax_rel") if g_model else (series.step, "relax_step")
    ok = np.abs(base) > 0.05 * np.median(np.abs(base))  # a step too small to divide by
    frac = r[ok] / base[ok]
    med = float(np.median(frac))
    frac = frac[np.abs(frac - med) < 5 * 1.4826 * np.median(np.abs(frac - med)) + 1e-12]
    src = f"relax ({series.step.size} steps, reads to {float(series.tt.max()):g} s)"
    rng = np.random.default_rng(1)
    taus = []
    for _ in range(30):
        try:
            taus.append(shared_tau(series.subset(rng.integers(0, series.step.size, series.step.size)))[0])
        except ConfigError:  # a resample that happens to hold no relaxation
            continue
    return {
        "relax_tau_s": Fit(tau, float(np.std(taus)), src),
        f"{name}_mean": Fit(float(-frac.mean()), float(frac.std(ddof=1) / np.sqrt(frac.size)), src),
        f"{name}_std": Fit(float(frac.std(ddof=1)), float(frac.std(ddof=1) / np.sqrt(2 * frac.size)), src),
    }


__all__ = ["Fit", "NotConverged", "MIN_CELLS", "TELEGRAPH_DETECT_SD", "fit_census", "fit_read_noise", "fit_telegraph", "fit_relax"]
