"""The simulated chip reproduces each physical effect, checked with numbers (DESIGN.md §5)."""

from __future__ import annotations

import numpy as np
import pytest

from memprog.core.errors import ConfigError
from memprog.core.presets import get_preset
from memprog.sim_instruments import Effects, SimChip

ONLY_PULSE_LAW = dict(
    c2c=False, d2d=False, stuck=False, read_noise=False, flicker=False, rtn=False, relaxation=False, disturb=False
)


def _all(chip: SimChip) -> tuple[np.ndarray, np.ndarray]:
    return np.divmod(np.arange(chip.n_cells), chip.cols)


def test_identical_set_pulses_give_shrinking_saturating_steps():
    chip = SimChip(16, 16, "tio2_passive", seed=1, effects=Effects(**ONLY_PULSE_LAW))
    chip.params  # noqa: B018
    r, c = 3, 5
    g = [chip.true_conductance_us(r, c)[0]]
    for _ in range(50):
        chip.pulse(r, c, 1.3, 200e-9)
        g.append(chip.true_conductance_us(r, c)[0])
    steps = np.diff(g)
    assert np.all(steps > 0)
    assert np.all(np.diff(steps) < 0), "steps must shrink monotonically toward the bound"
    assert g[-1] < chip.params.g_max_us
    assert steps[-1] < 0.2 * steps[0]
    assert g[-1] > chip.params.g_min_us + 0.9 * (chip.params.g_max_us - chip.params.g_min_us)


def test_step_grows_with_amplitude_and_width_and_nothing_below_threshold():
    fx = Effects(**ONLY_PULSE_LAW)

    def step(amplitude_v: float, width_s: float) -> float:
        chip = SimChip(4, 4, "tio2_passive", seed=2, effects=fx)
        g0 = chip.true_conductance_us(1, 1)[0]
        chip.pulse(1, 1, amplitude_v, width_s)
        return chip.true_conductance_us(1, 1)[0] - g0

    assert step(0.75, 200e-9) == 0.0  # below the 0.8 V SET threshold
    assert 0 < step(1.0, 200e-9) < step(1.2, 200e-9) < step(1.5, 200e-9)
    assert step(1.2, 200e-9) < step(1.2, 1e-6)
    # RESET lowers the conductance, also with a threshold (1.1 V)
    assert step(-1.05, 200e-9) == 0.0
    assert step(-1.5, 200e-9) < 0


def test_cycle_to_cycle_spread_matches_preset():
    fx = Effects(**{**ONLY_PULSE_LAW, "c2c": True})
    chip = SimChip(64, 64, "hfo2_1t1r", seed=3, effects=fx)
    chip.set_state_us(500.0)
    g0 = chip.true_conductance_us()
    r, c = _all(chip)
    chip.pulse(r, c, 1.1, 100e-9)
    steps = (chip.true_conductance_us() - g0).ravel()
    rel = steps.std() / steps.mean()
    expected = get_preset("hfo2_1t1r").c2c_rel_std
    assert rel == pytest.approx(expected, rel=0.05)


def test_device_to_device_spread_of_the_upper_bound():
    fx = Effects(**{**ONLY_PULSE_LAW, "d2d": True})
    chip = SimChip(64, 64, "tio2_passive", seed=4, effects=fx)
    chip.bias_scheme = "v3"
    # saturate every cell with strong SET pulses (no half-select disturb: effect off)
    chip_1t1r = SimChip(64, 64, "hfo2_1t1r", seed=4, effects=fx)
    r, c = _all(chip_1t1r)
    for _ in range(40):
        chip_1t1r.pulse(r, c, 2.2, 1e-6)
    g = chip_1t1r.true_conductance_us().ravel()
    expected = get_preset("hfo2_1t1r").g_bounds_d2d
    assert g.std() / g.mean() == pytest.approx(expected, rel=0.1)
    # thresholds spread too: the first pulse just above the mean threshold moves only some cells
    chip_1t1r2 = SimChip(64, 64, "hfo2_1t1r", seed=5, effects=fx)
    g0 = chip_1t1r2.true_conductance_us()
    chip_1t1r2.pulse(r, c, 0.9, 100e-9)
    moved = (chip_1t1r2.true_conductance_us() - g0) > 0
    assert 0.3 < moved.mean() < 0.7


@pytest.mark.parametrize("technology", ["tio2_passive", "hfo2_1t1r"])
def test_stuck_fractions_within_three_sigma(technology):
    chip = SimChip(256, 256, technology, seed=6)
    p = chip.params
    n = chip.n_cells
    kinds = chip.kind_grid.ravel()
    for code, frac in ((1, p.stuck_hrs_fraction), (2, p.stuck_lrs_fraction), (3, p.unresponsive_fraction)):
        observed = np.count_nonzero(kinds == code)
        sigma = np.sqrt(n * frac * (1 - frac))
        assert abs(observed - n * frac) <= 3 * sigma + 1e-9
    # stuck cells never move, and sit where the sources put them
    g0 = chip.true_conductance_us()
    stuck = ~chip.working_mask
    sr, sc = np.nonzero(stuck)
    chip.pulse(sr[:20], sc[:20], 1.8, 200e-9, gate_v=1.5 if p.cell_type == "1t1r" else None)
    assert np.array_equal(chip.true_conductance_us()[stuck], g0[stuck])
    if technology == "tio2_passive":
        lrs = g0[chip.kind_grid == 2]
        hrs = g0[chip.kind_grid == 1]
        assert lrs.mean() == pytest.approx(573, abs=4 * 99 / np.sqrt(lrs.size))
        assert hrs.min() >= 10 and hrs.max() <= 100
    else:
        unresponsive = g0[chip.kind_grid == 3]
        assert unresponsive.mean() == pytest.approx(10, rel=0.02)


def _sample_reads(chip: SimChip, r: np.ndarray, c: np.ndarray, n: int) -> np.ndarray:
    out = np.empty((n, r.size))
    for k in range(n):
        out[k] = chip.read(r, c)
        chip.advance(1e-3)
    return out


def test_rtn_before_and_after_denoising():
    chip = SimChip(32, 32, "hfo2_1t1r", seed=7, effects=Effects(relaxation=False, stuck=False))
    r, c = _all(chip)
    chip.pulse(r, c, 1.4, 100e-9, gate_v=1.2)  # as-programmed state: RTN present
    reads = _sample_reads(chip, r, c, 100)
    ptp = np.ptp(reads, axis=0)
    noisy = ptp > 1.0
    assert noisy.mean() > 0.2, "as-programmed HfO2 states must show RTN > 1 µS p-p on many cells"
    assert np.median(ptp[noisy]) > 2.0
    # two-level: a noisy cell's readings cluster in two groups about the RTN amplitude apart
    k = int(np.argmax(chip.rtn_peak_to_peak_us() * (chip.rtn_peak_to_peak_us() < 6)))
    levels = np.sort(reads[:, k])
    gap = np.max(np.diff(levels))
    assert gap > 0.5 * chip.rtn_peak_to_peak_us()[k]
    # Rao's denoise: sub-threshold pulses remove the large fluctuator
    for _ in range(10):
        chip.pulse(r, c, 0.6 * chip.params.v_set_threshold_v, 100e-9)
    after = np.ptp(_sample_reads(chip, r, c, 100), axis=0)
    assert np.mean(after < 1.0) > 0.99
    assert np.median(after) < 0.6


def test_relaxation_after_programming():
    # physics change (issue 10): the volatile part is a fraction of each pulse's own step,
    # -relax_step_mean +- relax_step_std of dG, not N(0, 0.1 % of G) redrawn by every pulse
    fx = Effects(**{**ONLY_PULSE_LAW, "relaxation": True})
    chip = SimChip(32, 32, "hfo2_1t1r", seed=8, effects=fx)
    p = chip.params
    r, c = _all(chip)
    g0 = chip.true_conductance_us()
    chip.pulse(r, c, 1.3, 100e-9, gate_v=1.3)
    g_now = chip.true_conductance_us()
    step = g_now - g0
    chip.advance(20 * p.relax_tau_s)
    drift = chip.true_conductance_us() - g_now
    frac = (drift / step).ravel()
    assert frac.mean() == pytest.approx(-p.relax_step_mean, abs=3 * p.relax_step_std / 32)
    assert frac.std() == pytest.approx(p.relax_step_std, rel=0.15)
    chip.advance(100.0)
    assert np.allclose(chip.true_conductance_us() - g_now, drift, atol=1e-3)  # settled


def test_relaxation_of_a_coarse_step_carries_through_small_later_steps():
    fx = Effects(**{**ONLY_PULSE_LAW, "relaxation": True})
    chip = SimChip(16, 16, "hfo2_1t1r", seed=3, effects=fx)
    p = chip.params
    r, c = _all(chip)
    chip.pulse(r, c, 1.6, 1e-6, gate_v=1.6)  # coarse: a large step, a large volatile part
    chip.advance(1e-3)
    g1 = chip.true_conductance_us()
    chip.pulse(r, c, 0.95, 10e-9, gate_v=2.0)  # fine nudge, tiny step
    g2 = chip.true_conductance_us()
    chip.advance(20 * p.relax_tau_s)
    moved = chip.true_conductance_us() - g2
    # what is left to relax is still the coarse step's volatile part (>> the nudge)
    assert np.abs(moved).mean() > 10 * np.abs(g2 - g1).mean() * p.relax_step_std


def test_gate_voltage_sets_the_set_compliance():
    chip = SimChip(16, 16, "hfo2_1t1r", seed=9, effects=Effects(stuck=False, rtn=False))
    r, c = _all(chip)
    chip.set_state_us(100.0)
    for _ in range(20):
        chip.pulse(r, c, 2.0, 1e-6, gate_v=1.0)
    low = chip.true_conductance_us().mean()
    for _ in range(20):
        chip.pulse(r, c, 2.0, 1e-6, gate_v=1.6)
    high = chip.true_conductance_us().mean()
    p = chip.params
    expect_low = p.g_min_us + (1.0 - p.gate_v_min_v) / (p.gate_v_max_v - p.gate_v_min_v) * (p.g_max_us - p.g_min_us)
    assert low == pytest.approx(expect_low, rel=0.05)
    assert high > low * 1.6


def test_v3_disturb_follows_its_growth_laws():
    """n sub-threshold pulses at the reference bias shift a victim by mean * n**m with std
    std * n**h (the preset's values, fitted to Drolet's table by
    benchmarks/fit_seed001_disturb.py, which checks the table itself end to end)."""
    p = get_preset("tio2_passive")
    counts = (16, 80, 208)
    shifts: dict[int, list[np.ndarray]] = {n: [] for n in counts}
    fx = Effects(stuck=False, rtn=False, read_noise=False, flicker=False, relaxation=False, c2c=False, d2d=False)
    amp = 3 * p.disturb_ref_v  # V/3 puts exactly the reference bias on every unselected cell
    for seed in range(12):
        chip = SimChip(8, 8, "tio2_passive", seed=100 + seed, effects=fx, bias_scheme="v3")
        chip.set_state_us(250.0)
        victims = np.ones((8, 8), dtype=bool)
        victims[7, 7] = False
        g0 = chip.true_conductance_us()[victims]
        done = 0
        for n in counts:
            for p_i in range(done, n):  # alternating so the selected cell stays in range
                chip.pulse(7, 7, amp if p_i % 2 == 0 else -amp, 200e-9)
            done = n
            shifts[n].append(chip.true_conductance_us()[victims] - g0)
    stds = []
    for n in counts:
        d = np.concatenate(shifts[n])  # 756 victims
        sd, mean = p.disturb_std_us * n**p.disturb_std_exponent, p.disturb_mean_us * n**p.disturb_mean_exponent
        stds.append(d.std())
        assert d.std() == pytest.approx(sd, rel=0.12), n  # sampling ~3 %, the 60 µS cap trims the tails
        assert abs(d.mean() - mean) < 4 * sd / np.sqrt(d.size) + 0.05 * abs(mean), n
    assert np.all(np.diff(stds) > 0), "disturb must grow with the number of later pulses"


def test_accumulated_disturb_is_capped_like_drolet():
    """However many later writes, a victim never drifts more than disturb_cap_us (60 µS)."""
    fx = Effects(stuck=False, rtn=False, read_noise=False, flicker=False, relaxation=False, c2c=False)
    chip = SimChip(8, 8, "tio2_passive", seed=5, effects=fx, bias_scheme="v3")
    chip.set_state_us(250.0)
    victims = chip.working_mask.copy()
    victims[7, 7] = False
    g0 = chip.true_conductance_us()[victims]
    for p_i in range(4000):  # ~250 device writes of 16 pulses, far beyond Drolet's k = 29
        chip.pulse(7, 7, 1.9 if p_i % 2 == 0 else -1.9, 200e-9)
    d = chip.true_conductance_us()[victims] - g0
    cap = chip.params.disturb_cap_us
    assert cap == 60.0
    assert np.max(np.abs(d)) <= cap + 1e-3
    assert np.mean(np.abs(d) > 0.9 * cap) > 0.2, "strong disturb runs into the cap"


def test_v2_disturbs_only_the_selected_lines():
    fx = Effects(stuck=False, rtn=False, read_noise=False, flicker=False, relaxation=False)
    chip = SimChip(8, 8, "tio2_passive", seed=11, effects=fx, bias_scheme="v2")
    chip.set_state_us(250.0)
    g0 = chip.true_conductance_us()
    for _ in range(20):
        chip.pulse(2, 3, 1.4, 200e-9)
    d = chip.true_conductance_us() - g0
    half = np.zeros((8, 8), bool)
    half[2, :] = half[:, 3] = True
    half[2, 3] = False
    untouched = ~half
    untouched[2, 3] = False  # the selected cell itself switches
    assert np.all(d[untouched] == 0), "V/2 leaves cells off the selected lines alone"
    assert np.mean(np.abs(d[half]) > 0) > 0.9, "half-selected cells are disturbed"
    assert d[2, 3] > 0


def test_sneak_paths_change_a_floating_read():
    fx = Effects(stuck=False, rtn=False, read_noise=False, flicker=False, relaxation=False)
    chip = SimChip(8, 8, "tio2_passive", seed=12, effects=fx, read_scheme="float")
    chip.set_state_us(np.linspace(100, 400, 64))
    own = chip.true_conductance_us(0, 0)[0]
    floating = chip.read(0, 0)[0]
    assert floating > own * 1.05, "sneak paths through the floating lines add current"
    chip.read_scheme = "ground"
    assert chip.read(0, 0)[0] == pytest.approx(own, rel=1e-9)
    no_sneak = SimChip(8, 8, "tio2_passive", seed=12, effects=Effects(**{**fx.model_dump(), "sneak": False}), read_scheme="float")
    no_sneak.set_state_us(np.linspace(100, 400, 64))
    assert no_sneak.read(0, 0)[0] == pytest.approx(own, rel=1e-9)


def test_pulse_beyond_breakdown_leaves_the_cell_stuck():
    chip = SimChip(4, 4, "hfo2_1t1r", seed=13, effects=Effects(stuck=False))
    chip.pulse(1, 2, chip.params.v_breakdown_v + 0.1, 100e-9)
    assert chip.kind_grid[1, 2] == 4
    g = chip.true_conductance_us(1, 2)[0]
    assert g == chip.params.breakdown_g_us
    chip.pulse(1, 2, -2.5, 1e-6)
    assert chip.true_conductance_us(1, 2)[0] == g
    assert chip.working_mask.sum() == 15


def test_seeded_runs_are_bit_identical_and_seeds_differ():
    def run(seed: int) -> tuple[np.ndarray, np.ndarray]:
        chip = SimChip(32, 32, "hfo2_1t1r", seed=seed)
        r, c = _all(chip)
        chip.pulse(r, c, 1.3, 100e-9, gate_v=1.4)
        a = chip.read(r, c)
        chip.pulse(r[:40], c[:40], -1.2, 100e-9)
        return a, chip.read(r, c)

    a1, b1 = run(5)
    a2, b2 = run(5)
    assert np.array_equal(a1, a2) and np.array_equal(b1, b2)
    a3, _ = run(6)
    assert not np.array_equal(a1, a3)


def test_simulated_clock_counts_pulses_and_reads():
    chip = SimChip(8, 8, "tio2_passive", seed=1)
    chip.pulse(0, 0, 1.2, 200e-9)
    chip.read(0, 0)
    assert chip.clock_s == pytest.approx(200e-9 + chip.params.read_time_s)
    chip1 = SimChip(8, 8, "hfo2_1t1r", seed=1)
    chip1.pulse(np.zeros(8, int), np.arange(8), 1.2, 100e-9)  # one parallel row pulse
    assert chip1.clock_s == pytest.approx(100e-9)


def test_vmm_is_g_times_v():
    chip = SimChip(16, 8, "hfo2_1t1r", seed=14, effects=Effects(rtn=False, relaxation=False))
    v = np.linspace(-0.2, 0.2, 16)
    i = chip.vmm(v)
    g = chip.true_conductance_us()
    expected = g.T @ v * 1e-6
    p = chip.params
    noise_sd = np.sqrt((((p.read_noise_abs_us + p.read_noise_rel * g) * v[:, None]) ** 2).sum(axis=0)) * 1e-6
    assert np.all(np.abs(i - expected) < 5 * noise_sd)
    assert np.abs(i - expected).max() > 0  # the read noise is really there


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        (dict(rows=0, cols=4), "rows"),
        (dict(rows=4, cols=-1), "cols"),
        (dict(rows=4, cols=4, technology="graphene"), "technology"),
    ],
)
def test_bad_construction(kwargs, parameter):
    with pytest.raises(ConfigError) as err:
        SimChip(**kwargs)
    assert parameter in str(err.value)


def test_bad_pulses_and_indices():
    chip = SimChip(4, 4, "hfo2_1t1r")
    with pytest.raises(ConfigError, match="amplitude_v"):
        chip.pulse(0, 0, float("nan"), 100e-9)
    with pytest.raises(ConfigError, match="width_s"):
        chip.pulse(0, 0, 1.0, float("inf"))
    with pytest.raises(ConfigError, match=r"rows=7.*\[0, 3\]"):
        chip.pulse(7, 0, 1.0, 100e-9)
    with pytest.raises(ConfigError, match="cols"):
        chip.read(0, -1)
    with pytest.raises(ConfigError, match="conductance_us"):
        chip.set_state_us(1e6)


def test_bound_order_is_validated():
    params = get_preset("tio2_passive")
    with pytest.raises(ConfigError, match="g_min_us=600"):
        params.model_copy(update={}).__class__(**{**params.model_dump(), "g_min_us": 600.0})
    with pytest.raises(ConfigError, match="v_breakdown_v"):
        params.__class__(**{**params.model_dump(), "v_breakdown_v": 0.5})
