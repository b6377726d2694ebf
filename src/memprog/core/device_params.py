r"""Validated physics parameters of one memristor technology.

The simulated chip's pulse law (per cell, in conductance units, µS)::

    over  = |V| / V_th - 1                                   (0 below threshold)
    s     = kappa * over**alpha * (width / width_ref)**beta
    SET   : dG = +(G_top - G) * (1 - exp(-s)) * (1 + c2c * xi)
    RESET : dG = -(G - G_min) * (1 - exp(-s)) * (1 + c2c * xi)

``G_top`` is the device's upper bound, or for a 1T1R cell the compliance set by the gate
voltage, whichever is lower. The step therefore shrinks toward the bound (soft bounds,
the exponential-step family of aihwkit), grows with amplitude and width, is zero below a
threshold, and carries cycle-to-cycle noise. Device-to-device spread is drawn once per
cell for every parameter marked ``*_d2d`` (relative standard deviation).

Effects the sources do not quantify (RTN, relaxation, V/2 disturb rate) are explicit,
documented assumptions: see the presets module.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from memprog.core.errors import ConfigError
from memprog.core.validation import MemprogModel

CellType = Literal["passive", "1t1r"]


class Effects(MemprogModel):
    """Switches for every physical effect, so a test can isolate one at a time."""

    threshold: bool = True  # pulses below V_th do nothing (off: any pulse switches)
    nonlinearity: bool = True  # soft-bound saturating steps (off: equal steps)
    c2c: bool = True  # cycle-to-cycle noise on every step
    d2d: bool = True  # device-to-device spread of every parameter
    stuck: bool = True  # HRS/LRS-stuck and unresponsive devices
    read_noise: bool = True  # white noise on every read
    flicker: bool = True  # the device's settled read spread beyond RTN (settled_spread_*)
    rtn: bool = True  # random telegraph noise (two-level fluctuators)
    relaxation: bool = True  # post-programming relaxation
    disturb: bool = True  # sub-threshold half-select disturb (passive arrays)
    sneak: bool = True  # floating lines are solved as a resistive network on reads
    compliance: bool = True  # 1T1R gate voltage limits the SET conductance
    breakdown: bool = True  # a pulse beyond V_breakdown shorts the cell


class DeviceParams(MemprogModel):
    """Physics of one technology. Units are in the names; ranges checked at construction."""

    cell_type: CellType
    # --- conductance bounds
    g_min_us: float = Field(gt=0, description="mean lower bound of the conductance")
    g_max_us: float = Field(gt=0, description="mean upper bound of the conductance")
    g_bounds_d2d: float = Field(ge=0, le=0.5, description="relative spread of both bounds")
    # --- switching thresholds and pulse law
    v_set_threshold_v: float = Field(gt=0, description="SET threshold magnitude")
    v_reset_threshold_v: float = Field(gt=0, description="RESET threshold magnitude")
    v_threshold_d2d: float = Field(ge=0, le=0.5)
    set_kappa: float = Field(gt=0, description="pulse strength at overdrive 1, SET")
    reset_kappa: float = Field(gt=0, description="pulse strength at overdrive 1, RESET")
    kappa_d2d: float = Field(ge=0, le=1.0)
    overdrive_exponent: float = Field(gt=0, le=5, description="alpha in s = kappa*over**alpha")
    width_ref_s: float = Field(gt=0, description="pulse width at which kappa is quoted")
    width_exponent: float = Field(ge=0, le=2, description="beta in (width/width_ref)**beta")
    c2c_rel_std: float = Field(ge=0, le=1.0, description="relative std of each step")
    # --- 1T1R gate-controlled compliance (ignored for passive cells)
    gate_v_min_v: float = Field(default=0.6, gt=0, description="gate voltage giving G_min")
    gate_v_max_v: float = Field(default=2.0, gt=0, description="gate voltage giving G_max")
    compliance_rel_std: float = Field(default=0.02, ge=0, le=0.5)
    # --- defects
    stuck_hrs_fraction: float = Field(ge=0, le=1)
    stuck_hrs_range_us: tuple[float, float] = (10.0, 100.0)
    stuck_lrs_fraction: float = Field(ge=0, le=1)
    stuck_lrs_mean_us: float = Field(default=573.0, gt=0)
    stuck_lrs_std_us: float = Field(default=99.0, ge=0)
    unresponsive_fraction: float = Field(default=0.0, ge=0, le=1)
    unresponsive_us: float = Field(default=10.0, gt=0)
    # --- reads
    read_noise_abs_us: float = Field(ge=0)
    read_noise_rel: float = Field(ge=0, le=0.1)
    read_time_s: float = Field(gt=0)
    read_v: float = Field(gt=0)
    # --- the device's own read-to-read spread once settled (1/f noise sampled by reads ms
    # apart), where a source measured it on tuned devices: std / G = intercept + slope * G.
    # The part not already carried by the small RTN fluctuator and the instrument is added as
    # white flicker, so nothing is counted twice; the large fluctuator comes on top (tuning
    # rarely accepts a state that carries one). 0/0: off (the fluctuators and the instrument).
    settled_spread_rel: float = Field(
        default=0.0, ge=0, le=0.1, description="total read spread of a settled device / G at G = 0"
    )
    settled_spread_rel_per_us: float = Field(
        default=0.0, ge=-1e-3, le=1e-3, description="change of that ratio per µS of G"
    )
    # --- random telegraph noise: one large (removable) and one small fluctuator per cell
    rtn_large_probability: float = Field(ge=0, le=1)
    rtn_large_amp_us: float = Field(ge=0, description="median peak-to-peak of the large RTN")
    rtn_large_amp_log_std: float = Field(ge=0, le=3)
    rtn_small_amp_us: float = Field(ge=0, description="max peak-to-peak of the small RTN")
    rtn_dwell_min_s: float = Field(gt=0)
    rtn_dwell_max_s: float = Field(gt=0)
    denoise_v_low_frac: float = Field(gt=0, lt=1, description="denoise window, x V_th")
    denoise_v_high_frac: float = Field(gt=0, le=1)
    denoise_removal_probability: float = Field(ge=0, le=1)
    denoise_shift_std_us: float = Field(ge=0)
    # --- relaxation after programming: G + r*(1-exp(-t/tau)) since the last switching pulse.
    # Each switching pulse adds to the part not yet relaxed r a volatile fraction of its own
    # step dG: r += dG * (-relax_step_mean + relax_step_std * xi) (short-term plasticity: the
    # part of a filament change a pulse just made is the part that can relax back). A non-zero
    # relax_rel_std or relax_rel_mean instead redraws r = G * (-relax_rel_mean + relax_rel_std
    # * xi) at every switching pulse, whatever its size (the G model: TiO2, where seed 001's
    # level-independent tuning offset measures it).
    relax_rel_std: float = Field(ge=0, le=0.2)
    relax_rel_mean: float = Field(
        default=0.0, ge=-0.2, le=0.2,
        description="mean fraction of G that relaxes back after a switching pulse (G model)",
    )  # fmt: skip
    relax_tau_s: float = Field(gt=0)
    relax_step_mean: float = Field(
        default=0.0, ge=-1, le=1, description="mean fraction of each switching step that relaxes back"
    )
    relax_step_std: float = Field(
        default=0.0, ge=0, le=1, description="std of that fraction (relative to the step)"
    )
    # --- sub-threshold half-select disturb: per pulse with |V| >= disturb_v_min_v
    disturb_v_min_v: float = Field(gt=0)
    disturb_ref_v: float = Field(gt=0)
    disturb_std_us: float = Field(ge=0, description="std after the first disturbing pulse")
    disturb_mean_us: float = Field(description="mean after the first disturbing pulse")
    disturb_std_exponent: float = Field(gt=0, le=1, description="std grows as n**this")
    disturb_mean_exponent: float = Field(gt=0, le=1.5, description="mean grows as n**this")
    disturb_cap_us: float = Field(
        default=60.0, gt=0, description="accumulated disturb since the last switch is capped at +-this"
    )
    # --- damage
    v_breakdown_v: float = Field(gt=0, description="|V| beyond which the cell shorts")
    breakdown_g_us: float = Field(gt=0, description="conductance of a shorted cell")
    # --- pulse timing limits the technology tolerates
    width_min_s: float = Field(default=10e-9, gt=0)
    width_max_s: float = Field(default=1e-3, gt=0)

    @model_validator(mode="after")
    def _check_order(self) -> DeviceParams:
        if self.g_min_us >= self.g_max_us:
            raise ConfigError(
                "g_min_us", self.g_min_us, f"< g_max_us ({self.g_max_us})", "bounds in wrong order"
            )
        lo, hi = self.stuck_hrs_range_us
        if not 0 < lo <= hi:
            raise ConfigError("stuck_hrs_range_us", (lo, hi), "0 < low <= high")
        if self.rtn_dwell_min_s > self.rtn_dwell_max_s:
            raise ConfigError(
                "rtn_dwell_min_s", self.rtn_dwell_min_s, f"<= rtn_dwell_max_s ({self.rtn_dwell_max_s})"
            )
        if self.denoise_v_low_frac >= self.denoise_v_high_frac:
            raise ConfigError(
                "denoise_v_low_frac",
                self.denoise_v_low_frac,
                f"< denoise_v_high_frac ({self.denoise_v_high_frac})",
            )
        if self.gate_v_min_v >= self.gate_v_max_v:
            raise ConfigError("gate_v_min_v", self.gate_v_min_v, f"< gate_v_max_v ({self.gate_v_max_v})")
        if self.stuck_hrs_fraction + self.stuck_lrs_fraction + self.unresponsive_fraction > 1:
            raise ConfigError(
                "stuck fractions",
                self.stuck_hrs_fraction + self.stuck_lrs_fraction + self.unresponsive_fraction,
                "sum <= 1",
            )
        if self.width_min_s >= self.width_max_s:
            raise ConfigError("width_min_s", self.width_min_s, f"< width_max_s ({self.width_max_s})")
        if self.v_breakdown_v <= max(self.v_set_threshold_v, self.v_reset_threshold_v):
            raise ConfigError(
                "v_breakdown_v",
                self.v_breakdown_v,
                f"> both switching thresholds ({self.v_set_threshold_v}, {self.v_reset_threshold_v})",
            )
        return self
