"""The 707B interlock refuses dangerous routings before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from memprog.bench.assembly import open_bench
from memprog.core.crossbar_wiring import wiring_from_bench
from memprog.core.errors import SafetyError
from memprog.drivers.keithley707b import Keithley707B, MatrixInterlock
from tests.protocol_fake import ExpectedProtocol

BENCH = Path(__file__).resolve().parents[2] / "benches" / "sim_k4200_707b.yaml"
ZERO = "0.00000e+00"


@pytest.fixture(scope="module")
def wiring():
    return wiring_from_bench(yaml.safe_load(BENCH.read_text())["wiring"], 8, 8)


def _matrix(wiring, pairs, rule="break_before_make"):
    t = ExpectedProtocol(pairs)
    m = Keithley707B(t, interlock=MatrixInterlock.from_wiring(wiring))
    m._closed, m._rule = set(), rule  # state as after connect(), without scripting it
    return t, m


def test_a_whole_pulse_route_and_read_route_pass(wiring):
    lock = MatrixInterlock.from_wiring(wiring)
    # bench wiring: rows A PMU1-1, B PMU1-2, C PMU2-1, D GNDU, E SMU1, F SMU2, G SMU3;
    # word lines on card 1 columns 1-8, bit lines on card 2 columns 1-8
    pulse = (
        ["1A01", "2D01"] + [f"1B{i:02d}" for i in range(2, 9)] + [f"2C{i:02d}" for i in range(2, 9)]
    )
    read = (
        ["1E01", "2F01"] + [f"1G{i:02d}" for i in range(2, 9)] + [f"2G{i:02d}" for i in range(2, 9)]
    )
    lock.check(pulse)
    lock.check(read)
    assert wiring.channel("PMU1-1", "word", 3) == "1A04"
    assert wiring.channel("SMU2", "bit", 7) == "2F08"


@pytest.mark.parametrize(
    "channels, match",
    [
        (["1A01", "1E01"], "PMU1-1 and SMU1 would both drive word line 0"),  # two sources, one line
        (["2D01", "2F01"], "GNDU and SMU2 would both drive bit line 0"),
        (["1A01", "1A02"], "PMU1-1 on at most 1 line"),  # selected-row driver on two rows
        (["2A01"], "PMU1-1 on word lines only"),  # a word-line driver reaching a bit line
        (["1E01", "2E01"], "SMU1 on word lines only"),  # read force shorting WL0 to BL0
        (["1B01", "2B01"], "PMU1-2 on word lines only"),
        (["1H01"], "wired matrix row"),  # row H carries no terminal
        (["1A09"], "wired to a chip line"),  # card 1 column 9 carries no chip pad
    ],
)
def test_dangerous_closures_are_refused_and_nothing_is_sent(wiring, channels, match):
    t, m = _matrix(wiring, [])
    with t, pytest.raises(SafetyError, match=match):
        m.close(channels)
    assert m.closed_cache == set()


def test_close_is_checked_against_what_is_already_closed(wiring):
    t, m = _matrix(wiring, [('channel.close("1E01")', None), ("print(errorqueue.count)", ZERO)])
    with t:
        m.close("1E01")
        with pytest.raises(SafetyError, match="both drive word line 0"):
            m.close("1A01")  # PMU1-1 joining SMU1 on word line 0


def test_make_before_break_checks_the_transient_union(wiring):
    read = ["1E01", "2F01"]
    pulse = ["1A01", "2D01"]
    pairs = [('channel.exclusiveclose("1E01,2F01")', None), ("print(errorqueue.count)", ZERO)]
    t, m = _matrix(wiring, pairs, rule="make_before_break")
    with t:
        m.exclusive_close(read)
        with pytest.raises(SafetyError, match="both drive"):
            m.exclusive_close(pulse)  # for a moment SMU1 and PMU1-1 would share word line 0
    pairs += [('channel.exclusiveclose("1A01,2D01")', None), ("print(errorqueue.count)", ZERO)]
    t, m = _matrix(wiring, pairs)  # break-before-make: only the final state matters
    with t:
        m.exclusive_close(read)
        m.exclusive_close(pulse)


def test_interlock_guards_the_simulated_bench_too():
    with open_bench(BENCH) as bench:
        matrix = bench.instruments["k707b"]
        sim = bench._ctx.resource_manager(bench.config.instruments["k707b"]).visalib.ensure_bench()
        sim707 = sim.instruments["k707b"]
        before = sim707.switch_count
        with pytest.raises(SafetyError):
            matrix.close(["1A01", "1E01"])
        assert sim707.switch_count == before and sim707.closed_crosspoints() == frozenset()
