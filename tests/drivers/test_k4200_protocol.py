"""Keithley 4200A-SCS driver, byte for byte (exact-string fake transport, no simulator)."""

from __future__ import annotations

import numpy as np
import pytest

from memprog.core.errors import ConfigError, InstrumentError, ProtocolError, SafetyError
from memprog.core.limits import SafetyLimits
from memprog.drivers import kxci_commands as kx
from memprog.drivers.keithley4200 import Keithley4200, Keithley4200Settings
from memprog.drivers.kxci_commands import KxciStatusError
from tests.protocol_fake import ExpectedProtocol

OPT = ("*OPT?", "SMU1,SMU2,SMU3,SMU4,PMU1,PMU2")
CONNECT = [OPT, ("BC", "ACK"), ("US", "ACK")]
LIMITS = SafetyLimits(
    set_v_max=2.1, reset_v_max=2.5, width_s_min=1e-7, width_s_max=1e-6, current_compliance_a=1e-3
)


def _driver(t: ExpectedProtocol, limits: SafetyLimits | None = LIMITS) -> Keithley4200:
    k = Keithley4200(t, limits=limits, settings=Keithley4200Settings(pmu_poll_interval_s=1e-4))
    k.connect()
    return k


def test_connect_discovers_smus_and_pmu_channels():
    with ExpectedProtocol(CONNECT) as t:
        k = _driver(t)
    assert k.cards == ["SMU1", "SMU2", "SMU3", "SMU4", "PMU1", "PMU2"]
    assert k.smus == [1, 2, 3, 4]
    assert k.pmu_channels == [1, 2, 3, 4]


def test_preamp_smu_counts_and_no_io_in_init():
    t = ExpectedProtocol([("*OPT?", "SMU1,SMUPA2,CVU1"), ("BC", "ACK"), ("US", "ACK")])
    k = Keithley4200(t)
    assert t.pos == 0  # nothing sent before connect()
    with t:
        k.connect()
    assert k.smus == [1, 2] and k.pmu_channels == []


def test_user_mode_source_and_spot_readings():
    pairs = CONNECT + [
        ("DV1,0,0.2,0.001", "ACK"),
        ("DV2,0,0,0.001", "ACK"),
        ("TI2", "NBI-4.0000E-05"),
        ("TV1", "NAV+2.0000E-01"),
        ("DI3,5,1e-06,2", "ACK"),
        ("TV3", "NCV+1.2500E+00"),
        ("DV1", "ACK"),
    ]
    with ExpectedProtocol(pairs) as t:
        k = _driver(t)
        k.source_voltage(1, 0.2, compliance_a=1e-3)
        k.source_voltage(2, 0.0, compliance_a=1e-3)
        assert k.current(2) == pytest.approx(-4.0e-5)
        assert k.voltage(1) == pytest.approx(0.2)
        k.source_current(3, 1e-6, compliance_v=2.0, range_code=5)
        assert k.voltage(3) == pytest.approx(1.25)
        k.output_off(1)


@pytest.mark.parametrize(
    "reply, flag",
    [
        ("CBI+1.0000E-03", "compliance"),
        ("TBI+3.0000E-05", "other_compliance"),
        ("VBI+1.0000E+22", "overflow"),
        ("XBI+2.0000E-05", "oscillation"),
    ],
)
def test_compliance_and_overflow_are_never_plain_numbers(reply, flag):
    with ExpectedProtocol(CONNECT + [("TI2", reply), ("TI2", reply)]) as t:
        k = _driver(t)
        r = k.measure_current(2)
        assert (r.flag, r.valid, r.channel, r.mode) == (flag, False, "SMU2", "I")
        with pytest.raises(KxciStatusError) as err:
            k.current(2)
    assert err.value.reading.status == reply[0]
    assert err.value.code == kx.STATUS_CODE[reply[0]]
    assert flag in str(err.value) and "TI2" in str(err.value)


def test_interval_too_short_keeps_value_with_flag():
    with ExpectedProtocol(CONNECT + [("TI1", "LAI+2.5000E-06")]) as t:
        k = _driver(t)
        r = k.measure_current(1)
    assert r.flag == "interval_too_short" and r.valid and r.checked() == pytest.approx(2.5e-6)


def test_error_reply_becomes_instrument_error():
    with ExpectedProtocol(CONNECT + [("DV1,0,0.2,0.001", "ERROR -102: DV: range 0-5")]) as t:
        k = _driver(t)
        with pytest.raises(InstrumentError) as err:
            k.source_voltage(1, 0.2, 1e-3)
    assert err.value.code == -102 and "range 0-5" in err.value.message
    assert err.value.command == "DV1,0,0.2,0.001"


def test_unexpected_reply_is_a_protocol_error():
    with ExpectedProtocol(CONNECT + [("DV1,0,0.2,0.001", "NAK")]) as t:
        k = _driver(t)
        with pytest.raises(ProtocolError, match="'ACK'"):
            k.source_voltage(1, 0.2, 1e-3)
    with ExpectedProtocol(CONNECT + [("TI1", "garbage")]) as t:
        k = _driver(t)
        with pytest.raises(ProtocolError, match="NAI"):
            k.measure_current(1)


def test_limits_refuse_before_sending():
    with ExpectedProtocol(CONNECT) as t:  # nothing after connect may be sent
        k = _driver(t)
        with pytest.raises(SafetyError, match="voltage_v=2.2"):
            k.source_voltage(1, 2.2, 1e-3)
        with pytest.raises(SafetyError, match="compliance_a"):
            k.source_voltage(1, 0.2, 5e-3)
        with pytest.raises(SafetyError, match="amplitude_v=-2.6"):
            k.pmu_pulse_train(1, 0.0, -2.6)
        with pytest.raises(SafetyError, match="width_s"):
            k.pmu_pulse_times(1, 1e-5, 5e-6, 2e-8, 2e-8)
        with pytest.raises(SafetyError, match="compliance_v"):
            k.source_current(1, 1e-6, compliance_v=3.0)
        with pytest.raises(ConfigError, match="smu"):
            k.source_voltage(7, 0.1, 1e-3)
        with pytest.raises(ConfigError, match="pmu channel"):
            k.pmu_output(5, True)


def test_rounding_in_the_text_cannot_slip_past_a_limit():
    # 2.10000004 V would be sent as "2.1": checked on the sent value, so allowed
    with ExpectedProtocol(CONNECT + [(":PMU:PULSE:TRAIN 1,0,2.1", "ACK")]) as t:
        k = _driver(t)
        k.pmu_pulse_train(1, 0.0, 2.10000004)
        with pytest.raises(SafetyError):
            k.pmu_pulse_train(1, 0.0, 2.1000005)


def test_pmu_write_pulse_sequence_polls_until_idle():
    pairs = CONNECT + [
        (":PMU:INIT 0", "ACK"),
        (":PMU:RPM:CONFIGURE PMU1-1,0", "ACK"),
        (":PMU:MEASURE:MODE 1", "ACK"),
        (":PMU:PULSE:TRAIN 1,0,1.5", "ACK"),
        (":PMU:PULSE:TIMES 1,4.8e-07,2e-07,2e-08,2e-08", "ACK"),
        (":PMU:PULSE:BURST:COUNT 1", "ACK"),
        (":PMU:OUTPUT:STATE 1,1", "ACK"),
        (":PMU:EXECUTE", "ACK"),
        (":PMU:TEST:STATUS?", "1"),
        (":PMU:TEST:STATUS?", "1"),
        (":PMU:TEST:STATUS?", "0"),
        (":PMU:OUTPUT:STATE 1,0", "ACK"),
    ]
    with ExpectedProtocol(pairs) as t:
        k = _driver(t)
        k.pmu_init(0)
        k.pmu_configure_rpm("PMU1-1", 0)
        k.pmu_measure_mode(1)
        k.pmu_pulse_train(1, 0.0, 1.5)
        k.pmu_pulse_times(1, 480e-9, 200e-9, 20e-9, 20e-9)
        k.pmu_burst_count(1)
        k.pmu_output(1, True)
        k.pmu_execute()
        k.pmu_output(1, False)


def test_pmu_timeout_raises():
    settings = Keithley4200Settings(pmu_poll_interval_s=1e-4, pmu_timeout_s=1e-9)
    with ExpectedProtocol([(":PMU:EXECUTE", "ACK"), (":PMU:TEST:STATUS?", "1")]) as t:
        k = Keithley4200(t, settings=settings)
        with pytest.raises(InstrumentError, match="still running"):
            k.pmu_execute()


def test_system_mode_sweep_keeps_statuses_and_returns_to_user_mode():
    pairs = CONNECT + [
        ("DE", "ACK"),
        ("CH1,'V1','I1',1,1", "ACK"),
        ("CH2,'V2','I2',1,3", "ACK"),
        ("SS", "ACK"),
        ("VR1,0,0.2,0.1,0.001", "ACK"),
        ("VC2,0,0.001", "ACK"),
        ("HT0", "ACK"),
        ("DT0", "ACK"),
        ("SM", "ACK"),
        ("DM1", "ACK"),
        ("XN 'V1',1,0,0.2", "ACK"),
        ("YA 'I1',1,-0.001,0.001", "ACK"),
        ("MD", "ACK"),
        ("ME1", "ACK"),
        ("SP", "16"),
        ("SP", "1"),
        ("DO 'V1'", "N+0.0000E+00,N+1.0000E-01,N+2.0000E-01"),
        ("DO 'I1'", "N+0.0000E+00,N+2.0000E-05,C+1.0000E-03"),
        ("US", "ACK"),
    ]
    with ExpectedProtocol(pairs) as t:
        k = Keithley4200(
            t, limits=LIMITS, settings=Keithley4200Settings(sweep_poll_interval_s=1e-4)
        )
        k.connect()
        res = k.sweep_voltage(1, 0.0, 0.2, 0.1, 1e-3, constant_v={2: 0.0})
    np.testing.assert_allclose(res.voltage_v, [0.0, 0.1, 0.2])
    assert res.current_a[1] == pytest.approx(2e-5) and np.isnan(res.current_a[2])
    assert res.status.tolist() == ["N", "N", "C"] and res.flags == {"compliance"}


def test_read_data_plain_number():
    with ExpectedProtocol([("RD 'I1',2", "+2.0000E-05")]) as t:
        assert Keithley4200(t).read_data("I1", 2) == pytest.approx(2e-5)


def test_user_library_execute_and_fetch():
    pairs = CONNECT + [
        ("UL", "ACK"),
        ("EX memprog_sim smu_read(2,0,3,,5)", "RETURN VALUE = 0"),
        ("GP 4 3", "PARAM VALUE = -1.0000E-06;-2.0000E-06;-3.0000E-06"),
        ("GN I 2", "-1.0000E-06;-2.0000E-06"),
        ("EX BeepLib beep(2000,0.5)", "RETURN VALUE = -1"),
        ("GP 9 1", "ERROR -980: parameter not accessible"),
        ("US", "ACK"),
        ("TI1", "NAI+1.0000E-09"),
    ]
    with ExpectedProtocol(pairs) as t:
        k = _driver(t)
        assert k.execute_module("memprog_sim", "smu_read", (2, 0.0, 3, None, 5)) == 0
        np.testing.assert_allclose(k.get_param(4, 3), [-1e-6, -2e-6, -3e-6])
        np.testing.assert_allclose(k.get_param_by_name("I", 2), [-1e-6, -2e-6])
        assert k.execute_module("BeepLib", "beep", (2000, 0.5)) == -1
        with pytest.raises(InstrumentError) as err:
            k.get_param(9, 1)
        assert err.value.code == -980
        assert k.current(1) == pytest.approx(1e-9)  # back to user mode first


def test_safe_state_zeroes_every_source_and_tries_them_all():
    pairs = CONNECT + [
        ("DV1,0,0,0.001", "ACK"),
        ("DV2,0,0,0.001", "ERROR -102: stuck"),
        ("DV3,0,0,0.001", "ACK"),
        ("DV4,0,0,0.001", "ACK"),
        (":PMU:OUTPUT:STATE 1,0", "ACK"),
        (":PMU:OUTPUT:STATE 2,0", "ACK"),
        (":PMU:OUTPUT:STATE 3,0", "ACK"),
        (":PMU:OUTPUT:STATE 4,0", "ACK"),
    ]
    with ExpectedProtocol(pairs) as t:
        k = _driver(t)
        with pytest.raises(InstrumentError, match="stuck"):
            k.safe_state()


def test_safe_state_is_sent_again_after_a_garbled_ack_or_a_busy_refusal():
    """A faulted reply must not leave a source driven: the link is recovered and the whole
    (idempotent) safe state sent again, user mode first since it is no longer known."""

    class Recovering(ExpectedProtocol):
        recoveries = 0

        def recover(self) -> None:
            self.recoveries += 1

    once = [(f"DV{ch},0,0,0.001", "ACK") for ch in (1, 2, 3, 4)] + [
        (f":PMU:OUTPUT:STATE {ch},0", "ACK") for ch in (1, 2, 3, 4)
    ]
    first = list(once)
    first[1] = ("DV2,0,0,0.001", "A#K")  # garbled on the wire
    first[5] = (":PMU:OUTPUT:STATE 2,0", "ERROR -990: instrument busy, command not executed")
    t = Recovering(CONNECT + first + [("US", "ACK")] + once)
    with t:
        k = _driver(t)
        k.safe_state()
    assert t.recoveries == 1


def test_command_helpers():
    assert (
        kx.num(0.2) == "0.2"
        and kx.num(1e-3) == "0.001"
        and kx.num(1e-6) == "1e-06"
        and kx.num(-0.0) == "0"
    )
    assert kx.num(2 / 3) == "0.6666667"
    assert kx.parse_reading("NGV-1.5000E+00") == kx.Reading("N", -1.5, "SMU5", "V")
    assert kx.parse_reading("NEV+1.0E-01").channel == "VM1"
    assert kx.parse_options(" SMU1,SMU2 ,PMU1") == ["SMU1", "SMU2", "PMU1"]
    assert kx.pmus_from_options(["SMU1", "PMU1", "PMU2"]) == [1, 2]
    r = kx.parse_data_output("N+1.0000E-06,T+2.0000E-06")
    assert [(x.status, x.value) for x in r] == [("N", 1e-6), ("T", 2e-6)]
    assert kx.parse_return_value("RETURN VALUE = -3", "EX") == -3
    assert kx.ex("lib", "mod", (1, 2.5, None, "VF")) == "EX lib mod(1,2.5,,VF)"
    with pytest.raises(ConfigError):
        kx.ex("lib", "mod", ("a,b",))
    with pytest.raises(ConfigError, match="period_s"):
        kx.pmu_pulse_times(1, 2e-7, 2e-7, 2e-8, 2e-8)
    with pytest.raises(ConfigError, match="range_code"):
        kx.dv(1, 9, 0.1, 1e-3)
    with pytest.raises(ProtocolError):
        kx.parse_reading("NQI+1.0E-06")  # Q is no channel letter
    with pytest.raises(ConfigError):
        kx.num(float("nan"))
