"""In-situ training of a two-layer network on the array (Li et al. 2018, seed 002).

Why a job of its own: an ex-situ transfer programs weights trained elsewhere, and every
device that does not reach its target (Li: 11 % stuck near 10 µS) is an error the network
never learnt about. In-situ training runs the forward pass *in the array* (analog
vector-matrix multiplies, ``VMM?``), computes the gradient in software from what the array
actually produced, and applies the update as open-loop pulses (no verify). Stuck devices,
device-to-device spread and update noise are inside the loop, so the network adapts to
them (seed 002 Fig. 4b: over 60 % accuracy with half the devices stuck).

The scheme, per minibatch:

1. **forward**: inputs as row voltages (0 … ``input_v``; a bias row at ``input_v``), one
   batched ``VMM?`` per layer; each weight is a differential pair of columns, so a neuron's
   pre-activation is the current difference of its two columns. Hidden activation: sigmoid
   (its output, 0 … 1, is the next layer's row voltage scale without clipping); output:
   softmax.
2. **backward** (software): cross-entropy gradient; the hidden-layer error needs the
   output layer's weights, read from the array (one ``READ:SEL?`` of its 1,100 cells:
   [choice] the array has no transposed VMM).
3. **update** (Li's two-pulse scheme): each device has a target conductance kept in
   software; the update moves the pair's targets by ±ΔG/2 (within the working range,
   saturations counted). A device whose pending change exceeds ``update_threshold_us``
   is pulsed: a decrease is a RESET then a SET whose gate voltage sets the new
   conductance (1T1R compliance); an increase is that SET alone. Row-parallel, batched:
   at most one RESET and one SET message per minibatch, no read-back.

What the job saves (``--out``) is what the chip holds: at the end of training every
network device is read (repeated reads averaged, RTN out), and those conductances, through
the same pair mapping the program job places weights with (:mod:`memprog.hwaware.mapping`),
are the weights written. After every epoch's test pass the devices are read once too, so
an interrupt writes the chip of the last completed epoch without any I/O of its own. The software targets
are not saved: open-loop updates never reach them on stuck devices, and a file of targets
programmed onto another chip is a different network (24.9 % where the chip ran 94.9 %).

Per epoch the job reports the test accuracy (the whole test set through ``VMM?``) and the
training accuracy as seed 002 Fig. 3c does: the running minibatch accuracy, i.e. what
the forward passes classified correctly before each update (no extra pass).

The gate → conductance relation is measured, not assumed: :func:`calibrate_gate` RESETs
and SETs spare rows at a ramp of gate voltages and fits a line through the responsive
cells (Li's Fig. 3d). Nothing here reads a simulator parameter.

Layout (``origin`` (r0, c0)): layer 1 (64 inputs + bias → 54) on rows r0…r0+64 and
columns c0…c0+107 (neuron j on columns c0+2j (+) and c0+2j+1 (−)); layer 2 (54 + bias →
10) on rows r0+65…r0+119, columns c0+108…c0+127; calibration on rows r0+120…r0+123.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import Field, model_validator

from memprog.core.bench_config import load_bench_config, resolve_bench_path
from memprog.core.errors import ConfigError
from memprog.core.strict_yaml import dump_yaml
from memprog.core.validation import MemprogModel
from memprog.hwaware.mapping import (
    WEIGHTS_FORMAT,
    pairs_to_weights,
    unfold_bias,
    weights_to_pairs,
)
from memprog.hwaware.mapping import save_weights as write_weight_file
from memprog.protocols.common import Progress
from memprog.protocols.events import EventSink, sink_or_null

CALIBRATION_ROWS = 4
# [choice] standard error of the mean the final read of the saved weights aims at: a tenth
# of the update threshold (4 µS), well below the RTN it averages out
FINAL_READ_SEM_US = 0.25
# Seed 002 (Li 2018), for the comparison figures
LI2018_INSITU_ACCURACY = 0.917  # hardware, 11 % stuck devices, 8x8 MNIST, 64-54-10
LI2018_STUCK_FRACTION = 0.11


# ---------------------------------------------------------------------------------- data
@dataclass
class Dataset:
    """Train and test split: inputs scaled to [0, 1], integer labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_inputs(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max()) + 1)


def load_dataset(
    name: str = "digits",
    seed: int = 0,
    test_fraction: float = 0.25,
    limit_train: int | None = None,
    limit_test: int | None = None,
) -> Dataset:
    """scikit-learn's bundled 8×8 digits (1,797 images, 64 inputs, 10 classes), split stratified.

    Bundled with scikit-learn, so nothing is downloaded. ``limit_*`` keep the first n
    samples of each split (fast tests).
    """
    if name != "digits":
        raise ConfigError("dataset", name, "'digits'")
    if not 0 < test_fraction < 1:
        raise ConfigError("test_fraction", test_fraction, "(0, 1)")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.data.astype(np.float64) / 16.0
    xtr, xte, ytr, yte = train_test_split(
        x, d.target, test_size=test_fraction, random_state=seed, stratify=d.target
    )
    if limit_train is not None:
        xtr, ytr = xtr[:limit_train], ytr[:limit_train]
    if limit_test is not None:
        xte, yte = xte[:limit_test], yte[:limit_test]
    return Dataset(name, xtr, ytr.astype(np.int64), xte, yte.astype(np.int64))


# ---------------------------------------------------------------------------------- params
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
    seed: int = Field(default=0, ge=0)
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


# ---------------------------------------------------------------------------------- layout
@dataclass
class LayerCells:
    """Where one layer's (n_in + 1) × n_out differential pairs sit on the array."""

    n_in: int
    n_out: int
    row0: int
    col0: int

    @property
    def rows(self) -> np.ndarray:
        return self.row0 + np.arange(self.n_in + 1)

    @property
    def cols_plus(self) -> np.ndarray:
        return self.col0 + 2 * np.arange(self.n_out)

    @property
    def cols_minus(self) -> np.ndarray:
        return self.cols_plus + 1

    def cells(self) -> tuple[np.ndarray, np.ndarray]:
        """Flat (rows, cols): every plus device row-major, then every minus device."""
        r = np.repeat(self.rows, self.n_out)
        cp = np.tile(self.cols_plus, self.n_in + 1)
        return np.concatenate([r, r]), np.concatenate([cp, cp + 1])

    @property
    def n_cells(self) -> int:
        return 2 * (self.n_in + 1) * self.n_out


@dataclass
class Layout:
    """Both layers and the calibration rows, placed from ``origin``."""

    layers: list[LayerCells]
    calibration_rows: np.ndarray
    rows: np.ndarray = field(init=False)
    cols: np.ndarray = field(init=False)
    slices: list[slice] = field(init=False)

    def __post_init__(self) -> None:
        rs, cs, self.slices = [], [], []
        start = 0
        for layer in self.layers:
            r, c = layer.cells()
            rs.append(r)
            cs.append(c)
            self.slices.append(slice(start, start + r.size))
            start += r.size
        self.rows = np.concatenate(rs)
        self.cols = np.concatenate(cs)

    @classmethod
    def place(
        cls, sizes: list[int], origin: tuple[int, int], array_rows: int, array_cols: int
    ) -> Layout:
        """Layers on diagonal blocks (rows of one layer never drive another's columns)."""
        r0, c0 = origin
        layers = []
        r, c = r0, c0
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers.append(LayerCells(n_in, n_out, r, c))
            r += n_in + 1
            c += 2 * n_out
        need_rows = r + CALIBRATION_ROWS
        if r0 < 0 or c0 < 0 or need_rows > array_rows or c > array_cols:
            raise ConfigError(
                "origin",
                origin,
                f"a corner where the {need_rows - r0} x {c - c0} block fits the "
                f"{array_rows} x {array_cols} array",
                f"layers {sizes} need {r - r0} rows + {CALIBRATION_ROWS} calibration rows "
                f"and {c - c0} columns",
            )
        return cls(layers, np.arange(r, need_rows))

    def split(self, g_flat: np.ndarray, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """(G+, G-) matrices (n_in + 1, n_out) of ``layer`` from a flat per-cell vector."""
        lc = self.layers[layer]
        part = g_flat[self.slices[layer]]
        half = part.size // 2
        shape = (lc.n_in + 1, lc.n_out)
        return part[:half].reshape(shape), part[half:].reshape(shape)


# ---------------------------------------------------------------------------------- calibration
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


# ---------------------------------------------------------------------------------- network
def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class ChipNetwork:
    """A two-layer differential network living on the array, run by ``VMM?``.

    Args:
        programmer: an on-chip stack's programmer (its ``controller`` has ``vmm``).
        sizes: layer widths, input first (``[64, 54, 10]``).
        params: the run's settings.
    """

    def __init__(self, programmer: Any, sizes: list[int], params: InsituParams) -> None:
        self.programmer = programmer
        self.controller = programmer.controller
        self.params = params
        info = programmer.info
        self.sizes = sizes
        self.layout = Layout.place(sizes, params.origin, info.rows, info.cols)
        self.n_rows = info.rows
        n = self.layout.rows.size
        self.target_us = np.full(n, np.nan)  # what each device should hold
        self.programmed_us = np.full(n, np.nan)  # what it was last pulsed to
        self.calibration: GateCalibration | None = None
        # weight units per µS of pair difference, per layer (ex-situ maps scale per layer)
        self.w_per_us = [params.w_per_us] * (len(sizes) - 1)
        self.pulses = 0
        self.saturated = 0
        self.vmm_vectors = 0

    # ---------------------------------------------------------------- weights <-> conductances
    def pair_weights(self, g_flat_us: np.ndarray) -> list[np.ndarray]:
        """The weights a flat per-device conductance vector encodes, (n_in + 1, n_out) per layer.

        Through :func:`memprog.hwaware.mapping.pairs_to_weights`, the one inverse of the
        pair mapping the program job places weights with, so a weight file written from
        these matrices is programmed back to the same pair differences.
        """
        return [
            pairs_to_weights(*self.layout.split(g_flat_us, i), k)
            for i, k in enumerate(self.w_per_us)
        ]

    def weights(self) -> list[np.ndarray]:
        """The software targets' weights: what the updates aimed at, not what the chip holds.

        Open-loop updates miss their targets (stuck devices, compliance spread), so these
        are bookkeeping only; :meth:`measured_weights` is the network the chip runs.
        """
        return self.pair_weights(self.target_us)

    def read_devices_us(self, averaged: bool = False) -> np.ndarray:
        """Every network device's conductance (µS): one row-parallel read of the layout, or
        (``averaged``) the mean of repeated reads, as the program job's final read takes it.

        Why average at all: one read catches each device's telegraph noise (RTN, a few µS)
        in whatever state it is in; the weights saved for another chip should be the
        device's level, not that instant (4 to 16 reads, until the mean is known to 0.25 µS).
        """
        lay = self.layout
        if not averaged:
            return np.asarray(self.programmer.read(lay.rows, lay.cols), dtype=float)
        from memprog.protocols.settle import adaptive_read

        mean, _n, _std = adaptive_read(
            self.programmer, lay.rows, lay.cols, None, FINAL_READ_SEM_US, min_reads=4, max_reads=16
        )
        return np.asarray(mean, dtype=float)

    def measured_weights(self, averaged: bool = False) -> list[np.ndarray]:
        """The weights the array holds, from reading every network device (see
        :meth:`read_devices_us`)."""
        return self.pair_weights(self.read_devices_us(averaged))

    def initialise(self, rng: np.random.Generator) -> None:
        """Calibrate the gate, then RESET every device and SET it to its initial target."""
        p = self.params
        self.calibration = calibrate_gate(self.programmer, self.layout.calibration_rows, p)
        mid = 0.5 * (p.g_low_us + p.g_high_us)
        parts = []
        for lc in self.layout.layers:
            a = p.init_weight / np.sqrt(lc.n_in + 1)
            w = rng.uniform(-a, a, (lc.n_in + 1, lc.n_out))
            dg = w / p.w_per_us
            parts += [(mid + dg / 2).ravel(), (mid - dg / 2).ravel()]
        self.target_us = np.clip(np.concatenate(parts), p.g_low_us, p.g_high_us)
        everyone = np.arange(self.target_us.size)
        self._pulse(everyone, everyone)

    def _pulse(self, reset_idx: np.ndarray, set_idx: np.ndarray) -> None:
        """RESET ``reset_idx``, then SET ``set_idx`` at the gates of their targets: 2 messages."""
        p, prog, lay = self.params, self.programmer, self.layout
        assert self.calibration is not None
        if reset_idx.size:
            prog.pulse(lay.rows[reset_idx], lay.cols[reset_idx], -p.reset_v, p.reset_width_s)
        if set_idx.size:
            # targets stay inside the calibrated working range, so are their gates; one
            # outside the bench's limits is refused by the driver (SafetyError), not clipped
            gates = self.calibration.gate_for(self.target_us[set_idx])
            prog.pulse(lay.rows[set_idx], lay.cols[set_idx], p.set_v, p.pulse_width_s, gates)
        self.programmed_us[set_idx] = self.target_us[set_idx]
        self.pulses += int(reset_idx.size + set_idx.size)

    # ---------------------------------------------------------------- forward / update
    def layer_output(self, layer: int, x: np.ndarray) -> np.ndarray:
        """Pre-activations (batch, n_out) of ``layer`` for inputs x in [0, 1], by ``VMM?``."""
        p, lc = self.params, self.layout.layers[layer]
        v = np.zeros((x.shape[0], self.n_rows))
        v[:, lc.rows[:-1]] = x * p.input_v
        v[:, lc.rows[-1]] = p.input_v  # the bias row
        out = np.empty((x.shape[0], lc.n_out))
        for s in range(0, x.shape[0], 1024):
            i = self.controller.vmm(v[s : s + 1024])
            out[s : s + 1024] = i[:, lc.cols_plus] - i[:, lc.cols_minus]
        self.vmm_vectors += x.shape[0]
        return out * (1e6 / p.input_v * self.w_per_us[layer])

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(hidden activations, class probabilities) for a batch."""
        h = _sigmoid(self.layer_output(0, x))
        return h, _softmax(self.layer_output(1, h))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)[1].argmax(axis=1)

    def train_step(self, x: np.ndarray, y: np.ndarray, lr: float) -> tuple[float, int]:
        """One minibatch: forward on chip, backward in software, open-loop update pulses.

        Returns the minibatch loss and how many of its samples the forward pass (before
        the update) classified correctly.
        """
        p, lay = self.params, self.layout
        h, prob = self.forward(x)
        correct = int(np.count_nonzero(prob.argmax(axis=1) == y))
        onehot = np.zeros_like(prob)
        onehot[np.arange(y.size), y] = 1.0
        loss = float(-np.log(np.maximum(prob[np.arange(y.size), y], 1e-12)).mean())
        d2 = (prob - onehot) / y.size
        l2 = lay.layers[1]
        g2 = self.programmer.read(lay.rows[lay.slices[1]], lay.cols[lay.slices[1]])
        half = g2.size // 2
        shape = (l2.n_in + 1, l2.n_out)
        w2 = pairs_to_weights(g2[:half].reshape(shape), g2[half:].reshape(shape), self.w_per_us[1])
        d1 = (d2 @ w2[:-1].T) * h * (1.0 - h)
        grads = [
            np.c_[x, np.ones(y.size)].T @ d1,
            np.c_[h, np.ones(y.size)].T @ d2,
        ]
        dg = np.concatenate([(-lr * g / p.w_per_us).ravel() for g in grads])
        # flat layout per layer: plus block then minus block
        step = np.empty_like(self.target_us)
        start = 0
        for i, g in enumerate(grads):
            sl = lay.slices[i]
            part = dg[start : start + g.size]
            start += g.size
            step[sl] = np.concatenate([part / 2, -part / 2])
        new = self.target_us + step
        sat = (new < p.g_low_us) | (new > p.g_high_us)
        self.saturated += int(np.count_nonzero(sat))
        self.target_us = np.clip(new, p.g_low_us, p.g_high_us)
        pending = self.target_us - self.programmed_us
        down = np.flatnonzero(pending < -p.update_threshold_us)
        up = np.flatnonzero(pending > p.update_threshold_us)
        self._pulse(down, np.concatenate([down, up]))
        return loss, correct


# ---------------------------------------------------------------------------------- the run
@dataclass
class InsituResult:
    """What a run measured (``summary()`` is the CLI's JSON)."""

    test_accuracy: float
    train_accuracy: float
    epochs: int
    stuck_fraction: float | None
    pulses: int
    wall_s: float
    bench_time_s: float | None
    epoch_wall_s: list[float]
    epoch_bench_s: list[float]
    history: list[dict[str, float]]
    calibration: dict[str, float]
    saturated_updates: int
    vmm_vectors: int
    weights: list[np.ndarray]  # the software targets' weights (bookkeeping, not the chip)
    sizes: list[int]
    params: dict[str, Any]
    interrupted: bool = False
    # what the chip holds: the pair mapping of every network device's measured conductance,
    # read at the end of the last completed epoch (after initialisation for epoch 0)
    chip_weights: list[np.ndarray] | None = None
    chip_weights_epoch: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "test_accuracy": self.test_accuracy,
            "train_accuracy": self.train_accuracy,
            "epochs": self.epochs,
            "stuck_fraction": self.stuck_fraction,
            "pulses": self.pulses,
            "wall_s": self.wall_s,
            "bench_time_s": self.bench_time_s,
            "epoch_wall_s": self.epoch_wall_s,
            "epoch_bench_s": self.epoch_bench_s,
            "history": self.history,
            "calibration": self.calibration,
            "saturated_updates": self.saturated_updates,
            "vmm_vectors": self.vmm_vectors,
            "sizes": self.sizes,
            "interrupted": self.interrupted,
            "seed002_insitu_accuracy": LI2018_INSITU_ACCURACY,
        }


def require_vmm(bench: Any) -> Any:
    """The bench's VMM-capable controller, or a ConfigError naming what is missing."""
    prog = bench.programmer
    ctrl = getattr(prog, "controller", None)
    stack = bench.config.programmer.stack
    if ctrl is None or not callable(getattr(ctrl, "vmm", None)):
        raise ConfigError(
            "bench",
            f"{bench.path.name} (stack {stack})",
            "a stack with an analog vector-matrix multiply (VMM?): the on-chip controller",
            "in-situ training runs the forward pass in the array; this stack reads cells "
            "one by one and has no VMM",
        )
    opts = ctrl.options()
    if "VMM" not in opts:
        raise ConfigError(
            "bench",
            f"{bench.path.name}: controller options {opts}",
            "the VMM option",
            "the controller firmware has no analog VMM",
        )
    if not prog.info.has_gate:
        raise ConfigError(
            "bench",
            f"{bench.path.name} ({prog.info.technology})",
            "a 1T1R array (gate-controlled SET)",
        )
    return ctrl


def train_insitu(
    bench: Any,
    params: InsituParams | None = None,
    dataset: Dataset | None = None,
    sink: EventSink | None = None,
    progress: bool = False,
    stuck_fraction: float | None = None,
    on_interrupt: Callable[[InsituResult], None] | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> InsituResult:
    """Train the 64-54-10 network in the array of an open ``bench`` (see the module docstring).

    Args:
        bench: an open bench whose stack has ``VMM?`` (the on-chip controller).
        params: settings; defaults reproduce seed 002's network on the digits.
        dataset: the data; default :func:`load_dataset` with the params' seed and limits.
        sink: events per epoch (the run store's sink plugs in here).
        progress: a progress bar over minibatches on stderr.
        stuck_fraction: only reported (the bench file sets the chip's).
        on_interrupt: called with the partial result when Ctrl-C stops training, before the
            KeyboardInterrupt propagates (the bench is made safe by its ``with`` block).
        on_epoch: called with each epoch's figures (loss, accuracies, pulses, times).
    """
    p = params or InsituParams()
    require_vmm(bench)
    data = dataset or load_dataset(
        "digits", seed=p.seed, limit_train=p.limit_train, limit_test=p.limit_test
    )
    s = sink_or_null(sink)
    sizes = [data.n_inputs, p.hidden, data.n_classes]
    net = ChipNetwork(bench.programmer, sizes, p)
    rng = np.random.default_rng(p.seed)
    t0 = time.perf_counter()
    b0 = bench.bench_time_s
    net.initialise(rng)
    assert net.calibration is not None
    # What the chip holds, refreshed after every epoch's test pass: the file written at the
    # end (or on an interrupt, without any I/O in the interrupt path) is the network the
    # chip ran for its reported accuracy, not the open-loop targets it was aiming at.
    chip = {"weights": net.measured_weights(), "epoch": 0}
    s.record_event(
        {"event": "insitu_start", "sizes": sizes, "calibration": net.calibration.as_dict()}
    )
    history: list[dict[str, float]] = []
    ep_wall: list[float] = []
    ep_bench: list[float] = []
    n = data.x_train.shape[0]
    bar = Progress(progress, p.epochs * n, "insitu")
    epoch = 0

    def result(interrupted: bool) -> InsituResult:
        test_acc = history[-1]["test_accuracy"] if history else float("nan")
        train_acc = history[-1]["train_accuracy"] if history else float("nan")
        bt = bench.bench_time_s - b0
        return InsituResult(
            test_accuracy=test_acc,
            train_accuracy=train_acc,
            epochs=epoch,
            stuck_fraction=stuck_fraction,
            pulses=net.pulses,
            wall_s=time.perf_counter() - t0,
            bench_time_s=bt,
            epoch_wall_s=ep_wall,
            epoch_bench_s=ep_bench,
            history=history,
            calibration=net.calibration.as_dict() if net.calibration else {},
            saturated_updates=net.saturated,
            vmm_vectors=net.vmm_vectors,
            weights=net.weights(),
            sizes=sizes,
            params=p.model_dump(),
            interrupted=interrupted,
            chip_weights=chip["weights"],
            chip_weights_epoch=int(chip["epoch"]),
        )

    try:
        if p.epochs == 0:
            acc = float((net.predict(data.x_test) == data.y_test).mean())
            history.append(
                {
                    "epoch": 0,
                    "loss": float("nan"),
                    "train_accuracy": float("nan"),
                    "test_accuracy": acc,
                }
            )
        for epoch_i in range(p.epochs):
            tw, tb = time.perf_counter(), bench.bench_time_s
            perm = rng.permutation(n)
            losses = []
            correct = 0
            for start in range(0, n, p.batch_size):
                idx = perm[start : start + p.batch_size]
                lr = p.learning_rate / (1.0 + p.lr_decay * epoch_i)
                loss, ok = net.train_step(data.x_train[idx], data.y_train[idx], lr)
                losses.append(loss)
                correct += ok
                bar.update(idx.size)
            ep_wall.append(time.perf_counter() - tw)
            ep_bench.append(bench.bench_time_s - tb)
            acc = float((net.predict(data.x_test) == data.y_test).mean())
            chip = {"weights": net.measured_weights(), "epoch": epoch_i + 1}
            epoch = epoch_i + 1
            row = {
                "epoch": epoch,
                "loss": float(np.mean(losses)),
                "train_accuracy": correct / n,
                "test_accuracy": acc,
                "pulses": net.pulses,
                "wall_s": ep_wall[-1],
                "bench_s": ep_bench[-1],
            }
            history.append(row)
            s.record_event({"event": "epoch", **row})
            if on_epoch is not None:
                on_epoch(row)
    except BaseException as exc:  # Ctrl-C, or SIGTERM/SIGHUP turned into an exception
        bar.close()
        if isinstance(exc, Exception):
            raise
        partial = result(True)
        if on_interrupt is not None:
            on_interrupt(partial)
        raise
    bar.close()
    # the end of training: the chip's levels for the file, read with RTN averaged out
    chip = {"weights": net.measured_weights(averaged=True), "epoch": epoch}
    res = result(False)
    s.record_event({"event": "insitu_end", "summary": res.summary()})
    return res


# ---------------------------------------------------------------------------------- weight files
def _software_predict(weights: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """Labels of the sigmoid/softmax network ``weights`` (bias last row), in software."""
    from memprog.jobs.weights import Network

    parts = [unfold_bias(w) for w in weights]
    net = Network([w for w, _ in parts], [b for _, b in parts], "sigmoid", "softmax")
    return net.predict(x)


def weights_dict(
    weights: list[np.ndarray],
    sizes: list[int],
    params: InsituParams,
    *,
    dataset: str = "digits",
    epochs: int = 0,
    source: str = "insitu",
) -> dict[str, Any]:
    """Contract B's weight-file dict (``memprog.weights/1``) for a sigmoid/softmax network.

    ``weights`` are (n_in + 1, n_out) matrices with the bias as last row; the mapping window
    is the run's working range, so ``memprog program`` places the pairs where in-situ
    training kept them.
    """
    import torch

    state = {}
    for i, w in enumerate(weights):
        weight, bias = unfold_bias(w)
        state[f"layers.{i}.weight"] = torch.tensor(weight, dtype=torch.float32)
        state[f"layers.{i}.bias"] = torch.tensor(bias, dtype=torch.float32)
    return {
        "format": WEIGHTS_FORMAT,
        "dataset": dataset,
        "sizes": list(sizes),
        "activation": "sigmoid",
        "output": "softmax",
        "state_dict": state,
        "mapping": {
            "scheme": "differential",
            "g_min_us": float(params.g_low_us),
            "g_max_us": float(params.g_high_us),
        },
        "hardware_aware": True,
        "seed": int(params.seed),
        "epochs": int(epochs),
        "variability_source": source,
    }


def save_weights(path: Any, result: InsituResult, params: InsituParams, source: str) -> Path:
    """Write what the chip holds (or held at the last completed epoch) as a Contract B file.

    The weights are the chip's measured conductances through the pair mapping
    (:attr:`InsituResult.chip_weights`), not the software targets: open-loop updates miss
    their targets, and the network that reached the reported accuracy is the one on the
    chip. Written by the weight-file writer every other command uses
    (:func:`memprog.hwaware.mapping.save_weights`, which validates the file first).
    """
    if result.chip_weights is None:
        raise ConfigError(
            "weights", str(path), "a run whose chip was read", "no chip read to save"
        )
    d = weights_dict(
        result.chip_weights,
        result.sizes,
        params,
        epochs=result.chip_weights_epoch,
        source=source,
    )
    return write_weight_file(d, path)


def file_software_accuracy(path: str | Path, data: Dataset) -> float:
    """Test accuracy of a weight file evaluated in software, loaded as ``memprog program`` loads it.

    Why: the saved file is only useful if the network it holds is the one the chip ran;
    evaluating the file itself (float32, through the program job's loader) next to the
    chip's accuracy shows that it is.
    """
    from memprog.jobs.weights import load_program_input

    net = load_program_input(path)
    return float((net.predict(data.x_test) == data.y_test).mean())


# ---------------------------------------------------------------------------------- stuck fraction
@contextmanager
def bench_with_stuck_fraction(bench: str | Path, stuck_fraction: float | None) -> Iterator[Path]:
    """The bench file to open: ``bench`` itself, or a copy whose chip has that stuck fraction.

    The fraction reaches the simulator the way every chip property does, through the bench
    file: ``chip.sim_params`` of a temporary copy sets ``unresponsive_fraction`` (devices
    stuck OFF near 10 µS, seed 002 Fig. 4b's defect) and no HRS/LRS-stuck devices besides.
    The chip seed is kept, so with one seed the stuck devices of 11 % are among those of
    30 %. A bench with real instruments is refused: a real chip's defects are what they are.
    """
    if stuck_fraction is None:
        yield resolve_bench_path(bench)
        return
    f = float(stuck_fraction)
    if not (np.isfinite(f) and 0.0 <= f < 1.0):
        raise ConfigError("stuck_fraction", stuck_fraction, "[0, 1)")
    config, path = load_bench_config(bench)
    real = sorted(n for n, i in config.instruments.items() if not i.simulated)
    if real:
        raise ConfigError(
            "stuck_fraction",
            f,
            "only on a simulated bench",
            f"{path.name}: {', '.join(real)} talk to a real chip, whose stuck devices cannot be chosen",
        )
    data = yaml.safe_load(path.read_text())
    sim = dict(data["chip"].get("sim_params") or {})
    sim.update(unresponsive_fraction=f, stuck_hrs_fraction=0.0, stuck_lrs_fraction=0.0)
    data["chip"]["sim_params"] = sim
    with tempfile.TemporaryDirectory(prefix="memprog-stuck-") as tmp:
        out = Path(tmp) / path.name
        out.write_text(dump_yaml(data, sort_keys=False))
        yield out


# ---------------------------------------------------------------------------------- ex-situ
def train_software(
    data: Dataset, hidden: int = 54, epochs: int = 60, seed: int = 0, lr: float = 0.01
) -> tuple[list[np.ndarray], float]:
    """A 64-54-10 sigmoid/softmax network trained in software (torch, Adam, batch 64).

    Returns the weights as (n_in + 1, n_out) matrices (bias last row) and the software
    test accuracy.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 64-54-10 network: thread start-up costs more than it saves
    try:
        return _train_software(torch, data, hidden, epochs, seed, lr)
    finally:
        torch.set_num_threads(threads)


def _train_software(
    torch: Any, data: Dataset, hidden: int, epochs: int, seed: int, lr: float
) -> tuple[list[np.ndarray], float]:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    sizes = [data.n_inputs, hidden, data.n_classes]
    layers = torch.nn.ModuleList(
        torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    )
    opt = torch.optim.Adam(layers.parameters(), lr=lr)
    x = torch.tensor(data.x_train, dtype=torch.float32)
    y = torch.tensor(data.y_train)

    def net(t: torch.Tensor) -> torch.Tensor:
        return layers[1](torch.sigmoid(layers[0](t)))

    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=g)
        for s in range(0, x.shape[0], 64):
            idx = perm[s : s + 64]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = net(torch.tensor(data.x_test, dtype=torch.float32)).argmax(1).numpy()
    weights = [
        np.vstack([lay.weight.detach().numpy().T, lay.bias.detach().numpy()[None, :]]).astype(
            np.float64
        )
        for lay in layers
    ]
    return weights, float((pred == data.y_test).mean())


def exsitu_transfer(
    bench: Any,
    params: InsituParams | None = None,
    dataset: Dataset | None = None,
    software_epochs: int = 60,
    weights: list[np.ndarray] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Seed 002's comparison: program software-trained weights, then run them by ``VMM?``.

    Each layer maps min-max onto differential pairs (Contract B: the larger device of a
    pair carries |w| above ``g_low_us``, the other sits at ``g_low_us``; scale = max|w| /
    (g_high - g_low)), the whole map is programmed with write-verify
    (:func:`~memprog.protocols.array.program_array`, Alibart, re-verify), and the test set
    is classified on the chip. Stuck devices keep their stuck conductance: the network
    was never told.
    """
    from memprog.protocols.array import ArrayParams, program_array

    p = params or InsituParams()
    require_vmm(bench)
    data = dataset or load_dataset(
        "digits", seed=p.seed, limit_train=p.limit_train, limit_test=p.limit_test
    )
    t0 = time.perf_counter()
    b0 = bench.bench_time_s
    if weights is None:
        weights, sw_acc = train_software(data, p.hidden, software_epochs, p.seed)
    else:
        sw_acc = float("nan")
    sizes = [data.n_inputs, p.hidden, data.n_classes]
    net = ChipNetwork(bench.programmer, sizes, p)
    parts = []
    for i, w in enumerate(weights):
        g_plus, g_minus, scale = weights_to_pairs(w, p.g_low_us, p.g_high_us)
        net.w_per_us[i] = scale
        parts += [g_plus.ravel(), g_minus.ravel()]
    net.target_us = np.concatenate(parts)
    lay = net.layout
    r0, c0 = lay.rows.min(), lay.cols.min()
    target_map = np.full((lay.rows.max() - r0 + 1, lay.cols.max() - c0 + 1), np.nan)
    target_map[lay.rows - r0, lay.cols - c0] = net.target_us
    res = program_array(
        bench.programmer, target_map, ArrayParams(), origin=(int(r0), int(c0)), progress=progress
    )
    b1 = bench.bench_time_s
    pred = net.predict(data.x_test)
    return {
        "software_accuracy": sw_acc,
        "chip_accuracy": float((pred == data.y_test).mean()),
        "cells": int(len(res)),
        "cells_converged": int(res.converged.sum()),
        "pulses": int(res.pulses.sum()),
        "program_bench_s": b1 - b0,
        "wall_s": time.perf_counter() - t0,
        "bench_time_s": bench.bench_time_s - b0,
    }


# ---------------------------------------------------------------------------------- the job
def run_insitu_job(
    bench: str | Path,
    params: InsituParams | None = None,
    *,
    stuck_fraction: float | None = None,
    out: str | Path | None = None,
    exsitu: bool = False,
    sink: EventSink | None = None,
    opener: Callable[[str], Any] | None = None,
    progress: bool = False,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    on_partial: Callable[[InsituResult], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``memprog insitu``: train in the array of ``bench``; optionally compare with ex-situ.

    Validates everything before the first pulse (stuck fraction in [0, 1), a stack with
    ``VMM?``) and writes to ``out``, as a Contract B file ``memprog program`` loads, the
    weights the chip holds (its measured conductances at the end of training through the
    pair mapping). The summary gives that file's software accuracy on the test set
    (``weights_software_accuracy``) beside the chip's (``chip_accuracy``, the same figure
    as ``test_accuracy``). On Ctrl-C (or SIGTERM/SIGHUP as
    ``memprog.core.signals.Interrupted``) the chip's weights at the last completed epoch are
    written to ``out`` first (and handed to ``on_partial``), the bench is left safe by its
    ``with`` block, and the interrupt propagates.

    Args:
        sink: where events go (the run store's sink).
        opener: opens a bench file as a context manager (default :func:`memprog.open_bench`;
            the CLI passes its run context's, which records the safe state).
    """
    from memprog.bench.assembly import open_bench

    p = params or InsituParams()
    say = log or (lambda _m: None)
    if stuck_fraction is not None:
        f = float(stuck_fraction)
        if not (np.isfinite(f) and 0.0 <= f < 1.0):
            raise ConfigError("stuck_fraction", stuck_fraction, "[0, 1)")
    data = load_dataset("digits", seed=p.seed, limit_train=p.limit_train, limit_test=p.limit_test)
    out_path = Path(out) if out is not None else None
    source = f"insitu:{Path(str(bench)).name}"
    opener = opener or open_bench

    def save(res: InsituResult) -> None:
        if out_path is not None:
            save_weights(out_path, res, p, source)
            say(
                f"memprog: the chip's weights after {res.chip_weights_epoch} epoch(s) "
                f"saved to {out_path}"
            )
        if on_partial is not None:
            on_partial(res)

    with bench_with_stuck_fraction(bench, stuck_fraction) as path:
        with opener(str(path)) as b:
            require_vmm(b)
            res = train_insitu(
                b,
                p,
                data,
                sink=sink,
                progress=progress,
                stuck_fraction=stuck_fraction,
                on_interrupt=save,
                on_epoch=on_epoch,
            )
            name = b.config.name
    summary = res.summary()
    summary["bench"] = name
    summary["chip_accuracy"] = res.test_accuracy
    summary["weights"] = None
    summary["weights_source"] = "chip"  # measured conductances, through the pair mapping
    if out_path is not None:
        written = save_weights(out_path, res, p, source)
        summary["weights"] = str(written)
        summary["weights_software_accuracy"] = file_software_accuracy(written, data)
    else:  # nothing written: the same figure from the chip's weights in memory
        pred = _software_predict(res.chip_weights or [], data.x_test)
        summary["weights_software_accuracy"] = float((pred == data.y_test).mean())
    if exsitu:
        with bench_with_stuck_fraction(bench, stuck_fraction) as path:
            with opener(str(path)) as b:
                ex = exsitu_transfer(b, p, data, progress=progress)
        summary["exsitu"] = ex
        summary["exsitu_accuracy"] = ex["chip_accuracy"]
    return summary
