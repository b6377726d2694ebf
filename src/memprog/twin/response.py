"""The pulse-response fit of a digital twin: the soft-bound pulse law, cell by cell.

Why cell by cell: the simulator draws every cell's threshold, strength and bounds from
the technology's spreads, so fitting each sampled cell (with the exponents and the gate's
compliance map shared) yields the chip's means *and* its device-to-device spreads; the
repeats of each pulse yield the cycle-to-cycle spread. Reads only the ``response`` samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from memprog.twin.fits import MIN_CELLS, Fit, NotConverged

# [choice] a fit whose normalised RMS residual (of the cell's range) exceeds this did not
# describe the chip: the twin is refused rather than written
MAX_RESPONSE_RESIDUAL = 0.2
IRLS_PASSES = 6  # [choice] reweighting passes of the response fit (it settles in 2-4)
# [choice] the width (overdrive) over which the law hands a passive cell's sub-threshold
# kick over to its switching step: narrow next to the 5 % threshold spread, wide enough
# for a finite-difference Jacobian (the fit's steps in a threshold are ~1e-8 relative)
KICK_HANDOVER = 0.01


# [choice] a cell this many of its own standard deviations (spread and fit error) from the
# chip's mean is an outlier (a fit run into a false valley), left out of the spread; a
# Gaussian spread puts 1 cell in ~2000 out there
SPREAD_CLIP_Z = 3.5


def _rel_spread(x: np.ndarray, se: np.ndarray | None = None) -> tuple[float, float]:
    """Relative device-to-device std of per-cell values (and its SE).

    Without ``se`` (values read directly, e.g. the prepared bounds): the MAD. With each
    cell's fit error ``se``: the spread ``tau`` for which ``x_i ~ N(mu, tau^2 + se_i^2)``
    explains the cells' scatter (the Paule-Mandel random-effects estimate: the weighted
    scatter ``sum w_i (x_i - mu_w)^2`` with ``w_i = 1 / (tau^2 + se_i^2)`` equals n - 1),
    outliers left out.

    Why not ``MAD(x)^2 - median(se^2)``: the fit errors are as large as the spread itself
    (a threshold fitted from a 7-point grid is known to ~3 % against a 5 % spread), so the
    difference of two noisy squares amplifies the MAD's own noise (its efficiency is 37 %)
    and clamps at zero: over draws of 16 TiO2 cells it came back 0.4-1.6x the cells' own
    threshold spread (RMS error ~30 %). The cells' stated errors were right (fitted minus
    true over the stated error: std 0.8-1.1); the estimator was not. This one weighs each
    cell by its own error and uses the whole scatter, not its median.
    """
    x = np.asarray(x, float)
    m = float(np.median(x))
    if se is None:
        rel = 1.4826 * float(np.median(np.abs(x - m))) / abs(m) if m else 0.0
        return rel, rel / np.sqrt(2 * max(x.size - 1, 1))
    mu, tau2, keep, var_e = _random_effects(x, np.asarray(se, float))
    # one SE from the Fisher information on tau^2 (sum w^2 / 2), carried to tau
    info = float(np.sum(np.square(1.0 / (tau2 + var_e[keep] + 1e-300)))) / 2.0
    se_tau2 = 1.0 / np.sqrt(info) if info > 0 else np.inf
    tau = float(np.sqrt(tau2))
    se_tau = se_tau2 / (2 * tau) if tau > 0.5 * np.sqrt(se_tau2) else np.sqrt(se_tau2)
    return (tau / abs(m), float(se_tau) / abs(m)) if m else (0.0, 0.0)


def _random_effects(x: np.ndarray, se: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
    """``x_i ~ N(mu, tau^2 + se_i^2)``: the Paule-Mandel ``tau^2``, the weighted mean ``mu``
    (each cell by ``1 / (tau^2 + se_i^2)``), outliers (a fit run into a false valley) left
    out; returns ``mu``, ``tau^2``, the cells kept and the fit variances."""
    ok = np.isfinite(x) & np.isfinite(se)
    if not ok.any():  # no fit errors known (a singular covariance): nothing to take out
        ok, se = np.isfinite(x), np.zeros_like(x)
    var_e = np.square(se)
    keep = ok.copy()
    tau2, mu = 0.0, float(np.median(x[ok]))
    for _ in range(5):
        tau2 = _paule_mandel(x[keep], var_e[keep])
        w = 1.0 / (tau2 + var_e + 1e-300)
        mu = float(np.sum(w[keep] * x[keep]) / np.sum(w[keep]))
        new = ok & (np.abs(x - mu) * np.sqrt(w) <= SPREAD_CLIP_Z)
        if (new == keep).all() or new.sum() < 3:
            break
        keep = new
    return mu, tau2, keep, var_e


def _re_mean(x: np.ndarray, se: np.ndarray) -> tuple[float, float]:
    """The chip's mean of a per-cell value fitted with errors ``se`` (and its SE).

    Why not the median of the cells (kept for the strengths, whose estimate runs upward
    unbounded on a cell too strong for the grid): the simulator, like a process, spreads a
    threshold normally about the chip's mean, and the median of n cells misses that mean by
    1.25x what their weighted mean does (its efficiency is 64 %). On a passive array a
    write-verify's pulses move ~4.5 % per 1 % of threshold, so that sampling error is the
    largest one left with 16-64 cells."""
    mu, tau2, keep, var_e = _random_effects(np.asarray(x, float), np.asarray(se, float))
    w = 1.0 / (tau2 + var_e[keep] + 1e-300)
    return mu, float(1.0 / np.sqrt(np.sum(w)))


def _paule_mandel(x: np.ndarray, var_e: np.ndarray) -> float:
    """The tau^2 at which the weighted scatter of ``x`` is its expectation, n - 1 (0 when
    the fit errors alone explain the scatter). The scatter falls as tau^2 grows: bisection."""
    if x.size < 2:
        return 0.0

    def excess(t2: float) -> float:
        w = 1.0 / (t2 + var_e + 1e-300)
        mu = np.sum(w * x) / np.sum(w)
        return float(np.sum(w * (x - mu) ** 2)) - (x.size - 1)

    if excess(0.0) <= 0:
        return 0.0
    lo, hi = 0.0, float(np.var(x)) * x.size + 1e-300  # the scatter at hi is under n - 1
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if excess(mid) > 0 else (lo, mid)
    return 0.5 * (lo + hi)


class _ResponseModel:
    """The pulse law over the response samples: global exponents (and the gate map) plus
    per-cell kappa, threshold and bounds, as the simulator's cells each draw their own."""

    def __init__(self, df: pd.DataFrame, width_ref_s: float, gated: bool) -> None:
        cells = df[["row", "col"]].drop_duplicates().sort_values(["row", "col"]).reset_index(drop=True)
        self.cells = cells
        key = df["row"].to_numpy() * 100_000 + df["col"].to_numpy()
        ckey = cells["row"].to_numpy() * 100_000 + cells["col"].to_numpy()
        self.ci = np.searchsorted(ckey, key)
        self.n = len(cells)
        self.is_set = (df["polarity"] == "set").to_numpy()
        self.a = np.abs(df["amplitude_v"].to_numpy(float))
        self.w = df["width_s"].to_numpy(float) / width_ref_s
        self.gate = df["gate_v"].to_numpy(float)
        self.gb = df["g_before_us"].to_numpy(float)
        self.ga = df["g_after_us"].to_numpy(float)
        self.gated = gated and np.isfinite(self.gate[self.is_set]).any()
        # each cell's off state: where its SET pulses started (RESET at the cap)
        off = pd.Series(self.gb[self.is_set]).groupby(self.ci[self.is_set]).median()
        on = pd.Series(self.gb[~self.is_set]).groupby(self.ci[~self.is_set]).median()
        self.gmin = off.reindex(range(self.n)).fillna(np.nanmedian(self.gb)).to_numpy()
        # and its on state (SET at the cap, the gate open): the upper bound
        self.gmax0 = np.maximum(on.reindex(range(self.n)).fillna(np.nanmax(self.ga)).to_numpy(), self.gmin * 1.05)
        self.scale = np.maximum(self.gmax0 - self.gmin, 1e-6)[self.ci]
        self.n_glob = 4 if self.gated else 2
        self.c2c = 0.0  # set between passes: the mean step of a clipped noisy step
        # each step's expected spread (c2c grows with the step; a floor for the reads): from
        # the observed steps first, then from the first pass' prediction (fixed weights:
        # weights that moved with the parameters would favour predicting large steps)
        # the floor: what the reads alone spread a step by (the lowest amplitude of each
        # polarity, below every threshold), three times, or 0.5 % of the range
        low = np.zeros(self.a.size, dtype=bool)
        for pol in (True, False):
            sel = self.is_set == pol
            if sel.any():
                low |= sel & (self.a <= self.a[sel].min() + 1e-9)
        # each polarity's own: on a passive array a pulse below the threshold still kicks
        # the selected cell (it is disturbed like a half-selected one), and at the bound the
        # procedure prepared it at the kick is rectified (SET kicks go up, RESET kicks
        # down). Pooled, the two signs read as a spread of ~5 % of the range (MAD ~7 µS on
        # TiO2), a floor that drowned the small steps just above the threshold: the ones
        # that pin the threshold, which sets the pulses a job needs
        noise = np.zeros(self.a.size)
        for pol in (True, False):
            sel = self.is_set == pol
            dn = (self.ga - self.gb)[low & sel]
            if dn.size:
                noise[sel] = 1.4826 * float(np.median(np.abs(dn - np.median(dn))))
        self.floor = np.maximum(0.005 * self.scale, 3.0 * noise)
        # the kick's mean, per polarity, in the pulse's direction: at the bound it is
        # rectified (~4-10 µS on TiO2, where a step just above the threshold is ~1 µS), so a
        # law without it reads the kicks as steps, and pulls the threshold down (and the
        # exponent up) to make them: with the fine points below half the cells' thresholds,
        # -1 % on the thresholds. Measured at the lowest amplitude (below every threshold),
        # and only where it is there (3 SE): a 1T1R cell is not kicked
        self.kick = np.zeros(self.a.size)
        for pol in (True, False):
            sel = self.is_set == pol
            dn = (self.ga - self.gb)[low & sel] * (1.0 if pol else -1.0)
            if dn.size >= 3:
                k = float(np.mean(dn))
                if k > 3.0 * float(np.std(dn, ddof=1)) / np.sqrt(dn.size):
                    self.kick[sel] = k
        # a cell with no range to move in (one that died after the census) is not kicked
        self.kick *= np.clip(self.scale / float(np.median(self.scale)), 0.0, 1.0)
        self.sigma = 0.25 * np.abs(self.ga - self.gb) + self.floor

    def sparsity(self) -> Any:
        """Which parameters each residual depends on (the globals, its cell's own pair)."""
        from scipy.sparse import lil_matrix  # deferred: scipy (~0.3 s), needed only while fitting

        n, g = self.ci.size, self.n_glob
        j = lil_matrix((n, g + 4 * self.n), dtype=int)
        j[:, :g] = 1
        rows = np.arange(n)
        off = np.where(self.is_set, 0, 2)
        for k in (0, 1):
            j[rows, g + (off + k) * self.n + self.ci] = 1
        return j

    def bound_se(self, on_state: bool) -> np.ndarray:
        """Each cell's standard error of its prepared on (off) state: the median of the
        states its RESET (SET) pulses started from, over its preparations."""
        sel = ~self.is_set if on_state else self.is_set
        grp = pd.Series(self.gb[sel]).groupby(self.ci[sel])
        se = 1.2533 * grp.std(ddof=1) / np.sqrt(grp.size())
        return se.reindex(range(self.n)).fillna(np.nan).to_numpy(float)

    def unpack(self, x: np.ndarray) -> dict[str, np.ndarray | float]:
        g = self.n_glob
        per = x[g:].reshape(4, self.n)
        d: dict[str, np.ndarray | float] = {"alpha": x[0], "beta": x[1]}
        if self.gated:
            d["gv_lo"], d["gv_hi"] = x[2], x[3]
        d.update(ks=np.exp(per[0]), vs=per[1], kr=np.exp(per[2]), vr=per[3], gmax=self.gmax0, gmin=self.gmin)
        return d

    def strength(self, d: dict[str, np.ndarray | float]) -> np.ndarray:
        vth = np.where(self.is_set, d["vs"][self.ci], d["vr"][self.ci])  # type: ignore[index]
        k = np.where(self.is_set, d["ks"][self.ci], d["kr"][self.ci])  # type: ignore[index]
        over = np.maximum(self.a / vth - 1.0, 0.0)
        return k * over ** d["alpha"] * self.w ** d["beta"]

    def top(self, d: dict[str, np.ndarray | float]) -> np.ndarray:
        gmin, gmax = d["gmin"][self.ci], d["gmax"][self.ci]  # type: ignore[index]
        if not self.gated:
            return gmax
        frac = np.clip((self.gate - d["gv_lo"]) / max(d["gv_hi"] - d["gv_lo"], 1e-6), 0.0, 1.0)  # type: ignore[operator]
        return np.where(np.isfinite(self.gate), np.minimum(gmax, gmin + frac * (gmax - gmin)), gmax)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = self.unpack(x)
        f = -np.expm1(-self.strength(d))
        if self.c2c > 0:
            # a step with c2c noise cannot pass the bound: its mean is E[min(f(1 + c xi), 1)],
            # below f near saturation (else the bound, e.g. the gate's compliance, fits low)
            from scipy.stats import norm  # deferred: scipy (~0.3 s), needed only while fitting

            sd = np.maximum(f * self.c2c, 1e-12)
            z = (f - 1.0) / sd
            f = f - ((f - 1.0) * norm.cdf(z) + sd * norm.pdf(z))
        room = np.where(self.is_set, np.maximum(self.top(d) - self.gb, 0.0), np.maximum(self.gb - d["gmin"][self.ci], 0.0))  # type: ignore[index]
        step = room * f
        if self.kick.any():
            # below its threshold a pulse kicks the cell (the measured mean), above it the
            # cell switches: a smooth hand-over (1 % of the threshold wide) keeps the
            # residual differentiable in the threshold
            vth = np.where(self.is_set, d["vs"][self.ci], d["vr"][self.ci])  # type: ignore[index]
            below = 0.5 * (1.0 - np.tanh((self.a / vth - 1.0) / KICK_HANDOVER))
            step = step + self.kick * below
        return np.where(self.is_set, self.gb + step, self.gb - step), room * f

    def residual(self, x: np.ndarray) -> np.ndarray:
        """Weighted: a step's spread grows with the step (c2c), so small steps, where the
        strength is measured before the step saturates, weigh as much as large ones."""
        pred, _ = self.predict(x)
        return (pred - self.ga) / self.sigma

    def rms(self, x: np.ndarray) -> float:
        """RMS misfit in units of each cell's range (the convergence measure)."""
        return float(np.sqrt(np.mean(((self.predict(x)[0] - self.ga) / self.scale) ** 2)))

    def start(self, gate_lo: float, gate_hi: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A start from the data and the bounds of the fit. Each cell's onset: the lowest
        amplitude whose median step (over the repeats) moved it by 5 % of its range at any
        width. Its threshold lies below the onset, and not far below: a law with a much
        lower threshold and a steep exponent fits the same few points (a false valley)."""
        key = pd.DataFrame({"c": self.ci, "s": self.is_set, "a": self.a, "w": self.w, "d": np.abs(self.ga - self.gb) / self.scale})
        med = key[key["w"] >= key["w"].max() - 1e-12].groupby(["c", "s", "a"])["d"].median().reset_index()
        onset_s = np.full(self.n, np.nan)
        onset_r = np.full(self.n, np.nan)
        top = {}
        for arr, pol in ((onset_s, True), (onset_r, False)):
            sel = self.is_set == pol
            top[pol] = float(np.max(self.a[sel])) if sel.any() else 1.0
            for ci, grp in med[med["s"] == pol].groupby("c"):
                g = grp.sort_values("a")
                still = np.flatnonzero(~(g["d"].to_numpy() > 0.05))
                # the lowest amplitude from which every stronger one moved the cell (a
                # sub-threshold pulse may kick a cell once: that is not its onset)
                k = still[-1] + 1 if still.size else 0
                arr[ci] = g["a"].to_numpy()[k] if k < len(g) else top[pol]
            arr[~np.isfinite(arr)] = top[pol]
        glob0 = [2.0, 0.5] + ([gate_lo, gate_hi] if self.gated else [])
        glo = [0.5, 0.0] + ([0.0, gate_lo + 0.05] if self.gated else [])
        ghi = [4.0, 2.0] + ([gate_hi - 0.05, 20.0] if self.gated else [])
        z = np.zeros(self.n)
        x0 = np.concatenate([glob0, z, 0.85 * onset_s, z, 0.85 * onset_r])
        lo = np.concatenate([glo, z - 7, 0.5 * onset_s, z - 7, 0.5 * onset_r])
        hi = np.concatenate([ghi, z + 7, z + top[True], z + 7, z + top[False]])
        return np.clip(x0, lo + 1e-9, hi - 1e-9), lo, hi


def fit_response(df: pd.DataFrame, width_ref_s: float, gated: bool, gate_window: tuple[float, float]) -> tuple[dict[str, Fit], dict[str, float]]:
    """The pulse law, bounds, thresholds, their spreads and the c2c spread (``response``).

    Returns the fields and diagnostics (``residual``: normalised RMS; ``cells``).
    Raises :class:`NotConverged` when the law does not describe the samples.
    """
    from scipy.optimize import least_squares  # deferred: scipy (~0.3 s), needed only while fitting

    if "gate_v" not in df:  # no gate (a passive stack's, dropped as all-empty by an import)
        df = df.assign(gate_v=np.nan)
    raw = _ResponseModel(df, width_ref_s, gated)  # every pulse: the c2c spread
    # the law is fitted to each (cell, pulse) mean over its repeats: a pulse just below a
    # cell's threshold can kick it either way (half-select disturb), a law has no negative
    # steps, so single kicks would pull thresholds down; their mean is near zero
    keys = ["row", "col", "point", "polarity", "amplitude_v", "width_s", "gate_v"]
    mean = df.groupby(keys, dropna=False)[["g_before_us", "g_after_us"]].mean().reset_index()
    n_rep = float(df.groupby(keys, dropna=False).size().median())
    m = _ResponseModel(mean, width_ref_s, gated)  # its floor: the spread of these means
    x0, lo, hi = m.start(*gate_window)
    jac_sp = m.sparsity()
    nfev = 200 * x0.size // 10 + 200
    sol = least_squares(m.residual, x0, bounds=(lo, hi), x_scale="jac", tr_solver="lsmr", jac_sparsity=jac_sp, max_nfev=nfev)
    # iteratively reweighted: each step's spread from the last pass' predicted step (and
    # the clipped-step mean with the c2c measured from it), until the law stops moving
    for _ in range(IRLS_PASSES):
        c2c = _c2c(raw, sol.x, df)
        m.sigma = (0.25 * np.abs(m.predict(sol.x)[1])) / np.sqrt(n_rep) + m.floor
        m.c2c = c2c[0] if c2c is not None else 0.0
        prev = sol.x[: m.n_glob].copy()
        sol = least_squares(m.residual, sol.x, bounds=(lo, hi), x_scale="jac", tr_solver="lsmr", jac_sparsity=jac_sp, max_nfev=nfev)
        if np.max(np.abs(sol.x[: m.n_glob] - prev) / np.maximum(np.abs(prev), 1e-9)) < 2e-3:
            break
    resid = m.rms(sol.x)
    if sol.status <= 0 or not np.isfinite(resid) or resid > MAX_RESPONSE_RESIDUAL:
        raise NotConverged("pulse response", resid, MAX_RESPONSE_RESIDUAL)
    # covariance of the parameters: (J^T J)^-1 * residual variance
    j = sol.jac.toarray() if hasattr(sol.jac, "toarray") else sol.jac
    dof = max(sol.fun.size - x0.size, 1)
    try:
        cov = np.linalg.pinv(j.T @ j) * float(sol.fun @ sol.fun) / dof
    except np.linalg.LinAlgError:
        cov = np.full((x0.size, x0.size), np.nan)
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    d = m.unpack(sol.x)
    g = m.n_glob
    se_per = se[g:].reshape(4, m.n)
    src = f"response ({m.n} cells, {len(df)} pulses)"
    out: dict[str, Fit] = {
        "overdrive_exponent": Fit(float(d["alpha"]), float(se[0]), src),
        "width_exponent": Fit(float(d["beta"]), float(se[1]), src),
    }
    if m.gated:
        out["gate_v_min_v"] = Fit(float(d["gv_lo"]), float(se[2]), src)
        out["gate_v_max_v"] = Fit(float(d["gv_hi"]), float(se[3]), src)

    def mean_fit(vals: np.ndarray, name: str, own_se: np.ndarray) -> None:
        # the median of the cells: a cell too strong for the grid saturates every pulse and
        # its estimate runs upward unbounded; the d2d spread is symmetric, median = mean.
        # One cell (a probe station's device): its own measurement error, and the source
        # says the chip's device-to-device spread is not in it
        if vals.size > 1:
            mad = 1.4826 * float(np.median(np.abs(vals - np.median(vals))))
            out[name] = Fit(float(np.median(vals)), 1.25 * mad / float(np.sqrt(vals.size)), src)
        else:
            out[name] = Fit(float(vals[0]), float(own_se[0]), src + "; one cell: its own error, no device-to-device spread")

    ks, kr = np.asarray(d["ks"]), np.asarray(d["kr"])
    mean_fit(ks, "set_kappa", ks * se_per[0])
    mean_fit(kr, "reset_kappa", kr * se_per[2])
    mean_fit(np.asarray(d["vs"]), "v_set_threshold_v", se_per[1])
    mean_fit(np.asarray(d["vr"]), "v_reset_threshold_v", se_per[3])
    if m.n >= MIN_CELLS:  # enough cells for a spread: their weighted mean (_re_mean)
        for name, vals, err in (("v_set_threshold_v", d["vs"], se_per[1]), ("v_reset_threshold_v", d["vr"], se_per[3])):
            mu, se_mu = _re_mean(np.asarray(vals), err)
            out[name] = Fit(mu, se_mu, src)
    mean_fit(m.gmax0, "g_max_us", m.bound_se(on_state=True))
    mean_fit(m.gmin, "g_min_us", m.bound_se(on_state=False))
    if m.n >= MIN_CELLS:
        rk = [_rel_spread(ks, ks * se_per[0]), _rel_spread(kr, kr * se_per[2])]
        out["kappa_d2d"] = Fit(float(np.sqrt(np.mean([r[0] ** 2 for r in rk]))), float(np.mean([r[1] for r in rk])), src)
        rv = [_rel_spread(np.asarray(d["vs"]), se_per[1]), _rel_spread(np.asarray(d["vr"]), se_per[3])]
        out["v_threshold_d2d"] = Fit(float(np.sqrt(np.mean([r[0] ** 2 for r in rv]))), float(np.mean([r[1] for r in rv])), src)
        rb = [_rel_spread(m.gmax0), _rel_spread(m.gmin)]
        out["g_bounds_d2d"] = Fit(float(np.sqrt(np.mean([r[0] ** 2 for r in rb]))), float(np.mean([r[1] for r in rb])), src)
    c2c = _c2c(raw, sol.x, df)
    if c2c is not None:
        out["c2c_rel_std"] = Fit(c2c[0], c2c[1], f"response repeats ({c2c[2]} pulse groups)")
    return out, {"residual": resid, "cells": float(m.n)}


def _c2c(m: _ResponseModel, x: np.ndarray, df: pd.DataFrame) -> tuple[float, float, int] | None:
    """Cycle-to-cycle spread: the same pulse from the same state, repeated. The step each
    repeat made, over the step the law predicts, varies by the c2c spread (the cell's own
    bias cancels within a group); read noise on the two reads is taken out."""
    c2c, m.c2c = m.c2c, 0.0
    _, dg_pred = m.predict(x)
    m.c2c = c2c
    f = -np.expm1(-m.strength(m.unpack(x)))
    dg = m.ga - m.gb
    ok = (f > 0.05) & (f < 0.6) & (np.abs(dg_pred) > 0.02 * m.scale)
    if "repeat" not in df or ok.sum() < 6:
        return None
    ratio = dg[ok] / dg_pred[ok]
    grp = pd.DataFrame({"g": m.ci[ok] * 10_000 + df["point"].to_numpy()[ok], "r": ratio})
    v = grp.groupby("g")["r"].agg(["var", "size"])
    v = v[v["size"] >= 2]
    if len(v) < 3:
        return None
    pooled = float(np.average(v["var"], weights=v["size"] - 1))
    val = float(np.sqrt(max(pooled, 0.0)))
    n_dof = float((v["size"] - 1).sum())
    return val, val / np.sqrt(2 * n_dof), int(len(v))



__all__ = ["fit_response", "MAX_RESPONSE_RESIDUAL"]
