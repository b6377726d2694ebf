"""The on-chip controller's plumbing: session, error queue, limits and the safe state.

Why a module of its own: every other part of :class:`~memprog.drivers.onchip.OnChipController`
(pulses, reads, bursts, VMM, 6-bit programming) sends its messages through the same few
doors, and those doors are where the driver keeps its promises. Here the link is opened
(``*IDN?``, protocol version, array geometry), every controller error is turned into an
:class:`~memprog.core.errors.InstrumentError` after draining the queue, a reply the driver
cannot parse becomes a :class:`~memprog.core.errors.ProtocolError`, cell indices and the
chip's :class:`~memprog.core.limits.SafetyLimits` are checked before anything is sent, and
after any failed stimulus every line and gate goes back to 0 V (``ABOR``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memprog.core.errors import ConfigError, InstrumentError, MemprogError, ProtocolError
from memprog.core.limits import SafetyLimits
from memprog.drivers import onchip_commands as cmd
from memprog.drivers.onchip_commands import ControllerLimits, Identity
from memprog.drivers.transport import Transport
from memprog.protocols.programmer import WAIT_CHUNK_S, wait_chunks

PROTOCOL_MAJOR = 1  # the protocol version this driver speaks (drivers/onchip_protocol.md)
BURST_PROTOCOL_MINOR = 1  # PULS:READ? and READ:BURS? came with protocol 1.1
TEXT_BATCH_MAX = 16  # cells of one row sent as a text PULS:ROW? list; larger batches go binary


class OnChipLink:
    """Session, error handling, limit checks and safe state of the on-chip controller.

    The base of :class:`~memprog.drivers.onchip.OnChipController`; the parts that send
    stimuli (pulses, reads, VMM, programming) build on it.

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
            raise ProtocolError(
                "a protocol version '<major>.<minor>' from SYST:PROT?", version, self.name
            )
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


def one_cell(rows: object, cols: object) -> tuple[int, int] | None:
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
