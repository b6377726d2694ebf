"""The predictive protocol's settle: one per batch, re-verifying only the cells at risk.

See :func:`settle_batch`; the protocol is in :mod:`.predictive`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from memprog.protocols.results import FLAG_DRIFTED, FLAG_RELAXED

if TYPE_CHECKING:
    from memprog.protocols.predictive import PredictiveParams
    from memprog.protocols.predictive_model import Learned, Run


def settle_batch(
    run: Run, settle: float, p: PredictiveParams, learned: Learned
) -> dict[str, np.ndarray]:
    """One settle for the batch; re-verify (and re-tune) only the cells at risk.

    A cell is at risk when its predicted lasting state plus ``trust_sigmas`` times what the
    prediction cannot know reaches its band's edge: the accepting read's error, the error
    of its pending-relaxation estimate (decayed since), and the random part of its fine
    steps' relaxation (the spread the batch measured, times the steps' root-sum-square).
    The others keep the state the model predicts for them.

    ``settle_rounds`` settles at most; the cells re-tuned after the last one keep their
    re-tune only where its prediction is trusted (they are flagged ``relaxed`` either way,
    ``drifted_out`` and not converged where it is not).

    The settle is waited in ``settle_reads`` parts with a read of the cells at risk after each: reads
    seconds apart see independent states of the telegraph noise (its dwell times are
    milliseconds), which reads microseconds apart do not; each read is carried to the
    lasting state by the relaxation model and combined with the prediction made at
    acceptance (inverse-variance weights). A cell stays accepted when that estimate is
    within its band by ``settle_sigmas`` of its error; the others are re-tuned with the
    model they learned (a fine step or two) and checked after the next settle, at most
    ``settle_rounds`` times (then flagged ``drifted_out``, not converged).
    """
    st, t, L, sink = run.st, run.t, learned, run.sink
    n = t.size
    tol = run.tol

    def model_var(idx: np.ndarray) -> np.ndarray:
        """Variance of the relaxation still to come that the model cannot predict."""
        now = run.now()
        decay = np.exp(-np.maximum(now - st.t_pend[idx], 0.0) / L.tau_s)
        return (st.pend_sd[idx] * decay) ** 2 + (L.relax_sd * decay) ** 2 * st.fine_ss[idx]

    var0 = L.read_sd**2 + model_var(np.arange(n))
    miss = np.abs(np.nan_to_num(st.predicted, nan=np.inf) - t) + abs(L.drift_rel) * t
    risky = st.conv & (miss + p.trust_sigmas * np.sqrt(var0) > tol)
    quiet = st.conv & ~risky
    st.final[quiet] = st.predicted[quiet]
    sink.record_event(
        {"event": "settle_plan", "settle_s": settle, "reverify": int(risky.sum()),
         "trusted": int(quiet.sum())}
    )  # fmt: skip
    settled = np.full(n, np.nan)
    final_sd = np.where(quiet, np.sqrt(var0), np.nan)
    accepted_in = np.where(quiet, -1, -2)  # settle round that accepted it (-1: trusted)
    retuned = np.zeros(n, dtype=bool)
    drifted = np.zeros(n, dtype=bool)
    check = np.flatnonzero(risky)
    for k in range(p.settle_rounds):
        if check.size == 0:
            break
        est, var = _settled_estimate(run, check, settle, p, model_var)
        settled[check] = st.g[check]
        if k == 0:  # the batch's systematic drift over a settle, beyond the prediction
            _learn_drift(L, st.predicted[check], est)
        out = np.abs(est - t[check]) + p.settle_sigmas * np.sqrt(var) > tol[check]
        st.final[check] = est
        final_sd[check] = np.sqrt(var)
        accepted_in[check] = k
        sink.record_event(
            {"event": "settle", "round": k, "settle_s": settle, "checked": int(check.size),
             "out_of_band": int(out.sum())}
        )  # fmt: skip
        if not out.any():
            break
        bad = check[out]
        retuned[bad] = True
        st.done[bad] = False
        st.conv[bad] = False
        st.unmoved[bad] = 0
        st.n_since[bad] = 0  # the estimate starts again from the settle's last read
        st.sum_since[bad] = 0.0
        st.ss_since[bad] = 0.0
        st.fresh[bad] = True
        st.flips_base[bad] = st.flips[bad]  # chasing the noise is judged per re-tune
        run._fine()
        check = bad[st.conv[bad]]
        if k == p.settle_rounds - 1:
            # no settle is left to check the last re-tune: a cell keeps it only when its
            # prediction is trusted (as before the settle), otherwise it is drifted_out
            var_l = L.read_sd**2 + model_var(check)
            miss_l = np.abs(st.predicted[check] - t[check])
            sure = miss_l + p.trust_sigmas * np.sqrt(var_l) <= tol[check]
            st.final[check] = np.where(sure, st.predicted[check], st.final[check])
            final_sd[check] = np.sqrt(var_l)
            accepted_in[check] = k + 1
            st.conv[check[~sure]] = False
            drifted[bad[~st.conv[bad]]] = True
            break
    run.flags_extra = {FLAG_RELAXED: retuned, FLAG_DRIFTED: drifted}
    return {"settled_us": settled, "final_sd_us": final_sd, "settle_round": accepted_in}


def _settled_estimate(
    run: Run, check: np.ndarray, settle: float, p: PredictiveParams, model_var: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Lasting state of the cells ``check`` from reads spread over one settle, and its variance.

    Each read is y_k = G + A b_k + noise, with b_k = exp(-(t_k - t_0)/tau) the share of the
    relaxation pending at the settle's start (-A) still pending at the read: a straight-line
    fit per cell in (G, A), with the model's prediction of A (and its error) as a prior.
    Why a fit and not a mean: what is still relaxing at the first reads is common to all
    of them (one error, not k), and the reads' own decay says how much of it there was.
    """
    st, L = run.st, run.L
    t0 = run.now()
    # y_k = G + A b_k: A is minus the change still to come at the settle's start
    a0 = st.g[check] - run.lasting(check)
    va = np.maximum(model_var(check), 1e-12)
    s_b = np.zeros(check.size)
    s_bb = np.zeros(check.size)
    s_y = np.zeros(check.size)
    s_yb = np.zeros(check.size)
    s_yy = np.zeros(check.size)
    k = p.settle_reads
    for _ in range(k):
        run.wait(settle / k)
        y = run.read(check)
        b = math.exp(-(run.now() - t0) / L.tau_s)
        s_b += b
        s_bb += b * b
        s_y += y
        s_yb += y * b
        s_yy += y * y

    def fit(w: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p11, p12, p22 = k * w, s_b * w, 1.0 / va + s_bb * w
        r1, r2 = s_y * w, a0 / va + s_yb * w
        det = p11 * p22 - p12 * p12
        return (p22 * r1 - p12 * r2) / det, (p11 * r2 - p12 * r1) / det, p22 / det

    g_inf, a_fit, _ = fit(1.0 / L.read_sd**2)
    # each cell's own read spread around its fit (a denoised cell reads far cleaner than
    # the batch's telegraph noise says), pooled with the batch's as a prior of weight nu0
    rss = s_yy - 2 * g_inf * s_y - 2 * a_fit * s_yb + k * g_inf**2 + 2 * g_inf * a_fit * s_b
    rss = np.maximum(rss + a_fit**2 * s_bb, 0.0)
    dof = max(k - 2, 0)
    nu0 = p.read_sd_prior_weight
    var_cell = (nu0 * L.read_sd**2 + rss) / (nu0 + dof)
    g_inf, _, var = fit(1.0 / var_cell)
    return g_inf, var


def _learn_drift(learned: Learned, predicted: np.ndarray, settled: np.ndarray) -> None:
    """Fold the batch's drift over a settle (share of G beyond the prediction) into the model.

    Why the median over every cell read after the settle: a systematic offset (TiO2's
    settling by a fixed share of G) shows in all of them and repeats, so later aims go
    through it; a mis-predicted relaxation is random, its median near 0, and nothing is
    learned from noise.
    """
    ok = np.isfinite(predicted) & np.isfinite(settled) & (predicted > 0)
    n = int(ok.sum())
    if n == 0:
        return
    resid = float(np.median(settled[ok] / predicted[ok] - 1.0))
    learned.drift_rel += resid * n / (learned.drift_n + n)
    learned.drift_n += n


__all__ = ["settle_batch"]
