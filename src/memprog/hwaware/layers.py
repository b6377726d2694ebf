"""Hardware-aware torch layers: a linear layer trained through simulated transfers.

Why: a network trained on ideal weights meets, on a passive crossbar, tuning imprecision,
disturb from the programming of its neighbours and stuck devices; trained *through* samples of
those effects (Drolet et al., seed 001) it learns weights that survive them. Every training
batch, each :class:`HardwareAwareLinear` maps its weights and its biases (the extra row driven by
a constant input) to differential conductance pairs in the working range, each on its own
min-max scale per batch (``bias_scale="own"``, as the program job writes a weight file that
says so; ``"folded"``: the bias row on the weights' scale, the old mapping), applies one
sampled transfer (:class:`~memprog.hwaware.variability.VariabilityModel`) and maps back. Gradients
flow by the reparametrization trick, ``w_eff = w + (w_transferred - w).detach()``: the forward
pass sees the transferred weights, the backward pass the identity — except for weights with a
stuck device, whose gradient is masked for that batch (a stuck device ignores updates).

Cost: the random draws for many batches come from one call (``chunk``); per batch, all layers'
transfers are ~20 element-wise ops without autograd on one flat vector, the parameters live in
one flat storage so neither the round nor the stuck freeze concatenates them. On the CPU with
raw imprecision the draws go into kept numpy buffers and the round runs on numpy views
(:mod:`memprog.hwaware.numpy_transfer`); the forward pass masks only parameters with a stuck
device (``benchmarks/bench_hwaware.py``; issue 24).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from memprog.core.errors import ConfigError
from memprog.hwaware.mapping import ACTIVATIONS, BIAS_SCALES
from memprog.hwaware.mapping import later_writes as _later_writes
from memprog.hwaware.numpy_transfer import NumpyTransfer
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
        bias_scale: ``"own"`` (the biases on their own min-max scale, the weights on theirs)
            or ``"folded"`` (one scale for the (in+1) x out matrix); see
            :func:`memprog.hwaware.mapping.chip_matrix` for how the chip computes it.
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
        bias_scale: str = "own",
    ) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ConfigError("layer shape", (in_features, out_features), "positive widths")
        if bias_scale not in BIAS_SCALES:
            raise ConfigError("bias_scale", bias_scale, f"one of {BIAS_SCALES}")
        self.bias_scale = bias_scale
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
        # an unfused layer's last keep masks (see current_keep)
        self._current_keep: tuple[torch.Tensor, torch.Tensor] | None = None
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

    @property
    def current_keep(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The last forward's keep masks (weights, biases; 0 where a device is stuck) when a
        device of this layer's transfer was stuck, else None. A property, read from the
        transfer group: setting a module attribute every forward costs more than the mask."""
        g = self._group
        if g is None:
            return self._current_keep
        if not g.has_stuck or not g._slices:
            return None
        s = g._slices[self._group_index]
        return s[2], s[3]

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
            if self.bias_scale == "own":  # per column: the weights' scale, the bias row's own
                n = self.in_features
                s = torch.cat([a[:, :n].abs().amax().expand(n), a[:, n].abs().amax()[None]])
                s = s.clamp_min_(1e-30).div_(v.g_max_us - v.g_min_us)
            else:
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
            # a keep of None: no stuck device in that parameter, the same sum without a mask
            # in the backward pass. The parameter dict itself: Module.__getattr__ costs more
            # than an add on a small layer (issue 24 item 6)
            params = self._parameters
            weight, bias = params["weight"], params["bias"]
            w = torch.add(delta_w, weight) if keep_w is None else torch.addcmul(delta_w, weight, keep_w)
            b = torch.add(delta_b, bias) if keep_b is None else torch.addcmul(delta_b, bias, keep_b)
            return F.linear(x, w, b)
        draw, keep, keep_w, keep_b = self._draw()
        self._current_keep = (keep_w, keep_b) if self._any_stuck[self._next - 1] else None
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
    g_minus. When the layers were made by the same :func:`convert` call, their parameters
    live in one flat storage (``flat``; each ``weight``/``bias`` stays its own
    ``nn.Parameter``, a view of it): a round reads the weights without concatenating them,
    and the stuck-device freeze is one masked op over all layers (``optimizer_step``). Why
    it is checked every round: moving the model to another device or dtype re-homes the
    parameters; the group then falls back to concatenating them (same result, more ops).
    """

    def __init__(self, layers: list[HardwareAwareLinear], variability: VariabilityModel,
                 generator: torch.Generator | None, chunk: int, share_storage: bool = False) -> None:
        self.layers = layers
        self.var = variability
        self.generator = generator
        self.device = layers[0].weight.device
        lw, index, self.bounds = [], [], []
        # the mapping's min-max scales: per layer one segment (weights and biases, "folded")
        # or two ("own": the weights, then the biases); (start, end) in the flat order
        self.segments: list[tuple[int, int]] = []
        o = 0
        for layer in layers:
            n, m = layer.in_features, layer.out_features
            lwl = layer.later_writes  # (2, out, in+1)
            lw.append(torch.cat([lwl[:, :, :n].reshape(2, -1), lwl[:, :, n]], dim=1))
            size = m * (n + 1)
            self.bounds.append((o, o + m * n, o + size))
            parts = [(o, o + m * n), (o + m * n, o + size)] if layer.bias_scale == "own" else [(o, o + size)]
            for a, c in parts:
                index.append(torch.full((c - a,), len(self.segments), dtype=torch.long, device=self.device))
                self.segments.append((a, c))
            o += size
        self.later_writes = torch.cat(lw, dim=1)
        self.sizes = [n for a, b, c in self.bounds for n in (b - a, c - b)]
        self.chunk = _chunk_for(chunk, self.later_writes.numel())
        self.index = torch.cat(index)  # (P,) the scale segment of each weight
        self.sign = torch.tensor([1.0, -1.0], device=self.device).view(2, 1)
        self._small = self.later_writes.numel() <= 2048  # per-op overhead, not arithmetic, dominates
        self._max = torch.zeros(len(self.segments), device=self.device)
        self._range = torch.tensor(variability.g_max_us - variability.g_min_us, device=self.device)
        self._g_min = torch.tensor(variability.g_min_us, device=self.device)
        self.flat: torch.Tensor | None = self._share_storage() if share_storage else None
        dtype = layers[0].weight.dtype
        # numpy draws and rounds on the CPU (memprog.hwaware.numpy_transfer); up to some 10^4
        # devices (measured: 2-8-1 and 64-54-10 gain, one 256x256 layer does not)
        self._numpy = (self.flat is not None and self.device.type == "cpu" and dtype == torch.float32
                       and variability.numpy_apply and self.later_writes.numel() <= 1 << 15)
        # this round's reparametrization offsets, written in place; per layer (weights, biases) views
        self._delta = torch.empty(o, device=self.device, dtype=dtype)
        self._delta_views = [
            (self._delta[a:b].view(layer.weight.shape), self._delta[b:c])
            for layer, (a, b, c) in zip(layers, self.bounds, strict=True)
        ]
        self._np: NumpyTransfer | None = None
        if self._numpy:  # draws in kept buffers, rounds on numpy views
            starts = np.array([a for a, _ in self.segments])
            self._np = NumpyTransfer(variability, self.later_writes, starts, self.index.numpy(), chunk)
            self.chunk = self._np.chunk
            # numpy views of the flat parameters and the offsets, made once (a .numpy() per
            # round is a call per round); valid while flat_weights() is not None
            self._np_views = (self.flat.numpy(), self._delta.numpy())
        self._draws: Draw | None = None
        self._batch: list[tuple] = []  # per batch of the chunk: its draw's parts, unbound once
        self._next = self.chunk  # the first round draws
        self._served = [True] * len(layers)  # per layer: took this round's slice
        # per layer, what the forward pass takes: (delta_w, delta_b, keep_w, keep_b), the keeps
        # None where no device of the layer is stuck (no mask in the backward pass)
        self._forward: list[tuple] = []
        self._torch_slices: list[tuple] = []
        self.stuck_weights = 0
        self.batches = 0
        self._any_stuck: list[bool] = []
        self.has_stuck = False  # this round's transfer has a stuck device
        self._stuck_now: torch.Tensor | None = None  # this round's (P,) 1.0 where a weight has a stuck device

    def _share_storage(self) -> torch.Tensor | None:
        """Move the layers' parameters into one flat storage (views of it); None if they differ
        in device or dtype."""
        params = [p for layer in self.layers for p in (layer.weight, layer.bias)]
        if len({(p.device, p.dtype) for p in params}) != 1:
            return None
        flat = torch.empty(self.bounds[-1][2], device=params[0].device, dtype=params[0].dtype)
        self._ptrs = []
        with torch.no_grad():
            for layer, (a, b, c) in zip(self.layers, self.bounds, strict=True):
                w, bias = layer.weight, layer.bias
                flat[a:b].view(w.shape).copy_(w)
                flat[b:c].copy_(bias)
                layer.weight = nn.Parameter(flat[a:b].view(w.shape), requires_grad=w.requires_grad)
                layer.bias = nn.Parameter(flat[b:c], requires_grad=bias.requires_grad)
                # the parameter dict itself: Module.__getattr__ would cost more than the check
                self._ptrs.append((layer._parameters, layer.weight.data_ptr(), layer.bias.data_ptr()))
        return flat

    def flat_weights(self) -> torch.Tensor | None:
        """The parameters' flat storage while every parameter still lives in it, else None."""
        if self.flat is not None:
            for params, pw, pb in self._ptrs:
                if params["weight"].data_ptr() != pw or params["bias"].data_ptr() != pb:
                    self.flat = None  # re-homed (.to(), .data = ...): concatenate from now on
                    break
        return self.flat

    def _draw_chunk(self) -> None:
        if self._np is not None:
            self._draw_chunk_np()
            return
        d = self.var.draw(self.chunk, self.later_writes, self.generator)
        self._draws = d
        n, p = self.chunk, self.later_writes.shape[1]
        if d.stuck_index is not None:  # from the few stuck devices' positions: no full-size passes
            batch = torch.div(d.stuck_index, 2 * p, rounding_mode="floor")
            weight = batch * p + d.stuck_index.remainder(p)  # (batch, sign, weight) -> (batch, weight)
            keep = torch.ones((n, p), dtype=self._delta.dtype, device=self.device)
            keep.view(-1).index_fill_(0, weight, 0.0)
            # per batch, whether any weight has a stuck device (one sync per chunk): the
            # optimiser step needs freezing only then (optimizer_step, training._StuckFreezer)
            any_stuck = torch.zeros(n, dtype=torch.bool, device=self.device).index_fill_(0, batch, True)
            self._any_stuck = any_stuck.tolist()
        else:
            keep = (~(d.stuck[:, 0] | d.stuck[:, 1])).to(self._delta.dtype)
            self._any_stuck = (keep < 1).any(1).tolist()
        # every batch's parts as views, split once per chunk (unbind: one call, not one per batch)
        parts: list[tuple[torch.Tensor, ...]] = [
            d.disturb_us.unbind(0),
            (None,) * n if d.imp_index is None else d.imp_index.unbind(0),
            (None,) * n if d.rel_a is None else d.rel_a.unbind(0),
            (None,) * n if d.rel_b1 is None else d.rel_b1.unbind(0),
            d.stuck.unbind(0),
            keep.unbind(0),
            torch.sub(1.0, keep).unbind(0),
        ]
        for layer, (a, b, c) in zip(self.layers, self.bounds, strict=True):
            parts.append(keep[:, a:b].view(n, *layer.weight.shape).unbind(0))
            parts.append(keep[:, b:c].unbind(0))
        self._batch = list(zip(*parts, strict=True))
        self._next = 0
        self.stuck_weights += int(keep.numel() - keep.sum().item())
        self.batches += n

    def _draw_chunk_np(self) -> None:
        """A chunk drawn by the numpy path, and per batch what the forward pass takes: each
        layer's keep views (unbound once per chunk) only for the parameters with a stuck
        device, None for the others (no mask in their backward pass)."""
        t = self._np
        assert t is not None
        t.draw(self.generator)
        n = self.chunk
        keep = torch.from_numpy(t.keep)
        self._keep_t = keep
        self._keeps = [
            (keep[:, a:b].view(n, *layer.weight.shape).unbind(0), keep[:, b:c].unbind(0))
            for layer, (a, b, c) in zip(self.layers, self.bounds, strict=True)
        ]
        views = list(enumerate(self._delta_views))
        self._forward_chunk = [
            [(dw, db, self._keeps[j][0][i] if hit[2 * j] else None, self._keeps[j][1][i] if hit[2 * j + 1] else None)
             for j, (dw, db) in views]
            for i, hit in enumerate(t.stuck_params(self.bounds))
        ]
        self._any_stuck = t.any_stuck
        self._next = 0
        self.stuck_weights += t.stuck_weight_count
        self.batches += n

    @property
    def _slices(self) -> list[tuple[torch.Tensor, ...]]:
        """Per layer, this round's (delta_w, delta_b, keep_w, keep_b); [] before the first."""
        if not self._forward:
            return []
        if self._np is None:
            return self._torch_slices
        i = self._next - 1
        return [(dw, db, kw[i], kb[i]) for (dw, db), (kw, kb) in zip(self._delta_views, self._keeps, strict=True)]

    def _round(self) -> None:
        if self._next >= self.chunk:
            self._draw_chunk()
        i = self._next
        self._next += 1
        self.has_stuck = self._any_stuck[i]
        flat = self.flat_weights()
        if self._np is not None:
            if flat is not None:
                self._np.round(i, *self._np_views)
            else:
                disturb, col, stuck = self._np.torch_draw_parts(i)
                self._round_torch(None, disturb, col, None, None, stuck, self._keep_t[i])
            self._forward = self._forward_chunk[i]
        else:
            disturb, imp, rel_a, rel_b1, stuck, keep, stuckf, *keep_parts = self._batch[i]
            self._stuck_now = stuckf
            self._round_torch(flat, disturb, imp, rel_a, rel_b1, stuck, keep)
            self._torch_slices = [
                (dw, db, keep_parts[2 * j], keep_parts[2 * j + 1]) for j, (dw, db) in enumerate(self._delta_views)
            ]
            self._forward = self._torch_slices if self.has_stuck else [(dw, db, None, None) for dw, db in self._delta_views]
        self._served = [False] * len(self.layers)

    def _round_torch(self, flat, disturb, imp, rel_a, rel_b1, stuck, keep) -> None:
        v = self.var
        with torch.no_grad():
            if flat is None:
                flat = torch.cat([p.reshape(-1) for layer in self.layers for p in (layer.weight, layer.bias)])
                if flat.dtype != self._delta.dtype:  # the model changed dtype (.double()): follow it
                    self._delta = torch.empty_like(flat)
                    self._delta_views = [
                        (self._delta[a:b].view(layer.weight.shape), self._delta[b:c])
                        for layer, (a, b, c) in zip(self.layers, self.bounds, strict=True)
                    ]
                    self._max = self._max.to(flat.dtype)
            # each segment's (layer's, or its weights' and its biases') largest |weight| maps
            # to the top of the working range
            absf = flat.abs()
            if len(self.segments) == 1:
                m = absf.amax()
            elif self._small:  # one scatter beats a max per segment on a few hundred weights
                m = self._max.scatter_reduce_(0, self.index, absf, "amax", include_self=False)
            else:
                m = torch.stack([absf[a:c].amax() for a, c in self.segments])
            inv = torch.div(self._range, m.clamp_min_(1e-30))  # µS per weight unit
            if len(self.segments) > 1:
                inv = inv.index_select(0, self.index)
            # devices (2, P): g_plus, g_minus in the working range
            if self._small:
                g = torch.addcmul(self._g_min, flat * inv, self.sign).clamp_(min=v.g_min_us)
            else:
                g = torch.mul(flat * inv, self.sign).relu_().add_(v.g_min_us)
            g = v.apply(g, Draw(rel_a, rel_b1, disturb, stuck, imp), in_range=True)
            # offset: transferred - current * keep (forward: offset + current * keep == transferred)
            torch.sub(g[0], g[1], out=self._delta).div_(inv).addcmul_(flat, keep, value=-1.0)

    def take(self, layer: HardwareAwareLinear) -> tuple:
        """This round's (delta_w, delta_b, keep_w, keep_b) of ``layer`` (a keep is None where
        the parameter has no stuck device this round)."""
        i = layer._group_index
        if self._served[i]:
            self._round()
        self._served[i] = True
        return self._forward[i]

    def optimizer_step(self, opt: torch.optim.Optimizer) -> bool:
        """``opt.step()`` with this round's stuck weights put back where they were: one clone
        and one masked op over all layers (numpy path: the few stuck weights saved and put
        back). False (nothing done) when the parameters no longer share the flat storage: the
        caller freezes them layer by layer."""
        flat = self.flat_weights()
        if flat is None:
            return False
        if not self.has_stuck:
            opt.step()
            return True
        if self._np is not None:
            where = self._np.stuck_weights[self._next - 1]
            values = self._np_views[0]
            saved = values[where]
            opt.step()
            values[where] = saved  # the same memory (a step in place keeps the storage)
            return True
        with torch.no_grad():
            saved = flat.clone()
        opt.step()
        with torch.no_grad():
            # stepped + stuck * (saved - stepped): exact at 0 (stepped) and 1 (saved)
            flat.lerp_(saved, self._stuck_now)
        return True


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
    bias_scale: str = "own",
) -> nn.Module:
    """Replace every ``nn.Linear`` of ``model`` (recursively, in place) by a hardware-aware copy.

    The model's ``state_dict`` keys are unchanged, so a converted model loads and saves the
    same weight files as the plain one. With ``fuse`` (default) the converted layers sample
    their transfers together, one pass per training step (see ``_TransferGroup``).
    ``later_writes``: per ``nn.Linear`` (in module order) its devices' disturb keys, shape
    (2, out, in+1) (:func:`memprog.hwaware.order.network_later_writes`); None: each layer
    alone, row-major. ``bias_scale``: ``"own"`` (each layer's biases on their own min-max
    scale) or ``"folded"`` (one scale per layer). Returns ``model``.
    """
    if bias_scale not in BIAS_SCALES:
        raise ConfigError("bias_scale", bias_scale, f"one of {BIAS_SCALES}")
    keys = None if later_writes is None else list(later_writes)
    fresh: list[HardwareAwareLinear] = []
    _replace(model, variability, generator, chunk, keys, fresh, bias_scale)
    if keys:
        raise ConfigError("later_writes", f"{len(keys)} left over", "one (2, out, in+1) array per nn.Linear")
    if fuse:
        layers = [m for m in model.modules() if isinstance(m, HardwareAwareLinear) and m.variability is not None]
        if layers:
            # one flat parameter storage only for layers made here: an optimiser built before
            # this call would hold parameters the group replaced
            made = {id(m) for m in fresh}
            group = _TransferGroup(layers, variability.to(layers[0].weight.device), generator, chunk,
                                   share_storage=all(id(m) in made for m in layers))
            for i, layer in enumerate(layers):
                layer._group = group
                layer._group_index = i
    return model


def _replace(model: nn.Module, variability: VariabilityModel, generator, chunk: int, keys: list | None,
             fresh: list, bias_scale: str) -> None:
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Linear):
            if keys is not None and not keys:
                raise ConfigError("later_writes", "too few", "one (2, out, in+1) array per nn.Linear")
            lw = keys.pop(0) if keys is not None else None
            layer = HardwareAwareLinear.from_linear(child, variability, generator=generator, chunk=chunk, later_writes=lw,
                                                    bias_scale=bias_scale)
            setattr(model, name, layer)
            fresh.append(layer)
        else:
            _replace(child, variability, generator, chunk, keys, fresh, bias_scale)


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
