"""A fused transfer group's draws and rounds on numpy arrays (CPU, float32, raw imprecision).

Why a module of its own: for the small networks that train on a CPU (2-8-1, 64-54-10) a
hardware-aware step costs what its *overhead* costs, not its arithmetic (issue 24: a step
<= 1.5x a plain torch step). What this path saves, each measured in
``benchmarks/bench_hwaware.py``:

* op dispatch: a numpy op on a few thousand floats costs a fraction of a torch op's dispatch
  (a round: ~20 numpy calls into kept scratch arrays);
* fresh memory: a chunk drawn into new tensors faults in new pages and evicts the model from
  the caches every chunk; drawn into buffers kept from chunk to chunk (``CHUNK_DEVICES``), a
  64-54-10 batch's draw costs ~45 instead of ~75 µs (isolated, one core);
* per-batch bookkeeping: which parameters have a stuck device is known per chunk, so the
  forward pass masks only those (the others add their offset: no mask in the backward pass);
* mixed dtypes: an int32 + float32 call runs numpy's buffered float64 loop, so the read
  columns and the pick stay float32 (exact integers) up to one cast to int32 indices, and
  ``take`` runs in its cheapest mode for them, "wrap" (indices valid by construction; issue
  24 item 6, second
  cut: a 64-54-10 round ~51 -> ~34 µs in a training step, a batch's draw ~43 -> ~34 µs; the
  offsets bit for bit the same, ``tests/hwaware/test_step_cost_exact.py``).

The law is :meth:`VariabilityModel.draw` / :meth:`VariabilityModel.apply`'s, op for op: the
same torch uniforms (one per device) pick stuck (and which stuck sample) or, rescaled, the
recorded disturb sample of the device's number of later writes and the recorded read ratio
of its level (``tests/hwaware/test_step_overhead.py`` pins both against the torch path).
"""

from __future__ import annotations

import numpy as np
import torch

from memprog.hwaware.variability import VariabilityModel

# [choice] devices drawn per chunk: the kept outputs (uniforms, columns, disturb, keep: ~14
# bytes a device, 3.5 MiB) sit in the shared L3, and the chunk's fixed cost (some 30 numpy
# calls) is spread over 32 batches of the 64-54-10 network (measured: 2**17 to 2**20 devices
# within noise; 2**16 costs ~0.1x a plain step more)
CHUNK_DEVICES = 1 << 18
# [choice] devices per block of the draw: its scratch (3 x 256 KiB) still fits a core's L2,
# and fewer blocks are fewer calls (64-54-10, one core: 2**14 -> 2**16 ~33.7 -> 31.8 µs a
# batch's draw, 2**17 no better)
SUB_DEVICES = 1 << 16


class NumpyTransfer:
    """Draws for ``n`` batches at a time and one transfer round per batch, for the flat
    parameter vector of a fused group (layers' weights row-major, then their biases).

    Args:
        var: the variability (raw imprecision on equidistant levels: ``var.numpy_apply``).
        later_writes: (2, P) disturb keys (g_plus row, g_minus row), CPU.
        starts: first flat index of each min-max scale segment (a layer, or a layer's weights
            and its biases, :class:`memprog.hwaware.layers._TransferGroup`); index: (P,)
            segment of each weight.
        chunk: at most this many batches per draw.
    """

    def __init__(self, var: VariabilityModel, later_writes: torch.Tensor, starts: np.ndarray,
                 index: np.ndarray, chunk: int) -> None:
        assert var.numpy_apply and var.imp_factors is not None and var._imp_grid is not None
        self.var = var
        p = int(later_writes.shape[1])
        self.p = p
        self.chunk = max(1, min(int(chunk), CHUNK_DEVICES // (2 * p)))
        self.starts, self.index = starts, index
        self.layers = len(starts)
        k = later_writes.clamp(max=var.max_later_writes)
        cnt = var.disturb_counts[k].to(torch.float32)
        self._f_h, self._f_l = var.stuck_hrs_fraction, var.stuck_lrs_fraction
        f = self._f_h + self._f_l
        self._f = f
        # u -> (u - f) / (1 - f) * count: the disturb pick (as VariabilityModel.draw)
        self._scale = (cnt * (1.0 / (1.0 - f))).numpy() if f > 0 else cnt.numpy()
        self._shift = (cnt * (-f / (1.0 - f))).numpy() if f > 0 else None
        # float32 (exact integers): the pick stays in one dtype until its one cast to an index
        self._top = (cnt - 1).numpy()
        self._base = (k * var.disturb_us.shape[1]).to(torch.float32).numpy()
        self._disturb = var.disturb_us.reshape(-1).numpy()
        self._stuck_h = var.stuck_hrs_us.numpy()
        self._stuck_l = var.stuck_lrs_us.numpy()
        fac = var.imp_factors.numpy()
        self._levels = fac.shape[0]
        self._m_imp = fac.shape[1] - 1
        # the read-ratio table transposed (column-major), so a device's column is drawn
        # pre-multiplied and its level added with one op per round; column m repeats column
        # m - 1 (where a float32 pick rounding up to m lands: what a clamp would pick, one
        # pass less), column m + 1 is the 0 of a stuck device
        cols = np.concatenate([fac[:, :-1], fac[:, -2:-1], fac[:, -1:]], axis=1)
        self._ratio = np.ascontiguousarray(cols.T).reshape(-1)
        self._one_uniform = int(var.disturb_counts.max()) * self._m_imp <= (1 << 20)
        lo, inv_step, top = var._imp_grid
        self._a, self._b = var._imp_ab_np
        self._clip = None if var._imp_range_inside else top
        self._g_min = np.float32(var.g_min_us)
        self._range = np.float32(var.g_max_us - var.g_min_us)
        shape = (self.chunk, 2, p)
        self._u = torch.empty(shape)  # torch.rand fills it: the caller's torch generator
        sub = (max(1, min(self.chunk, SUB_DEVICES // (2 * p))), 2, p)
        self._x = np.empty(sub, np.float32)  # scratch of one block
        self._fl = np.empty(sub, np.float32)
        self._pos = np.empty(sub, np.int32)
        # read-ratio column x levels (transposed table) as float32 (exact integers): the round
        # adds it to the rounded level without a mixed int/float (float64) loop
        self.col = np.empty(shape, np.float32)
        self.disturb = np.empty(shape, np.float32)
        self.keep = np.empty((self.chunk, p), np.float32)  # 0 where a device of the weight is stuck
        self._is_stuck = np.empty(shape, bool)
        # the round's scratch: per device g, level (then t) and its table index; per weight
        # |w|, w x scale and the scale (µS per weight unit)
        self._scratch = (np.empty((2, p), np.float32), np.empty((2, p), np.float32), np.empty((2, p), np.int32),
                         np.empty(p, np.float32), np.empty(p, np.float32), np.empty(p, np.float32))
        ends = np.append(starts[1:], p)
        self._segments = list(zip(starts.tolist(), ends.tolist(), strict=True))
        self._tiny, self._zero = np.float32(1e-30), np.float32(0.0)
        self.stuck_weights: list[np.ndarray] = []  # per batch: flat positions of stuck weights
        self.any_stuck: list[bool] = []
        self.stuck_weight_count = 0  # weights with a stuck device in the last chunk

    def draw(self, generator: torch.Generator | None) -> None:
        """Fill the buffers with the random part of ``chunk`` transfers: the uniforms of
        :meth:`VariabilityModel.draw` (torch.rand on ``generator``, the same stream)."""
        n, p = self.chunk, self.p
        torch.rand(self._u.shape, generator=generator, out=self._u)
        u_all = self._u.numpy()
        m, levels = self._m_imp, self._levels
        v_all = None if self._one_uniform else torch.rand(self._u.shape, generator=generator).numpy()
        # in blocks whose scratch stays in a core's L2: the chunk's outputs are written once
        sb = self._x.shape[0]
        for s in range(0, n, sb):
            e = min(n, s + sb)
            u, x, fl, pos = u_all[s:e], self._x[: e - s], self._fl[: e - s], self._pos[: e - s]
            np.multiply(u, self._scale, out=x)
            if self._shift is not None:
                x += self._shift
            # truncation: floor for x >= 0; x < 0 is a stuck device (its values are replaced
            # below; its index, wrapped by take, just has to be valid). All float32 (integers
            # below 2**24 are exact): the same values as integer arithmetic, no mixed loops
            np.trunc(x, out=fl)
            np.minimum(fl, self._top, out=fl)
            if v_all is None:  # the fractional part of the disturb pick picks the read
                x -= fl
                x *= m
            else:
                np.multiply(v_all[s:e], m, out=x)
            col = self.col[s:e]
            np.trunc(x, out=col)  # 0..m (m: the repeated column)
            col *= levels
            fl += self._base
            np.copyto(pos, fl, casting="unsafe")
            # "wrap": the cheapest bounds handling for int32 indices; only a stuck device's
            # index can be negative, and its value is replaced below
            self._disturb.take(pos, out=self.disturb[s:e], mode="wrap")
        u, col = u_all, self.col
        self.keep.fill(1.0)
        if self._f > 0:
            # few: stuck values only where needed (the mask in a kept buffer: a fresh one of a
            # chunk's size is fresh pages every chunk)
            where = np.flatnonzero(np.less(u, self._f, out=self._is_stuck))
            us = u.reshape(-1)[where]
            f_h, f_l = self._f_h, self._f_l
            nh, nl = self._stuck_h.size, self._stuck_l.size
            ih = np.clip((us * np.float32(nh / max(f_h, 1e-30))).astype(np.int64), 0, nh - 1)
            il = np.clip(((us - np.float32(f_h)) * np.float32(nl / max(f_l, 1e-30))).astype(np.int64), 0, nl - 1)
            self.disturb.reshape(-1)[where] = np.where(us < f_h, self._stuck_h[ih], self._stuck_l[il])
            col.reshape(-1)[where] = (m + 1) * levels  # the 0 column: a stuck device keeps only its stuck value
            batch, weight = np.divmod(where, 2 * p)
            weight %= p
            hit = batch * p + weight
            self.keep.reshape(-1)[hit] = 0.0
            # weights with a stuck device (a pair with both stuck counts once): from the few
            # stuck positions, not a pass over the chunk's keep
            hit.sort()
            self.stuck_weight_count = int(hit.size - np.count_nonzero(hit[1:] == hit[:-1]))
            self.stuck_weights = np.split(weight, np.searchsorted(batch, np.arange(1, n)))
            self.any_stuck = np.zeros(n, bool)
            self.any_stuck[batch] = True
            self.any_stuck = self.any_stuck.tolist()
        else:
            where = batch = weight = np.empty(0, np.int64)
            self.stuck_weights = [where] * n
            self.any_stuck = [False] * n
            self.stuck_weight_count = 0
        self._where, self._batch_of, self._weight_of = where, batch, weight

    def stuck_params(self, bounds: list[tuple[int, int, int]]) -> list[list[bool]]:
        """Per batch, per parameter (weights, bias of each layer): whether a device is stuck."""
        edges = np.array([e for a, b, _ in bounds for e in (a, b)][1:] + [bounds[-1][2]])
        hit = np.zeros((self.chunk, edges.size), bool)
        if self._where.size:
            hit[self._batch_of, np.searchsorted(edges, self._weight_of, side="right")] = True
        return hit.tolist()

    def round(self, i: int, flat: np.ndarray, delta: np.ndarray) -> None:
        """Batch ``i``'s reparametrization offsets into ``delta``: transferred - flat * keep.

        The same mapping and lookup as the torch round, op for op in float32: each segment's
        (layer's, or its weights' and its biases') largest |weight| maps to the top of the
        working range; devices (2, P): g_plus, g_minus.
        Scratch arrays are kept and every call stays in float32 but the one cast to table
        indices (a mixed int/float call runs a buffered float64 loop, and take() casts an
        int32 index unless it wraps): a round is ~20 calls on a few thousand floats.
        """
        g, level, idx, absf, fi, inv = self._scratch
        np.abs(flat, out=absf)
        if self.layers > 1:
            m = np.maximum.reduceat(absf, self.starts)
            np.divide(self._range, np.maximum(m, self._tiny, out=m), out=m)  # µS per weight unit
            # each segment's scale over its slice: a few slice fills beat a gather over P
            for (a, c), scale in zip(self._segments, m.tolist(), strict=True):
                inv[a:c] = scale
        else:
            inv.fill(self._range / max(absf.max(), self._tiny))
        np.multiply(flat, inv, out=fi)
        np.maximum(fi, self._zero, out=g[0])  # g_plus - g_min
        np.subtract(g[0], fi, out=g[1])  # max(-fi, 0), exactly: g_minus - g_min
        g += self._g_min
        np.multiply(g, self._a, out=level)
        level += self._b
        np.rint(level, out=level)  # half to even, as torch.round
        if self._clip is not None:
            np.clip(level, 0, self._clip, out=level)
        level += self.col[i]  # integers: exact
        np.copyto(idx, level, casting="unsafe")
        t = level  # the level is spent: its buffer takes the transferred conductance
        self._ratio.take(idx, out=t, mode="wrap")  # always in the table (level in 0..top)
        t *= g
        t += self.disturb[i]
        np.subtract(t[0], t[1], out=delta)
        delta /= inv
        if self.any_stuck[i]:
            np.multiply(flat, self.keep[i], out=fi)
            delta -= fi
        else:
            delta -= flat

    def torch_draw_parts(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batch ``i``'s (disturb, read column, stuck) as torch tensors (the torch round's
        fall-back when the parameters left the shared storage)."""
        m = self._m_imp
        col = (self.col[i] // self._levels).astype(np.int64)
        stuck = col == m + 1
        col = np.where(stuck, m, np.minimum(col, m - 1))  # the torch table: no repeated column
        return torch.from_numpy(self.disturb[i].copy()), torch.from_numpy(col), torch.from_numpy(stuck)
