"""Chip safety limits, enforced by every driver before anything is sent.

A bench file carries one :class:`SafetyLimits` for its chip. Drivers call
:meth:`SafetyLimits.check_pulse` / :meth:`check_read` / :meth:`check_gate` with the values
they are about to send and raise :class:`memprog.core.errors.SafetyError` (nothing sent) if any
value is outside. The limits themselves are validated against the technology's breakdown
voltage when the bench is loaded.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from memprog.core.errors import ConfigError, SafetyError
from memprog.core.validation import MemprogModel


class SafetyLimits(MemprogModel):
    """What a driver may apply to the chip. Voltages are magnitudes unless signed."""

    set_v_max: float = Field(gt=0, le=20, description="largest positive (SET) pulse, V")
    reset_v_max: float = Field(gt=0, le=20, description="largest negative (RESET) pulse magnitude, V")
    # [choice] a write pulse is at most 1 s: write-verify protocols use ns-ms pulses (Alibart,
    # Rao, Drolet: 10 ns - 1 ms); a longer "pulse" at write amplitude is DC stress that heats
    # the cell, and a larger limit (1e300) would guard nothing
    width_s_min: float = Field(default=10e-9, gt=0, le=1.0)
    width_s_max: float = Field(default=1e-3, gt=0, le=1.0)
    read_v_max: float = Field(default=0.3, gt=0, le=2)
    gate_v_max: float = Field(default=2.5, gt=0, le=10)
    current_compliance_a: float = Field(default=10e-3, gt=0, le=0.1)
    # [choice] at most 1e6 µS (1 S, a 1 Ohm cell: no memristor state); a bench also bounds
    # conductance_max_us by its technology's shorted-cell conductance (bench_config.ChipConfig)
    conductance_min_us: float = Field(default=1.0, gt=0, le=1e6, description="lowest target allowed")
    conductance_max_us: float = Field(
        default=10000.0, gt=0, le=1e6, description="highest target allowed"
    )
    unselected_v_max: float | None = Field(
        default=None,
        gt=0,
        le=20,
        description="disturb interlock: largest |V| a write may put on an unselected cell of a "
        "passive array (V/3, V/2 bias), V; None: filled from the technology's switching "
        "thresholds with a margin when the bench file is loaded",
    )
    allow_unselected_above_threshold: bool = Field(
        default=False,
        description="allow unselected_v_max above the technology's safe default (unselected "
        "cells may then really switch)",
    )

    @model_validator(mode="after")
    def _order(self) -> SafetyLimits:
        if self.width_s_min >= self.width_s_max:
            raise ConfigError("width_s_min", self.width_s_min, f"< width_s_max ({self.width_s_max})")
        if self.conductance_min_us >= self.conductance_max_us:
            raise ConfigError(
                "conductance_min_us", self.conductance_min_us, f"< conductance_max_us ({self.conductance_max_us})"
            )
        return self

    def check_pulse(self, amplitude_v: object, width_s: object) -> None:
        """Refuse (SafetyError) any amplitude or width outside the limits, or non-finite."""
        amp = np.atleast_1d(np.asarray(amplitude_v, dtype=float))
        w = np.atleast_1d(np.asarray(width_s, dtype=float))
        if not np.all(np.isfinite(amp)):
            raise SafetyError("amplitude_v", float(amp[~np.isfinite(amp)][0]), "finite")
        if not np.all(np.isfinite(w)):
            raise SafetyError("width_s", float(w[~np.isfinite(w)][0]), "finite")
        hi = amp > self.set_v_max
        if hi.any():
            raise SafetyError("amplitude_v", float(amp[hi][0]), f"[-{self.reset_v_max}, {self.set_v_max}] V")
        lo = amp < -self.reset_v_max
        if lo.any():
            raise SafetyError("amplitude_v", float(amp[lo][0]), f"[-{self.reset_v_max}, {self.set_v_max}] V")
        bad = (w < self.width_s_min) | (w > self.width_s_max)
        if bad.any():
            raise SafetyError("width_s", float(w[bad][0]), f"[{self.width_s_min:g}, {self.width_s_max:g}] s")

    def check_unselected(self, amplitude_v: object, bias_fraction: float, scheme: str = "") -> None:
        """Disturb interlock: refuse (SafetyError) a write whose bias on unselected cells,
        ``|V| x bias_fraction`` (1/3 under V/3, 1/2 under V/2), exceeds ``unselected_v_max``.
        Does nothing when no interlock is set."""
        if self.unselected_v_max is None:
            return
        amp = np.atleast_1d(np.asarray(amplitude_v, dtype=float))
        bad = np.abs(amp) * bias_fraction > self.unselected_v_max + 1e-12
        if bad.any():
            v = float(amp[bad][0])
            cap = self.unselected_v_max / bias_fraction
            raise SafetyError(
                "amplitude_v",
                v,
                f"|V| <= {cap:.4g} V: {scheme or 'the bias scheme'} puts {abs(v) * bias_fraction:.4g} V "
                f"on unselected cells, above unselected_v_max ({self.unselected_v_max} V)",
            )

    def pulse_cap_v(self, bias_fraction: float) -> float:
        """Largest pulse magnitude the disturb interlock allows under a bias scheme (inf: none)."""
        if self.unselected_v_max is None:
            return float("inf")
        return round(self.unselected_v_max / bias_fraction, 9)

    def check_read(self, read_v: float) -> None:
        """Refuse a read voltage that is non-finite or larger than ``read_v_max``."""
        if not np.isfinite(read_v) or abs(read_v) > self.read_v_max or read_v == 0:
            raise SafetyError("read_v", read_v, f"0 < |read_v| <= {self.read_v_max} V")

    def check_gate(self, gate_v: object) -> None:
        """Refuse any gate voltage outside [0, gate_v_max]."""
        g = np.atleast_1d(np.asarray(gate_v, dtype=float))
        bad = ~np.isfinite(g) | (g < 0) | (g > self.gate_v_max)
        if bad.any():
            raise SafetyError("gate_v", float(g[bad][0]), f"[0, {self.gate_v_max}] V")

    def check_voltage(self, name: str, voltage_v: float) -> None:
        """Refuse a DC bias larger than the largest pulse allowed in either polarity."""
        if not np.isfinite(voltage_v) or not -self.reset_v_max <= voltage_v <= self.set_v_max:
            raise SafetyError(name, voltage_v, f"[-{self.reset_v_max}, {self.set_v_max}] V")
