"""The in-situ network living on the array: forward pass by ``VMM?``, backward pass in
software, open-loop update pulses (Li's two-pulse scheme).

Why a module of its own: this is the part that talks to the chip at every minibatch — the
analog vector-matrix multiply, the read of the output layer's weights, the batched RESET
and gate-limited SET messages — and the part a test patches to interrupt training
(:meth:`ChipNetwork.train_step`). :func:`require_vmm` refuses, before the first pulse, a
bench whose stack cannot run it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memprog.core.errors import ConfigError
from memprog.hwaware.mapping import pairs_to_weights
from memprog.jobs.insitu_calibration import GateCalibration, calibrate_gate
from memprog.jobs.insitu_layout import Layout
from memprog.jobs.insitu_params import InsituParams
from memprog.protocols.settle import adaptive_read

# [choice] standard error of the mean the final read of the saved weights aims at: a tenth
# of the update threshold (4 µS), well below the RTN it averages out
FINAL_READ_SEM_US = 0.25


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


def require_vmm(bench: Any) -> Any:
    """The bench's VMM-capable controller, or a ConfigError naming what is missing."""
    prog = bench.programmer
    ctrl = getattr(prog, "controller", None)
    stack = bench.config.programmer.stack
    if not prog.supports_vmm or ctrl is None:  # the capability the stack declares
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


__all__ = ["FINAL_READ_SEM_US", "ChipNetwork", "require_vmm"]
