"""Simulated WGFMU library, called exactly as ctypes calls wgfmu.dll (byref, arrays, bytes).

Backend: the @memprog simulator (a SimBench built from benches/sim_b1500_wgfmu.yaml, the
simulated B1500A found at the address given to WGFMU_openSession); no driver involved
except where a test says so.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, byref, c_char_p, c_double, c_int, create_string_buffer

import numpy as np
import pytest

from memprog.core.bench_config import load_bench_config
from memprog.core.errors import InstrumentError
from memprog.drivers import wgfmu_constants as wc
from memprog.drivers.wgfmu import WGFMU, ChannelSetup
from memprog.drivers.wgfmu_patterns import MeasureEvent, Pattern, read_pattern
from memprog.sim_instruments.sim_bench import SimBench
from memprog.sim_instruments.wgfmu_library import SimWgfmuLibrary

ADDR = b"GPIB0::17::INSTR"


@pytest.fixture()
def sim():
    cfg, _ = load_bench_config("sim_b1500_wgfmu")
    bench = SimBench(cfg)
    return SimWgfmuLibrary(bench), bench


def _error(lib) -> str:
    size = c_int(0)
    assert lib.WGFMU_getErrorSize(byref(size)) == 0
    buf = create_string_buffer(size.value)
    n = c_int(size.value)
    assert lib.WGFMU_getError(buf, byref(n)) == 0
    return buf.value.decode()


def _open(lib) -> None:
    assert lib.WGFMU_openSession(ADDR) == 0
    assert lib.WGFMU_initialize() == 0


def _vectors(lib, name: bytes, dts, vs) -> int:
    d = (c_double * len(dts))(*dts)
    v = (c_double * len(vs))(*vs)
    return lib.WGFMU_addVectors(name, d, v, len(dts))


def test_session_channels_and_out_arguments(sim):
    lib, _ = sim
    assert lib.WGFMU_openSession(b"GPIB0::18::INSTR") == wc.COMMUNICATION_ERROR
    assert _error(lib) == "WGFMU_openSession: no B1500A answers at GPIB0::18::INSTR"
    assert lib.WGFMU_initialize() == wc.CONTEXT_ERROR  # no session yet
    _open(lib)
    assert lib.WGFMU_openSession(ADDR) == wc.CONTEXT_ERROR  # already open
    size = c_int(0)
    assert lib.WGFMU_getChannelIdSize(ctypes.pointer(size)) == 0 and size.value == 2
    ids = (c_int * 2)()
    assert lib.WGFMU_getChannelIds(ids, byref(size)) == 0
    assert list(ids) == [101, 102]
    mode = c_int(0)
    assert lib.WGFMU_setOperationMode(101, wc.OPERATION_MODE_PG) == 0
    assert lib.WGFMU_getOperationMode(101, byref(mode)) == 0 and mode.value == 2002
    assert lib.WGFMU_setOperationMode(103, wc.OPERATION_MODE_PG) == wc.CHANNEL_NOT_FOUND_ERROR
    assert lib.WGFMU_setOperationMode(101, 1999) == wc.PARAMETER_OUT_OF_RANGE_ERROR
    summary_size = c_int(0)
    assert lib.WGFMU_getErrorSummarySize(byref(summary_size)) == 0
    buf = create_string_buffer(summary_size.value)
    assert lib.WGFMU_getErrorSummary(buf, byref(summary_size)) == 0
    lines = buf.value.decode().splitlines()
    assert (
        lines[0].startswith("WGFMU_openSession")
        and "channel 103 is not installed" in buf.value.decode()
    )
    assert lib.WGFMU_closeSession() == 0


def test_ctypes_argument_types_are_enforced_like_the_dll(sim):
    lib, _ = sim
    with pytest.raises(ctypes.ArgumentError):
        lib.WGFMU_openSession("GPIB0::17::INSTR")  # str instead of bytes
    _open(lib)
    with pytest.raises(ctypes.ArgumentError):
        lib.WGFMU_connect(101.0)  # float for an int
    with pytest.raises(ctypes.ArgumentError):
        lib.WGFMU_getChannelIdSize(byref(c_double()))  # wrong pointer type
    # numpy scalars and data_as pointers pass, as with the DLL
    assert lib.WGFMU_connect(np.int64(101)) == 0
    assert lib.WGFMU_createPattern(b"p", np.float64(0.0)) == 0
    dts = np.array([1e-8, 1e-7])
    vs = np.array([1.0, 1.0])
    pd = POINTER(c_double)
    assert lib.WGFMU_addVectors(b"p", dts.ctypes.data_as(pd), vs.ctypes.data_as(pd), 2) == 0
    n = c_int(0)
    assert lib.WGFMU_getPatternForceValueSize(b"p", byref(n)) == 0 and n.value == 3


def test_pattern_errors_return_their_codes(sim):
    lib, _ = sim
    assert lib.WGFMU_createPattern(b"a", 0.0) == 0
    assert lib.WGFMU_createPattern(b"a", 0.0) == wc.PATTERN_ALREADY_EXISTS_ERROR
    assert lib.WGFMU_addVector(b"b", 1e-8, 0.0) == wc.PATTERN_NOT_FOUND_ERROR
    assert lib.WGFMU_addVector(b"a", 1e-9, 0.0) == wc.PARAMETER_OUT_OF_RANGE_ERROR
    assert lib.WGFMU_addVector(b"a", 1e-8, 11.0) == wc.PARAMETER_OUT_OF_RANGE_ERROR
    assert lib.WGFMU_createPattern(b"", 0.0) == wc.ILLEGAL_STRING_ERROR
    assert lib.WGFMU_setMeasureEvent(b"a", b"e", 0.0, 1, 1e-8, 0.1, wc.MEASURE_EVENT_DATA_RAW) == -1
    assert lib.WGFMU_addSequence(101, b"a", 1.0) == wc.CONTEXT_ERROR  # channels need a session
    assert _error(lib) == "WGFMU_createPattern: pattern 'a' already exists"
    assert lib.WGFMU_clear() == 0
    size = c_int(-1)
    assert lib.WGFMU_getErrorSize(byref(size)) == 0 and size.value == 0


def _read_setup(lib, read_v=0.2, raw_points=0, i_range=wc.MEASURE_CURRENT_RANGE_1MA):
    """Top channel plays a 0.2 V window; bottom holds 0 V and measures the current."""
    for ch in (101, 102):
        assert lib.WGFMU_setOperationMode(ch, wc.OPERATION_MODE_FASTIV) == 0
    assert lib.WGFMU_setMeasureMode(102, wc.MEASURE_MODE_CURRENT) == 0
    assert lib.WGFMU_setMeasureCurrentRange(102, i_range) == 0
    assert lib.WGFMU_createPattern(b"top", 0.0) == 0
    assert _vectors(lib, b"top", [1e-7, 1e-5, 1e-7], [read_v, read_v, 0.0]) == 0
    assert lib.WGFMU_createPattern(b"bottom", 0.0) == 0
    assert _vectors(lib, b"bottom", [1e-7, 1e-5, 1e-7], [0.0, 0.0, 0.0]) == 0
    assert (
        lib.WGFMU_setMeasureEvent(
            b"bottom", b"avg", 1.1e-6, 1, 9e-6, 9e-6, wc.MEASURE_EVENT_DATA_AVERAGED
        )
        == 0
    )
    if raw_points:
        assert (
            lib.WGFMU_setMeasureEvent(b"bottom", b"raw", 1.1e-6, raw_points, 1e-6, 0.5e-6, 12001)
            == 0
        )
    assert lib.WGFMU_addSequence(101, b"top", 1.0) == 0
    assert lib.WGFMU_addSequence(102, b"bottom", 1.0) == 0


def _values(lib, ch):
    measured, total = c_int(0), c_int(0)
    assert lib.WGFMU_getMeasureValueSize(ch, byref(measured), byref(total)) == 0
    assert measured.value == total.value
    t = np.zeros(total.value)
    v = np.zeros(total.value)
    n = c_int(total.value)
    pd = POINTER(c_double)
    assert (
        lib.WGFMU_getMeasureValues(ch, 0, byref(n), t.ctypes.data_as(pd), v.ctypes.data_as(pd)) == 0
    )
    assert n.value == total.value
    return t, v


def test_read_window_measures_the_probed_device(sim):
    lib, bench = sim
    chip = bench.chip
    _open(lib)
    _read_setup(lib, raw_points=5)
    assert lib.WGFMU_execute() == wc.CONTEXT_ERROR  # not connected yet
    assert "not connected" in _error(lib)
    assert lib.WGFMU_connect(101) == 0 and lib.WGFMU_connect(102) == 0
    t0 = chip.clock_s
    assert lib.WGFMU_execute() == 0
    assert lib.WGFMU_waitUntilCompleted() == 0
    st, el, tot = c_int(0), c_double(0), c_double(0)
    assert lib.WGFMU_getStatus(byref(st), byref(el), byref(tot)) == 0
    assert st.value == wc.STATUS_COMPLETED and tot.value == pytest.approx(10.2e-6)
    assert chip.clock_s - t0 == pytest.approx(2e-3 + 10.2e-6, rel=1e-6)  # overhead + sequence
    t, v = _values(lib, 102)
    assert t.size == 1 + 5  # averaged event: 1 value; raw event: one per point
    g_true = chip.true_conductance_us(0, 0)[0]
    # current flows into the bottom channel: negative; -I/V is the device conductance
    assert -v[0] / 0.2 * 1e6 == pytest.approx(g_true, rel=0.01)
    np.testing.assert_allclose(-v[1:] / 0.2 * 1e6, g_true, rtol=0.02)
    assert t[0] == pytest.approx(1.1e-6 + 4.5e-6)  # middle of the averaged window
    np.testing.assert_allclose(t[1:], 1.1e-6 + 0.25e-6 + np.arange(5) * 1e-6)
    # an interpolated force value of the sequence, as the 3IT code reads it back
    fv = c_double(0)
    assert lib.WGFMU_getInterpolatedForceValue(
        101, 5e-6, byref(fv)
    ) == 0 and fv.value == pytest.approx(0.2)


def test_a_write_pulse_changes_only_the_probed_device(sim):
    lib, bench = sim
    chip = bench.chip
    before = chip.true_conductance_us().copy()
    _open(lib)
    for ch in (101, 102):
        assert lib.WGFMU_setOperationMode(ch, wc.OPERATION_MODE_FASTIV) == 0
        assert lib.WGFMU_connect(ch) == 0
    assert lib.WGFMU_createPattern(b"set", 0.0) == 0
    assert _vectors(lib, b"set", [1e-8, 1.9e-7, 1e-8], [1.3, 1.3, 0.0]) == 0
    assert lib.WGFMU_createPattern(b"gnd", 0.0) == 0
    assert lib.WGFMU_addVector(b"gnd", 2.1e-7, 0.0) == 0
    names = (c_char_p * 2)(b"set", b"set")
    loops = (c_double * 2)(1.0, 2.0)
    assert lib.WGFMU_addSequences(101, names, loops, 2) == 0  # 3 pulses
    assert lib.WGFMU_addSequence(102, b"gnd", 3.0) == 0
    n_pulses = chip.pulse_count
    assert lib.WGFMU_execute() == 0
    after = chip.true_conductance_us()
    assert after[0, 0] > before[0, 0] + 5.0  # three 1.3 V SET pulses
    np.testing.assert_allclose(after[0, 1:], before[0, 1:], atol=1e-9)  # floating pads: 0 V
    # each trapezoid acts as one 200 ns rectangle (its FWHM): exactly one chip pulse each
    assert chip.pulse_count - n_pulses == 3
    # a force range that cannot hold the pulse is refused at execute
    assert lib.WGFMU_setForceVoltageRange(101, wc.FORCE_VOLTAGE_RANGE_10V_NEGATIVE) == 0
    assert lib.WGFMU_execute() == wc.PARAMETER_OUT_OF_RANGE_ERROR
    assert "outside its force range" in _error(lib)


def test_current_beyond_the_range_saturates_and_the_driver_refuses_it(sim):
    lib, bench = sim
    w = WGFMU(lib, ADDR.decode())
    w.connect()
    w.configure(101, ChannelSetup(force_range="3V"))
    w.configure(102, ChannelSetup(force_range="3V", measure="current", current_range="1uA"))
    rp = read_pattern("r", 0.2)
    traces = None
    with pytest.raises(InstrumentError, match="beyond its 1uA range") as e:
        traces = w.run({101: rp.renamed("r"), 102: rp.at_level("b").with_events(*rp.events)})
    assert traces is None and e.value.code == wc.ERROR
    # with the right range the same read is fine
    w.configure(102, ChannelSetup(force_range="3V", measure="current", current_range="100uA"))
    traces = w.run({101: rp.renamed("r"), 102: rp.at_level("b").with_events(*rp.events)})
    g = -traces[102].values[0] / 0.2 * 1e6
    assert g == pytest.approx(bench.chip.true_conductance_us(0, 0)[0], rel=0.01)
    assert traces[102].unit == "A"


def test_open_session_refused_while_the_mainframe_error_queue_holds_an_error(sim):
    lib, bench = sim
    mainframe = bench.instrument("b1500")
    mainframe.handle("*CLS")  # not a FLEX command: queues error 100
    assert lib.WGFMU_openSession(ADDR) == wc.FW_ERROR
    assert "error queue is not empty (+100" in _error(lib)
    assert mainframe.handle("ERRX?") == '+100,"Undefined GPIB command."'
    assert lib.WGFMU_openSession(ADDR) == 0


def test_dc_mode_and_pg_mode_rules(sim):
    lib, bench = sim
    _open(lib)
    assert lib.WGFMU_setOperationMode(101, wc.OPERATION_MODE_DC) == 0
    assert lib.WGFMU_setOperationMode(102, wc.OPERATION_MODE_DC) == 0
    assert lib.WGFMU_setMeasureMode(102, wc.MEASURE_MODE_CURRENT) == 0
    assert lib.WGFMU_dcforceVoltage(101, 0.2) == wc.CONTEXT_ERROR  # not connected
    assert _error(lib) == "WGFMU_dcforceVoltage: channel 101 is not connected (WGFMU_connect)"
    for ch in (101, 102):
        assert lib.WGFMU_connect(ch) == 0
    assert lib.WGFMU_dcforceVoltage(101, 0.2) == 0
    assert lib.WGFMU_dcforceVoltage(102, 0.0) == 0
    value = c_double(0)
    assert lib.WGFMU_dcmeasureAveragedValue(102, 100, 20, byref(value)) == 0
    assert -value.value / 0.2 * 1e6 == pytest.approx(
        bench.chip.true_conductance_us(0, 0)[0], rel=0.01
    )
    assert lib.WGFMU_setOperationMode(102, wc.OPERATION_MODE_PG) == 0
    assert lib.WGFMU_createPattern(b"z", 0.0) == 0 and lib.WGFMU_addVector(b"z", 1e-6, 0.0) == 0
    assert lib.WGFMU_addSequence(102, b"z", 1.0) == 0
    assert lib.WGFMU_execute() == wc.CONTEXT_ERROR
    assert "PG mode measures voltage only" in _error(lib)
    assert lib.WGFMU_initialize() == 0  # back to 0 V, disconnected
    assert not bench.instrument("b1500").wgfmu[101].connected


def test_driver_run_returns_arrays_on_the_simulator(sim):
    lib, bench = sim
    w = WGFMU(lib, ADDR.decode())
    w.connect()
    assert w.channel_ids == [101, 102]
    w.configure(101, ChannelSetup(measure="voltage"))
    w.configure(102, ChannelSetup(measure="current", current_range="100uA"))
    dts = np.full(4, 5e-6)
    stair = Pattern("stair", 0.0, dts, np.array([0.05, 0.1, 0.15, 0.0]))
    ev = MeasureEvent("s", 1e-6, 3, 5e-6, 2e-6, raw=True)
    traces = w.run({101: stair.with_events(ev), 102: stair.at_level("g").with_events(ev)})
    v, i = traces[101].values, traces[102].values
    assert v.shape == i.shape == (3,)
    # samples ramp with the staircase (the pattern ramps linearly within each vector)
    assert np.all(np.diff(v) > 0)
    g = -i / v * 1e6
    np.testing.assert_allclose(g, bench.chip.true_conductance_us(0, 0)[0], rtol=0.03)
    assert w.status() == ("COMPLETED", pytest.approx(20e-6), pytest.approx(20e-6))
    w.close()
    assert lib.mainframe is None


def test_setup_export_log_and_force_values_through_the_driver(sim, tmp_path):
    lib, _ = sim
    w = WGFMU(lib, ADDR.decode())
    w.connect()
    w.open_log(tmp_path / "wgfmu.log")
    w.configure(101, ChannelSetup())
    w.clear()
    w.create_pattern(read_pattern("r", 0.2))
    w.add_sequence(101, "r", 2)
    assert w.interpolated_force_value(101, 5e-6) == pytest.approx(0.2)
    assert w.interpolated_force_value(101, 10.2e-6 + 5e-6) == pytest.approx(0.2)  # 2nd loop
    w.export_ascii(tmp_path / "setup")
    text = (tmp_path / "setup.csv").read_text()
    assert "r,1e-07,0.2" in text and "101,r,2" in text and "r,read,1.1e-06,1" in text
    with pytest.raises(InstrumentError, match="PATTERN_NOT_FOUND") as e:
        w.add_sequence(101, "nope")
    assert e.value.command == "WGFMU_addSequence(101, b'nope', 1.0)"
    w.close_log()
    assert "pattern 'nope' not found" in (tmp_path / "wgfmu.log").read_text()
    w.update()
    w.abort()
