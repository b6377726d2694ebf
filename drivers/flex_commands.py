"""Keysight FLEX: command strings and reply parsers of the B1500A (pure, no I/O).

FLEX is the B1500A's (and E5270B's) command language over GPIB, terminated by CR LF.
Each builder returns the exact text sent (``dv(2, 0, 0.2, 1e-3)`` -> ``"DV 2,0,0.2,0.001"``)
and each parser turns a reply into typed data, so the driver can be tested to the byte
(``tests/test_b1500_protocol.py``) and QCoDeS-style scripts can reuse the pieces.

Data format (``FMT 1``, ASCII with header, the default): every value is
``<status><channel><type><value>`` such as ``NAI+012.345E-06`` -- status letter (``N``
normal, ``C`` this channel at compliance, ``T`` another channel at compliance, ``V`` over
range, ``X`` oscillation, ``G``/``S`` search/quasi-pulse conditions, ``U``/``D`` MFCMU
conditions; for sweep source data ``W`` intermediate / ``E`` last step), channel letter
``A``-``J`` for channels 1-10, data type (``I`` current, ``V`` voltage, ``T`` time; lower
case ``i``/``v`` for source output data), then a 12-digit value. ``FMT 2`` drops the
3-letter header. An over-range value is the dummy ``199.999E+99``. Status codes are never
turned into silent numbers: :meth:`FlexReading.checked` raises
:class:`ComplianceError` / :class:`OverRangeError` / :class:`MeasurementStatusError`.

Error replies of ``ERRX?`` are ``+0,"No Error."`` or ``+<code>,"<text>"``; the codes are
those of the FLEX family (100 undefined command, 102 numeric syntax, 103 number of
parameters, 120 parameter value, 121 channel number, 122 number of channels, 123
compliance, 124 range, ...).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from memprog.core.errors import ConfigError, InstrumentError, ProtocolError

TERMINATION = "\r\n"
NO_ERROR_REPLY = '+0,"No Error."'
DUMMY_VALUE = 199.999e99

STATUS_MEANING = {
    "N": "no status error",
    "T": "another channel reached its compliance",
    "C": "this channel reached its compliance",
    "V": "measurement over range (value is the dummy 199.999E+99)",
    "X": "oscillation, or the source did not settle",
    "G": "search target not found / quasi-pulse detection time over",
    "S": "search stopped / quasi-pulse settling not detected",
    "U": "MFCMU null loop unbalance",
    "D": "MFCMU IV amplifier saturation",
    "F": "SMU in the force saturation condition",
    "W": "source data of a first or intermediate sweep step",
    "E": "source data of the last sweep step",
}
DATA_TYPES = {
    "I": "current",
    "V": "voltage",
    "T": "time",
    "i": "current output",
    "v": "voltage output",
}
CHANNEL_LETTERS = "ABCDEFGHIJ"

#: module model -> kind, as reported by ``UNT?``
MODULE_KINDS = {
    "B1510A": "SMU",
    "B1511A": "SMU",
    "B1511B": "SMU",
    "B1514A": "SMU",
    "B1517A": "SMU",
    "B1520A": "CMU",
    "B1525A": "SPGU",
    "B1530A": "WGFMU",
    "B1542A": "PGU",
}

# spot measurement ranges (TI / TV range codes; negative = fixed range)
CURRENT_RANGE_CODES = {1e-12: 8, 1e-11: 9, 1e-10: 10, 1e-9: 11, 1e-8: 12, 1e-7: 13, 1e-6: 14,
                       1e-5: 15, 1e-4: 16, 1e-3: 17, 1e-2: 18, 1e-1: 19}  # fmt: skip
VOLTAGE_RANGE_CODES = {0.5: 5, 2.0: 20, 5.0: 50, 20.0: 200, 40.0: 400, 100.0: 1000}

_TOKEN = re.compile(
    r"^(?:(?P<status>[A-Z])(?P<channel>[A-Za-z])(?P<dtype>[A-Za-z]))?(?P<value>[+-]\S+)$"
)
_ERRX = re.compile(r'^\s*([+-]?\d+)\s*,\s*"(.*)"\s*$')


# ---------------------------------------------------------------------- exceptions
class MeasurementStatusError(InstrumentError):
    """A reading came back with a status other than normal (``N``)."""

    def __init__(self, instrument: str, reading: FlexReading, command: str = "") -> None:
        self.reading = reading
        super().__init__(
            instrument,
            -1,
            f"channel {reading.channel} status {reading.status!r} "
            f"({STATUS_MEANING.get(reading.status, 'unknown status')}), raw {reading.raw!r}",
            command,
        )


class ComplianceError(MeasurementStatusError):
    """The channel (``C``) or another channel (``T``) reached its compliance."""


class OverRangeError(MeasurementStatusError):
    """The value is over the measurement range (``V``): the number is the dummy, not data."""


# ---------------------------------------------------------------------- numbers
def number(value: float) -> str:
    """A FLEX numeric parameter: up to 6 significant digits (``0.2``, ``0.001``, ``1E-06``)."""
    v = float(value)
    if not math.isfinite(v):
        raise ConfigError("value", value, "a finite number")
    if v == 0:
        return "0"
    return f"{v:.6G}"


def _ch(ch: int) -> str:
    if isinstance(ch, bool) or int(ch) != ch or not 1 <= int(ch) <= 1002:
        raise ConfigError("channel", ch, "a B1500 channel number (1-10, or 101-1002)")
    return str(int(ch))


def _channel_list(channels: Iterable[int] | None) -> str:
    if channels is None:
        return ""
    chs = [_ch(c) for c in channels]
    return " " + ",".join(chs) if chs else ""


# ---------------------------------------------------------------------- builders
def idn() -> str:
    return "*IDN?"


def rst() -> str:
    return "*RST"


def unt(mode: int = 0) -> str:
    """Module list query (``UNT? 0``: model and revision of every slot)."""
    return f"UNT? {int(mode)}"


def errx() -> str:
    return "ERRX?"


def cn(channels: Iterable[int] | None = None) -> str:
    """Close the output relays of ``channels`` (all if None)."""
    return "CN" + _channel_list(channels)


def cl(channels: Iterable[int] | None = None) -> str:
    """Open the output relays of ``channels`` (all if None)."""
    return "CL" + _channel_list(channels)


def dz(channels: Iterable[int] | None = None) -> str:
    """Store settings and set ``channels`` (all if None) to 0 V."""
    return "DZ" + _channel_list(channels)


def dv(ch: int, range_code: int, voltage_v: float, compliance_a: float | None = None) -> str:
    """Force a voltage: ``DV ch,range,V[,Icomp]`` (range 0 = auto)."""
    msg = f"DV {_ch(ch)},{int(range_code)},{number(voltage_v)}"
    if compliance_a is not None:
        msg += f",{number(compliance_a)}"
    return msg


def di(ch: int, range_code: int, current_a: float, compliance_v: float | None = None) -> str:
    """Force a current: ``DI ch,range,I[,Vcomp]``."""
    msg = f"DI {_ch(ch)},{int(range_code)},{number(current_a)}"
    if compliance_v is not None:
        msg += f",{number(compliance_v)}"
    return msg


def ti(ch: int, range_code: int | None = None) -> str:
    """High-speed spot current measurement: ``TI ch[,range]``."""
    return f"TI {_ch(ch)}" + ("" if range_code is None else f",{int(range_code)}")


def tv(ch: int, range_code: int | None = None) -> str:
    """High-speed spot voltage measurement: ``TV ch[,range]``."""
    return f"TV {_ch(ch)}" + ("" if range_code is None else f",{int(range_code)}")


def mm(mode: int, channels: Iterable[int]) -> str:
    """Measurement mode and channels: ``MM mode,ch1[,ch2...]`` (1 spot, 2 staircase, ...)."""
    chs = _channel_list(channels)
    if not chs:
        raise ConfigError("channels", list(channels), "at least one measurement channel")
    return f"MM {int(mode)},{chs.strip()}"


def xe() -> str:
    return "XE"


def fmt(format_code: int = 1, mode: int = 0) -> str:
    """Data output format: ``FMT 1,0`` = ASCII, 12 digits, with header, no source data."""
    return f"FMT {int(format_code)},{int(mode)}"


def av(number_: int, mode: int = 0) -> str:
    """ADC averaging: ``AV n,mode`` (n > 0 samples; n < 0 power-line cycles)."""
    return f"AV {int(number_)},{int(mode)}"


def az(on: bool) -> str:
    """ADC auto-zero on or off."""
    return f"AZ {1 if on else 0}"


def wv(ch: int, mode: int, range_code: int, start_v: float, stop_v: float, steps: int,
       compliance_a: float | None = None) -> str:  # fmt: skip
    """Staircase sweep source: ``WV ch,mode,range,start,stop,steps[,Icomp]``."""
    msg = f"WV {_ch(ch)},{int(mode)},{int(range_code)},{number(start_v)},{number(stop_v)},{int(steps)}"
    if compliance_a is not None:
        msg += f",{number(compliance_a)}"
    return msg


PA_MAX_S = 655.35  # FLEX PA: longest pause


def pa(wait_s: float) -> str:
    """``PA <s>``: pause command execution for ``s`` seconds (0-655.35 s, 10 µs steps)."""
    s = float(wait_s)
    if not 0 <= s <= PA_MAX_S:
        raise ConfigError("wait_s", wait_s, f"[0, {PA_MAX_S}] s (FLEX PA)")
    return f"PA {number(round(s, 5))}"


def wt(hold_s: float, delay_s: float) -> str:
    """Staircase sweep timing: ``WT hold,delay``."""
    return f"WT {number(hold_s)},{number(delay_s)}"


def lrn(type_id: int) -> str:
    return f"*LRN? {int(type_id)}"


# ---------------------------------------------------------------------- parsers
@dataclass(frozen=True)
class ModuleSlot:
    """One slot of the mainframe as reported by ``UNT?``."""

    slot: int
    model: str
    revision: int

    @property
    def kind(self) -> str:
        """``SMU``, ``CMU``, ``WGFMU``, ... (``UNKNOWN`` for an unlisted model)."""
        return MODULE_KINDS.get(self.model, "UNKNOWN")

    @property
    def channels(self) -> tuple[int, ...]:
        """FLEX channel numbers (WGFMU: the library's ids slot x 100 + 1, + 2)."""
        if self.kind == "WGFMU":
            return (self.slot * 100 + 1, self.slot * 100 + 2)
        return (self.slot,)


def parse_unt(reply: str, instrument: str = "") -> list[ModuleSlot]:
    """``B1530A,0;B1517A,0;0,0;...`` -> the occupied slots (1-based)."""
    items = [s.strip() for s in reply.strip().split(";") if s.strip()]
    if not items or len(items) > 10:
        raise ProtocolError("UNT? reply 'model,revision;...' for up to 10 slots", reply, instrument)
    out = []
    for slot, item in enumerate(items, start=1):
        parts = item.split(",")
        # ASCII digits with at most one sign ("²".isdigit() is true, "+-5" passes lstrip)
        if len(parts) != 2 or not re.fullmatch(r"[+-]?[0-9]+", parts[1].strip()):
            raise ProtocolError("'model,revision' per slot", item, instrument)
        model = parts[0].strip()
        if model != "0":
            out.append(ModuleSlot(slot, model, int(parts[1])))
    return out


def parse_errx(reply: str, instrument: str = "") -> tuple[int, str]:
    """``+0,"No Error."`` -> (0, "No Error.")."""
    m = _ERRX.match(reply)
    if not m:
        raise ProtocolError('an ERRX? reply such as +0,"No Error."', reply, instrument)
    return int(m.group(1)), m.group(2)


@dataclass(frozen=True)
class FlexReading:
    """One FLEX data value with its header.

    Attributes:
        status: status letter (``N`` when normal; ``""`` in formats without header).
        channel: channel number (0 when the format has no header).
        dtype: data type letter (``I``, ``V``, ``T``, ``i``, ``v``).
        value: the number as sent (the dummy 199.999E+99 when over range).
        raw: the text it was parsed from.
    """

    status: str
    channel: int
    dtype: str
    value: float
    raw: str

    @property
    def ok(self) -> bool:
        """True when the status is normal (or absent) and the value is data."""
        return self.status in ("N", "", "W", "E") and abs(self.value) < 1e99

    @property
    def compliance(self) -> bool:
        return self.status in ("C", "T")

    @property
    def over_range(self) -> bool:
        return self.status == "V" or abs(self.value) >= 1e99

    @property
    def flags(self) -> frozenset[str]:
        """Named conditions of the reading (empty when normal)."""
        out = set()
        if self.status == "C":
            out.add("compliance")
        if self.status == "T":
            out.add("other_compliance")
        if self.over_range:
            out.add("over_range")
        if self.status == "X":
            out.add("oscillation")
        if self.status == "F":
            out.add("force_saturation")
        if self.status in ("G", "S", "U", "D"):
            out.add(f"status_{self.status}")
        return frozenset(out)

    def checked(self, instrument: str = "", command: str = "") -> float:
        """The value, or an exception when the status says it is not a measurement."""
        if self.ok:
            return self.value
        if self.over_range:
            raise OverRangeError(instrument, self, command)
        if self.compliance:
            raise ComplianceError(instrument, self, command)
        raise MeasurementStatusError(instrument, self, command)


def channel_of_letter(letter: str) -> int:
    """FMT1 channel letter -> channel number: ``A``-``J`` 1-10 (the module's first channel),
    ``a``-``j`` 102-1002 (the second channel of the module in slots 1-10, e.g. an MCSMU),
    ``V`` (GNDU) and ``Z`` (no channel) 0."""
    if letter in CHANNEL_LETTERS and letter:
        return CHANNEL_LETTERS.index(letter) + 1
    if letter and letter.upper() in CHANNEL_LETTERS:
        return (CHANNEL_LETTERS.index(letter.upper()) + 1) * 100 + 2
    return 0


def parse_reading(token: str, instrument: str = "") -> FlexReading:
    """Parse one value, with (``NAI+012.345E-06``) or without (``+012.345E-06``) header."""
    t = token.strip()
    m = _TOKEN.match(t)
    if not m:
        raise ProtocolError("a FLEX value such as NAI+012.345E-06", token, instrument)
    text = m.group("value")
    try:
        value = float(text)
    except ValueError:
        raise ProtocolError("a FLEX number such as +012.345E-06", token, instrument) from None
    status = m.group("status") or ""
    letter = m.group("channel") or ""
    if letter and letter not in CHANNEL_LETTERS and letter.upper() not in CHANNEL_LETTERS and letter not in "VZ":
        raise ProtocolError("a channel letter A-J (a-j: second channel of a module)", token, instrument)
    channel = channel_of_letter(letter)
    dtype = m.group("dtype") or ""
    return FlexReading(status, channel, dtype, value, t)


def parse_data(reply: str, instrument: str = "") -> list[FlexReading]:
    """Every value of a comma-separated FLEX data reply (``XE`` output)."""
    tokens = [s for s in reply.strip().split(",") if s.strip()]
    if not tokens:
        raise ProtocolError("FLEX data", reply, instrument)
    return [parse_reading(s, instrument) for s in tokens]


def values_of(readings: list[FlexReading], instrument: str = "", command: str = "") -> np.ndarray:
    """The checked values of ``readings`` as an array (first bad status raises)."""
    return np.array([r.checked(instrument, command) for r in readings], dtype=float)


__all__ = [
    "ComplianceError",
    "FlexReading",
    "MeasurementStatusError",
    "ModuleSlot",
    "OverRangeError",
    "parse_data",
    "parse_errx",
    "parse_reading",
    "parse_unt",
]
