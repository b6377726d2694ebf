"""On-chip 6-bit programming (Rao 2023 inset) and the analog VMM, end to end.

Backend: the @memprog simulator of benches/sim_onchip.yaml; the simulated chip's true state
is the reference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import memprog
from memprog.drivers import onchip_commands as cmd

BENCH = Path(__file__).resolve().parents[2] / "benches" / "sim_onchip.yaml"


def block_pattern() -> np.ndarray:
    """The Rao 2023 inset: 64 blocks of 32x32 cells, block (i, j) at level 8i + j."""
    levels = np.arange(64, dtype=np.uint8).reshape(8, 8)
    return levels.repeat(32, axis=0).repeat(32, axis=1)


def per_block(a: np.ndarray) -> np.ndarray:
    """(64, 1024): the cells of each 32x32 block, blocks in row-major order."""
    return a.reshape(8, 32, 8, 32).transpose(0, 2, 1, 3).reshape(64, 1024)


@pytest.fixture(scope="module")
def programmed():
    with memprog.open_bench(BENCH) as bench:
        ctrl = bench.instruments["controller"]
        t0 = bench.bench_time_s
        result = ctrl.program_levels(block_pattern())
        yield bench, ctrl, result, bench.bench_time_s - t0


def test_6_bit_block_pattern_reproduces_the_rao_inset(programmed):
    bench, ctrl, result, elapsed_s = programmed
    lo, hi = ctrl.program_range_us()
    assert (lo, hi) == pytest.approx((50.0, 4144.0))
    levels = cmd.level_conductances_us(lo, hi)
    half_step = (levels[1] - levels[0]) / 2
    g = ctrl.read_array()  # a fresh read, after programming
    medians = np.median(per_block(g), axis=1)
    assert np.all(np.abs(medians - levels) <= half_step), np.abs(medians - levels).max()
    # medians climb level by level: all 64 levels are distinct on the chip
    assert np.all(np.diff(medians) > half_step)
    # per cell: every working cell is in its bin, save a handful
    working = bench.sim_chip.working_mask
    in_bin = np.abs(g - levels[block_pattern()]) <= half_step
    assert in_bin[working].mean() > 0.995
    # the controller's own report agrees with the chip (11 % of HfO2 cells are stuck, Li 2018)
    assert result.cells == 65536
    assert result.converged + result.failed == 65536
    assert abs(result.converged - int(working.sum())) < 0.01 * 65536
    assert 0.02 < result.duration_s < 1.0
    # the bench clock also carries the messages: 64 KiB map upload at 10 MB/s, 7 latencies
    overhead = (65536 + 200) / 1e7 + 7 * 50e-6
    assert elapsed_s == pytest.approx(result.duration_s + overhead, abs=1e-4)
    data = ctrl.program_data()
    assert np.allclose(np.median(per_block(data), axis=1), medians, atol=half_step / 2)


def test_vmm_matches_g_times_v_within_the_read_noise(programmed):
    bench, ctrl, _, _ = programmed
    chip = bench.sim_chip
    p = chip.params
    rng = np.random.default_rng(7)
    for _ in range(3):
        v = rng.uniform(-0.2, 0.2, 256)
        t0 = bench.bench_time_s
        i = ctrl.vmm(v)
        assert bench.bench_time_s - t0 > p.read_time_s  # one integration plus two messages
        g = chip.true_conductance_us()
        expected = (g * 1e-6).T @ v
        # RTN: each cell within half its peak-to-peak; white noise: 6 sigma of the column sum
        rtn_a = (np.abs(v)[:, None] * chip.rtn_peak_to_peak_us().reshape(256, 256) / 2).sum(
            axis=0
        ) * 1e-6
        sigma_a = (
            np.sqrt(((v[:, None] * (p.read_noise_abs_us + p.read_noise_rel * g)) ** 2).sum(axis=0))
            * 1e-6
        )
        assert np.all(np.abs(i - expected) <= rtn_a + 6 * sigma_a + 1e-7 * np.abs(expected))
        assert np.abs(i - expected).max() < 2e-3 * np.abs(expected).max()


def test_skip_code_leaves_cells_alone_and_data_marks_them(programmed):
    bench, ctrl, _, _ = programmed
    chip = bench.sim_chip
    codes = np.full((256, 256), cmd.SKIP_CODE, dtype=np.uint8)
    codes[10, :32] = 40
    bench.wait(20.0)  # issue 10 physics: the fixture's coarse steps relax for a few seconds
    before = chip.true_conductance_us()
    result = ctrl.program_levels(codes, range_us=(100.0, 3000.0))
    after = chip.true_conductance_us()
    assert result.cells == 32
    untouched = codes == cmd.SKIP_CODE
    np.testing.assert_allclose(after[untouched], before[untouched], atol=0.5)  # relaxation only
    data = ctrl.program_data()
    assert np.isnan(data[untouched]).all()
    level = cmd.level_conductances_us(100.0, 3000.0)[40]
    ok = chip.working_mask[10, :32]
    assert np.all(np.abs(after[10, :32][ok] - level) < (2900 / 63) / 2)
