"""Re-aiming a stuck copy's twin inside the first batch (issue 25, program_first_batch).

The predictive protocol calls the job's hook once its coarse step has found the stuck
cells; the twins it re-aims are finished with the rest of the batch. These tests check
what the chip holds: the re-aimed cells at their new targets a further settle later, and
the pairs of the job in their band, with no re-aim batch of its own for those twins.
"""

from __future__ import annotations

import numpy as np
import pytest

from memprog.bench.direct import DirectChipProgrammer
from memprog.protocols.events import MemorySink
from memprog.protocols.predictive import tune_predictive
from memprog.sim_instruments import SimChip
from tests.jobs.predictive_job_helpers import predictive_job_held


def test_a_hook_retargets_cells_after_the_coarse_step_and_the_chip_holds_the_new_targets():
    """The hook sees the stuck cells the coarse step found (the chip's dead ones among
    those it pulsed) and moves the working cells' targets; the protocol lands them there in
    the same batch (one relaxation observation), and the chip holds them a settle later.
    Without the hook (before issue 25's change) the protocol had no such argument."""
    chip = SimChip(16, 16, "hfo2_1t1r", seed=7)
    prog = DirectChipProgrammer(chip)
    flat = np.arange(256)
    r, c = flat // 16, flat % 16
    t = np.full(256, 300.0)
    seen = []

    def hook(rows, cols, targets, stuck, g):
        seen.append(stuck.copy())
        new = np.array(targets, float)
        new[(np.arange(rows.size) % 2 == 0) & ~stuck] = 600.0
        return new, np.full(rows.size, np.nan)

    sink = MemorySink()
    res = tune_predictive(prog, r, c, t, sink=sink, retarget=hook)
    assert len(seen) == 2  # after the coarse step, and after the fine steps
    dead = ~chip.working_mask.ravel()
    assert dead.any() and seen[0][dead].mean() > 0.5  # the stuck cells were known to it
    assert not seen[0][~dead].any()
    assert (seen[1] >= seen[0]).all()
    assert len(sink.events_of("relaxation_fit")) == 1  # one observation for all
    moved = (flat % 2 == 0) & ~seen[0]
    assert (res.target_us[moved] == 600.0).all() and (res.target_us[~moved] == 300.0).all()
    prog.wait(5.0)
    held = chip.true_conductance_us(r, c)
    ok = res.converged & ~dead
    assert ok[moved].mean() >= 0.9
    assert (np.abs(held - res.target_us)[ok] <= res.tolerance_us[ok] + 1.0).mean() >= 0.98


def test_a_late_retarget_after_the_fine_steps_is_finished_in_the_batch_and_held():
    """Targets moved only at the hook's second call (after the fine steps, where the rest of
    the stuck cells are found) re-open the cells: a coarse step the batch did not observe
    (its relaxation taken as the batch's measured share and spread) and fine steps, then
    the batch's settle. The chip holds the new targets a further settle later; one
    relaxation observation for the whole batch."""
    chip = SimChip(16, 16, "hfo2_1t1r", seed=11)
    prog = DirectChipProgrammer(chip)
    flat = np.arange(256)
    r, c = flat // 16, flat % 16
    calls = []

    def hook(rows, cols, targets, fixed, g):
        calls.append(fixed.copy())
        if len(calls) < 2:
            return None
        new = np.array(targets, float)
        new[(np.arange(rows.size) % 3 == 0) & ~fixed] = 700.0  # far: a coarse step
        new[(np.arange(rows.size) % 3 == 1) & ~fixed] *= 1.04  # near: fine steps only
        return new, np.full(rows.size, np.nan)

    sink = MemorySink()
    res = tune_predictive(prog, r, c, np.full(256, 250.0), sink=sink, retarget=hook)
    assert len(calls) == 2
    assert len(sink.events_of("relaxation_fit")) == 1
    late = [e for e in sink.events_of("retarget") if e["late"]]
    assert late and late[0]["coarse"] > 0
    dead = ~chip.working_mask.ravel()
    moved = (flat % 3 != 2) & ~calls[1] & ~dead  # (given up or stuck by then: not moved)
    far, near = moved & (flat % 3 == 0), moved & (flat % 3 == 1)
    assert (res.target_us[far] == 700.0).all()
    assert res.pulses.max() <= 24  # the protocol's pulse bound (max_pulses) holds
    # near moves (fine steps) land as a first tune does; far ones (a coarse step whose
    # relaxation the batch did not observe) less often, and say so in their flags
    assert res.converged[near].mean() >= 0.9
    assert res.converged[far].mean() >= 0.5
    assert all(str(f) for f in res.flags[moved & ~res.converged])
    prog.wait(5.0)
    held = chip.true_conductance_us(r, c)
    ok = res.converged & moved
    assert (np.abs(held - res.target_us)[ok] <= res.tolerance_us[ok] + 1.0).mean() >= 0.98


@pytest.mark.slow
def test_predictive_job_re_aims_stuck_twins_in_the_first_batch_and_its_pairs_hold(tmp_path):
    """The twins of the copies the coarse step found stuck are re-aimed inside the first
    batch, at 2G minus what their stuck copy holds: the pair holds on the chip a further
    settle later, and no batch before the settle re-aims them again."""
    rep, g, ev = predictive_job_held(tmp_path)
    res = rep.result
    inside = [e for e in ev if e.get("event") == "pair_compensation" and e.get("in_first_batch")]
    assert inside and inside[0]["cells"] > 0
    later = sum(
        e["cells"] for e in ev if e.get("event") == "pair_compensation" and e.get("before_settle")
    )
    assert later < 0.5 * inside[0]["cells"]  # the rest: stuck found later, given-up copies
    assert rep.summary()["pairs_failed"] == 0
    # the re-aimed copies: 2G minus the stuck copy, on the chip
    x = res.extra
    stuck = res.has_flag("stuck") | res.has_flag("skipped")
    key = {(int(layer), int(i), int(j), int(sg), int(cp)): k for k, (layer, i, j, sg, cp) in
           enumerate(zip(x["layer"], x["i"], x["j"], x["sign"], x["copy"], strict=True))}  # fmt: skip
    n = 0
    for k in np.flatnonzero(res.has_flag("retuned") & ~stuck):
        o = key.get(
            (
                int(x["layer"][k]),
                int(x["i"][k]),
                int(x["j"][k]),
                int(x["sign"][k]),
                1 - int(x["copy"][k]),
            )
        )
        if o is None or not stuck[o]:
            continue
        n += 1
        pair = 0.5 * (g[k] + g[o])
        assert abs(pair - x["nominal_us"][k]) <= res.tolerance_us[k] + 1.0
    assert n > 0
    said = res.within_tolerance
    assert (np.abs(g - res.target_us)[said] <= res.tolerance_us[said] + 1.0).all()
