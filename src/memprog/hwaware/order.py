"""Disturb keys as the chip is programmed: each device's number of later writes.

Why: on a passive crossbar every write puts V/3 on every other cell, so what a device has
lost or gained by the end of a transfer depends on how many cells the program job writes
after it — on the whole array, all layers together, in the job's own order. Training keyed
by a layer-alone, row-major count (up to 47 later writes in the 2-8-1 network's first
layer) samples another chip than the one programmed. Here the key comes from the program
job's own placement (:func:`memprog.jobs.placement.place_network`) and order
(:func:`memprog.jobs.placement.programming_sequence`, which the job itself calls), so the
training, the Monte Carlo prediction and the chip agree device by device.

Torch-free: numpy in and out.
"""

from __future__ import annotations

import numpy as np

from memprog.core.errors import ConfigError

WEIGHT_FREE_ORDERS = ("row-major", "column-major", "snake")  # orders that do not depend on the targets


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
    from memprog.jobs.placement import later_writes_of, place_network, programming_sequence

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
    from memprog.core.bench_config import load_bench_config

    cfg, _ = load_bench_config(bench)
    return int(cfg.chip.rows), int(cfg.chip.cols)


__all__ = ["WEIGHT_FREE_ORDERS", "bench_array_shape", "network_later_writes"]
