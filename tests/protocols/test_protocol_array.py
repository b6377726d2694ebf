"""Whole-array programming (backend: DirectChipProgrammer on SimChip; the 256x256 through
the on-chip bench is in test_protocol_onchip_bench.py and benchmarks/bench_array_map.py)."""

from __future__ import annotations

import numpy as np
import pytest

from memprog.bench.direct import DirectChipProgrammer
from memprog.core.errors import ConfigError
from memprog.core.presets import get_preset
from memprog.protocols.array import (
    ArrayJob,
    ArrayParams,
    order_cells,
    program_array,
    random_level_map,
)
from memprog.protocols.events import MemorySink
from memprog.sim_instruments.chip import SimChip


def test_orders():
    r, c = np.divmod(np.arange(6), 3)
    t = np.array([1.0, 5.0, 3.0, 2.0, 6.0, 4.0])
    assert order_cells(r, c, t, "row-major").tolist() == [0, 1, 2, 3, 4, 5]
    assert order_cells(r, c, t, "column-major").tolist() == [0, 3, 1, 4, 2, 5]
    assert order_cells(r, c, t, "snake").tolist() == [0, 1, 2, 5, 4, 3]
    assert order_cells(r, c, t, "high-first").tolist() == [4, 1, 5, 2, 3, 0]
    with pytest.raises(ConfigError, match="order"):
        ArrayParams(order="random")


def test_bad_maps_raise_before_any_pulse():
    chip = SimChip(8, 8, "hfo2_1t1r", seed=1)
    prog = DirectChipProgrammer(chip)
    with pytest.raises(ConfigError, match="shape"):
        program_array(prog, np.full((9, 8), 500.0))
    with pytest.raises(ConfigError, match="shape"):
        program_array(prog, np.full((4, 4), 500.0), origin=(6, 0))
    with pytest.raises(ConfigError, match="target_map_us"):
        program_array(prog, np.full((4, 4), 9000.0))
    with pytest.raises(ConfigError, match="2-D"):
        program_array(prog, np.full(8, 500.0))
    with pytest.raises(ConfigError, match="all NaN"):
        program_array(prog, np.full((2, 2), np.nan))
    assert chip.pulse_count == 0 and chip.read_count == 0


def test_hfo2_map_64_levels():
    chip = SimChip(32, 32, "hfo2_1t1r", seed=7)
    prog = DirectChipProgrammer(chip)
    m = random_level_map(32, 32, 64, seed=3)
    m[0, :4] = np.nan  # left alone
    res = program_array(prog, m)
    assert len(res) == 32 * 32 - 4
    grid = np.full((32, 32), np.nan)
    grid[res.rows, res.cols] = 1
    assert np.isnan(grid[0, :4]).all()
    w = chip.working_mask[res.rows, res.cols]
    true = chip.true_conductance_us(res.rows, res.cols)
    within = np.abs(true - res.target_us) <= res.tolerance_us
    assert within[w].mean() >= 0.99
    assert np.all(res.tolerance_us == np.maximum(0.01 * res.target_us, 3.0))
    assert np.all(res.has_flag("stuck")[~w])
    s = res.summary()
    assert s["protocol"] == "array/alibart" and s["cells"] == 1020
    assert np.array_equal(res.extra["later_writes"], 1019 - np.arange(1020))


class _Interrupt(Exception):
    pass


def test_resume_after_an_interruption():
    chip = SimChip(8, 8, "hfo2_1t1r", seed=2)
    prog = DirectChipProgrammer(chip)
    m = random_level_map(8, 8, 64, seed=4)
    # issue 10: no settle, so the interruption lands mid-job as before (settle tested apart)
    job = ArrayJob(prog, m, ArrayParams(batch_cells=16, reverify=False, settle_s=0.0))
    pulse = prog.pulse
    calls = {"n": 0}

    def failing_pulse(*a, **k):
        calls["n"] += 1
        if calls["n"] > 60:
            raise _Interrupt
        return pulse(*a, **k)

    prog.pulse = failing_pulse
    with pytest.raises(_Interrupt):
        job.run()
    partial = job.partial_result()
    assert partial is not None and len(partial) in (16, 32, 48)
    prog.pulse = pulse
    n_before = chip.pulse_count
    sink = MemorySink()
    res = ArrayJob(
        prog, m, ArrayParams(batch_cells=16, reverify=False, settle_s=0.0), resume=partial
    ).run(
        sink=sink
    )
    assert len(res) == 64
    assert sink.events[0]["resume_from"] == len(partial)
    # the finished cells were not programmed again: only the rest streamed results
    assert len(sink.results) == 64 - len(partial)
    assert chip.pulse_count > n_before
    assert res.converged[chip.working_mask[res.rows, res.cols]].all()


@pytest.mark.slow
def test_passive_crossbar_reverify_retunes_disturbed_cells():
    # a gentler crossbar than seed 001's (its statistical disturb x0.1): with Drolet's own
    # disturb every re-tune knocks neighbours out of their 1 % bands about as fast as it
    # mends a cell, which is why seed 001 trains the network to tolerate it instead
    p = get_preset("tio2_passive")
    gentle = p.model_copy(update={"disturb_std_us": 0.1 * p.disturb_std_us, "disturb_mean_us": 0.1 * p.disturb_mean_us})
    chip = SimChip(8, 8, gentle, seed=1)
    prog = DirectChipProgrammer(chip)
    levels = np.linspace(100, 400, 8)
    r, c = np.divmod(np.arange(64), 8)
    m = levels[(r + c) % 8].reshape(8, 8)
    sink = MemorySink()
    res = program_array(prog, m, ArrayParams(order="row-major", max_reverify_passes=3), sink=sink)
    w = chip.working_mask[res.rows, res.cols]
    # Drolet: the cells written first collect the half-select disturb of all later writes
    drift = np.abs(res.extra["drift_us"])
    early, late = drift[:16][w[:16]].mean(), drift[-16:][w[-16:]].mean()
    assert early > late
    assert res.extra["retuned"].sum() > 0
    assert len(sink.events_of("reverify")) >= 1
    assert sink.events_of("reverify")[0]["out_of_band"] > 0
    # after re-tuning, more cells read in band than right after the first pass
    first_pass_in = np.abs(res.extra["reverify_us"] - res.target_us) <= res.tolerance_us
    g = prog.read(res.rows, res.cols)
    assert (np.abs(g - res.target_us) <= res.tolerance_us)[w].mean() > first_pass_in[w].mean()
