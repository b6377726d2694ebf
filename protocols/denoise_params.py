"""Settings of the denoising write-verify (:class:`DenoiseParams`).

Why a module of its own: the settings are what callers build, store with a run and
validate from bench files and the command line, while the tuner that reads them is a
larger machine; keeping them apart lets the registry, the CLI and the ladder name a
protocol's settings without loading its loop. The physics behind each default is in
:mod:`memprog.protocols.denoise`.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from memprog.core.errors import ConfigError
from memprog.core.validation import MemprogModel
from memprog.protocols.alibart import AlibartParams
from memprog.protocols.programmer import BURST_INTERVAL_S
from memprog.protocols.settle import settle_s_field


class DenoiseParams(MemprogModel):
    """Settings of the denoising write-verify. Defaults: HfO2 1T1R at ±1 µS (Rao 2023).

    Voltages are magnitudes; SET pulses are applied positive, RESET negative. Why five
    denoise pulses after every tuning pulse: a tuning pulse redraws the filament's
    fluctuators (a large one on ~60 % of states), slow ones hide from a short read burst,
    and each denoise pulse removes the large one with p ~ 0.7, so after five it survives
    on ~0.15 % of accepted states (four: ~0.5 %, measured 9 vs 1 failing levels in 8
    ladders of 2,048). ``accept_tol_us`` 0.4 leaves room for the small fluctuator (<= 0.4
    µS p-p) and read noise inside a ±1 µS verification band.
    """

    read_v: float | None = Field(default=0.2, description="read voltage; None: the stack's")
    accept_tol_us: float = Field(default=0.4, gt=0, description="|burst mean - target| to accept")
    tune_tol_us: float = Field(default=0.3, gt=0, description="|mean - target| to stop tuning")
    max_spread_us: float = Field(default=0.6, gt=0, description="burst peak-to-peak to accept")
    burst_reads: int = Field(default=4, ge=2, le=1000, description="reads after each pulse")
    burst_interval_s: float = Field(
        default=BURST_INTERVAL_S,
        ge=0,
        le=0.01,
        description="least time between the starts of a burst's reads (stacks that time "
        "the burst themselves; see protocols/programmer.py)",
    )
    denoise: bool = Field(default=True, description="False: the same loop without denoising")
    min_denoise: int = Field(default=5, ge=0, le=100, description="denoise pulses before accepting")
    denoise_after_tune: int = Field(
        default=5, ge=0, le=100, description="denoise pulses right after every tuning pulse"
    )
    max_denoise: int = Field(default=12, ge=1, le=1000, description="denoise pulses per round")
    denoise_frac: float = Field(
        default=0.6,
        gt=0,
        lt=1,
        description="denoise amplitude / the cell's calibrated SET amplitude",
    )
    denoise_v: float | None = Field(
        default=None, gt=0, le=20, description="fixed denoise amplitude"
    )
    denoise_width_s: float = Field(default=1e-6, gt=0, le=1.0, description="denoise pulse width")
    max_retunes: int = Field(default=30, ge=0, le=10_000, description="re-tunes after denoising")
    max_pulses: int = Field(default=400, ge=1, le=10_000_000, description="all pulses per cell")
    set_start_v: float = Field(default=0.8, gt=0, le=20, description="SET calibration ramp start")
    set_max_v: float = Field(default=1.6, gt=0, le=20, description="SET amplitude cap")
    reset_start_v: float = Field(default=0.9, gt=0, le=20, description="RESET calibration start")
    reset_max_v: float = Field(default=1.8, gt=0, le=20, description="RESET amplitude cap")
    cal_step_v: float = Field(default=0.005, gt=0, le=0.5, description="calibration ramp step")
    cal_width_s: float = Field(default=10e-6, gt=0, le=1.0, description="calibration pulse width")
    cal_detect_us: float = Field(default=3.0, gt=0, description="move that ends the calibration")
    amp_step_v: float = Field(default=0.005, gt=0, le=0.5, description="amplitude re-adjust step")
    width_min_s: float = Field(default=10e-9, gt=0, description="shortest tuning pulse")
    width_max_s: float = Field(default=100e-6, gt=0, description="longest tuning pulse")
    width_ref_s: float = Field(default=1e-6, gt=0, description="width at which gains are quoted")
    width_exponent: float = Field(
        default=0.5,
        gt=0,
        le=2,
        description="first guess of how dG grows with the width (dG ~ width**this), until "
        "the cell's own tuning pulses have measured it (learn_width_exponent); [choice] 0.5, "
        "a prior only: a first guess that overshoots leaves large volatile steps behind",
    )
    learn_width_exponent: bool = Field(
        default=True, description="fit each cell's width exponent from its own pulses"
    )
    width_grid_per_decade: int = Field(default=24, ge=2, le=1000, description="width quantisation")
    gain_learning: float = Field(default=0.4, gt=0, le=1, description="log-gain update weight")
    coarse_us: float = Field(
        default=5.0, gt=0, description="tuning pulses for larger errors skip the denoise pulses"
    )
    pretune_us: float | None = Field(
        default=20.0, gt=0, description="cells starting farther than this are pre-tuned by Alibart"
    )
    pretune: AlibartParams | None = Field(
        default=None, description="pre-tune settings (None: fine 1T1R ramp)"
    )
    batch_size: int | None = Field(
        default=None, ge=1, description="None: all (row stacks), 1 (serial)"
    )
    settle_s: float | None = settle_s_field("the final re-verify of tune()")
    settle_rounds: int = Field(
        default=5,
        ge=0,
        le=100,
        description="re-tunes of cells that drift out while settling (a ±0.4 µS acceptance "
        "sees the volatile part of even a fine step)",
    )

    @model_validator(mode="after")
    def _order(self) -> DenoiseParams:
        if self.width_min_s >= self.width_max_s:
            raise ConfigError(
                "width_min_s", self.width_min_s, f"< width_max_s ({self.width_max_s})"
            )
        if self.set_start_v > self.set_max_v:
            raise ConfigError("set_start_v", self.set_start_v, f"<= set_max_v ({self.set_max_v})")
        if self.reset_start_v > self.reset_max_v:
            raise ConfigError(
                "reset_start_v", self.reset_start_v, f"<= reset_max_v ({self.reset_max_v})"
            )
        if self.min_denoise > self.max_denoise:
            raise ConfigError(
                "min_denoise", self.min_denoise, f"<= max_denoise ({self.max_denoise})"
            )
        if self.tune_tol_us > self.accept_tol_us:
            raise ConfigError(
                "tune_tol_us", self.tune_tol_us, f"<= accept_tol_us ({self.accept_tol_us})"
            )
        if self.denoise_v is not None and self.denoise_v >= self.set_start_v:
            raise ConfigError(
                "denoise_v", self.denoise_v, f"< set_start_v ({self.set_start_v}): sub-threshold"
            )
        return self


__all__ = ["DenoiseParams"]
