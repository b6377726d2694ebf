"""Keithley 707B switch matrix over TSP, with an interlock that refuses dangerous routings.

Every command group is followed by ``print(errorqueue.count)`` and, if the count is not
zero, ``print(errorqueue.next())`` until the queue is empty, so an error is reported
(:class:`~memprog.core.errors.InstrumentError`) by the group that caused it.

The :class:`MatrixInterlock` sees every closure before it is sent and refuses (SafetyError,
nothing sent) any state that would

* connect two instrument terminals to one chip line (two sources fighting on a line), or
* connect a terminal to lines it must not touch together: a kind of line it must never
  reach (a word-line driver onto a bit line shorts the cell between them) or more lines
  than its role allows (the selected-row driver onto two rows), or
* touch a matrix row or column that the wiring does not name.

With a connect rule other than break-before-make the union of the old and new states
exists for a moment, so that union is what gets checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import Field, field_validator

from memprog.core.crossbar_wiring import CrossbarWiring, TerminalRule
from memprog.core.errors import ConfigError, InstrumentError, ProtocolError, SafetyError
from memprog.core.validation import MemprogModel
from memprog.drivers import tsp_commands as tsp
from memprog.drivers.transport import LinkError, Transport
from memprog.protocols.programmer import wait_chunks


class MatrixInterlock:
    """Checks a set of closed crosspoints against the bench wiring.

    Args:
        rows: matrix row letter -> instrument terminal.
        columns: (slot, column) -> (line name, line kind ``"word"``/``"bit"``).
        rules: terminal -> what it may touch (absent terminal: one line of any kind).
    """

    def __init__(
        self,
        rows: Mapping[str, str],
        columns: Mapping[tuple[int, int], tuple[str, str]],
        rules: Mapping[str, TerminalRule] | None = None,
    ) -> None:
        self.rows = dict(rows)
        self.columns = dict(columns)
        self.rules = dict(rules or {})
        self._cache: dict[str, tuple[str, str, str]] = {}

    @classmethod
    def from_wiring(cls, wiring: CrossbarWiring) -> MatrixInterlock:
        """The interlock of a crossbar bench: rules derived from the terminals' roles."""
        cols = {key: (f"{kind} line {i}", kind) for key, (kind, i) in wiring.column_lines().items()}
        return cls(wiring.rows, cols, wiring.terminal_rules())

    def _resolve(self, channel: str) -> tuple[str, str, str]:
        hit = self._cache.get(channel)
        if hit is not None:
            return hit
        slot, row, col = tsp.parse_channel(channel)
        term = self.rows.get(row)
        if term is None:
            raise SafetyError(
                "channel", channel, f"a crosspoint on a wired matrix row ({sorted(self.rows)})"
            )
        line = self.columns.get((slot, col))
        if line is None:
            raise SafetyError(
                "channel", channel, "a crosspoint on a matrix column wired to a chip line"
            )
        hit = (term, line[0], line[1])
        self._cache[channel] = hit
        return hit

    def check(self, closed: Iterable[str]) -> None:
        """SafetyError if the crosspoints ``closed`` (all closed at once) are not allowed."""
        line_terms: dict[str, tuple[str, str]] = {}
        term_lines: dict[str, set[str]] = {}
        for ch in sorted(closed):  # sorted: the same refusal message every time
            term, line, kind = self._resolve(ch)
            prev = line_terms.get(line)
            if prev is not None and prev[0] != term:
                raise SafetyError(
                    "channels",
                    sorted({prev[1], ch}),
                    "one instrument terminal per chip line",
                    f"{prev[0]} and {term} would both drive {line}",
                )
            line_terms[line] = (term, ch)
            rule = self.rules.get(term, TerminalRule(frozenset({"word", "bit"}), 1))
            if kind not in rule.kinds:
                raise SafetyError(
                    "channels",
                    ch,
                    f"{term} on {'/'.join(sorted(rule.kinds))} lines only",
                    f"it would reach {line}",
                )
            lines = term_lines.setdefault(term, set())
            lines.add(line)
            if len(lines) > rule.max_lines:
                raise SafetyError(
                    "channels",
                    ch,
                    f"{term} on at most {rule.max_lines} line(s)",
                    f"it would join {', '.join(sorted(lines))}",
                )


class Keithley707BSettings(MemprogModel):
    """Driver settings."""

    name: str = Field(default="707B", min_length=1, description="name used in errors")
    slots: list[int] = Field(default_factory=lambda: list(tsp.SLOTS), description="populated slots")
    connect_rule: Literal["break_before_make", "make_before_break", "off"] = Field(
        default="break_before_make", description="set at connect()"
    )

    @field_validator("slots")
    @classmethod
    def _slots_exist(cls, v: list[int]) -> list[int]:
        bad = [s for s in v if s not in tsp.SLOTS]
        if bad or not v:
            raise ConfigError("slots", v, "a non-empty list of slot numbers 1-6")
        return sorted(set(v))


class Keithley707B:
    """TSP driver of a 707B switch matrix.

    Args:
        transport: the connection (``\\n`` terminations).
        interlock: checks every closure before it is sent; ``None`` disables the check
            (only for a matrix with nothing dangerous behind it).
        settings: name, populated slots and the connect rule set at :meth:`connect`.
    """

    def __init__(
        self,
        transport: Transport,
        interlock: MatrixInterlock | None = None,
        settings: Keithley707BSettings | None = None,
    ) -> None:
        self.transport = transport
        self.interlock = interlock
        self.settings = settings or Keithley707BSettings()
        self._closed: set[str] | None = None  # None: unknown, ask the instrument
        self._rule: str | None = None

    @property
    def name(self) -> str:
        return self.settings.name

    # ------------------------------------------------------------------ plumbing
    def _group(self, *commands: str) -> None:
        """Send a command group, then drain the error queue; InstrumentError on any error."""
        for cmd in commands:
            self.transport.write(cmd)
        self.check_errors(commands[-1] if commands else "")

    def errors(self) -> list[tuple[int, str]]:
        """Drain the error queue: every (code, message) waiting, oldest first."""
        count = int(
            tsp.parse_number(self.transport.query(tsp.error_count()), "an error count", self.name)
        )
        out = []
        for _ in range(count):
            out.append(tsp.parse_error(self.transport.query(tsp.error_next()), self.name))
        return out

    def check_errors(self, command: str = "") -> None:
        """InstrumentError carrying the first queued error (all messages listed)."""
        errs = self.errors()
        if errs:
            self._closed = None  # the state is no longer known for sure
            code, msg = errs[0]
            if len(errs) > 1:
                msg += " (+ " + "; ".join(f"{c}: {m}" for c, m in errs[1:]) + ")"
            raise InstrumentError(self.name, code, msg, command)

    def _expand(self, channels: str | Iterable[str]) -> list[str]:
        return tsp.expand_channels(channels, self.settings.slots)

    def _list(self, channels: str | Iterable[str]) -> tuple[list[str], str]:
        expanded = self._expand(channels)
        return expanded, tsp.format_channel_list(expanded)

    def _known_closed(self) -> set[str]:
        if self._closed is None:
            self._closed = self.closed_channels()
        return self._closed

    def _check(self, after: set[str], before: set[str]) -> None:
        if self.interlock is None:
            return
        transient = after if self._rule == "break_before_make" else after | before
        self.interlock.check(transient)

    # ------------------------------------------------------------------ session
    def connect(self) -> str:
        """Identify, clear the error queue, set the connect rule and open every crosspoint."""
        idn = self.transport.query("*IDN?").strip()
        if "707B" not in idn.upper() and "708B" not in idn.upper():
            raise ProtocolError("an identity naming a 707B/708B", idn, self.name)
        set_marker = getattr(self.transport, "set_marker", None)
        if callable(set_marker):  # *IDN?'s reply marks the end of stale replies after a timeout
            set_marker("*IDN?", idn)
        self.transport.write(tsp.error_clear())
        self.set_connect_rule(self.settings.connect_rule)
        self.open_all()
        return idn

    def set_connect_rule(self, rule: str) -> None:
        """``channel.connectrule = ...`` (``break_before_make`` is the safe default)."""
        self._group(tsp.set_connect_rule(rule))
        self._rule = rule

    def connect_rule(self) -> str:
        """The connect rule as the instrument reports it."""
        value = int(
            tsp.parse_number(
                self.transport.query(tsp.get_connect_rule()), "a connect rule", self.name
            )
        )
        try:
            rule = tsp.CONNECT_RULE_VALUES[value]
        except KeyError:
            raise ProtocolError(
                f"one of {sorted(tsp.CONNECT_RULE_VALUES)}", value, self.name
            ) from None
        self._rule = rule
        return rule

    # ------------------------------------------------------------------ switching
    def close(self, channels: str | Iterable[str]) -> None:
        """Close crosspoints, keeping the others as they are (interlock-checked)."""
        expanded, text = self._list(channels)
        before = self._known_closed() if self.interlock is not None else (self._closed or set())
        after = before | set(expanded)
        self._check(after, before)
        self._group(tsp.close(text))
        if self._closed is not None:
            self._closed = after

    def exclusive_close(self, channels: str | Iterable[str]) -> None:
        """Close exactly these crosspoints and open every other one (interlock-checked)."""
        expanded, text = self._list(channels)
        after = set(expanded)
        before = self._closed or set()
        if self.interlock is not None and self._rule != "break_before_make":
            before = self._known_closed()
        self._check(after, before)
        self._group(tsp.exclusive_close(text))
        self._closed = after

    def exclusive_slot_close(self, channels: str | Iterable[str]) -> None:
        """Close these crosspoints, open the rest of their cards (interlock-checked)."""
        expanded, text = self._list(channels)
        slots = {tsp.parse_channel(c)[0] for c in expanded}
        before = self._known_closed() if self.interlock is not None else (self._closed or set())
        after = {c for c in before if tsp.parse_channel(c)[0] not in slots} | set(expanded)
        self._check(after, before)
        self._group(tsp.exclusive_slot_close(text))
        if self._closed is not None or self.interlock is not None:
            self._closed = after

    def open(self, channels: str | Iterable[str]) -> None:
        """Open crosspoints (``"allslots"`` or ``"slotN"`` allowed). Opening is never refused."""
        if isinstance(channels, str) and channels.strip().lower() in ("allslots",):
            self.open_all()
            return
        expanded, text = self._list(channels)
        self._group(tsp.open_(text))
        if self._closed is not None:
            self._closed -= set(expanded)

    def open_all(self) -> None:
        """``channel.open("allslots")``."""
        self._group(tsp.open_("allslots"))
        self._closed = set()

    def closed_channels(self) -> set[str]:
        """What the instrument reports closed (``print(channel.getclose("allslots"))``)."""
        reply = self.transport.query(tsp.get_closed("allslots"))
        closed = tsp.parse_closed(reply, self.name)
        self._closed = set(closed)
        return closed

    @property
    def closed_cache(self) -> set[str] | None:
        """The driver's record of closed crosspoints (None if unknown)."""
        return None if self._closed is None else set(self._closed)

    def delay(self, seconds: float) -> None:
        """Let ``seconds`` pass on the instrument: TSP ``delay(s)``, then ``*OPC?``.

        Why here: the 707B runs a TSP script engine whose ``delay()`` is a real
        instrument-side wait; ``*OPC?`` answers only once it has run, so the host blocks
        exactly as long as the bench waits. The crosspoints keep their state (the crossbar
        stack opens them all after each operation, so the chip idles unbiased). Long waits
        go as several of at most ``WAIT_CHUNK_S`` to stay inside the VISA timeout.
        """
        for chunk in wait_chunks(seconds):
            self.transport.write(tsp.delay(chunk))
            reply = self.transport.query("*OPC?").strip()
            if reply != "1":
                raise ProtocolError("'1' from *OPC? after delay()", reply, self.name)

    # ------------------------------------------------------------------ safety
    def safe_state(self, attempts: int = 3) -> None:
        """Open every crosspoint; through link faults, recover the link and open again.

        Why retry here: the safe state is what every error path ends in, so a garbled or
        lost reply to its own error check must not leave crosspoints closed. Opening is
        idempotent, so sending it again is always safe.
        """
        for attempt in range(attempts):
            try:
                self.open_all()
                return
            except (LinkError, ProtocolError):
                self._closed = None  # not known until an open is confirmed
                if attempt == attempts - 1:
                    raise
                recover = getattr(self.transport, "recover", None)
                if callable(recover):
                    try:
                        recover()
                    except LinkError:
                        if attempt == attempts - 2:
                            raise

    def describe(self) -> dict[str, Any]:
        """Settings and state, for run metadata."""
        return {"name": self.name, "connect_rule": self._rule, "closed": sorted(self._closed or [])}


__all__ = ["Keithley707B", "Keithley707BSettings", "MatrixInterlock"]
