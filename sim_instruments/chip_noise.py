"""What a read of the simulated chip sees on top of the stored state: relaxation so far,
random telegraph noise (two fluctuators per cell), read noise and the settled spread.

Why a module of its own: the noise is what every tuning algorithm fights and what the
benchmarks are calibrated against, so its model (and the sources of each term) reads in one
place. Standard-normal draws dominate the cost of a whole-array operation, so per-step
noise comes as random windows of a seeded pool (exactly Gaussian, reproducible).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from memprog.sim_instruments.chip_burst import burst_vectorisable, observed_burst
from memprog.sim_instruments.chip_cells import Sel, block_spans, count_cells, part

if TYPE_CHECKING:  # pragma: no cover
    from memprog.core.device_params import DeviceParams, Effects

POOL_SIZE = 1 << 20  # standard-normal draws held in the seeded noise pool


class ReadNoise:
    """Relaxation, RTN and read noise of the cells (a mixin of
    :class:`~memprog.sim_instruments.chip.SimChip`, whose arrays it reads)."""

    params: DeviceParams
    effects: Effects
    n_cells: int
    _rng: np.random.Generator
    _pool: np.ndarray
    _rtn_amp_pool: np.ndarray
    _clk: memoryview
    _g: np.ndarray
    _relax_us: np.ndarray
    _t_prog_s: np.ndarray
    _rtn_amp_us: np.ndarray
    _rtn_rate2: np.ndarray
    _rtn_state: np.ndarray
    _rtn_t_s: np.ndarray

    def _draw_rtn(self, idx: np.ndarray | slice) -> None:
        """A new filament configuration: fresh fluctuator amplitudes on the cells ``idx``.

        The traps' dwell times are properties of the device and stay; which traps couple
        to the filament (presence and amplitude of the large fluctuator) is redrawn.
        """
        m = count_cells(idx, self.n_cells)
        if m:
            self._put_rtn(idx, self._rtn_draws(m))

    def _rtn_draws(self, m: int) -> dict[str, np.ndarray]:
        """The draws of :meth:`_draw_rtn` for ``m`` cells, in stream order: presence of the
        large fluctuator, its amplitude (a pool window ``rtn_amp``, or for a large batch
        fresh standard normals ``rtn_z``), the small one's amplitude (uniform)."""
        p, rng = self.params, self._rng
        out = {"rtn_present": rng.random(m, dtype=np.float32) < p.rtn_large_probability}
        if m > POOL_SIZE // 2:
            out["rtn_z"] = rng.standard_normal(m)
        else:
            start = int(rng.integers(0, POOL_SIZE - m))
            out["rtn_amp"] = self._rtn_amp_pool[start : start + m]
        out["rtn_small"] = rng.random(m, dtype=np.float32)
        return out

    def _put_rtn(self, idx: Sel, draws: dict[str, np.ndarray]) -> None:
        """Give the cells ``idx`` the fluctuators of ``draws`` (one entry per cell)."""
        p = self.params
        if "rtn_z" in draws:
            amp = p.rtn_large_amp_us * np.exp(p.rtn_large_amp_log_std * draws["rtn_z"])
        else:
            amp = draws["rtn_amp"]
        # amp * present is amp or +0.0 (amplitudes are finite and positive): the same
        # values as np.where(present, amp, 0), several times faster
        amp = amp * draws["rtn_present"]
        self._rtn_amp_us[0][idx] = amp
        self._rtn_amp_us[1][idx] = p.rtn_small_amp_us * draws["rtn_small"]

    def _normal(self, n: int) -> np.ndarray:
        """``n`` standard-normal values (a random window of the seeded pool)."""
        if n > POOL_SIZE // 2:
            return self._rng.standard_normal(n)
        start = int(self._rng.integers(0, POOL_SIZE - n))
        return self._pool[start : start + n]
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

    def _observed_g(self, sel: Sel) -> np.ndarray:
        """Conductance a read sees: state + relaxation + RTN + white noise.

        A large contiguous read runs in cache-sized blocks (chip_cells.BLOCK_CELLS): the
        RTN flips and the white noise of the whole read are drawn first, in the order one
        whole-batch operation takes them, and each block takes its share, so the values
        are bit for bit those of reading every cell at once.
        """
        fx = self.effects
        n = count_cells(sel, self.n_cells)
        flips = self._rng.random((2, n), dtype=np.float32) if fx.rtn else None
        noisy = fx.read_noise or self._spreads
        z = self._normal(n) if noisy else None
        spans = block_spans(sel, self.n_cells)
        if len(spans) == 1:
            return self._observed_block(sel, flips, z)
        out = np.empty(n)
        for a, b in spans:
            out[a:b] = self._observed_block(
                part(sel, a, b, self.n_cells), None if flips is None else flips[:, a:b], None if z is None else z[a:b]
            )
        return out

    def _observed_burst(self, sel: Sel, reads: int, step_s: float) -> np.ndarray:
        """``reads`` reads of the cells ``sel`` (reads, cells), their starts ``step_s`` apart;
        the clock ends one read time after the last start.

        A burst of a few cells (an instrument's averaged read) is computed as arrays
        (:mod:`.chip_burst`), bit for bit what reading it one read at a time gives; a burst
        that premise does not cover (a cell named twice, a large batch) reads one at a time.
        """
        if burst_vectorisable(sel, reads, self.n_cells, self._pool.size):
            return observed_burst(self, sel, reads, step_s)
        rt = self.params.read_time_s
        out = np.empty((reads, count_cells(sel, self.n_cells)))
        for j in range(reads):
            if j:
                self._clk[0] += step_s - rt
            out[j] = self._observed_g(sel)
            self._clk[0] += rt
        return out

    @property
    def _spreads(self) -> bool:
        p = self.params
        return self.effects.flicker and (p.settled_spread_rel > 0 or p.settled_spread_rel_per_us != 0)

    def _observed_block(self, sel: Sel, flips: np.ndarray | None, z: np.ndarray | None) -> np.ndarray:
        """One block of :meth:`_observed_g`; ``flips`` (2, cells) and ``z`` (cells) are the
        block's uniform and standard-normal draws."""
        p, fx = self.params, self.effects
        g = self._g[sel] + self._relaxed_part(sel)
        if flips is not None:
            dt = (self._clk[0] - self._rtn_t_s[sel]).astype(np.float32)
            p_flip = np.float32(-0.5) * np.expm1(-dt * self._rtn_rate2[:, sel])
            st = self._rtn_state[:, sel] ^ (flips < p_flip)
            self._rtn_state[:, sel] = st
            self._rtn_t_s[sel] = self._clk[0]
            amp = self._rtn_amp_us[:, sel]
            half = st.astype(np.float32)  # +-0.5 per fluctuator, float32 on any numpy
            half -= 0.5
            half *= amp
            g += half[0] + half[1]
        if z is not None:
            sd = p.read_noise_abs_us + p.read_noise_rel * np.abs(g) if fx.read_noise else np.zeros(g.size)
            if self._spreads:
                sd = np.sqrt(sd * sd + self._flicker_var(g, sd))
            g += sd * z
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
