"""Seed 002's comparison: the same network trained in software, then programmed onto the
chip with write-verify and run by ``VMM?`` (an ex-situ transfer).

Why beside the in-situ job: the point of training in the array is that the network learns
around stuck devices; an ex-situ transfer on the same chip, whose network was never told
about them, is the baseline that shows it (seed 002 Fig. 4b).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from memprog.hwaware.datasets import Dataset
from memprog.hwaware.mapping import weights_to_pairs
from memprog.jobs.insitu_network import ChipNetwork, require_vmm
from memprog.jobs.insitu_params import InsituParams, insitu_dataset
from memprog.protocols.array import ArrayParams, program_array


def train_software(
    data: Dataset, hidden: int = 54, epochs: int = 60, seed: int = 0, lr: float = 0.01
) -> tuple[list[np.ndarray], float]:
    """A 64-54-10 sigmoid/softmax network trained in software (torch, Adam, batch 64).

    Returns the weights as (n_in + 1, n_out) matrices (bias last row) and the software
    test accuracy.
    """
    import torch  # deferred: torch takes ~1 s to import; only the ex-situ comparison trains in software

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
    p = params or InsituParams()
    require_vmm(bench)
    data = dataset or insitu_dataset(p)
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


__all__ = ["exsitu_transfer", "train_software"]
