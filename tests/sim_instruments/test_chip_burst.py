"""A burst of reads computed as arrays (sim_instruments/chip_burst) is bit for bit the burst
read one read at a time (issue 25: a verify loop's averaged reads cost their Python per read).

The reference is the per-read path as it was, kept here: ``reads`` calls of the chip's
single-read noise model, the clock advanced between them. Every test runs the same seed
and the same calls both ways and requires every returned value, the chip's whole state,
its clock, counters and random stream to be equal byte for byte.
"""

from __future__ import annotations

import numpy as np
import pytest

import memprog.sim_instruments.chip_noise as noise_mod
from memprog.core.device_params import Effects
from memprog.core.presets import PRESETS
from memprog.sim_instruments import SimChip
from memprog.sim_instruments.chip import STATE_ARRAYS
from memprog.sim_instruments.chip_burst import burst_draws
from memprog.sim_instruments.chip_cells import as_selection


def _per_read_burst(chip: SimChip, rows, cols, reads: int, interval_s: float = 0.0) -> np.ndarray:
    """The burst as the chip computed it before issue 25: one noise-model call per read."""
    p = chip.params
    step = max(interval_s, p.read_time_s)
    idx = chip.flat_index(rows, cols)
    sel = as_selection(idx)
    out = np.empty((reads, idx.size))
    for j in range(reads):
        if j:
            chip._clk[0] += step - p.read_time_s
        out[j] = chip._observed_g(sel)
        chip._clk[0] += p.read_time_s
    chip._cnt[1] += reads * idx.size
    return out


def _state(chip: SimChip) -> list[bytes]:
    out = [np.asarray(getattr(chip, name)).tobytes() for name, _, _ in STATE_ARRAYS]
    out.append(np.array([chip.clock_s, chip.pulse_count, chip.read_count]).tobytes())
    out.append(repr(chip._rng.bit_generator.state).encode())
    return out


def _session(chip: SimChip, burst) -> list[bytes]:
    """Pulses, waits and bursts as a verify loop issues them: one cell and a few cells of a
    row, back to back and spaced, after a switch (relaxing) and after a long wait (RTN
    flipped); every burst's bytes, then the chip's state."""
    gate = 1.4 if chip.params.cell_type == "1t1r" else None
    out = []
    for k in range(12):
        chip.pulse(1, 2, 1.3 if k % 3 else -1.2, 100e-9, gate_v=gate)
        out.append(burst(chip, 1, 2, 1 + 5 * k, 0.0))
        out.append(burst(chip, 1, 2, 16, 1e-3))  # spaced: the fluctuators flip between reads
        chip.advance(0.37 * k)
        out.append(burst(chip, np.full(4, 2), [0, 3, 5, 6], 1 + 7 * k, 2e-4))  # index array
        out.append(burst(chip, np.full(3, 0), [4, 5, 6], 64, 0.0))  # a contiguous run
    out.append(burst(chip, [3, 3, 3], [1, 1, 4], 9, 0.0))  # a cell twice: the per-read path
    return [x.tobytes() for x in out] + _state(chip)


def _chip_burst(chip, rows, cols, reads, interval_s):
    return chip.read_burst(rows, cols, reads, interval_s=interval_s)


def _assert_same(a: list[bytes], b: list[bytes]) -> None:
    assert len(a) == len(b)
    for k, (x, y) in enumerate(zip(a, b, strict=True)):
        assert x == y, f"output {k} differs between the array burst and the per-read burst"


@pytest.mark.parametrize("technology", sorted(PRESETS))
def test_array_burst_is_bit_identical_to_reading_one_read_at_a_time(technology):
    chip = SimChip(4, 8, technology, seed=11)
    if chip.params.cell_type != "1t1r":
        chip.read_scheme = "ground"  # the burst path of a passive chip read with grounded lines
    ref = SimChip(4, 8, technology, seed=11)
    ref.read_scheme = chip.read_scheme
    _assert_same(_session(chip, _chip_burst), _session(ref, _per_read_burst))


@pytest.mark.parametrize(
    "effects",
    [
        Effects(rtn=False),
        Effects(read_noise=False),
        Effects(relaxation=False),
        Effects(read_noise=False, flicker=False),  # no noise draw at all
        Effects(rtn=False, read_noise=False, flicker=False),  # nothing drawn
    ],
    ids=["no-rtn", "no-read-noise", "no-relaxation", "no-white-noise", "noiseless"],
)
@pytest.mark.parametrize("technology", ["hfo2_1t1r", "tio2x_feedforward"])
def test_array_burst_is_bit_identical_with_effects_off(technology, effects):
    chip = SimChip(4, 8, technology, seed=3, effects=effects)
    ref = SimChip(4, 8, technology, seed=3, effects=effects)
    _assert_same(_session(chip, _chip_burst), _session(ref, _per_read_burst))


def test_a_burst_too_large_for_one_array_reads_one_read_at_a_time_identically():
    """Beyond BURST_CELLS_MAX cell-reads the chip keeps the per-read path (same bytes)."""
    chip, ref = SimChip(64, 64, "hfo2_1t1r", seed=2), SimChip(64, 64, "hfo2_1t1r", seed=2)
    r, c = np.divmod(np.arange(1024), 64)
    a = chip.read_burst(r, c, 40)  # 40,960 cell-reads
    assert a.tobytes() == _per_read_burst(ref, r, c, 40).tobytes()
    assert _state(chip) == _state(ref)


@pytest.mark.parametrize("buffered", [0, 1])
@pytest.mark.parametrize(
    ("n", "reads", "rtn", "noisy"),
    [(1, 64, True, True), (5, 13, True, True), (3, 9, False, True), (2, 7, True, False)],
)
@pytest.mark.parametrize("pool", ["pool", "rejecting", "wide"])
def test_burst_draws_are_the_per_read_draws_in_stream_order(n, reads, rtn, noisy, pool, buffered):
    """The draws equal ``reads`` rounds of the per-read calls, and the generator ends where
    they leave it. ``pool``: the chip's noise pool; a pool of 3 * 2**30 makes Lemire's
    bound reject a quarter of the window words, so the rare rejection path runs on nearly
    every burst; a bound of 2**32 - 1 rejects almost never and takes the integer product
    (its word products are beyond float64's exact range). ``buffered``: a half-used 64-bit word is waiting in the generator
    (an odd float32 draw before)."""
    pool_size = {"pool": 1 << 20, "rejecting": 3 << 30, "wide": (1 << 32) - 1 + n}[pool]
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    for g in (a, b):
        g.random(buffered, dtype=np.float32)
    flips, starts = burst_draws(a, reads, n, rtn, noisy, pool_size)
    ref_flips, ref_starts = [], []
    for _ in range(reads):
        if rtn:
            ref_flips.append(b.random((2, n), dtype=np.float32))
        if noisy:
            ref_starts.append(int(b.integers(0, pool_size - n)))
    if rtn:
        assert flips is not None and flips.tobytes() == np.array(ref_flips).tobytes()
    else:
        assert flips is None
    if noisy:
        assert starts is not None and starts.tolist() == ref_starts
    else:
        assert starts is None
    assert a.bit_generator.state == b.bit_generator.state
    assert a.random() == b.random()


def test_the_per_read_fallback_is_taken_for_a_repeated_cell(monkeypatch):
    """A cell named twice lets the last copy's RTN state win between reads: the chip must
    not compute that burst as arrays (it would evolve each copy on its own)."""
    calls = []
    real = noise_mod.observed_burst
    monkeypatch.setattr(noise_mod, "observed_burst", lambda *a: calls.append(1) or real(*a))
    chip = SimChip(4, 4, "hfo2_1t1r", seed=1)
    chip.read_burst([0, 0], [1, 1], 8)
    assert calls == []
    chip.read_burst([0, 0], [1, 2], 8)
    assert calls == [1]
