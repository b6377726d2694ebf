"""Simulated Keithley 4200A-SCS answering KXCI, wired to the chip through the simulated 707B.

What it measures depends on what the simulated 707B has closed: each chip line takes the
voltage of the terminal routed to it (NaN = floating when nothing drives it), pulses go to
:meth:`SimChip.apply_line_voltages`, and an SMU's current is the sum of the line currents
(:meth:`SimChip.line_currents`, floating lines solved by Kirchhoff's law) of the lines routed
to it. So nothing routed reads an open circuit, a misrouting reads the wrong cell, a floating
read scheme reads sneak paths, and V/3 pulses disturb the half-selected cells.

The language (see ``drivers/kxci_commands.py`` for the sources):

* ``*IDN?``, ``*OPT?``, ``ID`` from ``k4200.yaml``; ``*RST``, ``BC``, ``SP``.
* Messages may hold several commands separated by ``;`` (PyMeasure sends ``US;DV1,...``);
  the reply is that of the last command, or the first error.
* Every command without data answers ``ACK``; a rejected one answers ``ERROR <code>:
  <message>`` (memprog's convention for the LAN error reply, not verified on hardware):
  -100 unrecognised command, -101 not valid in this mode, -102 bad parameter, -980
  parameter not accessible, -992 command in lower case, -1001 PMU execution error.
* User mode (``US``): ``DV``/``DI`` (range, value, compliance; no value = off), ``TV``/``TI``
  -> ``NAI+1.2345E-05``. Status letters produced: ``N``; ``C`` when this SMU is at its
  compliance (also when it fights another source on a shorted line); ``T`` when another SMU
  is in compliance.
* System mode (``DE``, ``SS``, ``SM``, ``MD``): ``CH``, ``VR`` (linear VAR1), ``VC``, ``HT``,
  ``DT``, ``IT``, ``ME1`` (runs synchronously), ``SP`` (1 = data ready once, then 0),
  ``DO 'name'`` (status-prefixed list), ``RD 'name',i`` (plain number; ``0`` past the end,
  as the Tektronix example loop expects). Display commands (``DM``, ``XN``, ``YA``, ``RS``,
  ``RG``) are accepted.
* User libraries (``UL``): ``EX BeepLib beep(freq,dur)`` and ``EX memprog_sim
  smu_read(smu,volts,npts,I,I_size)`` (npts current readings of one SMU at ``volts``);
  ``EX`` -> ``RETURN VALUE = n``; ``GN name n`` / ``GP position n`` -> ``PARAM VALUE =
  v1;v2;...``.
* 4225-PMU (channels 1-4 = PMU1-1, PMU1-2, PMU2-1, PMU2-2): ``:PMU:INIT``,
  ``:PMU:RPM:CONFIGURE``, ``:PMU:PULSE:TRAIN ch,base,amplitude`` (level = base +
  amplitude), ``:PMU:PULSE:TIMES``, ``:PMU:PULSE:BURST:COUNT``, ``:PMU:MEASURE:MODE``,
  ``:PMU:MEASURE:RANGE``, ``:PMU:OUTPUT:STATE``, ``:PMU:EXECUTE`` (runs synchronously),
  ``:PMU:TEST:STATUS?`` (0), ``:PMU:LOAD``, ``:PMU:SOURCE:RANGE``. With option
  ``sim_pmu_source_ohm: 50`` each channel is a 50 ohm source corrected for its load setting
  (``_source_drop``); the default 0 keeps ideal sources (see ``__init__``). Channels with different widths pulse together from the same
  start; each phase between two widths is applied separately.

Timing charged to the chip clock [choices]: KXCI message 0.5 ms (LAN round trip); a spot
reading one integration time (IT1 0.1, IT2 1, IT3 16 power-line cycles; 60 Hz, option
``sim_line_frequency_hz``); a PMU execution burst x period plus 1 ms of setup (option
``sim_pmu_overhead_s``). Simulator limits [choice]: a PMU burst count of at most
10,000 and ``smu_read`` arrays of at most 65,536 points (each is simulated point by point:
a served instrument must not hang on one message); more is refused with ``-102``.

Approximations: DC levels act on the chip only while a reading (or sweep step) is taken,
as a stress of one integration time (capped at the technology's longest pulse); currents at
bias levels above the chip's disturb threshold are computed by linearity (the array is
ohmic) from a scaled-down bias.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from memprog.core.crossbar_wiring import CrossbarWiring, pmu_channel_number, wiring_from_bench
from memprog.core.errors import ConfigError
from memprog.sim_instruments.base import SimulatedInstrument, StaticSurface, register

if TYPE_CHECKING:  # pragma: no cover
    from memprog.core.bench_config import InstrumentConfig
    from memprog.sim_instruments.base import SimBench

_V_LETTERS = {1: "A", 2: "B", 3: "C", 4: "D", 5: "G", 6: "H", 7: "I", 8: "J"}
_I_LETTERS = {n: "ABCDEFGH"[n - 1] for n in range(1, 9)}
_PLC = {1: 0.1, 2: 1.0, 3: 16.0}
_OPEN_NOISE_A = 2e-12  # SMU noise floor on an open circuit [choice]
# [choice] simulator limits (each burst pulse and each smu_read point is simulated one by
# one, so an unbounded count from a client would hang a served instrument)
PMU_BURST_MAX = 10_000
UL_ARRAY_MAX = 65_536


class KxciError(Exception):
    """A command the simulated 4200 rejects: becomes an ``ERROR <code>: <message>`` reply."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Smu:
    mode: str = "off"  # "off", "V" (voltage source) or "I" (current source)
    value: float = 0.0
    compliance: float = 0.0
    range_code: int = 0


@dataclass
class _PmuChannel:
    base: float = 0.0
    amplitude: float = 0.0
    period: float = 1e-6
    width: float = 500e-9
    rise: float = 100e-9
    fall: float = 100e-9
    output: bool = False
    rpm: int = 0
    load: float = 1e6  # :PMU:LOAD (ohm)
    range_v: int = 10  # :PMU:SOURCE:RANGE

    @property
    def driving(self) -> bool:
        return self.output and self.rpm == 0


def _pmu_terminal(n: int) -> str:
    """KXCI PMU channel number -> terminal name: 1 -> PMU1-1, 3 -> PMU2-1."""
    return f"PMU{(n + 1) // 2}-{2 - n % 2}"


def _split_commands(message: str) -> list[str]:
    """Split on ``;`` outside parentheses and quotes."""
    out, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(message):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(depth - 1, 0)
        elif ch == ";" and depth == 0:
            out.append(message[start:i])
            start = i + 1
    out.append(message[start:])
    return [c.strip() for c in out if c.strip()]


def _args(text: str) -> list[str]:
    return [a.strip().strip("'\"") for a in text.split(",")] if text.strip() else []


def _float(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise KxciError(-102, f"invalid {what} {text!r}") from None
    if not np.isfinite(v):
        raise KxciError(-102, f"invalid {what} {text!r}")
    return v


def _int(text: str, what: str) -> int:
    v = _float(text, what)
    if v != int(v):
        raise KxciError(-102, f"invalid {what} {text!r}")
    return int(v)


def fmt_reading(value: float) -> str:
    """A KXCI reading mantissa/exponent ``±N.NNNNE±NN``."""
    return f"{value:+.4E}"


@register("k4200")
class Sim4200(SimulatedInstrument):
    """Simulated 4200A-SCS: SMUs, two 4225-PMU cards, user libraries, KXCI parsing."""

    write_termination = "\0"
    read_termination = "\0"
    latency_s = 500e-6

    def __init__(self, name: str, config: InstrumentConfig, bench: SimBench) -> None:
        super().__init__(name, config, bench)
        self.static = StaticSurface("k4200.yaml", "Keithley4200")
        cards = [c.strip() for c in (self.static.match("*OPT?") or "").split(",") if c.strip()]
        self.smu_numbers = sorted(
            int(m.group(1)) for c in cards if (m := re.match(r"^SMU(?:PA)?(\d)$", c))
        )
        pmu_cards = sorted(int(m.group(1)) for c in cards if (m := re.match(r"^PMU(\d)$", c)))
        self.pmu_numbers = [2 * (c - 1) + n for c in pmu_cards for n in (1, 2)]
        opts = config.options
        self.line_frequency_hz = float(opts.get("sim_line_frequency_hz", 60.0))
        self.pmu_overhead_s = float(opts.get("sim_pmu_overhead_s", 1e-3))
        # the 4225-PMU's 50 ohm source: option sim_pmu_source_ohm (50 models it; the default
        # 0 keeps ideal sources because the V/3 disturb calibration (Drolet's drift) assumes
        # them: with 50 ohm a channel biasing 7 lines sags/rises by ~0.07 V at 1.2 V pulses)
        self.pmu_source_ohm = float(opts.get("sim_pmu_source_ohm", 0.0))
        self.wiring: CrossbarWiring | None = None
        wiring = bench.config.wiring
        if wiring:
            self.wiring = wiring_from_bench(wiring, bench.config.chip.rows, bench.config.chip.cols)
        self._rng = np.random.default_rng(bench.config.chip.seed + 4200)
        self._conn_key: tuple[int, int] | None = None
        self._conn: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._multi: tuple[np.ndarray, np.ndarray] = (np.zeros(0, int), np.zeros(0, int))
        self.pmu_executions = 0
        #: KXCI over GPIB (no ACK; errors in the status byte); the socket server clears it
        self.gpib = config.resource.strip().upper().startswith("GPIB")
        self.syntax_error = False
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Power-on state: SMUs off, PMUs initialised, no data, no mode."""
        self.smus = {n: _Smu() for n in self.smu_numbers}
        self.pmu = {n: _PmuChannel() for n in self.pmu_numbers}
        self.pmu_mode = 0
        self.burst_count = 1
        self.measure_mode = 1
        self.mode = ""
        self.integration = 2
        self.sweep_channels: dict[int, tuple[str, str, int, int]] = {}
        self.var1: tuple[float, float, float, float] | None = None
        self.constants: dict[int, tuple[float, float]] = {}
        self.hold_s = 0.0
        self.delay_s = 0.0
        self.data: dict[str, list[tuple[str, float]]] = {}
        self.data_ready = False
        self.ul_params: dict[str, np.ndarray] = {}
        self.ul_positions: dict[int, str] = {}

    def _smu(self, text: str) -> int:
        n = _int(text, "channel")
        if n not in self.smus:
            raise KxciError(-102, f"SMU{n} is not installed")
        return n

    def _pmu_ch(self, text: str) -> int:
        n = _int(text, "PMU channel")
        if n not in self.pmu:
            raise KxciError(-102, f"PMU channel {n} is not installed")
        return n

    def _need(self, mode: str, command: str) -> None:
        if self.mode != mode:
            raise KxciError(
                -101, f"{command} is not valid in {self.mode or 'no'} mode (needs {mode})"
            )

    # ------------------------------------------------------------------ routing
    def _matrix(self) -> Any:
        if self.wiring is None:
            return None
        return self.bench.instruments.get(self.wiring.matrix)

    def _connectivity(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """terminal -> (word-line indices, bit-line indices) it is connected to now."""
        matrix = self._matrix()
        if matrix is None:
            return {}
        key = (id(matrix), matrix.version)
        if key == self._conn_key:
            return self._conn
        w = self.wiring
        assert w is not None
        col_lines = w.column_lines()
        rows: dict[str, list[int]] = {}
        cols: dict[str, list[int]] = {}
        row_count = np.zeros(self.chip.rows, int)
        col_count = np.zeros(self.chip.cols, int)
        letters = "ABCDEFGH"
        for slot, r, c in matrix.closed_crosspoints():
            term = w.rows.get(letters[r])
            line = col_lines.get((slot, c))
            if term is None or line is None:
                continue
            kind, i = line
            (rows if kind == "word" else cols).setdefault(term, []).append(i)
            (row_count if kind == "word" else col_count)[i] += 1
        conn = {
            t: (
                np.array(sorted(set(rows.get(t, []))), int),
                np.array(sorted(set(cols.get(t, []))), int),
            )
            for t in set(rows) | set(cols)
        }
        self._conn, self._conn_key = conn, key
        self._multi = (np.flatnonzero(row_count > 1), np.flatnonzero(col_count > 1))
        return conn

    def _terminal_level(self, term: str, pulse_levels: dict[int, float] | None) -> float | None:
        """Voltage a terminal forces (None: high impedance / current source)."""
        if term == "GNDU":
            return 0.0
        if term.startswith("SMU"):
            s = self.smus.get(int(term[3:]))
            return s.value if s is not None and s.mode == "V" else None
        ch = self.pmu.get(pmu_channel_number(term))
        if ch is None or not ch.driving:
            return None
        if pulse_levels is not None and pmu_channel_number(term) in pulse_levels:
            return pulse_levels[pmu_channel_number(term)]
        return ch.base

    def _drive(
        self,
        conn: dict[str, tuple[np.ndarray, np.ndarray]],
        pulse_levels: dict[int, float] | None = None,
    ):
        """Line voltages (NaN floating) and the terminals fighting on a shorted line."""
        rv = np.full(self.chip.rows, np.nan)
        cv = np.full(self.chip.cols, np.nan)
        levels = {t: self._terminal_level(t, pulse_levels) for t in conn}
        for t, (ri, ci) in conn.items():
            v = levels[t]
            if v is not None:
                rv[ri] = v
                cv[ci] = v
        fighting: set[str] = set()
        mr, mc = self._multi
        if mr.size or mc.size:
            for kind, idx in (("r", mr), ("c", mc)):
                for i in idx:
                    terms = [t for t, (ri, ci) in conn.items() if i in (ri if kind == "r" else ci)]
                    driven = [levels[t] for t in terms if levels[t] is not None]
                    if len(driven) > 1 and max(driven) - min(driven) > 1e-9:
                        fighting |= {t for t in terms if levels[t] is not None}
        return rv, cv, fighting

    def _currents(self, rv: np.ndarray, cv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Line currents for any bias: the ohmic array scales, so large biases are scaled down."""
        allv = np.concatenate([rv, cv])
        if np.isnan(allv).all():
            return np.zeros(self.chip.rows), np.zeros(self.chip.cols)
        vmax = float(np.nanmax(np.abs(allv)))
        lim = 0.9 * self.chip.params.disturb_v_min_v
        s = 1.0 if vmax < lim or vmax == 0 else lim / vmax
        ri, ci = self.chip.line_currents(rv * s, cv * s, advance=False)
        return ri / s, ci / s

    @staticmethod
    def _terminal_current(
        conn: dict[str, tuple[np.ndarray, np.ndarray]], term: str, ri: np.ndarray, ci: np.ndarray
    ) -> float:
        """Current out of a terminal into the array (SMU sign convention)."""
        rows, cols = conn.get(term, (np.zeros(0, int), np.zeros(0, int)))
        return float(ri[rows].sum() - ci[cols].sum())

    def _stress(self, rv: np.ndarray, cv: np.ndarray, duration_s: float) -> float:
        """DC levels above the disturb threshold act on the chip as a pulse of the reading's
        length (capped at the technology's longest pulse); returns the time so spent."""
        p = self.chip.params
        allv = np.concatenate([rv, cv])
        if np.isnan(allv).all() or float(np.nanmax(np.abs(allv))) < p.disturb_v_min_v:
            return 0.0
        width = min(duration_s, p.width_max_s)
        if width < p.width_min_s:
            return 0.0
        self.chip.apply_line_voltages(rv, cv, width)
        return width

    # ------------------------------------------------------------------ SMU measurements
    def _measure(self, duration_s: float) -> dict[int, tuple[float, float, str]]:
        """(current A, voltage V, status) of every SMU; charges ``duration_s`` to the clock."""
        conn = self._connectivity()
        rv, cv, fighting = self._drive(conn)
        self.chip.advance(max(duration_s - self._stress(rv, cv, duration_s), 0.0))
        out: dict[int, tuple[float, float, str]] = {}
        # current sources: their line voltage follows from linearity, I(V) = I0 + g * V
        for n, s in self.smus.items():
            term = f"SMU{n}"
            if s.mode != "I" or term not in conn:
                continue
            rows, cols = conn[term]
            r0, c0 = rv.copy(), cv.copy()
            r0[rows], c0[cols] = 0.0, 0.0
            i0 = self._terminal_current(conn, term, *self._currents(r0, c0))
            r1, c1 = np.where(np.isnan(rv), np.nan, 0.0), np.where(np.isnan(cv), np.nan, 0.0)
            r1[rows], c1[cols] = 0.1, 0.1
            g = self._terminal_current(conn, term, *self._currents(r1, c1)) / 0.1
            v = (s.value - i0) / g if abs(g) > 1e-15 else np.copysign(np.inf, s.value - i0)
            if abs(v) > s.compliance:
                v = float(np.copysign(s.compliance, v))
                fighting.add(term)
            rv[rows], cv[cols] = v, v
            out[n] = (s.value, v, "N")
        ri, ci = self._currents(rv, cv)
        in_compliance = set()
        for n, s in self.smus.items():
            term = f"SMU{n}"
            if s.mode == "off":
                out[n] = (0.0, 0.0, "N")
                continue
            if s.mode == "I":
                if n not in out:  # an unconnected current source runs to its compliance
                    out[n] = (0.0, float(np.copysign(s.compliance, s.value)), "C")
                    in_compliance.add(n)
                elif term in fighting:
                    in_compliance.add(n)
                    out[n] = (out[n][0], out[n][1], "C")
                continue
            if term in conn:
                i = self._terminal_current(conn, term, ri, ci)
            else:
                i = float(self._rng.normal(0.0, _OPEN_NOISE_A))
            status = "N"
            if term in fighting or abs(i) > s.compliance:
                i = float(np.copysign(s.compliance, i if term not in fighting else (i or 1.0)))
                status = "C"
                in_compliance.add(n)
            out[n] = (i, s.value, status)
        if in_compliance:
            out = {n: (i, v, st if n in in_compliance else "T") for n, (i, v, st) in out.items()}
        return out

    def _integration_s(self) -> float:
        return _PLC[self.integration] / self.line_frequency_hz

    def _spot(self, n: int, what: str) -> str:
        i, v, status = self._measure(self._integration_s())[n]
        if what == "I":
            return f"{status}{_I_LETTERS[n]}I{fmt_reading(i)}"
        return f"{status}{_V_LETTERS[n]}V{fmt_reading(v)}"

    # ------------------------------------------------------------------ PMU
    def _pmu_execute(self) -> None:
        if self.pmu_mode != 0:
            raise KxciError(-1001, "segment ARB execution is not simulated (use :PMU:INIT 0)")
        conn = self._connectivity()
        active = {n: ch for n, ch in self.pmu.items() if ch.driving and _pmu_terminal(n) in conn}
        period = max((ch.period for ch in self.pmu.values() if ch.driving), default=0.0)
        pulsing = {n: ch for n, ch in active.items() if ch.amplitude != 0.0}
        widths = sorted({ch.width for ch in pulsing.values()})
        p = self.chip.params
        for _ in range(self.burst_count):
            prev = 0.0
            for w in widths:
                dur = w - prev
                levels = {
                    n: ch.base + (ch.amplitude if ch.width >= w else 0.0)
                    for n, ch in pulsing.items()
                }
                rv, cv, _ = self._drive(conn, levels)
                self._source_drop(conn, pulsing, rv, cv)
                if dur >= p.width_min_s:
                    try:
                        self.chip.apply_line_voltages(rv, cv, dur)
                    except ConfigError as exc:
                        raise KxciError(-1001, f"pulse rejected: {exc}") from None
                else:
                    self.chip.advance(dur)
                prev = w
            self.chip.advance(max(period - prev, 0.0))
        self.chip.advance(self.pmu_overhead_s)
        self.pmu_executions += 1

    def _source_drop(self, conn: dict, pulsing: dict, rv: np.ndarray, cv: np.ndarray) -> None:
        """The 4225-PMU's 50 ohm source (option ``sim_pmu_source_ohm``, 0 = ideal).

        A channel programmed to ``level`` with a load setting R_L outputs the open-circuit
        voltage level*(R_L + 50)/R_L and loses 50 ohm x the current it sources into the
        array: V = V_oc - 50*I. I is the channel's current at the programmed levels (the
        array is ohmic; one correction step, exact to first order in 50*I/V).
        """
        if self.pmu_source_ohm <= 0 or not pulsing:
            return
        r_src = self.pmu_source_ohm
        ri, ci = self._currents(rv, cv)
        for n, ch in pulsing.items():
            term = _pmu_terminal(n)
            rows, cols = conn.get(term, (np.zeros(0, int), np.zeros(0, int)))
            current = self._terminal_current(conn, term, ri, ci)
            boost = (ch.load + r_src) / ch.load
            rv[rows] = rv[rows] * boost - r_src * current
            cv[cols] = cv[cols] * boost - r_src * current

    def _pmu_command(self, name: str, args: list[str]) -> str:
        n = name.upper()
        if n == ":PMU:INIT":
            mode = _int(args[0], "mode") if args else 0
            if mode not in (0, 1):
                raise KxciError(-102, f"invalid PMU mode {mode}")
            self.pmu = {k: _PmuChannel() for k in self.pmu_numbers}
            self.pmu_mode, self.burst_count = mode, 1
        elif n == ":PMU:RPM:CONFIGURE":
            if len(args) != 2 or not re.fullmatch(r"PMU[1-4]-[12]", args[0].upper()):
                raise KxciError(-102, "expected PMUc-n,mode")
            ch = pmu_channel_number(args[0].upper())
            if ch not in self.pmu:
                raise KxciError(-102, f"{args[0]} is not installed")
            self.pmu[ch].rpm = _int(args[1], "RPM mode")
        elif n == ":PMU:PULSE:TRAIN":
            if len(args) != 3:
                raise KxciError(-102, "expected ch,base,amplitude")
            ch = self.pmu[self._pmu_ch(args[0])]
            base, amp = _float(args[1], "base"), _float(args[2], "amplitude")
            if abs(base + amp) > 40 or abs(base) > 40:
                raise KxciError(-102, "PMU level beyond +-40 V")
            if max(abs(base), abs(base + amp)) * (ch.load + 50.0) / ch.load > ch.range_v:
                raise KxciError(-102, f"PMU level beyond the {ch.range_v} V source range")
            ch.base, ch.amplitude = base, amp
        elif n == ":PMU:PULSE:TIMES":
            if len(args) != 5:
                raise KxciError(-102, "expected ch,period,width,rise,fall")
            ch = self.pmu[self._pmu_ch(args[0])]
            period, width, rise, fall = (_float(a, "time") for a in args[1:])
            if width <= 0 or rise <= 0 or fall <= 0 or period < width + 0.5 * (rise + fall):
                raise KxciError(-102, "inconsistent pulse times")
            ch.period, ch.width, ch.rise, ch.fall = period, width, rise, fall
        elif n == ":PMU:LOAD":
            if len(args) != 2:
                raise KxciError(-102, "expected ch,load")
            load = _float(args[1], "load")
            if not 1.0 <= load <= 1e7:
                raise KxciError(-102, "load must be 1 to 1e7 ohm")
            self.pmu[self._pmu_ch(args[0])].load = load
        elif n == ":PMU:SOURCE:RANGE":
            if len(args) != 2 or _float(args[1], "range") not in (10, 40):
                raise KxciError(-102, "expected ch,10|40")
            self.pmu[self._pmu_ch(args[0])].range_v = int(_float(args[1], "range"))
        elif n == ":PMU:PULSE:BURST:COUNT":
            count = _int(args[0], "count") if args else 0
            if not 1 <= count <= PMU_BURST_MAX:
                raise KxciError(-102, f"burst count {count} outside [1, {PMU_BURST_MAX}] (simulator limit)")
            self.burst_count = count
        elif n == ":PMU:MEASURE:MODE":
            mode = _int(args[0], "mode") if args else 0
            if mode not in (1, 2, 3):
                raise KxciError(-102, f"invalid measure mode {mode}")
            self.measure_mode = mode
        elif n == ":PMU:MEASURE:RANGE":
            if len(args) != 3:
                raise KxciError(-102, "expected ch,type,range")
            self._pmu_ch(args[0])
        elif n == ":PMU:OUTPUT:STATE":
            if len(args) != 2:
                raise KxciError(-102, "expected ch,state")
            self.pmu[self._pmu_ch(args[0])].output = _int(args[1], "state") == 1
        elif n == ":PMU:EXECUTE":
            self._pmu_execute()
        elif n == ":PMU:TEST:STATUS?":
            return "0"
        elif n == ":PMU:DATA:COUNT?":
            self._pmu_ch(args[0]) if args else None
            return "0"
        else:
            raise KxciError(-100, f"unrecognized command {name}")
        return "ACK"

    # ------------------------------------------------------------------ system mode sweep
    def _run_sweep(self) -> None:
        var1 = [n for n, d in self.sweep_channels.items() if d[3] == 1]
        if len(var1) != 1 or self.var1 is None:
            raise KxciError(-101, "ME1 needs one VAR1 channel (CH ...,1,1) and a VR sweep")
        start, stop, step, comp = self.var1
        npts = int(round((stop - start) / step)) + 1
        saved = {n: _Smu(s.mode, s.value, s.compliance, s.range_code) for n, s in self.smus.items()}
        for s in self.smus.values():
            s.mode = "off"
        sw = self.smus[var1[0]]
        sw.mode, sw.compliance = "V", comp
        for n, (v, c) in self.constants.items():
            if n in self.sweep_channels and self.sweep_channels[n][3] == 3:
                self.smus[n].mode, self.smus[n].value, self.smus[n].compliance = "V", v, c
        self.data = {}
        for d in self.sweep_channels.values():
            self.data[d[0]] = []
            self.data[d[1]] = []
        self.chip.advance(self.hold_s)
        dt = self._integration_s()
        for k in range(npts):
            sw.value = start + k * step
            self.chip.advance(self.delay_s)
            res = self._measure(dt)
            for n, (vname, iname, _mode, _fn) in self.sweep_channels.items():
                i, v, st = res[n]
                self.data[vname].append(("N", v))
                self.data[iname].append((st, i))
        for n, s in saved.items():  # outputs back to 0 V at the end of the test
            self.smus[n] = _Smu("V", 0.0, s.compliance or 1e-3, 0) if s.mode != "off" else _Smu()
        self.data_ready = True

    # ------------------------------------------------------------------ user libraries
    def _ex(self, text: str) -> str:
        m = re.fullmatch(r"(\w+)\s+(\w+)\((.*)\)", text.strip())
        if not m:
            raise KxciError(-102, "expected EX library module(args)")
        lib, mod, raw = m.groups()
        args = [a.strip() for a in raw.split(",")] if raw.strip() else []
        self.ul_params, self.ul_positions = {}, {}
        if (lib, mod) == ("BeepLib", "beep"):
            if len(args) != 2:
                raise KxciError(-102, "beep(frequency, duration)")
            self.chip.advance(max(_float(args[1], "duration"), 0.0))
            return "RETURN VALUE = 0"
        if (lib, mod) == ("memprog_sim", "smu_read"):
            if len(args) != 5:
                raise KxciError(-102, "smu_read(smu, volts, npts, I, I_size)")
            n = self._smu(args[0])
            volts = _float(args[1], "volts")
            npts, size = _int(args[2], "npts"), _int(args[4], "I_size")
            if not 1 <= npts <= size or size > UL_ARRAY_MAX:
                raise KxciError(-102, f"need 1 <= npts <= I_size <= {UL_ARRAY_MAX} (simulator limit)")
            saved = self.smus[n]
            self.smus[n] = _Smu("V", volts, 1e-2, 0)
            values, ok = [], True
            dt = self._integration_s()
            for _ in range(npts):
                i, _v, st = self._measure(dt)[n]
                values.append(i)
                ok &= st == "N"
            self.smus[n] = saved
            self.ul_params["I"] = np.array(values + [0.0] * (size - npts))
            self.ul_positions[4] = "I"
            return f"RETURN VALUE = {0 if ok else -1}"
        raise KxciError(-100, f"user module {lib} {mod} is not loaded")

    def _get_param(self, key: str, count_text: str) -> str:
        values = self.ul_params.get(key)
        if values is None:
            raise KxciError(-980, f"parameter {key} not accessible")
        count = _int(count_text, "count")
        if not 1 <= count <= values.size:
            raise KxciError(-980, f"parameter {key} has {values.size} values")
        return "PARAM VALUE = " + ";".join(fmt_reading(v) for v in values[:count])

    # ------------------------------------------------------------------ dispatch
    def handle(self, message: str) -> str | None:
        reply = "ACK"
        for cmd in _split_commands(message):
            try:
                reply = self._one(cmd)
            except KxciError as exc:
                if self.gpib:  # over GPIB an error only sets the status byte's bit 1
                    self.syntax_error = True
                    return None
                return f"ERROR {exc.code}: {exc.message}"
        if self.gpib and reply == "ACK":
            return None  # KXCI answers ACK over Ethernet only
        return reply

    def transient_error(self, message: str) -> str | None:
        """Fault injection: refused as busy (``ERROR -990`` [choice]); nothing is executed."""
        if self.gpib:
            self.syntax_error = True
            return None
        return "ERROR -990: instrument busy, command not executed"

    def can_refuse(self, message: str) -> bool:
        """The identity is always answered."""
        return not message.upper().startswith(("*IDN", "*OPT"))

    def status_byte(self) -> int:
        """Serial poll: bit 0 data ready, bit 1 syntax error (cleared by the poll) [choice]."""
        stb = (1 if self.data_ready else 0) | (2 if self.syntax_error else 0)
        self.syntax_error = False
        return stb

    def _one(self, cmd: str) -> str:
        if cmd.startswith(":"):
            m = re.fullmatch(r"(:[A-Za-z:]+\??)\s*(.*)", cmd)
            if not m:
                raise KxciError(-100, f"unrecognized command {cmd!r}")
            return self._pmu_command(m.group(1), _args(m.group(2)))
        if cmd.startswith("*"):
            if cmd.upper() == "*RST":
                self.reset()
                return "ACK"
            static = self.static.match(cmd)
            if static is None:
                raise KxciError(-100, f"unrecognized command {cmd!r}")
            return static
        m = re.fullmatch(r"([A-Za-z]{2})\s*(.*)", cmd, re.DOTALL)
        if not m:
            raise KxciError(-100, f"unrecognized command {cmd!r}")
        name, rest = m.groups()
        if name != name.upper():
            raise KxciError(-992, f"command {name!r} must be upper case")
        if name == "ID" and not rest:
            return self.static.match("ID") or "KI4200A"
        if name in ("US", "DE", "SS", "SM", "MD", "UL"):
            if rest.strip():
                raise KxciError(-102, f"{name} takes no parameter")
            self.mode = {"US": "user", "UL": "ul"}.get(name, "system")
            return "ACK"
        if name == "BC":
            self.data_ready = False
            return "ACK"
        if name == "SP":
            stb = self.status_byte()
            self.data_ready = False  # a serial poll clears data ready
            return str(stb)
        if name == "IT":
            mode = _int(rest, "integration mode")
            if mode not in _PLC:
                raise KxciError(-102, "IT1, IT2 or IT3")
            self.integration = mode
            return "ACK"
        args = _args(rest)
        if name in ("DV", "DI", "TV", "TI"):
            self._need("user", name)
            if not args:
                raise KxciError(-102, f"{name} needs a channel")
            n = self._smu(args[0])
            if name in ("TV", "TI"):
                if len(args) != 1:
                    raise KxciError(-102, f"{name}ch takes only the channel")
                return self._spot(n, name[1])
            if len(args) == 1:
                self.smus[n] = _Smu()
                return "ACK"
            if len(args) != 4:
                raise KxciError(-102, f"{name}ch,range,value,compliance")
            rng_, value, comp = (
                _int(args[1], "range"),
                _float(args[2], "value"),
                _float(args[3], "compliance"),
            )
            if name == "DV" and (not 0 <= rng_ <= 5 or abs(value) > 210 or not 0 < comp <= 1.0):
                raise KxciError(-102, "DV: range 0-5, |V| <= 210, 0 < compliance <= 1 A")
            if name == "DI" and (not 0 <= rng_ <= 13 or abs(value) > 1.0 or not 0 < comp <= 210):
                raise KxciError(-102, "DI: range 0-13, |I| <= 1 A, 0 < compliance <= 210 V")
            self.smus[n] = _Smu("V" if name == "DV" else "I", value, comp, rng_)
            return "ACK"
        if name in ("EX", "GN", "GP"):
            self._need("ul", name)
            if name == "EX":
                return self._ex(rest)
            parts = rest.split()
            if len(parts) != 2:
                raise KxciError(-102, f"{name} parameter count")
            key = (
                parts[0] if name == "GN" else self.ul_positions.get(_int(parts[0], "position"), "")
            )
            return self._get_param(key, parts[1])
        if name in (
            "CH",
            "VR",
            "VC",
            "HT",
            "DT",
            "RS",
            "RG",
            "DM",
            "XN",
            "YA",
            "ME",
            "DO",
            "RD",
            "LI",
        ):
            self._need("system", name)
            return self._system(name, args, rest)
        raise KxciError(-100, f"unrecognized command {name!r}")

    def _system(self, name: str, args: list[str], rest: str) -> str:
        if name == "CH":
            if len(args) == 1:
                self.sweep_channels.pop(self._smu(args[0]), None)
                return "ACK"
            if len(args) != 5:
                raise KxciError(-102, "CH ch,'VN','IN',mode,function")
            n = self._smu(args[0])
            self.sweep_channels[n] = (
                args[1],
                args[2],
                _int(args[3], "mode"),
                _int(args[4], "function"),
            )
        elif name == "VR":
            if len(args) != 5 or _int(args[0], "sweep mode") != 1:
                raise KxciError(-102, "VR1,start,stop,step,compliance (linear sweeps only)")
            start, stop, step, comp = (_float(a, "sweep value") for a in args[1:])
            if (
                step == 0
                or (stop - start) * step < 0
                or abs((stop - start) / step) > 4096
                or comp <= 0
            ):
                raise KxciError(-102, "inconsistent sweep")
            self.var1 = (start, stop, step, comp)
        elif name == "VC":
            if len(args) != 3:
                raise KxciError(-102, "VCch,value,compliance")
            self.constants[self._smu(args[0])] = (
                _float(args[1], "value"),
                _float(args[2], "compliance"),
            )
        elif name == "HT":
            self.hold_s = _float(rest, "hold time")
        elif name == "DT":
            self.delay_s = _float(rest, "delay time")
        elif name == "ME":
            if _int(rest, "run mode") != 1:
                raise KxciError(-102, "only ME1 (single run) is simulated")
            self._run_sweep()
        elif name == "DO":
            key = rest.strip().strip("'\"")
            if key not in self.data:
                raise KxciError(-102, f"no data named {key!r}")
            return ",".join(f"{st}{fmt_reading(v)}" for st, v in self.data[key])
        elif name == "RD":
            if len(args) != 2 or args[0] not in self.data:
                raise KxciError(-102, "RD 'name',index with a defined name")
            i = _int(args[1], "index")
            col = self.data[args[0]]
            return fmt_reading(col[i - 1][1]) if 1 <= i <= len(col) else "0"
        return "ACK"


__all__ = ["Sim4200", "KxciError", "fmt_reading"]
