"""The simulated 707B answers TSP like the instrument (backend: @memprog simulator)."""

from __future__ import annotations

from pathlib import Path

import pytest
import pyvisa

from memprog.bench.assembly import open_bench
from memprog.core.errors import InstrumentError

BENCH = Path(__file__).resolve().parents[2] / "benches" / "sim_k4200_707b.yaml"


@pytest.fixture
def tsp():
    rm = pyvisa.ResourceManager(f"{BENCH}@memprog")
    m = rm.open_resource("GPIB0::16::INSTR", read_termination="\n", write_termination="\n")
    yield m, rm.visalib.ensure_bench()
    rm.close()


def test_switching_state_and_getclose_format(tsp):
    m, sim = tsp
    assert "Model 707B" in m.query("*IDN?")
    assert m.query('print(channel.getclose("allslots"))') == "nil"
    m.write('channel.close("1A01:1A03,2H12")')
    assert m.query('print(channel.getclose("allslots"))') == "1A01;1A02;1A03;2H12"
    assert m.query('print(channel.getclose("slot2"))') == "2H12"
    m.write('channel.open("1A02")')
    m.write('channel.exclusiveslotclose("1B05")')  # card 1: only 1B05; card 2 untouched
    assert m.query('print(channel.getclose("allslots"))') == "1B05;2H12"
    m.write('channel.exclusiveclose("2A01:2B02")')  # a rectangle of rows A-B, columns 1-2
    assert m.query('print(channel.getclose("allslots"))') == "2A01;2A02;2B01;2B02"
    m.write('channel.open("allslots")')
    assert sim.instruments["k707b"].closed_crosspoints() == frozenset()
    assert m.query("print(errorqueue.count)") == "0.00000e+00"


def test_syntax_and_runtime_errors_go_to_the_queue(tsp):
    m, sim = tsp
    m.write('channel.close("1A01") channel.clos("1A02")')  # a chunk that does not parse
    assert m.query('print(channel.getclose("allslots"))') == "nil"  # nothing in it ran
    m.write('channel.close("1A01,1A13") channel.close("1B01")')  # runtime error stops the chunk
    assert m.query('print(channel.getclose("allslots"))') == "nil"
    m.write('channel.close("3A01")')  # slot 3 is empty on this bench
    assert m.query("print(errorqueue.count)") == "3.00000e+00"
    code, msg, severity, node = m.query("print(errorqueue.next())").split("\t")
    assert float(code) == -285 and "Syntax error" in msg and "clos" in msg
    assert float(m.query("print(errorqueue.next())").split("\t")[0]) == -286
    assert "slot 3" in m.query("print(errorqueue.next())")
    assert m.query("print(errorqueue.next())").startswith("0.00000e+00\tQueue Is Empty")


def test_connect_rule_and_relay_time(tsp):
    m, sim = tsp
    chip = sim.chip
    assert m.query("print(channel.connectrule)") == "1.00000e+00"
    t0 = chip.clock_s
    m.write('channel.exclusiveclose("1A01")')
    m.write('channel.exclusiveclose("1B01")')  # break-before-make: an open and a close phase
    dt = chip.clock_s - t0
    assert dt == pytest.approx(3 * 3e-3 + 2 * 200e-6)
    m.write("channel.connectrule = channel.MAKE_BEFORE_BREAK")
    assert m.query("print(channel.connectrule)") == "2.00000e+00"
    m.write("reset()")
    assert m.query("print(channel.connectrule)") == "1.00000e+00"
    assert m.query('print(channel.getclose("allslots"))') == "nil"


def test_driver_raises_the_instruments_error():
    with open_bench(BENCH) as b:
        m = b.instruments["k707b"]
        m.interlock = None  # let the instrument itself refuse
        with pytest.raises(InstrumentError) as err:
            m.close("5A01")  # no card in slot 5
        assert err.value.code == -286 and "slot 5" in err.value.message
        assert m.closed_channels() == set()
