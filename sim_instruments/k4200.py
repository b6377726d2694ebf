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

The instrument is one class assembled from its parts, one module each:
:mod:`.k4200_kxci` (the text and the SMU/PMU state), :mod:`.k4200_routing` (lines
through the 707B), :mod:`.k4200_smu` (readings, sweeps, user libraries) and
:mod:`.k4200_pmu` (pulses). This module holds the dispatch and the power-on state.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from memprog.core.crossbar_wiring import CrossbarWiring, wiring_from_bench
from memprog.sim_instruments.base import SimulatedInstrument, StaticSurface, register
from memprog.sim_instruments.k4200_kxci import (
    PLC,
    KxciError,
    PmuChannelState,
    SmuState,
    fmt_reading,
    parse_float,
    parse_int,
    split_args,
    split_commands,
)
from memprog.sim_instruments.k4200_pmu import PmuCommands
from memprog.sim_instruments.k4200_smu import SmuMeasurements

if TYPE_CHECKING:  # pragma: no cover
    from memprog.core.bench_config import InstrumentConfig
    from memprog.sim_instruments.sim_bench import SimBench


@register("k4200")
class Sim4200(SmuMeasurements, PmuCommands, SimulatedInstrument):
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
        self.smus = {n: SmuState() for n in self.smu_numbers}
        self.pmu = {n: PmuChannelState() for n in self.pmu_numbers}
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

    def _need(self, mode: str, command: str) -> None:
        if self.mode != mode:
            raise KxciError(
                -101, f"{command} is not valid in {self.mode or 'no'} mode (needs {mode})"
            )

    # ------------------------------------------------------------------ dispatch
    def handle(self, message: str) -> str | None:
        reply = "ACK"
        for cmd in split_commands(message):
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
            return self._pmu_command(m.group(1), split_args(m.group(2)))
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
            mode = parse_int(rest, "integration mode")
            if mode not in PLC:
                raise KxciError(-102, "IT1, IT2 or IT3")
            self.integration = mode
            return "ACK"
        args = split_args(rest)
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
                self.smus[n] = SmuState()
                return "ACK"
            if len(args) != 4:
                raise KxciError(-102, f"{name}ch,range,value,compliance")
            rng_, value, comp = (
                parse_int(args[1], "range"),
                parse_float(args[2], "value"),
                parse_float(args[3], "compliance"),
            )
            if name == "DV" and (not 0 <= rng_ <= 5 or abs(value) > 210 or not 0 < comp <= 1.0):
                raise KxciError(-102, "DV: range 0-5, |V| <= 210, 0 < compliance <= 1 A")
            if name == "DI" and (not 0 <= rng_ <= 13 or abs(value) > 1.0 or not 0 < comp <= 210):
                raise KxciError(-102, "DI: range 0-13, |I| <= 1 A, 0 < compliance <= 210 V")
            self.smus[n] = SmuState("V" if name == "DV" else "I", value, comp, rng_)
            return "ACK"
        if name in ("EX", "GN", "GP"):
            self._need("ul", name)
            if name == "EX":
                return self._ex(rest)
            parts = rest.split()
            if len(parts) != 2:
                raise KxciError(-102, f"{name} parameter count")
            key = (
                parts[0] if name == "GN" else self.ul_positions.get(parse_int(parts[0], "position"), "")
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


__all__ = ["Sim4200", "KxciError", "fmt_reading"]
