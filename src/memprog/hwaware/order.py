"""The order the program job writes a network's cells in, and what it means for disturb.

Why: on a passive crossbar every write puts V/3 on every other cell, so what a device has
lost or gained by the end of a transfer depends on how many cells the program job writes
after it — on the whole array, all layers together, in the job's own order. Training keyed
by a layer-alone, row-major count (up to 47 later writes in the 2-8-1 network's first
layer) samples another chip than the one programmed. So the order is written once, here,
below both users: the program job calls :func:`copy0_order` and
:func:`programming_sequence` to write the cells, and hardware-aware training, the Monte
Carlo prediction and ``memprog evaluate --on-bench`` key each device by
:func:`network_later_writes` — the same placement
(:func:`memprog.hwaware.placement.place_network`), the same order — so they agree with the
chip device by device.

Torch-free: numpy in and out.
"""

from __future__ import annotations

import numpy as np

from memprog.core.bench_config import load_bench_config
from memprog.core.errors import ConfigError
from memprog.hwaware.placement import place_network
from memprog.protocols.array import order_cells

WEIGHT_FREE_ORDERS = ("row-major", "column-major", "snake")  # orders that do not depend on the targets


def copy0_order(cells: dict[str, np.ndarray], order: str) -> np.ndarray:
    """Indices of the copy-0 cells of ``cells`` (:meth:`Placement.cells` plus ``g_us``) in
    the order the program job tunes them (``protocols.array.order_cells`` on the physical
    rows and columns).

    Why here, one function: on a passive crossbar a cell's disturb is the writes after it,
    so hardware-aware training keys each device's disturb by its position in this very
    order (:func:`network_later_writes`); the job calls it too.
    """
    first = np.flatnonzero(cells["copy"] == 0)
    g = cells["g_us"][first] if "g_us" in cells else np.zeros(first.size)
    return first[order_cells(cells["row"][first], cells["col"][first], g, order)]


def programming_sequence(
    cells: dict[str, np.ndarray], copies: int, order: str, chunk_cells: int = 16384
) -> np.ndarray:
    """Every cell's index in the order the program job first writes it (a serial stack).

    The job takes the copy-0 cells in :func:`copy0_order`, ``chunk_cells // copies`` at a
    time; per chunk those, then their last copies (same layer, input, output and sign) in
    the same order. Re-tunes after the chunk (a settle re-verify, twin compensation) are
    not in it: they happen only to the cells that need them.
    """
    first = copy0_order(cells, order)
    if copies == 1:
        return first
    last = np.flatnonzero(cells["copy"] == copies - 1)

    def key(idx: np.ndarray) -> np.ndarray:
        return np.stack([cells[k][idx] for k in ("layer", "i", "j", "sign")], axis=1)

    kl = key(last)
    srt = np.lexsort(kl.T[::-1])
    kf = key(first)
    # position of each first cell's twin in the sorted last cells
    sk = kl[srt]
    view = np.ascontiguousarray(sk).view([("", sk.dtype)] * sk.shape[1]).ravel()
    qf = np.ascontiguousarray(kf).view([("", kf.dtype)] * kf.shape[1]).ravel()
    lo = np.searchsorted(view, qf)
    twin = last[srt[lo]]
    step = max(1, int(chunk_cells) // copies)
    parts = []
    for a in range(0, first.size, step):
        parts += [first[a : a + step], twin[a : a + step]]
    return np.concatenate(parts)


def later_writes_of(sequence: np.ndarray, n_cells: int) -> np.ndarray:
    """Per cell, how many cells are written after it in ``sequence`` (the last one: 0)."""
    out = np.zeros(int(n_cells), dtype=np.int64)
    out[sequence] = sequence.size - 1 - np.arange(sequence.size)
    return out


def network_later_writes(
    sizes: list[int],
    array_shape: tuple[int, int],
    order: str = "row-major",
    copies: int = 1,
) -> list[np.ndarray]:
    """Per layer, the (2, out, in+1) number of cells the program job writes after each device.

    Index ``[s, o, r]``: sign ``s`` (0 = g_plus, 1 = g_minus), output ``o``, input row ``r``
    (the bias row last), as :class:`~memprog.hwaware.layers.HardwareAwareLinear` holds them.

    Args:
        sizes: layer widths, input first (e.g. ``[2, 8, 1]``).
        array_shape: (rows, cols) of the chip the network will be programmed on.
        order: the program job's ``--order`` (one that does not depend on the targets).
        copies: 1: one differential pair per weight (what the Monte Carlo model and
            ``memprog evaluate --on-bench`` program).
    """
    if order not in WEIGHT_FREE_ORDERS:
        raise ConfigError(
            "order", order,
            f"one of {list(WEIGHT_FREE_ORDERS)} (target-dependent orders change with the weights)",
        )
    if copies != 1:
        raise ConfigError("copies", copies, "1 (one differential pair per weight, as the transfer model samples)")
    shapes = [(int(a) + 1, int(b)) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    pl = place_network(shapes, (int(array_shape[0]), int(array_shape[1])), copies)
    cells = pl.cells()
    seq = programming_sequence(cells, pl.copies, order)
    lw = later_writes_of(seq, cells["row"].size)
    out = []
    for k, (n_rows, n_out) in enumerate(shapes):
        a = np.full((2, n_out, n_rows), -1, dtype=np.int64)
        sel = cells["layer"] == k
        s = np.where(cells["sign"][sel] > 0, 0, 1)
        a[s, cells["j"][sel], cells["i"][sel]] = lw[sel]
        if (a < 0).any():  # pragma: no cover - every device of a layer is placed once
            raise RuntimeError(f"layer {k}: {int((a < 0).sum())} devices without a cell")
        out.append(a)
    return out


def bench_array_shape(bench: str) -> tuple[int, int]:
    """(rows, cols) of a bench file's chip (its name or path), for :func:`network_later_writes`."""
    cfg, _ = load_bench_config(bench)
    return int(cfg.chip.rows), int(cfg.chip.cols)


__all__ = [
    "WEIGHT_FREE_ORDERS",
    "bench_array_shape",
    "copy0_order",
    "later_writes_of",
    "network_later_writes",
    "programming_sequence",
]
