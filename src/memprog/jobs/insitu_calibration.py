"""The measured gate -> conductance line of a 1T1R array (seed 002 Fig. 3d).

Why measured: in-situ updates set each device's conductance through the gate voltage of a
compliance-limited SET, and the job must not read that relation from a simulator parameter
(a real chip's line is what it is). :func:`calibrate_gate` RESETs and SETs spare rows at a
ramp of gate voltages and fits a line through the responsive cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from memprog.core.errors import ConfigError
from memprog.jobs.insitu_params import InsituParams


@dataclass
class GateCalibration:
    """Measured SET compliance: G (µS) = intercept_us + slope_us_per_v × gate."""

    slope_us_per_v: float
    intercept_us: float
    responsive_fraction: float
    points: int
    gate_v: np.ndarray
    median_us: np.ndarray

    def gate_for(self, g_us: np.ndarray) -> np.ndarray:
        return (np.asarray(g_us, float) - self.intercept_us) / self.slope_us_per_v

    def as_dict(self) -> dict[str, float]:
        return {
            "slope_us_per_v": self.slope_us_per_v,
            "intercept_us": self.intercept_us,
            "responsive_fraction": self.responsive_fraction,
            "points": self.points,
        }


def calibrate_gate(
    programmer: Any, rows: np.ndarray, params: InsituParams, levels: int = 32
) -> GateCalibration:
    """Measure the gate → conductance line on spare rows (seed 002 Fig. 3d).

    1. RESET the rows, read; SET at the highest gate the bench allows, read: cells that did
       not move are unresponsive (stuck) and left out.
    2. Coarse ramp over [0, gate limit] finds the gates spanning the working range; a fine
       ramp over that span gives the points of a least-squares line (level medians of the
       responsive cells within the working range).
    Each step is one row-parallel pulse message and one read of the rows.
    """
    info = programmer.info
    if not info.has_gate:
        raise ConfigError(
            "bench",
            info.technology,
            "a 1T1R array (gate-controlled SET)",
            "in-situ updates set each device's conductance through its gate voltage",
        )
    gate_max = float(programmer.limits.gate_v_max)
    r = np.repeat(rows, info.cols)
    c = np.tile(np.arange(info.cols), rows.size)
    w = params.pulse_width_s

    def reset_set_read(gates: np.ndarray) -> np.ndarray:
        programmer.pulse(r, c, -params.reset_v, params.reset_width_s)
        programmer.pulse(r, c, params.set_v, w, gates)
        return programmer.read(r, c)

    programmer.pulse(r, c, -params.reset_v, params.reset_width_s)
    g_reset = programmer.read(r, c)
    g_full = reset_set_read(np.full(r.size, gate_max))
    responsive = g_full > np.maximum(2.0 * g_reset, params.g_high_us)
    if responsive.sum() < 8:
        raise ConfigError(
            "calibration",
            int(responsive.sum()),
            "at least 8 responsive cells",
            f"rows {rows.tolist()}: SET at the {gate_max} V gate moved almost no cell",
        )

    def ramp(lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        gate_levels = np.linspace(lo, hi, levels)
        which = np.arange(r.size) % levels
        g = reset_set_read(gate_levels[which])
        med = np.array(
            [
                np.median(g[(which == k) & responsive])
                if np.any((which == k) & responsive)
                else np.nan
                for k in range(levels)
            ]
        )
        return gate_levels, med

    gl, med = ramp(0.0, gate_max)
    above = np.flatnonzero(med > params.g_high_us)
    hi_i = int(above[0]) if above.size else levels - 1
    below = np.flatnonzero(med[:hi_i] < params.g_low_us)
    lo_i = int(below[-1]) if below.size else 0
    gl, med = ramp(float(gl[lo_i]), float(gl[hi_i]))
    use = np.isfinite(med) & (med >= 0.8 * params.g_low_us) & (med <= 1.2 * params.g_high_us)
    if use.sum() < 3:
        raise ConfigError(
            "calibration",
            int(use.sum()),
            "at least 3 gate levels in the working range",
            f"the gate ramp did not span {params.g_low_us}-{params.g_high_us} µS",
        )
    slope, intercept = np.polyfit(gl[use], med[use], 1)
    if slope <= 0:
        raise ConfigError("calibration slope", float(slope), "> 0 µS/V")
    return GateCalibration(
        float(slope), float(intercept), float(responsive.mean()), int(use.sum()), gl, med
    )


__all__ = ["GateCalibration", "calibrate_gate"]
