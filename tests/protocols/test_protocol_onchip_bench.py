"""The protocols end to end through the on-chip controller stack.

Backend: @memprog simulator through ``open_bench`` (the on-chip driver speaking protocol v1
to the simulated controller). Skipped only when the on-chip driver module is missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("memprog.drivers.onchip_programmer")

from memprog import open_bench  # noqa: E402
from memprog.protocols.array import program_array, random_level_map  # noqa: E402
from memprog.protocols.ladder import ladder_levels, run_ladder  # noqa: E402

BENCHES = Path(__file__).resolve().parents[2] / "benches"


@pytest.mark.slow
def test_ladder_through_the_onchip_bench():
    with open_bench(BENCHES / "sim_onchip.yaml") as bench:
        assert bench.simulated
        res = run_ladder(bench.programmer, 0, 0, ladder_levels(50, 2, 256), protocol="denoise")
        s = res.summary()
        assert bench.sim_chip.working_mask[0, 0]
    assert s["levels_within_tolerance"] >= 255  # measured: 256 of 256
    assert s["max_error_us"] < 1.2
    assert s["bench_time_s"] > 0.05  # every message and pulse took simulated time


@pytest.mark.slow
def test_whole_array_map_through_the_onchip_bench():
    """256x256 HfO2 array, random 64-level map (50-4,144 µS): >= 99 % of working cells in band."""
    with open_bench(BENCHES / "sim_onchip.yaml") as bench:
        chip = bench.sim_chip
        m = random_level_map(256, 256, 64, seed=1)
        res = program_array(bench.programmer, m)
        true = chip.true_conductance_us()[res.rows, res.cols]
        working = chip.working_mask[res.rows, res.cols]
    within = np.abs(true - res.target_us) <= res.tolerance_us
    assert within[working].mean() >= 0.99  # measured: 99.8 %
    assert 0.05 < (~working).mean() < 0.15  # Li 2018: 11 % unresponsive, flagged not looped
    assert res.has_flag("stuck")[~working].mean() > 0.99
    assert res.summary()["bench_time_s"] > 1.0


@pytest.mark.slow
def test_feedforward_512_states_through_the_onchip_bench():
    step = 80.0 / 511
    with open_bench(BENCHES / "sim_onchip_tio2x.yaml") as bench:
        ff = run_ladder(
            bench.programmer,
            0,
            0,
            ladder_levels(420, step, 512),
            protocol="feedforward",
            tolerance_us=step / 2,
            criterion="mean",  # issue 10: sourced read noise and RTN; see test_protocol_feedforward
        ).summary()
    assert ff["levels_within_tolerance"] >= 510  # measured: 512 of 512
    assert ff["pulses_per_level"] < 2.5  # measured (issue 10 presets): ~1.5
