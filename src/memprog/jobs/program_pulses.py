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
        self._last = np.full(int(info.rows) * self._cols, -np.inf)  # pulse or read
        self._last_pulse = np.full(int(info.rows) * self._cols, -np.inf)

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

    def _note(self, rows: object, cols: object, pulse: bool = False) -> None:
        # called in ``finally``: a call the programmer refused (cells off the array, rows and
        # cols of different lengths) must surface as the programmer's own error, so only the
        # addresses that are cells of this array are noted, and odd shapes note nothing
        try:
            r, c = np.broadcast_arrays(np.asarray(rows).ravel(), np.asarray(cols).ravel())
            r, c = r.astype(np.int64), c.astype(np.int64)
        except (TypeError, ValueError):
            return
        ok = (r >= 0) & (r < self._last.size // self._cols) & (c >= 0) & (c < self._cols)
        now = self.now_s()
        self._last[r[ok] * self._cols + c[ok]] = now
        if pulse:
            self._last_pulse[r[ok] * self._cols + c[ok]] = now

    def pulse(
        self, rows: object, cols: object, amplitude_v: object, width_s: float, *a: Any, **kw: Any
    ) -> None:
        """The programmer's pulse, noted."""
        try:
            self._prog.pulse(rows, cols, amplitude_v, width_s, *a, **kw)
        finally:  # a pulse refused half way may still have pulsed some cells: count them
            self._note(rows, cols, pulse=True)

    def pulse_read(
        self, rows: object, cols: object, amplitude_v: object, width_s: object, *a: Any, **kw: Any
    ) -> np.ndarray:
        """The programmer's pulse train and read burst, noted (every cell named: a cell that
        sits a pulse out with amplitude 0 is noted too, which only errs on the safe side)."""
        try:
            return self._prog.pulse_read(rows, cols, amplitude_v, width_s, *a, **kw)
        finally:
            self._note(rows, cols, pulse=True)

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

    def last_pulse_s(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Bench time of each cell's last pulse (-inf: never, through this log)."""
        flat = np.asarray(rows, np.int64) * self._cols + np.asarray(cols, np.int64)
        return self._last_pulse[flat]

    def settle_left_s(
        self, rows: np.ndarray, cols: np.ndarray, settle_s: float, read_gap_s: float | None = None
    ) -> float:
        """What is left of ``settle_s`` since the last pulse or read of any of the cells (0: none).

        ``read_gap_s``: a read only asks for that much time after it, a pulse the whole
        settle. Why: the settle is the relaxation a pulse leaves behind; what a read asks for
        is a new state of the telegraph noise, so that the verification does not read the
        state the protocol accepted on. A verification whose own reads are spread over the
        noise (the job's spaced reads) needs only that gap, not a whole settle.
        """
        if len(rows) == 0:
            return 0.0
        return float(np.max(self.settle_left_each_s(rows, cols, settle_s, read_gap_s)))

    def settle_left_each_s(
        self, rows: np.ndarray, cols: np.ndarray, settle_s: float, read_gap_s: float | None = None
    ) -> np.ndarray:
        """:meth:`settle_left_s` of each cell on its own (0: its settle is over, or none)."""
        now = self.now_s()
        touch = self.last_touch_s(rows, cols)
        if read_gap_s is None:
            left = settle_s - (now - touch)
        else:
            left = np.maximum(
                settle_s - (now - self.last_pulse_s(rows, cols)), read_gap_s - (now - touch)
            )
        return np.maximum(np.where(np.isfinite(left), left, 0.0), 0.0)


CellProgrammer.register(PulseLog)  # it is one: every call reaches the programmer it wraps


# [choice] reads of one cell 10 ms apart: longer than the dwell times of the telegraph
# fluctuators the protocols average over (their lock-step rounds, milliseconds apart, are
# taken to see independent states), so each read is a new sample of the noise. Back to
# back (10 µs apart on the on-chip bench) a few cells' 16 reads saw one state: a cell held
# 0.4-0.7 of its band from target read 1.0-1.3 bands off (3-5 µS p-p RTN against a 3 µS
# band) and was re-tuned, round after round.
READ_GAP_S = 0.01
# [choice] at least 8 spaced reads before a cell's own spread decides whether it needs
# more: fewer can all catch one state of a two-level fluctuator and read as noiseless (1
# cell in 32 at 6 reads, 1 in 128 at 8: on a 16,000-cell chip's ~1,000 noisy cells near
# their band's edge that is the difference between a round and none); at most 16, as
# before
SPACED_MIN_READS = 8
SPACED_MAX_READS = 16


def spaced_read(
    prog: CellProgrammer, rows: np.ndarray, cols: np.ndarray, sem_target_us: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of reads of each cell at least ``READ_GAP_S`` apart, as many as its own spread
    needs to reach ``sem_target_us`` (``SPACED_MIN_READS``..``SPACED_MAX_READS``).

    Why not :func:`adaptive_read`: it reads a small batch back to back, and reads
    microseconds apart see one state of a telegraph fluctuator: the mean of 16 is then
    one read, not 16 (a batch of thousands of cells spaces its passes by itself: no wait
    is added there). Returns (mean µS, reads per cell)."""
    n = rows.size
    s1, s2 = np.zeros(n), np.zeros(n)
    k = np.zeros(n, dtype=np.int64)
    todo = np.arange(n)
    last = None
    for j in range(SPACED_MAX_READS):
        now = bench_clock(prog)
        if last is not None and now is not None and now - last < READ_GAP_S:
            prog.wait(READ_GAP_S - (now - last))
        last = bench_clock(prog)
        g = np.asarray(prog.read(rows[todo], cols[todo]), float)
        s1[todo] += g
        s2[todo] += g * g
        k[todo] += 1
        if j + 1 >= SPACED_MIN_READS:
            m = s1[todo] / k[todo]
            var = np.maximum(s2[todo] - k[todo] * m * m, 0.0) / (k[todo] - 1)
            todo = todo[np.sqrt(var / k[todo]) > sem_target_us[todo]]
            if todo.size == 0:
                break
    return s1 / k, k


__all__ = ["PulseLog", "READ_GAP_S", "spaced_read"]
