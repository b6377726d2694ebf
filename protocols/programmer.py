"""The CellProgrammer interface: the only thing protocols know about hardware.

Every instrument stack (on-chip controller, 4200 + 707B, B1500 + WGFMU) implements it, so a
write-verify algorithm written once drives one device on a probe station or 65,536 cells
on the on-chip controller. All methods are vectorised: ``rows``/``cols`` are equal-length
integer arrays (or scalars) naming cells, and amplitudes may be one value per cell.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from memprog.errors import ConfigError
from memprog.limits import SafetyLimits


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
    """

    rows: int
    cols: int
    parallel: str
    has_gate: bool
    g_range_us: tuple[float, float]
    read_v: float
    technology: str = ""


class CellProgrammer(ABC):
    """Pulse and read cells of one chip. Drivers implement; protocols consume.

    Implementations must enforce :attr:`limits` before sending anything, and leave the
    hardware safe (0 V, matrix open) when :meth:`close` is called or an error occurs.
    """

    info: ProgrammerInfo
    limits: SafetyLimits

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

    def read_array(self, read_v: float | None = None) -> np.ndarray:
        """Conductance map (µS) of the whole array; stacks with a bulk read override this."""
        r, c = np.divmod(np.arange(self.info.rows * self.info.cols), self.info.cols)
        return self.read(r, c, read_v).reshape(self.info.rows, self.info.cols)

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
        import time

        s = check_wait_s(seconds)
        if s > 0:
            time.sleep(s)


WAIT_CHUNK_S = 1.0  # longest single instrument-side wait a stack sends (any VISA timeout > 1 s works)


def check_wait_s(seconds: object) -> float:
    """``seconds`` as a float >= 0 (ConfigError naming ``seconds`` otherwise)."""
    try:
        s = float(seconds)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError("seconds", seconds, "a number of seconds >= 0") from None
    if not np.isfinite(s) or s < 0:
        raise ConfigError("seconds", s, "a finite number of seconds >= 0")
    return s


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
