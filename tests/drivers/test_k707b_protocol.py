"""Keithley 707B driver, byte for byte (exact-string fake transport, no simulator)."""

from __future__ import annotations

import pytest

from memprog.core.errors import ConfigError, InstrumentError, ProtocolError
from memprog.drivers import tsp_commands as tsp
from memprog.drivers.keithley707b import Keithley707B
from tests.protocol_fake import ExpectedProtocol

IDN = "Keithley Instruments Inc., Model 707B, 04123456, 1.5.0"
ZERO = "0.00000e+00"
CONNECT = [
    ("*IDN?", IDN),
    ("errorqueue.clear()", None),
    ("channel.connectrule = channel.BREAK_BEFORE_MAKE", None),
    ("print(errorqueue.count)", ZERO),
    ('channel.open("allslots")', None),
    ("print(errorqueue.count)", ZERO),
]


def test_connect_sets_break_before_make_and_opens_everything():
    t = ExpectedProtocol(CONNECT)
    m = Keithley707B(t)
    assert t.pos == 0  # no I/O before connect()
    with t:
        assert m.connect() == IDN
    assert m.closed_cache == set()


def test_close_open_exclusive_with_lists_and_ranges():
    pairs = CONNECT + [
        ('channel.close("1A01:1A03,2B05")', None),
        ("print(errorqueue.count)", ZERO),
        ('channel.open("1A02")', None),
        ("print(errorqueue.count)", ZERO),
        ('channel.exclusiveclose("1E01,2F02")', None),
        ("print(errorqueue.count)", ZERO),
        ('channel.exclusiveslotclose("2G03")', None),
        ("print(errorqueue.count)", ZERO),
        ('print(channel.getclose("allslots"))', "1E01;2G03"),
        ('channel.open("allslots")', None),
        ("print(errorqueue.count)", ZERO),
        ('print(channel.getclose("allslots"))', "nil"),
    ]
    with ExpectedProtocol(pairs) as t:
        m = Keithley707B(t)
        m.connect()
        m.close(["1A02", "1A01", "1A03", "2B05"])
        assert m.closed_cache == {"1A01", "1A02", "1A03", "2B05"}
        m.open("1A02")
        m.exclusive_close("2F02,1E01")
        assert m.closed_cache == {"1E01", "2F02"}
        m.exclusive_slot_close("2G03")
        assert m.closed_cache == {"1E01", "2G03"}
        assert m.closed_channels() == {"1E01", "2G03"}
        m.open("allslots")
        assert m.closed_channels() == set()


def test_error_queue_is_drained_into_one_instrument_error():
    err1 = (
        "-2.86000e+02\tTSP Runtime error at line 1: Parameter 1, invalid channel 1A13"
        "\t2.00000e+00\t0.00000e+00"
    )
    err2 = "-2.85000e+02\tTSP Syntax error at line 1: unexpected symbol\t2.00000e+00\t0.00000e+00"
    pairs = CONNECT + [
        ('channel.close("1A01")', None),
        ("print(errorqueue.count)", "2.00000e+00"),
        ("print(errorqueue.next())", err1),
        ("print(errorqueue.next())", err2),
    ]
    with ExpectedProtocol(pairs) as t:
        m = Keithley707B(t)
        m.connect()
        with pytest.raises(InstrumentError) as err:
            m.close("1A01")
    assert err.value.code == -286 and "invalid channel 1A13" in err.value.message
    assert "-285" in err.value.message and err.value.command == 'channel.close("1A01")'
    assert m.closed_cache is None  # after an error the driver no longer trusts its record


def test_connect_rule_round_trip_and_bad_identity():
    pairs = [
        ("channel.connectrule = channel.MAKE_BEFORE_BREAK", None),
        ("print(errorqueue.count)", ZERO),
        ("print(channel.connectrule)", "2.00000e+00"),
    ]
    with ExpectedProtocol(pairs) as t:
        m = Keithley707B(t)
        m.set_connect_rule("make_before_break")
        assert m.connect_rule() == "make_before_break"
    with ExpectedProtocol([("*IDN?", "Keithley Instruments Inc., Model 2636B, 1, 1")]) as t:
        with pytest.raises(ProtocolError, match="707B"):
            Keithley707B(t).connect()
    with pytest.raises(ConfigError, match="connect_rule"):
        tsp.set_connect_rule("sometimes")


def test_channel_names_lists_and_ranges():
    assert tsp.parse_channel("3H12") == (3, "H", 12)
    for bad in ("7A01", "1I01", "1A13", "1A1", "1a01", "A01"):
        with pytest.raises(ConfigError, match="channel"):
            tsp.parse_channel(bad)
    assert tsp.expand_channels("1A01:1A03") == ["1A01", "1A02", "1A03"]
    assert tsp.expand_channels("1B02:1A01") == ["1A01", "1A02", "1B01", "1B02"]  # rectangle
    assert tsp.expand_channels("1A01;1A01,2C05") == ["1A01", "2C05"]
    assert len(tsp.expand_channels("slot2")) == 96
    assert len(tsp.expand_channels("allslots", slots=[1, 2])) == 192
    with pytest.raises(ConfigError):
        tsp.expand_channels("1A01:2A02")
    assert (
        tsp.format_channel_list(["2A01", "1A03", "1A01", "1A02", "1B04", "1B06"])
        == "1A01:1A03,1B04,1B06,2A01"
    )
    assert tsp.parse_closed("nil") == set()
    assert tsp.parse_closed("1A01;1B02\n") == {"1A01", "1B02"}
    with pytest.raises(ProtocolError):
        tsp.parse_closed("1A01;garbage")
    assert tsp.parse_error('0.00000e+00\t"Queue Is Empty"\t0.00000e+00\t0.00000e+00') == (
        0,
        "Queue Is Empty",
    )


def test_safe_state_opens_again_after_a_garbled_reply():
    """The safe state survives a garbled reply to its own error check: the link is
    recovered and the (idempotent) open sent again, so no crosspoint is left closed."""

    class Recovering(ExpectedProtocol):
        recoveries = 0

        def recover(self) -> None:
            self.recoveries += 1

    t = Recovering(
        CONNECT
        + [
            ('channel.open("allslots")', None),
            ("print(errorqueue.count)", "d[KVT9P4rL7"),  # garbled on the wire
            ('channel.open("allslots")', None),
            ("print(errorqueue.count)", ZERO),
        ]
    )
    with t:
        m = Keithley707B(t)
        m.connect()
        m.safe_state()
    assert t.recoveries == 1 and m.closed_cache == set()


def test_safe_state_gives_up_after_its_attempts_and_says_why():
    t = ExpectedProtocol(CONNECT + [('channel.open("allslots")', None), ("print(errorqueue.count)", "?")] * 1)
    with t:
        m = Keithley707B(t)
        m.connect()
        with pytest.raises(ProtocolError, match="error count"):
            m.safe_state(attempts=1)
    assert m.closed_cache is None  # not known: the open was never confirmed
