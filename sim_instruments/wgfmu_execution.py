"""The simulated WGFMU library's execution layer: ``execute`` plays the sequences on the chip.

Why a module of its own: this is the physics of the WGFMU -- how a programmed waveform
acts on the chip and what the channels measure while it does. ``execute`` plays every
connected channel's sequence together on the chip's pads (the bench wiring says which pad
each channel's probe touches): the merged waveform is cut at every breakpoint; each piece
acts on the chip as two flat halves at its start and end levels (exact for flat parts; a
trapezoidal pulse acts as a rectangle of its full width at half maximum, the width
convention of the other stacks) through :meth:`SimChip.apply_line_voltages`, floating pads
solved by Kirchhoff's law; pieces whose bias stays below the chip's quiet level only
advance the clock. Measure events sample the channel's current (positive out of the
channel into the chip) or voltage while this happens. The sequencer is synchronous: after
``execute`` the status is ``COMPLETED`` and every value is ready.

Choices where public sources are silent [choice]: a current beyond 1.2 x the measurement
range reads as 1.2 x the range (saturation; the driver treats anything beyond the range as
over range); instrument noise of 2e-5 x range per 10 ns sample, averaged down over the
averaging time; voltage measurement noise 50 uV.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memprog.core.probe_wiring import parse_pad
from memprog.sim_instruments.b1500 import SimB1500
from memprog.sim_instruments.b1500_state import OP_FASTIV, OP_PG
from memprog.sim_instruments.wgfmu_codes import (
    CONTEXT_ERROR,
    CURRENT_RANGES,
    FORCE_RANGES,
    GRID_S,
    PARAMETER_OUT_OF_RANGE_ERROR,
    STATUS_COMPLETED,
    CallFailed,
)
from memprog.sim_instruments.wgfmu_patterns import HeldEvent, WgfmuPatterns, interp_right

_SATURATION = 1.2  # [choice]
_NOISE_PER_RANGE = 2e-5  # [choice]
_V_NOISE = 50e-6  # [choice]


class WgfmuExecution(WgfmuPatterns):
    """``update``, ``execute`` and the sequencer status functions of ``wgfmu.h``."""

    _rng: np.random.Generator
    elapsed_s: float
    total_s: float
    executions: int

    # ================================================================== execution
    def _apply_setups(self, channels: list[int]) -> None:
        mf = self._session()
        for ch in channels:
            s = self._setup(ch)
            hw = mf.wgfmu[ch]
            hw.mode, hw.force_range = s.mode, s.force_range
            hw.measure_mode, hw.current_range, hw.voltage_range = (
                s.measure_mode,
                s.current_range,
                s.voltage_range,
            )

    def _update(self) -> None:
        mf = self._session()
        self._apply_setups(sorted(set(self.setups) | set(self.sequences)))
        for ch, seq in self.sequences.items():
            if seq and mf.wgfmu[ch].connected:
                mf.wgfmu[ch].level_v = self.patterns[seq[0][0]].volts[0]
        self._advance("io")

    def _execute(self) -> None:
        mf = self._session()
        chans = sorted(self.sequences)
        for ch in chans:
            hw = mf.wgfmu[ch]
            if not hw.connected:
                raise CallFailed(
                    CONTEXT_ERROR,
                    f"channel {ch} has a sequence but is not connected (WGFMU_connect)",
                )
        self._apply_setups(sorted(set(self.setups) | set(chans)))
        waves: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        events: dict[int, list[tuple[float, HeldEvent]]] = {}
        for ch in chans:
            hw = mf.wgfmu[ch]
            if hw.mode not in (OP_FASTIV, OP_PG):
                raise CallFailed(
                    CONTEXT_ERROR, f"channel {ch} is not in Fast IV or PG mode (setOperationMode)"
                )
            if hw.mode == OP_PG and hw.measure_mode == 4001:
                raise CallFailed(CONTEXT_ERROR, f"channel {ch}: PG mode measures voltage only")
            t, v, ev = self._timeline(ch)
            lo, hi = FORCE_RANGES[hw.force_range]
            if t.size and (v.min() < lo - 1e-12 or v.max() > hi + 1e-12):
                raise CallFailed(
                    PARAMETER_OUT_OF_RANGE_ERROR,
                    f"channel {ch} outputs {v.min():g}..{v.max():g} V, outside its force range [{lo:g}, {hi:g}] V",
                )
            waves[ch] = (t, v)
            events[ch] = ev
        self._advance("execute")
        self.results.clear()
        self.expected = {
            ch: sum(e.points if e.raw else 1 for _, e in ev) for ch, ev in events.items()
        }
        duration = max((w[0][-1] for w in waves.values() if w[0].size), default=0.0)
        self.results = self._play(mf, waves, events, duration)
        for ch, (t, v) in waves.items():
            if t.size:
                mf.wgfmu[ch].level_v = float(v[-1])
        self.status = STATUS_COMPLETED
        self.elapsed_s = self.total_s = duration
        self.executions += 1

    def _play(
        self,
        mf: SimB1500,
        waves: dict[int, tuple[np.ndarray, np.ndarray]],
        events: dict[int, list[tuple[float, HeldEvent]]],
        duration: float,
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Run the merged waveform on the chip, sampling every measure event on the way."""
        chip = mf.chip
        wiring = mf.wiring
        base_row, base_col = mf.line_voltages()
        # pads driven by a playing channel: (is_row, index, channel)
        played: list[tuple[bool, int, int]] = []
        if wiring is not None:
            for ch, pad in wiring.pads.items():
                if ch in waves:
                    side, idx = parse_pad(pad)
                    played.append((side == "top", idx, ch))
        grid = [np.array([0.0, duration])] + [w[0] for w in waves.values() if w[0].size]
        ticks = np.unique(np.round(np.concatenate(grid) / GRID_S).astype(np.int64))
        ticks = ticks[(ticks >= 0) & (ticks <= round(duration / GRID_S))]
        if ticks.size < 2:
            ticks = np.array([0, max(round(duration / GRID_S), 1)], dtype=np.int64)
        # Each piece between breakpoints is cut in two halves held at its start and end
        # levels: a linear edge then counts half at each end, so a trapezoid acts as a
        # rectangle of its full width at half maximum (the width convention of the other
        # stacks), and a flat part is exact. Times in half-grid units (5 ns).
        h = np.empty(2 * ticks.size - 1, dtype=np.int64)
        h[0::2] = 2 * ticks
        h[1::2] = ticks[:-1] + ticks[1:]
        half = GRID_S / 2
        eps = 1e-3 * half
        t_eval = np.empty(h.size - 1)
        t_eval[0::2] = h[0:-1:2] * half + eps  # start level (just after the breakpoint)
        t_eval[1::2] = h[2::2] * half - eps  # end level (just before the next breakpoint)
        nseg = t_eval.size
        rows = np.repeat(base_row[None, :], nseg, axis=0)
        cols = np.repeat(base_col[None, :], nseg, axis=0)
        for is_row, idx, ch in played:
            t, v = waves[ch]
            (rows if is_row else cols)[:, idx] = np.interp(t_eval, t, v) if t.size else 0.0
        # quiet pieces (bias below the chip's quiet level everywhere) only advance the clock
        allv = np.concatenate([rows, cols, np.zeros((nseg, 1))], axis=1)
        span = np.nanmax(allv, axis=1) - np.nanmin(allv, axis=1)
        active = span >= mf.quiet_v()
        # merge neighbouring pieces with identical biases
        same = np.zeros(nseg, dtype=bool)
        if nseg > 1:
            a = np.concatenate([rows, cols], axis=1)
            eq = (a[1:] == a[:-1]) | (np.isnan(a[1:]) & np.isnan(a[:-1]))
            same[1:] = eq.all(axis=1) & (active[1:] == active[:-1])
        starts = np.flatnonzero(~same)
        ends = np.append(starts[1:], nseg)
        seg_t0 = h[starts] * half
        seg_t1 = h[ends] * half
        # samples: (centre time, channel, index into that channel's values, averaging time)
        samples: list[tuple[float, int, int, float]] = []
        layout: dict[int, list[tuple[bool, list[int], float]]] = {}
        for ch, evs in events.items():
            k = 0
            lay = []
            for start, e in evs:
                idxs = []
                for j in range(e.points):
                    tc = start + e.time_s + j * e.interval_s + 0.5 * e.averaging_s
                    samples.append((tc, ch, k, e.averaging_s))
                    idxs.append(k)
                    k += 1
                lay.append((e.raw, idxs, start + e.time_s))
            layout[ch] = lay
        samples.sort(key=lambda s: s[0])
        values: dict[int, np.ndarray] = {
            ch: np.zeros(sum(len(x[1]) for x in lay)) for ch, lay in layout.items()
        }
        times: dict[int, np.ndarray] = {ch: np.zeros_like(v) for ch, v in values.items()}
        p = chip.params
        clock0 = chip.clock_s
        si = 0
        for k in range(starts.size):
            a, b = float(seg_t0[k]), float(seg_t1[k])
            n_half = int(h[ends[k]] - h[starts[k]])
            seg = int(starts[k])
            now = a
            while si < len(samples) and samples[si][0] < b:
                tc, ch, idx, avg = samples[si]
                if not active[seg] and tc > now:
                    chip.clock_s = clock0 + tc
                    now = tc
                values[ch][idx] = self._sample(mf, waves, played, base_row, base_col, ch, tc, avg)
                times[ch][idx] = tc
                si += 1
            if active[seg]:
                rv, cv = rows[seg], cols[seg]
                chip.clock_s = clock0 + a
                # half-ticks per chip pulse (<= width_max)
                chunk = max(int(p.width_max_s / half), 1)
                while n_half > 0:
                    m = min(n_half, chunk)
                    w = m * half
                    if w >= p.width_min_s * (1 - 1e-9):
                        chip.apply_line_voltages(rv, cv, max(w, p.width_min_s))
                    else:
                        chip.advance(w)
                    n_half -= m
            chip.clock_s = clock0 + b
        chip.clock_s = clock0 + duration
        out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for ch, lay in layout.items():
            tv: list[float] = []
            vv: list[float] = []
            for raw, idxs, _t_start in lay:
                if raw:
                    tv.extend(times[ch][idxs])
                    vv.extend(values[ch][idxs])
                else:
                    tv.append(float(0.5 * (times[ch][idxs[0]] + times[ch][idxs[-1]])))
                    vv.append(float(np.mean(values[ch][idxs])))
            out[ch] = (np.asarray(tv), np.asarray(vv))
        return out

    def _sample(
        self,
        mf: SimB1500,
        waves: dict[int, tuple[np.ndarray, np.ndarray]],
        played: list[tuple[bool, int, int]],
        base_row: np.ndarray,
        base_col: np.ndarray,
        ch: int,
        tc: float,
        avg: float,
    ) -> float:
        """One measured point of channel ``ch`` at time ``tc`` (current or voltage)."""
        hw = mf.wgfmu[ch]
        t, v = waves[ch]
        level = float(interp_right(tc, t, v)) if t.size else hw.level_v
        if hw.measure_mode == 4000:
            return level + _V_NOISE * float(self._rng.standard_normal())
        rv, cv = base_row.copy(), base_col.copy()
        pad_of_ch: tuple[bool, int] | None = None
        for is_row, idx, c in played:
            tw, vw = waves[c]
            (rv if is_row else cv)[idx] = interp_right(tc, tw, vw)
            if c == ch:
                pad_of_ch = (is_row, idx)
        rng = CURRENT_RANGES[hw.current_range]
        n_avg = max(avg / GRID_S, 1.0)
        noise = _NOISE_PER_RANGE * rng / np.sqrt(n_avg) * float(self._rng.standard_normal())
        if pad_of_ch is None:  # the probe of this channel touches nothing
            i = noise
        else:
            ir, ic = mf.line_currents(rv, cv)
            is_row, idx = pad_of_ch
            i = (float(ir[idx]) if is_row else -float(ic[idx])) + noise
        lim = _SATURATION * rng
        return float(np.clip(i, -lim, lim))

    def _abort(self) -> None:
        self._session()

    def _getStatus(self, status: Any, elapsed: Any, total: Any) -> None:
        self._session()
        self._out(status, self.status, "status")
        self._out(elapsed, self.elapsed_s, "elapsedTime")
        self._out(total, self.total_s, "totalTime")

    def _getChannelStatus(self, ch: int, status: Any, elapsed: Any, total: Any) -> None:
        self._channel(ch)
        self._getStatus(status, elapsed, total)

    def _waitUntilCompleted(self) -> None:
        self._session()
