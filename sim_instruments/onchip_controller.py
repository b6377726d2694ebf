"""Simulated on-chip 256x256 array controller, speaking protocol v1 (drivers/onchip_protocol.md).

The controller is the firmware of an integrated 1T1R chip (Rao 2023 style): per-column
drivers and sense amplifiers, so a whole row is pulsed or read in parallel; an on-chip
6-bit write-verify engine; an analog vector-matrix multiply. Here that firmware is Python
acting on the bench's :class:`~memprog.sim_instruments.chip.SimChip`:

* the static surface (``*IDN?``, ``*OPT?``, ``SYST:PROT?``) comes from ``onchip.yaml``;
* every other command is parsed here, validated like the firmware would (address range,
  the chip's breakdown-safe voltage limits, block sizes), and either acts on the chip or
  queues a numbered error (``SYST:ERR?``); a failing query also answers ``ERR <code>,"<msg>"``
  so a client never waits for a timeout;
* the chip clock advances by each operation's real duration: pulse widths, one
  ``read_time_s`` per row read, the bytes on the link at ``link_bytes_per_s`` (the backend
  adds the per-message latency).

Bulk data are IEEE 488.2 definite-length blocks, decoded and encoded with numpy in one
step (no per-value Python work), so a 65,536-value read costs a few milliseconds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from itertools import product
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from memprog.core.errors import MemprogError
from memprog.core.validation import MemprogModel
from memprog.sim_instruments.base import SimulatedInstrument, StaticSurface, register

if TYPE_CHECKING:  # pragma: no cover
    from memprog.core.bench_config import InstrumentConfig
    from memprog.sim_instruments.base import SimBench

LEVELS = 64  # 6-bit on-chip programming
SKIP_CODE = 255  # target-map code: leave this cell alone
ERROR_QUEUE_DEPTH = 16
READ_V_MAX = 0.5  # firmware limit on read and VMM input voltages, V
AMPLITUDE_MARGIN = 0.9  # firmware refuses pulses above this fraction of the breakdown voltage
GATE_HEADROOM_V = 0.5  # firmware gate limit above the gate voltage of full compliance
STALL_ITERATIONS = 8  # on-chip programming gives up on a cell that has not moved by then
MAX_ITERATIONS = 60  # on-chip programming iterations (SET + verify passes)
WAIT_MAX_S = 10.0  # longest single SYST:WAIT?, s
VERIFY_FRACTION = 0.6  # accept a cell within this fraction of the half level step
VMM_BATCH_MAX = 1024  # input vectors one VMM:INP block may hold (firmware buffer)
TRAIN_MAX = 32  # pulses of one PULS:READ? train
BURST_READS_MAX = 64  # reads of one PULS:READ? / READ:BURS? burst (firmware buffer)
BURST_INTERVAL_MAX_S = 0.01  # longest spacing of a burst's reads, s


class OnChipSimOptions(MemprogModel):
    """Simulator-only knobs, from the bench file's ``instruments.<name>.options``."""

    link_bytes_per_s: float | None = Field(
        default=None, gt=0, description="link throughput; default 1e7 B/s socket, 92,160 B/s serial"
    )
    sim_faults: dict | None = Field(default=None, description="fault injection (faults.FaultPlan)")


class _CommandError(Exception):
    """A numbered controller error (SCPI negative codes, device-specific positive ones)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message.replace('"', "'")


def _expand(template: str) -> list[str]:
    """Every accepted spelling of a SCPI header: each node short (upper-case part) or long."""
    nodes = []
    for node in template.split(":"):
        short = "".join(ch for ch in node if not ch.islower())
        forms = {short, node.upper()}
        nodes.append(sorted(forms))
    return [":".join(p) for p in product(*nodes)]


def _block(values: np.ndarray, dtype: str) -> bytes:
    """IEEE 488.2 definite-length block of ``values`` (numpy encoding, no per-value work)."""
    data = np.ascontiguousarray(values, dtype=dtype).tobytes()
    n = str(len(data))
    return b"#" + str(len(n)).encode() + n.encode() + data


def _parse_block(text: str, dtype: str, record: int = 1) -> np.ndarray:
    """Decode the block that ``text`` holds (it must start at ``#``) into a numpy array."""
    # ASCII digits only: "²".isdigit() is true but int("²") raises
    if len(text) < 2 or text[0] != "#" or text[1] not in "123456789":
        raise _CommandError(
            -160, f"Block data error; expected #<n><length><data>, got {text[:12]!r}"
        )
    ndig = int(text[1])
    field = text[2 : 2 + ndig]
    if len(field) != ndig or not (field.isascii() and field.isdigit()):
        raise _CommandError(-160, f"Block data error; bad length field {field!r}")
    length = int(field)
    data = text[2 + ndig :]
    if len(data) != length:
        raise _CommandError(
            -160, f"Block data error; header announces {length} bytes, {len(data)} follow"
        )
    size = np.dtype(dtype).itemsize * record
    if length % size:
        raise _CommandError(
            -161, f"Invalid block data; {length} bytes is not a whole number of {size}-byte records"
        )
    return np.frombuffer(data.encode("latin-1"), dtype=dtype)


def _number(token: str, name: str) -> float:
    try:
        return float(token)
    except ValueError:
        raise _CommandError(
            -104, f"Data type error; {name} {token.strip()!r} is not a number"
        ) from None


def _integer(token: str, name: str) -> int:
    try:
        value = int(token)
    except ValueError:
        raise _CommandError(
            -104, f"Data type error; {name} {token.strip()[:40]!r} is not an integer"
        ) from None
    if not -(2**31) <= value < 2**31:  # no parameter is larger; numpy int64 arrays would overflow
        raise _CommandError(-222, f"Data out of range; {name} {value:.3g}, allowed 32-bit integers")
    return value


def _fields(args: str, names: tuple[str, ...], optional: int = 0) -> list[str]:
    """Split comma-separated parameters, checking their count."""
    parts = [a for a in args.split(",")] if args.strip() else []
    need = len(names) - optional
    if len(parts) < need:
        raise _CommandError(-109, f"Missing parameter; expected {', '.join(names)}")
    if len(parts) > len(names):
        raise _CommandError(-108, f"Parameter not allowed; expected at most {', '.join(names)}")
    return parts


@register("onchip")
class SimOnChipController(SimulatedInstrument):
    """The firmware of the on-chip controller, answering protocol v1 on the bench's chip."""

    write_termination = "\n"
    read_termination = "\n"
    latency_s = 50e-6

    def __init__(self, name: str, config: InstrumentConfig, bench: SimBench) -> None:
        super().__init__(name, config, bench)
        self.options = OnChipSimOptions(**config.options)
        default_rate = 92_160.0 if config.resource.upper().startswith("ASRL") else 1e7
        self.link_bytes_per_s = self.options.link_bytes_per_s or default_rate
        self.static = StaticSurface("onchip.yaml", "ONCHIP256")
        chip = self.chip
        p = chip.params
        self.rows, self.cols = chip.rows, chip.cols
        self.amplitude_max_v = round(AMPLITUDE_MARGIN * p.v_breakdown_v, 3)
        self.gate_max_v = p.gate_v_max_v + GATE_HEADROOM_V
        self.width_range_s = (p.width_min_s, p.width_max_s)
        self._row_cols = np.arange(self.cols)
        self._all_rc = np.divmod(np.arange(self.rows * self.cols), self.cols)
        self._errors: deque[tuple[int, str]] = deque()
        self.power_cycles = 0
        self.aborts = 0
        self._table: dict[str, Callable[[str], str | bytes | None]] = {}
        for template, fn in self._commands().items():
            for spelling in _expand(template):
                self._table[spelling] = fn
        self.reset()

    # ------------------------------------------------------------------ command table
    def _commands(self) -> dict[str, Callable[[str], str | bytes | None]]:
        return {
            "*RST": self._rst,
            "*CLS": self._cls,
            "*OPC?": self._opc,
            "*STB?": lambda a: str(self.status_byte()),
            "SYSTem:ERRor?": self._err_next,
            "SYSTem:ERRor:NEXT?": self._err_next,
            "SYSTem:ERRor:COUNt?": lambda a: str(len(self._errors)),
            "ARRay:SIZE?": lambda a: f"{self.rows},{self.cols}",
            "ARRay:TYPE?": lambda a: "1T1R" if self.chip.params.cell_type == "1t1r" else "0T1R",
            "ARRay:TECHnology?": lambda a: self.chip.technology,
            "ARRay:CONDuctance?": self._conductance_range,
            "ARRay:LIMits?": self._limits,
            "PULSe:SET:AMPLitude": lambda a: self._set_amplitude(a, "set"),
            "PULSe:SET:AMPLitude?": lambda a: f"{self.set_v:.6G}",
            "PULSe:RESet:AMPLitude": lambda a: self._set_amplitude(a, "reset"),
            "PULSe:RESet:AMPLitude?": lambda a: f"{self.reset_v:.6G}",
            "PULSe:WIDTh": self._set_width,
            "PULSe:WIDTh?": lambda a: f"{self.width_s:.6G}",
            "PULSe:GATE": self._set_gate,
            "PULSe:GATE?": lambda a: f"{self.gate_v:.6G}",
            "PULSe:SET": lambda a: self._pulse_configured(a, +1),
            "PULSe:RESet": lambda a: self._pulse_configured(a, -1),
            "PULSe:ROW?": self._pulse_row,
            "PULSe:ROWS": self._pulse_rows,
            "PULSe:READ?": self._pulse_read,
            "READ:BURSt?": self._read_burst,
            "READ:VOLTage": self._set_read_v,
            "READ:VOLTage?": lambda a: f"{self.read_v:.6G}",
            "READ:CELL?": self._read_cell,
            "READ:ROW?": self._read_row,
            "READ:ARRay?": self._read_array,
            "READ:SELect": self._select,
            "READ:SELect?": self._read_selection,
            "VMM:INPut": self._vmm_input,
            "VMM?": self._vmm,
            "PROGram:RANGe": self._prog_range,
            "PROGram:RANGe?": lambda a: f"{self.prog_range_s[0]:.6G},{self.prog_range_s[1]:.6G}",
            "PROGram:PULSe": self._prog_pulse,
            "PROGram:PULSe?": lambda a: ",".join(f"{x:.6G}" for x in self.prog_pulse),
            "PROGram:MAP": self._prog_map_load,
            "PROGram:STARt": self._prog_start,
            "PROGram:STATus?": self._prog_status,
            "PROGram:RESult?": self._prog_result,
            "PROGram:DATA?": self._prog_data,
            "ABORt": self._abort,
            "SYSTem:WAIT?": self._wait,
        }

    # ------------------------------------------------------------------ VISA seam
    def handle(self, message: str) -> str | bytes | None:
        """Execute one message; the reply (text or block) or None for a command."""
        head, _, args = message.partition(" ")
        key = head.upper()
        if key.startswith(":"):
            key = key[1:]
        fn = self._table.get(key)
        try:
            if fn is None:
                reply = self.static.match(message)
                if reply is None:
                    raise _CommandError(-113, f"Undefined header; {head[:40]}")
            else:
                reply = fn(args)
        except _CommandError as exc:
            self._push_error(exc.code, exc.message)
            reply = f'ERR {exc.code},"{exc.message}"' if key.endswith("?") else None
        except MemprogError as exc:  # the chip refused something the firmware let through
            text = f"Execution error; {exc}".replace('"', "'").replace("\n", " ")
            self._push_error(-200, text)
            reply = f'ERR -200,"{text}"' if key.endswith("?") else None
        n_bytes = len(message) + (len(reply) if reply is not None else 0)
        self._advance(n_bytes / self.link_bytes_per_s)
        return reply

    def status_byte(self) -> int:
        """IEEE 488.2 status byte: bit 2 (EAV) while the error queue holds an error."""
        return 4 if self._errors else 0

    def can_refuse(self, message: str) -> bool:
        """The error queue and the identity are always answered, even when busy."""
        head = message.partition(" ")[0].upper().lstrip(":")
        return not head.startswith(("SYST:ERR", "SYSTEM:ERR", "*IDN", "*CLS"))

    def transient_error(self, message: str) -> str | None:
        """Fault injection: refuse ``message`` with error 210 (busy); nothing is executed."""
        text = "Controller busy; command not executed"
        self._push_error(210, text)
        head = message.partition(" ")[0]
        return f'ERR 210,"{text}"' if head.endswith("?") else None

    def power_cycle(self) -> None:
        """Fault injection: the firmware reboots (power-on settings, empty error queue)."""
        self.reset()
        self._errors.clear()
        self.power_cycles += 1

    def reset(self) -> None:
        """Power-on configuration (``*RST``); the error queue is kept, as SCPI requires."""
        p = self.chip.params
        self.set_v, self.reset_v, self.width_s = 1.5, 1.5, 1e-6
        self.gate_v = p.gate_v_max_v
        self.read_v = p.read_v
        self.selection: np.ndarray | None = None
        self.vmm_input: np.ndarray | None = None
        self.prog_range_s = (50e-6, 4144e-6)  # Rao 2023: 50-4,144 µS
        self.prog_pulse = (1.45, 100e-9, 2.0, 1e-6)  # set V, set width, reset |V|, reset width
        self.prog_map: np.ndarray | None = None
        self.prog_state = "IDLE"
        self.prog_summary: tuple[int, int, int, int, int, float] | None = None
        self.prog_data: np.ndarray | None = None
        self.safe = True  # ABOR was the last array operation (for tests and the soak)

    # ------------------------------------------------------------------ common commands
    def _rst(self, args: str) -> None:
        _fields(args, ())
        self.reset()

    def _cls(self, args: str) -> None:
        _fields(args, ())
        self._errors.clear()

    def _opc(self, args: str) -> str:
        """Operation complete: every operation has finished (programming too, see PROG:STAR)."""
        _fields(args, ())
        return "1"

    def _push_error(self, code: int, message: str) -> None:
        if len(self._errors) >= ERROR_QUEUE_DEPTH:
            self._errors[-1] = (-350, "Queue overflow")
            return
        self._errors.append((code, message))

    def _err_next(self, args: str) -> str:
        _fields(args, ())
        if not self._errors:
            return '0,"No error"'
        code, msg = self._errors.popleft()
        return f'{code},"{msg}"'

    def _conductance_range(self, args: str) -> str:
        p = self.chip.params
        return f"{p.g_min_us * 1e-6:.6G},{p.g_max_us * 1e-6:.6G}"

    def _limits(self, args: str) -> str:
        w0, w1 = self.width_range_s
        return (
            f"{self.amplitude_max_v:.6G},{self.gate_max_v:.6G},{READ_V_MAX:.6G},{w0:.6G},{w1:.6G}"
        )

    # ------------------------------------------------------------------ validation helpers
    def _check_amplitudes(self, amp: np.ndarray) -> None:
        bad = ~np.isfinite(amp) | (np.abs(amp) > self.amplitude_max_v)
        if bad.any():
            v = float(amp[bad][0])
            raise _CommandError(
                202,
                f"Amplitude above chip limit; {v:.6G} V, "
                f"allowed |V| <= {self.amplitude_max_v:.6G} V",
            )

    def _check_gates(self, gate: np.ndarray) -> None:
        bad = (gate < 0) | (gate > self.gate_max_v) | np.isinf(gate)
        if bad.any():
            raise _CommandError(
                203,
                f"Gate voltage out of range; {float(gate[bad][0]):.6G} V, "
                f"allowed [0, {self.gate_max_v:.6G}] V",
            )

    def _check_width(self, width_s: float) -> None:
        w0, w1 = self.width_range_s
        if not w0 <= width_s <= w1:
            raise _CommandError(
                204, f"Pulse width out of range; {width_s:.6G} s, allowed [{w0:.6G}, {w1:.6G}] s"
            )

    def _check_read_v(self, v: float) -> None:
        if not 0 < abs(v) <= READ_V_MAX:
            raise _CommandError(
                205, f"Read voltage out of range; {v:.6G} V, allowed 0 < |V| <= {READ_V_MAX:.6G} V"
            )

    def _check_rows(self, rows: np.ndarray) -> None:
        bad = (rows < 0) | (rows >= self.rows) | (rows != np.floor(rows))
        if bad.any():
            raise _CommandError(
                201, f"Address out of range; row {rows[bad][0]:.6G}, allowed [0, {self.rows - 1}]"
            )

    def _check_cols(self, cols: np.ndarray) -> None:
        bad = (cols < 0) | (cols >= self.cols) | (cols != np.floor(cols))
        if bad.any():
            raise _CommandError(
                201,
                f"Address out of range; column {cols[bad][0]:.6G}, allowed [0, {self.cols - 1}]",
            )

    def _read_voltage(self, token: str | None) -> float:
        if token is None:
            return self.read_v
        v = _number(token, "read voltage")
        self._check_read_v(v)
        return v

    def _advance(self, dt_s: float) -> None:
        """Let simulated time pass (``dt_s`` is computed here: finite and >= 0 by construction)."""
        self.chip.clock_s += dt_s

    def _charge_rows(self, n_rows: int, duration_s: float) -> None:
        """Extra time of row-sequential operations beyond the first row (charged by the chip)."""
        if n_rows > 1:
            self._advance((n_rows - 1) * duration_s)

    def _distinct_rows(self, rows: np.ndarray) -> int:
        """How many row operations a set of cells needs (one per distinct row)."""
        if rows.size <= 1:
            return int(rows.size)
        return int(np.count_nonzero(np.bincount(rows, minlength=self.rows)))

    # ------------------------------------------------------------------ pulse configuration
    def _set_amplitude(self, args: str, which: str) -> None:
        (tok,) = _fields(args, ("amplitude",))
        v = _number(tok, "amplitude")
        if v < 0:
            raise _CommandError(-222, f"Data out of range; amplitude is a magnitude, got {v:.6G}")
        self._check_amplitudes(np.array([v]))
        if which == "set":
            self.set_v = v
        else:
            self.reset_v = v

    def _set_width(self, args: str) -> None:
        (tok,) = _fields(args, ("width",))
        w = _number(tok, "width")
        self._check_width(w)
        self.width_s = w

    def _set_gate(self, args: str) -> None:
        (tok,) = _fields(args, ("gate",))
        g = _number(tok, "gate")
        if not np.isfinite(g):
            raise _CommandError(-222, "Data out of range; the configured gate must be finite")
        self._check_gates(np.array([g]))
        self.gate_v = g

    def _set_read_v(self, args: str) -> None:
        (tok,) = _fields(args, ("voltage",))
        self.read_v = self._read_voltage(tok)

    # ------------------------------------------------------------------ pulses
    def _check_batch(
        self,
        rows: np.ndarray,
        cols: np.ndarray,
        amp: np.ndarray,
        gate: np.ndarray,
        widths_s: tuple[float, ...] = (),
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
        """Firmware checks of a pulse batch (addresses, amplitudes, gates, duplicates, row
        grouping); (rows, cols) as int64, the chip's gate voltages (None: all fully on),
        the number of row operations. Nothing is pulsed here."""
        self.safe = False
        self._check_rows(rows)
        self._check_cols(cols)
        self._check_amplitudes(amp)
        self._check_gates(gate)
        for w in widths_s:
            self._check_width(w)
        r = rows.astype(np.int64)
        c = cols.astype(np.int64)
        n_rows = self._distinct_rows(r)
        if r.size > 1:
            if np.bincount(r * self.cols + c, minlength=self.rows * self.cols).max() > 1:
                raise _CommandError(
                    206, "Duplicate cell in batch; each cell may appear once per message"
                )
            if np.count_nonzero(r[1:] != r[:-1]) + 1 != n_rows:
                raise _CommandError(
                    207, "Records not grouped by row; a row's cells must be contiguous"
                )
        nan = np.isnan(gate)
        if nan.all():
            gate_v = None  # transistor fully on: no compliance
        else:
            gate_v = np.where(nan, self.chip.params.gate_v_max_v, gate)
        return r, c, gate_v, n_rows

    def _apply_pulses(
        self, rows: np.ndarray, cols: np.ndarray, amp: np.ndarray, width_s: float, gate: np.ndarray
    ) -> None:
        """Validated pulses: cells of one row in parallel, rows one after the other."""
        r, c, gate_v, n_rows = self._check_batch(rows, cols, amp, gate, (width_s,))
        self.chip.pulse(r, c, amp, width_s, gate_v=gate_v)
        self._charge_rows(n_rows, width_s)

    def _pulse_configured(self, args: str, sign: int) -> None:
        r, c = _fields(args, ("row", "column"))
        rows = np.array([_integer(r, "row")])
        cols = np.array([_integer(c, "column")])
        amp = np.array([sign * (self.set_v if sign > 0 else self.reset_v)])
        gate = np.array([self.gate_v if sign > 0 else np.nan])
        self._apply_pulses(rows, cols, amp, self.width_s, gate)

    def _pulse_row(self, args: str) -> str:
        parts = args.split(",") if args.strip() else []
        if len(parts) == 5:  # one cell: the write-verify hot path, checked on Python scalars
            try:
                row, col = int(parts[0]), int(parts[2])
                width, amp, gate = float(parts[1]), float(parts[3]), float(parts[4])
            except ValueError:
                row = -1  # let the general path name the bad field
            else:
                w0, w1 = self.width_range_s
                if (
                    0 <= row < self.rows
                    and 0 <= col < self.cols
                    and abs(amp) <= self.amplitude_max_v
                    and w0 <= width <= w1
                    and (gate != gate or 0 <= gate <= self.gate_max_v)
                ):
                    self.chip.pulse(row, col, amp, width, gate_v=None if gate != gate else gate)
                    return "1"
        if len(parts) < 5:
            raise _CommandError(
                -109, "Missing parameter; expected row,width,col,amplitude,gate[,...]"
            )
        if (len(parts) - 2) % 3:
            raise _CommandError(
                -109, "Missing parameter; cells come as col,amplitude,gate triplets"
            )
        row = _integer(parts[0], "row")
        width = _number(parts[1], "width")
        try:
            cells = np.array(parts[2:], dtype=np.float64).reshape(-1, 3)
        except ValueError:
            raise _CommandError(-104, "Data type error; cell triplets must be numbers") from None
        n = cells.shape[0]
        self._apply_pulses(np.full(n, row), cells[:, 0], cells[:, 1], width, cells[:, 2])
        return str(n)

    def _pulse_read(self, args: str) -> bytes:
        """``PULS:READ?``: a train of k pulses on cells of one row, then a read burst."""
        parts = args.split(",") if args.strip() else []
        if len(parts) < 4:
            raise _CommandError(
                -109,
                "Missing parameter; expected row,reads,interval,k,width...,col,gate,amplitude...",
            )
        row = _integer(parts[0], "row")
        reads, interval = self._burst_params(parts[1], parts[2])
        k = _integer(parts[3], "pulse count")
        if not 1 <= k <= TRAIN_MAX:
            raise _CommandError(-222, f"Data out of range; {k} pulses, allowed [1, {TRAIN_MAX}]")
        rec_len = 2 + k
        if len(parts) < 4 + k + rec_len or (len(parts) - 4 - k) % rec_len:
            raise _CommandError(
                -109, f"Missing parameter; cells come as col,gate,amplitude x {k} records"
            )
        try:
            widths = [float(t) for t in parts[4 : 4 + k]]
            cells = np.array(parts[4 + k :], dtype=np.float64).reshape(-1, rec_len)
        except ValueError:
            raise _CommandError(
                -104, "Data type error; widths and records must be numbers"
            ) from None
        n = cells.shape[0]
        if n == 1 and 0 <= row < self.rows:  # one cell: checked on Python scalars
            col, gate, *amps = cells[0].tolist()
            if (
                col.is_integer()
                and 0 <= col < self.cols
                and all(abs(a) <= self.amplitude_max_v for a in amps)
                and all(self.width_range_s[0] <= w <= self.width_range_s[1] for w in widths)
                and (gate != gate or 0 <= gate <= self.gate_max_v)
            ):
                self.safe = False
                c, gv = int(col), None if gate != gate else gate
                for a, w in zip(amps, widths, strict=True):
                    if a != 0:
                        self.chip.pulse(row, c, a, w, gate_v=gv)
                    else:
                        self._advance(w)
                return _block(self._burst(row, c, reads, interval), "<f4")
        amps = cells[:, 2:]
        r, c, gate_v, _ = self._check_batch(
            np.full(n, row), cells[:, 0], amps, cells[:, 1], tuple(widths)
        )
        for j, w in enumerate(widths):  # one parallel row operation per pulse of the train
            a = amps[:, j]
            on = a != 0
            if on.all():
                self.chip.pulse(r, c, a, w, gate_v=gate_v)
            elif on.any():
                self.chip.pulse(
                    r[on], c[on], a[on], w, gate_v=None if gate_v is None else gate_v[on]
                )
            else:
                self._advance(w)
        return _block(self._burst(r, c, reads, interval), "<f4")

    def _read_burst(self, args: str) -> bytes:
        """``READ:BURS?``: ``reads`` reads of cells of one row (configured read voltage)."""
        parts = args.split(",") if args.strip() else []
        if len(parts) < 4:
            raise _CommandError(-109, "Missing parameter; expected row,reads,interval,col[,...]")
        row = _integer(parts[0], "row")
        reads, interval = self._burst_params(parts[1], parts[2])
        cols = np.array([_integer(t, "column") for t in parts[3:]], dtype=np.int64)
        self._check_rows(np.array([row]))
        self._check_cols(cols)
        if cols.size == 1:
            return _block(self._burst(row, int(cols[0]), reads, interval), "<f4")
        return _block(self._burst(np.full(cols.size, row), cols, reads, interval), "<f4")

    def _burst_params(self, reads_t: str, interval_t: str) -> tuple[int, float]:
        reads = _integer(reads_t, "reads")
        interval = _number(interval_t, "interval")
        if not 1 <= reads <= BURST_READS_MAX:
            raise _CommandError(
                -222, f"Data out of range; reads {reads}, allowed [1, {BURST_READS_MAX}]"
            )
        if not 0 <= interval <= BURST_INTERVAL_MAX_S:
            raise _CommandError(
                -222,
                f"Data out of range; interval {interval:.6G} s, "
                f"allowed [0, {BURST_INTERVAL_MAX_S:g}] s",
            )
        return reads, interval

    def _burst(
        self, rows: np.ndarray | int, cols: np.ndarray | int, reads: int, interval_s: float
    ) -> np.ndarray:
        """``reads`` row reads of the cells (S), (reads, cells): each one ``read_time_s``, their
        starts ``max(interval_s, read_time_s)`` apart, at the configured read voltage."""
        p = self.chip.params
        v = None if self.read_v == p.read_v else self.read_v
        g_us = self.chip.read_burst(
            rows, cols, reads, v, interval_s=max(interval_s, p.read_time_s)
        )
        return g_us * 1e-6

    def _pulse_rows(self, args: str) -> None:
        head, sep, block = args.partition(",")
        if not sep:
            raise _CommandError(-109, "Missing parameter; expected width,<block>")
        width = _number(head, "width")
        rec = _parse_block(block, "<f4", 4).reshape(-1, 4).astype(np.float64)
        if rec.shape[0] == 0:
            raise _CommandError(-161, "Invalid block data; no cells")
        self._apply_pulses(rec[:, 0], rec[:, 1], rec[:, 2], width, rec[:, 3])

    # ------------------------------------------------------------------ reads
    def _read(
        self, rows: np.ndarray | int, cols: np.ndarray | int, read_v: float, n_rows: int
    ) -> np.ndarray:
        """Conductance in S: every row read senses its selected columns in parallel."""
        p = self.chip.params
        v = None if read_v == p.read_v else read_v  # the chip's own read voltage needs no re-check
        g_us = self.chip.read(rows, cols, v, duration_s=n_rows * p.read_time_s)
        return g_us * 1e-6

    def _read_cell(self, args: str) -> str:
        parts = args.split(",")
        if len(parts) == 2:  # the write-verify hot path, checked on Python scalars
            try:
                r, c = int(parts[0]), int(parts[1])
            except ValueError:
                r = -1
            if 0 <= r < self.rows and 0 <= c < self.cols:
                return f"{self._read(r, c, self.read_v, 1)[0]:.7E}"
        parts = _fields(args, ("row", "column", "voltage"), optional=1)
        r = np.array([_integer(parts[0], "row")])
        c = np.array([_integer(parts[1], "column")])
        self._check_rows(r)
        self._check_cols(c)
        v = self._read_voltage(parts[2] if len(parts) > 2 else None)
        return f"{self._read(r, c, v, 1)[0]:.7E}"

    def _read_row(self, args: str) -> bytes:
        parts = _fields(args, ("row", "voltage"), optional=1)
        r = _integer(parts[0], "row")
        self._check_rows(np.array([r]))
        v = self._read_voltage(parts[1] if len(parts) > 1 else None)
        return _block(self._read(np.full(self.cols, r), self._row_cols, v, 1), "<f4")

    def _read_array(self, args: str) -> bytes:
        parts = _fields(args, ("voltage",), optional=1)
        v = self._read_voltage(parts[0] if parts else None)
        r, c = self._all_rc
        return _block(self._read(r, c, v, self.rows), "<f4")

    def _select(self, args: str) -> None:
        self.selection = None
        pairs = _parse_block(args.lstrip(" "), "<u2", 2).reshape(-1, 2).astype(np.int64)
        if pairs.shape[0] == 0:
            raise _CommandError(-161, "Invalid block data; empty selection")
        self._check_rows(pairs[:, 0])
        self._check_cols(pairs[:, 1])
        self.selection = pairs

    def _read_selection(self, args: str) -> bytes:
        parts = _fields(args, ("voltage",), optional=1)
        if self.selection is None:
            raise _CommandError(212, "No read selection; send READ:SEL <block> first")
        v = self._read_voltage(parts[0] if parts else None)
        r, c = self.selection[:, 0], self.selection[:, 1]
        return _block(self._read(r, c, v, self._distinct_rows(r)), "<f4")

    # ------------------------------------------------------------------ VMM
    def _vmm_input(self, args: str) -> None:
        self.vmm_input = None
        v = _parse_block(args.lstrip(" "), "<f4").astype(np.float64)
        if v.size == 0 or v.size % self.rows:
            raise _CommandError(
                -161, f"Invalid block data; {v.size} input voltages, the array has {self.rows} rows"
            )
        if v.size // self.rows > VMM_BATCH_MAX:
            raise _CommandError(
                -161,
                f"Invalid block data; {v.size // self.rows} input vectors, at most {VMM_BATCH_MAX}",
            )
        bad = ~np.isfinite(v) | (np.abs(v) > READ_V_MAX)
        if bad.any():
            raise _CommandError(
                205,
                f"Input voltage out of range; {float(v[bad][0]):.6G} V, "
                f"allowed |V| <= {READ_V_MAX:.6G} V",
            )
        self.vmm_input = v.reshape(-1, self.rows)

    def _vmm(self, args: str) -> bytes:
        """One integration per stored input vector, in order; currents vector by vector."""
        _fields(args, ())
        if self.vmm_input is None:
            raise _CommandError(213, "No VMM input; send VMM:INP <block> first")
        return _block(self.chip.vmm(self.vmm_input), "<f4")

    # ------------------------------------------------------------------ on-chip 6-bit programming
    def _prog_range(self, args: str) -> None:
        lo_t, hi_t = _fields(args, ("low", "high"))
        lo, hi = _number(lo_t, "low"), _number(hi_t, "high")
        p = self.chip.params
        g0, g1 = p.g_min_us * 1e-6, p.g_max_us * 1e-6
        if not g0 <= lo < hi <= g1:
            raise _CommandError(
                -222, f"Data out of range; need {g0:.6G} <= low < high <= {g1:.6G} S"
            )
        self.prog_range_s = (lo, hi)

    def _prog_pulse(self, args: str) -> None:
        toks = _fields(args, ("set amplitude", "set width", "reset amplitude", "reset width"))
        sv, sw, rv, rw = (_number(t, "value") for t in toks)
        if sv <= 0 or rv <= 0:
            raise _CommandError(-222, "Data out of range; amplitudes are positive magnitudes")
        self._check_amplitudes(np.array([sv, rv]))
        self._check_width(sw)
        self._check_width(rw)
        self.prog_pulse = (sv, sw, rv, rw)

    def _prog_map_load(self, args: str) -> None:
        self.prog_map = None
        codes = _parse_block(args.lstrip(" "), "u1")
        if codes.size != self.rows * self.cols:
            raise _CommandError(
                -161,
                f"Invalid block data; {codes.size} codes, "
                f"the array has {self.rows * self.cols} cells",
            )
        bad = (codes >= LEVELS) & (codes != SKIP_CODE)
        if bad.any():
            raise _CommandError(
                214,
                f"Level code out of range; {int(codes[bad][0])}, "
                f"allowed 0-{LEVELS - 1} or {SKIP_CODE}",
            )
        self.prog_map = codes.copy()

    def _prog_start(self, args: str) -> None:
        _fields(args, ())
        if self.prog_map is None:
            raise _CommandError(211, "No target map; send PROG:MAP <block> first")
        # The simulated firmware finishes within this message's simulated time (the clock
        # advances by the whole run), so it is never seen busy: status goes straight to DONE.
        self.prog_summary, self.prog_data = self._program(self.prog_map)
        self.prog_state = "DONE"

    def _prog_status(self, args: str) -> str:
        _fields(args, ())
        return self.prog_state

    def _prog_result(self, args: str) -> str:
        _fields(args, ())
        if self.prog_summary is None:
            raise _CommandError(215, "No programming result; run PROG:STAR first")
        n, ok, failed, it, pulses, dt = self.prog_summary
        return f"{n},{ok},{failed},{it},{pulses},{dt:.6G}"

    def _prog_data(self, args: str) -> bytes:
        _fields(args, ())
        if self.prog_data is None:
            raise _CommandError(215, "No programming result; run PROG:STAR first")
        return _block(self.prog_data, "<f4")

    def _wait(self, args: str) -> str:
        """``SYST:WAIT? <s>``: idle (lines at 0 V) for ``s`` seconds of chip time, answer 1."""
        (tok,) = _fields(args, ("seconds",))
        s = _number(tok, "seconds")
        if not 0 < s <= WAIT_MAX_S:
            raise _CommandError(-222, f"Data out of range; wait {s:g} s, allowed (0, {WAIT_MAX_S:g}]")
        self._advance(s)
        return "1"

    def _abort(self, args: str) -> None:
        """Safe state: stop any on-chip operation; every line and gate back to 0 V.

        Pulses and reads of this controller only energise lines for their own duration and
        programming finishes within its message, so nothing is left to stop here.
        """
        _fields(args, ())
        self.safe = True
        self.aborts += 1

    def _program(
        self, codes: np.ndarray
    ) -> tuple[tuple[int, int, int, int, int, float], np.ndarray]:
        """Autonomous write-verify of every coded cell to its 6-bit level, vectorised.

        RESET every target cell twice, then iterate: one gate-limited SET pass on the cells
        not yet done (the gate sets a compliance a little above the target, so the cell
        approaches its level from below in shrinking steps), one verify read pass; cells
        inside the verify band are done, cells above it are RESET, cells whose progress
        stalls get a higher gate, cells that never moved are given up. Each pass costs one
        row operation per row holding an active cell.
        """
        chip, p = self.chip, self.chip.params
        t_start = chip.clock_s
        sel = np.flatnonzero(codes != SKIP_CODE)
        data = np.full(self.rows * self.cols, np.nan)
        n = sel.size
        if n == 0:
            return (0, 0, 0, 0, 0, 0.0), data
        set_v, set_w, reset_v, reset_w = self.prog_pulse
        lo, hi = (x * 1e6 for x in self.prog_range_s)
        step = (hi - lo) / (LEVELS - 1)
        target = lo + codes[sel].astype(np.float64) * step
        band = VERIFY_FRACTION * step / 2
        rows, cols = np.divmod(sel, self.cols)
        slope = (p.g_max_us - p.g_min_us) / (p.gate_v_max_v - p.gate_v_min_v)  # µS per gate volt
        gate = np.clip(
            p.gate_v_min_v + (target + 2 * band - p.g_min_us) / slope, 0.0, self.gate_max_v
        )
        pulses = 0

        def pulse(idx: np.ndarray, amp: float, width: float, g: np.ndarray | None) -> None:
            nonlocal pulses
            chip.pulse(rows[idx], cols[idx], amp, width, gate_v=g)
            self._charge_rows(self._distinct_rows(rows[idx]), width)
            pulses += idx.size

        everyone = np.arange(n)
        for _ in range(2):
            pulse(everyone, -reset_v, reset_w, None)
        g = self._read(rows, cols, self.read_v, self._distinct_rows(rows)) * 1e6
        start = g.copy()
        active = np.ones(n, dtype=bool)
        moved = np.zeros(n, dtype=bool)
        was_reset = np.zeros(n, dtype=bool)
        failed = np.zeros(n, dtype=bool)
        it = 0
        for it in range(1, MAX_ITERATIONS + 1):
            idx = np.flatnonzero(active)
            if idx.size == 0:
                it -= 1
                break
            pulse(idx, set_v, set_w, gate[idx])
            before = g[idx]
            g[idx] = (
                self._read(rows[idx], cols[idx], self.read_v, self._distinct_rows(rows[idx])) * 1e6
            )
            err = g[idx] - target[idx]
            done = np.abs(err) <= band
            high = err > band
            # below the band and hardly moving (and not just RESET): the compliance is too low
            stalled = ~done & ~high & ~was_reset[idx] & (g[idx] - before < band / 4)
            gate[idx[stalled]] = np.minimum(
                gate[idx[stalled]] + (band - err[stalled]) / slope, p.gate_v_max_v
            )
            gate[idx[high]] -= (err[high] + band) / slope
            was_reset[idx] = high
            if high.any():
                pulse(idx[high], -reset_v, reset_w, None)
            moved[idx] |= np.abs(g[idx] - start[idx]) > band
            dead = ~done & ~moved[idx] & (it >= STALL_ITERATIONS)
            failed[idx[dead]] = True
            active[idx[done | dead]] = False
        failed |= active
        data[sel] = g * 1e-6
        ok = int(np.count_nonzero(~failed))
        return (n, ok, n - ok, it, pulses, chip.clock_s - t_start), data
