"""A settle chosen from the chip's measured relaxation (issue 25, the ladder's bench time).

Backends: synthetic relax tables (the fit), DirectChipProgrammer on a SimChip whose steps
relax by 10 % (the ladder with a settle rule, and the validation that checks a settle).
"""

from __future__ import annotations

import numpy as np
import pytest

from memprog.bench.direct import DirectChipProgrammer
from memprog.core.errors import ConfigError
from memprog.protocols.events import MemorySink
from memprog.protocols.ladder import ladder_levels, run_ladder
from memprog.protocols.ladder_settle import MovementSink
from memprog.protocols.settle_choice import BUDGET_FRACTION, RelaxFit, fit_relax_samples
from memprog.sim_instruments import SimChip

DELAYS_S = np.array([0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0])


def _table(n: int, tau: float, mean: float, std: float, seed: int = 0) -> dict[str, np.ndarray]:
    """A relax table as characterize stores it: n steps of ~2 mS, g(t) = g0 + f*S*(1-e^-t/tau)."""
    rng = np.random.default_rng(seed)
    step = rng.choice([-1.0, 1.0], n) * rng.uniform(1500, 3000, n)
    before = rng.uniform(50, 500, n) + np.where(step < 0, 3500, 0)
    f = rng.normal(mean, std, n)
    g = (before + step)[:, None] + (f * step)[:, None] * -np.expm1(-DELAYS_S / tau)[None]
    g = g + rng.normal(0, 0.05, g.shape)  # the instrument's read noise
    k = DELAYS_S.size
    return {
        "row": np.repeat(np.arange(n), k), "col": np.zeros(n * k), "cycle": np.zeros(n * k),
        "delay_s": np.tile(DELAYS_S, n), "g_before_us": np.repeat(before, k), "g_us": g.ravel(),
    }  # fmt: skip


def test_fit_recovers_the_relaxation_it_was_given():
    fit = fit_relax_samples(_table(48, tau=0.7, mean=-0.02, std=0.03))
    assert fit.tau_s == pytest.approx(0.7, rel=0.05)
    assert fit.frac_mean == pytest.approx(-0.02, abs=0.01)
    assert fit.frac_std == pytest.approx(0.03, rel=0.3)
    assert fit.n_series == 48


def test_the_settle_leaves_exactly_the_budget_unrelaxed():
    fit = RelaxFit(tau_s=0.8, frac_mean=-0.02, frac_std=0.03, n_series=16, max_delay_s=10.0)
    budget = BUDGET_FRACTION * 1.0
    moved = np.array([1.0, 20.0, 400.0])
    t = fit.settle_for_movement(moved, budget)
    amp = (0.02 + 3 * 0.03) * moved
    # what is still unrelaxed when the verification reads: the budget, never more
    remainder = np.where(amp > budget, amp * np.exp(-t / 0.8), amp)
    assert remainder == pytest.approx([amp[0], budget, budget])
    assert t[0] == 0.0 and 0 < t[1] < t[2]  # a small move needs no wait, a large one more
    with pytest.raises(ConfigError, match="budget_us"):
        fit.settle_for_movement(1.0, 0.0)


def test_a_relaxation_longer_than_the_table_measured_is_refused_not_capped():
    """tau 100 s with delays to 10 s: the fit used to return its grid's top (30 s) and a
    settle several times too short; the table cannot say, so it is refused."""
    with pytest.raises(ConfigError, match="longer relax delays"):
        fit_relax_samples(_table(16, tau=100.0, mean=-0.05, std=0.01))


def test_too_few_measured_steps_are_refused():
    few = _table(3, tau=1.0, mean=-0.02, std=0.03)
    with pytest.raises(ConfigError, match="relax samples"):
        fit_relax_samples(few)
    with pytest.raises(ConfigError, match="g_before_us"):
        fit_relax_samples({k: v for k, v in few.items() if k != "g_before_us"})


def _relaxing_chip() -> tuple[DirectChipProgrammer, int, int, SimChip]:
    chip = SimChip(4, 4, "hfo2_1t1r", seed=2023)
    # a chip whose steps relax back by 10 % (+-2 %): a ladder verified at once is not what stays
    chip.params = chip.params.model_copy(update={"relax_step_mean": 0.1, "relax_step_std": 0.02})
    w = np.flatnonzero(chip.working_mask.ravel())
    r, c = divmod(int(w[0]), 4)
    return DirectChipProgrammer(chip), r, c, chip


def _measure_relax(prog: DirectChipProgrammer, chip: SimChip) -> RelaxFit:
    """A lab's relax measurement through the programmer: the other working cells RESET and
    left to settle, one strong SET pulse, reads at growing delays."""
    w = np.flatnonzero(chip.working_mask.ravel())[1:]
    rows, cols = np.divmod(w, 4)
    prog.pulse(rows, cols, -2.0, 1e-5)
    prog.wait(20.0)
    before = prog.read(rows, cols)
    prog.pulse(rows, cols, 1.5, 1e-6, gate_v=1.4)
    g, waited = [], 0.0
    for t in DELAYS_S:
        prog.wait(t - waited)
        waited = t
        g.append(prog.read(rows, cols))
    k, n = DELAYS_S.size, rows.size
    return fit_relax_samples({
        "row": np.tile(rows, k), "col": np.tile(cols, k), "cycle": np.zeros(k * n),
        "delay_s": np.repeat(DELAYS_S, n), "g_before_us": np.tile(before, k), "g_us": np.concatenate(g),
    })  # fmt: skip


def test_validation_catches_a_ladder_verified_before_it_relaxed():
    """Without a settle every level passes its own verification, yet levels leave the band
    within the next 5 s: the validation sees it (the check is able to fail)."""
    prog, r, c, _ = _relaxing_chip()
    res = run_ladder(
        prog,
        r,
        c,
        ladder_levels(1000.0, 2.0, 32),
        settle_s=0.0,
        validate_every=1,
        validate_wait_s=5.0,
    )
    s = res.summary()
    assert s["levels_within_tolerance"] == 32
    assert s["validated_levels"] == 32 and s["validated_within"] < 32
    assert s["validated_drift_us_max"] > 1.0


@pytest.mark.slow
def test_a_settle_from_the_measured_relaxation_keeps_the_levels_for_less_bench_time():
    prog, r, c, chip = _relaxing_chip()
    fit = _measure_relax(prog, chip)
    assert fit.frac_mean == pytest.approx(-0.1, abs=0.03)  # the lab measured the chip's 10 %
    budget = BUDGET_FRACTION * 1.0
    moved: list[float] = []

    def rule(m: float) -> float:
        moved.append(m)
        return float(fit.settle_for_movement(m, budget))

    b0 = prog.bench_time_s
    res = run_ladder(
        prog,
        r,
        c,
        ladder_levels(1000.0, 2.0, 32),
        settle_rule=rule,
        validate_every=1,
        validate_wait_s=5.0,
    )
    bench_s = prog.bench_time_s - b0
    s = res.summary()
    assert s["levels_within_tolerance"] == 32
    assert s["validated_within"] == 32  # still in band 5 s later: the settle was long enough
    assert s["validated_drift_us_max"] < 1.0
    # each level waited what its own movement asked for, and the chip's clock says so
    assert len(moved) == 32 + s["settle_retunes"] and min(moved) > 1.0
    assert res.settle_waits_s.sum() == pytest.approx(
        sum(float(fit.settle_for_movement(m, budget)) for m in moved)
    )
    assert bench_s >= res.settle_waits_s.sum() + 32 * 5.0
    assert res.settle_waits_s.sum() < 0.5 * 32 * 5.0  # under half the technology's 5 s


def test_movement_sink_sums_the_reads_and_forwards_only_what_was_asked():
    plain, traced = MemorySink(), MemorySink(trace=True)
    for sink in (plain, traced):
        m = MovementSink(sink)
        m.start(100.0)
        for g in (103.0, 101.0, 102.5):
            m.record_event({"event": "read", "g_us": np.array([g])})
        m.record_event({"event": "tune_end"})
        assert m.movement_us == pytest.approx(3.0 + 2.0 + 1.5)
    assert [e["event"] for e in plain.events] == ["tune_end"]
    assert [e["event"] for e in traced.events] == ["read", "read", "read", "tune_end"]


def test_a_settle_rule_and_a_settle_time_together_are_refused():
    prog, r, c, _ = _relaxing_chip()
    lv = ladder_levels(1000.0, 2.0, 2)
    with pytest.raises(ConfigError, match="settle_s"):
        run_ladder(prog, r, c, lv, settle_s=1.0, settle_rule=lambda m: 0.0)
    with pytest.raises(ConfigError, match="validate_every"):
        run_ladder(prog, r, c, lv, validate_every=-1)
