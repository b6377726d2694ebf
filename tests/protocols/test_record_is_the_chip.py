"""What a tune reports is what the chip holds at the end (issue 20), on the stacks where
that is hardest: a passive crossbar, where every pulse puts V/3 on the other cells.

Backend: the simulated 4200A-SCS + 707B bench (``@memprog``); the truth is the simulated
chip's own conductance, read after the command as a lab could not, to judge the report.
"""

from __future__ import annotations

import numpy as np
import pytest

import memprog
from memprog.protocols.alibart import tune_alibart


@pytest.mark.slow
def test_a_crossbar_tune_reports_the_disturb_of_later_cells():
    rows, cols = np.repeat(np.arange(2), 4), np.tile(np.arange(4), 2)
    targets = np.full(rows.size, 250.0)
    with memprog.open_bench("sim_k4200_707b") as bench:
        res = tune_alibart(bench.programmer, rows, cols, targets)
        true_us = bench.sim_chip.true_conductance_us(rows, cols)
    said_in = res.within_tolerance
    # a cell said to be in band is in band on the chip (to the read noise of the check read)
    assert np.all(np.abs(true_us[said_in] - targets[said_in]) <= res.tolerance_us[said_in] + 2.0)
    # every other cell is flagged: drifted out after its own tune, never silently off
    assert np.all(res.has_flag("drifted_out")[~said_in])
    # and the disturb is real here: cells tuned first were moved by the later ones
    assert (~said_in).any() and said_in[-1]


def test_a_gated_array_needs_no_end_check():
    """1T1R: the access transistor keeps later writes off finished cells: the end check reads
    nothing there, and the cells are where the result says."""
    from memprog.protocols.settle import verify_after_disturb

    with memprog.open_bench("sim_onchip") as bench:
        chip = bench.sim_chip
        res = tune_alibart(bench.programmer, [0, 0, 0], [0, 1, 2], [300.0, 400.0, 500.0])
        reads = chip.read_count
        assert verify_after_disturb(bench.programmer, res) == 0 and chip.read_count == reads
        true_us = chip.true_conductance_us([0, 0, 0], [0, 1, 2])
    ok = res.within_tolerance
    assert ok.any()
    assert np.all(np.abs(true_us[ok] - res.target_us[ok]) <= res.tolerance_us[ok] + 2.0)
