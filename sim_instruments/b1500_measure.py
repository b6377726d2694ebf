"""FLEX commands of the simulated B1500A that take readings: ``TI``/``TV``, ``MM`` + ``XE``, sweeps.

Why a module of its own: these are the handlers whose replies carry data -- spot readings
and staircase sweeps -- and the formatting of that data (status letter, channel letter,
data type, 12-digit value in ``FMT 1``; the bare value in ``FMT 2``; with ``FMT x,1`` the
sweep source value after each step, status ``W`` for intermediate steps and ``E`` for the
last [FLEX source-data convention, unverified on hardware]). The sweep timing commands
(``WV``, ``WT``, ``WM``, ``PA``) live beside the sweep they shape.
"""

from __future__ import annotations

from memprog.sim_instruments.b1500_commands import B1500Commands
from memprog.sim_instruments.b1500_flex import (
    DUMMY,
    I_RANGES,
    SMU_I_MAX,
    SMU_V_MAX,
    V_RANGES,
    XE_OVERHEAD_S,
    FlexError,
    channel_letter,
    flex_int,
    flex_num,
    format_value,
)
from memprog.sim_instruments.b1500_state import SweepSetup


class B1500Measurements(B1500Commands):
    """The reading commands of FLEX (mixed into :class:`.b1500.SimB1500`)."""

    # ------------------------------------------------------------------ spot measurements
    def _ti(self, args: list[str]) -> str:
        self._nargs(args, 1, 2)
        ch = flex_int(args[0])
        if ch in self.cmu_channels or ch not in self.smus:
            raise FlexError(121, f"channel {ch}")
        rng = flex_int(args[1]) if len(args) > 1 else 0
        if rng not in (0, *I_RANGES, *(-r for r in I_RANGES)):
            raise FlexError(124, f"current range {rng}")
        data = self._measure_all()
        return self._token(ch, "I", data, rng)

    def _tv(self, args: list[str]) -> str:
        self._nargs(args, 1, 2)
        ch = flex_int(args[0])
        if ch not in self.smus:
            raise FlexError(121, f"channel {ch}")
        rng = flex_int(args[1]) if len(args) > 1 else 0
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
        mode = flex_int(args[0])
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
        ch = flex_int(args[0])
        if ch not in self.smus:
            raise FlexError(121, f"channel {ch}")
        mode = flex_int(args[1])
        if mode not in (1, 2, 3, 4):
            raise FlexError(120, f"sweep mode {mode}")
        rng = flex_int(args[2])
        if rng not in (0, *V_RANGES):
            raise FlexError(124, f"voltage range {rng}")
        start, stop = flex_num(args[3]), flex_num(args[4])
        steps = flex_int(args[5])
        if not 1 <= steps <= 10001 or max(abs(start), abs(stop)) > SMU_V_MAX:
            raise FlexError(120, "sweep start/stop/steps")
        icomp = flex_num(args[6]) if len(args) > 6 else None
        pcomp = flex_num(args[7]) if len(args) > 7 else None
        if icomp is not None and (icomp == 0 or abs(icomp) > SMU_I_MAX):
            raise FlexError(123, f"current compliance {icomp}")
        self.set.sweep = SweepSetup(ch, mode, rng, start, stop, steps, icomp, pcomp)

    def _pa(self, args: list[str]) -> None:
        """``PA <s>``: pause command execution; the chip's clock advances by ``s``."""
        self._nargs(args, 1, 1)
        s = flex_num(args[0])
        if not 0 <= s <= 655.35:
            raise FlexError(120, "PA wait time")
        self.chip.advance(s)

    def _wt(self, args: list[str]) -> None:
        self._nargs(args, 2, 5)
        vals = [flex_num(a) for a in args] + [0.0] * (5 - len(args))
        if vals[0] < 0 or vals[0] > 655.35 or vals[1] < 0 or vals[1] > 65.535 or min(vals) < 0:
            raise FlexError(120, "sweep timing")
        self.set.wt = tuple(vals)  # type: ignore[assignment]

    def _wm(self, args: list[str]) -> None:
        self._nargs(args, 1, 2)
        abort = flex_int(args[0])
        post = flex_int(args[1]) if len(args) > 1 else 1
        if abort not in (1, 2) or post not in (1, 2):
            raise FlexError(120, "WM abort/post")
        self.set.wm = (abort, post)
