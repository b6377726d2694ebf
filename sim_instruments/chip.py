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

The chip is one class assembled from its physics, one module each: :mod:`.chip_cells`
(selections, defect codes), :mod:`.chip_noise` (relaxation so far, RTN, read noise),
:mod:`.chip_switching` (what a pulse does) and :mod:`.chip_lines` (the passive array as a
network). This module holds the construction (device-to-device draws, defects), the
clock, the public operations and the truth for tests; :mod:`.chip_state` maps
:data:`STATE_ARRAYS` onto a file so the chip is non-volatile.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memprog.core.device_params import DeviceParams, Effects
from memprog.core.errors import ConfigError
from memprog.core.presets import get_preset
from memprog.core.validation import require_finite, require_range
from memprog.sim_instruments.chip_cells import (
    BLOCK_CELLS,
    STUCK_HRS,
    STUCK_LRS,
    UNRESPONSIVE,
    WORKING,
    Sel,
    as_selection,
    steps_of_one,
)
from memprog.sim_instruments.chip_lines import BiasScheme, LineNetwork, ReadScheme
from memprog.sim_instruments.chip_noise import POOL_SIZE

#: the per-cell arrays a chip changes after construction: (attribute, dtype, rows of n);
#: a non-volatile chip keeps exactly these in its state file (chip_state)
STATE_ARRAYS: tuple[tuple[str, str, int], ...] = (
    ("_g", "<f8", 1),
    ("_relax_us", "<f8", 1),
    ("_t_prog_s", "<f8", 1),
    ("_disturb_acc_us", "<f8", 1),
    ("_rtn_t_s", "<f8", 1),
    ("_rtn_amp_us", "<f4", 2),
    ("_n_disturb", "<i4", 1),
    ("kind", "i1", 1),
    ("_rtn_state", "|b1", 2),
)


class SimChip(LineNetwork):
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
        self._pool = self._rng.standard_normal(POOL_SIZE).astype(np.float32)
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
            ss = np.random.SeedSequence([int(self.seed), 0x5EED, state.open_count])
            self._rng = np.random.default_rng(ss)
        self._state_file = state

    def _unbind_state(self) -> None:
        """Copy the state back into process memory (the file is about to be unmapped)."""
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
            # one pass: as unsigned, a negative index is huge, so max < n checks both ends
            if a.size and (a.astype(np.int64, copy=False).view(np.uint64).max() >= n):
                bad = a[(a < 0) | (a >= n)].ravel()[0]
                raise ConfigError(name, int(bad), f"[0, {n - 1}]")
        r, c = np.broadcast_arrays(r.astype(np.int64, copy=False), c.astype(np.int64, copy=False))
        idx = r * self.cols
        idx += c
        return idx.ravel()

    def _selection(self, rows: object, cols: object) -> tuple[np.ndarray, Sel]:
        """:meth:`flat_index` and :func:`as_selection` of it, for the public operations.

        A large batch of int64 rows and columns (a whole array) is indexed and checked for
        one contiguous run block by block in one pass over the indices; any out-of-range
        index falls back to :meth:`flat_index`, which names it exactly as it always has.
        """
        r, c = rows, cols
        if not (
            type(r) is np.ndarray and type(c) is np.ndarray and r.dtype == np.int64 and c.dtype == np.int64
            and r.ndim == 1 and r.shape == c.shape and r.size > BLOCK_CELLS
        ):
            idx = self.flat_index(rows, cols)
            return idx, as_selection(idx)
        idx = np.empty(r.size, dtype=np.int64)
        run = True
        for a in range(0, r.size, BLOCK_CELLS):
            rb, cb, ib = r[a : a + BLOCK_CELLS], c[a : a + BLOCK_CELLS], idx[a : a + BLOCK_CELLS]
            # as unsigned, a negative index is huge: max < n checks both ends
            if rb.view(np.uint64).max() >= self.rows or cb.view(np.uint64).max() >= self.cols:
                idx = self.flat_index(rows, cols)  # raises, naming the first bad index
                return idx, as_selection(idx)
            np.multiply(rb, self.cols, out=ib)
            ib += cb
            run = run and (a == 0 or ib[0] == idx[a - 1] + 1) and steps_of_one(ib)
        return idx, (slice(int(idx[0]), int(idx[-1]) + 1) if run else idx)

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
        idx, sel = self._selection(rows, cols)
        amp, width = self._check_pulse(amplitude_v, width_s)
        # one value for every cell stays 0-d (the physics broadcasts it; no per-cell copy);
        # per-cell values are checked against the batch's shape
        if amp.ndim:
            amp = np.broadcast_to(amp, idx.shape)
        gate = None
        if gate_v is not None:
            gate = require_finite("gate_v", gate_v)
            if gate.ndim:
                gate = np.broadcast_to(gate, idx.shape)
        if self.params.cell_type == "1t1r":
            self._apply(sel, amp, width, gate)
            self._cnt[0] += idx.size
            self._clk[0] += width
            return
        amp = np.broadcast_to(amp, idx.shape)
        for k in range(idx.size):
            r, c = divmod(int(idx[k]), self.cols)
            row_v, col_v = self.bias_lines(r, c, float(amp[k]))
            self.apply_line_voltages(row_v, col_v, width)

    def read(
        self, rows: object, cols: object, read_v: float | None = None, duration_s: float | None = None
    ) -> np.ndarray:
        """Measured conductance (µS) of the selected cells at ``read_v``.

        1T1R cells are read independently. A passive cell is read with its row at
        ``read_v`` and its column sensed at 0 V; unselected lines follow the chip's read
        scheme (``float`` lets sneak paths add current). ``duration_s`` is the simulated
        time the read takes (default: the technology's read time).
        """
        idx, sel = self._selection(rows, cols)
        rv = self.params.read_v if read_v is None else float(require_range("read_v", read_v, 1e-3, 1.0, "V"))
        self._cnt[1] += idx.size
        if self.params.cell_type == "1t1r" or self.read_scheme == "ground":
            g = self._observed_g(sel)
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
        out = self._observed_burst(as_selection(idx), int(reads), step)
        self._cnt[1] += int(reads) * idx.size
        return out

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
