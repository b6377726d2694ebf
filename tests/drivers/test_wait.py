"""Contract C: ``CellProgrammer.wait`` / ``Bench.wait`` on every stack.

Backends: exact-traffic fake transport (tests/protocol_fake.ExpectedProtocol) for the three
instrument-side waits, byte for byte; the ``@memprog`` simulated benches for the clock.
"""

from __future__ import annotations

import pytest

from memprog import open_bench
from memprog.core.errors import ConfigError
from memprog.drivers.b1500 import B1500, B1500Settings
from memprog.drivers.keithley707b import Keithley707B
from memprog.drivers.onchip import OnChipController
from memprog.protocols.programmer import wait_chunks
from tests.drivers.test_b1500_protocol import CONNECT as B1500_CONNECT
from tests.drivers.test_b1500_protocol import LIMITS as B1500_LIMITS
from tests.drivers.test_k707b_protocol import CONNECT as K707B_CONNECT
from tests.drivers.test_onchip_protocol import CONNECT as ONCHIP_CONNECT
from tests.drivers.test_onchip_protocol import LIMITS as ONCHIP_LIMITS
from tests.protocol_fake import ExpectedProtocol


def test_wait_chunks_sum_exactly_and_fit_a_visa_timeout():
    assert wait_chunks(0) == []
    assert wait_chunks(0.25) == [0.25]
    c = wait_chunks(2.5)
    assert c == [1.0, 1.0, 0.5] and sum(c) == 2.5
    assert len(wait_chunks(3600)) == 3600
    for bad in (-1, float("nan"), float("inf"), "x"):
        with pytest.raises(ConfigError, match="seconds"):
            wait_chunks(bad)


def test_onchip_wait_is_syst_wait_query_in_chunks():
    pairs = ONCHIP_CONNECT + [("SYST:WAIT? 1", "1"), ("SYST:WAIT? 0.5", "1")]
    with ExpectedProtocol(pairs) as t:
        ctrl = OnChipController(t, ONCHIP_LIMITS, name="ctrl")
        ctrl.connect()
        ctrl.wait(1.5)


def test_707b_wait_is_tsp_delay_then_opc():
    pairs = K707B_CONNECT + [("delay(1)", None), ("*OPC?", "1"), ("delay(0.2)", None), ("*OPC?", "1")]
    with ExpectedProtocol(pairs) as t:
        m = Keithley707B(t)
        m.connect()
        m.delay(1.2)


def test_b1500_wait_is_flex_pause_checked_by_errx():
    pairs = B1500_CONNECT + [("PA 0.75", None), ("ERRX?", '+0,"No Error."')]
    with ExpectedProtocol(pairs) as t:
        b = B1500(t, limits=B1500_LIMITS, settings=B1500Settings())
        b.connect()
        b.pause(0.75)


def test_negative_wait_refused_before_anything_is_sent():
    with ExpectedProtocol(ONCHIP_CONNECT) as t:
        ctrl = OnChipController(t, ONCHIP_LIMITS, name="ctrl")
        ctrl.connect()
        with pytest.raises(ConfigError, match="seconds"):
            ctrl.wait(-1)


@pytest.mark.parametrize("bench", ["sim_onchip", "sim_k4200_707b", "sim_b1500_wgfmu"])
def test_bench_wait_advances_the_simulated_clock(bench):
    with open_bench(bench) as b:
        t0 = b.bench_time_s
        b.wait(3.0)
        dt = b.bench_time_s - t0
        # the wait itself plus the messages' own bus time (a few ms at most)
        assert 3.0 <= dt < 3.05
        assert b.sim_chip.clock_s >= 3.0


def test_onchip_wait_chunks_follow_the_visa_timeout():
    class _Res:
        timeout = 4000  # ms: waits of at most 2 s answer in time

    pairs = ONCHIP_CONNECT + [("SYST:WAIT? 2", "1"), ("SYST:WAIT? 2", "1"), ("SYST:WAIT? 1", "1")]
    with ExpectedProtocol(pairs) as t:
        t.resource = _Res()
        ctrl = OnChipController(t, ONCHIP_LIMITS, name="ctrl")
        ctrl.connect()
        ctrl.wait(5.0)
