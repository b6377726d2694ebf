"""The settings of an in-situ training run, and seed 002's figures to compare with.

Why a module of its own: the settings are read by every part of the job (the layout, the
gate calibration, the network's update rule, the ex-situ comparison, the weight file's
mapping window) and by the CLI, which builds them from its options before anything opens.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from memprog.core.errors import ConfigError
from memprog.core.validation import MemprogModel
from memprog.hwaware.datasets import DATA_SEED, Dataset, load_dataset

# Seed 002 (Li 2018), for the comparison figures
LI2018_INSITU_ACCURACY = 0.917  # hardware, 11 % stuck devices, 8x8 MNIST, 64-54-10
LI2018_STUCK_FRACTION = 0.11


class InsituParams(MemprogModel):
    """Settings of an in-situ training run (units in the names).

    These are the job's own choices, each with its reason; none is read from, or tuned
    against, the simulator's parameters (the chip's gate line is measured at run time):

    * network 64-54-10 with sigmoid/softmax: seed 002's size; the sigmoid's 0-1 output is
      the next layer's row voltage without clipping;
    * SGD, minibatch 16, lr 1.0 decaying as 1/(1 + 0.25 e): plain software SGD settings
      for this network on the digits (a software run reaches ~95 % in 5 epochs with them);
    * working range 50-1,000 µS, weight 4 at the full range: well above the ~10 µS of stuck
      devices and the few-µS RTN, a 0.2 V row drives at most 65 x 0.2 mA per column;
    * update threshold 4 µS: below one compliance step's spread (2 % of a few hundred µS),
      a pulse would add more noise than signal; smaller changes accumulate until they count;
    * SET 2.2 V / 1 µs, RESET 2.4 V / 10 µs: well above the switching thresholds the
      calibration sees respond, inside the bench's safety limits; the RESET is long so the
      old level is erased before the gate-limited SET (Li's two-pulse scheme).
    """

    hidden: int = Field(default=54, ge=1, le=127, description="hidden neurons (seed 002: 54)")
    epochs: int = Field(default=8, ge=0, le=1000)
    batch_size: int = Field(default=16, ge=1, le=1024)
    learning_rate: float = Field(default=1.0, gt=0, le=100)
    lr_decay: float = Field(
        default=0.25, ge=0, le=10, description="learning rate of epoch e: lr / (1 + decay * e)"
    )
    seed: int = Field(
        default=0, ge=0, description="initial weights and minibatch order (not the data split)"
    )
    g_low_us: float = Field(default=50.0, gt=0, description="working range, low end")
    g_high_us: float = Field(default=1000.0, gt=0, description="working range, high end")
    weight_max: float = Field(
        default=4.0, gt=0, description="weight of a pair at the full range (G+ - G- = high - low)"
    )
    init_weight: float = Field(
        default=1.0, gt=0, description="initial weights U(-a, a)/sqrt(fan_in), a = this"
    )
    input_v: float = Field(default=0.2, gt=0, le=0.5, description="row voltage of input 1.0")
    update_threshold_us: float = Field(
        default=4.0, ge=0, description="pending |ΔG| below which a device is not pulsed"
    )
    set_v: float = Field(default=2.2, gt=0, description="SET amplitude (gate sets the level)")
    reset_v: float = Field(default=2.4, gt=0, description="RESET amplitude magnitude")
    pulse_width_s: float = Field(default=1e-6, gt=0, description="SET pulse width")
    reset_width_s: float = Field(
        default=1e-5, gt=0, description="RESET width: long enough to erase the old level"
    )
    origin: tuple[int, int] = (0, 0)
    limit_train: int | None = Field(default=None, ge=1)
    limit_test: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> InsituParams:
        if self.g_low_us >= self.g_high_us:
            raise ConfigError("g_low_us", self.g_low_us, f"< g_high_us ({self.g_high_us})")
        return self

    @property
    def w_per_us(self) -> float:
        """Weight units per µS of pair difference."""
        return self.weight_max / (self.g_high_us - self.g_low_us)


def insitu_dataset(params: InsituParams) -> Dataset:
    """The digits a run trains and tests on: the one split of :mod:`memprog.hwaware.datasets`.

    Why not a split of its own, nor one per ``params.seed``: ``memprog train``, the shipped
    example and ``memprog insitu`` must be scored on the same held-out images to be
    compared, so the split is always ``DATA_SEED``'s; ``limit_*`` keep the first images.
    """
    return load_dataset(
        "digits", DATA_SEED, limit_train=params.limit_train, limit_test=params.limit_test
    )


__all__ = ["LI2018_INSITU_ACCURACY", "LI2018_STUCK_FRACTION", "InsituParams", "insitu_dataset"]
