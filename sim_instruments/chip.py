"""A whole simulated memristor array, vectorised over every cell.

All state lives in flat numpy arrays (one entry per cell), so a pulse or a read on the
65,536 cells of a 256x256 array is a handful of array operations. The simulator keeps the
true conductance for tests (:meth:`SimChip.true_conductance_us`); algorithms only ever see
noisy reads (:meth:`SimChip.read`).

Two access models:

* **1T1R** (``cell_type == "1t1r"``): every selected cell sees exactly the pulse applied
  to it; the gate voltage sets the SET compliance. :meth:`pulse` updates any set of cells
  in one operation (the on-chip controller pulses a row in parallel).
* **passive 0T1R**: cells are only reachable through their lines. :meth:`apply_line_voltages`
  is the physical primitive (every cell sees ``V_row - V_col``; floating lines are solved as
  a resistive network). :meth:`pulse` on a passive chip applies the V/3 or V/2 scheme, one
  selected cell per operation, so half-selected cells are disturbed exactly as in the lab.

Every operation advances a simulated clock (:attr:`clock_s`) by its real duration.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from memprog.core.device_params import DeviceParams, Effects
from memprog.core.errors import ConfigError
from memprog.core.presets import get_preset
from memprog.core.validation import require_finite, require_positive, require_range

BiasScheme = Literal["v3", "v2"]
Sel = np.ndarray | slice  # flat cell selection: an index array, or a slice for contiguous runs
ReadScheme = Literal["ground", "float"]

# stuck-kind codes
WORKING, STUCK_HRS, STUCK_LRS, UNRESPONSIVE, BROKEN = 0, 1, 2, 3, 4
_LEAK_S = 1e-12
_POOL_SIZE = 1 << 20  # tiny conductance to ground so isolated floating lines stay solvable


def _count(sel: Sel, n: int) -> int:
    return len(range(*sel.indices(n))) if isinstance(sel, slice) else int(sel.size)


def _subset(sel: Sel, mask: np.ndarray, n: int) -> np.ndarray:
    """The flat indices of ``sel`` where ``mask`` is true."""
    base = np.arange(*sel.indices(n)) if isinstance(sel, slice) else sel
    return base[mask]


def _as_sel(idx: np.ndarray) -> Sel:
    """A slice when ``idx`` is one contiguous ascending run (views instead of gathers)."""
    if idx.size == 1:  # one cell (the write-verify hot path): basic indexing is cheapest
        i = int(idx[0])
        return slice(i, i + 1)
    if idx.size > 1 and idx[-1] - idx[0] == idx.size - 1 and np.all(np.diff(idx) == 1):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


class SimChip:
    """Simulated memristor array with device physics.

    Args:
        rows: number of word lines (>= 1).
        cols: number of bit lines (>= 1).
        technology: a preset name (``tio2_passive``, ``hfo2_1t1r``, ``tio2x_feedforward``)
            or a :class:`DeviceParams`.
        seed: seeds every random draw; the same seed gives the same chip and the same
            noise stream, bit for bit.
        effects: which physical effects are on (all by default).
        bias_scheme: passive arrays only, ``"v3"`` or ``"v2"`` half-select biasing.
        read_scheme: passive arrays only, unselected lines ``"ground"``-ed or ``"float"``-ing
            during :meth:`read` (floating lets sneak paths in).
    """

    def __init__(
        self,
        rows: int,
        cols: int,
        technology: str | DeviceParams = "hfo2_1t1r",
        seed: int = 0,
        effects: Effects | None = None,
        bias_scheme: BiasScheme = "v3",
        read_scheme: ReadScheme = "ground",
    ) -> None:
        for name, n in (("rows", rows), ("cols", cols)):
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 4096:
                raise ConfigError(name, n, "an integer in [1, 4096]")
        if bias_scheme not in ("v3", "v2"):
            raise ConfigError("bias_scheme", bias_scheme, "'v3' or 'v2'")
        if read_scheme not in ("ground", "float"):
            raise ConfigError("read_scheme", read_scheme, "'ground' or 'float'")
        self.params = get_preset(technology) if isinstance(technology, str) else technology
        if not isinstance(self.params, DeviceParams):
            raise ConfigError("technology", technology, "a preset name or DeviceParams")
        self.technology = technology if isinstance(technology, str) else "custom"
        self.effects = effects or Effects()
        self.rows, self.cols = int(rows), int(cols)
        self.n_cells = self.rows * self.cols
        self.bias_scheme: BiasScheme = bias_scheme
        self.read_scheme: ReadScheme = read_scheme
        self.seed = seed
        # clock and counters live in small arrays so a non-volatile chip maps them onto its
        # state file with the per-cell arrays (see chip_state); the properties keep the
        # Python float/int API
        # (memoryviews: an item is a plain Python float/int, read and written in ~40 ns)
        self._clk = memoryview(bytearray(8)).cast("d")  # [clock_s]
        self._cnt = memoryview(bytearray(16)).cast("q")  # [pulse_count, read_count]
        #: the open state file of a non-volatile chip (None: in memory only)
        self._state_file: Any = None
        self._rng = np.random.default_rng(seed)
        # Standard-normal draws dominate the cost of a whole-array operation, so per-step
        # noise is taken as random windows of a seeded pool (exactly Gaussian, reproducible).
        self._pool = self._rng.standard_normal(_POOL_SIZE).astype(np.float32)
        p = self.params
        self._rtn_amp_pool = (p.rtn_large_amp_us * np.exp(p.rtn_large_amp_log_std * self._pool)).astype(np.float32)
        self._draw_devices()

    # ------------------------------------------------------------------ clock, counters
    @property
    def clock_s(self) -> float:
        """Simulated time (s) since the chip was made: it keeps running across reopens."""
        return self._clk[0]

    @clock_s.setter
    def clock_s(self, value: float) -> None:
        self._clk[0] = float(value)

    @property
    def pulse_count(self) -> int:
        return self._cnt[0]

    @pulse_count.setter
    def pulse_count(self, value: int) -> None:
        self._cnt[0] = int(value)

    @property
    def read_count(self) -> int:
        return self._cnt[1]

    @read_count.setter
    def read_count(self, value: int) -> None:
        self._cnt[1] = int(value)

    # ------------------------------------------------------------------ non-volatile state
    def _bind_state(self, state: Any, reopened: bool) -> None:
        """Move the mutable state onto ``state``'s mapped arrays (a chip_state.ChipStateFile).

        A new file receives this freshly drawn chip; a reopened one overwrites it, and the
        noise continues from ``SeedSequence([seed, 0x5EED, open_count])`` (chip_state).
        """
        from memprog.sim_instruments.chip_state import OPENS, STATE_ARRAYS

        clk, cnt = state.clock_view, state.count_view
        if not reopened:
            clk[0], cnt[0], cnt[1] = self._clk[0], self._cnt[0], self._cnt[1]
        self._clk, self._cnt = clk, cnt
        for name, _, _ in STATE_ARRAYS:
            view = state.arrays[name]
            if not reopened:
                view[...] = getattr(self, name)
            setattr(self, name, view)
        if reopened:
            ss = np.random.SeedSequence([int(self.seed), 0x5EED, int(state.i64[OPENS])])
            self._rng = np.random.default_rng(ss)
        self._state_file = state

    def _unbind_state(self) -> None:
        """Copy the state back into process memory (the file is about to be unmapped)."""
        from memprog.sim_instruments.chip_state import STATE_ARRAYS

        for name, _, _ in STATE_ARRAYS:
            setattr(self, name, np.array(getattr(self, name)))
        clk, cnt = self._clk, self._cnt
        self._clk = memoryview(bytearray(clk.tobytes())).cast("d")
        self._cnt = memoryview(bytearray(cnt.tobytes())).cast("q")
        clk.release()
        cnt.release()
        self._state_file = None

    # ------------------------------------------------------------------ construction
    def _spread(self, mean: float, rel_std: float) -> np.ndarray:
        """One d2d draw per cell (clipped at 1 % of the mean to stay physical)."""
        if not self.effects.d2d or rel_std == 0:
            return np.full(self.n_cells, mean, dtype=float)
        x = mean * (1.0 + rel_std * self._rng.standard_normal(self.n_cells))
        return np.maximum(x, 0.01 * abs(mean))

    def _draw_devices(self) -> None:
        p, n = self.params, self.n_cells
        self.g_min_us = self._spread(p.g_min_us, p.g_bounds_d2d)
        self.g_max_us = self._spread(p.g_max_us, p.g_bounds_d2d)
        self.g_max_us = np.maximum(self.g_max_us, self.g_min_us * 1.01)
        self.v_set_th = self._spread(p.v_set_threshold_v, p.v_threshold_d2d)
        self.v_reset_th = self._spread(p.v_reset_threshold_v, p.v_threshold_d2d)
        self.set_kappa = self._spread(p.set_kappa, p.kappa_d2d)
        self.reset_kappa = self._spread(p.reset_kappa, p.kappa_d2d)
        # as-fabricated state: just above the lower bound
        self._g = self.g_min_us + 0.05 * (self.g_max_us - self.g_min_us) * self._rng.random(n)
        # defects
        self.kind = np.zeros(n, dtype=np.int8)
        if self.effects.stuck:
            u = self._rng.random(n)
            f1, f2, f3 = p.stuck_hrs_fraction, p.stuck_lrs_fraction, p.unresponsive_fraction
            self.kind[u < f1] = STUCK_HRS
            self.kind[(u >= f1) & (u < f1 + f2)] = STUCK_LRS
            self.kind[(u >= f1 + f2) & (u < f1 + f2 + f3)] = UNRESPONSIVE
            hrs, lrs, unr = self.kind == STUCK_HRS, self.kind == STUCK_LRS, self.kind == UNRESPONSIVE
            lo, hi = p.stuck_hrs_range_us
            self._g[hrs] = self._rng.uniform(lo, hi, hrs.sum())
            self._g[lrs] = np.maximum(
                p.stuck_lrs_mean_us + p.stuck_lrs_std_us * self._rng.standard_normal(lrs.sum()), 1.0
            )
            self._g[unr] = p.unresponsive_us * (1 + 0.05 * self._rng.standard_normal(unr.sum()))
        # relaxation: amplitude drawn at each programming event, decays with relax_tau_s
        self._relax_us = np.zeros(n)
        self._t_prog_s = np.zeros(n)
        # disturb counter since the cell was last switched
        self._n_disturb = np.zeros(n, dtype=np.int32)
        # disturb accumulated since that switch (capped at +-disturb_cap_us, Drolet)
        self._disturb_acc_us = np.zeros(n)  # float64 like the state: the applied shift is exactly the change
        # RTN: two fluctuators per cell (0: large, removable by denoise; 1: small)
        self._rtn_amp_us = np.zeros((2, n), dtype=np.float32)
        log_lo, log_hi = np.log(p.rtn_dwell_min_s), np.log(p.rtn_dwell_max_s)
        # 2 / dwell time: the flip probability after dt is (1 - exp(-dt * rate2)) / 2
        self._rtn_rate2 = (2.0 / np.exp(self._rng.uniform(log_lo, log_hi, (2, n)))).astype(np.float32)
        self._rtn_state = self._rng.random((2, n)) < 0.5
        self._rtn_t_s = np.zeros(n)
        self._draw_rtn(slice(0, n))

    def _draw_rtn(self, idx: np.ndarray | slice) -> None:
        """A new filament configuration: fresh fluctuator amplitudes on the cells ``idx``.

        The traps' dwell times are properties of the device and stay; which traps couple
        to the filament (presence and amplitude of the large fluctuator) is redrawn.
        """
        p = self.params
        m = _count(idx, self.n_cells)
        if m == 0:
            return
        rng = self._rng
        present = rng.random(m, dtype=np.float32) < p.rtn_large_probability
        if m > _POOL_SIZE // 2:
            amp = p.rtn_large_amp_us * np.exp(p.rtn_large_amp_log_std * rng.standard_normal(m))
        else:
            start = int(rng.integers(0, _POOL_SIZE - m))
            amp = self._rtn_amp_pool[start : start + m]
        self._rtn_amp_us[0, idx] = np.where(present, amp, np.float32(0.0))
        self._rtn_amp_us[1, idx] = p.rtn_small_amp_us * rng.random(m, dtype=np.float32)

    def _normal(self, n: int) -> np.ndarray:
        """``n`` standard-normal values (a random window of the seeded pool)."""
        if n > _POOL_SIZE // 2:
            return self._rng.standard_normal(n)
        start = int(self._rng.integers(0, _POOL_SIZE - n))
        return self._pool[start : start + n]

    # ------------------------------------------------------------------ index helpers
    def flat_index(self, rows: object, cols: object) -> np.ndarray:
        """Validated flat cell indices for paired ``rows``/``cols`` (scalars broadcast)."""
        if type(rows) is int and type(cols) is int:  # one cell named by Python ints
            if 0 <= rows < self.rows and 0 <= cols < self.cols:
                return np.array([rows * self.cols + cols])
        r = np.asarray(rows)
        c = np.asarray(cols)
        for name, a, n in (("rows", r, self.rows), ("cols", c, self.cols)):
            if a.dtype.kind not in "iu":
                if a.size and not np.all(np.equal(np.mod(a, 1), 0)):
                    raise ConfigError(name, a.ravel()[0], "integer cell indices")
                a = a.astype(np.int64)
            if a.size and (a.min() < 0 or a.max() >= n):
                bad = a[(a < 0) | (a >= n)].ravel()[0]
                raise ConfigError(name, int(bad), f"[0, {n - 1}]")
        r, c = np.broadcast_arrays(r.astype(np.int64, copy=False), c.astype(np.int64, copy=False))
        return (r * self.cols + c).ravel()

    def _gate_compliance_us(self, gate_v: np.ndarray, gmin: np.ndarray, gmax: np.ndarray) -> np.ndarray:
        """SET ceiling set by the 1T1R gate: linear in the gate voltage between the cell's bounds."""
        p = self.params
        span = p.gate_v_max_v - p.gate_v_min_v
        frac = np.clip((gate_v - p.gate_v_min_v) / span, 0.0, 1.0)
        g = gmin + frac * (gmax - gmin)
        if self.effects.c2c and p.compliance_rel_std > 0:
            g = g * (1 + p.compliance_rel_std * self._normal(g.size))
        return g

    # ------------------------------------------------------------------ physics core
    @property
    def _relaxes(self) -> bool:
        p = self.params
        return self.effects.relaxation and (
            p.relax_rel_std > 0 or p.relax_rel_mean != 0 or p.relax_step_std > 0 or p.relax_step_mean != 0
        )

    def _relaxed_part(self, sel: Sel) -> np.ndarray | float:
        """Relaxation accumulated so far by the cells ``sel`` (0 if the effect is off)."""
        if not self._relaxes:
            return 0.0
        age = (self._clk[0] - self._t_prog_s[sel]) * (-1.0 / self.params.relax_tau_s)
        return self._relax_us[sel] * -np.expm1(age)

    def _apply(self, sel: Sel, v: np.ndarray, width_s: float, gate_v: np.ndarray | None) -> None:
        """Apply cell voltages ``v`` (V, top minus bottom) to the flat cells ``sel``."""
        p, fx, rng = self.params, self.effects, self._rng
        kind = self.kind[sel]
        vabs = np.abs(v)
        if fx.breakdown:
            broke = vabs > p.v_breakdown_v
            if broke.any():
                broke &= kind == WORKING
                b = _subset(sel, broke, self.n_cells)
                self.kind[b] = BROKEN
                self._g[b] = p.breakdown_g_us
                self._relax_us[b] = 0.0
                self._rtn_amp_us[:, b] = 0.0
                kind = self.kind[sel]
        active = kind == WORKING
        if not active.all():
            sel = _subset(sel, active, self.n_cells)
            v, vabs = v[active], vabs[active]
            if gate_v is not None:
                gate_v = gate_v[active]
        if _count(sel, self.n_cells) == 0:
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
            si = sel if all_sw else _subset(sel, switching, self.n_cells)
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
                di = _subset(sel, dmask, self.n_cells)
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
                ni = _subset(sel, dn, self.n_cells)
                m = _count(ni, self.n_cells)
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

    # ------------------------------------------------------------------ public operations
    def pulse(
        self,
        rows: object,
        cols: object,
        amplitude_v: object,
        width_s: float,
        gate_v: object | None = None,
    ) -> None:
        """Apply a voltage pulse to the selected cells.

        On a 1T1R chip all selected cells are pulsed in parallel (one ``width_s`` of
        simulated time); ``gate_v`` sets the SET compliance. On a passive chip each
        selected cell is one operation under the chip's bias scheme, in the order given.
        Amplitudes (and gate voltages) may be scalars or one value per cell.
        """
        idx = self.flat_index(rows, cols)
        amp, width = self._check_pulse(amplitude_v, width_s)
        if amp.ndim == 0:
            amp = np.full(idx.shape, float(amp))
        else:
            amp = np.broadcast_to(amp, idx.shape).astype(float)
        gate = None
        if gate_v is not None:
            gate = np.broadcast_to(require_finite("gate_v", gate_v), idx.shape).astype(float)
        if self.params.cell_type == "1t1r":
            self._apply(_as_sel(idx), amp, width, gate)
            self._cnt[0] += idx.size
            self._clk[0] += width
            return
        for k in range(idx.size):
            r, c = divmod(int(idx[k]), self.cols)
            row_v, col_v = self.bias_lines(r, c, float(amp[k]))
            self.apply_line_voltages(row_v, col_v, width)

    def bias_lines(self, row: int, col: int, amplitude_v: float) -> tuple[np.ndarray, np.ndarray]:
        """Line voltages of the chip's V/3 or V/2 scheme selecting one cell."""
        v = amplitude_v
        if self.bias_scheme == "v3":
            row_v = np.full(self.rows, v / 3.0)
            col_v = np.full(self.cols, 2.0 * v / 3.0)
        else:
            row_v = np.full(self.rows, v / 2.0)
            col_v = np.full(self.cols, v / 2.0)
        row_v[row] = v
        col_v[col] = 0.0
        return row_v, col_v

    def apply_line_voltages(
        self, row_v: object, col_v: object, width_s: float, gate_v: object | None = None
    ) -> None:
        """Drive every line (NaN = floating) for ``width_s``; every cell sees V_row - V_col."""
        rv = np.asarray(row_v, dtype=float)
        cv = np.asarray(col_v, dtype=float)
        if rv.shape != (self.rows,) or cv.shape != (self.cols,):
            raise ConfigError("row_v/col_v shape", (rv.shape, cv.shape), f"({self.rows},), ({self.cols},)")
        self._check_pulse(np.nan_to_num(np.concatenate([rv, cv])), width_s)
        if np.isnan(rv).all() and np.isnan(cv).all():
            self._clk[0] += width_s
            return
        rv, cv = self._solve_floating(rv, cv, self._g.reshape(self.rows, self.cols))
        v_cell = (rv[:, None] - cv[None, :]).ravel()
        gate = None if gate_v is None else np.repeat(np.asarray(gate_v, float), self.cols)
        self._apply(slice(0, self.n_cells), v_cell, float(width_s), gate)
        self._cnt[0] += 1
        self._clk[0] += width_s

    def _solve_floating(
        self, rv: np.ndarray, cv: np.ndarray, g_us: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Voltages of floating (NaN) lines from Kirchhoff's current law on the array."""
        fr, fc = np.isnan(rv), np.isnan(cv)
        if not fr.any() and not fc.any():
            return rv, cv
        g = g_us * 1e-6
        if not self.effects.sneak:
            # no sneak paths: floating lines carry no current, cells on them see 0 V
            return np.where(fr, 0.0, rv), np.where(fc, 0.0, cv)
        nr, nc = int(fr.sum()), int(fc.sum())
        a = np.zeros((nr + nc, nr + nc))
        b = np.zeros(nr + nc)
        rv0, cv0 = np.nan_to_num(rv), np.nan_to_num(cv)
        if nr:
            grr = g[fr]
            a[:nr, :nr] = np.diag(grr.sum(axis=1) + _LEAK_S)
            a[:nr, nr:] = -grr[:, fc]
            b[:nr] = grr[:, ~fc] @ cv0[~fc]
        if nc:
            gcc = g[:, fc].T
            a[nr:, nr:] = np.diag(gcc.sum(axis=1) + _LEAK_S)
            a[nr:, :nr] = -gcc[:, fr]
            b[nr:] = gcc[:, ~fr] @ rv0[~fr]
        x = np.linalg.solve(a, b)
        rv, cv = rv0.copy(), cv0.copy()
        rv[fr], cv[fc] = x[:nr], x[nr:]
        return rv, cv

    def _observed_g(self, sel: Sel) -> np.ndarray:
        """Conductance a read sees: state + relaxation + RTN + white noise."""
        p, fx, rng = self.params, self.effects, self._rng
        g = self._g[sel] + self._relaxed_part(sel)
        if fx.rtn:
            dt = (self._clk[0] - self._rtn_t_s[sel]).astype(np.float32)
            p_flip = np.float32(-0.5) * np.expm1(-dt * self._rtn_rate2[:, sel])
            st = self._rtn_state[:, sel] ^ (rng.random(p_flip.shape, dtype=np.float32) < p_flip)
            self._rtn_state[:, sel] = st
            self._rtn_t_s[sel] = self._clk[0]
            amp = self._rtn_amp_us[:, sel]
            half = st.astype(np.float32)  # +-0.5 per fluctuator, float32 on any numpy
            half -= 0.5
            half *= amp
            g += half[0] + half[1]
        spread = fx.flicker and (p.settled_spread_rel > 0 or p.settled_spread_rel_per_us != 0)
        if fx.read_noise or spread:
            sd = p.read_noise_abs_us + p.read_noise_rel * np.abs(g) if fx.read_noise else np.zeros(g.size)
            if spread:
                sd = np.sqrt(sd * sd + self._flicker_var(g, sd))
            g += sd * self._normal(g.size)
        return g

    def _flicker_var(self, g: np.ndarray, instrument_sd: np.ndarray) -> np.ndarray:
        """Variance (µS²) of the white flicker that brings a read's spread to the settled
        spread a source measured on tuned devices: what the small RTN fluctuator (its
        expected variance) and the instrument already carry is subtracted, so no part is
        counted twice. The large fluctuator is not: a source's spread is measured after a
        tuning whose acceptance (ten reads in a 1 % band, Drolet) passes states that carry
        one only rarely, so on top of the source's spread is where it belongs."""
        p = self.params
        g = np.abs(g)
        total = np.maximum(p.settled_spread_rel + p.settled_spread_rel_per_us * g, 0.0) * g
        # a two-level fluctuator of peak-to-peak A has variance A**2 / 4; the small one's A
        # is uniform in [0, A_small]
        rtn_var = p.rtn_small_amp_us**2 / 12 if self.effects.rtn else 0.0
        return np.maximum(total * total - rtn_var - instrument_sd * instrument_sd, 0.0)

    def read(
        self, rows: object, cols: object, read_v: float | None = None, duration_s: float | None = None
    ) -> np.ndarray:
        """Measured conductance (µS) of the selected cells at ``read_v``.

        1T1R cells are read independently. A passive cell is read with its row at
        ``read_v`` and its column sensed at 0 V; unselected lines follow the chip's read
        scheme (``float`` lets sneak paths add current). ``duration_s`` is the simulated
        time the read takes (default: the technology's read time).
        """
        idx = self.flat_index(rows, cols)
        rv = self.params.read_v if read_v is None else float(require_range("read_v", read_v, 1e-3, 1.0, "V"))
        self._cnt[1] += idx.size
        if self.params.cell_type == "1t1r" or self.read_scheme == "ground":
            g = self._observed_g(_as_sel(idx))
        else:
            g = np.empty(idx.size)
            for k in range(idx.size):
                r, c = divmod(int(idx[k]), self.cols)
                row_v = np.full(self.rows, np.nan)
                col_v = np.full(self.cols, np.nan)
                row_v[r], col_v[c] = rv, 0.0
                _, col_i = self.line_currents(row_v, col_v, advance=False)
                g[k] = col_i[c] / rv * 1e6
        self._clk[0] += self.params.read_time_s if duration_s is None else float(duration_s)
        return g

    def read_burst(
        self,
        rows: object,
        cols: object,
        reads: int,
        read_v: float | None = None,
        interval_s: float | None = None,
    ) -> np.ndarray:
        """``reads`` successive reads of the selected cells, (reads, cells) in µS.

        Exactly ``reads`` calls of :meth:`read` whose starts are ``interval_s`` apart (at
        least the read time; default: back to back), the cells validated once (an
        instrument's burst of reads). The clock ends one read time after the last start.
        """
        if isinstance(reads, bool) or not isinstance(reads, int | np.integer) or reads < 1:
            raise ConfigError("reads", reads, "an integer >= 1")
        p = self.params
        step = p.read_time_s
        if interval_s is not None:
            step = max(float(require_finite("interval_s", interval_s)), p.read_time_s)
        idx = self.flat_index(rows, cols)
        if not (p.cell_type == "1t1r" or self.read_scheme == "ground"):
            out = np.empty((int(reads), idx.size))
            for j in range(int(reads)):
                if j:
                    self._clk[0] += step - p.read_time_s
                out[j] = self.read(idx // self.cols, idx % self.cols, read_v)
            return out
        if read_v is not None:
            require_range("read_v", read_v, 1e-3, 1.0, "V")
        sel = _as_sel(idx)
        out = np.empty((int(reads), idx.size))
        for j in range(int(reads)):
            if j:
                self._clk[0] += step - p.read_time_s
            out[j] = self._observed_g(sel)
            self._clk[0] += p.read_time_s
        self._cnt[1] += int(reads) * idx.size
        return out

    def line_currents(
        self, row_v: object, col_v: object, advance: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Currents (A) at every line for a read-level bias (NaN = floating line).

        Row currents flow from the row's source into the array; column currents flow out
        of the array into the column's terminal. Noise, RTN and relaxation are included.
        """
        rv = np.asarray(row_v, dtype=float)
        cv = np.asarray(col_v, dtype=float)
        if rv.shape != (self.rows,) or cv.shape != (self.cols,):
            raise ConfigError("row_v/col_v shape", (rv.shape, cv.shape), f"({self.rows},), ({self.cols},)")
        vmax = np.nanmax(np.abs(np.concatenate([rv, cv]))) if not np.isnan(rv).all() or not np.isnan(cv).all() else 0.0
        if vmax >= self.params.disturb_v_min_v and self.params.cell_type == "passive":
            raise ConfigError("read bias", float(vmax), f"< {self.params.disturb_v_min_v} V (a read must not disturb)")
        g = self._observed_g(slice(0, self.n_cells)).reshape(self.rows, self.cols)
        rv, cv = self._solve_floating(rv, cv, g)
        dv = rv[:, None] - cv[None, :]
        i = g * 1e-6 * dv
        if advance:
            self._clk[0] += self.params.read_time_s
        return i.sum(axis=1), i.sum(axis=0)

    def vmm(self, input_v: object) -> np.ndarray:
        """Analog vector-matrix multiply: row voltages in, column currents (A) out.

        All word lines are driven at once and every column is held at virtual ground, so
        column j collects sum_i G_ij * V_i (with read noise and RTN on every cell).
        ``input_v`` is one vector (rows,) or a batch (k, rows): k integrations one after
        the other, each with its own noise and one ``read_time_s`` of simulated time;
        the result is (cols,) or (k, cols).

        Only cells on driven rows (V != 0) carry current, so the noisy conductance is
        evaluated on the span of rows that any vector drives: the same currents, without
        sampling noise on cells that contribute nothing.
        """
        v = require_range("input_v", input_v, -0.5, 0.5, "V")
        single = v.ndim == 1
        vb = v[None, :] if single else v
        if vb.ndim != 2 or vb.shape[1] != self.rows or vb.shape[0] == 0:
            raise ConfigError("input_v shape", v.shape, f"({self.rows},) or (k, {self.rows})")
        driven = np.flatnonzero(np.any(vb != 0, axis=0))
        out = np.zeros((vb.shape[0], self.cols))
        if driven.size:
            r0, r1 = int(driven[0]), int(driven[-1]) + 1
            sel = slice(r0 * self.cols, r1 * self.cols)
            vs = vb[:, r0:r1]
            for k in range(vb.shape[0]):
                g = self._observed_g(sel).reshape(r1 - r0, self.cols)
                out[k] = (g * 1e-6).T @ vs[k]
                self._clk[0] += self.params.read_time_s
        else:
            self._clk[0] += self.params.read_time_s * vb.shape[0]
        return out[0] if single else out

    def advance(self, dt_s: float) -> None:
        """Let simulated time pass (bus latency, waits, retention)."""
        dt = float(require_finite("dt_s", dt_s))
        if dt < 0:
            raise ConfigError("dt_s", dt, ">= 0 s")
        self._clk[0] += dt

    # ------------------------------------------------------------------ truth for tests
    def true_conductance_us(self, rows: object = None, cols: object = None) -> np.ndarray:
        """The noiseless state including relaxation so far; whole array if no cells given."""
        if rows is None and cols is None:
            idx = np.arange(self.n_cells)
            shape: tuple[int, ...] = (self.rows, self.cols)
        else:
            idx = self.flat_index(rows, cols)
            shape = idx.shape
        g = self._g[idx].copy()
        if self._relaxes:
            g += self._relax_us[idx] * (1.0 - np.exp(-(self._clk[0] - self._t_prog_s[idx]) / self.params.relax_tau_s))
        return g.reshape(shape)

    def set_state_us(self, conductance_us: object, rows: object = None, cols: object = None) -> None:
        """Put working cells in a known state (tests, demos); stuck cells are left alone.

        Values outside a cell's own [g_min, g_max] raise ConfigError: nothing is clipped.
        """
        if rows is None and cols is None:
            idx = np.arange(self.n_cells)
        else:
            idx = self.flat_index(rows, cols)
        g = np.broadcast_to(require_finite("conductance_us", conductance_us), (idx.size,)).astype(float)
        working = self.kind[idx] == WORKING
        idx, g = idx[working], g[working]
        bad = (g < self.g_min_us[idx]) | (g > self.g_max_us[idx])
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ConfigError(
                "conductance_us", float(g[k]), f"[{self.g_min_us[idx[k]]:.1f}, {self.g_max_us[idx[k]]:.1f}] µS for cell {divmod(int(idx[k]), self.cols)}"
            )
        self._g[idx] = g
        self._relax_us[idx] = 0.0
        self._n_disturb[idx] = 0
        self._disturb_acc_us[idx] = 0.0

    def rtn_peak_to_peak_us(self, rows: object = None, cols: object = None) -> np.ndarray:
        """Total RTN peak-to-peak amplitude of the cells (truth, for tests)."""
        idx = np.arange(self.n_cells) if rows is None else self.flat_index(rows, cols)
        return self._rtn_amp_us[:, idx].sum(axis=0)

    @property
    def working_mask(self) -> np.ndarray:
        """True where the cell responds to pulses (not stuck, unresponsive or broken)."""
        return (self.kind == WORKING).reshape(self.rows, self.cols)

    @property
    def kind_grid(self) -> np.ndarray:
        """Per-cell defect code: 0 working, 1 HRS-stuck, 2 LRS-stuck, 3 unresponsive, 4 broken."""
        return self.kind.reshape(self.rows, self.cols)

    def state_nbytes(self) -> int:
        """Memory held by the chip's per-cell arrays."""
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))
