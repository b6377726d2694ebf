"""The predictive protocol's result must not depend on the order of the cells (issue 25).

The gate-map pilot used to be every 16th far cell in the batch's order, and its fit used
only the few pilot cells read above 5 % of the chip's range: an order that put one narrow
band of targets at every 16th place (or any order that happened to) tilted the gate map,
the coarse SET of the lowest targets then fell below the transistor's onset, and working
cells were flagged stuck (the program job's digits cells as one batch: 3,358 flagged
instead of the 1,766 dead). What the chip holds is checked: which cells are flagged
against the chip's own dead-cell mask, and the true conductance of the working ones.
"""

from __future__ import annotations

import numpy as np
import pytest

from memprog.bench.direct import DirectChipProgrammer
from memprog.protocols.predictive import predictive_defaults, tune_predictive
from memprog.protocols.results import FLAG_STUCK
from memprog.sim_instruments import SimChip

N = 64  # 4,096 cells: a pilot of 256, as a job's chunk gives it proportionally


def _cells() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The program job's range of targets: the lowest decade of the chip (50-500 µS)."""
    r, c = np.divmod(np.arange(N * N), N)
    t = np.round(np.random.default_rng(5).uniform(50, 500, r.size), 1)
    return r, c, t


def _period16(t: np.ndarray) -> np.ndarray:
    """An order whose every 16th place holds a cell of one narrow band of targets."""
    band = np.flatnonzero((t > 270) & (t < 300))
    k = min(band.size, t.size // 16)
    at = np.zeros(t.size, bool)
    at[np.arange(k) * 16] = True
    order = np.empty(t.size, np.int64)
    order[at] = band[:k]
    order[~at] = np.concatenate([np.setdiff1d(np.arange(t.size), band), band[k:]])
    return order


def _census(order: np.ndarray, **update: float) -> dict[str, float]:
    r, c, t = _cells()
    chip = SimChip(N, N, "hfo2_1t1r", seed=11)
    prog = DirectChipProgrammer(chip)
    p = predictive_defaults(prog.info, prog.limits).model_copy(update=update)
    res = tune_predictive(prog, r[order], c[order], t[order], params=p)
    working = chip.working_mask[res.rows, res.cols]
    stuck = res.has_flag(FLAG_STUCK)
    true = chip.true_conductance_us()[res.rows, res.cols]
    within = np.abs(true - res.target_us) <= res.tolerance_us
    return {
        "dead": int((~working).sum()),
        "flagged": int(stuck.sum()),
        "working_flagged": int((stuck & working).sum()),
        "dead_missed": int((~stuck & ~working).sum()),
        "converged": float(res.converged[working].mean()),
        "within": float(within[working].mean()),
        "pulses": float(res.pulses.mean()),
    }


@pytest.mark.slow
def test_stuck_census_and_convergence_do_not_depend_on_the_order():
    t = _cells()[2]
    orders = {
        "plan": np.arange(t.size),
        "period16": _period16(t),
        "two_copies": np.argsort(np.arange(t.size) % 2, kind="stable"),  # evens, then odds
        "permuted": np.random.default_rng(1).permutation(t.size),
    }
    got = {name: _census(o) for name, o in orders.items()}
    dead = got["plan"]["dead"]
    assert 0.05 * t.size < dead < 0.2 * t.size  # Li 2018: ~11 % of the cells unresponsive
    for name, g in got.items():
        # every dead cell flagged and no working one, whatever the order (before the fix,
        # period16: 81 working cells flagged stuck, permuted: 131)
        assert g["working_flagged"] == 0, (name, g)
        assert g["dead_missed"] == 0, (name, g)
        # and the working cells land alike (before: 94.6-96.1 % converged in those orders)
        assert g["converged"] >= 0.97, (name, g)
        assert g["within"] >= 0.995, (name, g)
        assert abs(g["pulses"] - got["plan"]["pulses"]) < 0.3, (name, g)


def test_a_gate_map_aimed_below_the_onset_does_not_flag_working_cells_stuck():
    """The stuck test's side: with no pilot to refit it and a prior 30 mV low (a chip whose
    transistors switch on later than the technology's), the first coarse SET of the lowest
    targets cannot move them; the confirming SET goes above the map's gate and they move.
    Before: 461 of 3,619 working cells flagged stuck, 86.7 % of the working cells in band."""
    g = _census(np.arange(N * N), pilot_every=0, gate_v_min=0.57, gate_v_max=1.97)
    assert g["working_flagged"] == 0, g
    assert g["dead_missed"] == 0, g
    # what the chip holds (measured 99.1 %; the coarse steps a wrong map overshoots relax
    # more, so a few more cells end out of band than with the pilot's map: 99.7 %)
    assert g["within"] >= 0.98, g
