"""Disturb interlock (issue 14 item 5 / issue 10 item 5): unselected cells of a passive array.

The bench's limits carry the largest voltage an unselected cell may see; the crossbar stack
refuses a write whose V/3 (or V/2) bias would exceed it before anything is sent. Backends:
exact-traffic fake transports (nothing sent), and bench-file validation.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from memprog.core.bench_config import UNSELECTED_MARGIN, BenchConfig
from memprog.core.crossbar_wiring import wiring_from_bench
from memprog.core.errors import ConfigError, SafetyError
from memprog.core.presets import get_preset
from memprog.drivers.crossbar_programmer import CrossbarOptions, CrossbarProgrammer
from memprog.drivers.keithley707b import Keithley707B, MatrixInterlock
from memprog.drivers.keithley4200 import Keithley4200
from memprog.protocols.alibart import AlibartParams, alibart_defaults, tune_alibart
from tests.drivers.test_crossbar_protocol import LIMITS
from tests.protocol_fake import ExpectedProtocol

BENCH = Path(__file__).resolve().parents[2] / "benches" / "sim_k4200_707b.yaml"


def _bench_dict(**limits) -> dict:
    d = yaml.safe_load(BENCH.read_text())
    lim = d["chip"]["limits"]
    lim.pop("unselected_v_max", None)
    lim.pop("allow_unselected_above_threshold", None)
    lim.update(limits)
    return d


def test_default_interlock_comes_from_the_technology_thresholds():
    cfg = BenchConfig(**_bench_dict())
    p = get_preset("tio2_passive")
    expected = round(UNSELECTED_MARGIN * min(p.v_set_threshold_v, p.v_reset_threshold_v), 3)
    assert cfg.chip.limits.unselected_v_max == expected == 0.64
    assert cfg.chip.limits.pulse_cap_v(1 / 3) == pytest.approx(1.92)


def test_a_cap_beyond_the_default_is_refused_unless_explicitly_allowed():
    with pytest.raises(ConfigError, match="unselected_v_max"):
        BenchConfig(**_bench_dict(unselected_v_max=0.8))
    cfg = BenchConfig(**_bench_dict(unselected_v_max=0.8, allow_unselected_above_threshold=True))
    assert cfg.chip.limits.unselected_v_max == 0.8
    with pytest.raises(ConfigError, match="breakdown"):
        BenchConfig(**_bench_dict(unselected_v_max=3.5, allow_unselected_above_threshold=True))


def _stack(limits, scheme="v3"):
    wiring = wiring_from_bench(yaml.safe_load(BENCH.read_text())["wiring"], 8, 8)
    tk, tm = ExpectedProtocol([], "k4200"), ExpectedProtocol([], "k707b")
    k = Keithley4200(tk, limits=limits)
    k.smus, k.pmu_channels, k.cards, k._mode = [1, 2, 3, 4], [1, 2, 3, 4], ["SMU1"], "user"
    m = Keithley707B(tm, interlock=MatrixInterlock.from_wiring(wiring))
    m._closed, m._rule = set(), "break_before_make"
    p = CrossbarProgrammer(
        k, m, wiring, 8, 8, limits, options=CrossbarOptions(bias_scheme=scheme)
    )
    return p, tk, tm


@pytest.mark.parametrize(("scheme", "amp", "ok_amp"), [("v3", -2.4, -1.92), ("v2", 1.3, 1.28)])
def test_crossbar_refuses_a_write_over_the_interlock_before_sending(scheme, amp, ok_amp):
    limits = LIMITS.model_copy(update={"unselected_v_max": 0.64})
    p, tk, tm = _stack(limits, scheme)
    with pytest.raises(SafetyError, match="unselected"):
        p.pulse([0, 1], [0, 1], [1.0, amp], 200e-9)  # one bad amplitude refuses the batch
    assert tk.pos == 0 and tm.pos == 0  # nothing sent to either instrument
    # the protocols see the interlock as the stack's amplitude limits
    cap = 0.64 * (3 if scheme == "v3" else 2)
    assert p.limits.set_v_max == pytest.approx(min(2.1, cap))
    assert p.limits.reset_v_max == pytest.approx(min(2.5, cap))
    assert abs(ok_amp) <= cap
    # a ramp that would cross it is refused by the protocol before its first pulse
    with pytest.raises(ConfigError, match="reset_max_v"):
        tune_alibart(p, [0], [0], [200.0], params=AlibartParams(set_max_v=1.2, reset_max_v=2.4))
    assert tk.pos == 0 and tm.pos == 0
    # and the default settings fit under it
    d = alibart_defaults(p.info, p.limits)
    assert d.set_max_v <= cap and d.reset_max_v <= cap
