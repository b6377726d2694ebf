"""When each cell was last pulsed or read by the program job's protocols.

Why: the job's final verification must read every cell a full settle after the last pulse
it got (the relaxation a pulse leaves behind takes seconds) and a full settle after the
reads its protocol accepted it on (reads moments apart see the same state of a slow
telegraph fluctuator, so a read right after the accepting one checks nothing; seconds
apart they are independent), but it must not wait again for cells that have had that
settle already. The job knows when its protocols touched each cell because it is the one
commanding: the engine's protocols work through a :class:`PulseLog`, which notes the bench
clock after every pulse and read command, and the job then waits only what is left of the
settle of the most recent one (:meth:`PulseLog.settle_left_s`). Nothing here reads the
chip or its simulator."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from memprog.protocols.common import bench_clock
from memprog.protocols.programmer import CellProgrammer


class PulseLog:
    """A CellProgrammer seen through a log of the bench time of each cell's last pulse or read.

    Every attribute and method but the pulses and reads is the programmer's own (waits, the
    clock, ``info``, ``limits``); :meth:`pulse`, :meth:`pulse_read`, :meth:`read` and
    :meth:`read_burst` note, after the command returns (so no earlier than it acted), the
    bench clock for each cell they name.
    A stack without a bench clock is timed by the host's clock: a lab bench's time is wall
    time.
    """

    def __init__(self, programmer: CellProgrammer, clock: Callable[[], float] | None = None) -> None:
        self._prog = programmer
        # the bench's clock where the programmer has none of its own (a serial stack's
        # waits advance the bench's clock, not the host's: timing them by the host's would
        # mix two clocks)
        self._clock = clock
        info = programmer.info
        self._cols = int(info.cols)
        self._last = np.full(int(info.rows) * self._cols, -np.inf)

    def __getattr__(self, name: str) -> Any:
        # only for what the log does not define; never for dunders or before ``_prog`` is
        # set (copy/pickle look attributes up on a bare instance: recursion otherwise)
        if name.startswith("__") or name == "_prog":
            raise AttributeError(name)
        return getattr(self._prog, name)

    def now_s(self) -> float:
        """The bench clock (the host's where the stack has none)."""
        b = bench_clock(self._prog)
        if b is None and self._clock is not None:
            b = float(self._clock())
        return time.monotonic() if b is None else b

    def _note(self, rows: object, cols: object) -> None:
        # called in ``finally``: a call the programmer refused (cells off the array, rows and
        # cols of different lengths) must surface as the programmer's own error, so only the
        # addresses that are cells of this array are noted, and odd shapes note nothing
        try:
            r, c = np.broadcast_arrays(np.asarray(rows).ravel(), np.asarray(cols).ravel())
            r, c = r.astype(np.int64), c.astype(np.int64)
        except (TypeError, ValueError):
            return
        ok = (r >= 0) & (r < self._last.size // self._cols) & (c >= 0) & (c < self._cols)
        self._last[r[ok] * self._cols + c[ok]] = self.now_s()

    def pulse(
        self, rows: object, cols: object, amplitude_v: object, width_s: float, *a: Any, **kw: Any
    ) -> None:
        """The programmer's pulse, noted."""
        try:
            self._prog.pulse(rows, cols, amplitude_v, width_s, *a, **kw)
        finally:  # a pulse refused half way may still have pulsed some cells: count them
            self._note(rows, cols)

    def pulse_read(
        self, rows: object, cols: object, amplitude_v: object, width_s: object, *a: Any, **kw: Any
    ) -> np.ndarray:
        """The programmer's pulse train and read burst, noted (every cell named: a cell that
        sits a pulse out with amplitude 0 is noted too, which only errs on the safe side)."""
        try:
            return self._prog.pulse_read(rows, cols, amplitude_v, width_s, *a, **kw)
        finally:
            self._note(rows, cols)

    def read(self, rows: object, cols: object, *a: Any, **kw: Any) -> np.ndarray:
        """The programmer's read, noted."""
        try:
            return self._prog.read(rows, cols, *a, **kw)
        finally:
            self._note(rows, cols)

    def read_burst(self, rows: object, cols: object, *a: Any, **kw: Any) -> np.ndarray:
        """The programmer's read burst, noted."""
        try:
            return self._prog.read_burst(rows, cols, *a, **kw)
        finally:
            self._note(rows, cols)

    def read_array(self, *a: Any, **kw: Any) -> np.ndarray:
        """The programmer's whole-array read, noted for every cell."""
        try:
            return self._prog.read_array(*a, **kw)
        finally:
            self._last[:] = self.now_s()

    def last_touch_s(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Bench time of each cell's last pulse or read (-inf: never, through this log)."""
        return self._last[np.asarray(rows, np.int64) * self._cols + np.asarray(cols, np.int64)]

    def settle_left_s(self, rows: np.ndarray, cols: np.ndarray, settle_s: float) -> float:
        """What is left of ``settle_s`` since the last pulse or read of any of the cells (0: none)."""
        if len(rows) == 0:
            return 0.0
        last = float(np.max(self.last_touch_s(rows, cols)))
        if not np.isfinite(last):
            return 0.0
        return max(0.0, settle_s - (self.now_s() - last))


CellProgrammer.register(PulseLog)  # it is one: every call reaches the programmer it wraps

__all__ = ["PulseLog"]
