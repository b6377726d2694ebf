"""WGFMU driver: the exact sequence of library calls, return-code checking, library loading.

Backend: a recording fake library object (no simulator, no DLL). It answers each call like
the C library (0, or a scripted error code; out-arguments written through the ctypes
pointers the driver passes) and records the calls with their arguments, so a pulse-and-read
is compared call by call with the expected sequence.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from ctypes import c_char_p

import numpy as np
import pytest

from memprog.core.bench_config import load_bench_config
from memprog.core.errors import ConfigError, InstrumentError, SafetyError
from memprog.core.limits import SafetyLimits
from memprog.core.probe_wiring import ProbeWiring
from memprog.drivers import wgfmu_constants as wc
from memprog.drivers.b1500_programmer import B1500WgfmuOptions, B1500WgfmuProgrammer
from memprog.drivers.wgfmu import WGFMU, ChannelSetup, load_wgfmu_library
from memprog.drivers.wgfmu_patterns import (
    MeasureEvent,
    Pattern,
    pulse_pattern,
    pulse_read_train,
    read_pattern,
)
from memprog.sim_instruments.sim_bench import SimBench
from memprog.sim_instruments.wgfmu_library import SimWgfmuLibrary

ADDR = "GPIB0::17::INSTR"
LIMITS = SafetyLimits(
    set_v_max=2.1, reset_v_max=2.5, width_s_min=1e-7, width_s_max=1e-6, read_v_max=0.25
)


def _set(ptr, value) -> None:
    """Write through whatever pointer-like object the driver passed (byref, array, POINTER)."""
    obj = getattr(ptr, "_obj", None)
    if obj is not None:
        obj.value = value
    else:
        ptr[0] = value


class RecordingLibrary:
    """A stand-in for wgfmu.dll that records calls and writes out-arguments like C."""

    def __init__(self, channel_ids=(101, 102), values=None, fail=None) -> None:
        self.calls: list[tuple] = []
        self.channel_ids = list(channel_ids)
        self.values = values or {}  # channel -> list of measured values
        self.fail = fail or {}  # function -> (code, text)
        self.errors: list[str] = []

    def __getattr__(self, name: str):
        if not name.startswith("WGFMU_"):
            raise AttributeError(name)

        def fn(*args):
            rec = []
            for a in args:
                rec.append(a if isinstance(a, bytes | int | float) else "<ptr>")
            if name == "WGFMU_addVectors":
                n = args[3]
                rec[1] = np.ctypeslib.as_array(args[1], shape=(n,)).round(12).tolist()
                rec[2] = np.ctypeslib.as_array(args[2], shape=(n,)).round(12).tolist()
            if name not in ("WGFMU_getErrorSize", "WGFMU_getError", "WGFMU_getErrorSummarySize"):
                self.calls.append((name, *rec))
            if name in self.fail:
                code, text = self.fail[name]
                self.errors.append(f"{name}: {text}")
                return code
            return self._answer(name, args)

        return fn

    def _answer(self, name, args) -> int:
        if name == "WGFMU_getChannelIdSize":
            _set(args[0], len(self.channel_ids))
        elif name == "WGFMU_getChannelIds":
            for i, ch in enumerate(self.channel_ids):
                args[0][i] = ch
        elif name == "WGFMU_getMeasureValueSize":
            n = len(self.values.get(args[0], []))
            _set(args[1], n)
            _set(args[2], n)
        elif name == "WGFMU_getMeasureValues":
            vals = self.values[args[0]]
            t = np.ctypeslib.as_array(args[3], shape=(len(vals),))
            v = np.ctypeslib.as_array(args[4], shape=(len(vals),))
            t[:] = np.arange(len(vals)) * 1e-6
            v[:] = vals
        elif name in ("WGFMU_getErrorSize", "WGFMU_getErrorSummarySize"):
            _set(args[0], len(self.errors[0]) + 1 if self.errors else 0)
        elif name == "WGFMU_getError":
            text = self.errors.pop(0).encode() if self.errors else b""
            ctypes.memmove(args[0], text + b"\0", len(text) + 1)
        return 0

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


TOP = [("WGFMU_setOperationMode", 101, 2001), ("WGFMU_setForceVoltageRange", 101, 3001),
       ("WGFMU_setMeasureMode", 101, 4000), ("WGFMU_setMeasureVoltageRange", 101, 5001)]  # fmt: skip
BOTTOM = [("WGFMU_setOperationMode", 102, 2001), ("WGFMU_setForceVoltageRange", 102, 3001),
          ("WGFMU_setMeasureMode", 102, 4001), ("WGFMU_setMeasureCurrentRange", 102, 6004)]  # fmt: skip


def _programmer(lib: RecordingLibrary) -> B1500WgfmuProgrammer:
    w = WGFMU(lib, ADDR)
    w.connect()
    wiring = ProbeWiring(pads={101: "top0", 102: "bottom0"})
    p = B1500WgfmuProgrammer(_NoMainframe(), w, wiring, 1, 1, LIMITS, B1500WgfmuOptions())
    p.setup()
    return p


class _NoMainframe:
    """The B1500 side is not under test here (its FLEX is in test_b1500_protocol)."""

    def safe_state(self) -> None:
        pass


def test_pulse_and_read_call_sequence():
    lib = RecordingLibrary(values={101: [0.2], 102: [-2.0e-5]})
    p = _programmer(lib)
    p.pulse(0, 0, 1.0, 200e-9)
    g = p.read(0, 0)
    assert g == pytest.approx([100.0])  # G = -I/V = 2e-5 A / 0.2 V
    expected = [
        # connect(): session, timeout, reset, channel list
        ("WGFMU_openSession", b"GPIB0::17::INSTR"),
        ("WGFMU_setTimeout", 100.0),
        ("WGFMU_initialize",),
        ("WGFMU_getChannelIdSize", "<ptr>"),
        ("WGFMU_getChannelIds", "<ptr>", "<ptr>"),
        # setup(): Fast IV, 3 V force range; top measures V, bottom measures I (1 mA range)
        *TOP, ("WGFMU_connect", 101),
        *BOTTOM, ("WGFMU_connect", 102),
        # pulse(): 10 ns edges, 190 ns plateau = 200 ns FWHM; bottom at 0 V on the same grid
        ("WGFMU_clear",), *TOP, *BOTTOM,
        ("WGFMU_createPattern", b"w_top", 0.0),
        ("WGFMU_addVectors", b"w_top", [1e-8, 1.9e-7, 1e-8], [1.0, 1.0, 0.0], 3),
        ("WGFMU_addSequence", 101, b"w_top", 1.0),
        ("WGFMU_createPattern", b"w_bottom", 0.0),
        ("WGFMU_addVectors", b"w_bottom", [1e-8, 1.9e-7, 1e-8], [0.0, 0.0, 0.0], 3),
        ("WGFMU_addSequence", 102, b"w_bottom", 1.0),
        ("WGFMU_execute",),
        ("WGFMU_waitUntilCompleted",),
        # read(): 0.2 V for 10 us (100 ns ramps), one averaged event over the settled 9 us
        ("WGFMU_clear",), *TOP, *BOTTOM,
        ("WGFMU_createPattern", b"r_top", 0.0),
        ("WGFMU_addVectors", b"r_top", [1e-7, 1e-5, 1e-7], [0.2, 0.2, 0.0], 3),
        ("WGFMU_setMeasureEvent", b"r_top", b"read", 1.1e-6, 1, 9e-6, 9e-6, 12000),
        ("WGFMU_addSequence", 101, b"r_top", 1.0),
        ("WGFMU_createPattern", b"r_bottom", 0.0),
        ("WGFMU_addVectors", b"r_bottom", [1e-7, 1e-5, 1e-7], [0.0, 0.0, 0.0], 3),
        ("WGFMU_setMeasureEvent", b"r_bottom", b"read", 1.1e-6, 1, 9e-6, 9e-6, 12000),
        ("WGFMU_addSequence", 102, b"r_bottom", 1.0),
        ("WGFMU_execute",),
        ("WGFMU_waitUntilCompleted",),
        ("WGFMU_getMeasureValueSize", 101, "<ptr>", "<ptr>"),
        ("WGFMU_getMeasureValues", 101, 0, "<ptr>", "<ptr>", "<ptr>"),
        ("WGFMU_getMeasureValueSize", 102, "<ptr>", "<ptr>"),
        ("WGFMU_getMeasureValues", 102, 0, "<ptr>", "<ptr>", "<ptr>"),
    ]  # fmt: skip
    got = [tuple(round(x, 12) if isinstance(x, float) else x for x in c) for c in lib.calls]
    assert got == expected


def test_every_return_code_is_checked_and_carries_the_library_text():
    lib = RecordingLibrary(
        fail={"WGFMU_addVectors": (wc.PARAMETER_OUT_OF_RANGE_ERROR, "dTime out of range")}
    )
    p = _programmer(lib)
    with pytest.raises(InstrumentError) as e:
        p.pulse(0, 0, 1.0, 200e-9)
    err = e.value
    assert err.code == -1
    assert err.message == "WGFMU_PARAMETER_OUT_OF_RANGE_ERROR: WGFMU_addVectors: dTime out of range"
    assert err.command == "WGFMU_addVectors(b'w_top', <ptr>, <ptr>, 3)"
    # the failure left the channels safe: WGFMU_initialize after the failed call
    assert lib.names()[-1] == "WGFMU_initialize"
    assert not p.wgfmu.connected_channels


def test_a_failed_wait_aborts_the_sequencer_before_resetting_the_channels():
    lib = RecordingLibrary(fail={"WGFMU_waitUntilCompleted": (wc.COMMUNICATION_ERROR, "timed out")})
    p = _programmer(lib)
    with pytest.raises(InstrumentError, match="WGFMU_COMMUNICATION_ERROR"):
        p.pulse(0, 0, 1.0, 200e-9)
    names = lib.names()
    k = names.index("WGFMU_waitUntilCompleted")
    # abort (the train would otherwise keep playing), then 0 V and every relay open
    assert names[k + 1 : k + 3] == ["WGFMU_abort", "WGFMU_initialize"]
    assert names[-1] == "WGFMU_initialize"
    assert not p.wgfmu.connected_channels


@pytest.mark.parametrize(
    "function, code, name",
    [
        ("WGFMU_openSession", wc.COMMUNICATION_ERROR, "WGFMU_COMMUNICATION_ERROR"),
        ("WGFMU_openSession", wc.FW_ERROR, "WGFMU_FW_ERROR"),
        ("WGFMU_initialize", wc.CONTEXT_ERROR, "WGFMU_CONTEXT_ERROR"),
        ("WGFMU_getChannelIds", wc.CHANNEL_NOT_FOUND_ERROR, "WGFMU_CHANNEL_NOT_FOUND_ERROR"),
    ],
)
def test_connect_errors(function, code, name):
    lib = RecordingLibrary(fail={function: (code, "text from the library")})
    with pytest.raises(InstrumentError, match=f"{name}: {function}: text from the library") as e:
        WGFMU(lib, ADDR).connect()
    assert e.value.code == code


def test_result_not_ready_and_over_range_are_errors():
    lib = RecordingLibrary(values={101: [0.2], 102: [-2.0e-3]})  # 2 mA on the 1 mA range
    p = _programmer(lib)
    with pytest.raises(InstrumentError, match="beyond its 1mA range"):
        p.read(0, 0)
    w = WGFMU(RecordingLibrary(), ADDR)
    w.connect()
    w.configure(101, ChannelSetup(measure="current"))
    lib2 = w.lib
    lib2.values = {101: [1e-6, 2e-6]}
    real = lib2._answer

    def partial(name, args):  # the sequencer has measured only 1 of 2 values
        if name == "WGFMU_getMeasureValueSize":
            _set(args[1], 1)
            _set(args[2], 2)
            return 0
        return real(name, args)

    lib2._answer = partial
    with pytest.raises(InstrumentError, match="only 1 of 2") as e:
        w.measure_values(101)
    assert e.value.code == wc.RESULT_NOT_READY_ERROR


def test_limits_and_probes_are_checked_before_any_call():
    lib = RecordingLibrary()
    p = _programmer(lib)
    n = len(lib.calls)
    with pytest.raises(SafetyError):
        p.pulse(0, 0, 2.5, 200e-9)  # beyond set_v_max
    with pytest.raises(SafetyError):
        p.pulse(0, 0, 1.0, 50e-9)  # shorter than width_s_min
    with pytest.raises(SafetyError):
        p.read(0, 0, read_v=0.5)
    with pytest.raises(ConfigError, match="gate"):
        p.pulse(0, 0, 1.0, 200e-9, gate_v=1.0)
    assert len(lib.calls) == n


def test_patterns_are_pure_and_on_the_10ns_grid():
    pp = pulse_pattern("p", 1.5, 200e-9, 10e-9)
    np.testing.assert_allclose(pp.times_s, [0, 10e-9, 200e-9, 210e-9])
    np.testing.assert_allclose(pp.voltages_v, [0, 1.5, 1.5, 0])
    assert pp.duration_s == pytest.approx(210e-9) and pp.peak_v == (0.0, 1.5)
    assert pp.level_at(5e-9) == pytest.approx(0.75)
    rp = read_pattern("r", 0.2, 10e-6, 100e-9, 1e-6)
    (ev,) = rp.events
    assert (ev.time_s, ev.averaging_s, ev.values) == (pytest.approx(1.1e-6), pytest.approx(9e-6), 1)
    with pytest.raises(ConfigError, match="multiple of 10 ns"):
        pulse_pattern("p", 1.0, 205e-9)
    with pytest.raises(ConfigError, match="duration"):
        Pattern(
            "x", 0, np.array([1e-6]), np.array([0.0]), (MeasureEvent("e", 0.5e-6, 1, 1e-6, 1e-6),)
        )
    with pytest.raises(ConfigError, match="interval"):
        MeasureEvent("e", 0.0, 3, 10e-9, 20e-9)
    tr = pulse_read_train("t", [1.0, 1.1, -1.2], 200e-9, 0.2)
    assert [e.name for e in tr.events] == ["read0", "read1", "read2"]
    assert tr.peak_v == (-1.2, 1.1)
    # each event sits on its read plateau, after its pulse
    for k, e in enumerate(tr.events):
        assert tr.level_at(e.time_s) == pytest.approx(0.2)
        assert tr.level_at(e.time_s + e.averaging_s) == pytest.approx(0.2)
        assert e.time_s > k * tr.duration_s / 3


def test_force_range_must_cover_the_patterns_and_the_limits():
    lib = RecordingLibrary()
    w = WGFMU(lib, ADDR)
    w.connect()
    w.configure(101, ChannelSetup(force_range="10V_positive"))
    with pytest.raises(ConfigError, match="force range"):
        w.run({101: pulse_pattern("neg", -1.0, 200e-9)})
    with pytest.raises(ConfigError, match="force_range"):
        B1500WgfmuProgrammer(
            _NoMainframe(), w, ProbeWiring(pads={101: "top0", 102: "bottom0"}), 1, 1,
            SafetyLimits(set_v_max=4.0, reset_v_max=2.0), B1500WgfmuOptions(force_range="3V"),
        )  # fmt: skip


def test_library_is_loaded_only_from_a_real_path(tmp_path):
    with pytest.raises(ConfigError, match="wgfmu.dll"):
        load_wgfmu_library(tmp_path / "wgfmu.dll")
    with pytest.raises(ConfigError, match="library_path"):
        WGFMU(None, ADDR)
    w = WGFMU(None, ADDR, library_path=tmp_path / "missing.dll")  # no I/O, nothing loaded yet
    assert w.lib is None
    with pytest.raises(ConfigError):
        w.connect()


def test_a_shared_library_without_the_wgfmu_functions_is_refused():
    libc = ctypes.util.find_library("c")
    if libc is None:
        pytest.skip("no C library to load")
    with pytest.raises(ConfigError, match="missing"):
        load_wgfmu_library(libc)


def test_simulated_library_exposes_every_bound_function_with_the_same_prototype():
    cfg, _ = load_bench_config("sim_b1500_wgfmu")
    sim = SimWgfmuLibrary(SimBench(cfg))
    for name, argtypes in wc.PROTOTYPES.items():
        fn = getattr(sim, name)
        assert len(fn.argtypes) == len(argtypes), name
        for a, b in zip(fn.argtypes, argtypes, strict=True):
            # char* out-buffers are POINTER(c_char) in the simulator, c_char_p in the binding
            same = a is b or (b is c_char_p and a is ctypes.POINTER(ctypes.c_char))
            assert same, (name, a, b)
        assert fn.restype is ctypes.c_int
