"""The settled read spread of the TiO2 preset is seed 001's (Fig. 2c), with the small RTN
fluctuator and the instrument inside it rather than on top of it; the large, removable
fluctuator (which a tuning's acceptance mostly rejects) comes on top."""

from __future__ import annotations

import numpy as np
import pytest

from memprog.core.device_params import Effects
from memprog.core.presets import get_preset
from memprog.sim_instruments.chip import SimChip

P = get_preset("tio2_passive")
QUIET = dict(c2c=False, d2d=False, relaxation=False, disturb=False, stuck=False)


def _spread_us(level_us: float, **effects: bool) -> float:
    """RMS over 4,096 cells of the std of 40 reads each, 10 ms apart (RTN decorrelated)."""
    chip = SimChip(64, 64, "tio2_passive", seed=3, effects=Effects(**{**QUIET, **effects}))
    chip.set_state_us(level_us)
    reads = np.empty((40, chip.n_cells))
    for k in range(40):
        chip.advance(0.01)
        reads[k] = chip.read(*np.divmod(np.arange(chip.n_cells), 64))
    return float(np.sqrt(reads.var(axis=0, ddof=1).mean()))


def _drolet_us(g: float) -> float:
    return (P.settled_spread_rel + P.settled_spread_rel_per_us * g) * g


def _large_rtn_var_us2() -> float:
    return P.rtn_large_probability * P.rtn_large_amp_us**2 * np.exp(2 * P.rtn_large_amp_log_std**2) / 4


@pytest.mark.parametrize("level_us", [100.0, 400.0])
def test_settled_spread_is_seed_001s_without_the_large_fluctuator(level_us):
    # 0.63 % of 100 µS and 0.44 % of 400 µS (Drolet's linear fit); the RMS over 4,096 cells
    # of 40-read variances has a relative sampling error well under 2 %
    assert _spread_us(level_us, rtn=False) == pytest.approx(_drolet_us(level_us), rel=0.04)
    with_rtn = np.sqrt(_drolet_us(level_us) ** 2 + _large_rtn_var_us2())
    assert _spread_us(level_us) == pytest.approx(with_rtn, rel=0.05)


def test_without_the_flicker_only_rtn_and_instrument_remain():
    g = 100.0
    rtn_var = _large_rtn_var_us2() + P.rtn_small_amp_us**2 / 12
    instrument = P.read_noise_abs_us + P.read_noise_rel * g
    expected = np.sqrt(rtn_var + instrument**2)
    got = _spread_us(g, flicker=False)
    assert got == pytest.approx(expected, rel=0.08)  # RTN amplitudes vary cell to cell
    assert got < 0.75 * _drolet_us(g)  # the flicker carries most of seed 001's spread


def test_presets_without_a_measured_spread_add_no_flicker():
    for name in ("hfo2_1t1r", "tio2x_feedforward"):
        p = get_preset(name)
        assert p.settled_spread_rel == 0 and p.settled_spread_rel_per_us == 0
