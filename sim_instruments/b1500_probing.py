"""How the simulated B1500A acts on the chip: which source drives which pad, currents, SMU readings.

Why a module of its own: this is the physics of the mainframe, apart from its command
language. Both the FLEX handlers (an SMU spot reading or sweep step) and the simulated
WGFMU library (a pattern's pieces, a DC level, a measured point) go through these methods,
so a pad has one definition of who drives it and a current one way of being computed.

Physics: SMU and WGFMU DC levels act on the chip while a reading is taken, as a stress of
one reading time when they exceed the chip's quiet level; currents at biases above the
chip's disturb threshold are computed by linearity from a scaled-down bias (the cells are
ohmic), as the other simulated instruments do.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from memprog.core.probe_wiring import ProbeWiring, parse_pad
from memprog.sim_instruments.b1500_flex import SMU_I_MAX
from memprog.sim_instruments.b1500_state import OP_SMU, FlexSettings, SmuState, WgfmuHardware
from memprog.sim_instruments.base import SimulatedInstrument, StaticSurface

_OPEN_NOISE_A = 5e-14  # [choice] noise floor of an SMU on an open circuit


class B1500Probing(SimulatedInstrument):
    """The mainframe's state and its action on the chip (set up by :class:`.b1500.SimB1500`)."""

    static: StaticSurface
    modules: list[str]
    smu_channels: list[int]
    cmu_channels: list[int]
    wgfmu_channels: list[int]
    reading_s: float
    wiring: ProbeWiring | None
    rng: np.random.Generator
    wgfmu: dict[int, WgfmuHardware]
    readings: int
    smus: dict[int, SmuState]
    cmu_enabled: dict[int, bool]
    set: FlexSettings
    errors: deque[tuple[int, str]]

    def smu_pad(self, smu: int) -> tuple[str, int] | None:
        """The chip pad an SMU reaches (through its RSU in SMU mode), or None."""
        if self.wiring is None:
            return None
        ch = self.wiring.rsu.get(smu)
        if ch is None or ch not in self.wiring.pads or self.wgfmu[ch].mode != OP_SMU:
            return None
        return parse_pad(self.wiring.pads[ch])

    def pad_sources(self) -> dict[tuple[str, int], tuple[str, int]]:
        """{pad: ("wgfmu", channel) or ("smu", channel)} for every driven pad."""
        out: dict[tuple[str, int], tuple[str, int]] = {}
        if self.wiring is None:
            return out
        rsu_smu = {ch: smu for smu, ch in self.wiring.rsu.items()}
        for ch, pad in self.wiring.pads.items():
            hw = self.wgfmu[ch]
            key = parse_pad(pad)
            if hw.drives:
                out[key] = ("wgfmu", ch)
            elif hw.mode == OP_SMU and ch in rsu_smu and self.smus[rsu_smu[ch]].enabled:
                out[key] = ("smu", rsu_smu[ch])
        return out

    def line_voltages(
        self, overrides: dict[tuple[str, int], float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Row (top) and column (bottom) voltages now; NaN = floating pad or line.

        Voltage-source SMUs and driving WGFMU channels set their pads; ``overrides`` set
        pads explicitly (used to solve current-source SMUs).
        """
        c = self.chip
        row_v = np.full(c.rows, np.nan)
        col_v = np.full(c.cols, np.nan)
        for (side, idx), (kind, ch) in self.pad_sources().items():
            if kind == "wgfmu":
                v = self.wgfmu[ch].level_v
            else:
                s = self.smus[ch]
                if s.mode != "V":
                    continue
                v = s.value
            (row_v if side == "top" else col_v)[idx] = v
        for (side, idx), v in (overrides or {}).items():
            (row_v if side == "top" else col_v)[idx] = v
        return row_v, col_v

    def quiet_v(self) -> float:
        """Largest bias that changes nothing on the chip (reads stay below it)."""
        p = self.chip.params
        th = min(p.v_set_threshold_v, p.v_reset_threshold_v) * (1 - 3 * p.v_threshold_d2d)
        return float(min(p.disturb_v_min_v, p.denoise_v_low_frac * th))

    def line_currents(self, row_v: np.ndarray, col_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Chip line currents at any bias: above the read limit, by linearity (ohmic cells)."""
        driven = np.concatenate([row_v[~np.isnan(row_v)], col_v[~np.isnan(col_v)]])
        if driven.size == 0:
            return np.zeros(self.chip.rows), np.zeros(self.chip.cols)
        vmax = float(np.max(np.abs(driven)))
        limit = 0.8 * self.chip.params.disturb_v_min_v
        scale = 1.0 if vmax < limit else limit / vmax
        ir, ic = self.chip.line_currents(row_v * scale, col_v * scale, advance=False)
        return ir / scale, ic / scale

    def stress(self, row_v: np.ndarray, col_v: np.ndarray, duration_s: float) -> None:
        """Apply DC levels to the chip for ``duration_s`` if they exceed the quiet level."""
        driven = np.concatenate([row_v[~np.isnan(row_v)], col_v[~np.isnan(col_v)], [0.0]])
        if driven.max() - driven.min() < self.quiet_v():
            self.chip.advance(duration_s)
            return
        p = self.chip.params
        width = float(min(max(duration_s, p.width_min_s), p.width_max_s))
        self.chip.apply_line_voltages(row_v, col_v, width)
        if duration_s > width:
            self.chip.advance(duration_s - width)

    def pad_current(self, pad: tuple[str, int], ir: np.ndarray, ic: np.ndarray) -> float:
        """Current flowing out of the source on ``pad`` into the chip (A)."""
        side, idx = pad
        return float(ir[idx]) if side == "top" else -float(ic[idx])

    def _measure_all(self) -> dict[int, tuple[float, float, bool]]:
        """One reading of every SMU: {channel: (voltage V, current A, at compliance)}."""
        self.readings += 1
        duration = self.reading_s * max(1, abs(self.set.av[0]))
        overrides: dict[tuple[str, int], float] = {}
        # current-source SMUs: the pad voltage that makes their current (linear network)
        for smu, s in self.smus.items():
            pad = self.smu_pad(smu)
            if s.enabled and s.mode == "I" and pad is not None:
                v0, v1 = 0.0, 0.1
                i0 = self.pad_current(
                    pad, *self.line_currents(*self.line_voltages({**overrides, pad: v0}))
                )
                i1 = self.pad_current(
                    pad, *self.line_currents(*self.line_voltages({**overrides, pad: v1}))
                )
                g = (i1 - i0) / (v1 - v0)
                v = (s.value - i0) / g if g > 1e-15 else math.copysign(s.compliance or 2.0, s.value)
                comp = s.compliance or 2.0
                overrides[pad] = float(np.clip(v, -abs(comp), abs(comp)))
        row_v, col_v = self.line_voltages(overrides)
        self.stress(row_v, col_v, duration)
        ir, ic = self.line_currents(row_v, col_v)
        out: dict[int, tuple[float, float, bool]] = {}
        for smu, s in self.smus.items():
            pad = self.smu_pad(smu)
            noise = _OPEN_NOISE_A * float(self.rng.standard_normal())
            if not s.enabled:
                out[smu] = (0.0, noise, False)
                continue
            if pad is None:  # relay closed, but the SMU reaches nothing: an open circuit
                v = s.value if s.mode == "V" else math.copysign(s.compliance or 2.0, s.value or 1.0)
                i = noise if s.mode == "V" else s.value
                out[smu] = (v, i, s.mode == "I" and s.value != 0)
                continue
            if s.mode == "V":
                i = self.pad_current(pad, ir, ic) + noise
                comp = s.compliance if s.compliance is not None else SMU_I_MAX
                if abs(i) > abs(comp):
                    out[smu] = (s.value, math.copysign(abs(comp), i), True)
                else:
                    out[smu] = (s.value, i, False)
            else:
                v = overrides.get(pad, 0.0)
                comp = abs(s.compliance or 2.0)
                out[smu] = (v, s.value, abs(v) >= comp - 1e-12)
        return out
