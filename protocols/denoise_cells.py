"""What the denoising write-verify learns about each cell: amplitudes, gains, width exponents.

Why a module of its own: fine steps on a 4 mS device need pulses barely above a threshold
that varies from cell to cell, so the tuner keeps, per cell and polarity, a calibrated
amplitude (found by a ramp), a gain ``k`` in ``dG = k * room * (width / width_ref) **
beta`` and the exponent ``beta`` (fitted from the cell's own pulses). This model turns an
error into the next tuning pulse, scales the sub-threshold denoise pulses from the
amplitude at which the cell first moved, and updates itself from the move each pulse
produced. It outlives one tuning call, so a long ladder on one cell calibrates once.
"""

from __future__ import annotations

import numpy as np

from memprog.protocols.denoise_params import DenoiseParams

SET, RESET = 0, 1
# what a cell's last pulse was
PULSE_NONE, PULSE_CAL, PULSE_TUNE, PULSE_DENOISE = 0, 1, 2, 3


class DenoiseCellModel:
    """Per-cell, per-polarity pulse model of the chip's ``n_cells`` cells (flat indices).

    The base of :class:`~memprog.protocols.denoise.DenoiseTuner`: what it learns is kept on
    the tuner itself, so it carries over from one call to the next.

    Args:
        params: the tuner's settings (ramps, caps, width range, learning rate).
        n_cells: rows x cols of the chip.
        g_range_us: the chip's conductance range, the bounds a pulse pushes toward.
    """

    def __init__(
        self, params: DenoiseParams, n_cells: int, g_range_us: tuple[float, float]
    ) -> None:
        self.params = p = params
        n = n_cells
        self.g_lo, self.g_hi = (float(x) for x in g_range_us)
        # per cell, per polarity: calibrated amplitude (NaN: not yet), ramp position, gain
        self.v_fix = np.full((2, n), np.nan)
        self.v_cal = np.empty((2, n))
        self.v_cal[SET], self.v_cal[RESET] = p.set_start_v, p.reset_start_v
        self.gain = np.full((2, n), np.nan)
        # amplitude at which the calibration first saw the cell move (~ its threshold): the
        # denoise pulses scale from it, not from amplitudes raised later for long steps
        self.v_onset = np.full((2, n), np.nan)
        # per cell, per polarity: the width exponent, fitted (log-log least squares) from the
        # moves of the cell's own tuning pulses at different widths
        self.beta = np.full((2, n), p.width_exponent)
        self._fit = np.zeros((5, 2, n))  # n, sum x, sum y, sum xx, sum xy
        lo, hi = np.log10(p.width_min_s), np.log10(p.width_max_s)
        self._log_w_lo, self._log_w_hi = lo, hi
        self._grid = p.width_grid_per_decade

    def _quantise(self, w: np.ndarray) -> np.ndarray:
        lw = np.clip(np.log10(w), self._log_w_lo, self._log_w_hi)
        q = np.round((lw - self._log_w_lo) * self._grid) / self._grid + self._log_w_lo
        return 10.0 ** np.minimum(q, self._log_w_hi)

    def _room(self, g: np.ndarray, pol: np.ndarray) -> np.ndarray:
        room = np.where(pol == SET, self.g_hi - g, g - self.g_lo)
        return np.maximum(room, 0.01 * (self.g_hi - self.g_lo))

    def _denoise_amp(self, fa: np.ndarray) -> np.ndarray:
        """Sub-threshold denoise amplitude of cells ``fa``: a fraction of where each first
        moved, so the pulse shakes the fluctuator out without moving the state."""
        p = self.params
        if p.denoise_v is not None:
            return np.full(fa.size, p.denoise_v)
        v = self.v_onset[SET, fa]
        # not calibrated yet: the ramp's position has not moved the cell, so it is at most
        # the threshold and a fraction of it stays well below
        v = np.where(np.isnan(v), self.v_cal[SET, fa], v)
        return p.denoise_frac * v

    def _tune_pulse(
        self, fa: np.ndarray, g: np.ndarray, err: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Signed amplitude, width, kind (PULSE_CAL/PULSE_TUNE), polarity of each tuning pulse."""
        p = self.params
        pol = np.where(err > 0, SET, RESET).astype(np.int8)
        v_fix = self.v_fix[pol, fa]
        cal = np.isnan(v_fix)
        amp = np.where(cal, self.v_cal[pol, fa], v_fix)
        width = np.full(fa.size, p.cal_width_s)
        kind = np.where(cal, PULSE_CAL, PULSE_TUNE).astype(np.int8)
        tn = ~cal
        if tn.any():
            room = self._room(g[tn], pol[tn])
            k = self.gain[pol[tn], fa[tn]]
            d = np.abs(err[tn])
            w = p.width_ref_s * (d / (k * room)) ** (1.0 / self.beta[pol[tn], fa[tn]])
            # out of the width range: move the amplitude one step for the next pulses
            too_long = w > p.width_max_s
            too_short = w < p.width_min_s * 0.5
            fi, pi = fa[tn], pol[tn]
            if too_long.any():
                cap = np.where(pi[too_long] == SET, p.set_max_v, p.reset_max_v)
                # one amplitude step per factor 4 of missing width (at most 8 steps)
                n_up = np.clip(np.ceil(np.log(w[too_long] / p.width_max_s) / np.log(4.0)), 1, 8)
                newv = np.minimum(self.v_fix[pi[too_long], fi[too_long]] + n_up * p.amp_step_v, cap)
                self.v_fix[pi[too_long], fi[too_long]] = newv
                self.gain[pi[too_long], fi[too_long]] *= 2.0**n_up
            if too_short.any():
                floor = np.where(pi[too_short] == SET, p.set_start_v, p.reset_start_v)
                newv = np.maximum(self.v_fix[pi[too_short], fi[too_short]] - p.amp_step_v, floor)
                self.v_fix[pi[too_short], fi[too_short]] = newv
                self.gain[pi[too_short], fi[too_short]] *= 0.5
            width[tn] = self._quantise(w)
        signed = np.where(pol == SET, amp, -amp)
        return signed, width, kind, pol

    def _learn(
        self,
        act: np.ndarray,
        fa: np.ndarray,
        kind: np.ndarray,
        pol: np.ndarray,
        w: np.ndarray,
        m_before: np.ndarray,
        m_after: np.ndarray,
        f_stuck: np.ndarray,
    ) -> None:
        """Update calibration ramps and gains from the move the last pulse produced."""
        p = self.params
        moved = np.where(pol == SET, m_after - m_before, m_before - m_after)  # toward the pulse
        cal = kind == PULSE_CAL
        if cal.any():
            ci, cp = fa[cal], pol[cal]
            hit = moved[cal] >= p.cal_detect_us
            room = self._room(m_before[cal], cp)
            if hit.any():
                self.v_fix[cp[hit], ci[hit]] = self.v_cal[cp[hit], ci[hit]]
                self.v_onset[cp[hit], ci[hit]] = self.v_cal[cp[hit], ci[hit]]
                self.gain[cp[hit], ci[hit]] = moved[cal][hit] / (
                    room[hit] * (p.cal_width_s / p.width_ref_s) ** self.beta[cp[hit], ci[hit]]
                )
            miss = ~hit
            if miss.any():
                cap = np.where(cp[miss] == SET, p.set_max_v, p.reset_max_v)
                cur = self.v_cal[cp[miss], ci[miss]]
                at_cap = cur >= cap - 1e-12
                f_stuck[act[cal][miss][at_cap]] = True
                self.v_cal[cp[miss], ci[miss]] = np.minimum(cur + p.cal_step_v, cap)
        tn = kind == PULSE_TUNE
        if tn.any():
            ti, tp = fa[tn], pol[tn]
            room = self._room(m_before[tn], tp)
            x = np.log(w[tn] / p.width_ref_s)
            if p.learn_width_exponent:
                mv = moved[tn]
                seen = mv > 0.1  # a move clear of the read noise
                if seen.any():
                    y = np.log(mv[seen] / room[seen])
                    xs, ts, ps = x[seen], ti[seen], tp[seen]
                    for row, val in enumerate((np.ones_like(xs), xs, y, xs * xs, xs * y)):
                        np.add.at(self._fit[row], (ps, ts), val)
                    f = self._fit[:, ps, ts]
                    nn = f[0]
                    var = f[3] / nn - (f[1] / nn) ** 2
                    cov = f[4] / nn - (f[1] / nn) * (f[2] / nn)
                    ok = (nn >= 4) & (var > 0.1)
                    if ok.any():
                        self.beta[ps[ok], ts[ok]] = np.clip(cov[ok] / var[ok], 0.1, 2.0)
            pred = self.gain[tp, ti] * room * np.exp(self.beta[tp, ti] * x)
            ratio = np.clip(np.maximum(moved[tn], 0.05 * pred) / pred, 0.25, 4.0)
            self.gain[tp, ti] *= ratio**p.gain_learning
