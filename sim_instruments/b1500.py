"""Simulated Keysight B1500A mainframe: FLEX over GPIB, SMUs, and the WGFMU hardware state.

It answers FLEX as a B1500A does (byte for byte where the format is documented) and acts on
the bench's chip through probes: the bench file's ``wiring`` (see
:mod:`memprog.core.probe_wiring`) says which B1530A channel's probe lands on which chip pad and
which SMU feeds which RSU. A pad is driven by

* its WGFMU channel, when that channel is connected and in DC, Fast IV or PG mode (state
  set by the simulated WGFMU library, :mod:`memprog.sim_instruments.wgfmu_library`);
* the SMU cabled to its RSU, when the channel is in SMU mode (the RSU passes the SMU
  through) and the SMU's output relay is closed (``CN``);
* nothing (it floats) otherwise. Floating pads are solved by Kirchhoff's law on the chip.

The simulated RSUs power up (and return after ``WGFMU_initialize``/``*RST``) in SMU mode,
so a FLEX-only client such as QCoDeS measures the probed device with the SMUs [choice:
public sources do not say which path an idle RSU selects].

FLEX surface (sources: the FLEX data and error formats as used by QCoDeS's and PyMeasure's
B1500 drivers and by public E5270B/B1500 scripts; the error codes are those of the FLEX
family, E5270B programming guide):

* ``*IDN?``, ``UNT?``/``UNT? 0`` from ``b1500.yaml`` (or the ``sim_modules`` option);
  ``*RST``, ``*OPC?`` (``1``), ``*STB?``; ``*CLS`` is *not* a FLEX command: it queues
  ``+100,"Undefined GPIB command."``, as public lab reports describe for the B1500A.
* ``ERRX?`` -> ``+0,"No Error."`` or the oldest queued error (``+code,"text"``); ``ERR?``
  -> four codes ``c1,c2,c3,c4``.
* ``CN``/``CL`` (all or listed channels), ``DZ``, ``RZ``, ``DV ch,range,V[,Icomp[,pol,
  irange]]``, ``DI ch,range,I[,Vcomp[,pol,vrange]]``, ``TV ch[,range]``, ``TI ch[,range]``
  -> ``NAI+012.345E-06`` in ``FMT 1`` (status, channel letter, data type, 12-digit value)
  or the bare value in ``FMT 2``. Status letters produced: ``N``; ``C`` (this channel at
  its compliance); ``T`` (another channel at its compliance); ``V`` (over a fixed
  measurement range, value ``199.999E+99``).
* ``MM 1,chs`` (spot) and ``MM 2,chs`` (staircase sweep from ``WV``) + ``XE``; with
  ``FMT x,1`` the sweep source value follows each step's data (data type ``v``, status
  ``W`` for intermediate steps and ``E`` for the last [FLEX source-data convention,
  unverified on hardware]).
* Accepted with their parameters checked and their settings kept (for ``*LRN?``), with no
  further effect: ``FMT``, ``AV``, ``AIT``, ``AAD``, ``AZ``, ``FL``, ``CMM``, ``RI``,
  ``RV``, ``WT``, ``WM``, ``TSC``, ``TSR``, and the MFCMU set-up ``IMP``, ``FC``, ``ACV``,
  ``DCV``, ``ADJ``, ``LMN``, ``ACT``, ``WMDCV``, ``WTDCV``, ``CORRST``, ``DCORR``.
  ``*LRN? 0`` (output switches), ``31`` (FMT/AV/MM), ``32`` (RI), ``33`` (WT/WV/WM), ``46``
  (CMM) are answered from the kept settings.
* Anything else queues error 100; bad numbers 102; a wrong number of parameters 103; bad
  values 120; a channel that holds no suitable module 121; compliance 123; range 124.
  Features memprog does not simulate (binary data formats, CMU measurements) queue 999
  ``"Not supported by the memprog simulator."`` rather than pretending.

Timing charged to the chip clock [choices]: 0.5 ms per GPIB message (latency), 100 us per
reading times the ``AV`` count, 1 ms to start an ``XE``.

Physics: SMU and WGFMU DC levels act on the chip while a reading is taken, as a stress of
one reading time when they exceed the chip's quiet level; currents at biases above the
chip's disturb threshold are computed by linearity from a scaled-down bias (the cells are
ohmic), as the other simulated instruments do.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from memprog.core.errors import ConfigError
from memprog.core.probe_wiring import ProbeWiring, parse_pad, probe_wiring_from_bench
from memprog.sim_instruments.base import SimulatedInstrument, StaticSurface, register

if TYPE_CHECKING:  # pragma: no cover
    from memprog.core.bench_config import InstrumentConfig
    from memprog.sim_instruments.base import SimBench

# WGFMU constants (wgfmu.h) the hardware state uses; the simulator keeps its own copy
OP_DC, OP_FASTIV, OP_PG, OP_SMU = 2000, 2001, 2002, 2003
MEAS_VOLTAGE, MEAS_CURRENT = 4000, 4001
FORCE_AUTO = 3000
I_RANGE_1MA = 6004
V_RANGE_5V = 5001

SMU_MODELS = {"B1510A", "B1511A", "B1511B", "B1514A", "B1517A"}
CMU_MODELS = {"B1520A"}
WGFMU_MODELS = {"B1530A"}
KNOWN_MODELS = SMU_MODELS | CMU_MODELS | WGFMU_MODELS | {"B1525A", "B1542A"}

NO_ERROR = '+0,"No Error."'
ERRORS = {
    100: "Undefined GPIB command.",
    102: "Incorrect numeric data syntax.",
    103: "Incorrect terminator position.",
    120: "Incorrect parameter value.",
    121: "Channel number must be a slot with a suitable module.",
    122: "Number of channels must be corrected.",
    123: "Compliance must be set correctly.",
    124: "Incorrect range value for this channel.",
    999: "Not supported by the memprog simulator.",
}
DUMMY = 199.999e99  # FLEX value of an over-range reading

# measurement range codes of TI (A) and TV (V); negative = fixed, positive = limited auto
I_RANGES = {8: 1e-12, 9: 1e-11, 10: 1e-10, 11: 1e-9, 12: 1e-8, 13: 1e-7, 14: 1e-6, 15: 1e-5,
            16: 1e-4, 17: 1e-3, 18: 1e-2, 19: 1e-1}  # fmt: skip
V_RANGES = {5: 0.5, 20: 2.0, 50: 5.0, 200: 20.0, 400: 40.0, 1000: 100.0}
SMU_I_MAX = 0.1  # B1517A: 100 mA
SMU_V_MAX = 100.0  # B1517A: 100 V
READING_S = 100e-6  # [choice] one spot reading (high-speed ADC, AV 1)
XE_OVERHEAD_S = 1e-3  # [choice]
_OPEN_NOISE_A = 5e-14  # [choice] noise floor of an SMU on an open circuit
_CMD = re.compile(r"^(\*?[A-Za-z]+\??)\s*(.*)$")


class FlexError(Exception):
    """A rejected command: queued as ``+code,"text"`` for ``ERRX?``."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(detail or ERRORS.get(code, ""))
        self.code = code
        self.detail = detail


@dataclass
class _Smu:
    enabled: bool = False
    mode: str = "V"  # "V" voltage source, "I" current source
    value: float = 0.0
    compliance: float | None = None
    range_code: int = 0
    cmm: int = 0
    ri: int = 0


@dataclass
class WgfmuHardware:
    """What a WGFMU channel is doing right now (set by the simulated library)."""

    mode: int = OP_SMU
    force_range: int = FORCE_AUTO
    measure_mode: int = MEAS_VOLTAGE
    current_range: int = I_RANGE_1MA
    voltage_range: int = V_RANGE_5V
    connected: bool = False
    level_v: float = 0.0

    @property
    def drives(self) -> bool:
        """True when the channel's own output drives its probe."""
        return self.connected and self.mode in (OP_DC, OP_FASTIV, OP_PG)


@dataclass
class _Sweep:
    channel: int
    mode: int
    range_code: int
    start: float
    stop: float
    steps: int
    icomp: float | None
    pcomp: float | None

    def levels(self) -> np.ndarray:
        if self.mode in (1, 3):
            up = np.linspace(self.start, self.stop, self.steps)
        else:
            if self.start == 0 or self.stop == 0 or self.start * self.stop < 0:
                raise FlexError(120, "log sweep needs start and stop of one sign")
            up = np.geomspace(self.start, self.stop, self.steps)
        return np.concatenate([up, up[::-1]]) if self.mode in (3, 4) else up


@dataclass
class _Settings:
    fmt: tuple[int, int] = (1, 0)
    av: tuple[int, int] = (1, 0)
    az: int = 1
    mm: tuple[int, list[int]] | None = None
    wt: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)
    wm: tuple[int, int] = (1, 1)
    sweep: _Sweep | None = None
    filters: dict[int, int] = field(default_factory=dict)
    acknowledged: dict[str, str] = field(default_factory=dict)


def format_value(value: float) -> str:
    """A FLEX 12-digit value ``+ddd.dddE+ee`` (engineering exponent)."""
    if not math.isfinite(value) or abs(value) >= 1e99:
        return "+199.999E+99"
    if value == 0:
        return "+000.000E+00"
    e = 3 * math.floor(math.log10(abs(value)) / 3)
    m = value / 10.0**e
    if abs(round(m, 3)) >= 1000.0:
        e += 3
        m /= 1000.0
    return f"{m:+08.3f}E{e:+03d}"


def channel_letter(ch: int) -> str:
    """FLEX channel letter of channels 1-10 (A-J)."""
    return "ABCDEFGHIJ"[ch - 1] if 1 <= ch <= 10 else "Z"


def _num(text: str) -> float:
    t = text.strip()
    try:
        v = float(t)
    except ValueError:
        raise FlexError(102, f"not a number: {t!r}") from None
    if not math.isfinite(v):
        raise FlexError(102, f"not a number: {t!r}")
    return v


def _int(text: str) -> int:
    v = _num(text)
    if v != int(v):
        raise FlexError(102, f"not an integer: {text!r}")
    return int(v)


@register("b1500")
class SimB1500(SimulatedInstrument):
    """Simulated B1500A with SMUs, an MFCMU and B1530A WGFMU hardware, probing the chip."""

    write_termination = "\r\n"
    read_termination = "\r\n"
    latency_s = 0.5e-3

    def __init__(self, name: str, config: InstrumentConfig, bench: SimBench) -> None:
        super().__init__(name, config, bench)
        self.static = StaticSurface("b1500.yaml", "KeysightB1500")
        opts = config.options
        models = opts.get("sim_modules")
        if models is None:
            unt = self.static.match("UNT? 0") or ""
            models = [item.split(",")[0] for item in unt.split(";") if item]
        models = [str(m) for m in models]
        if len(models) > 10:
            raise ConfigError(f"instruments.{name}.options.sim_modules", models, "at most 10 slots")
        for m in models:
            if m != "0" and m not in KNOWN_MODELS:
                raise ConfigError(
                    f"instruments.{name}.options.sim_modules",
                    m,
                    f"'0' or one of {sorted(KNOWN_MODELS)}",
                )
        self.modules = models + ["0"] * (10 - len(models))
        self.smu_channels = [s + 1 for s, m in enumerate(self.modules) if m in SMU_MODELS]
        self.cmu_channels = [s + 1 for s, m in enumerate(self.modules) if m in CMU_MODELS]
        self.wgfmu_channels = [
            (s + 1) * 100 + k
            for s, m in enumerate(self.modules)
            if m in WGFMU_MODELS
            for k in (1, 2)
        ]
        self.reading_s = float(opts.get("sim_reading_s", READING_S))
        self.wiring: ProbeWiring | None = None
        w = bench.config.wiring
        if w and w.get("mainframe", name) == name and "pads" in w:
            c = bench.config.chip
            self.wiring = probe_wiring_from_bench(w, c.rows, c.cols)
            for ch in list(self.wiring.pads) + list(self.wiring.rsu.values()):
                if ch not in self.wgfmu_channels:
                    raise ConfigError(
                        "wiring.pads",
                        ch,
                        f"a WGFMU channel of this mainframe {self.wgfmu_channels}",
                    )
            for smu in self.wiring.rsu:
                if smu not in self.smu_channels:
                    raise ConfigError(
                        "wiring.rsu", smu, f"an SMU channel of this mainframe {self.smu_channels}"
                    )
        self.rng = np.random.default_rng(bench.config.chip.seed + 1500)
        self.wgfmu: dict[int, WgfmuHardware] = {}
        self.readings = 0
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Power-on state: outputs off, default formats, empty error queue, RSUs on SMU."""
        self.smus = {ch: _Smu() for ch in self.smu_channels}
        self.cmu_enabled = {ch: False for ch in self.cmu_channels}
        self.set = _Settings()
        self.errors: deque[tuple[int, str]] = deque()
        self.reset_wgfmu()

    def reset_wgfmu(self) -> None:
        """Every WGFMU channel at 0 V, disconnected, RSU passing the SMU through."""
        self.wgfmu = {ch: WgfmuHardware() for ch in self.wgfmu_channels}

    def queue_error(self, code: int, detail: str = "") -> None:
        """Put an error in the ``ERRX?`` queue (the queue holds at most 32)."""
        if len(self.errors) < 32:
            self.errors.append((code, ERRORS.get(code, detail)))

    def status_byte(self) -> int:
        """Serial poll byte: bit 5 (32) when an error is queued [choice]."""
        return 32 if self.errors else 0

    # ------------------------------------------------------------------ FLEX parsing
    def handle(self, message: str) -> str | None:
        reply: str | None = None
        for cmd in (c.strip() for c in message.split(";")):
            if not cmd:
                continue
            try:
                r = self._command(cmd)
            except FlexError as exc:
                self.queue_error(exc.code, exc.detail)
                return reply
            if r is not None:
                reply = r
        return reply

    def _command(self, cmd: str) -> str | None:
        m = _CMD.match(cmd)
        if not m:
            raise FlexError(100, cmd)
        head = m.group(1).upper()
        raw_args = m.group(2).strip()
        args = [a.strip() for a in raw_args.split(",")] if raw_args else []
        fn = _HANDLERS.get(head)
        if fn is None:
            if head in _ACKNOWLEDGED:
                return self._acknowledge(head, args)
            raise FlexError(100, cmd)
        return fn(self, args)

    def _nargs(self, args: list[str], lo: int, hi: int) -> None:
        if not lo <= len(args) <= hi:
            raise FlexError(103, f"{len(args)} parameters")

    def _channels(self, args: list[str], allowed: list[int]) -> list[int]:
        chs = [_int(a) for a in args]
        for ch in chs:
            if ch not in allowed:
                raise FlexError(121, f"channel {ch}")
        if len(set(chs)) != len(chs):
            raise FlexError(122, "a channel is listed twice")
        return chs

    def _smu(self, text: str) -> _Smu:
        ch = _int(text)
        if ch not in self.smus:
            raise FlexError(121, f"channel {ch}")
        return self.smus[ch]

    # ------------------------------------------------------------------ common commands
    def _idn(self, args: list[str]) -> str:
        self._nargs(args, 0, 0)
        return self.static.match("*IDN?") or "Keysight Technologies,B1500A,0,0"

    def _rst(self, args: list[str]) -> None:
        self._nargs(args, 0, 0)
        errors = self.errors
        self.reset()
        self.errors = errors  # *RST does not clear the error queue (QCoDeS notes the same)

    def _opc(self, args: list[str]) -> str:
        return "1"

    def _stb(self, args: list[str]) -> str:
        return str(self.status_byte())

    def _cls(self, args: list[str]) -> None:
        raise FlexError(100, "*CLS")

    def _unt(self, args: list[str]) -> str:
        self._nargs(args, 0, 1)
        if args and _int(args[0]) not in (0, 1):
            raise FlexError(120, "UNT? mode")
        return ";".join(f"{m},0" if m != "0" else "0,0" for m in self.modules)

    def _errx(self, args: list[str]) -> str:
        self._nargs(args, 0, 1)
        mode = _int(args[0]) if args else 0
        if mode not in (0, 1, 2):
            raise FlexError(120, "ERRX? mode")
        if not self.errors:
            return {0: NO_ERROR, 1: "+0", 2: '"No Error."'}[mode]
        code, text = self.errors.popleft()
        return {0: f'+{code},"{text}"', 1: f"+{code}", 2: f'"{text}"'}[mode]

    def _err(self, args: list[str]) -> str:
        codes = [self.errors.popleft()[0] if self.errors else 0 for _ in range(4)]
        return ",".join(str(c) for c in codes)

    # ------------------------------------------------------------------ outputs
    def _cn(self, args: list[str]) -> None:
        chs = self._channels(args, self.smu_channels + self.cmu_channels + self.wgfmu_channels)
        for ch in chs or self.smu_channels + self.cmu_channels:
            if ch in self.smus:
                self.smus[ch].enabled = True
            elif ch in self.cmu_enabled:
                self.cmu_enabled[ch] = True

    def _cl(self, args: list[str]) -> None:
        chs = self._channels(args, self.smu_channels + self.cmu_channels + self.wgfmu_channels)
        for ch in chs or self.smu_channels + self.cmu_channels:
            if ch in self.smus:
                s = self.smus[ch]
                s.enabled, s.mode, s.value = False, "V", 0.0
            elif ch in self.cmu_enabled:
                self.cmu_enabled[ch] = False

    def _dz(self, args: list[str]) -> None:
        chs = self._channels(args, self.smu_channels)
        for ch in chs or self.smu_channels:
            s = self.smus[ch]
            s.mode, s.value = "V", 0.0

    def _dv(self, args: list[str]) -> None:
        self._nargs(args, 3, 6)
        s = self._smu(args[0])
        rng = _int(args[1])
        if rng not in (0, *V_RANGES, *(-r for r in V_RANGES)):
            raise FlexError(124, f"voltage range {rng}")
        v = _num(args[2])
        if abs(v) > SMU_V_MAX:
            raise FlexError(120, f"voltage {v}")
        comp = _num(args[3]) if len(args) > 3 else s.compliance if s.mode == "V" else None
        if comp is not None and (comp == 0 or abs(comp) > SMU_I_MAX):
            raise FlexError(123, f"current compliance {comp}")
        if not s.enabled:
            raise FlexError(120, "output relay open: send CN first")
        s.mode, s.value, s.compliance, s.range_code = "V", v, comp, rng

    def _di(self, args: list[str]) -> None:
        self._nargs(args, 3, 6)
        s = self._smu(args[0])
        rng = _int(args[1])
        if rng not in (0, *I_RANGES, *(-r for r in I_RANGES)):
            raise FlexError(124, f"current range {rng}")
        i = _num(args[2])
        if abs(i) > SMU_I_MAX:
            raise FlexError(120, f"current {i}")
        comp = _num(args[3]) if len(args) > 3 else 2.0
        if comp == 0 or abs(comp) > SMU_V_MAX:
            raise FlexError(123, f"voltage compliance {comp}")
        if not s.enabled:
            raise FlexError(120, "output relay open: send CN first")
        s.mode, s.value, s.compliance, s.range_code = "I", i, comp, rng

    # ------------------------------------------------------------------ spot measurements
    def _ti(self, args: list[str]) -> str:
        self._nargs(args, 1, 2)
        ch = _int(args[0])
        if ch in self.cmu_channels or ch not in self.smus:
            raise FlexError(121, f"channel {ch}")
        rng = _int(args[1]) if len(args) > 1 else 0
        if rng not in (0, *I_RANGES, *(-r for r in I_RANGES)):
            raise FlexError(124, f"current range {rng}")
        data = self._measure_all()
        return self._token(ch, "I", data, rng)

    def _tv(self, args: list[str]) -> str:
        self._nargs(args, 1, 2)
        ch = _int(args[0])
        if ch not in self.smus:
            raise FlexError(121, f"channel {ch}")
        rng = _int(args[1]) if len(args) > 1 else 0
        if rng not in (0, *V_RANGES, *(-r for r in V_RANGES)):
            raise FlexError(124, f"voltage range {rng}")
        data = self._measure_all()
        return self._token(ch, "V", data, rng)

    def _token(
        self, ch: int, dtype: str, data: dict[int, tuple[float, float, bool]], rng: int = 0
    ) -> str:
        v, i, in_comp = data[ch]
        value = i if dtype == "I" else v
        status = "N"
        if in_comp:
            status = "C"
        elif any(c for k, (_, _, c) in data.items() if k != ch):
            status = "T"
        if rng < 0:
            full = (I_RANGES if dtype == "I" else V_RANGES)[-rng]
            if abs(value) > full:
                status, value = "V", DUMMY
        text = format_value(value)
        if self.set.fmt[0] == 2:
            return text
        return f"{status}{channel_letter(ch)}{dtype}{text}"

    # ------------------------------------------------------------------ MM / XE
    def _mm(self, args: list[str]) -> None:
        if not args:
            raise FlexError(103, "MM needs a mode")
        mode = _int(args[0])
        if mode not in (1, 2):
            raise FlexError(999, f"MM {mode}")
        chs = self._channels(args[1:], self.smu_channels)
        if not chs:
            raise FlexError(122, "MM needs measurement channels")
        self.set.mm = (mode, chs)

    def _xe(self, args: list[str]) -> str:
        if self.set.mm is None:
            raise FlexError(120, "no measurement mode (MM)")
        mode, chs = self.set.mm
        self.chip.advance(XE_OVERHEAD_S)
        with_source = self.set.fmt[1] == 1
        if mode == 1:
            data = self._measure_all()
            return ",".join(self._token(ch, self._meas_type(ch), data) for ch in chs)
        sw = self.set.sweep
        if sw is None:
            raise FlexError(120, "staircase sweep without a sweep source (WV)")
        s = self.smus[sw.channel]
        if not s.enabled:
            raise FlexError(120, "sweep channel output is off")
        saved = (s.mode, s.value, s.compliance)
        hold, delay = self.set.wt[0], self.set.wt[1]
        self.chip.advance(hold)
        tokens: list[str] = []
        levels = sw.levels()
        try:
            for k, level in enumerate(levels):
                s.mode, s.value = "V", float(level)
                if sw.icomp is not None:
                    s.compliance = sw.icomp
                self.chip.advance(delay)
                data = self._measure_all()
                tokens += [self._token(ch, self._meas_type(ch), data) for ch in chs]
                if with_source:
                    last = "E" if k == len(levels) - 1 else "W"
                    tokens.append(
                        f"{last}{channel_letter(sw.channel)}v{format_value(float(level))}"
                    )
        finally:
            post = self.set.wm[1]
            s.mode, s.value, s.compliance = saved
            if post == 1:
                s.value = float(levels[0])
            elif post == 2:
                s.value = float(levels[-1])
        return ",".join(tokens)

    def _meas_type(self, ch: int) -> str:
        return "I" if self.smus[ch].mode == "V" else "V"

    def _wv(self, args: list[str]) -> None:
        self._nargs(args, 6, 8)
        ch = _int(args[0])
        if ch not in self.smus:
            raise FlexError(121, f"channel {ch}")
        mode = _int(args[1])
        if mode not in (1, 2, 3, 4):
            raise FlexError(120, f"sweep mode {mode}")
        rng = _int(args[2])
        if rng not in (0, *V_RANGES):
            raise FlexError(124, f"voltage range {rng}")
        start, stop = _num(args[3]), _num(args[4])
        steps = _int(args[5])
        if not 1 <= steps <= 10001 or max(abs(start), abs(stop)) > SMU_V_MAX:
            raise FlexError(120, "sweep start/stop/steps")
        icomp = _num(args[6]) if len(args) > 6 else None
        pcomp = _num(args[7]) if len(args) > 7 else None
        if icomp is not None and (icomp == 0 or abs(icomp) > SMU_I_MAX):
            raise FlexError(123, f"current compliance {icomp}")
        self.set.sweep = _Sweep(ch, mode, rng, start, stop, steps, icomp, pcomp)

    def _pa(self, args: list[str]) -> None:
        """``PA <s>``: pause command execution; the chip's clock advances by ``s``."""
        self._nargs(args, 1, 1)
        s = _num(args[0])
        if not 0 <= s <= 655.35:
            raise FlexError(120, "PA wait time")
        self.chip.advance(s)

    def _wt(self, args: list[str]) -> None:
        self._nargs(args, 2, 5)
        vals = [_num(a) for a in args] + [0.0] * (5 - len(args))
        if vals[0] < 0 or vals[0] > 655.35 or vals[1] < 0 or vals[1] > 65.535 or min(vals) < 0:
            raise FlexError(120, "sweep timing")
        self.set.wt = tuple(vals)  # type: ignore[assignment]

    def _wm(self, args: list[str]) -> None:
        self._nargs(args, 1, 2)
        abort = _int(args[0])
        post = _int(args[1]) if len(args) > 1 else 1
        if abort not in (1, 2) or post not in (1, 2):
            raise FlexError(120, "WM abort/post")
        self.set.wm = (abort, post)

    # ------------------------------------------------------------------ settings
    def _fmt(self, args: list[str]) -> None:
        self._nargs(args, 1, 2)
        f = _int(args[0])
        mode = _int(args[1]) if len(args) > 1 else 0
        if f not in (1, 2, 3, 4, 5, 11, 12, 13, 15, 21, 22, 25) or mode not in range(0, 11):
            raise FlexError(120, f"FMT {f},{mode}")
        if f not in (1, 2):
            raise FlexError(999, f"data format FMT {f}")
        self.set.fmt = (f, mode)

    def _av(self, args: list[str]) -> None:
        self._nargs(args, 1, 2)
        n = _int(args[0])
        mode = _int(args[1]) if len(args) > 1 else 0
        if not (-100 <= n <= 1023 and n != 0) or mode not in (0, 1):
            raise FlexError(120, f"AV {n},{mode}")
        self.set.av = (n, mode)

    def _az(self, args: list[str]) -> None:
        self._nargs(args, 1, 1)
        v = _int(args[0])
        if v not in (0, 1):
            raise FlexError(120, f"AZ {v}")
        self.set.az = v

    def _fl(self, args: list[str]) -> None:
        if not args:
            raise FlexError(103, "FL needs a mode")
        mode = _int(args[0])
        if mode not in (0, 1):
            raise FlexError(120, f"FL {mode}")
        for ch in self._channels(args[1:], self.smu_channels) or self.smu_channels:
            self.set.filters[ch] = mode

    def _cmm(self, args: list[str]) -> None:
        self._nargs(args, 2, 2)
        s = self._smu(args[0])
        mode = _int(args[1])
        if mode not in (0, 1, 2, 3, 4):
            raise FlexError(120, f"CMM mode {mode}")
        s.cmm = mode

    def _ri(self, args: list[str]) -> None:
        self._nargs(args, 2, 2)
        s = self._smu(args[0])
        rng = _int(args[1])
        if rng not in (0, *I_RANGES, *(-r for r in I_RANGES)):
            raise FlexError(124, f"current range {rng}")
        s.ri = rng

    def _acknowledge(self, head: str, args: list[str]) -> None:
        for a in args:
            if a and not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", a):
                raise FlexError(102, f"{head} parameter {a!r}")
        self.set.acknowledged[head] = ",".join(args)

    def _tc(self, args: list[str]) -> None:
        raise FlexError(999, "MFCMU measurements (TC/TTC)")

    def _lrn(self, args: list[str]) -> str:
        self._nargs(args, 1, 1)
        t = _int(args[0])
        if t == 0:
            on = [ch for ch, s in self.smus.items() if s.enabled] + [
                ch for ch, e in self.cmu_enabled.items() if e
            ]
            return "CN" + ",".join(str(c) for c in sorted(on)) if on else "CL"
        if t == 31:
            parts = [
                "TM1",
                f"AV{self.set.av[0]},{self.set.av[1]}",
                "CM1",
                f"FMT{self.set.fmt[0]},{self.set.fmt[1]}",
            ]
            if self.set.mm is not None:
                mode, chs = self.set.mm
                parts.append(f"MM{mode}," + ",".join(str(c) for c in chs))
            return ";".join(parts)
        if t == 32:
            return ";".join(f"RI{ch},{s.ri}" for ch, s in self.smus.items())
        if t == 33:
            # WV last: QCoDeS's parser of this reply reads the WV compliances up to the end
            wt = ",".join(f"{x:g}" for x in self.set.wt)
            parts = [f"WT{wt}", f"WM{self.set.wm[0]},{self.set.wm[1]}"]
            sw = self.set.sweep
            if sw is not None:
                wv = f"WV{sw.channel},{sw.mode},{sw.range_code},{sw.start:g},{sw.stop:g},{sw.steps}"
                if sw.icomp is not None:
                    wv += f",{sw.icomp:g}"
                    if sw.pcomp is not None:
                        wv += f",{sw.pcomp:g}"
                parts.append(wv)
            return ";".join(parts)
        if t == 46:
            return ";".join(f"CMM{ch},{s.cmm}" for ch, s in self.smus.items())
        raise FlexError(999, f"*LRN? {t}")

    # ------------------------------------------------------------------ physics
    def smu_pad(self, smu: int) -> tuple[str, int] | None:
        """The chip pad an SMU reaches (through its RSU in SMU mode), or None."""
        if self.wiring is None:
            return None
        ch = self.wiring.rsu.get(smu)
        if ch is None or ch not in self.wiring.pads or self.wgfmu[ch].mode != OP_SMU:
            return None
        return parse_pad(self.wiring.pads[ch])

    def pad_sources(self) -> dict[tuple[str, int], tuple[str, int]]:
        """{pad: ("wgfmu", channel) or ("smu", channel)} for every driven pad."""
        out: dict[tuple[str, int], tuple[str, int]] = {}
        if self.wiring is None:
            return out
        rsu_smu = {ch: smu for smu, ch in self.wiring.rsu.items()}
        for ch, pad in self.wiring.pads.items():
            hw = self.wgfmu[ch]
            key = parse_pad(pad)
            if hw.drives:
                out[key] = ("wgfmu", ch)
            elif hw.mode == OP_SMU and ch in rsu_smu and self.smus[rsu_smu[ch]].enabled:
                out[key] = ("smu", rsu_smu[ch])
        return out

    def line_voltages(
        self, overrides: dict[tuple[str, int], float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Row (top) and column (bottom) voltages now; NaN = floating pad or line.

        Voltage-source SMUs and driving WGFMU channels set their pads; ``overrides`` set
        pads explicitly (used to solve current-source SMUs).
        """
        c = self.chip
        row_v = np.full(c.rows, np.nan)
        col_v = np.full(c.cols, np.nan)
        for (side, idx), (kind, ch) in self.pad_sources().items():
            if kind == "wgfmu":
                v = self.wgfmu[ch].level_v
            else:
                s = self.smus[ch]
                if s.mode != "V":
                    continue
                v = s.value
            (row_v if side == "top" else col_v)[idx] = v
        for (side, idx), v in (overrides or {}).items():
            (row_v if side == "top" else col_v)[idx] = v
        return row_v, col_v

    def quiet_v(self) -> float:
        """Largest bias that changes nothing on the chip (reads stay below it)."""
        p = self.chip.params
        th = min(p.v_set_threshold_v, p.v_reset_threshold_v) * (1 - 3 * p.v_threshold_d2d)
        return float(min(p.disturb_v_min_v, p.denoise_v_low_frac * th))

    def line_currents(self, row_v: np.ndarray, col_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Chip line currents at any bias: above the read limit, by linearity (ohmic cells)."""
        driven = np.concatenate([row_v[~np.isnan(row_v)], col_v[~np.isnan(col_v)]])
        if driven.size == 0:
            return np.zeros(self.chip.rows), np.zeros(self.chip.cols)
        vmax = float(np.max(np.abs(driven)))
        limit = 0.8 * self.chip.params.disturb_v_min_v
        scale = 1.0 if vmax < limit else limit / vmax
        ir, ic = self.chip.line_currents(row_v * scale, col_v * scale, advance=False)
        return ir / scale, ic / scale

    def stress(self, row_v: np.ndarray, col_v: np.ndarray, duration_s: float) -> None:
        """Apply DC levels to the chip for ``duration_s`` if they exceed the quiet level."""
        driven = np.concatenate([row_v[~np.isnan(row_v)], col_v[~np.isnan(col_v)], [0.0]])
        if driven.max() - driven.min() < self.quiet_v():
            self.chip.advance(duration_s)
            return
        p = self.chip.params
        width = float(min(max(duration_s, p.width_min_s), p.width_max_s))
        self.chip.apply_line_voltages(row_v, col_v, width)
        if duration_s > width:
            self.chip.advance(duration_s - width)

    def pad_current(self, pad: tuple[str, int], ir: np.ndarray, ic: np.ndarray) -> float:
        """Current flowing out of the source on ``pad`` into the chip (A)."""
        side, idx = pad
        return float(ir[idx]) if side == "top" else -float(ic[idx])

    def _measure_all(self) -> dict[int, tuple[float, float, bool]]:
        """One reading of every SMU: {channel: (voltage V, current A, at compliance)}."""
        self.readings += 1
        duration = self.reading_s * max(1, abs(self.set.av[0]))
        overrides: dict[tuple[str, int], float] = {}
        # current-source SMUs: the pad voltage that makes their current (linear network)
        for smu, s in self.smus.items():
            pad = self.smu_pad(smu)
            if s.enabled and s.mode == "I" and pad is not None:
                v0, v1 = 0.0, 0.1
                i0 = self.pad_current(
                    pad, *self.line_currents(*self.line_voltages({**overrides, pad: v0}))
                )
                i1 = self.pad_current(
                    pad, *self.line_currents(*self.line_voltages({**overrides, pad: v1}))
                )
                g = (i1 - i0) / (v1 - v0)
                v = (s.value - i0) / g if g > 1e-15 else math.copysign(s.compliance or 2.0, s.value)
                comp = s.compliance or 2.0
                overrides[pad] = float(np.clip(v, -abs(comp), abs(comp)))
        row_v, col_v = self.line_voltages(overrides)
        self.stress(row_v, col_v, duration)
        ir, ic = self.line_currents(row_v, col_v)
        out: dict[int, tuple[float, float, bool]] = {}
        for smu, s in self.smus.items():
            pad = self.smu_pad(smu)
            noise = _OPEN_NOISE_A * float(self.rng.standard_normal())
            if not s.enabled:
                out[smu] = (0.0, noise, False)
                continue
            if pad is None:  # relay closed, but the SMU reaches nothing: an open circuit
                v = s.value if s.mode == "V" else math.copysign(s.compliance or 2.0, s.value or 1.0)
                i = noise if s.mode == "V" else s.value
                out[smu] = (v, i, s.mode == "I" and s.value != 0)
                continue
            if s.mode == "V":
                i = self.pad_current(pad, ir, ic) + noise
                comp = s.compliance if s.compliance is not None else SMU_I_MAX
                if abs(i) > abs(comp):
                    out[smu] = (s.value, math.copysign(abs(comp), i), True)
                else:
                    out[smu] = (s.value, i, False)
            else:
                v = overrides.get(pad, 0.0)
                comp = abs(s.compliance or 2.0)
                out[smu] = (v, s.value, abs(v) >= comp - 1e-12)
        return out


_HANDLERS: dict[str, Any] = {
    "*IDN?": SimB1500._idn,
    "*RST": SimB1500._rst,
    "*OPC?": SimB1500._opc,
    "*STB?": SimB1500._stb,
    "*CLS": SimB1500._cls,
    "UNT?": SimB1500._unt,
    "ERRX?": SimB1500._errx,
    "ERR?": SimB1500._err,
    "CN": SimB1500._cn,
    "CL": SimB1500._cl,
    "DZ": SimB1500._dz,
    "RZ": lambda self, args: None,
    "DV": SimB1500._dv,
    "DI": SimB1500._di,
    "TI": SimB1500._ti,
    "TV": SimB1500._tv,
    "MM": SimB1500._mm,
    "XE": SimB1500._xe,
    "WV": SimB1500._wv,
    "WT": SimB1500._wt,
    "PA": SimB1500._pa,
    "WM": SimB1500._wm,
    "FMT": SimB1500._fmt,
    "AV": SimB1500._av,
    "AZ": SimB1500._az,
    "FL": SimB1500._fl,
    "CMM": SimB1500._cmm,
    "RI": SimB1500._ri,
    "TC": SimB1500._tc,
    "TTC": SimB1500._tc,
    "*LRN?": SimB1500._lrn,
}
# commands accepted with numeric parameters and no simulated effect (settings kept)
_ACKNOWLEDGED = {
    "AIT", "AAD", "RV", "TSC", "TSR", "IMP", "FC", "ACV", "DCV", "ADJ", "LMN", "ACT",
    "WMDCV", "WTDCV", "WDCV", "CORRST", "DCORR", "CLCORR", "CORRL",
}  # fmt: skip


__all__ = ["SimB1500", "WgfmuHardware", "format_value", "channel_letter"]
