"""The CellProgrammer interface: the only thing protocols know about hardware.

Every instrument stack (on-chip controller, 4200 + 707B, B1500 + WGFMU) implements it, so a
write-verify algorithm written once drives one device on a probe station or 65,536 cells
on the on-chip controller. All methods are vectorised: ``rows``/``cols`` are equal-length
integer arrays (or scalars) naming cells, and amplitudes may be one value per cell.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from memprog.core.errors import ConfigError
from memprog.core.limits import SafetyLimits


@dataclass(frozen=True)
class ProgrammerInfo:
    """What a stack can do, so protocols can choose batch sizes and features.

    Attributes:
        rows, cols: the addressable array.
        parallel: ``"row"`` if cells of one row can be pulsed/read in one operation,
            ``"cell"`` if the stack is serial (one cell per operation).
        has_gate: 1T1R stack whose gate voltage sets the SET compliance.
        g_range_us: conductance range the chip's technology can reach (for validation).
        read_v: the default read voltage.
        technology: technology name of the chip, for logs.
        addressable: the (row, col) cells the stack can reach when that is not every cell
            of ``rows`` x ``cols`` (a probe station reaches the devices under its probes);
            ``None``: every cell. Procedures that pick cells themselves (the
            characterisation) pick among these.
        width_step_s: the stack's pulse-timing grid when it has one (the WGFMU sequencer's
            10 ns): a procedure that derives widths (a decade of them) rounds to it, so
            the stack's own check does not refuse them; ``None``: any width in the limits.
    """

    rows: int
    cols: int
    parallel: str
    has_gate: bool
    g_range_us: tuple[float, float]
    read_v: float
    technology: str = ""
    addressable: tuple[tuple[int, int], ...] | None = None
    width_step_s: float | None = None

    def addressable_cells(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows and columns of every cell the stack reaches, row-major."""
        if self.addressable is None:
            flat = np.arange(self.rows * self.cols)
            return flat // self.cols, flat % self.cols
        rc = np.array(sorted(self.addressable), dtype=np.int64).reshape(-1, 2)
        return rc[:, 0], rc[:, 1]


class CellProgrammer(ABC):
    """Pulse and read cells of one chip. Drivers implement; protocols consume.

    Implementations must enforce :attr:`limits` before sending anything, and leave the
    hardware safe (0 V, matrix open) when :meth:`close` is called or an error occurs.
    """

    info: ProgrammerInfo
    limits: SafetyLimits
    #: the stack computes an analog vector-matrix multiply in the array (:meth:`vmm`). A
    #: declared capability, not a simulation check: jobs that run a network on the chip
    #: (the program job's inference, in-situ training) ask this instead of guessing from
    #: attributes; each stack in drivers/ states it.
    supports_vmm: bool = False

    @abstractmethod
    def pulse(
        self,
        rows: object,
        cols: object,
        amplitude_v: object,
        width_s: float,
        gate_v: object | None = None,
    ) -> None:
        """Apply one pulse to each named cell (positive = SET, negative = RESET)."""

    @abstractmethod
    def read(self, rows: object, cols: object, read_v: float | None = None) -> np.ndarray:
        """Measured conductance in µS of each named cell, in the order given."""

    def read_burst(
        self,
        rows: object,
        cols: object,
        reads: int,
        read_v: float | None = None,
        interval_s: float = 0.0,
    ) -> np.ndarray:
        """``reads`` successive reads of each named cell: an array (reads, cells) in µS.

        Why a method of its own: a write-verify loop reads the same cells several times in
        a row (a burst whose spread reveals telegraph noise, a verification); a stack that
        can run the burst on the instrument (the on-chip controller's ``READ:BURS?``)
        answers it in one round trip. ``interval_s`` is the least time between the starts
        of consecutive reads on stacks that time the burst themselves; this default (for
        stacks without such a primitive) reads ``reads`` times at the stack's own pace.

        Raises:
            ConfigError: ``reads`` not an integer >= 1, ``interval_s`` negative.
        """
        n = check_count("reads", reads)
        check_interval_s(interval_s)
        return np.stack([np.asarray(self.read(rows, cols, read_v), float) for _ in range(n)])

    def pulse_read(
        self,
        rows: object,
        cols: object,
        amplitude_v: object,
        width_s: object,
        gate_v: object | None = None,
        reads: int = 1,
        read_v: float | None = None,
        interval_s: float = 0.0,
    ) -> np.ndarray:
        """A train of pulses on the named cells, then a :meth:`read_burst` of them all.

        Why: the step of every write-verify loop is "pulse, then read what it did"; a stack
        that can do both on the instrument (the on-chip controller's ``PULS:READ?``) saves
        the round trips in between. ``width_s``: one width, or k widths (a train of k
        pulses, one after the other); ``amplitude_v``: per pulse and cell, broadcast to
        (k, cells) (a scalar, one per cell, or (k, cells)); 0 = that cell sits that pulse
        out (lock-step batches in which cells get different pulses). Returns the reads,
        (reads, cells) in µS. This default is :meth:`pulse` per pulse of the train on the
        cells it names, then :meth:`read_burst`.

        Raises:
            ConfigError: ``reads`` not an integer >= 1, ``interval_s`` negative, widths or
                amplitudes of the wrong shape (nothing pulsed).
        """
        check_count("reads", reads)
        check_interval_s(interval_s)
        r, c = cell_indices(rows, cols, self.info.rows, self.info.cols)
        amp, widths = pulse_train(amplitude_v, width_s, r.size)
        try:
            gate = None if gate_v is None else np.broadcast_to(np.asarray(gate_v, float), r.shape)
        except ValueError:
            raise ConfigError("gate_v", np.shape(gate_v), f"a scalar or {r.size} values") from None
        for a, w in zip(amp, widths, strict=True):
            on = a != 0
            if on.all():
                self.pulse(r, c, a, float(w), gate)
            elif on.any():
                self.pulse(r[on], c[on], a[on], float(w), None if gate is None else gate[on])
        return self.read_burst(r, c, reads, read_v, interval_s)

    def read_array(self, read_v: float | None = None) -> np.ndarray:
        """Conductance map (µS) of the whole array; stacks with a bulk read override this."""
        r, c = np.divmod(np.arange(self.info.rows * self.info.cols), self.info.cols)
        return self.read(r, c, read_v).reshape(self.info.rows, self.info.cols)

    def vmm(self, input_v: object) -> np.ndarray:
        """Analog vector-matrix multiply: row voltages in, column currents (A) out.

        ``input_v``: one vector (rows,) or a batch (k, rows) of read-level voltages; returns
        (cols,) or (k, cols) currents. Why on the interface: the forward pass of a network
        programmed into the array runs in the array itself on stacks that can (the on-chip
        controller's ``VMM?``); callers check :attr:`supports_vmm` first.

        Raises:
            ConfigError: this stack has no analog VMM (it reads cells one by one).
        """
        raise ConfigError(
            "stack",
            f"{type(self).__name__} ({self.info.technology or 'unknown technology'})",
            "a stack with an analog vector-matrix multiply (VMM?): the on-chip controller",
            "this stack reads cells one by one and has no VMM",
        )

    def close(self) -> None:  # noqa: B027 - optional hook
        """Leave the hardware safe; default does nothing."""

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` of bench time pass with the chip idle (Contract C).

        Why a programmer method: relaxation-aware verification (settle before accepting,
        re-verify after a settle, retention checks) needs bench time to pass, and only the
        stack knows how its bench passes time. Each shipped stack asks its instruments to
        wait (an instrument-side wait command), so a lab bench really waits and the
        simulated bench's clock advances by exactly that much; no stack branches on
        simulation. This default, for stacks without an instrument-side wait, sleeps on the
        host (a lab bench's time is wall time).

        Raises:
            ConfigError: ``seconds`` negative or not finite (nothing waited).
        """
        s = check_wait_s(seconds)
        if s > 0:
            time.sleep(s)


# [choice] Least spacing of the reads of one burst (read_burst / pulse_read) that the
# protocols ask for. Why not back to back: a burst is there to see the telegraph noise, and
# reads 10 µs apart see one state of every fluctuator slower than that; why this value:
# host-paced reads on the on-chip bench (one message each: 50 µs link latency, the bytes,
# the 10 µs read) were ~63 µs apart, so a burst timed by the instrument samples the noise
# exactly as the separate reads did and a verification is as strict as before.
BURST_INTERVAL_S = 63e-6

WAIT_CHUNK_S = 1.0  # longest single instrument-side wait a stack sends (any VISA timeout > 1 s works)


def check_seconds(name: str, value: object) -> float:
    """``value`` as a finite float >= 0 s (ConfigError naming ``name`` otherwise)."""
    try:
        s = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(name, value, "a number of seconds >= 0") from None
    if not np.isfinite(s) or s < 0:
        raise ConfigError(name, value, "a finite number of seconds >= 0")
    return s


def check_wait_s(seconds: object) -> float:
    """``seconds`` as a float >= 0 (ConfigError naming ``seconds`` otherwise)."""
    return check_seconds("seconds", seconds)


def wait_chunks(seconds: float, chunk_s: float = WAIT_CHUNK_S) -> list[float]:
    """``seconds`` split into instrument-side waits of at most ``chunk_s`` (sum exact).

    Why chunks: an instrument answers a wait only when it is over, so one wait must fit in
    the VISA timeout; a long settle or a retention delay is many short waits.
    """
    s = check_wait_s(seconds)
    if s == 0:
        return []
    n = int(np.ceil(s / chunk_s - 1e-12))
    full = [chunk_s] * (n - 1)
    return [*full, s - chunk_s * (n - 1)]


def check_count(name: str, value: object) -> int:
    """``value`` as an int >= 1 (ConfigError naming ``name`` otherwise)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(name, value, "an integer >= 1")
    return int(value)


def pulse_train(
    amplitude_v: object, width_s: object, n_cells: int
) -> tuple[np.ndarray, np.ndarray]:
    """Amplitudes (k, n_cells) and widths (k,) of a train of k pulses (see ``pulse_read``).

    Raises:
        ConfigError: no width, widths not a flat sequence, amplitudes that do not
            broadcast to (k, n_cells).
    """
    w = np.atleast_1d(np.asarray(width_s, dtype=float))
    if w.ndim != 1 or w.size == 0:
        raise ConfigError("width_s", np.shape(width_s), "one width or a sequence of widths")
    try:
        amp = np.broadcast_to(np.asarray(amplitude_v, dtype=float), (w.size, n_cells))
    except ValueError:
        raise ConfigError(
            "amplitude_v",
            np.shape(amplitude_v),
            f"a scalar, {n_cells} values or ({w.size}, {n_cells})",
        ) from None
    return amp, w


def check_interval_s(value: object) -> float:
    """``value`` as a finite float >= 0 s (ConfigError naming ``interval_s`` otherwise)."""
    return check_seconds("interval_s", value)


def cell_indices(
    rows: object, cols: object, n_rows: int, n_cols: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validated, broadcast, flat int64 row/column indices of cells in an array.

    Why here: every stack must refuse a cell outside the chip, or a fractional index,
    before anything is sent, and name the offending value the same way.
    """
    out = []
    for name, a, n in (("rows", rows, n_rows), ("cols", cols, n_cols)):
        arr = np.atleast_1d(np.asarray(a))
        if arr.dtype.kind not in "iu":
            if arr.dtype.kind != "f" or (arr.size and not np.all(np.mod(arr, 1) == 0)):
                raise ConfigError(name, arr.ravel()[0] if arr.size else arr, "integer cell indices")
            arr = arr.astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            raise ConfigError(name, int(arr[(arr < 0) | (arr >= n)][0]), f"[0, {n - 1}]")
        out.append(arr.astype(np.int64))
    r, c = np.broadcast_arrays(*out)
    return r.ravel(), c.ravel()


def pulse_batch(
    rows: object, cols: object, amplitude_v: object, width_s: object, n_rows: int, n_cols: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A pulse call's cells (as :func:`cell_indices`), one amplitude per cell and the width.

    Why here: every serial stack takes the same arguments and must refuse them the same way
    before anything is sent; the limits it checks them against are its own.
    """
    r, c = cell_indices(rows, cols, n_rows, n_cols)
    amp = np.broadcast_to(np.asarray(amplitude_v, dtype=float), r.shape)
    try:
        width = float(width_s)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError("width_s", width_s, "one pulse width in s") from None
    return r, c, amp, width
