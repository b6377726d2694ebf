"""SMU measurements of the simulated 4200A-SCS: spot readings (``TV``/``TI``), system-mode
sweeps (``CH``, ``VR``, ``VC``, ``ME1``, ``DO``, ``RD``) and the user-library calls
(``EX``, ``GN``, ``GP``).

Why a module of its own: these are the DC paths of the instrument, where a reading is an
integration time of chip clock, sources fight on shorted lines and run into compliance,
and DC levels above the disturb threshold stress the chip; they share one measurement
(:meth:`SmuMeasurements._measure`) and nothing with the PMU's pulses.
"""

from __future__ import annotations

import re

import numpy as np

from memprog.sim_instruments.k4200_kxci import (
    I_LETTERS,
    PLC,
    V_LETTERS,
    KxciError,
    SmuState,
    fmt_reading,
    parse_float,
    parse_int,
)
from memprog.sim_instruments.k4200_routing import Routing

OPEN_NOISE_A = 2e-12  # SMU noise floor on an open circuit [choice]
# [choice] simulator limit (each smu_read point is simulated one by one, so an unbounded
# count from a client would hang a served instrument)
UL_ARRAY_MAX = 65_536


class SmuMeasurements(Routing):
    """Spot readings, sweeps and user libraries (a mixin of the simulated 4200)."""

    integration: int
    line_frequency_hz: float
    sweep_channels: dict[int, tuple[str, str, int, int]]
    var1: tuple[float, float, float, float] | None
    constants: dict[int, tuple[float, float]]
    hold_s: float
    delay_s: float
    data: dict[str, list[tuple[str, float]]]
    data_ready: bool
    ul_params: dict[str, np.ndarray]
    ul_positions: dict[int, str]
    _rng: np.random.Generator

    def _smu(self, text: str) -> int:
        n = parse_int(text, "channel")
        if n not in self.smus:
            raise KxciError(-102, f"SMU{n} is not installed")
        return n

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
                i = float(self._rng.normal(0.0, OPEN_NOISE_A))
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
        return PLC[self.integration] / self.line_frequency_hz

    def _spot(self, n: int, what: str) -> str:
        i, v, status = self._measure(self._integration_s())[n]
        if what == "I":
            return f"{status}{I_LETTERS[n]}I{fmt_reading(i)}"
        return f"{status}{V_LETTERS[n]}V{fmt_reading(v)}"

    # ------------------------------------------------------------------ system mode sweep
    def _run_sweep(self) -> None:
        var1 = [n for n, d in self.sweep_channels.items() if d[3] == 1]
        if len(var1) != 1 or self.var1 is None:
            raise KxciError(-101, "ME1 needs one VAR1 channel (CH ...,1,1) and a VR sweep")
        start, stop, step, comp = self.var1
        npts = int(round((stop - start) / step)) + 1
        saved = {n: SmuState(s.mode, s.value, s.compliance, s.range_code) for n, s in self.smus.items()}
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
            self.smus[n] = SmuState("V", 0.0, s.compliance or 1e-3, 0) if s.mode != "off" else SmuState()
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
            self.chip.advance(max(parse_float(args[1], "duration"), 0.0))
            return "RETURN VALUE = 0"
        if (lib, mod) == ("memprog_sim", "smu_read"):
            if len(args) != 5:
                raise KxciError(-102, "smu_read(smu, volts, npts, I, I_size)")
            n = self._smu(args[0])
            volts = parse_float(args[1], "volts")
            npts, size = parse_int(args[2], "npts"), parse_int(args[4], "I_size")
            if not 1 <= npts <= size or size > UL_ARRAY_MAX:
                raise KxciError(-102, f"need 1 <= npts <= I_size <= {UL_ARRAY_MAX} (simulator limit)")
            saved = self.smus[n]
            self.smus[n] = SmuState("V", volts, 1e-2, 0)
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
        count = parse_int(count_text, "count")
        if not 1 <= count <= values.size:
            raise KxciError(-980, f"parameter {key} has {values.size} values")
        return "PARAM VALUE = " + ";".join(fmt_reading(v) for v in values[:count])

    # ------------------------------------------------------------------ system mode commands
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
                parse_int(args[3], "mode"),
                parse_int(args[4], "function"),
            )
        elif name == "VR":
            if len(args) != 5 or parse_int(args[0], "sweep mode") != 1:
                raise KxciError(-102, "VR1,start,stop,step,compliance (linear sweeps only)")
            start, stop, step, comp = (parse_float(a, "sweep value") for a in args[1:])
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
                parse_float(args[1], "value"),
                parse_float(args[2], "compliance"),
            )
        elif name == "HT":
            self.hold_s = parse_float(rest, "hold time")
        elif name == "DT":
            self.delay_s = parse_float(rest, "delay time")
        elif name == "ME":
            if parse_int(rest, "run mode") != 1:
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
            i = parse_int(args[1], "index")
            col = self.data[args[0]]
            return fmt_reading(col[i - 1][1]) if 1 <= i <= len(col) else "0"
        return "ACK"
