"""Feedforward linear potentiation on the TiO2-x preset (backend: DirectChipProgrammer).

Acceptance figure (Diao 2025): >= 512 distinguishable states in the preset's narrow window
(HRS/LRS ~ 1.19) with the feedforward scheme, at no more than half the pulses per level of
Alibart's write-verify.
"""

from __future__ import annotations

import numpy as np
import pytest

from memprog.bench.direct import DirectChipProgrammer
from memprog.core.errors import ConfigError
from memprog.protocols.feedforward import FeedforwardParams, FeedforwardTuner, tune_feedforward
from memprog.protocols.ladder import ladder_levels, run_ladder
from memprog.sim_instruments.chip import SimChip

STEP_US = 80.0 / 511  # 512 states from 420 to 500 µS: window ratio 1.19


def _prog(seed: int = 2023) -> tuple[SimChip, DirectChipProgrammer]:
    chip = SimChip(2, 2, "tio2x_feedforward", seed=seed)
    return chip, DirectChipProgrammer(chip)


def test_params_validation():
    with pytest.raises(ConfigError, match="char_set_v"):
        FeedforwardParams(char_set_v=(1.2, 1.0))
    with pytest.raises(ConfigError, match="char_reset_v"):
        FeedforwardParams(char_reset_v=(1.0, 3.0))  # beyond reset_max_v
    with pytest.raises(ConfigError, match="tolerance_us"):
        FeedforwardParams(tolerance_us=0)
    chip, prog = _prog()
    with pytest.raises(ConfigError, match="targets_us"):
        tune_feedforward(prog, [0], [0], [600.0])  # outside the 415-510 µS window
    assert chip.pulse_count == 0


def test_characterisation_recovers_the_cells_physics():
    chip, prog = _prog()
    ff = FeedforwardTuner(prog)
    ch = ff.characterise([0, 1], [0, 1])
    idx = np.array([0, 3])
    assert ch.ok.all()
    assert np.allclose(ch.g_max_us, chip.g_max_us[idx], atol=1.0)
    assert np.allclose(ch.g_min_us, chip.g_min_us[idx], atol=1.0)
    # the fitted onset lies within ~5 % of each cell's true SET threshold
    assert np.allclose(ch.v0_set, chip.v_set_th[idx], rtol=0.05)
    assert ch.pulses[0] == 5 * FeedforwardParams().char_pulses
    # the schedule rises as the cell saturates: bigger pulses for the same step near the LRS
    sched = ch.schedule(ladder_levels(420, STEP_US, 512))
    assert np.all(np.isfinite(sched)) and np.all(np.diff(sched) > 0)


@pytest.mark.slow
def test_512_states_feedforward_vs_alibart():
    lv = ladder_levels(420, STEP_US, 512)
    assert lv[-1] / lv[0] == pytest.approx(1.19, abs=0.005)
    # issue 10: with the sourced read noise (6 nA at 0.2 V = 0.03 µS) and RTN on, a single
    # read is not within half a spacing; a state counts when its averaged verification is
    # (criterion "mean", reads added only where a level's spread needs them), after a settle
    tol = STEP_US / 2
    chip, prog = _prog()
    ff = run_ladder(prog, 0, 0, lv, protocol="feedforward", tolerance_us=tol, criterion="mean")
    s = ff.summary()
    assert s["levels_within_tolerance"] >= 510  # measured: 512 of 512
    assert s["linearity_r2"] > 0.9999
    chip2, prog2 = _prog()
    ali = run_ladder(prog2, 0, 0, lv, protocol="alibart", tolerance_us=tol, criterion="mean")
    a = ali.summary()
    assert a["levels_within_tolerance"] >= 505
    # measured (issue 10 presets): 1.48 vs 29.2 pulses per level; 2.07 with characterisation
    assert s["pulses_per_level"] <= 0.5 * a["pulses_per_level"]
    assert s["pulses"] / 512 <= 0.5 * a["pulses_per_level"]


def test_feedforward_tune_to_arbitrary_targets():
    chip, prog = _prog(seed=5)
    targets = np.array([430.0, 455.5, 470.25, 495.0])
    res = tune_feedforward(prog, [0, 0, 1, 1], [0, 1, 0, 1], targets)
    assert res.converged.all()
    assert np.max(np.abs(res.final_us - targets)) <= 0.05
    true = chip.true_conductance_us().ravel()
    assert np.max(np.abs(true - targets)) < 0.08


def test_unfit_cells_are_flagged_not_looped():
    # TiO2-x settings on an HfO2 chip: the characterisation runs barely move a 4 mS window
    chip = SimChip(2, 4, "hfo2_1t1r", seed=1)
    prog = DirectChipProgrammer(chip)
    res = tune_feedforward(prog, [0, 0, 0, 0], [0, 1, 2, 3], 2000.0)
    assert not res.converged.any()
    # issue 10: a cell that looked on target and then left its band after the settle also
    # says so (drifted_out, relaxed)
    allowed = {"no_model", "pulse_budget", "drifted_out", "relaxed"}
    assert all(set(f.split(",")) <= allowed and f for f in res.flags)
    assert res.pulses.max() <= 2 * FeedforwardParams().max_pulses  # + one settle re-tune
    assert np.all(res.extra["characterisation_pulses"] == 300)
