"""Keysight B1500A FLEX driver, byte for byte (exact-string fake transport, no simulator)."""

from __future__ import annotations

import numpy as np
import pytest

from memprog.core.errors import ConfigError, InstrumentError, ProtocolError, SafetyError
from memprog.core.limits import SafetyLimits
from memprog.drivers import flex_commands as fx
from memprog.drivers.b1500 import B1500, B1500Settings
from memprog.drivers.flex_commands import ComplianceError, MeasurementStatusError, OverRangeError
from tests.protocol_fake import ExpectedProtocol

IDN = ("*IDN?", "Keysight Technologies,B1500A,MY12345678,A.06.03.2022.0816")
OK = ("ERRX?", '+0,"No Error."')
UNT = ("UNT? 0", "B1530A,0;B1517A,0;B1517A,0;B1520A,0;0,0;0,0;0,0;0,0;0,0;0,0")
CONNECT = [IDN, OK, UNT, ("FMT 1,0", None), OK]
LIMITS = SafetyLimits(set_v_max=2.1, reset_v_max=2.5, current_compliance_a=1e-3)


def _driver(t: ExpectedProtocol, **settings) -> B1500:
    b = B1500(t, limits=LIMITS, settings=B1500Settings(**settings))
    b.connect()
    return b


def test_no_io_before_connect_and_module_discovery():
    t = ExpectedProtocol(CONNECT)
    b = B1500(t, limits=LIMITS)
    assert t.pos == 0
    with t:
        b.connect()
    assert b.identity.startswith("Keysight Technologies,B1500A")
    assert [(m.slot, m.model, m.kind) for m in b.modules] == [
        (1, "B1530A", "WGFMU"),
        (2, "B1517A", "SMU"),
        (3, "B1517A", "SMU"),
        (4, "B1520A", "CMU"),
    ]
    assert b.smu_channels == [2, 3]
    assert b.cmu_channels == [4]
    assert b.wgfmu_channels == [101, 102]  # the B1530A in slot 1 reveals the library's ids


def test_connect_reads_out_stale_errors_and_optional_setup():
    pairs = [
        IDN,
        ("ERRX?", '+100,"Undefined GPIB command."'),
        OK,
        ("*RST", None),
        OK,
        UNT,
        ("FMT 1,0", None),
        OK,
        ("AV 10,0", None),
        OK,
        ("AZ 0", None),
        OK,
    ]
    with ExpectedProtocol(pairs) as t:
        b = _driver(t, reset_on_connect=True, averaging=10, autozero=False)
    assert b.stale_errors == [(100, "Undefined GPIB command.")]


def test_not_a_b1500_is_a_protocol_error():
    with ExpectedProtocol([("*IDN?", "KEITHLEY INSTRUMENTS,MODEL 4200A-SCS,1,1")]) as t:
        with pytest.raises(ProtocolError, match="B1500"):
            B1500(t).connect()


def test_source_and_spot_measurements_exact_strings():
    pairs = CONNECT + [
        ("CN 2,3", None),
        OK,
        ("DV 2,0,0.2,0.001", None),
        OK,
        ("DV 3,0,0", None),
        OK,
        ("TI 2", "NBI+015.974E-06"),
        ("TI 3,-17", "NCI-015.985E-06"),
        ("TV 2", "NBV+200.000E-03"),
        ("DI 3,0,1E-06,2", None),
        OK,
        ("TV 3", "NCV+012.345E-03"),
    ]
    with ExpectedProtocol(pairs) as t:
        b = _driver(t)
        b.enable_channels([2, 3])
        b.force_voltage(2, 0.2, compliance_a=1e-3)
        b.force_voltage(3, 0.0)
        assert b.current(2) == pytest.approx(15.974e-6)
        r = b.measure_current(3, range_code=-17)
        assert (r.status, r.channel, r.dtype, r.value) == ("N", 3, "I", pytest.approx(-15.985e-6))
        assert r.flags == frozenset() and r.ok
        assert b.voltage(2) == pytest.approx(0.2)
        b.force_current(3, 1e-6, compliance_v=2.0)
        assert b.voltage(3) == pytest.approx(12.345e-3)
    assert b.enabled == {2, 3}


def test_compliance_and_over_range_are_exceptions_not_numbers():
    pairs = CONNECT + [
        ("TI 2", "CBI+001.000E-06"),
        ("TI 3", "TCI-000.998E-06"),
        ("TI 2,-14", "VBI+199.999E+99"),
        ("TI 2", "XBI+001.000E-06"),
        ("TI 2", "CBI+001.000E-06"),
    ]
    with ExpectedProtocol(pairs) as t:
        b = _driver(t)
        with pytest.raises(ComplianceError, match="status 'C'") as e:
            b.current(2)
        assert e.value.reading.flags == {"compliance"}
        with pytest.raises(ComplianceError, match="another channel"):
            b.current(3)
        with pytest.raises(OverRangeError, match="over range") as e2:
            b.current(2, range_code=-14)
        assert e2.value.reading.value == pytest.approx(fx.DUMMY_VALUE)
        assert e2.value.command == "TI 2,-14"
        with pytest.raises(MeasurementStatusError, match="oscillation"):
            b.current(2)
        # the raw reading keeps the status for callers that want flags instead
        r = b.measure_current(2)
        assert r.compliance and not r.ok and r.flags == {"compliance"}


def test_errx_error_becomes_instrument_error_with_code_text_and_command():
    pairs = CONNECT + [
        ("DV 2,0,0.2,0.001", None),
        ("ERRX?", '+120,"Incorrect parameter value."'),
        ("ERRX?", '+124,"Incorrect range value for this channel."'),
        OK,
    ]
    with ExpectedProtocol(pairs) as t:
        b = _driver(t)
        with pytest.raises(InstrumentError) as e:
            b.force_voltage(2, 0.2, compliance_a=1e-3)
    err = e.value
    assert err.code == 120 and err.command == "DV 2,0,0.2,0.001"
    assert "Incorrect parameter value." in err.message and "124" in err.message


def test_safety_and_channel_checks_send_nothing():
    with ExpectedProtocol(CONNECT) as t:
        b = _driver(t)
        with pytest.raises(SafetyError, match="voltage_v"):
            b.force_voltage(2, 3.5)
        with pytest.raises(ConfigError, match="compliance_a"):
            b.force_voltage(2, 0.1, compliance_a=0.05)
        with pytest.raises(ConfigError, match="SMU channel"):
            b.force_voltage(101, 0.1)
        with pytest.raises(ConfigError, match="compliance_v"):
            b.force_current(2, 1e-6)


def test_measurement_mode_execute_and_settings():
    pairs = CONNECT + [
        ("MM 1,2,3", None),
        OK,
        ("XE", "NBI+015.974E-06,NCI-015.985E-06"),
        ("FMT 2,0", None),
        OK,
        ("TI 2", "+015.974E-06"),
        ("AV 4,0", None),
        OK,
        ("AZ 1", None),
        OK,
    ]
    with ExpectedProtocol(pairs) as t:
        b = _driver(t)
        b.set_measurement_mode(1, [2, 3])
        data = b.execute_measurement()
        np.testing.assert_allclose(fx.values_of(data), [15.974e-6, -15.985e-6])
        assert [d.channel for d in data] == [2, 3]
        b.set_format(2)
        r = b.measure_current(2)
        assert (r.status, r.channel, r.value) == ("", 0, pytest.approx(15.974e-6))
        b.set_averaging(4)
        b.set_autozero(True)


def test_safe_state_zeroes_and_opens_every_output():
    pairs = CONNECT + [("CN", None), OK, ("DZ", None), ("CL", None), OK]
    with ExpectedProtocol(pairs) as t:
        b = _driver(t)
        b.enable_channels()
        assert b.enabled == {2, 3}
        b.safe_state()
    assert b.enabled == set()


def test_builders_and_parsers():
    assert fx.dv(2, 0, 0.2, 1e-3) == "DV 2,0,0.2,0.001"
    assert fx.di(3, 11, -1e-9, 1.5) == "DI 3,11,-1E-09,1.5"
    assert fx.cn() == "CN" and fx.cn([2, 3]) == "CN 2,3" and fx.cl([4]) == "CL 4"
    assert fx.mm(2, [2, 3]) == "MM 2,2,3"
    assert fx.wv(2, 1, 0, 0, 0.5, 11, 1e-3) == "WV 2,1,0,0,0.5,11,0.001"
    assert fx.wt(0.01, 0.001) == "WT 0.01,0.001"
    assert fx.number(1e-6) == "1E-06" and fx.number(0.2) == "0.2" and fx.number(-0.0) == "0"
    assert fx.parse_errx('+0,"No Error."') == (0, "No Error.")
    assert fx.parse_errx('+305,"Excess current in HPSMU.; SLOT1"') == (
        305,
        "Excess current in HPSMU.; SLOT1",
    )
    r = fx.parse_reading("WBv+500.000E-03")
    assert (r.status, r.channel, r.dtype, r.value, r.ok) == ("W", 2, "v", 0.5, True)
    for bad in ("NAI", "hello", "NA1+1.0E-03", "NZZ+x"):
        with pytest.raises(ProtocolError):
            fx.parse_reading(bad)
    with pytest.raises(ProtocolError):
        fx.parse_errx("0")
    with pytest.raises(ProtocolError):
        fx.parse_unt("B1517A;0,0")
    with pytest.raises(ConfigError):
        fx.dv(0, 0, 0.1)
