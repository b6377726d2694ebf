"""On-chip controller driver, tested to the byte against scripted traffic (no simulator).

Backend: tests/protocol_fake.ExpectedProtocol. Every message the driver sends is listed;
any extra, missing or different message fails the test.
"""

from __future__ import annotations

import numpy as np
import pytest

from memprog.core.errors import ConfigError, InstrumentError, ProtocolError, SafetyError
from memprog.core.limits import SafetyLimits
from memprog.drivers import onchip_commands as cmd
from memprog.drivers.onchip import OnChipController
from memprog.drivers.onchip_commands import ProgramPulses, ProgramResult
from memprog.drivers.transport import make_block
from tests.protocol_fake import ExpectedProtocol

LIMITS = SafetyLimits(
    set_v_max=2.5, reset_v_max=2.5, width_s_max=1e-4, read_v_max=0.3, gate_v_max=2.5
)
CONNECT = [
    ("*IDN?", "MEMPROG,ONCHIP-256X256,SN0042,1.0.0"),
    ("*CLS", None),
    ("SYST:PROT?", "1.1"),
    ("ARR:SIZE?", "256,256"),
    ("ARR:TYPE?", "1T1R"),
    ("ARR:TECH?", "hfo2_1t1r"),
    ("ARR:COND?", "3E-05,0.0048"),
    ("READ:VOLT?", "0.2"),
]
NO_ERROR = ("SYST:ERR?", '0,"No error"')


def connected(t: ExpectedProtocol, limits: SafetyLimits = LIMITS) -> OnChipController:
    ctrl = OnChipController(t, limits, name="ctrl")
    ctrl.connect()
    return ctrl


def test_connect_learns_the_array_and_sends_nothing_before():
    with ExpectedProtocol(CONNECT) as t:
        ctrl = OnChipController(t, LIMITS)
        assert t.pos == 0  # no I/O in __init__
        ident = ctrl.connect()
    assert (ident.manufacturer, ident.model, ident.serial, ident.firmware) == (
        "MEMPROG",
        "ONCHIP-256X256",
        "SN0042",
        "1.0.0",
    )
    assert (ctrl.rows, ctrl.cols, ctrl.cell_type, ctrl.technology) == (
        256,
        256,
        "1T1R",
        "hfo2_1t1r",
    )
    assert ctrl.g_range_us == pytest.approx((30.0, 4800.0))
    assert ctrl.read_v == 0.2


def test_connect_refuses_another_instrument():
    with ExpectedProtocol([("*IDN?", "KEITHLEY INSTRUMENTS,MODEL 707B,04089762,1.0")]) as t:
        with pytest.raises(ConfigError, match="not an on-chip array controller"):
            OnChipController(t, LIMITS).connect()


def test_one_cell_pulse_is_one_acknowledged_message():
    with ExpectedProtocol(
        CONNECT
        + [
            ("PULS:ROW? 3,1E-07,17,1.05,1.2", "1"),
            ("PULS:ROW? 3,2E-07,17,-1.3,NAN", "1"),
            ("PULS:ROW? 0,1E-07,255,0.95,NAN", "1"),
        ]
    ) as t:
        ctrl = connected(t)
        ctrl.pulse_cells(3, 17, 1.05, 100e-9, gate_v=1.2)
        ctrl.pulse_cells(np.array([3]), np.array([17]), np.array([-1.3]), 200e-9)  # gate fully on
        ctrl.pulse_cells([0], [255], 0.95, 1e-7)


def test_small_row_batch_is_one_text_message_with_per_cell_values():
    with ExpectedProtocol(
        CONNECT + [("PULS:ROW? 2,1E-07,5,1.1,0.8,9,1.2,1.5,40,-1.4,2", "3")]
    ) as t:
        ctrl = connected(t)
        n = ctrl.pulse_cells([2, 2, 2], [5, 9, 40], [1.1, 1.2, -1.4], 1e-7, gate_v=[0.8, 1.5, 2.0])
    assert n == 3


def test_multi_row_batch_is_one_block_grouped_by_row():
    rows = np.array([7, 1, 7, 1, 4])
    cols = np.array([0, 3, 9, 4, 255])
    amp = np.array([1.1, 1.2, -1.3, 1.4, 1.5])
    header = "PULS:ROWS 5E-07,"
    with ExpectedProtocol(CONNECT + [(header, None), NO_ERROR]) as t:
        ctrl = connected(t)
        ctrl.pulse_cells(rows, cols, amp, 500e-9)
    sent = t.binary_writes[0].reshape(-1, 4)
    assert sent.dtype == np.dtype("<f4")
    expected = np.array(
        [
            [1, 3, 1.2, np.nan],
            [1, 4, 1.4, np.nan],
            [4, 255, 1.5, np.nan],
            [7, 0, 1.1, np.nan],
            [7, 9, -1.3, np.nan],
        ],
        dtype="<f4",
    )
    np.testing.assert_array_equal(sent, expected)


def test_a_full_row_goes_binary_and_a_repeated_cell_gets_a_second_message():
    with ExpectedProtocol(
        CONNECT + [("PULS:ROWS 1E-07,", None), NO_ERROR, ("PULS:ROW? 5,1E-07,2,1.2,1.4", "1")]
    ) as t:
        ctrl = connected(t)
        cols = np.r_[np.arange(256), 2]
        ctrl.pulse_cells(np.full(257, 5), cols, 1.2, 1e-7, gate_v=1.4)
    first = t.binary_writes[0].reshape(-1, 4)
    assert first.shape == (256, 4) and np.all(first[:, 0] == 5)
    np.testing.assert_array_equal(np.sort(first[:, 1]), np.arange(256))


@pytest.mark.parametrize(
    "kwargs, parameter",
    [
        ({"amplitude_v": 2.6}, "amplitude_v"),
        ({"amplitude_v": -2.51}, "amplitude_v"),
        ({"amplitude_v": float("nan")}, "amplitude_v"),
        ({"width_s": 2e-3}, "width_s"),
        ({"width_s": 1e-9}, "width_s"),
        ({"gate_v": 2.6}, "gate_v"),
        ({"gate_v": -0.1}, "gate_v"),
    ],
)
def test_safety_limits_refuse_before_anything_is_sent(kwargs, parameter):
    args = {"amplitude_v": 1.0, "width_s": 1e-7, "gate_v": 1.0} | kwargs
    with ExpectedProtocol(CONNECT) as t:
        ctrl = connected(t)
        with pytest.raises(SafetyError, match=parameter):
            ctrl.pulse_cells(0, 0, **args)
        with pytest.raises(SafetyError, match=parameter):
            ctrl.pulse_cells([0, 1], [0, 0], **args)
        with pytest.raises(SafetyError, match=parameter):
            ctrl.pulse_cells(np.arange(200) // 100, np.arange(200) % 100, **args)


def test_read_and_vmm_voltages_are_checked_before_sending():
    with ExpectedProtocol(CONNECT) as t:
        ctrl = connected(t)
        with pytest.raises(SafetyError, match="read_v"):
            ctrl.read_cell(0, 0, read_v=0.35)
        with pytest.raises(SafetyError, match="read_v"):
            ctrl.read_array(read_v=0.0)
        with pytest.raises(SafetyError, match="input_v=0.4"):
            ctrl.vmm(np.r_[np.full(255, 0.1), 0.4])
        with pytest.raises(ConfigError, match="input_v shape"):
            ctrl.vmm(np.zeros(10))
        with pytest.raises(ConfigError, match=r"rows=256 .*\[0, 255\]"):
            ctrl.read_cell(256, 0)
        with pytest.raises(ConfigError, match="integer cell indices"):
            ctrl.read_cells([0.5, 1], [0, 0])


def test_reads_parse_text_and_blocks_into_microsiemens():
    row = np.linspace(30e-6, 4e-3, 256).astype("<f4")
    arr = np.full(256 * 256, 1e-4, dtype="<f4")
    arr[256 * 3 + 4] = 2e-4
    with ExpectedProtocol(
        CONNECT
        + [
            ("READ:CELL? 3,4", "1.2345678E-04"),
            ("READ:CELL? 3,4,0.25", "1.2000000E-04"),
            ("READ:ROW? 9", make_block(row)),
            ("READ:ARR?", make_block(arr)),
            ("READ:ARR? 0.1", make_block(arr)),
        ]
    ) as t:
        ctrl = connected(t)
        assert ctrl.read_cell(3, 4) == pytest.approx(123.45678)
        assert ctrl.read_cell(3, 4, read_v=0.25) == pytest.approx(120.0)
        np.testing.assert_allclose(ctrl.read_row(9), row * 1e6, rtol=1e-6)
        g = ctrl.read_array()
        assert (
            g.shape == (256, 256)
            and g[3, 4] == pytest.approx(200.0)
            and g[0, 0] == pytest.approx(100.0)
        )
        assert ctrl.read_array(read_v=0.1)[3, 4] == pytest.approx(200.0)


def test_read_cells_picks_the_cheapest_form():
    sel_reply = np.array([1e-4, 2e-4, 3e-4], dtype="<f4")
    row = np.arange(256, dtype="<f4") * 1e-6
    many_r, many_c = np.divmod(np.arange(40000), 256)
    with ExpectedProtocol(
        CONNECT
        + [
            ("READ:CELL? 7,8", "5.0000000E-05"),
            ("READ:ROW? 7", make_block(row)),
            ("READ:SEL ", None),
            ("READ:SEL?", make_block(sel_reply)),
            ("READ:ARR?", make_block(np.arange(65536, dtype="<f4") * 1e-9)),
        ]
    ) as t:
        ctrl = connected(t)
        assert ctrl.read_cells(np.array([7]), np.array([8])) == pytest.approx([50.0])
        np.testing.assert_allclose(ctrl.read_cells([7, 7], [10, 3]), [10.0, 3.0])
        np.testing.assert_allclose(
            ctrl.read_cells([9, 0, 9], [1, 2, 3]), [100.0, 200.0, 300.0], rtol=1e-6
        )
        g = ctrl.read_cells(many_r, many_c)
        np.testing.assert_allclose(g[[0, 39999]], [0.0, 39999 * 1e-3], rtol=1e-6)
    np.testing.assert_array_equal(t.binary_writes[0], np.array([9, 1, 0, 2, 9, 3], dtype="<u2"))
    assert t.binary_writes[0].dtype == np.dtype("<u2")


def test_vmm_sends_the_inputs_as_a_block_and_returns_currents():
    v = np.linspace(-0.2, 0.2, 256)
    currents = np.linspace(0, 1e-3, 256).astype("<f4")
    with ExpectedProtocol(CONNECT + [("VMM:INP ", None), ("VMM?", make_block(currents))]) as t:
        ctrl = connected(t)
        out = ctrl.vmm(v)
    np.testing.assert_allclose(out, currents, rtol=1e-7)
    np.testing.assert_array_equal(t.binary_writes[0], v.astype("<f4"))


def test_on_chip_programming_sequence():
    codes = (np.arange(65536) % 64).reshape(256, 256).astype(np.uint8)
    codes[0, 0] = cmd.SKIP_CODE
    with ExpectedProtocol(
        CONNECT
        + [
            ("PROG:PULS?", "1.45,1E-07,2,1E-06"),
            ("PROG:MAP ", None),
            NO_ERROR,
            ("PROG:STAR", None),
            NO_ERROR,
            ("*OPC?", "1"),
            ("PROG:RES?", "65535,58000,7535,60,900000,0.1005"),
            ("PROG:RANG 0.0001,0.004", None),
            ("PROG:PULS 1.4,1E-07,1.8,5E-07", None),
            ("PROG:MAP ", None),
            NO_ERROR,
            ("PROG:STAR", None),
            NO_ERROR,
            ("PROG:STAT?", "RUN,0.250"),
        ]
    ) as t:
        ctrl = connected(t)
        res = ctrl.program_levels(codes)
        assert res == ProgramResult(65535, 58000, 7535, 60, 900000, 0.1005)
        pulses = ProgramPulses(1.4, 100e-9, 1.8, 500e-9)
        assert ctrl.program_levels(codes, range_us=(100, 4000), pulses=pulses, wait=False) is None
        assert ctrl.program_status() == ("RUN", 0.25)
    np.testing.assert_array_equal(t.binary_writes[0], codes.ravel())
    assert t.binary_writes[0].dtype == np.uint8


def test_programming_refuses_engine_pulses_beyond_the_limits_and_bad_maps():
    good = np.zeros((256, 256), dtype=np.uint8)
    with ExpectedProtocol(CONNECT + [("PROG:PULS?", "2.8,1E-07,2,1E-06")]) as t:
        ctrl = connected(t)
        with pytest.raises(SafetyError, match="amplitude_v=2.8"):
            ctrl.program_levels(good)
        with pytest.raises(SafetyError, match="amplitude_v=-2.6"):
            ctrl.program_levels(good, pulses=ProgramPulses(1.4, 1e-7, 2.6, 1e-6))
        with pytest.raises(ConfigError, match="levels=64"):
            ctrl.program_levels(np.full((256, 256), 64))
        with pytest.raises(ConfigError, match="levels shape"):
            ctrl.program_levels(np.zeros((32, 32), dtype=int))
        with pytest.raises(ConfigError, match="range_us"):
            ctrl.program_levels(good, range_us=(4000, 100))


def test_levels_for_rounds_to_the_6_bit_grid_and_refuses_outside():
    lo, hi = 50.0, 4144.0
    g = cmd.level_conductances_us(lo, hi)
    assert g[1] - g[0] == pytest.approx(4094 / 63)
    codes = cmd.levels_for([50.0, 4144.0, g[10] + 20, np.nan], lo, hi)
    np.testing.assert_array_equal(codes, [0, 63, 10, cmd.SKIP_CODE])
    with pytest.raises(ConfigError, match="conductance_us=4200"):
        cmd.levels_for([4200.0], lo, hi)


def test_configured_pulses_are_checked_then_sent():
    with ExpectedProtocol(
        CONNECT
        + [
            ("PULS:SET:AMPL 1.3", None),
            ("PULS:RES:AMPL 1.6", None),
            ("PULS:WIDT 2E-07", None),
            ("PULS:GATE 1.1", None),
            NO_ERROR,
            ("PULS:SET 4,5", None),
            NO_ERROR,
            ("PULS:RES 4,5", None),
            NO_ERROR,
            ("PULS:WIDT?", "2E-07"),
        ]
    ) as t:
        ctrl = OnChipController(t, LIMITS)
        with pytest.raises(ConfigError, match="connect"):
            ctrl.pulse_cells(0, 0, 1.0, 1e-7)
        ctrl.connect()
        with pytest.raises(ConfigError, match="configure_pulses"):
            ctrl.pulse_set(4, 5)
        with pytest.raises(SafetyError, match="amplitude_v=2.7"):
            ctrl.configure_pulses(set_amplitude_v=2.7, width_s=2e-7)
        ctrl.configure_pulses(set_amplitude_v=1.3, reset_amplitude_v=-1.6, width_s=2e-7, gate_v=1.1)
        ctrl.pulse_set(4, 5)
        ctrl.pulse_reset(4, 5)
        assert ctrl._query_float("PULS:WIDT?", "a width") == pytest.approx(2e-7)


def test_a_failed_query_drains_the_queue_into_an_instrument_error():
    with ExpectedProtocol(
        CONNECT
        + [
            ("READ:SEL ", None),
            ("READ:SEL?", b'ERR 212,"No read selection; send READ:SEL <block> first"\n'),
            (
                "SYST:ERR?",
                '-161,"Invalid block data; 6 bytes is not a whole number of 4-byte records"',
            ),
            ("SYST:ERR?", '212,"No read selection; send READ:SEL <block> first"'),
            NO_ERROR,
        ]
    ) as t:
        ctrl = connected(t)
        with pytest.raises(InstrumentError) as err:
            ctrl.read_cells([1, 2], [0, 0])
    e = err.value
    assert e.code == -161 and "Invalid block data" in e.message and "then 212" in e.message
    assert e.command == "READ:SEL?" and e.instrument == "ctrl"


def test_a_refused_pulse_raises_the_controller_error_and_goes_safe():
    with ExpectedProtocol(
        CONNECT
        + [
            (
                "PULS:ROW? 0,1E-07,0,2.4,NAN",
                'ERR 202,"Amplitude above chip limit; 2.4 V, allowed |V| <= 2.2 V"',
            ),
            ("SYST:ERR?", '202,"Amplitude above chip limit; 2.4 V, allowed |V| <= 2.2 V"'),
            NO_ERROR,
            ("ABOR", None),
            ("PULS:ROWS 1E-07,", None),
            ("SYST:ERR?", '201,"Address out of range; row 9, allowed [0, 7]"'),
            NO_ERROR,
            ("ABOR", None),
        ]
    ) as t:
        ctrl = connected(t)
        with pytest.raises(InstrumentError, match=r"ctrl error 202: Amplitude above chip limit"):
            ctrl.pulse_cells(0, 0, 2.4, 1e-7)
        with pytest.raises(InstrumentError) as err:
            ctrl.pulse_cells(np.arange(40) // 20, np.arange(40) % 20, 1.0, 1e-7)
    assert err.value.code == 201 and err.value.command == "PULS:ROWS 1E-07,<block>"


def test_garbage_and_truncated_replies_are_protocol_errors_naming_the_expectation():
    truncated = make_block(np.zeros(256, dtype="<f4"))[:500]
    with ExpectedProtocol(
        CONNECT
        + [
            ("READ:CELL? 1,1", "12.5 uS"),
            NO_ERROR,
            ("READ:ROW? 1", truncated),
            NO_ERROR,
            ("READ:ROW? 2", make_block(np.zeros(10, dtype="<f4"))),
            ("READ:ARR?", b"hello\n"),
            NO_ERROR,
            ("PULS:ROW? 1,1E-07,1,1,NAN", "OK"),
            NO_ERROR,
            ("ABOR", None),
            ("SYST:ERR?", "what?"),
        ]
    ) as t:
        ctrl = connected(t)
        with pytest.raises(ProtocolError, match=r"expected a conductance in S, got '12.5 uS'"):
            ctrl.read_cell(1, 1)
        with pytest.raises(ProtocolError, match="expected a block of 256 float32 conductances"):
            ctrl.read_row(1)
        with pytest.raises(
            ProtocolError, match="a block of 256 float32 conductances, got 'a block of 10 values'"
        ):
            ctrl.read_row(2)
        with pytest.raises(ProtocolError, match="65536 float32 conductances, got b'hello"):
            ctrl.read_array()
        with pytest.raises(ProtocolError, match=r"count of cells pulsed \('1'\), got 'OK'"):
            ctrl.pulse_cells(1, 1, 1.0, 1e-7)
        with pytest.raises(ProtocolError, match="error-queue entry"):
            ctrl.next_error()
    with ExpectedProtocol([("*IDN?", "MEMPROG,ONCHIP")]) as t:
        with pytest.raises(ProtocolError, match="identity"):
            OnChipController(t, LIMITS).connect()
    with ExpectedProtocol(CONNECT[:3] + [("ARR:SIZE?", "256")]) as t:
        with pytest.raises(ProtocolError, match="array size"):
            OnChipController(t, LIMITS).connect()


def test_safe_state_reset_and_raw_access():
    with ExpectedProtocol(
        CONNECT
        + [
            ("ABOR", None),
            ("*RST", None),
            NO_ERROR,
            ("READ:VOLT?", "0.2"),
            ("READ:VOLT 0.15", None),
            NO_ERROR,
            ("SYST:PROT?", "1.1"),
            ("*STB?", "0"),
            ("ARR:LIM?", "2.97,2.5,0.5,1E-08,0.001"),
            ("SYST:ERR:COUN?", "0"),
        ]
    ) as t:
        ctrl = connected(t)
        ctrl.safe_state()
        ctrl.reset()
        ctrl.set_read_voltage(0.15)
        assert ctrl.read_v == 0.15
        assert ctrl.protocol_version() == "1.1"
        assert ctrl.query_raw("*STB?") == "0"
        lim = ctrl.controller_limits()
        assert (lim.amplitude_max_v, lim.gate_max_v, lim.read_max_v) == (2.97, 2.5, 0.5)
        assert ctrl.error_count() == 0
        for message in ("PULS:ROW? 0,1E-07,0,3,NAN", ":prog:star", "VMM?", "READ:VOLT 0.5"):
            with pytest.raises(ConfigError, match="typed, safety-checked"):
                ctrl.query_raw(message)


def test_connect_checks_the_protocol_version():
    """SYST:PROT? is read at connect; another major version is refused before any stimulus."""
    with ExpectedProtocol(CONNECT[:2] + [("SYST:PROT?", "2.0")]) as t:
        with pytest.raises(ConfigError, match=r"protocol version='2.0'.*1\.x"):
            OnChipController(t, LIMITS).connect()
    with ExpectedProtocol(CONNECT[:2] + [("SYST:PROT?", "v1")]) as t:
        with pytest.raises(ProtocolError, match="protocol version"):
            OnChipController(t, LIMITS).connect()
