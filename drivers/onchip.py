"""Driver of the on-chip 256x256 array controller (protocol v1, ``drivers/onchip_protocol.md``).

The controller sits on the chip's board and speaks SCPI-style text over a raw socket or a
serial line, with IEEE 488.2 definite-length blocks for bulk data. This driver gives every
command a typed method, validates every argument against the array geometry, checks the
chip's :class:`~memprog.core.limits.SafetyLimits` before anything is sent (SafetyError), and turns
every error the controller reports into an :class:`~memprog.core.errors.InstrumentError` carrying
the controller's code and message, after draining the error queue. A reply it cannot parse
is a :class:`~memprog.core.errors.ProtocolError` naming what was expected.

It talks through a :class:`~memprog.drivers.transport.Transport` only: the same driver runs
against the lab controller, the simulated one (``@memprog``) and the exact-traffic fake of
the protocol tests.

The hot paths (one-cell pulse, one-cell read) cost one message each and check their
arguments on Python scalars; a write-verify step (a pulse train then a burst of reads,
``PULS:READ?``) and a burst of reads (``READ:BURS?``) cost one message each; bulk
operations are one message per batch with numpy-encoded blocks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memprog.core.errors import (
    ConfigError,
    InstrumentError,
    MemprogError,
    ProtocolError,
    SafetyError,
)
from memprog.core.limits import SafetyLimits
from memprog.drivers import onchip_commands as cmd
from memprog.drivers.onchip_commands import ControllerLimits, Identity, ProgramPulses, ProgramResult
from memprog.drivers.transport import Transport
from memprog.protocols.programmer import WAIT_CHUNK_S, pulse_train, wait_chunks

PROTOCOL_MAJOR = 1  # the protocol version this driver speaks (drivers/onchip_protocol.md)
BURST_PROTOCOL_MINOR = 1  # PULS:READ? and READ:BURS? came with protocol 1.1
VMM_BATCH_MAX = 1024  # input vectors per VMM:INP block (protocol v1.1)
TEXT_BATCH_MAX = 16  # cells of one row sent as a text PULS:ROW? list; larger batches go binary
_RAW_REFUSED = ("PULS", "PROG", "VMM", "READ:VOLT")  # stimulus commands: typed methods only


class OnChipController:
    """The on-chip array controller.

    Args:
        transport: the connection (``VisaTransport`` in the lab and on the simulated bench).
        limits: the chip's safety limits, checked before every pulse, read and VMM.
        name: instrument name used in error messages.

    Nothing is sent until :meth:`connect`.
    """

    def __init__(self, transport: Transport, limits: SafetyLimits, name: str = "onchip") -> None:
        if not isinstance(limits, SafetyLimits):
            raise ConfigError("limits", type(limits).__name__, "a SafetyLimits")
        self.transport = transport
        self.limits = limits
        self.name = name
        self.identity: Identity | None = None
        self.rows = self.cols = 0
        self.cell_type = ""
        self.technology = ""
        self.g_range_us = (0.0, 0.0)
        self.read_v = 0.0
        self.protocol_minor = 0  # SYST:PROT?'s minor version, read at connect
        self._pulse_config: dict[str, float] = {}
        self.confirm_safe = False
        # bounds precomputed once: the per-message checks compare Python floats
        self._amp_lo, self._amp_hi = -limits.reset_v_max, limits.set_v_max
        self._w_lo, self._w_hi = limits.width_s_min, limits.width_s_max
        self._gate_hi = limits.gate_v_max

    # ------------------------------------------------------------------ connection
    def connect(self) -> Identity:
        """Identify the controller, clear its error queue and learn the array it drives."""
        reply = self.transport.query("*IDN?")
        ident = cmd.parse_identity(reply, self.name)
        if ident.manufacturer != cmd.MANUFACTURER or not ident.model.startswith(cmd.MODEL_PREFIX):
            raise ConfigError(
                f"{self.name} identity",
                reply,
                f"{cmd.MANUFACTURER},{cmd.MODEL_PREFIX}*,<serial>,<firmware>",
                "the resource is not an on-chip array controller",
            )
        set_marker = getattr(self.transport, "set_marker", None)
        if callable(set_marker):  # *IDN?'s unique reply marks the end of stale replies
            set_marker("*IDN?", reply)
        self.transport.write("*CLS")
        self.check_protocol()
        self.rows, self.cols = cmd.parse_ints(
            self._query("ARR:SIZE?"), 2, "the array size '<rows>,<cols>'", self.name
        )
        self.cell_type = self._query("ARR:TYPE?")
        if self.cell_type not in ("1T1R", "0T1R"):
            raise ProtocolError("a cell type '1T1R' or '0T1R'", self.cell_type, self.name)
        self.technology = self._query("ARR:TECH?")
        lo, hi = cmd.parse_floats(
            self._query("ARR:COND?"), 2, "a conductance range '<low_S>,<high_S>'", self.name
        )
        self.g_range_us = (lo * 1e6, hi * 1e6)
        self.read_v = cmd.parse_float(self._query("READ:VOLT?"), "a read voltage in V", self.name)
        self.limits.check_read(self.read_v)
        self.identity = ident
        return ident

    def _require_connected(self) -> None:
        if self.identity is None:
            raise ConfigError(self.name, "not connected", "", "call connect() first")

    # ------------------------------------------------------------------ errors
    def next_error(self) -> tuple[int, str]:
        """Pop the oldest entry of the controller's error queue ((0, 'No error') if empty)."""
        return cmd.parse_error_entry(self.transport.query("SYST:ERR?"), self.name)

    def drain_errors(self) -> list[tuple[int, str]]:
        """Read the error queue until it is empty; the errors it held, oldest first."""
        errors: list[tuple[int, str]] = []
        for _ in range(64):  # the queue holds 16; a bound keeps a broken link from looping
            code, message = self.next_error()
            if code == 0:
                return errors
            errors.append((code, message))
        raise ProtocolError("an empty error queue within 64 reads", errors[-1], self.name)

    def error_count(self) -> int:
        """Entries waiting in the error queue."""
        return int(cmd.parse_ints(self._query("SYST:ERR:COUN?"), 1, "an error count", self.name)[0])

    def clear_errors(self) -> None:
        """``*CLS``: empty the error queue."""
        self.transport.write("*CLS")

    def _error(self, command: str, errors: list[tuple[int, str]]) -> InstrumentError:
        """InstrumentError for the oldest error (the cause); later ones follow in its message."""
        code, message = errors[0]
        if len(errors) > 1:
            message += "; then " + "; ".join(f"{c} {m}" for c, m in errors[1:])
        return InstrumentError(self.name, code, message, command)

    def _check(self, command: str) -> None:
        """After commands without a reply: raise the controller's error (queue drained), if any."""
        reply = self.transport.query("SYST:ERR?")
        if reply == cmd.NO_ERROR:
            return
        first = cmd.parse_error_entry(reply, self.name)
        if first[0] != 0:
            raise self._error(command, [first] + self.drain_errors())

    def _bad_reply(self, command: str, reply: Any, expected: str) -> MemprogError:
        """The error for a reply that is not ``expected``: the controller's, else ProtocolError.

        A failed query answers ``ERR <code>,"<message>"`` and queues the same error; the
        queue is drained either way so the next command starts clean.
        """
        reported = cmd.parse_error_reply(reply) if isinstance(reply, str) else None
        errors = self.drain_errors()
        if reported is not None and reported not in errors:
            errors.insert(0, reported)
        if errors:
            return self._error(command, errors)
        return ProtocolError(expected, reply, self.name)

    def _query(self, message: str) -> str:
        """A text query; an ``ERR`` reply becomes InstrumentError."""
        reply = self.transport.query(message)
        if reply.startswith("ERR "):
            raise self._bad_reply(message, reply, "a reply")
        return reply

    def _query_float(self, message: str, expected: str) -> float:
        reply = self.transport.query(message)
        try:
            return float(reply)
        except ValueError:
            raise self._bad_reply(message, reply, expected) from None

    def _query_block(self, message: str, datatype: str, count: int, expected: str) -> np.ndarray:
        """A block query; an error reply in place of the block becomes InstrumentError."""
        try:
            values = self.transport.query_binary(message, datatype)
        except ProtocolError as exc:
            raise self._bad_reply(message, exc.got, expected) from exc
        if values.size != count:
            raise ProtocolError(expected, f"a block of {values.size} values", self.name)
        return values

    # ------------------------------------------------------------------ common commands
    def reset(self) -> None:
        """``*RST``: power-on configuration (pulse settings, read voltage, selections)."""
        self.transport.write("*RST")
        self._check("*RST")
        self._pulse_config.clear()
        self.read_v = cmd.parse_float(self._query("READ:VOLT?"), "a read voltage in V", self.name)
        self.limits.check_read(self.read_v)

    def options(self) -> list[str]:
        """``*OPT?``: the controller's installed options."""
        return self._query("*OPT?").split(",")

    def protocol_version(self) -> str:
        """``SYST:PROT?``: the protocol version the firmware speaks (this driver: 1.x)."""
        return self._query("SYST:PROT?")

    def check_protocol(self) -> str:
        """``SYST:PROT?`` at connect: ConfigError unless the firmware speaks protocol 1.x.

        A firmware speaking another major version may give the same messages another
        meaning (a pulse in other units), so the driver refuses it before sending any.
        """
        version = self.protocol_version().strip()
        major, _, minor = version.partition(".")
        if not major.isdigit() or not minor.split(".", 1)[0].isdigit():
            raise ProtocolError("a protocol version '<major>.<minor>' from SYST:PROT?", version, self.name)
        if int(major) != PROTOCOL_MAJOR:
            raise ConfigError(
                f"{self.name} protocol version",
                version,
                f"{PROTOCOL_MAJOR}.x (drivers/onchip_protocol.md)",
                "the firmware speaks a protocol this driver does not",
            )
        self.protocol_minor = int(minor.split(".", 1)[0])
        return version

    @property
    def has_bursts(self) -> bool:
        """Whether the firmware has ``PULS:READ?`` and ``READ:BURS?`` (protocol 1.1 on)."""
        return self.protocol_minor >= BURST_PROTOCOL_MINOR

    def _require_bursts(self, command: str) -> None:
        if not self.has_bursts:
            raise ConfigError(
                f"{self.name} protocol version",
                f"1.{self.protocol_minor}",
                f"1.{BURST_PROTOCOL_MINOR} or later for {command}",
                "older firmware lacks the command: use separate pulses and reads",
            )

    def recover(self) -> None:
        """Bring link and controller back in step after a link fault or a controller reboot.

        The transport discards stale replies (and reopens a lost connection); the error
        queue is drained (an error of the failed exchange must not be blamed on the next
        command); the read voltage and the configured pulse, which a reboot resets to their
        power-on values, are checked and sent again.
        """
        recover = getattr(self.transport, "recover", None)
        if callable(recover):
            recover()
        self.drain_errors()
        read_v = cmd.parse_float(self._query("READ:VOLT?"), "a read voltage in V", self.name)
        if read_v != self.read_v:
            self.set_read_voltage(self.read_v)
        if self._pulse_config:
            self.configure_pulses(**self._pulse_config)

    def status_byte(self) -> int:
        """``*STB?``: IEEE 488.2 status byte (bit 2, value 4: the error queue holds errors)."""
        return cmd.parse_ints(self._query("*STB?"), 1, "a status byte", self.name)[0]

    def controller_limits(self) -> ControllerLimits:
        """``ARR:LIM?``: the limits the firmware enforces itself (breakdown-safe)."""
        values = cmd.parse_floats(
            self._query("ARR:LIM?"), 5, "five limits 'amp,gate,read,wmin,wmax'", self.name
        )
        return ControllerLimits(*values)

    def wait_complete(self) -> None:
        """``*OPC?``: block until every pending operation (on-chip programming) is done."""
        reply = self._query("*OPC?")
        if reply != "1":
            raise ProtocolError("'1' from *OPC?", reply, self.name)

    def wait(self, seconds: float) -> None:
        """``SYST:WAIT? <s>``: the controller idles (lines and gates at 0 V) for ``seconds``.

        Why an instrument-side wait (protocol v1, ``drivers/onchip_protocol.md``): bench
        time belongs to the bench, so the firmware keeps it; the reply comes when the wait
        is over, so the host never guesses. Long waits go as several waits of at most half
        the VISA timeout (``WAIT_CHUNK_S`` when the transport does not say), so each answers
        in time. On the
        simulated bench the same message advances the chip's clock; nothing here knows.
        """
        for chunk in wait_chunks(seconds, self._wait_chunk_s()):
            reply = self._query(cmd.wait_query(chunk))
            if reply != "1":
                raise ProtocolError("'1' from SYST:WAIT?", reply, self.name)

    def _wait_chunk_s(self) -> float:
        """Longest single wait: half the VISA timeout when the transport has one (at most
        the firmware's 10 s, at least ``WAIT_CHUNK_S``), else ``WAIT_CHUNK_S``."""
        timeout_ms = getattr(getattr(self.transport, "resource", None), "timeout", None)
        if isinstance(timeout_ms, int | float) and np.isfinite(timeout_ms) and timeout_ms > 0:
            return float(min(cmd.WAIT_MAX_S, max(WAIT_CHUNK_S, 0.5e-3 * timeout_ms)))
        return WAIT_CHUNK_S

    def safe_state(self) -> None:
        """``ABOR``: stop any on-chip operation; every line and gate to 0 V.

        With :attr:`confirm_safe` (set by ``open_bench``) the ABOR is confirmed and sent
        again over link faults (:meth:`safe_state_confirmed`).
        """
        if self.confirm_safe:
            self.safe_state_confirmed()
            return
        self.transport.write("ABOR")

    def safe_state_confirmed(self, attempts: int = 4) -> None:
        """``ABOR`` until the controller confirms it (``SYST:ERR?`` clean), over link faults.

        What the bench runs at the end of a run and after a fault: a lost or refused ABOR is
        sent again (the link recovered first) rather than assumed.
        """
        last: Exception | None = None
        for _ in range(attempts):
            try:
                self.transport.write("ABOR")
                self._check("ABOR")
                return
            except (InstrumentError, ProtocolError) as exc:
                last = exc
                try:
                    recover = getattr(self.transport, "recover", None)
                    if callable(recover):
                        recover()
                except (InstrumentError, ProtocolError):
                    pass
        assert last is not None
        raise last

    def _safe_after_error(self) -> None:
        try:
            self.safe_state()
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass

    # ------------------------------------------------------------------ validation
    def _cells(self, rows: object, cols: object) -> tuple[np.ndarray, np.ndarray]:
        """Validated, equal-length int64 row and column arrays (scalars broadcast)."""
        self._require_connected()
        out = []
        for label, value, n in (("rows", rows, self.rows), ("cols", cols, self.cols)):
            a = np.asarray(value)
            if a.dtype.kind not in "iu":
                if a.dtype.kind != "f" or (a.size and not np.all(np.mod(a, 1) == 0)):
                    first = a.ravel()[0] if a.size else value
                    raise ConfigError(label, first, "integer cell indices")
                a = a.astype(np.int64)
            if a.size and (a.min() < 0 or a.max() >= n):
                bad = a[(a < 0) | (a >= n)].ravel()[0]
                raise ConfigError(label, int(bad), f"[0, {n - 1}]")
            out.append(a)
        try:
            r, c = np.broadcast_arrays(out[0], out[1])
        except ValueError:
            raise ConfigError(
                "rows/cols", (out[0].shape, out[1].shape), "equal lengths (or a scalar)"
            ) from None
        return r.ravel().astype(np.int64, copy=False), c.ravel().astype(np.int64, copy=False)

    def _check_pulse(self, amp: np.ndarray, width_s: float, gate: np.ndarray | None) -> None:
        """SafetyLimits.check_pulse/check_gate, called only when a quick min/max test fails."""
        if not (
            self._w_lo <= width_s <= self._w_hi
            and amp.min() >= self._amp_lo
            and amp.max() <= self._amp_hi
        ):
            self.limits.check_pulse(amp, width_s)
        if gate is not None and not (gate.min() >= 0 and gate.max() <= self._gate_hi):
            self.limits.check_gate(gate)

    def _check_read_v(self, read_v: float | None) -> None:
        if read_v is not None:
            self.limits.check_read(read_v)

    # ------------------------------------------------------------------ pulse configuration
    def configure_pulses(
        self,
        set_amplitude_v: float | None = None,
        reset_amplitude_v: float | None = None,
        width_s: float | None = None,
        gate_v: float | None = None,
    ) -> None:
        """Set the pulse used by :meth:`pulse_set` / :meth:`pulse_reset` (magnitudes in V).

        Every given value is checked against the safety limits before anything is sent.
        """
        self._require_connected()
        w = self._pulse_config.get("width_s", self._w_lo) if width_s is None else float(width_s)
        if set_amplitude_v is not None:
            self.limits.check_pulse(float(set_amplitude_v), w)
        if reset_amplitude_v is not None:
            self.limits.check_pulse(-abs(float(reset_amplitude_v)), w)
        if width_s is not None:
            self.limits.check_pulse(0.0, w)
        if gate_v is not None:
            self.limits.check_gate(float(gate_v))
        sent = []
        for key, header, value in (
            ("set_amplitude_v", "PULS:SET:AMPL", set_amplitude_v),
            (
                "reset_amplitude_v",
                "PULS:RES:AMPL",
                None if reset_amplitude_v is None else abs(reset_amplitude_v),
            ),
            ("width_s", "PULS:WIDT", width_s),
            ("gate_v", "PULS:GATE", gate_v),
        ):
            if value is not None:
                message = f"{header} {cmd.num(float(value))}"
                self.transport.write(message)
                sent.append(message)
                self._pulse_config[key] = float(value)
        if sent:
            self._check("; ".join(sent))

    def pulse_settings(self) -> dict[str, float]:
        """The configured pulse, read back from the controller."""
        out = {}
        for key, query in (
            ("set_amplitude_v", "PULS:SET:AMPL?"),
            ("reset_amplitude_v", "PULS:RES:AMPL?"),
            ("width_s", "PULS:WIDT?"),
            ("gate_v", "PULS:GATE?"),
        ):
            out[key] = self._query_float(query, f"a number from {query}")
        return out

    def pulse_set(self, row: int, col: int) -> None:
        """``PULS:SET``: one configured SET pulse (gate at the configured voltage)."""
        self._pulse_configured("PULS:SET", "set_amplitude_v", row, col)

    def pulse_reset(self, row: int, col: int) -> None:
        """``PULS:RES``: one configured RESET pulse."""
        self._pulse_configured("PULS:RES", "reset_amplitude_v", row, col)

    def _pulse_configured(self, header: str, key: str, row: int, col: int) -> None:
        needed = (key, "width_s") + (("gate_v",) if key == "set_amplitude_v" else ())
        missing = [k for k in needed if k not in self._pulse_config]
        if missing:
            raise ConfigError(
                "pulse configuration",
                missing,
                "",
                "call configure_pulses() first: the driver only sends pulses it has checked",
            )
        r, c = self._cells(row, col)
        if r.size != 1:
            raise ConfigError("row/col", (row, col), "a single cell")
        message = f"{header} {int(r[0])},{int(c[0])}"
        self.transport.write(message)
        try:
            self._check(message)
        except InstrumentError:
            self._safe_after_error()
            raise

    # ------------------------------------------------------------------ batched pulses
    def pulse_cells(
        self,
        rows: object,
        cols: object,
        amplitude_v: object,
        width_s: float,
        gate_v: object | None = None,
    ) -> int:
        """Pulse cells: each row's cells in parallel, one message per batch.

        Amplitudes (positive SET, negative RESET) and gate voltages may be one per cell;
        ``gate_v=None`` drives the gate fully on (no compliance). A single row of up to
        ``TEXT_BATCH_MAX`` cells travels as one acknowledged ``PULS:ROW?`` text list; larger
        or multi-row batches travel as one ``PULS:ROWS`` binary block (records grouped by
        row) followed by an error-queue check. A cell named twice is pulsed twice (in two
        messages). Returns the number of cell pulses applied.
        """
        width = float(width_s)
        one = _one_cell(rows, cols)
        if (
            one is not None
            and np.size(amplitude_v) == 1
            and (gate_v is None or np.size(gate_v) == 1)
        ):
            # one cell: Python-scalar checks, one message (the write-verify hot path)
            amp1 = float(np.asarray(amplitude_v).ravel()[0])
            gate1 = None if gate_v is None else float(np.asarray(gate_v).ravel()[0])
            return self._pulse_one(one[0], one[1], amp1, width, gate1)
        r, c = self._cells(rows, cols)
        n = r.size
        if n == 0:
            return 0
        try:
            amp = np.broadcast_to(np.asarray(amplitude_v, dtype=float), (n,))
            gate = (
                None if gate_v is None else np.broadcast_to(np.asarray(gate_v, dtype=float), (n,))
            )
        except ValueError:
            raise ConfigError(
                "amplitude_v/gate_v", np.shape(amplitude_v), f"a scalar or {n} values"
            ) from None
        self._check_pulse(amp, width, gate)
        if n == 1:
            return self._pulse_one(
                int(r[0]), int(c[0]), float(amp[0]), width, None if gate is None else float(gate[0])
            )
        g = np.full(n, np.nan) if gate is None else gate
        for idx in self._rounds(r, c):
            self._send_batch(r[idx], c[idx], amp[idx], width, g[idx])
        return n

    def _pulse_one(self, row: int, col: int, amp: float, width: float, gate_v: float | None) -> int:
        self._require_connected()
        if not (0 <= row < self.rows and 0 <= col < self.cols):
            self._cells(row, col)  # raises the ConfigError naming the bad index
        gate = float("nan") if gate_v is None else gate_v
        if not (self._amp_lo <= amp <= self._amp_hi and self._w_lo <= width <= self._w_hi):
            self.limits.check_pulse(amp, width)
        if gate_v is not None and not 0 <= gate <= self._gate_hi:
            self.limits.check_gate(gate)
        message = cmd.pulse_one(row, col, width, amp, gate)
        self._ack(message, 1)
        return 1

    def _ack(self, message: str, count: int) -> None:
        reply = self.transport.query(message)
        if reply == str(count):
            return
        error = self._bad_reply(message, reply, f"the count of cells pulsed ('{count}')")
        self._safe_after_error()
        raise error

    def _rounds(self, r: np.ndarray, c: np.ndarray) -> list[np.ndarray]:
        """Indices per message: every cell at most once per message, each round row-grouped."""
        flat = r * self.cols + c
        if np.bincount(flat, minlength=self.rows * self.cols).max() == 1:  # the usual case
            return [_group_by_row(r, np.arange(r.size))]
        order = np.argsort(flat, kind="stable")
        fs = flat[order]
        repeat = np.zeros(flat.size, dtype=bool)
        repeat[1:] = fs[1:] == fs[:-1]
        pos = np.arange(flat.size)
        group_start = np.maximum.accumulate(np.where(repeat, 0, pos))
        rank = np.empty(flat.size, dtype=np.int64)
        rank[order] = pos - group_start
        return [_group_by_row(r, np.flatnonzero(rank == k)) for k in range(int(rank.max()) + 1)]

    def _send_batch(
        self, r: np.ndarray, c: np.ndarray, amp: np.ndarray, width: float, gate: np.ndarray
    ) -> None:
        if r.size <= TEXT_BATCH_MAX and r[0] == r[-1]:  # sorted by row: one row
            self._ack(cmd.pulse_row(int(r[0]), width, c, amp, gate), r.size)
            return
        header = cmd.pulse_rows_header(width)
        self.transport.write_binary(header, cmd.pulse_rows_records(r, c, amp, gate), "f")
        try:
            self._check(header + "<block>")
        except InstrumentError:
            self._safe_after_error()
            raise

    # ------------------------------------------------------------------ pulse, then read
    def row_cells(self, rows: object, cols: object) -> tuple[int, np.ndarray] | None:
        """(row, columns) when the named cells are 1..``TEXT_BATCH_MAX`` distinct cells of one
        row, in the order given (what ``PULS:READ?`` and ``READ:BURS?`` take); else None.

        Raises ConfigError for a cell outside the array (as every other method does).
        """
        one = _one_cell(rows, cols)
        if one is not None and 0 <= one[0] < self.rows and 0 <= one[1] < self.cols:
            self._require_connected()
            return one[0], np.array([one[1]], dtype=np.int64)
        r, c = self._cells(rows, cols)
        if not 1 <= r.size <= TEXT_BATCH_MAX or np.any(r != r[0]):
            return None
        if c.size > 1 and np.unique(c).size != c.size:
            return None
        return int(r[0]), c

    def _burst_args(
        self, row: object, cols: object, reads: object, interval_s: object
    ) -> tuple[int, np.ndarray, int, float]:
        """Validated (row, columns, reads, interval) of a burst on cells of one row."""
        self._require_connected()
        c = np.atleast_1d(np.asarray(cols))
        if c.ndim != 1 or c.size == 0 or c.size > TEXT_BATCH_MAX:
            raise ConfigError("cols", np.shape(cols), f"1 to {TEXT_BATCH_MAX} columns of one row")
        fit = self.row_cells(np.full(c.size, row) if np.ndim(row) == 0 else row, c)
        if fit is None:
            raise ConfigError("cols", c.tolist(), "distinct columns of one row")
        r, c = fit
        if isinstance(reads, bool) or not isinstance(reads, int | np.integer):
            raise ConfigError("reads", reads, f"an integer in [1, {cmd.BURST_READS_MAX}]")
        if not 1 <= reads <= cmd.BURST_READS_MAX:
            raise ConfigError("reads", reads, f"[1, {cmd.BURST_READS_MAX}]")
        iv = float(interval_s)  # type: ignore[arg-type]
        if not 0.0 <= iv <= cmd.BURST_INTERVAL_MAX_S:  # also refuses NaN
            raise ConfigError("interval_s", interval_s, f"[0, {cmd.BURST_INTERVAL_MAX_S:g}] s")
        return r, c, int(reads), iv

    def read_burst(
        self, row: int, cols: object, reads: int, interval_s: float = 0.0
    ) -> np.ndarray:
        """``READ:BURS?``: ``reads`` reads (µS) of cells of one row, (reads, cells).

        The controller reads the cells (in parallel, at the configured read voltage)
        ``reads`` times, the reads' starts at least ``interval_s`` apart, and answers all of
        them in one block: a verification burst costs one round trip.
        """
        self._require_bursts("READ:BURS?")
        r, c, n, iv = self._burst_args(row, cols, reads, interval_s)
        message = cmd.read_burst(r, n, iv, c)
        m = n * c.size
        g = self._query_block(message, "f", m, f"a block of {m} float32 conductances")
        return (g.astype(np.float64) * 1e6).reshape(n, c.size)

    def pulse_read(
        self,
        row: int,
        cols: object,
        amplitude_v: object,
        width_s: object,
        gate_v: object | None = None,
        reads: int = 1,
        interval_s: float = 0.0,
    ) -> np.ndarray:
        """``PULS:READ?``: a pulse train on cells of one row, then a read burst.

        ``width_s``: one width or k widths (k <= ``TRAIN_MAX`` pulses, one after the other);
        ``amplitude_v`` broadcast to (k, cells): positive SET, negative RESET, 0 = the cell
        sits that pulse out; gates (None: fully on) one per cell. Everything is checked
        against the safety limits before sending. The cells are then read ``reads`` times
        (starts at least ``interval_s`` apart, configured read voltage). Returns the reads
        (µS), (reads, cells): a write-verify step in one round trip.
        """
        self._require_bursts("PULS:READ?")
        r, c, n, iv = self._burst_args(row, cols, reads, interval_s)
        k = c.size
        amp, widths = pulse_train(amplitude_v, width_s, k)
        if widths.size > cmd.TRAIN_MAX:
            raise ConfigError("width_s", f"{widths.size} pulses", f"1 to {cmd.TRAIN_MAX} pulses")
        try:
            gate = None if gate_v is None else np.broadcast_to(np.asarray(gate_v, float), (k,))
        except ValueError:
            raise ConfigError("gate_v", np.shape(gate_v), f"a scalar or {k} values") from None
        flat = amp.ravel()
        for w in set(widths.tolist()):
            self._check_pulse(flat, w, gate)
        g_wire = np.full(k, np.nan) if gate is None else gate
        message = cmd.pulse_read(r, n, iv, widths, c, g_wire, amp.T)
        try:
            g = self._query_block(message, "f", n * k, f"a block of {n * k} float32 conductances")
        except InstrumentError:
            self._safe_after_error()
            raise
        return (g.astype(np.float64) * 1e6).reshape(n, k)

    # ------------------------------------------------------------------ reads
    def set_read_voltage(self, read_v: float) -> None:
        """``READ:VOLT``: the read voltage of reads that do not name one."""
        self._require_connected()
        self.limits.check_read(float(read_v))
        message = f"READ:VOLT {cmd.num(float(read_v))}"
        self.transport.write(message)
        self._check(message)
        self.read_v = float(read_v)

    def read_cell(self, row: int, col: int, read_v: float | None = None) -> float:
        """``READ:CELL?``: conductance (µS) of one cell."""
        self._require_connected()
        one = _one_cell(row, col)
        if one is None or not (0 <= one[0] < self.rows and 0 <= one[1] < self.cols):
            r, c = self._cells(row, col)  # names the bad index
            if r.size != 1:
                raise ConfigError("row/col", (row, col), "a single cell")
            one = int(r[0]), int(c[0])
        row, col = one
        self._check_read_v(read_v)
        return self._query_float(cmd.read_cell(row, col, read_v), "a conductance in S") * 1e6

    def read_row(self, row: int, read_v: float | None = None) -> np.ndarray:
        """``READ:ROW?``: conductances (µS) of one whole row, read in parallel."""
        r, _ = self._cells(row, 0)
        if r.size != 1:
            raise ConfigError("row", row, "a single row index")
        self._check_read_v(read_v)
        g = self._query_block(
            cmd.read_row(int(r[0]), read_v),
            "f",
            self.cols,
            f"a block of {self.cols} float32 conductances",
        )
        return g.astype(np.float64) * 1e6

    def read_array(self, read_v: float | None = None) -> np.ndarray:
        """``READ:ARR?``: conductance map (µS) of the whole array, row by row."""
        self._require_connected()
        self._check_read_v(read_v)
        n = self.rows * self.cols
        g = self._query_block(
            cmd.read_array(read_v), "f", n, f"a block of {n} float32 conductances"
        )
        return (g.astype(np.float64) * 1e6).reshape(self.rows, self.cols)

    def read_cells(self, rows: object, cols: object, read_v: float | None = None) -> np.ndarray:
        """Conductances (µS) of any cells, in the order given, in as few messages as possible.

        One cell: ``READ:CELL?``; cells of one row: ``READ:ROW?``; half the array or more:
        ``READ:ARR?``; otherwise ``READ:SEL`` (the cell list as a block) + ``READ:SEL?``,
        which the controller reads row by row.
        """
        one = _one_cell(rows, cols)
        if one is not None:
            return np.array([self.read_cell(one[0], one[1], read_v)])
        r, c = self._cells(rows, cols)
        n = r.size
        if n == 0:
            return np.empty(0)
        self._check_read_v(read_v)
        if n == 1:
            return np.array([self.read_cell(int(r[0]), int(c[0]), read_v)])
        if n * 2 >= self.rows * self.cols:
            return self.read_array(read_v)[r, c]
        if np.all(r == r[0]):
            return self.read_row(int(r[0]), read_v)[c]
        self.transport.write_binary(cmd.SELECT_HEADER, cmd.selection_records(r, c), "H")
        g = self._query_block(
            cmd.read_selection(read_v), "f", n, f"a block of {n} float32 conductances"
        )
        return g.astype(np.float64) * 1e6

    # ------------------------------------------------------------------ analog VMM
    def vmm(self, input_v: object) -> np.ndarray:
        """``VMM:INP`` + ``VMM?``: row voltages in, column currents (A) out.

        ``input_v`` is one vector (rows,) — one integration — or a batch (k, rows) of up to
        :data:`VMM_BATCH_MAX` vectors sent as one block, answered by one block of k x cols
        currents (k integrations, one after the other): a minibatch costs two messages.
        Each input is a read-level voltage: |V| <= the chip's ``read_v_max``.
        """
        self._require_connected()
        v = np.asarray(input_v, dtype=float)
        single = v.ndim == 1
        if single:
            v = v[None, :]
        if v.ndim != 2 or v.shape[1] != self.rows or not 1 <= v.shape[0] <= VMM_BATCH_MAX:
            raise ConfigError(
                "input_v shape",
                np.shape(input_v),
                f"({self.rows},) or (k, {self.rows}), 1 <= k <= {VMM_BATCH_MAX}",
            )
        bad = ~np.isfinite(v) | (np.abs(v) > self.limits.read_v_max)
        if bad.any():
            raise SafetyError("input_v", float(v[bad][0]), f"|V| <= {self.limits.read_v_max} V")
        self.transport.write_binary(cmd.VMM_INPUT_HEADER, v.astype("<f4").ravel(), "f")
        n = v.shape[0] * self.cols
        try:
            i = self._query_block(cmd.VMM_QUERY, "f", n, f"a block of {n} float32 column currents")
        except InstrumentError:
            self._safe_after_error()
            raise
        i = i.astype(np.float64)
        return i if single else i.reshape(v.shape[0], self.cols)

    # ------------------------------------------------------------------ on-chip 6-bit programming
    def program_range_us(self) -> tuple[float, float]:
        """``PROG:RANG?``: conductances (µS) of level 0 and level 63."""
        lo, hi = cmd.parse_floats(
            self._query("PROG:RANG?"), 2, "a level range '<low_S>,<high_S>'", self.name
        )
        return lo * 1e6, hi * 1e6

    def program_pulses(self) -> ProgramPulses:
        """``PROG:PULS?``: the pulses the on-chip programming engine will use."""
        values = cmd.parse_floats(
            self._query("PROG:PULS?"), 4, "four values 'set_v,set_w,reset_v,reset_w'", self.name
        )
        return ProgramPulses(*values)

    def program_status(self) -> tuple[str, float | None]:
        """``PROG:STAT?``: ``("RUN", fraction)`` while programming, else (state, None)."""
        return cmd.parse_program_status(self._query("PROG:STAT?"), self.name)

    def program_result(self) -> ProgramResult:
        """``PROG:RES?``: summary of the last on-chip programming run."""
        return cmd.parse_program_result(self._query("PROG:RES?"), self.name)

    def program_data(self) -> np.ndarray:
        """``PROG:DATA?``: final verify conductance (µS) of every cell (NaN where skipped)."""
        self._require_connected()
        n = self.rows * self.cols
        g = self._query_block("PROG:DATA?", "f", n, f"a block of {n} float32 conductances")
        return (g.astype(np.float64) * 1e6).reshape(self.rows, self.cols)

    def program_levels(
        self,
        levels: object,
        range_us: tuple[float, float] | None = None,
        pulses: ProgramPulses | None = None,
        wait: bool = True,
    ) -> ProgramResult | None:
        """On-chip 6-bit programming of a whole target map (64 levels, Rao 2023).

        Args:
            levels: (rows, cols) level codes 0..63, or 255 to leave a cell alone.
            range_us: conductances of level 0 and level 63; None keeps the controller's.
            pulses: the engine's SET/RESET pulses; None keeps the controller's, which are
                read back and checked against the safety limits before starting.
            wait: block (``*OPC?``) until done and return the summary; else return None
                and poll :meth:`program_status`. The transport's timeout must cover the run.
        """
        self._require_connected()
        codes = np.asarray(levels)
        if codes.shape != (self.rows, self.cols):
            raise ConfigError("levels shape", codes.shape, f"({self.rows}, {self.cols})")
        allowed = f"integers 0..{cmd.LEVELS - 1} or {cmd.SKIP_CODE} (skip)"
        if codes.dtype.kind not in "iu":
            raise ConfigError("levels dtype", str(codes.dtype), allowed)
        bad = ((codes < 0) | (codes >= cmd.LEVELS)) & (codes != cmd.SKIP_CODE)
        if bad.any():
            raise ConfigError("levels", int(codes[bad][0]), allowed)
        if range_us is not None:
            lo, hi = (float(x) for x in range_us)
            lim = self.limits
            if not lim.conductance_min_us <= lo < hi <= lim.conductance_max_us:
                raise ConfigError(
                    "range_us",
                    (lo, hi),
                    f"{lim.conductance_min_us} <= low < high <= {lim.conductance_max_us} µS",
                )
        if pulses is None:
            pulses = self.program_pulses()
            send_pulses = False
        else:
            send_pulses = True
        self.limits.check_pulse(pulses.set_amplitude_v, pulses.set_width_s)
        self.limits.check_pulse(-abs(pulses.reset_amplitude_v), pulses.reset_width_s)
        sent = []
        if range_us is not None:
            sent.append(cmd.program_range(lo, hi))
        if send_pulses:
            sent.append(cmd.program_pulses(pulses))
        for message in sent:
            self.transport.write(message)
        self.transport.write_binary(cmd.PROGRAM_MAP_HEADER, codes.astype(np.uint8).ravel(), "B")
        self._check("; ".join(sent + [cmd.PROGRAM_MAP_HEADER + "<block>"]))
        try:
            self.transport.write("PROG:STAR")
            self._check("PROG:STAR")
            if not wait:
                return None
            self.wait_complete()
        except (InstrumentError, ProtocolError):
            self._safe_after_error()
            raise
        return self.program_result()

    # ------------------------------------------------------------------ raw access
    def write_raw(self, message: str) -> None:
        """Send any non-stimulus command and check the error queue (diagnostics)."""
        self._refuse_stimulus(message)
        self.transport.write(message)
        self._check(message)

    def query_raw(self, message: str) -> str:
        """Send any non-stimulus query; an ``ERR`` reply becomes InstrumentError."""
        self._refuse_stimulus(message)
        return self._query(message)

    def write_block_raw(self, header: str, values: Any, datatype: str) -> None:
        """Send ``header`` + a block of ``values`` and check the error queue (diagnostics)."""
        self._refuse_stimulus(header)
        self.transport.write_binary(header, np.asarray(values), datatype)
        self._check(header + "<block>")

    @staticmethod
    def _refuse_stimulus(message: str) -> None:
        head = message.lstrip(":").upper()
        if head.startswith(_RAW_REFUSED):
            raise ConfigError(
                "raw message",
                message[:40],
                "",
                "pulse, program, VMM and read-voltage commands go through the typed, "
                "safety-checked methods",
            )

    def close(self) -> None:
        """Leave the chip safe and close the connection."""
        try:
            self.safe_state()
        finally:
            self.transport.close()


def _group_by_row(r: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``idx`` reordered so each row's cells are contiguous (stable; radix sort on uint16)."""
    rows = r[idx]
    if rows.size < 2 or np.all(rows[1:] >= rows[:-1]):
        return idx
    return idx[np.argsort(rows.astype(np.uint16), kind="stable")]


def _one_cell(rows: object, cols: object) -> tuple[int, int] | None:
    """(row, col) as Python ints when exactly one integer cell is named, else None."""
    if isinstance(rows, np.ndarray):
        if rows.size != 1 or rows.dtype.kind not in "iu":
            return None
        rows = rows.ravel()[0]
    if isinstance(cols, np.ndarray):
        if cols.size != 1 or cols.dtype.kind not in "iu":
            return None
        cols = cols.ravel()[0]
    if (
        isinstance(rows, int | np.integer)
        and isinstance(cols, int | np.integer)
        and not isinstance(rows, bool)
    ):
        return int(rows), int(cols)
    return None
