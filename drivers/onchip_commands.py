"""Pure builders and parsers of the on-chip controller's protocol v1 (no I/O).

Every message the :class:`~memprog.drivers.onchip.OnChipController` sends is built here and
every reply it receives is parsed here, so the command language is testable on its own and
the driver keeps only sequencing, validation and error handling. The protocol itself is
written down in ``drivers/onchip_protocol.md``; units on the wire are SI (V, s, S, A).

Numbers are written with ``%.6G`` (six significant digits: 1 µV steps on a 2 V pulse,
``NAN`` for "gate fully on"); conductances come back in siemens and are converted to µS
by the driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from memprog.core.errors import ConfigError, ProtocolError

LEVELS = 64  # the on-chip programmer's 6-bit resolution
SKIP_CODE = 255  # target-map code meaning "leave this cell alone"
MANUFACTURER = "MEMPROG"
MODEL_PREFIX = "ONCHIP"
NO_ERROR = '0,"No error"'


@dataclass(frozen=True)
class Identity:
    """The controller's ``*IDN?`` fields."""

    manufacturer: str
    model: str
    serial: str
    firmware: str


@dataclass(frozen=True)
class ControllerLimits:
    """The limits the controller's firmware enforces on its own (``ARR:LIM?``)."""

    amplitude_max_v: float
    gate_max_v: float
    read_max_v: float
    width_min_s: float
    width_max_s: float


@dataclass(frozen=True)
class ProgramResult:
    """Summary of one on-chip 6-bit programming run (``PROG:RES?``)."""

    cells: int
    converged: int
    failed: int
    iterations: int
    pulses: int
    duration_s: float


@dataclass(frozen=True)
class ProgramPulses:
    """Pulses of the on-chip programming engine (``PROG:PULS``); amplitudes are magnitudes."""

    set_amplitude_v: float
    set_width_s: float
    reset_amplitude_v: float
    reset_width_s: float


def num(x: float) -> str:
    """A number as the protocol writes it (six significant digits, ``NAN`` for NaN)."""
    return f"{x:.6G}"


# ------------------------------------------------------------------------- builders
def read_voltage_suffix(read_v: float | None, first: bool = False) -> str:
    """The optional trailing read-voltage parameter of the READ queries."""
    if read_v is None:
        return ""
    return (" " if first else ",") + num(read_v)


WAIT_MAX_S = 10.0  # the firmware's longest single wait (SYST:WAIT?)


def wait_query(seconds: float) -> str:
    """``SYST:WAIT? <s>``: idle for ``seconds`` (0 < s <= WAIT_MAX_S), then answer ``1``."""
    if not 0 < seconds <= WAIT_MAX_S:
        raise ConfigError("seconds", seconds, f"(0, {WAIT_MAX_S:g}] s per SYST:WAIT?")
    return f"SYST:WAIT? {num(seconds)}"


def read_cell(row: int, col: int, read_v: float | None = None) -> str:
    """``READ:CELL?``: one cell; without ``read_v`` the configured read voltage is used."""
    return f"READ:CELL? {row},{col}{read_voltage_suffix(read_v)}"


def read_row(row: int, read_v: float | None = None) -> str:
    """``READ:ROW?``: one whole row, sensed in parallel (block reply)."""
    return f"READ:ROW? {row}{read_voltage_suffix(read_v)}"


def read_array(read_v: float | None = None) -> str:
    """``READ:ARR?``: the whole array, row by row (block reply)."""
    return f"READ:ARR?{read_voltage_suffix(read_v, first=True)}"


def read_selection(read_v: float | None = None) -> str:
    """``READ:SEL?``: the cells stored by the last ``READ:SEL`` (block reply)."""
    return f"READ:SEL?{read_voltage_suffix(read_v, first=True)}"


SELECT_HEADER = "READ:SEL "
VMM_INPUT_HEADER = "VMM:INP "
VMM_QUERY = "VMM?"
PROGRAM_MAP_HEADER = "PROG:MAP "


def selection_records(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``READ:SEL`` block payload: (row, col) pairs as little-endian uint16."""
    return np.column_stack([rows, cols]).astype("<u2").ravel()


@lru_cache(maxsize=64)
def _triplet_format(n: int) -> str:
    return ",".join(["%d,%.6G,%.6G"] * n)


def pulse_row(
    row: int, width_s: float, cols: np.ndarray, amplitude_v: np.ndarray, gate_v: np.ndarray
) -> str:
    """``PULS:ROW?``: cells of one row pulsed in parallel, one (col, amplitude, gate) per cell.

    One C-level ``%`` format for the whole batch (no per-cell Python work).
    """
    flat = np.column_stack([cols, amplitude_v, gate_v]).ravel().tolist()
    return f"PULS:ROW? {row},{num(width_s)}," + _triplet_format(len(cols)) % tuple(flat)


def pulse_one(row: int, col: int, width_s: float, amplitude_v: float, gate_v: float) -> str:
    """``PULS:ROW?`` for a single cell (the write-verify hot path)."""
    return f"PULS:ROW? {row},{width_s:.6G},{col},{amplitude_v:.6G},{gate_v:.6G}"


TRAIN_MAX = 32  # pulses of one PULS:READ? train
BURST_READS_MAX = 64  # reads of one PULS:READ? / READ:BURS? burst
BURST_INTERVAL_MAX_S = 0.01  # longest spacing of a burst's reads, s


def pulse_read(
    row: int,
    reads: int,
    interval_s: float,
    widths_s: np.ndarray,
    cols: np.ndarray,
    gate_v: np.ndarray,
    amplitude_v: np.ndarray,
) -> str:
    """``PULS:READ?``: a train of k pulses on cells of one row, then ``reads`` reads.

    ``widths_s`` (k,); per cell a (col, gate, amplitude_1..amplitude_k) record, amplitudes
    given as (cells, k). The reply is a block of ``reads`` x cells float32 conductances (S),
    read after read. One C-level ``%`` format for the whole message.
    """
    k = len(widths_s)
    rec = np.column_stack([cols, gate_v, amplitude_v]).ravel().tolist()
    head = f"PULS:READ? {row},{reads},{interval_s:.6G},{k}," + ",".join(["%.6G"] * k) % tuple(
        widths_s.tolist()
    )
    return head + "," + _record_format(len(cols), k) % tuple(rec)


@lru_cache(maxsize=256)
def _record_format(n: int, k: int) -> str:
    return ",".join(["%d,%.6G" + ",%.6G" * k] * n)


def read_burst(row: int, reads: int, interval_s: float, cols: np.ndarray) -> str:
    """``READ:BURS?``: ``reads`` reads of cells of one row at the configured read voltage."""
    return f"READ:BURS? {row},{reads},{interval_s:.6G}," + ",".join(str(int(c)) for c in cols)


def pulse_rows_header(width_s: float) -> str:
    """Header of ``PULS:ROWS``; the block of (row, col, amplitude, gate) records follows."""
    return f"PULS:ROWS {num(width_s)},"


def pulse_rows_records(
    rows: np.ndarray, cols: np.ndarray, amplitude_v: np.ndarray, gate_v: np.ndarray
) -> np.ndarray:
    """``PULS:ROWS`` block payload: float32 records, in the order given (grouped by row)."""
    rec = np.empty((len(rows), 4), dtype="<f4")
    rec[:, 0], rec[:, 1], rec[:, 2], rec[:, 3] = rows, cols, amplitude_v, gate_v
    return rec.ravel()


def program_range(lo_us: float, hi_us: float) -> str:
    """``PROG:RANG``: conductances of level 0 and level 63 (sent in S)."""
    return f"PROG:RANG {num(lo_us * 1e-6)},{num(hi_us * 1e-6)}"


def program_pulses(p: ProgramPulses) -> str:
    """``PROG:PULS``: the on-chip engine's SET and RESET pulses."""
    return (
        f"PROG:PULS {num(p.set_amplitude_v)},{num(p.set_width_s)},"
        f"{num(p.reset_amplitude_v)},{num(p.reset_width_s)}"
    )


# ------------------------------------------------------------------------- parsers
def parse_float(reply: str, expected: str, instrument: str = "") -> float:
    """A single number; ProtocolError naming ``expected`` otherwise."""
    try:
        return float(reply)
    except (TypeError, ValueError):
        raise ProtocolError(expected, reply, instrument) from None


def parse_floats(reply: str, count: int, expected: str, instrument: str = "") -> tuple[float, ...]:
    """Exactly ``count`` comma-separated numbers."""
    parts = reply.split(",")
    if len(parts) != count:
        raise ProtocolError(expected, reply, instrument)
    try:
        return tuple(float(p) for p in parts)
    except ValueError:
        raise ProtocolError(expected, reply, instrument) from None


def parse_ints(reply: str, count: int, expected: str, instrument: str = "") -> tuple[int, ...]:
    """Exactly ``count`` comma-separated integers."""
    parts = reply.split(",")
    if len(parts) != count:
        raise ProtocolError(expected, reply, instrument)
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise ProtocolError(expected, reply, instrument) from None


def parse_error_entry(reply: str, instrument: str = "") -> tuple[int, str]:
    """One ``SYST:ERR?`` entry ``<code>,"<message>"``."""
    code, sep, message = reply.partition(",")
    try:
        value = int(code)
    except ValueError:
        value = None
    if not sep or value is None or len(message) < 2 or message[0] != '"' or message[-1] != '"':
        raise ProtocolError('an error-queue entry <code>,"<message>"', reply, instrument)
    return value, message[1:-1]


def parse_error_reply(reply: str) -> tuple[int, str] | None:
    """The (code, message) of a failed query's ``ERR <code>,"<message>"`` reply, else None."""
    if not reply.startswith("ERR "):
        return None
    try:
        return parse_error_entry(reply[4:])
    except ProtocolError:
        return None


def parse_identity(reply: str, instrument: str = "") -> Identity:
    """``*IDN?``: four comma-separated fields."""
    parts = [p.strip() for p in reply.split(",")]
    if len(parts) != 4:
        raise ProtocolError("an identity 'maker,model,serial,firmware'", reply, instrument)
    return Identity(*parts)


def parse_program_result(reply: str, instrument: str = "") -> ProgramResult:
    """``PROG:RES?``: cells, converged, failed, iterations, pulses, duration_s."""
    parts = reply.split(",")
    expected = "a programming summary 'cells,converged,failed,iterations,pulses,duration_s'"
    if len(parts) != 6:
        raise ProtocolError(expected, reply, instrument)
    try:
        ints = [int(p) for p in parts[:5]]
        return ProgramResult(*ints, duration_s=float(parts[5]))
    except ValueError:
        raise ProtocolError(expected, reply, instrument) from None


def parse_program_status(reply: str, instrument: str = "") -> tuple[str, float | None]:
    """``PROG:STAT?``: ``IDLE``, ``DONE``, ``ABORT`` or ``RUN,<fraction>``."""
    state, _, frac = reply.partition(",")
    if state in ("IDLE", "DONE", "ABORT") and not frac:
        return state, None
    if state == "RUN":
        try:
            return state, float(frac)
        except ValueError:
            pass
    raise ProtocolError(
        "a programming status IDLE, RUN,<fraction>, DONE or ABORT", reply, instrument
    )


# ------------------------------------------------------------------------- 6-bit levels
def level_conductances_us(lo_us: float, hi_us: float) -> np.ndarray:
    """The 64 conductances (µS) of the on-chip programmer's levels, equally spaced."""
    return np.linspace(lo_us, hi_us, LEVELS)


def levels_for(conductance_us: object, lo_us: float, hi_us: float) -> np.ndarray:
    """Nearest 6-bit level code of each target conductance (NaN -> SKIP_CODE).

    Rounding to the level grid is the point of a 6-bit programmer; a target outside the
    range by more than half a step is refused (ConfigError), never clipped.
    """
    try:
        g = np.asarray(conductance_us, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ConfigError("conductance_us", conductance_us, "numbers (µS) or NaN to skip", str(exc)) from None
    step = (hi_us - lo_us) / (LEVELS - 1)
    skip = np.isnan(g)
    code = np.rint((np.where(skip, lo_us, g) - lo_us) / step)
    bad = ~skip & ((code < 0) | (code > LEVELS - 1) | ~np.isfinite(g))
    if bad.any():
        raise ConfigError(
            "conductance_us",
            float(g[bad].ravel()[0]),
            f"[{lo_us - step / 2:g}, {hi_us + step / 2:g}] µS",
        )
    return np.where(skip, SKIP_CODE, code).astype(np.uint8)
