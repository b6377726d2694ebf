"""Hardware-aware torch layers: a linear layer trained through simulated transfers.

Why: a network trained on ideal weights meets, on a passive crossbar, tuning imprecision,
disturb from the programming of its neighbours and stuck devices; trained *through* samples of
those effects (Drolet et al., seed 001) it learns weights that survive them. Every training
batch, each :class:`HardwareAwareLinear` maps its weights (bias folded in as an extra row) to
differential conductance pairs in the working range (min-max per batch), applies one sampled
transfer (:class:`~memprog.hwaware.variability.VariabilityModel`) and maps back. Gradients
flow by the reparametrization trick, ``w_eff = w + (w_transferred - w).detach()``: the forward
pass sees the transferred weights, the backward pass the identity — except for weights with a
stuck device, whose gradient is masked for that batch (a stuck device ignores updates).

Cost: the sampling is a dozen element-wise tensor ops per layer without autograd, and the
random draws for many batches come from one call (``chunk``), so a training step costs little
more than a plain ``nn.Linear`` step (``benchmarks/bench_hwaware.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from memprog.core.errors import ConfigError
from memprog.hwaware.mapping import ACTIVATIONS
from memprog.hwaware.mapping import later_writes as _later_writes
from memprog.hwaware.variability import Draw, VariabilityModel

_ACT = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}


CHUNK_ELEMENTS = 1 << 20  # device draws held per chunk (x3 floats + a mask: ~16 MiB)


def _chunk_for(chunk: int, devices: int) -> int:
    return max(1, min(chunk, CHUNK_ELEMENTS // max(1, devices)))


class HardwareAwareLinear(nn.Module):
    """``nn.Linear`` whose training forward pass sees one simulated crossbar transfer per batch.

    In eval mode (or without a variability model) it is an ordinary linear layer: transfers
    are evaluated in bulk by :func:`memprog.hwaware.transfer.evaluate_transfers`.

    Args:
        in_features, out_features: as ``nn.Linear`` (a bias is always present: it is the
            extra crossbar row driven by a constant 1).
        variability: the non-idealities to sample; ``None`` trains like ``nn.Linear``.
        chunk: at most this many training batches draw their transfers in one call (fewer
            for large layers: a chunk holds at most ``CHUNK_ELEMENTS`` device draws).
        generator: torch generator for the draws (seed it for reproducible runs).
        device: where parameters and draws live (CPU default).
        later_writes: (2, out, in+1) disturb key of each device (sign, output, input row,
            bias row last): how many cells the program job writes after it
            (:func:`memprog.hwaware.order.network_later_writes`); None: the layer alone,
            row-major (:func:`memprog.hwaware.mapping.later_writes`).
    """

    later_writes: torch.Tensor
    _sign: torch.Tensor
    _group_index: int

    def __init__(
        self,
        in_features: int,
        out_features: int,
        variability: VariabilityModel | None = None,
        *,
        chunk: int = 256,
        generator: torch.Generator | None = None,
        device: str | torch.device = "cpu",
        later_writes: object = None,
    ) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ConfigError("layer shape", (in_features, out_features), "positive widths")
        if chunk < 1:
            raise ConfigError("chunk", chunk, ">= 1 batches")
        self.in_features, self.out_features = int(in_features), int(out_features)
        lin = nn.Linear(self.in_features, self.out_features, device=device)
        self.weight = nn.Parameter(lin.weight.detach().clone())
        self.bias = nn.Parameter(lin.bias.detach().clone())
        shape = (2, self.out_features, self.in_features + 1)
        lw0 = _later_writes(self.in_features + 1, self.out_features) if later_writes is None else later_writes
        lw = torch.as_tensor(lw0, dtype=torch.int64, device=device)
        if tuple(lw.shape) != shape or bool((lw < 0).any()):
            raise ConfigError("later_writes", f"shape {tuple(lw.shape)}", f"{shape} counts >= 0")
        self.register_buffer("later_writes", lw, persistent=False)
        self.register_buffer("_sign", torch.tensor([1.0, -1.0], device=device).view(2, 1, 1), persistent=False)
        self.variability = variability.to(device) if variability is not None else None
        self.chunk = _chunk_for(int(chunk), 2 * self.out_features * (self.in_features + 1))
        self.generator = generator
        self._draws: Draw | None = None
        self._keep: tuple[torch.Tensor, ...] = ()
        self._next = 0
        self._group: _TransferGroup | None = None  # set by convert(): one fused draw per model
        # last forward's keep masks when a device of this layer's transfer was stuck, else None
        self.current_keep: tuple[torch.Tensor, torch.Tensor] | None = None
        self._any_stuck: list[bool] = []
        self.stuck_weights = 0  # weights with a stuck device, summed over drawn batches
        self.batches = 0  # batches drawn

    @classmethod
    def from_linear(cls, lin: nn.Linear, variability: VariabilityModel | None, **kw) -> HardwareAwareLinear:
        """A hardware-aware copy of ``lin`` (same weights; a missing bias starts at zero)."""
        dev = lin.weight.device
        layer = cls(lin.in_features, lin.out_features, variability, device=dev, **kw)
        with torch.no_grad():
            layer.weight.copy_(lin.weight)
            if lin.bias is not None:
                layer.bias.copy_(lin.bias)
            else:
                layer.bias.zero_()
        return layer

    def extra_repr(self) -> str:
        src = self.variability.source if self.variability is not None else "none"
        return f"in_features={self.in_features}, out_features={self.out_features}, variability={src}"

    def _draw(self) -> tuple[Draw, torch.Tensor, torch.Tensor, torch.Tensor]:
        """This batch's draw (devices (2, out, in+1)) and its keep masks (1 where no device
        of the weight is stuck): (out, in+1), weights, biases."""
        if self._draws is None or self._next >= self.chunk:
            assert self.variability is not None
            d = self.variability.draw(self.chunk, self.later_writes, self.generator)
            self._draws = d
            keep = (~(d.stuck[:, 0] | d.stuck[:, 1])).to(self.weight.dtype)
            n = self.in_features
            self._keep = (keep, keep[:, :, :n].contiguous(), keep[:, :, n].contiguous())
            self._any_stuck = (keep.view(self.chunk, -1) < 1).any(1).tolist()
            self._next = 0
            self.stuck_weights += int(keep.numel() - keep.sum().item())
            self.batches += self.chunk
        i = self._next
        self._next += 1
        k = self._keep
        return self._draws[i], k[0][i], k[1][i], k[2][i]

    def transferred(self, draw: Draw, keep: torch.Tensor | None = None) -> torch.Tensor:
        """The (out, in+1) weights (bias last) after one transfer ``draw`` (no autograd).

        With ``keep``, returns instead ``transferred - current * keep`` (the forward pass's
        reparametrization offset).
        """
        v = self.variability
        assert v is not None
        with torch.no_grad():
            a = torch.cat([self.weight, self.bias[:, None]], dim=1)
            s = a.abs().amax().clamp_min_(1e-30).div_(v.g_max_us - v.g_min_us)
            g = torch.relu_(a * self._sign).div_(s).add_(v.g_min_us)
            g = v.apply(g, draw)
            at = (g[0] - g[1]).mul_(s)
            return at if keep is None else at.sub_(a.mul_(keep))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.variability is None:
            return F.linear(x, self.weight, self.bias)
        if self._group is not None:
            delta_w, delta_b, keep_w, keep_b = self._group.take(self)
            self.current_keep = (keep_w, keep_b) if self._group.has_stuck else None
            w = torch.addcmul(delta_w, self.weight, keep_w)
            b = torch.addcmul(delta_b, self.bias, keep_b)
            return F.linear(x, w, b)
        draw, keep, keep_w, keep_b = self._draw()
        self.current_keep = (keep_w, keep_b) if self._any_stuck[self._next - 1] else None
        # reparametrization: the forward pass sees the transferred weights
        # (delta + w * keep == transferred), the backward pass the identity masked by keep
        # (a stuck device ignores updates)
        delta = self.transferred(draw, keep)
        n = self.in_features
        w = torch.addcmul(delta[:, :n], self.weight, keep_w)
        b = torch.addcmul(delta[:, n], self.bias, keep_b)
        return F.linear(x, w, b)


class _TransferGroup:
    """One transfer of every hardware-aware layer of a model, sampled in one pass.

    Why: for small networks a training step is dominated by per-op overhead, not arithmetic;
    sampling all layers' devices as one flat vector costs the ops of one layer. Each layer
    takes its slice once per round; a layer asking twice starts the next round (a new
    transfer of every layer, from the weights as they are then).

    Flat order: per layer, its weights row-major then its biases; devices (2, P): g_plus,
    g_minus.
    """

    def __init__(self, layers: list[HardwareAwareLinear], variability: VariabilityModel,
                 generator: torch.Generator | None, chunk: int) -> None:
        self.layers = layers
        self.var = variability
        self.generator = generator
        self.device = layers[0].weight.device
        lw, index, self.bounds = [], [], []
        o = 0
        for i, layer in enumerate(layers):
            n, m = layer.in_features, layer.out_features
            lwl = layer.later_writes  # (2, out, in+1)
            lw.append(torch.cat([lwl[:, :, :n].reshape(2, -1), lwl[:, :, n]], dim=1))
            size = m * (n + 1)
            index.append(torch.full((size,), i, dtype=torch.long, device=self.device))
            self.bounds.append((o, o + m * n, o + size))
            o += size
        self.later_writes = torch.cat(lw, dim=1)
        self.sizes = [n for a, b, c in self.bounds for n in (b - a, c - b)]
        self.chunk = _chunk_for(chunk, self.later_writes.numel())
        self._keep_parts: list[torch.Tensor] = []
        self.index = torch.cat(index)
        self.sign = torch.tensor([1.0, -1.0], device=self.device).view(2, 1)
        self._draws: Draw | None = None
        self._keep: torch.Tensor | None = None
        self._next = 0
        self._served: set[int] = set()
        self._slices: list[tuple[torch.Tensor, ...]] = []
        self.stuck_weights = 0
        self.batches = 0
        self._any_stuck: list[bool] = []
        self.has_stuck = False  # this round's transfer has a stuck device

    def _draw(self) -> tuple[Draw, torch.Tensor, list[torch.Tensor]]:
        if self._draws is None or self._next >= self.chunk:
            d = self.var.draw(self.chunk, self.later_writes, self.generator)
            self._draws = d
            self._keep = (~(d.stuck[:, 0] | d.stuck[:, 1])).float()
            # per batch, whether any weight has a stuck device (one sync per chunk): the
            # optimiser step needs freezing only then (training._StuckFreezer)
            self._any_stuck = (self._keep < 1).any(1).tolist()
            # per layer, contiguous keep masks of its weights and biases (one select per step)
            self._keep_parts = []
            for layer, (a, b, c) in zip(self.layers, self.bounds, strict=True):
                self._keep_parts.append(self._keep[:, a:b].reshape(self.chunk, *layer.weight.shape).contiguous())
                self._keep_parts.append(self._keep[:, b:c].contiguous())
            self._next = 0
            self.stuck_weights += int(self._keep.numel() - self._keep.sum().item())
            self.batches += self.chunk
        i = self._next
        self._next += 1
        assert self._keep is not None
        self.has_stuck = bool(self._any_stuck[i])
        return self._draws[i], self._keep[i], [k[i] for k in self._keep_parts]

    def _round(self) -> None:
        v = self.var
        draw, keep, parts = self._draw()
        with torch.no_grad():
            flat = torch.cat([p.reshape(-1) for layer in self.layers for p in (layer.weight, layer.bias)])
            absf = flat.abs()
            m = torch.stack([absf[a:c].amax() for a, _, c in self.bounds])
            s = m.clamp_min_(1e-30).div_(v.g_max_us - v.g_min_us)[self.index]
            g = torch.relu_(flat * self.sign).div_(s).add_(v.g_min_us)
            g = v.apply(g, draw)
            delta = (g[0] - g[1]).mul_(s).sub_(flat.mul_(keep))
        pieces = torch.split(delta, self.sizes)
        self._slices = [
            (pieces[2 * i].view(layer.weight.shape), pieces[2 * i + 1], parts[2 * i], parts[2 * i + 1])
            for i, layer in enumerate(self.layers)
        ]
        self._served = set()

    def take(self, layer: HardwareAwareLinear) -> tuple[torch.Tensor, ...]:
        """This round's (delta_w, delta_b, keep_w, keep_b) of ``layer``."""
        i = layer._group_index
        if i in self._served or not self._slices:
            self._round()
        self._served.add(i)
        return self._slices[i]


class MLP(nn.Module):
    """A fully connected network ``sizes[0] -> ... -> sizes[-1]`` returning logits.

    Its ``state_dict`` keys are Contract B's (``layers.{i}.weight``, ``layers.{i}.bias``).
    """

    def __init__(self, sizes: list[int], activation: str = "sigmoid", device: str | torch.device = "cpu"):
        super().__init__()
        if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
            raise ConfigError("sizes", sizes, ">= 2 positive layer widths")
        if activation not in ACTIVATIONS:
            raise ConfigError("activation", activation, f"one of {ACTIVATIONS}")
        self.sizes = [int(s) for s in sizes]
        self.activation = activation
        self.layers = nn.ModuleList(
            nn.Linear(a, b, device=device) for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = _ACT[self.activation]
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = act(x)
        return x


def convert(
    model: nn.Module,
    variability: VariabilityModel,
    *,
    generator: torch.Generator | None = None,
    chunk: int = 256,
    fuse: bool = True,
    later_writes: list | None = None,
) -> nn.Module:
    """Replace every ``nn.Linear`` of ``model`` (recursively, in place) by a hardware-aware copy.

    The model's ``state_dict`` keys are unchanged, so a converted model loads and saves the
    same weight files as the plain one. With ``fuse`` (default) the converted layers sample
    their transfers together, one pass per training step (see ``_TransferGroup``).
    ``later_writes``: per ``nn.Linear`` (in module order) its devices' disturb keys, shape
    (2, out, in+1) (:func:`memprog.hwaware.order.network_later_writes`); None: each layer
    alone, row-major. Returns ``model``.
    """
    keys = None if later_writes is None else list(later_writes)
    _replace(model, variability, generator, chunk, keys)
    if keys:
        raise ConfigError("later_writes", f"{len(keys)} left over", "one (2, out, in+1) array per nn.Linear")
    if fuse:
        layers = [m for m in model.modules() if isinstance(m, HardwareAwareLinear) and m.variability is not None]
        if layers:
            group = _TransferGroup(layers, variability.to(layers[0].weight.device), generator, chunk)
            for i, layer in enumerate(layers):
                layer._group = group
                layer._group_index = i
    return model


def _replace(model: nn.Module, variability: VariabilityModel, generator, chunk: int, keys: list | None) -> None:
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Linear):
            if keys is not None and not keys:
                raise ConfigError("later_writes", "too few", "one (2, out, in+1) array per nn.Linear")
            lw = keys.pop(0) if keys is not None else None
            setattr(model, name, HardwareAwareLinear.from_linear(
                child, variability, generator=generator, chunk=chunk, later_writes=lw))
        else:
            _replace(child, variability, generator, chunk, keys)


def stuck_weight_fraction(model: nn.Module) -> dict[str, float]:
    """Per hardware-aware layer (or ``"all"`` for fused layers), the mean fraction of weights
    substituted per drawn batch."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, HardwareAwareLinear):
            if m._group is not None and m._group.batches:
                g = m._group
                out["all"] = g.stuck_weights / (g.batches * g.later_writes.shape[1])
            elif m.batches:
                out[name] = m.stuck_weights / (m.batches * m.out_features * (m.in_features + 1))
    return out
