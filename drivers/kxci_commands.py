"""Pure KXCI (Keithley 4200A-SCS external control) command text and reply parsing.

No I/O here: every function builds one command string or parses one reply, so the whole
language can be tested without an instrument (QCoDeS' MessageBuilder idea, kept small).

Facts used (4200A-SCS Reference Manual, section "Keithley External Control Interface";
Tektronix KXCI examples; PyMeasure's keithley4200.py):

* User mode (``US``): ``DVch,range,value,compliance`` / ``DIch,...`` source; ``DVch`` alone
  turns the channel off; ``TVch`` / ``TIch`` trigger a spot reading. Over Ethernet every
  command that returns no data is answered ``ACK``.
* User-mode reading: ``XYZ±N.NNNNE±NN``: X = data status, Y = measure channel letter,
  Z = ``V`` or ``I``. System-mode ``DO`` readings carry only the status letter.
* Data status, in the manual's priority order L > V > X > C > T > N (see :data:`STATUS`).
* System mode: ``DE`` (channel page: ``CH``), ``SS`` (source page: ``VR``, ``VC``, ``HT``,
  ``DT``, ``IT``), ``SM`` (measurement page), ``MD`` (``ME1`` runs), ``SP`` (status byte),
  ``DO 'name'`` / ``RD 'name',index`` (data).
* User libraries: ``UL``, ``EX library module(args)`` -> ``RETURN VALUE = n``;
  ``GN name n`` / ``GP position n`` -> ``PARAM VALUE = v1;v2;...`` (format as seen in public
  lab code; the ``PARAM VALUE =`` prefix is optional for the parser).
* 4225-PMU: ``:PMU:INIT mode``, ``:PMU:RPM:CONFIGURE PMUc-n,mode``, ``:PMU:PULSE:TRAIN
  ch,base,amplitude``, ``:PMU:PULSE:TIMES ch,period,width,rise,fall``,
  ``:PMU:PULSE:BURST:COUNT n``, ``:PMU:MEASURE:MODE m``, ``:PMU:OUTPUT:STATE ch,on``,
  ``:PMU:EXECUTE``, ``:PMU:TEST:STATUS?`` (1 running, 0 idle). PMU channels are numbered
  1-4 across two cards (PMU1-1 = 1, PMU1-2 = 2, PMU2-1 = 3, PMU2-2 = 4).

Error replies: the public sources do not show how KXCI words a rejected command over LAN.
memprog expects a reply beginning with ``ERROR`` (``ERROR -100: ...``), which is what the
simulated 4200 sends; :func:`check_ack` turns it into :class:`InstrumentError`. On a real
4200 a rejected command sets the syntax-error bit (B1) of the status byte (``SP``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from memprog.core.errors import ConfigError, InstrumentError, ProtocolError

ACK = "ACK"

#: Data status letters (manual priority L > V > X > C > T > N) -> memprog flag name.
#: ``value_valid`` is False where the number must never reach a caller as a plain value.
STATUS: dict[str, tuple[str, bool]] = {
    "N": ("normal", True),
    "L": ("interval_too_short", True),  # timing warning: the value itself was measured
    "V": ("overflow", False),  # A/D saturated: the number is meaningless
    "X": ("oscillation", False),  # the SMU oscillated: the number is meaningless
    "C": ("compliance", False),  # this channel hit its compliance: not the programmed bias
    "T": ("other_compliance", False),  # another channel in compliance: bias not as programmed
}
#: Error code carried by :class:`KxciStatusError` for each non-normal status (priority order).
STATUS_CODE = {"L": 1, "V": 2, "X": 3, "C": 4, "T": 5}

# Measure-channel letters of user-mode readings (manual table "Data format for user mode").
_V_CHANNELS = dict(
    zip(
        "ABCDEFGHIJKLMNOP",
        [
            "SMU1",
            "SMU2",
            "SMU3",
            "SMU4",
            "VM1",
            "VM2",
            "SMU5",
            "SMU6",
            "SMU7",
            "SMU8",
            "VM3",
            "VM4",
            "VM5",
            "VM6",
            "VM7",
            "VM8",
        ],
        strict=True,
    )
)
_I_CHANNELS = {c: f"SMU{i + 1}" for i, c in enumerate("ABCDEFGH")}

# Source ranges of DV (PyMeasure's table): 0 auto, 1 20 V, 2 200 V, 3 200 V, 4 200 mV, 5 2 V.
DV_RANGES = frozenset(range(6))
# Source ranges of DI: 0 auto, 1..13 (1 nA .. 100 pA, see the manual).
DI_RANGES = frozenset(range(14))

_READING_RE = re.compile(r"^\s*([NLVXCT])([A-P])([VI])\s*([-+]?\d+(?:\.\d*)?(?:[Ee][-+]?\d+)?)\s*$")
_DO_ITEM_RE = re.compile(r"^\s*([NLVXCT])\s*([-+]?\d+(?:\.\d*)?(?:[Ee][-+]?\d+)?)\s*$")
# \Z, not $: "$" also matches before a final newline, which would end the KXCI message
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,5}\Z")
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


def num(value: float) -> str:
    """A number as KXCI text: up to 7 significant digits, no trailing zeros (``0.2``, ``1e-06``)."""
    v = float(value)
    if not math.isfinite(v):
        raise ConfigError("value", v, "a finite number")
    if v == 0:
        return "0"
    return f"{v:.7g}"


def sent_value(value: float) -> float:
    """The value the instrument will receive once ``value`` is formatted by :func:`num`.

    Drivers check safety limits on this, so rounding in the text can never slip past a limit.
    """
    return float(num(value))


def _channel(ch: int, hi: int = 9) -> int:
    if isinstance(ch, bool) or not isinstance(ch, (int, np.integer)) or not 1 <= ch <= hi:
        raise ConfigError("channel", ch, f"an integer in [1, {hi}]")
    return int(ch)


# ---------------------------------------------------------------------- general
def options() -> str:
    """``*OPT?``: the installed instrument cards (``SMU1,SMU2,...,PMU1``)."""
    return "*OPT?"


def parse_options(reply: str) -> list[str]:
    """Split an ``*OPT?`` reply into card names (``["SMU1", "SMU2", "PMU1"]``)."""
    items = [s.strip() for s in reply.strip().split(",") if s.strip()]
    if not items:
        raise ProtocolError(
            "a comma-separated list of cards such as 'SMU1,SMU2'", reply, "4200A-SCS"
        )
    return items


def smus_from_options(cards: list[str]) -> list[int]:
    """SMU numbers among ``*OPT?`` cards (``SMUPA2``, an SMU with preamplifier, counts)."""
    out = []
    for c in cards:
        m = re.match(r"^SMU(?:PA)?(\d+)$", c.upper())
        if m:
            out.append(int(m.group(1)))
    return sorted(out)


def pmus_from_options(cards: list[str]) -> list[int]:
    """PMU card numbers among ``*OPT?`` cards (``PMU1`` -> 1)."""
    return sorted(int(m.group(1)) for c in cards if (m := re.match(r"^PMU(\d+)$", c.upper())))


def check_ack(reply: str, command: str, instrument: str = "4200A-SCS") -> None:
    """Raise unless ``reply`` is ``ACK``: ``ERROR`` -> InstrumentError, else ProtocolError."""
    text = reply.strip()
    if text == ACK:
        return
    raise_if_error(text, command, instrument)
    raise ProtocolError(f"'ACK' after {command!r}", reply, instrument)


def raise_if_error(reply: str, command: str, instrument: str = "4200A-SCS") -> None:
    """InstrumentError if ``reply`` is an error reply (``ERROR <code>: <message>``)."""
    text = reply.strip()
    if not text.upper().startswith("ERROR"):
        return
    m = re.match(r"^ERROR\s*=?\s*([-+]?\d+)\s*[:,]?\s*(.*)$", text, re.IGNORECASE)
    if m:
        raise InstrumentError(instrument, int(m.group(1)), m.group(2).strip() or "error", command)
    raise InstrumentError(instrument, -1, text, command)


# ---------------------------------------------------------------------- user mode
def user_mode() -> str:
    """``US``: enter user mode (direct source/measure commands)."""
    return "US"


def dv(ch: int, range_code: int, voltage_v: float, compliance_a: float) -> str:
    """``DVch,range,V,Icomp``: source a voltage on SMU ``ch`` with a current compliance."""
    _channel(ch)
    if range_code not in DV_RANGES:
        raise ConfigError("range_code", range_code, f"one of {sorted(DV_RANGES)} (0 = auto)")
    if not 0 < compliance_a <= 1.0:
        raise ConfigError("compliance_a", compliance_a, "(0, 1] A")
    return f"DV{ch},{range_code},{num(voltage_v)},{num(compliance_a)}"


def di(ch: int, range_code: int, current_a: float, compliance_v: float) -> str:
    """``DIch,range,I,Vcomp``: source a current on SMU ``ch`` with a voltage compliance."""
    _channel(ch)
    if range_code not in DI_RANGES:
        raise ConfigError("range_code", range_code, f"one of {sorted(DI_RANGES)} (0 = auto)")
    if not 0 < compliance_v <= 210:
        raise ConfigError("compliance_v", compliance_v, "(0, 210] V")
    return f"DI{ch},{range_code},{num(current_a)},{num(compliance_v)}"


def output_off(ch: int) -> str:
    """``DVch`` with no value: turn SMU ``ch`` off."""
    return f"DV{_channel(ch)}"


def tv(ch: int) -> str:
    """``TVch``: trigger a voltage reading on SMU ``ch``."""
    return f"TV{_channel(ch)}"


def ti(ch: int) -> str:
    """``TIch``: trigger a current reading on SMU ``ch``."""
    return f"TI{_channel(ch)}"


@dataclass(frozen=True)
class Reading:
    """One KXCI reading with its data status kept beside the number.

    Attributes:
        status: the status letter (N, L, V, X, C, T).
        value: the number as sent (meaningless unless :attr:`valid`).
        channel: the terminal measured (``"SMU2"``) or ``""`` for system-mode data.
        mode: ``"V"``, ``"I"`` or ``""``.
    """

    status: str
    value: float
    channel: str = ""
    mode: str = ""

    @property
    def flag(self) -> str:
        """memprog's name of the status (``"compliance"``, ``"overflow"`` ...)."""
        return STATUS[self.status][0]

    @property
    def valid(self) -> bool:
        """True where the number is a measurement of the programmed bias."""
        return STATUS[self.status][1]

    def checked(self, command: str = "", instrument: str = "4200A-SCS") -> float:
        """The value, or :class:`KxciStatusError` if the status says it is not a measurement."""
        if not self.valid:
            raise KxciStatusError(self, command, instrument)
        return self.value


class KxciStatusError(InstrumentError):
    """A reading whose data status (compliance, overflow, oscillation) forbids using its value."""

    def __init__(self, reading: Reading, command: str = "", instrument: str = "4200A-SCS") -> None:
        self.reading = reading
        where = f" on {reading.channel}" if reading.channel else ""
        super().__init__(
            instrument,
            STATUS_CODE.get(reading.status, 0),
            f"reading status {reading.status!r} ({reading.flag}){where}, value {reading.value:g}",
            command,
        )


def parse_reading(reply: str, instrument: str = "4200A-SCS") -> Reading:
    """Parse a user-mode reading such as ``NAI+1.234500E-05`` (an ``ERROR`` reply raises)."""
    m = _READING_RE.match(reply)
    if not m:
        raise_if_error(reply, "TV/TI", instrument)
        raise ProtocolError(
            "a reading 'XYZ±N.NNNNE±NN' such as 'NAI+1.2345E-05'", reply, instrument
        )
    status, letter, mode, value = m.groups()
    table = _V_CHANNELS if mode == "V" else _I_CHANNELS
    if letter not in table:
        raise ProtocolError(f"a measure channel letter valid for mode {mode}", reply, instrument)
    return Reading(status, float(value), table[letter], mode)


# ---------------------------------------------------------------------- system mode
def _name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ConfigError("name", name, "1-6 letters/digits starting with a letter")
    return name


def channel_definition() -> str:
    """``DE``: go to the channel definition page (system mode)."""
    return "DE"


def ch(ch_: int, v_name: str, i_name: str, source_mode: int, function: int) -> str:
    """``CH ch,'VN','IN',mode,function``: define an SMU channel.

    ``source_mode``: 1 voltage, 2 current, 3 common. ``function``: 1 VAR1, 2 VAR2,
    3 constant, 4 VAR1'.
    """
    _channel(ch_)
    if source_mode not in (1, 2, 3):
        raise ConfigError("source_mode", source_mode, "1 (V), 2 (I) or 3 (common)")
    if function not in (1, 2, 3, 4):
        raise ConfigError("function", function, "1 VAR1, 2 VAR2, 3 constant, 4 VAR1'")
    return f"CH{ch_},'{_name(v_name)}','{_name(i_name)}',{source_mode},{function}"


def source_setup() -> str:
    """``SS``: go to the source setup page."""
    return "SS"


def vr(start_v: float, stop_v: float, step_v: float, compliance_a: float) -> str:
    """``VR1,start,stop,step,Icomp``: a linear VAR1 voltage sweep."""
    if step_v == 0 or (stop_v - start_v) * step_v < 0:
        raise ConfigError("step_v", step_v, f"non-zero, pointing from {start_v} to {stop_v}")
    if not 0 < compliance_a <= 1.0:
        raise ConfigError("compliance_a", compliance_a, "(0, 1] A")
    return f"VR1,{num(start_v)},{num(stop_v)},{num(step_v)},{num(compliance_a)}"


def vc(ch_: int, voltage_v: float, compliance_a: float) -> str:
    """``VCch,V,Icomp``: a constant-voltage channel during a sweep."""
    if not 0 < compliance_a <= 1.0:
        raise ConfigError("compliance_a", compliance_a, "(0, 1] A")
    return f"VC{_channel(ch_)},{num(voltage_v)},{num(compliance_a)}"


def hold_time(t_s: float) -> str:
    """``HT t``: hold time before the sweep starts."""
    if not 0 <= t_s <= 655.35:
        raise ConfigError("hold_s", t_s, "[0, 655.35] s")
    return f"HT{num(t_s)}"


def delay_time(t_s: float) -> str:
    """``DT t``: delay time at every sweep step."""
    if not 0 <= t_s <= 6.5535:
        raise ConfigError("delay_s", t_s, "[0, 6.5535] s")
    return f"DT{num(t_s)}"


def integration_time(mode: int) -> str:
    """``ITn``: integration time, 1 short (0.1 PLC), 2 normal (1 PLC), 3 long (16 PLC)."""
    if mode not in (1, 2, 3):
        raise ConfigError("integration", mode, "1 short, 2 normal, 3 long")
    return f"IT{mode}"


def measurement_setup() -> str:
    """``SM``: go to the measurement setup page."""
    return "SM"


def display_graph() -> str:
    """``DM1``: graphics display mode (the measurement page needs a display mode)."""
    return "DM1"


def x_axis(name: str, lo: float, hi: float) -> str:
    """``XN 'name',1,min,max``: linear x axis of the graph."""
    return f"XN '{_name(name)}',1,{num(lo)},{num(hi)}"


def y_axis(name: str, lo: float, hi: float) -> str:
    """``YA 'name',1,min,max``: linear y axis of the graph."""
    return f"YA '{_name(name)}',1,{num(lo)},{num(hi)}"


def measurement_control() -> str:
    """``MD``: go to the measurement control page."""
    return "MD"


def measure_run() -> str:
    """``ME1``: run the defined test once."""
    return "ME1"


def status_poll() -> str:
    """``SP``: the status byte (bit 0 data ready, bit 1 syntax error, bit 4 busy)."""
    return "SP"


STB_DATA_READY, STB_SYNTAX_ERROR, STB_BUSY = 1, 2, 16


def parse_status_byte(reply: str) -> int:
    """The integer status byte of an ``SP`` reply."""
    try:
        return int(float(reply.strip()))
    except (ValueError, OverflowError):  # OverflowError: "INF" is a float, not an int
        raise ProtocolError("an integer status byte", reply, "4200A-SCS") from None


def data_output(name: str) -> str:
    """``DO 'name'``: all readings of a named data column, status-prefixed."""
    return f"DO '{_name(name)}'"


def parse_data_output(reply: str, instrument: str = "4200A-SCS") -> list[Reading]:
    """Parse a ``DO`` reply ``N+1.0E-06,C+1.0E-03,...`` into readings (statuses kept)."""
    raise_if_error(reply, "DO", instrument)
    items = [s for s in reply.strip().split(",") if s.strip()]
    out = []
    for s in items:
        m = _DO_ITEM_RE.match(s)
        if not m:
            raise ProtocolError(
                "readings 'X±N.NNNNE±NN' separated by commas", reply[:80], instrument
            )
        out.append(Reading(m.group(1), float(m.group(2))))
    return out


def read_data(name: str, index: int) -> str:
    """``RD 'name',index``: one value of a named data column (1-based)."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 1:
        raise ConfigError("index", index, "an integer >= 1")
    return f"RD '{_name(name)}',{index}"


def parse_value(reply: str, command: str, instrument: str = "4200A-SCS") -> float:
    """A plain number reply (``RD``)."""
    raise_if_error(reply, command, instrument)
    try:
        return float(reply.strip())
    except ValueError:
        raise ProtocolError(f"a number after {command!r}", reply, instrument) from None


# ---------------------------------------------------------------------- user libraries
def user_library() -> str:
    """``UL``: enter user-library mode (KULT modules)."""
    return "UL"


def _arg(a: object) -> str:
    if a is None:
        return ""  # an output array: left empty
    if isinstance(a, bool):
        return "1" if a else "0"
    if isinstance(a, (int, np.integer)):
        return str(int(a))
    if isinstance(a, (float, np.floating)):
        return num(float(a))
    s = str(a)
    if any(ch in s for ch in ",()\0;"):
        raise ConfigError("argument", s, "text without , ( ) ; or NUL")
    return s


def ex(library: str, module: str, args: tuple[object, ...] | list[object] = ()) -> str:
    """``EX library module(a1,a2,...)``; ``None`` leaves an output-array argument empty."""
    for what, v in (("library", library), ("module", module)):
        if not _IDENT_RE.match(v):
            raise ConfigError(what, v, "a C identifier")
    return f"EX {library} {module}({','.join(_arg(a) for a in args)})"


def parse_return_value(reply: str, command: str, instrument: str = "4200A-SCS") -> int:
    """The integer of ``RETURN VALUE = n`` (the reply to ``EX``)."""
    raise_if_error(reply, command, instrument)
    m = re.match(r"^\s*RETURN VALUE\s*=\s*([-+]?\d+)\s*$", reply, re.IGNORECASE)
    if not m:
        raise ProtocolError("'RETURN VALUE = <n>'", reply, instrument)
    return int(m.group(1))


def gn(name: str, count: int) -> str:
    """``GN name count``: fetch an output parameter of the last ``EX`` by name."""
    if not _IDENT_RE.match(name):
        raise ConfigError("name", name, "a C identifier")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError("count", count, "an integer >= 1")
    return f"GN {name} {count}"


def gp(position: int, count: int) -> str:
    """``GP position count``: fetch an output parameter of the last ``EX`` by position (1-based)."""
    for what, v in (("position", position), ("count", count)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(what, v, "an integer >= 1")
    return f"GP {position} {count}"


def parse_param_values(reply: str, command: str, instrument: str = "4200A-SCS") -> np.ndarray:
    """``PARAM VALUE = v1;v2;...`` (prefix optional) -> float array."""
    raise_if_error(reply, command, instrument)
    text = reply.strip()
    if text.upper().startswith("PARAM VALUE"):
        text = text.split("=", 1)[1] if "=" in text else ""
    parts = [p for p in text.replace(",", ";").split(";") if p.strip()]
    try:
        return np.array([float(p) for p in parts], dtype=float)
    except ValueError:
        raise ProtocolError("numbers separated by ';'", reply[:80], instrument) from None


# ---------------------------------------------------------------------- 4225-PMU
def _pmu_ch(ch_: int) -> int:
    return _channel(ch_, 4)


def pmu_init(mode: int = 0) -> str:
    """``:PMU:INIT mode``: reset the PMUs; 0 standard pulse, 1 segment ARB."""
    if mode not in (0, 1):
        raise ConfigError("mode", mode, "0 (pulse) or 1 (segment ARB)")
    return f":PMU:INIT {mode}"


def pmu_rpm_configure(terminal: str, mode: int = 0) -> str:
    """``:PMU:RPM:CONFIGURE PMUc-n,mode``: route the RPM of a channel (0 = PMU)."""
    if not re.match(r"^PMU[1-4]-[12]$", terminal):
        raise ConfigError("terminal", terminal, "PMUc-n, c = 1-4, n = 1-2")
    if mode not in (0, 1, 2, 3):
        raise ConfigError("mode", mode, "0 PMU, 1 CVU, 2 SMU, 3 hold")
    return f":PMU:RPM:CONFIGURE {terminal},{mode}"


def pmu_pulse_train(ch_: int, base_v: float, amplitude_v: float) -> str:
    """``:PMU:PULSE:TRAIN ch,base,amplitude``: a pulse train from ``base`` to ``amplitude``."""
    for what, v in (("base_v", base_v), ("amplitude_v", amplitude_v)):
        if not -40 <= v <= 40:
            raise ConfigError(what, v, "[-40, 40] V (4225-PMU)")
    return f":PMU:PULSE:TRAIN {_pmu_ch(ch_)},{num(base_v)},{num(amplitude_v)}"


def pmu_pulse_times(ch_: int, period_s: float, width_s: float, rise_s: float, fall_s: float) -> str:
    """``:PMU:PULSE:TIMES ch,period,width,rise,fall`` (width is full width at half maximum)."""
    for what, v in (("rise_s", rise_s), ("fall_s", fall_s)):
        if not 20e-9 <= v <= 33e-3:
            raise ConfigError(what, v, "[20 ns, 33 ms] (4225-PMU)")
    if not 60e-9 <= width_s <= 1.0:
        raise ConfigError("width_s", width_s, "[60 ns, 1 s] (4225-PMU)")
    if not width_s + 0.5 * (rise_s + fall_s) <= period_s <= 1.0:
        raise ConfigError("period_s", period_s, f"[{width_s + 0.5 * (rise_s + fall_s):g}, 1] s")
    times = ",".join(num(t) for t in (period_s, width_s, rise_s, fall_s))
    return f":PMU:PULSE:TIMES {_pmu_ch(ch_)},{times}"


PMU_SOURCE_RANGES_V = (10, 40)  # 4225-PMU voltage source ranges
PMU_OUTPUT_OHM = 50.0  # 4225-PMU source impedance


def pmu_load(ch_: int, load_ohm: float) -> str:
    """``:PMU:LOAD ch,ohms``: the DUT resistance the PMU corrects its 50 ohm source for.

    The PMU raises its open-circuit voltage by (load + 50)/load so that a DUT of that
    resistance sees the programmed level; 1 ohm to 10 Mohm (power-on 1 Mohm).
    """
    if not 1.0 <= load_ohm <= 1e7:
        raise ConfigError("load_ohm", load_ohm, "[1, 1e7] ohm (4225-PMU)")
    return f":PMU:LOAD {_pmu_ch(ch_)},{num(load_ohm)}"


def pmu_source_range(ch_: int, range_v: int) -> str:
    """``:PMU:SOURCE:RANGE ch,10|40``: the voltage source range (power-on 10 V)."""
    if range_v not in PMU_SOURCE_RANGES_V:
        raise ConfigError("range_v", range_v, "10 or 40 V (4225-PMU)")
    return f":PMU:SOURCE:RANGE {_pmu_ch(ch_)},{range_v}"


def pmu_device_voltage_max(level_v: float, load_ohm: float) -> float:
    """The largest voltage a device can see for a programmed ``level_v``: the open-circuit
    voltage level * (load + 50)/load (a device of higher resistance than the load setting,
    up to an open line, gets more than the level).

    Rounded to 1 mV, the resolution the safety limits are written in: into the default
    1 Mohm load setting the correction is 50 ppm (0.12 mV at 2.4 V), which must not refuse
    a ramp whose top is exactly the limit; any larger excess still counts."""
    return np.round(np.asarray(level_v, dtype=float) * (load_ohm + PMU_OUTPUT_OHM) / load_ohm, 3)


def pmu_burst_count(count: int) -> str:
    """``:PMU:PULSE:BURST:COUNT n``: pulses per execution."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 2**31 - 1:
        raise ConfigError("count", count, "an integer >= 1")
    return f":PMU:PULSE:BURST:COUNT {count}"


def pmu_measure_mode(mode: int) -> str:
    """``:PMU:MEASURE:MODE m``: 1 spot mean, 2 waveform, 3 spot mean per burst."""
    if mode not in (1, 2, 3):
        raise ConfigError("mode", mode, "1 spot mean, 2 waveform, 3 spot mean per burst")
    return f":PMU:MEASURE:MODE {mode}"


def pmu_output_state(ch_: int, on: bool) -> str:
    """``:PMU:OUTPUT:STATE ch,state``."""
    return f":PMU:OUTPUT:STATE {_pmu_ch(ch_)},{1 if on else 0}"


def pmu_execute() -> str:
    """``:PMU:EXECUTE``: run the configured pulses."""
    return ":PMU:EXECUTE"


def pmu_test_status() -> str:
    """``:PMU:TEST:STATUS?``: 1 while running, 0 when idle."""
    return ":PMU:TEST:STATUS?"


def parse_test_status(reply: str, instrument: str = "4200A-SCS") -> int:
    """The integer of a ``:PMU:TEST:STATUS?`` reply."""
    raise_if_error(reply, ":PMU:TEST:STATUS?", instrument)
    try:
        return int(float(reply.strip()))
    except (ValueError, OverflowError):  # OverflowError: "INF" is a float, not an int
        raise ProtocolError("0 (idle) or 1 (running)", reply, instrument) from None
