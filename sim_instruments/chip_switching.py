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
from memprog.sim_instruments.chip_cells import (
    BROKEN,
    WORKING,
    Sel,
    block_spans,
    count_cells,
    part,
    subset_cells,
)
from memprog.sim_instruments.chip_noise import ReadNoise


def _rows(values: np.ndarray, a: int, b: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Entries ``[a, b)`` of per-cell ``values`` (then the ``mask``-ed ones); a 0-d value
    (the same for every cell) stays as it is."""
    if values.ndim == 0:
        return values
    values = values[a:b]
    return values if mask is None else values[mask]


def _joined(masks: list[tuple[int, np.ndarray | None]]) -> np.ndarray | None:
    """The blocks' masks as one mask over the batch (a block without one: all false);
    None when no block has one."""
    if all(m is None for _, m in masks):
        return None
    if len(masks) == 1:
        return masks[0][1]
    return np.concatenate([np.zeros(k, dtype=bool) if m is None else m for k, m in masks])


def _get(state: np.ndarray, cells: Sel) -> np.ndarray:
    """``state`` of the cells ``cells`` (``take`` gathers about twice as fast as indexing)."""
    return state[cells] if type(cells) is slice else state.take(cells)


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

    def _gate_compliance_us(
        self, gate_v: np.ndarray, gmin: np.ndarray, gmax: np.ndarray, noise: np.ndarray | None = None
    ) -> np.ndarray:
        """SET ceiling set by the 1T1R gate: linear in the gate voltage between the cell's bounds
        (``noise``: the cells' standard-normal draws, taken in advance, see :meth:`_apply`)."""
        p = self.params
        span = p.gate_v_max_v - p.gate_v_min_v
        frac = np.clip((gate_v - p.gate_v_min_v) / span, 0.0, 1.0)
        g = gmin + frac * (gmax - gmin)
        if self.effects.c2c and p.compliance_rel_std > 0:
            g = g * (1 + p.compliance_rel_std * (self._normal(g.size) if noise is None else noise))
        return g

    def _apply(self, sel: Sel, v: np.ndarray, width_s: float, gate_v: np.ndarray | None) -> None:
        """Apply cell voltages ``v`` (V, top minus bottom) to the flat cells ``sel``; ``v`` and
        ``gate_v`` hold one value per cell, or one (0-d) for every cell: the arithmetic
        broadcasts it, value for value the same, without a per-cell copy.

        Why three passes: a whole-array pulse is bound by memory traffic, not arithmetic, so a
        large contiguous batch runs in cache-sized blocks (chip_cells.BLOCK_CELLS). Pass 1
        finds, block by block, the cells that break down, switch, are disturbed or denoised;
        then every random number the switching cells need is drawn for the whole batch in
        the order the model consumes them; pass 2 switches block by block, each block taking
        its share of the draws; pass 3 disturbs and denoises the cells that did not switch
        (draws again for the whole batch). Every cell sees exactly the arithmetic and the
        draws of one whole-batch operation, so the chip is bit for bit the same whatever the
        block size.
        """
        n = self.n_cells
        blocks = [(a, b, *self._classify(part(sel, a, b, n), _rows(v, a, b))) for a, b in block_spans(sel, n)]
        n_sw = sum(blk[2] for blk in blocks)
        if n_sw:
            draws = self._switch_draws(n_sw, gate_v is not None)
            lo = 0
            for a, b, k, over, switching, _, _ in blocks:
                if not k:
                    continue
                cells = part(sel, a, b, n)
                share = draws if k == n_sw else {key: d[lo : lo + k] for key, d in draws.items()}
                lo += k
                mask = None if k == b - a else switching
                vb, gb = _rows(v, a, b, mask), None if gate_v is None else _rows(gate_v, a, b, mask)
                if mask is not None:
                    cells, over = subset_cells(cells, mask, n), over[mask]
                self._switch(cells, vb, over, gb, width_s, share)
        disturbed = _joined([(b - a, blk[3]) for a, b, *blk in blocks])
        if disturbed is not None and disturbed.any():
            # per cell, as the disturb law's arithmetic always ran (an array power, never a
            # scalar one, whose libm pow may round differently)
            vabs = np.abs(np.broadcast_to(v, disturbed.shape)[disturbed])
            self._disturb(subset_cells(sel, disturbed, n), vabs)
        denoised = _joined([(b - a, blk[4]) for a, b, *blk in blocks])
        if denoised is not None and denoised.any():
            self._denoise(subset_cells(sel, denoised, n))

    def _classify(
        self, cells: Sel, v: np.ndarray
    ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Pass 1 on one block: break down what the pulse shorts, then find the working
        cells that switch, and those of the rest that are disturbed and denoised. Returns
        how many switch, every cell's overdrive (|V| / V_th - 1) and the three masks (None:
        the effect cannot touch the block)."""
        p, fx = self.params, self.effects
        kind = self.kind[cells]
        vabs = np.abs(v)
        if fx.breakdown and (vabs > p.v_breakdown_v).any():
            broke = (vabs > p.v_breakdown_v) & (kind == WORKING)
            if broke.any():
                b = subset_cells(cells, broke, self.n_cells)
                self.kind[b] = BROKEN
                self._g[b] = p.breakdown_g_us
                self._relax_us[b] = 0.0
                self._rtn_amp_us[:, b] = 0.0
                kind = self.kind[cells]
        active = kind == WORKING
        vth = self._threshold(cells, v)
        ratio = vabs / vth
        over = ratio - 1.0 if fx.threshold else ratio
        switching = (over > 0) & active
        n_sw = int(np.count_nonzero(switching))
        disturbed = denoised = None
        if n_sw < switching.size:
            rest = active & ~switching
            if fx.disturb and p.disturb_std_us + abs(p.disturb_mean_us) > 0:
                disturbed = rest & (vabs >= p.disturb_v_min_v)
            if fx.rtn:
                denoised = rest & (vabs >= p.denoise_v_low_frac * vth) & (vabs < p.denoise_v_high_frac * vth)
        return n_sw, over, switching, disturbed, denoised

    def _threshold(self, cells: Sel, v: np.ndarray) -> np.ndarray:
        """Each cell's threshold for the polarity it sees (SET for V > 0, RESET otherwise)."""
        is_set = v > 0
        n_set = int(np.count_nonzero(is_set))
        if n_set == is_set.size:
            return _get(self.v_set_th, cells)
        if n_set == 0:
            return _get(self.v_reset_th, cells)
        return np.where(is_set, _get(self.v_set_th, cells), _get(self.v_reset_th, cells))

    def _switch_draws(self, m: int, gated: bool) -> dict[str, np.ndarray]:
        """Every random number ``m`` switching cells take, drawn in the model's order
        (gate compliance, cycle-to-cycle step, new RTN, relaxation), so a batch processed in
        blocks consumes the stream exactly as one whole-batch operation."""
        p, fx = self.params, self.effects
        out: dict[str, np.ndarray] = {}
        if p.cell_type == "1t1r" and fx.compliance and gated and fx.c2c and p.compliance_rel_std > 0:
            out["compliance"] = self._normal(m)
        if fx.c2c and p.c2c_rel_std > 0:
            out["c2c"] = self._normal(m)
        if fx.rtn:
            out.update(self._rtn_draws(m))
        if self._relaxes:
            out["relax_step"] = self._normal(m)
            if p.relax_rel_std > 0 or p.relax_rel_mean != 0:
                out["relax_rel"] = self._normal(m)
        return out

    def _switch(
        self, cells: Sel, v: np.ndarray, o: np.ndarray, gate_v: np.ndarray | None, width_s: float,
        draws: dict[str, np.ndarray],
    ) -> None:
        """Pass 2 on one block: the switching cells ``cells`` take their step; ``v``, the
        overdrive ``o`` (pass 1's), ``gate_v`` and ``draws`` hold one entry per cell (or one
        0-d value for all). Each cell's arithmetic is exactly the model's, operand for
        operand (the pool's float32 draws keep their precision)."""
        p, fx = self.params, self.effects
        is_set = v > 0
        n_set = int(np.count_nonzero(is_set))
        uniform = "set" if n_set == is_set.size else ("reset" if n_set == 0 else "")
        # state so far: stored value + the relaxation accumulated since the last switch
        # (age and relax are used again below for what is still pending)
        age = relax = None
        g = _get(self._g, cells)
        if self._relaxes:
            age = (self._clk[0] - _get(self._t_prog_s, cells)) * (-1.0 / p.relax_tau_s)
            relax = _get(self._relax_us, cells)
            g = g + relax * -np.expm1(age)
        else:
            g = g + 0.0
        if uniform:
            kappa = _get(self.set_kappa if uniform == "set" else self.reset_kappa, cells)
        else:
            kappa = np.where(is_set, _get(self.set_kappa, cells), _get(self.reset_kappa, cells))
        o_pow = o * o if p.overdrive_exponent == 2.0 else o**p.overdrive_exponent
        s = kappa * o_pow * ((width_s / p.width_ref_s) ** p.width_exponent)
        frac = -np.expm1(-s)
        gmin, gmax = _get(self.g_min_us, cells), _get(self.g_max_us, cells)
        top = gmax
        if p.cell_type == "1t1r" and fx.compliance and gate_v is not None:
            top = np.minimum(gmax, self._gate_compliance_us(gate_v, gmin, gmax, draws.get("compliance")))
        if not fx.nonlinearity:
            room = np.where(is_set & (g >= top), 0.0, 0.01 * (gmax - gmin))
        elif uniform == "set":
            room = np.maximum(top - g, 0.0)
        elif uniform == "reset":
            room = g - gmin
        else:
            room = np.where(is_set, np.maximum(top - g, 0.0), g - gmin)
        dg = room * frac
        if "c2c" in draws:
            dg *= np.maximum(1.0 + p.c2c_rel_std * draws["c2c"], 0.0)
        if uniform == "set":
            g_new = np.minimum(g + dg, np.maximum(top, g))
        elif uniform == "reset":
            g_new = np.maximum(g - dg, gmin)
        else:
            g_new = np.where(is_set, np.minimum(g + dg, np.maximum(top, g)), np.maximum(g - dg, gmin))
        self._g[cells] = g_new
        self._n_disturb[cells] = 0
        self._disturb_acc_us[cells] = 0.0
        if fx.rtn:
            self._put_rtn(cells, draws)
        if age is not None:
            # the part of earlier relaxation not yet relaxed carries on; g (and so g_new)
            # already holds the part that has
            pending = relax * np.exp(age)
            step = g_new - g
            new = step * (p.relax_step_std * draws["relax_step"] - p.relax_step_mean)
            if "relax_rel" in draws:  # a fraction of G, redrawn per switching pulse
                pending = g_new * (p.relax_rel_std * draws["relax_rel"] - p.relax_rel_mean)
            self._relax_us[cells] = pending + new
            self._t_prog_s[cells] = self._clk[0] + width_s

    def _disturb(self, di: np.ndarray, vabs: np.ndarray) -> None:
        """Pass 3: sub-threshold pulses on the cells ``di`` shift them (Drolet's law, capped)."""
        p = self.params
        self._n_disturb[di] += 1
        nn = self._n_disturb[di].astype(float)
        scale = (vabs / p.disturb_ref_v) ** 2
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

    def _denoise(self, ni: np.ndarray) -> None:
        """Pass 3: pulses just below threshold remove the large RTN fluctuator of the cells
        ``ni`` with some probability (and may shift them)."""
        p = self.params
        m = count_cells(ni, self.n_cells)
        removed = self._rng.random(m) < p.denoise_removal_probability
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
