"""Switching physics of the simulated chip: what a pulse does to each cell it reaches.

Why a module of its own: this is the device model (threshold switching with an overdrive
and width law, bounded by the cell's own conductance range or the 1T1R gate's compliance,
cycle-to-cycle noise, breakdown above the breakdown voltage, relaxation after each
switching event, and the disturb and denoise effects of sub-threshold pulses on the cells
that do not switch), vectorised over any cell selection. The parameters and their sources
are in :mod:`memprog.core.device_params` and :mod:`memprog.core.presets`.
"""

from __future__ import annotations

import numpy as np

from memprog.core.errors import ConfigError
from memprog.core.validation import require_finite, require_positive
from memprog.sim_instruments.chip_cells import BROKEN, WORKING, Sel, count_cells, subset_cells
from memprog.sim_instruments.chip_noise import ReadNoise


class SwitchingPhysics(ReadNoise):
    """Cell voltages in, new conductances out (a mixin of
    :class:`~memprog.sim_instruments.chip.SimChip`)."""

    kind: np.ndarray
    g_min_us: np.ndarray
    g_max_us: np.ndarray
    v_set_th: np.ndarray
    v_reset_th: np.ndarray
    set_kappa: np.ndarray
    reset_kappa: np.ndarray
    _n_disturb: np.ndarray
    _disturb_acc_us: np.ndarray

    def _gate_compliance_us(self, gate_v: np.ndarray, gmin: np.ndarray, gmax: np.ndarray) -> np.ndarray:
        """SET ceiling set by the 1T1R gate: linear in the gate voltage between the cell's bounds."""
        p = self.params
        span = p.gate_v_max_v - p.gate_v_min_v
        frac = np.clip((gate_v - p.gate_v_min_v) / span, 0.0, 1.0)
        g = gmin + frac * (gmax - gmin)
        if self.effects.c2c and p.compliance_rel_std > 0:
            g = g * (1 + p.compliance_rel_std * self._normal(g.size))
        return g

    def _apply(self, sel: Sel, v: np.ndarray, width_s: float, gate_v: np.ndarray | None) -> None:
        """Apply cell voltages ``v`` (V, top minus bottom) to the flat cells ``sel``."""
        p, fx, rng = self.params, self.effects, self._rng
        kind = self.kind[sel]
        vabs = np.abs(v)
        if fx.breakdown:
            broke = vabs > p.v_breakdown_v
            if broke.any():
                broke &= kind == WORKING
                b = subset_cells(sel, broke, self.n_cells)
                self.kind[b] = BROKEN
                self._g[b] = p.breakdown_g_us
                self._relax_us[b] = 0.0
                self._rtn_amp_us[:, b] = 0.0
                kind = self.kind[sel]
        active = kind == WORKING
        if not active.all():
            sel = subset_cells(sel, active, self.n_cells)
            v, vabs = v[active], vabs[active]
            if gate_v is not None:
                gate_v = gate_v[active]
        if count_cells(sel, self.n_cells) == 0:
            return
        is_set = v > 0
        n_set = int(np.count_nonzero(is_set))
        uniform = "set" if n_set == is_set.size else ("reset" if n_set == 0 else "")
        if uniform:
            vth = (self.v_set_th if uniform == "set" else self.v_reset_th)[sel]
        else:
            vth = np.where(is_set, self.v_set_th[sel], self.v_reset_th[sel])
        ratio = vabs / vth
        over = ratio - 1.0 if fx.threshold else ratio
        switching = over > 0
        n_sw = int(np.count_nonzero(switching))

        if n_sw:
            all_sw = n_sw == switching.size
            si = sel if all_sw else subset_cells(sel, switching, self.n_cells)
            s_set = is_set if all_sw else is_set[switching]
            o = over if all_sw else over[switching]
            g = self._g[si] + self._relaxed_part(si)
            if uniform:
                kappa = (self.set_kappa if uniform == "set" else self.reset_kappa)[si]
            else:
                kappa = np.where(s_set, self.set_kappa[si], self.reset_kappa[si])
            o_pow = o * o if p.overdrive_exponent == 2.0 else o**p.overdrive_exponent
            s = kappa * o_pow * ((width_s / p.width_ref_s) ** p.width_exponent)
            frac = -np.expm1(-s)
            gmin, gmax = self.g_min_us[si], self.g_max_us[si]
            top = gmax
            if p.cell_type == "1t1r" and fx.compliance and gate_v is not None:
                gsw = gate_v if all_sw else gate_v[switching]
                top = np.minimum(gmax, self._gate_compliance_us(gsw, gmin, gmax))
            if not fx.nonlinearity:
                room = np.where(s_set & (g >= top), 0.0, 0.01 * (gmax - gmin))
            elif uniform == "set":
                room = np.maximum(top - g, 0.0)
            elif uniform == "reset":
                room = g - gmin
            else:
                room = np.where(s_set, np.maximum(top - g, 0.0), g - gmin)
            dg = room * frac
            if fx.c2c and p.c2c_rel_std > 0:
                dg *= np.maximum(1.0 + p.c2c_rel_std * self._normal(dg.size), 0.0)
            if uniform == "set":
                g_new = np.minimum(g + dg, np.maximum(top, g))
            elif uniform == "reset":
                g_new = np.maximum(g - dg, gmin)
            else:
                g_new = np.where(s_set, np.minimum(g + dg, np.maximum(top, g)), np.maximum(g - dg, gmin))
            self._g[si] = g_new
            self._n_disturb[si] = 0
            self._disturb_acc_us[si] = 0.0
            if fx.rtn:
                self._draw_rtn(si)
            if self._relaxes:
                # the part of earlier relaxation not yet relaxed carries on; g (and so g_new)
                # already holds the part that has
                age = (self._clk[0] - self._t_prog_s[si]) * (-1.0 / p.relax_tau_s)
                pending = self._relax_us[si] * np.exp(age)
                step = g_new - g
                new = step * (p.relax_step_std * self._normal(step.size) - p.relax_step_mean)
                if p.relax_rel_std > 0 or p.relax_rel_mean != 0:  # a fraction of G, redrawn per switching pulse
                    pending = g_new * (p.relax_rel_std * self._normal(g_new.size) - p.relax_rel_mean)
                self._relax_us[si] = pending + new
                self._t_prog_s[si] = self._clk[0] + width_s
        if n_sw == switching.size:
            return
        sub = ~switching
        if fx.disturb and p.disturb_std_us + abs(p.disturb_mean_us) > 0:
            dmask = sub & (vabs >= p.disturb_v_min_v)
            if dmask.any():
                di = subset_cells(sel, dmask, self.n_cells)
                self._n_disturb[di] += 1
                nn = self._n_disturb[di].astype(float)
                scale = (vabs[dmask] / p.disturb_ref_v) ** 2
                h, m = p.disturb_std_exponent, p.disturb_mean_exponent
                inc_sd = np.sqrt(nn ** (2 * h) - (nn - 1) ** (2 * h))
                inc_mean = nn**m - (nn - 1) ** m
                noise = self._normal(inc_sd.size)
                dg = scale * (p.disturb_mean_us * inc_mean + p.disturb_std_us * inc_sd * noise)
                acc_old = self._disturb_acc_us[di]
                acc_new = np.clip(acc_old + dg, -p.disturb_cap_us, p.disturb_cap_us)
                self._disturb_acc_us[di] = acc_new
                g_new = self._g[di] + (acc_new - acc_old)
                self._g[di] = np.clip(g_new, self.g_min_us[di], self.g_max_us[di])
        if fx.rtn:
            dn = sub & (vabs >= p.denoise_v_low_frac * vth) & (vabs < p.denoise_v_high_frac * vth)
            if dn.any():
                ni = subset_cells(sel, dn, self.n_cells)
                m = count_cells(ni, self.n_cells)
                removed = rng.random(m) < p.denoise_removal_probability
                self._rtn_amp_us[0, ni] = np.where(removed, np.float32(0.0), self._rtn_amp_us[0, ni])
                if p.denoise_shift_std_us > 0:
                    shift = p.denoise_shift_std_us * self._normal(m)
                    self._g[ni] = np.clip(self._g[ni] + shift, self.g_min_us[ni], self.g_max_us[ni])

    def _check_pulse(self, amplitude_v: object, width_s: object) -> tuple[np.ndarray, float]:
        amp = require_finite("amplitude_v", amplitude_v)
        width = float(require_positive("width_s", width_s, "s"))
        p = self.params
        if not p.width_min_s <= width <= p.width_max_s:
            raise ConfigError("width_s", width, f"[{p.width_min_s:g}, {p.width_max_s:g}] s")
        return amp, width
