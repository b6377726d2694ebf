"""Monte Carlo transfer evaluation: how often does each test point survive a transfer?

Why: one simulated transfer says little; the question a lab asks before programming a chip is
how reliably the network classifies each input across the transfers the chip may give.
Drolet et al. (seed 001) answer with a table: the fraction of test points classified
correctly in 100 %, 95-100 %, ... of simulated transfers. Here thousands of transfers are
one batched tensor computation — every layer's conductances of ``t`` transfers sampled at
once, the network run on all of them with batched matrix products — on any torch device
(CPU default). Transfers are processed in memory-bounded blocks of thousands, never one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from memprog.core.errors import ConfigError
from memprog.hwaware.mapping import BIAS_SCALES, mapping_bias_scale
from memprog.hwaware.mapping import later_writes as _later_writes
from memprog.hwaware.order import network_later_writes
from memprog.hwaware.variability import VariabilityModel

# Seed 001's table (Supplementary Note 3): lower and upper bounds in percent; 100 is exact.
BINS: tuple[tuple[str, float, float], ...] = (
    ("100", 100.0, 100.0),
    ("95-100", 95.0, 100.0),
    ("90-95", 90.0, 95.0),
    ("80-90", 80.0, 90.0),
    ("70-80", 70.0, 80.0),
    ("60-70", 60.0, 70.0),
    ("50-60", 50.0, 60.0),
    ("<50", 0.0, 50.0),
)
_ACT = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}
_ACT_ = {"sigmoid": torch.sigmoid_, "relu": torch.relu_, "tanh": torch.tanh_}
_BLOCK_ELEMENTS = 1 << 20  # widest activation tensor of one block (4 MiB: stays in cache)


@dataclass
class TransferResult:
    """Per test point, how many of ``n_transfers`` simulated transfers classified it correctly."""

    correct_counts: np.ndarray  # (n_points,) int
    n_transfers: int
    transfer_accuracy: np.ndarray  # (n_transfers,) accuracy of each transfer
    ideal_accuracy: float  # the untransferred network

    @property
    def fraction_correct(self) -> np.ndarray:
        """Per test point, the fraction of transfers that classify it correctly."""
        return self.correct_counts / self.n_transfers

    def table(self) -> list[dict[str, Any]]:
        """Seed 001's table: per bin, the number and percentage of test points.

        A point with ``c`` correct of ``n`` transfers is in bin [lo, hi) when
        ``lo <= 100 c / n < hi`` (compared in integers, so 95 % of 1,000 is exactly 950).
        """
        c = self.correct_counts.astype(np.int64) * 100
        n = int(self.n_transfers)
        npts = c.size
        rows = []
        for label, lo, hi in BINS:
            if lo == hi:
                m = c == 100 * n
            else:
                m = (c >= int(lo) * n) & (c < int(hi) * n)
            k = int(m.sum())
            rows.append({"bin": label, "points": k, "percent": 100.0 * k / npts})
        return rows

    def fraction_at_least(self, pct: float) -> float:
        """Fraction of test points correct in at least ``pct`` % of transfers."""
        return float(np.mean(self.correct_counts.astype(np.int64) * 100 >= pct * self.n_transfers))

    def summary(self) -> dict[str, Any]:
        """The figures a report or ``--json`` needs."""
        return {
            "n_transfers": int(self.n_transfers),
            "n_test_points": int(self.correct_counts.size),
            "ideal_accuracy": float(self.ideal_accuracy),
            "test_accuracy_mean": float(self.transfer_accuracy.mean()),
            "test_accuracy_std": float(self.transfer_accuracy.std()),
            "fraction_correct_in_at_least_95pct": self.fraction_at_least(95.0),
            "fraction_correct_in_at_least_90pct": self.fraction_at_least(90.0),
            "table": self.table(),
        }


class TransferSimulator:
    """A trained network and a variability model, ready to simulate transfers in bulk.

    Args:
        layers: ``[(weight (out x in), bias (out,)), ...]`` tensors or arrays, input first.
        variability: the non-idealities.
        activation: hidden activation (``sigmoid``/``relu``/``tanh``).
        g_range_us: the mapping's working range (a weight file's ``mapping``); default the
            variability model's.
        device: where the computation runs (CPU default; a CUDA device when present).
        later_writes: per layer the (2, out, in+1) disturb keys of its devices, as the program
            job will write them (:func:`memprog.hwaware.order.network_later_writes`); None:
            each layer alone, row-major.
        bias_scale: ``"own"`` (each layer's biases on their own min-max scale, as
            :func:`memprog.hwaware.training.train` maps them) or ``"folded"`` (one scale per
            layer: a weight file without ``mapping.bias_scale``); :func:`simulator_from_weights`
            takes it from the file.
    """

    def __init__(
        self,
        layers: list[tuple[Any, Any]],
        variability: VariabilityModel,
        *,
        activation: str = "sigmoid",
        g_range_us: tuple[float, float] | None = None,
        device: str | torch.device = "cpu",
        later_writes: list | None = None,
        bias_scale: str = "own",
    ) -> None:
        if bias_scale not in BIAS_SCALES:
            raise ConfigError("bias_scale", bias_scale, f"one of {BIAS_SCALES}")
        self.bias_scale = bias_scale
        if activation not in _ACT:
            raise ConfigError("activation", activation, f"one of {sorted(_ACT)}")
        if not layers:
            raise ConfigError("layers", 0, ">= 1 layer")
        self.device = torch.device(device)
        self.var = variability.to(self.device)
        self.act = _ACT[activation]
        self.act_ = _ACT_[activation]
        self._g: list[torch.Tensor] = []
        self._s: list[torch.Tensor] = []
        self._lw: list[torch.Tensor] = []
        self.ideal: list[tuple[torch.Tensor, torch.Tensor]] = []
        g_min, g_max = g_range_us if g_range_us is not None else (self.var.g_min_us, self.var.g_max_us)
        if not 0 <= g_min < g_max:
            raise ConfigError("g_range_us", g_range_us, "0 <= g_min < g_max")
        self.g_range_us = (float(g_min), float(g_max))
        r = g_max - g_min
        sign = torch.tensor([1.0, -1.0], device=self.device).view(2, 1, 1)
        prev = None
        if later_writes is not None and len(later_writes) != len(layers):
            raise ConfigError("later_writes", f"{len(later_writes)} layers", f"one per layer ({len(layers)})")
        for li, (w, b) in enumerate(layers):
            w = torch.as_tensor(w, dtype=torch.float32, device=self.device)
            b = torch.as_tensor(b, dtype=torch.float32, device=self.device)
            if w.ndim != 2 or b.shape != (w.shape[0],) or (prev is not None and w.shape[1] != prev):
                raise ConfigError("layers", f"weight {tuple(w.shape)}, bias {tuple(b.shape)}", "chained (out x in) weights and (out,) biases")
            prev = w.shape[0]
            a = torch.cat([w, b[:, None]], dim=1)
            if bias_scale == "own":  # per column: the weights' scale, the bias row's own
                n = w.shape[1]
                s = torch.cat([w.abs().amax().expand(n), b.abs().amax()[None]]).clamp_min(1e-30) / r
            else:
                s = a.abs().amax().clamp_min(1e-30) / r
            self._g.append(torch.relu(a * sign) / s + g_min)
            self._s.append(s)
            shape = (2, w.shape[0], w.shape[1] + 1)
            lw = _later_writes(w.shape[1] + 1, w.shape[0]) if later_writes is None else later_writes[li]
            lw = torch.as_tensor(lw, dtype=torch.int64, device=self.device)
            if tuple(lw.shape) != shape:
                raise ConfigError(f"later_writes[{li}]", f"shape {tuple(lw.shape)}", f"{shape}")
            self._lw.append(lw)
            self.ideal.append((w, b))
        self.widest = max(w.shape[0] for w, _ in self.ideal)

    def transferred_layers(self, n: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """``n`` transfers: per layer an (n, out, in+1) tensor of transferred weights (bias last)."""
        out = []
        for g, s, lw in zip(self._g, self._s, self._lw, strict=True):
            gt = self.var.sample(g, lw, n, generator)
            out.append((gt[:, 0] - gt[:, 1]).mul_(s))
        return out

    def logits(self, x: torch.Tensor, transferred: list[torch.Tensor]) -> torch.Tensor:
        """Network outputs for inputs ``x`` (N, in) under each transfer: (n, out, N).

        The first layer is one matrix product for all transfers at once (its input is
        shared); the later ones batched products over transfers, bias fused.
        """
        a = transferred[0]
        t, n_out, n_in = a.shape[0], a.shape[1], a.shape[2] - 1
        h = torch.addmm(
            a[:, :, n_in].reshape(t * n_out, 1), a[:, :, :n_in].reshape(t * n_out, n_in), x.T
        ).view(t, n_out, x.shape[0])
        for a in transferred[1:]:
            self.act_(h)
            n_in = a.shape[2] - 1
            h = torch.baddbmm(a[:, :, n_in:], a[:, :, :n_in], h)
        return h

    def ideal_logits(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for i, (w, b) in enumerate(self.ideal):
            h = torch.nn.functional.linear(h, w, b)
            if i < len(self.ideal) - 1:
                h = self.act(h)
        return h

    def block_size(self, n_points: int) -> int:
        """Transfers per block so the widest activation tensor stays within the budget."""
        return max(1, _BLOCK_ELEMENTS // max(1, n_points * self.widest))

    def evaluate(
        self, x: Any, y: Any, n_transfers: int, *, seed: int = 0, block: int | None = None
    ) -> TransferResult:
        """Simulate ``n_transfers`` transfers and classify ``x``; count, per point, the correct ones.

        Binary networks (one output) predict class 1 when the logit is >= 0 (sigmoid >= 0.5);
        multi-class ones the argmax.
        """
        if n_transfers < 1:
            raise ConfigError("transfers", n_transfers, ">= 1")
        x = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        y = torch.as_tensor(y, device=self.device).long().reshape(-1)
        if x.ndim != 2 or x.shape[0] != y.shape[0]:
            raise ConfigError("x, y", f"{tuple(x.shape)}, {tuple(y.shape)}", "(N, in) inputs and N labels")
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(seed))
        block = block or self.block_size(x.shape[0])
        counts = torch.zeros(x.shape[0], dtype=torch.int64, device=self.device)
        acc = torch.empty(n_transfers, dtype=torch.float32, device=self.device)
        with torch.no_grad():
            done = 0
            while done < n_transfers:
                t = min(block, n_transfers - done)
                correct = self._correct(self.logits(x, self.transferred_layers(t, gen)), y)
                counts += correct.sum(0)
                acc[done : done + t] = correct.float().mean(1)
                done += t
            ideal = self._correct(self.ideal_logits(x).T[None], y).float().mean()
        return TransferResult(
            correct_counts=counts.cpu().numpy(),
            n_transfers=int(n_transfers),
            transfer_accuracy=acc.cpu().numpy(),
            ideal_accuracy=float(ideal),
        )

    @staticmethod
    def _correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(n, out, N) logits -> (n, N) correct."""
        if logits.shape[1] == 1:
            return (logits[:, 0] >= 0) == (y == 1)
        return logits.argmax(1) == y

    def probability_stats(
        self, x: Any, n_transfers: int, *, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std over transfers of the class-1 probability (binary networks) at ``x``."""
        x = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(seed))
        s1 = torch.zeros(x.shape[0], dtype=torch.float64, device=self.device)
        s2 = torch.zeros_like(s1)
        block = self.block_size(x.shape[0])
        with torch.no_grad():
            done = 0
            while done < n_transfers:
                t = min(block, n_transfers - done)
                p = torch.sigmoid(self.logits(x, self.transferred_layers(t, gen))[:, 0]).double()
                s1 += p.sum(0)
                s2 += (p * p).sum(0)
                done += t
        mean = s1 / n_transfers
        std = (s2 / n_transfers - mean * mean).clamp_min(0).sqrt()
        return mean.cpu().numpy(), std.cpu().numpy()


def layout_later_writes(weights: dict, array_shape: tuple[int, int] | None = None, order: str | None = None) -> list | None:
    """The disturb keys of a weight dict: for ``array_shape`` (a chip) when given, else the
    layout it was trained for (its ``disturb_layout``), else None (each layer alone)."""
    lay = weights.get("disturb_layout") or {}
    shape = array_shape if array_shape is not None else lay.get("array_shape")
    if shape is None:
        return None
    return network_later_writes(list(weights["sizes"]), tuple(shape), order or lay.get("order", "row-major"))


def simulator_from_weights(
    weights: dict, variability: VariabilityModel, device: str | torch.device = "cpu",
    array_shape: tuple[int, int] | None = None, order: str | None = None,
) -> TransferSimulator:
    """A :class:`TransferSimulator` for a Contract B weight dict, keyed as the chip
    (``array_shape``, else the weights' own ``disturb_layout``) will be programmed."""
    sd, sizes = weights["state_dict"], weights["sizes"]
    layers = [(sd[f"layers.{i}.weight"], sd[f"layers.{i}.bias"]) for i in range(len(sizes) - 1)]
    m = weights["mapping"]
    return TransferSimulator(
        layers, variability, activation=weights["activation"],
        g_range_us=(float(m["g_min_us"]), float(m["g_max_us"])), device=device,
        later_writes=layout_later_writes(weights, array_shape, order), bias_scale=mapping_bias_scale(m),
    )


def evaluate_transfers(
    weights: dict, x: Any, y: Any, variability: VariabilityModel, n_transfers: int,
    *, seed: int = 0, device: str | torch.device = "cpu",
) -> TransferResult:
    """Monte Carlo transfer evaluation of a Contract B weight dict on ``(x, y)``."""
    return simulator_from_weights(weights, variability, device).evaluate(x, y, n_transfers, seed=seed)
