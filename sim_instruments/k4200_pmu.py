"""The two 4225-PMU cards of the simulated 4200A-SCS: the ``:PMU:*`` commands and the
execution of a pulse burst on the chip.

Why a module of its own: pulsing is the write path of this bench (V/3 and V/2 schemes come
from PMU levels on routed lines), with its own timing (channels of different widths pulse
from one start, each phase applied separately) and the optional 50 ohm source model
(:meth:`PmuCommands._source_drop`).
"""

from __future__ import annotations

import re

import numpy as np

from memprog.core.crossbar_wiring import pmu_channel_number
from memprog.core.errors import ConfigError
from memprog.sim_instruments.k4200_kxci import (
    KxciError,
    PmuChannelState,
    parse_float,
    parse_int,
    pmu_terminal,
)
from memprog.sim_instruments.k4200_routing import Routing

# [choice] simulator limit (each burst pulse is simulated one by one, so an unbounded count
# from a client would hang a served instrument)
PMU_BURST_MAX = 10_000


class PmuCommands(Routing):
    """``:PMU:*`` configuration and ``:PMU:EXECUTE`` (a mixin of the simulated 4200)."""

    pmu_numbers: list[int]
    pmu_mode: int
    burst_count: int
    measure_mode: int
    pmu_overhead_s: float
    pmu_source_ohm: float
    pmu_executions: int

    def _pmu_ch(self, text: str) -> int:
        n = parse_int(text, "PMU channel")
        if n not in self.pmu:
            raise KxciError(-102, f"PMU channel {n} is not installed")
        return n

    # ------------------------------------------------------------------ PMU
    def _pmu_execute(self) -> None:
        if self.pmu_mode != 0:
            raise KxciError(-1001, "segment ARB execution is not simulated (use :PMU:INIT 0)")
        conn = self._connectivity()
        active = {n: ch for n, ch in self.pmu.items() if ch.driving and pmu_terminal(n) in conn}
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
            term = pmu_terminal(n)
            rows, cols = conn.get(term, (np.zeros(0, int), np.zeros(0, int)))
            current = self._terminal_current(conn, term, ri, ci)
            boost = (ch.load + r_src) / ch.load
            rv[rows] = rv[rows] * boost - r_src * current
            cv[cols] = cv[cols] * boost - r_src * current

    def _pmu_command(self, name: str, args: list[str]) -> str:
        n = name.upper()
        if n == ":PMU:INIT":
            mode = parse_int(args[0], "mode") if args else 0
            if mode not in (0, 1):
                raise KxciError(-102, f"invalid PMU mode {mode}")
            self.pmu = {k: PmuChannelState() for k in self.pmu_numbers}
            self.pmu_mode, self.burst_count = mode, 1
        elif n == ":PMU:RPM:CONFIGURE":
            if len(args) != 2 or not re.fullmatch(r"PMU[1-4]-[12]", args[0].upper()):
                raise KxciError(-102, "expected PMUc-n,mode")
            ch = pmu_channel_number(args[0].upper())
            if ch not in self.pmu:
                raise KxciError(-102, f"{args[0]} is not installed")
            self.pmu[ch].rpm = parse_int(args[1], "RPM mode")
        elif n == ":PMU:PULSE:TRAIN":
            if len(args) != 3:
                raise KxciError(-102, "expected ch,base,amplitude")
            ch = self.pmu[self._pmu_ch(args[0])]
            base, amp = parse_float(args[1], "base"), parse_float(args[2], "amplitude")
            if abs(base + amp) > 40 or abs(base) > 40:
                raise KxciError(-102, "PMU level beyond +-40 V")
            if max(abs(base), abs(base + amp)) * (ch.load + 50.0) / ch.load > ch.range_v:
                raise KxciError(-102, f"PMU level beyond the {ch.range_v} V source range")
            ch.base, ch.amplitude = base, amp
        elif n == ":PMU:PULSE:TIMES":
            if len(args) != 5:
                raise KxciError(-102, "expected ch,period,width,rise,fall")
            ch = self.pmu[self._pmu_ch(args[0])]
            period, width, rise, fall = (parse_float(a, "time") for a in args[1:])
            if width <= 0 or rise <= 0 or fall <= 0 or period < width + 0.5 * (rise + fall):
                raise KxciError(-102, "inconsistent pulse times")
            ch.period, ch.width, ch.rise, ch.fall = period, width, rise, fall
        elif n == ":PMU:LOAD":
            if len(args) != 2:
                raise KxciError(-102, "expected ch,load")
            load = parse_float(args[1], "load")
            if not 1.0 <= load <= 1e7:
                raise KxciError(-102, "load must be 1 to 1e7 ohm")
            self.pmu[self._pmu_ch(args[0])].load = load
        elif n == ":PMU:SOURCE:RANGE":
            if len(args) != 2 or parse_float(args[1], "range") not in (10, 40):
                raise KxciError(-102, "expected ch,10|40")
            self.pmu[self._pmu_ch(args[0])].range_v = int(parse_float(args[1], "range"))
        elif n == ":PMU:PULSE:BURST:COUNT":
            count = parse_int(args[0], "count") if args else 0
            if not 1 <= count <= PMU_BURST_MAX:
                raise KxciError(-102, f"burst count {count} outside [1, {PMU_BURST_MAX}] (simulator limit)")
            self.burst_count = count
        elif n == ":PMU:MEASURE:MODE":
            mode = parse_int(args[0], "mode") if args else 0
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
            self.pmu[self._pmu_ch(args[0])].output = parse_int(args[1], "state") == 1
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
