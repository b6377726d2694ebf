"""The simulated chip's fast paths change no bit of what it holds or what a read returns
(issue 26, item 8: a whole-array pulse and read run in cache-sized blocks, with every random
draw taken for the whole batch first; a value shared by every cell stays 0-d; a large int64
batch is indexed in one pass).

Each test runs the same seed and the same call sequence two ways, one of them the plain
whole-batch path, and requires every returned array and the chip's whole state to be
equal byte for byte.
"""

from __future__ import annotations

import numpy as np
import pytest

import memprog.sim_instruments.chip as chip_mod
import memprog.sim_instruments.chip_cells as cells_mod
from memprog.core.errors import ConfigError
from memprog.core.presets import get_preset
from memprog.sim_instruments import Effects, SimChip
from memprog.sim_instruments.chip import STATE_ARRAYS


def _set_block(monkeypatch: pytest.MonkeyPatch, cells: int) -> None:
    monkeypatch.setattr(cells_mod, "BLOCK_CELLS", cells)
    monkeypatch.setattr(chip_mod, "BLOCK_CELLS", cells)


def _state(chip: SimChip) -> list[bytes]:
    out = [np.asarray(getattr(chip, name)).tobytes() for name, _, _ in STATE_ARRAYS]
    out.append(np.array([chip.clock_s, chip.pulse_count, chip.read_count]).tobytes())
    return out


def _mixed_sequence(chip: SimChip) -> list[bytes]:
    """Whole-array pulses of both polarities (with and without gate), per-cell amplitudes
    from sub-threshold to breakdown, subsets, waits and reads; every read's bytes."""
    n = chip.n_cells
    r, c = np.divmod(np.arange(n), chip.cols)
    aux = np.random.default_rng(99)
    gate = 1.4 if chip.params.cell_type == "1t1r" else None
    reads = [chip.read(r, c)]
    chip.pulse(r, c, 1.2, 100e-9, gate_v=gate)
    reads.append(chip.read(r, c))
    chip.pulse(r, c, -1.3, 100e-9)
    amp = aux.choice([-1.4, -0.95, -0.6, 0.3, 0.7, 0.85, 1.1, 1.6], n)
    amp[aux.random(n) < 0.003] = 3.6  # beyond breakdown
    gates = aux.uniform(0.5, 2.1, n) if gate is not None else None
    chip.pulse(r, c, amp, 150e-9, gate_v=gates)
    reads.append(chip.read(r, c))
    sub = np.sort(aux.choice(n, n // 3, replace=False))
    chip.pulse(r[sub], c[sub], 1.3, 100e-9, gate_v=gate)
    chip.advance(1e-3)
    reads.append(chip.read(r[sub], c[sub]))
    chip.pulse(r, c, 0.7, 100e-9)  # below threshold everywhere: denoise
    chip.advance(0.5)
    reads.append(chip.read(r, c))
    reads.append(chip.read_burst(r, c, 2))
    return [x.tobytes() for x in reads] + _state(chip)


@pytest.mark.parametrize("technology", ["hfo2_1t1r", "tio2x_feedforward"])
def test_blocked_whole_array_operations_are_bit_identical_to_one_block(monkeypatch, technology):
    one = _mixed_sequence(SimChip(40, 40, technology, seed=5))  # 1,600 cells: one block
    _set_block(monkeypatch, 96)  # 17 blocks, the last one short
    blocked = _mixed_sequence(SimChip(40, 40, technology, seed=5))
    assert len(one) == len(blocked)
    for k, (a, b) in enumerate(zip(one, blocked, strict=True)):
        assert a == b, f"output {k} differs between one block and blocks of 96 cells"


def test_blocked_passive_chip_disturb_and_floating_reads_are_bit_identical(monkeypatch):
    def run() -> list[bytes]:
        chip = SimChip(24, 24, "tio2_passive", seed=3, read_scheme="float")
        r, c = np.divmod(np.arange(chip.n_cells), chip.cols)
        chip.pulse([2, 9, 17], [4, 11, 3], [1.4, -1.6, 1.2], 1e-6)  # V/3: half-selected cells disturbed
        rv, cv = np.random.default_rng(1).uniform(-1.3, 1.3, (2, 24))
        chip.apply_line_voltages(rv, cv, 1e-6)
        return [chip.read(r[:40], c[:40]).tobytes(), *_state(chip)]

    one = run()
    _set_block(monkeypatch, 64)
    assert run() == one


@pytest.mark.slow
def test_large_batches_beyond_the_noise_pool_are_bit_identical_to_one_block(monkeypatch):
    """768² cells > half the noise pool: fresh normal draws, split across 18 blocks."""
    def run() -> list[bytes]:
        chip = SimChip(768, 768, "hfo2_1t1r", seed=2)
        r, c = np.divmod(np.arange(chip.n_cells), chip.cols)
        chip.pulse(r, c, 1.2, 100e-9, gate_v=1.4)
        g = chip.read(r, c)
        chip.pulse(r, c, -1.2, 100e-9)
        return [g.tobytes(), chip.read(r, c).tobytes(), *_state(chip)]

    blocked = run()
    _set_block(monkeypatch, 1 << 30)
    assert run() == blocked


# a 1T1R chip whose sub-threshold pulses disturb, and with the relaxation model that redraws
# a fraction of G: every pass of the physics sees the 0-d amplitude
DISTURBING_1T1R = get_preset("hfo2_1t1r").model_copy(
    update={"disturb_std_us": 3.0, "disturb_mean_us": -0.05, "disturb_v_min_v": 0.3,
            "relax_rel_std": 0.002, "relax_rel_mean": 0.003}
)


@pytest.mark.parametrize("technology", ["hfo2_1t1r", DISTURBING_1T1R], ids=["hfo2_1t1r", "disturbing_1t1r"])
def test_one_amplitude_for_all_cells_equals_the_same_value_per_cell(technology):
    """A scalar amplitude and gate stay 0-d through the physics: the chip ends exactly as
    with the value written out per cell."""
    a, b = SimChip(32, 32, technology, seed=8), SimChip(32, 32, technology, seed=8)
    r, c = np.divmod(np.arange(a.n_cells), a.cols)
    for amp in (1.25, -1.1, 0.6, 0.45, -0.83):
        a.pulse(r, c, amp, 100e-9, gate_v=1.5)
        b.pulse(r, c, np.full(r.size, amp), 100e-9, gate_v=np.full(r.size, 1.5))
        assert a.read(r, c).tobytes() == b.read(r, c).tobytes()
    assert _state(a) == _state(b)


def test_int64_batches_index_like_any_other_integer_batch(monkeypatch):
    """The one-pass int64 indexing of large batches selects the same cells as the general
    path (int32 indices), in the same order, contiguous or not."""
    _set_block(monkeypatch, 100)  # 900-cell batches take the one-pass path
    a, b = SimChip(30, 30, "hfo2_1t1r", seed=4), SimChip(30, 30, "hfo2_1t1r", seed=4)
    r, c = np.divmod(np.arange(a.n_cells), a.cols)
    perm = np.random.default_rng(0).permutation(a.n_cells)
    # blocks of 100 that are each one run, but not one run together: not a slice
    swapped = np.concatenate([np.arange(100, 200), np.arange(0, 100), np.arange(200, a.n_cells)])
    amp = np.linspace(-1.4, 1.4, a.n_cells)  # per cell: the order of the cells matters
    for rows, cols in ((r, c), (r[perm], c[perm]), (r[swapped], c[swapped])):
        a.pulse(rows, cols, amp, 100e-9, gate_v=1.2)
        b.pulse(rows.astype(np.int32), cols.astype(np.int32), amp, 100e-9, gate_v=1.2)
        assert a.read(rows, cols).tobytes() == b.read(rows.astype(np.int32), cols.astype(np.int32)).tobytes()
    assert _state(a) == _state(b)


def test_a_bad_index_in_a_large_batch_is_named_as_before(monkeypatch):
    """Rows are checked before columns: a bad row is named even when a bad column comes
    earlier in the batch."""
    _set_block(monkeypatch, 100)
    chip = SimChip(30, 30, "hfo2_1t1r", seed=0)
    r, c = np.divmod(np.arange(chip.n_cells), chip.cols)
    r[700], c[5] = -1, 30
    with pytest.raises(ConfigError) as err:
        chip.pulse(r, c, 1.2, 100e-9)
    assert err.value.parameter == "rows" and "-1" in str(err.value) and "[0, 29]" in str(err.value)
    assert chip.pulse_count == 0


def test_chip_state_memory_did_not_grow():
    """No per-cell cache was added: a 256x256 chip's arrays take what they took before the
    speed-up (15.66 MB: the state, the device-to-device draws and the noise pools)."""
    chip = SimChip(256, 256, "hfo2_1t1r", seed=0, effects=Effects())
    assert chip.state_nbytes() <= 15_663_104
