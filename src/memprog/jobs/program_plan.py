"""The program job's plan: which cell holds which weight, at what conductance.

Why a module of its own: placing a network (differential pairs, tiles, copies, known stuck
cells avoided) and choosing the weight-to-conductance window are decided before the bench
is touched, and the CLI checks a plan before a run exists (``memprog program`` refuses a
network that does not fit). Everything here is arithmetic on the placement; nothing pulses.
The pairing of a cell with its twin copy (:func:`_twin`) lives here too: programming and
the settle both re-aim one copy of a pair at what the other holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from memprog.core.errors import ConfigError
from memprog.hwaware.mapping import weights_to_pairs
from memprog.hwaware.placement import Placement, place_network
from memprog.jobs.weights import ConductanceMap, Network
from memprog.protocols.common import target_range_us
from memprog.protocols.programmer import CellProgrammer

if TYPE_CHECKING:
    from memprog.jobs.program import ProgramParams


@dataclass
class Plan:
    """What will be written where: the placement, per-cell targets and the layer scales."""

    placement: Placement | None
    cells: dict[str, np.ndarray]  # row, col, layer, i, j, sign, copy, g_us (per-copy nominal)
    scales: list[float]
    mapping: dict[str, Any]  # g_min_us, g_max_us, bias_scale
    known_stuck: np.ndarray  # bool per cell: not pulsed
    known_stuck_us: np.ndarray  # their conductance (from the store), NaN unknown
    # per layer the bias row's input drive (unit inputs): 1 folded, max|b|/max|W| when the
    # biases are on their own scale (memprog.hwaware.mapping.chip_matrix); [] for a map
    bias_drives: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.cells["row"].size)

    def to_params(self) -> dict[str, Any]:
        return {
            "placement": None if self.placement is None else self.placement.to_dict(),
            "scales": list(self.scales),
            "mapping": dict(self.mapping),
            "bias_drives": list(self.bias_drives),
        }



def make_plan(
    source: Network | ConductanceMap,
    programmer: CellProgrammer,
    params: ProgramParams,
    known_stuck: dict[tuple[int, int], float] | None = None,
    placement: Placement | None = None,
) -> Plan:
    """Place the network (or the map) and compute every cell's nominal target."""
    info = programmer.info
    lo, hi = target_range_us(programmer)
    stuck = known_stuck or {}
    stuck_mask = None
    if stuck and params.avoid_stuck:
        stuck_mask = np.zeros((info.rows, info.cols), dtype=bool)
        rs, cs = np.array(list(stuck)).T
        keep = (rs < info.rows) & (cs < info.cols)
        stuck_mask[rs[keep], cs[keep]] = True
    if isinstance(source, ConductanceMap):
        m = source.map_us
        if m.shape[0] > info.rows or m.shape[1] > info.cols:
            raise ConfigError(
                "conductance map shape",
                m.shape,
                f"at most {info.rows}x{info.cols} (the array)",
                f"{max(0, m.shape[0] - info.rows)} rows and {max(0, m.shape[1] - info.cols)} columns too many",
            )
        rr, cc = np.nonzero(~np.isnan(m))
        g = m[rr, cc]
        _check_range("conductance map", g, lo, hi)
        z = np.zeros(rr.size, dtype=np.int64)
        cells = {"row": rr, "col": cc, "layer": z, "i": rr, "j": cc, "sign": z + 1, "copy": z, "g_us": g}
        plan = Plan(None, cells, [], {}, np.zeros(rr.size, bool), np.full(rr.size, np.nan))
    else:
        mats = source.chip_matrices()
        g_min, g_max = _mapping(source, params, lo, hi, info.technology)
        if placement is None:
            placement = place_network(
                [m.shape for m in mats], (info.rows, info.cols), params.copies, stuck_mask
            )
        cells = placement.cells()
        g = np.empty(cells["row"].size)
        scales = []
        for k, m in enumerate(mats):
            gp, gm, sc = weights_to_pairs(m, g_min, g_max)
            scales.append(float(sc))
            sel = cells["layer"] == k
            i, j, s = cells["i"][sel], cells["j"][sel], cells["sign"][sel]
            g[sel] = np.where(s > 0, gp[i, j], gm[i, j])
        cells["g_us"] = g
        drives = source.bias_drives
        plan = Plan(
            placement, cells, scales,
            {"g_min_us": g_min, "g_max_us": g_max, "bias_scale": source.bias_scale},
            np.zeros(g.size, bool), np.full(g.size, np.nan), [float(d) for d in drives],
        )
    if stuck:
        key = list(zip(plan.cells["row"].tolist(), plan.cells["col"].tolist(), strict=True))
        ks = np.array([k in stuck for k in key])
        plan.known_stuck = ks
        plan.known_stuck_us = np.array([stuck.get(k, np.nan) for k in key])
    return plan


# Weight-mapping windows per technology when neither the file nor the user gives one.
DEFAULT_MAPPING_US: dict[str, tuple[float, float]] = {
    "hfo2_1t1r": (50.0, 500.0),  # [Rao] levels start at 50 µS; [choice] the lowest decade:
    # small VMM currents, a 1 % band still above the as-programmed RTN of a few µS
    "tio2_passive": (100.0, 400.0),  # [Drolet] working range 100-400 µS
    "tio2x_feedforward": (420.0, 500.0),  # [Diao] HRS/LRS = 1.19 window of the preset
}


def _mapping(net: Network, params: ProgramParams, lo: float, hi: float, technology: str = "") -> tuple[float, float]:
    """Weight mapping window: the caller's, else the file's, else the technology's.

    Unknown technology: [choice] the inner 10-90 % of the chip's target range.
    """
    m = net.mapping or {}
    d_lo, d_hi = DEFAULT_MAPPING_US.get(technology, (lo + 0.1 * (hi - lo), lo + 0.9 * (hi - lo)))
    g_min = params.g_min_us or m.get("g_min_us") or d_lo
    g_max = params.g_max_us or m.get("g_max_us") or d_hi
    if not g_min < g_max:
        raise ConfigError("g_min_us/g_max_us", (g_min, g_max), "g_min_us < g_max_us")
    _check_range("weight mapping", np.array([g_min, g_max]), lo, hi)
    return float(g_min), float(g_max)


def _check_range(what: str, g: np.ndarray, lo: float, hi: float) -> None:
    bad = (g < lo) | (g > hi)
    if bad.any():
        raise ConfigError(what, float(g[bad][0]), f"[{lo:g}, {hi:g}] µS (the chip's target range)")


def _twin(c: dict[str, np.ndarray], from_idx: np.ndarray, to_idx: np.ndarray) -> np.ndarray:
    """For each cell of ``from_idx``, the index (in the whole cell list) of its twin in
    ``to_idx``: same layer, input, output and sign."""

    def key(idx: np.ndarray) -> np.ndarray:
        return ((c["layer"][idx] * 100003 + c["i"][idx]) * 100003 + c["j"][idx]) * 2 + (c["sign"][idx] > 0)

    kf, kt = key(from_idx), key(to_idx)
    srt = np.argsort(kt)
    return to_idx[srt[np.searchsorted(kt[srt], kf)]]


__all__ = ["Plan", "make_plan", "DEFAULT_MAPPING_US"]
