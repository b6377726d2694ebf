"""FLEX commands of the simulated B1500A that set things up: outputs, formats, ranges, ``*LRN?``.

Why a module of its own: these handlers change the mainframe's kept state and answer
queries about it, without taking a reading (those are in :mod:`.b1500_measure`). Each
handler takes the command's parameters as strings and raises :class:`FlexError` with the
FLEX code a B1500A would queue; the dispatcher (:meth:`.b1500.SimB1500.handle`) queues it.
Commands kept for ``*LRN?`` only: ``FMT``, ``AV``, ``AZ``, ``FL``, ``CMM``, ``RI``.
"""

from __future__ import annotations

import re

from memprog.sim_instruments.b1500_flex import (
    I_RANGES,
    NO_ERROR,
    SMU_I_MAX,
    SMU_V_MAX,
    V_RANGES,
    FlexError,
    flex_int,
    flex_num,
)
from memprog.sim_instruments.b1500_probing import B1500Probing
from memprog.sim_instruments.b1500_state import SmuState


class B1500Commands(B1500Probing):
    """Argument checking and the set-up commands of FLEX (mixed into :class:`.b1500.SimB1500`)."""

    def _nargs(self, args: list[str], lo: int, hi: int) -> None:
        if not lo <= len(args) <= hi:
            raise FlexError(103, f"{len(args)} parameters")

    def _channels(self, args: list[str], allowed: list[int]) -> list[int]:
        chs = [flex_int(a) for a in args]
        for ch in chs:
            if ch not in allowed:
                raise FlexError(121, f"channel {ch}")
        if len(set(chs)) != len(chs):
            raise FlexError(122, "a channel is listed twice")
        return chs

    def _smu(self, text: str) -> SmuState:
        ch = flex_int(text)
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
        if args and flex_int(args[0]) not in (0, 1):
            raise FlexError(120, "UNT? mode")
        return ";".join(f"{m},0" if m != "0" else "0,0" for m in self.modules)

    def _errx(self, args: list[str]) -> str:
        self._nargs(args, 0, 1)
        mode = flex_int(args[0]) if args else 0
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
        rng = flex_int(args[1])
        if rng not in (0, *V_RANGES, *(-r for r in V_RANGES)):
            raise FlexError(124, f"voltage range {rng}")
        v = flex_num(args[2])
        if abs(v) > SMU_V_MAX:
            raise FlexError(120, f"voltage {v}")
        comp = flex_num(args[3]) if len(args) > 3 else s.compliance if s.mode == "V" else None
        if comp is not None and (comp == 0 or abs(comp) > SMU_I_MAX):
            raise FlexError(123, f"current compliance {comp}")
        if not s.enabled:
            raise FlexError(120, "output relay open: send CN first")
        s.mode, s.value, s.compliance, s.range_code = "V", v, comp, rng

    def _di(self, args: list[str]) -> None:
        self._nargs(args, 3, 6)
        s = self._smu(args[0])
        rng = flex_int(args[1])
        if rng not in (0, *I_RANGES, *(-r for r in I_RANGES)):
            raise FlexError(124, f"current range {rng}")
        i = flex_num(args[2])
        if abs(i) > SMU_I_MAX:
            raise FlexError(120, f"current {i}")
        comp = flex_num(args[3]) if len(args) > 3 else 2.0
        if comp == 0 or abs(comp) > SMU_V_MAX:
            raise FlexError(123, f"voltage compliance {comp}")
        if not s.enabled:
            raise FlexError(120, "output relay open: send CN first")
        s.mode, s.value, s.compliance, s.range_code = "I", i, comp, rng

    # ------------------------------------------------------------------ settings
    def _fmt(self, args: list[str]) -> None:
        self._nargs(args, 1, 2)
        f = flex_int(args[0])
        mode = flex_int(args[1]) if len(args) > 1 else 0
        if f not in (1, 2, 3, 4, 5, 11, 12, 13, 15, 21, 22, 25) or mode not in range(0, 11):
            raise FlexError(120, f"FMT {f},{mode}")
        if f not in (1, 2):
            raise FlexError(999, f"data format FMT {f}")
        self.set.fmt = (f, mode)

    def _av(self, args: list[str]) -> None:
        self._nargs(args, 1, 2)
        n = flex_int(args[0])
        mode = flex_int(args[1]) if len(args) > 1 else 0
        if not (-100 <= n <= 1023 and n != 0) or mode not in (0, 1):
            raise FlexError(120, f"AV {n},{mode}")
        self.set.av = (n, mode)

    def _az(self, args: list[str]) -> None:
        self._nargs(args, 1, 1)
        v = flex_int(args[0])
        if v not in (0, 1):
            raise FlexError(120, f"AZ {v}")
        self.set.az = v

    def _fl(self, args: list[str]) -> None:
        if not args:
            raise FlexError(103, "FL needs a mode")
        mode = flex_int(args[0])
        if mode not in (0, 1):
            raise FlexError(120, f"FL {mode}")
        for ch in self._channels(args[1:], self.smu_channels) or self.smu_channels:
            self.set.filters[ch] = mode

    def _cmm(self, args: list[str]) -> None:
        self._nargs(args, 2, 2)
        s = self._smu(args[0])
        mode = flex_int(args[1])
        if mode not in (0, 1, 2, 3, 4):
            raise FlexError(120, f"CMM mode {mode}")
        s.cmm = mode

    def _ri(self, args: list[str]) -> None:
        self._nargs(args, 2, 2)
        s = self._smu(args[0])
        rng = flex_int(args[1])
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
        t = flex_int(args[0])
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
