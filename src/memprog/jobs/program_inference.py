"""The program job's inference: the network run by the chip it was programmed into.

Why a module of its own: once the cells are settled, the job compares software accuracy
with what the chip computes — by its analog vector-matrix multiply where the stack has one
(:attr:`CellProgrammer.supports_vmm`: the on-chip controller's ``VMM?``), else from the
read-out conductances. Both need the layer matrices as the chip holds them
(:func:`effective_matrices`), which the report's per-layer errors use too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memprog.jobs.program_plan import Plan
from memprog.jobs.weights import Network, activate, predict_from_scores
from memprog.protocols.common import Progress
from memprog.protocols.events import EventSink
from memprog.protocols.programmer import CellProgrammer


def effective_matrices(plan: Plan, g_us: np.ndarray) -> list[np.ndarray]:
    """Layer matrices (in+1, out) as the chip holds them, from per-cell conductances."""
    pl = plan.placement
    assert pl is not None
    c = plan.cells
    mats = []
    for k, (nin, nout) in enumerate(pl.layer_shapes):
        d = np.zeros((nin, nout))
        sel = c["layer"] == k
        np.add.at(d, (c["i"][sel], c["j"][sel]), c["sign"][sel] * g_us[sel])
        mats.append(d * plan.scales[k] / pl.copies)
    return mats


def vmm_partial(
    tiles: list[Any], ext: np.ndarray, nout: int, vmm: Any, n_rows: int, input_v: float, bar: Any = None
) -> np.ndarray:
    """One layer's pre-activations from some of its tiles (unscaled: µS·V per unit input).

    Each sample's layer input ``ext`` (bias input included: 1, or the bias row's drive when
    the biases are on their own scale, :meth:`Network.extended_input`) is scaled so its
    largest magnitude maps to ``input_v`` (linear, undone here; so a drive above 1 lowers
    the other rows' voltages rather than exceed the read voltage); every copy row of an
    input gets the same voltage; the ``+`` minus ``−`` column currents of each tile are added into the
    tile's outputs. The tiles of a layer may lie on several chips: their partial sums add
    (:mod:`memprog.fleet`), and the caller applies the layer scale and the copies.
    """
    s = np.maximum(np.abs(ext).max(axis=1), 1.0)
    z = np.zeros((ext.shape[0], nout))
    v = np.zeros(n_rows)
    for t in tiles:
        for n in range(ext.shape[0]):
            v[:] = 0.0
            v[t.rows] = (input_v / s[n]) * ext[n, t.in_lo : t.in_hi][None, :]
            cur = np.asarray(vmm(v), dtype=float)
            diff = (cur[t.cols_plus] - cur[t.cols_minus]) * 1e6  # µS·V
            z[n, t.out_lo : t.out_hi] += diff * (s[n] / input_v)
        if bar is not None:
            bar.update(ext.shape[0])
    return z


def vmm_forward(
    net: Network, plan: Plan, x: np.ndarray, vmm: Any, n_rows: int, input_v: float, progress: bool = False
) -> np.ndarray:
    """Output scores computed by the chip's analog VMM, tile by tile, sample by sample
    (:func:`vmm_partial` per layer, then the layer scale, the copies and the activation)."""
    pl = plan.placement
    assert pl is not None
    a = np.asarray(x, dtype=float)
    nl = len(pl.layer_shapes)
    bar = Progress(progress, a.shape[0] * len(pl.tiles), "inference")
    try:
        for k in range(nl):
            _, nout = pl.layer_shapes[k]
            ext = net.extended_input(a, k)  # the bias row at its drive
            z = vmm_partial(pl.tiles_of(k), ext, nout, vmm, n_rows, input_v, bar)
            z *= plan.scales[k] / pl.copies
            a = activate(z, net.output if k == nl - 1 else net.activation)
    finally:
        bar.close()
    return a


def chip_inference(
    source: Network, plan: Plan, test_set: tuple[np.ndarray, np.ndarray],
    mats_chip: list[np.ndarray], prog: CellProgrammer, input_v: float | None, progress: bool,
    sink: EventSink,
) -> tuple[float, float, float, str]:
    """(software, chip, read-out accuracy, how the chip ran: ``"vmm"`` or ``"readout"``).

    The chip's accuracy is the analog VMM's where the stack declares one
    (:attr:`CellProgrammer.supports_vmm`), else the read-out conductances'.
    """
    x, y = test_set
    sw = float(np.mean(source.predict(x) == y))
    readout = float(np.mean(source.predict(x, mats_chip) == y))
    # a declared capability of the CellProgrammer interface, not a guess from attributes
    # (an object that is not a CellProgrammer declares nothing: read-out)
    if isinstance(prog, CellProgrammer) and prog.supports_vmm:
        vin = input_v or prog.info.read_v
        scores = vmm_forward(source, plan, x, prog.vmm, prog.info.rows, vin, progress)
        chip = float(np.mean(predict_from_scores(scores, source.output) == y))
        inference = "vmm"
    else:
        chip = readout
        inference = "readout"
    sink.record_event({"event": "inference", "software_accuracy": sw, "chip_accuracy": chip, "inference": inference})
    return sw, chip, readout, inference


__all__ = ["effective_matrices", "vmm_partial", "vmm_forward", "chip_inference"]
