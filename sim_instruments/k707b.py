"""Simulated Keithley 707B switch matrix answering TSP.

It parses the TSP the 707B accepts (a subset of Lua: the ``channel`` and ``errorqueue``
functions a switching script uses) and keeps the set of closed crosspoints. The simulated
4200 asks it what is closed to decide what it is connected to, so a wrong routing reads an
open circuit or the wrong cell exactly as on the bench.

Behaviour modelled:

* a chunk (one message) is parsed whole first; a statement it cannot parse is a syntax
  error (-285) and nothing in the chunk runs, as Lua compiles before it runs;
* a bad channel list is a runtime error (-286) that stops the chunk at that statement;
* ``channel.close/open/exclusiveclose/exclusiveslotclose`` with lists, ``:`` ranges
  (rectangles of rows x columns), ``slotN`` and ``allslots``;
* ``print(channel.getclose(...))`` -> ``nil`` or ``1A01;1B02`` (slot, row, column order);
* ``channel.connectrule`` (OFF 0, BREAK_BEFORE_MAKE 1, MAKE_BEFORE_BREAK 2);
* ``errorqueue.count`` / ``errorqueue.next()`` / ``errorqueue.clear()``; ``reset()``,
  ``*RST``, ``*CLS``, ``*OPC?``, ``waitcomplete()``; ``*IDN?`` from ``k707b.yaml``;
* ``delay(s)``: the script engine pauses ``s`` seconds (the chip's clock advances by ``s``);
* numbers print in TSP's default ASCII format (``1.00000e+00``);
* relays take time: every switching command that changes relays advances the chip clock by
  the relay settling time per phase (open phase, close phase), option ``sim_relay_settle_s``
  (default 3 ms, a typical reed/armature matrix relay) [choice].

Card geometry: 8 rows (A-H, bussed across slots by the backplane) x 12 columns per card;
populated slots from option ``sim_slots`` (default 1-6).
"""

from __future__ import annotations

import re
from collections import deque
from typing import TYPE_CHECKING

from memprog.sim_instruments.base import SimulatedInstrument, StaticSurface, register

if TYPE_CHECKING:  # pragma: no cover
    from memprog.core.bench_config import InstrumentConfig
    from memprog.sim_instruments.sim_bench import SimBench

ROWS = "ABCDEFGH"
N_COLUMNS = 12
_STR = r'"([^"]*)"'
_STATEMENTS: list[tuple[str, re.Pattern[str]]] = [
    (name, re.compile(r"\s*" + pat + r"\s*;?", re.IGNORECASE if name.startswith("*") else 0))
    for name, pat in [
        ("close", r"channel\.close\(\s*" + _STR + r"\s*\)"),
        ("open", r"channel\.open\(\s*" + _STR + r"\s*\)"),
        ("exclusiveclose", r"channel\.exclusiveclose\(\s*" + _STR + r"\s*\)"),
        ("exclusiveslotclose", r"channel\.exclusiveslotclose\(\s*" + _STR + r"\s*\)"),
        ("getclose", r"print\(\s*channel\.getclose\(\s*" + _STR + r"\s*\)\s*\)"),
        (
            "setrule",
            r"channel\.connectrule\s*=\s*channel\.(BREAK_BEFORE_MAKE|MAKE_BEFORE_BREAK|OFF)",
        ),
        ("getrule", r"print\(\s*channel\.connectrule\s*\)"),
        ("errcount", r"print\(\s*errorqueue\.count\s*\)"),
        ("errnext", r"print\(\s*errorqueue\.next\(\s*\)\s*\)"),
        ("errclear", r"errorqueue\.clear\(\s*\)"),
        ("reset", r"reset\(\s*\)"),
        ("waitcomplete", r"waitcomplete\(\s*\)"),
        ("delay", r"delay\(\s*([-+0-9.eE]+)\s*\)"),
        ("*RST", r"\*RST"),
        ("*CLS", r"\*CLS"),
        ("*OPC?", r"\*OPC\?"),
        ("*IDN?", r"\*IDN\?"),
    ]
]
_RULES = {"OFF": 0, "BREAK_BEFORE_MAKE": 1, "MAKE_BEFORE_BREAK": 2}
_CHANNEL_RE = re.compile(r"^([1-6])([A-H])(\d{2})$")

Crosspoint = tuple[int, int, int]  # (slot, row index 0-7, column 1-12)


def tsp_number(x: float) -> str:
    """A number as TSP prints it by default (six significant digits, exponent form)."""
    return f"{float(x):.5e}"


class _RuntimeError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@register("k707b")
class Sim707B(SimulatedInstrument):
    """Simulated 707B: closed-crosspoint state, connect rule, error queue, relay timing."""

    write_termination = "\n"
    read_termination = "\n"
    latency_s = 200e-6  # GPIB message round trip charged to the bench clock [choice]

    def __init__(self, name: str, config: InstrumentConfig, bench: SimBench) -> None:
        super().__init__(name, config, bench)
        self.static = StaticSurface("k707b.yaml", "Keithley707B")
        opts = config.options
        self.slots = tuple(int(s) for s in opts.get("sim_slots", range(1, 7)))
        self.settle_s = float(opts.get("sim_relay_settle_s", 3e-3))
        self.closed: set[Crosspoint] = set()
        self.version = 0  # bumped on every change of the closed set
        self.errors: deque[tuple[int, str]] = deque()
        self.rule = _RULES["BREAK_BEFORE_MAKE"]
        self.switch_count = 0

    def transient_error(self, message: str) -> str | None:
        """Fault injection: the chunk is refused as busy (-300 queued [choice]); nothing runs."""
        self.errors.append((-300, "Device-specific error; busy, command not executed"))
        return None

    def can_refuse(self, message: str) -> bool:
        """The error queue and the identity are always answered."""
        return "errorqueue" not in message and "*IDN" not in message.upper()

    def reset(self) -> None:
        """Power-on state: everything open, default connect rule, empty error queue."""
        self._apply(set(self.closed), set())
        self.rule = _RULES["BREAK_BEFORE_MAKE"]
        self.errors.clear()

    # ------------------------------------------------------------------ channel lists
    def _parse_list(self, text: str) -> list[Crosspoint]:
        parts = [p.strip() for p in re.split(r"[,;]", text) if p.strip()]
        if not parts:
            raise _RuntimeError("Parameter 1, empty channel list")
        out: list[Crosspoint] = []
        for p in parts:
            low = p.lower()
            if low == "allslots":
                out += [
                    (s, r, c) for s in self.slots for r in range(8) for c in range(1, N_COLUMNS + 1)
                ]
            elif re.fullmatch(r"slot\d", low):
                s = int(low[4:])
                if s not in self.slots:
                    raise _RuntimeError(f"Parameter 1, slot {s} is empty")
                out += [(s, r, c) for r in range(8) for c in range(1, N_COLUMNS + 1)]
            elif ":" in p:
                a, _, b = p.partition(":")
                s1, r1, c1 = self._channel(a)
                s2, r2, c2 = self._channel(b)
                if s1 != s2:
                    raise _RuntimeError(f"Parameter 1, invalid channel range {p}")
                out += [
                    (s1, r, c)
                    for r in range(min(r1, r2), max(r1, r2) + 1)
                    for c in range(min(c1, c2), max(c1, c2) + 1)
                ]
            else:
                out.append(self._channel(p))
        return out

    def _channel(self, text: str) -> Crosspoint:
        m = _CHANNEL_RE.match(text.strip())
        if not m or not 1 <= int(m.group(3)) <= N_COLUMNS:
            raise _RuntimeError(f"Parameter 1, invalid channel {text.strip()}")
        slot = int(m.group(1))
        if slot not in self.slots:
            raise _RuntimeError(
                f"Parameter 1, invalid channel {text.strip()} (slot {slot} is empty)"
            )
        return slot, ROWS.index(m.group(2)), int(m.group(3))

    @staticmethod
    def name_of(xp: Crosspoint) -> str:
        """``(1, 0, 1)`` -> ``"1A01"``."""
        return f"{xp[0]}{ROWS[xp[1]]}{xp[2]:02d}"

    # ------------------------------------------------------------------ relays
    def _apply(self, opening: set[Crosspoint], closing: set[Crosspoint]) -> None:
        """Open then close (break-before-make) or the reverse, charging relay time per phase."""
        opening = opening & self.closed
        closing = closing - self.closed
        phases = [("open", opening), ("close", closing)]
        if self.rule == _RULES["MAKE_BEFORE_BREAK"]:
            phases.reverse()
        elif self.rule == _RULES["OFF"]:
            phases = [("both", opening | closing)]
        changed = False
        for what, group in phases:
            if not group:
                continue
            if what in ("open", "both"):
                self.closed -= group & opening
            if what in ("close", "both"):
                self.closed |= group & closing
            self.chip.advance(self.settle_s)
            self.switch_count += len(group)
            changed = True
        if changed:
            self.version += 1

    # ------------------------------------------------------------------ TSP
    def _parse_chunk(self, message: str) -> list[tuple[str, tuple[str, ...]]] | None:
        pos, out = 0, []
        text = message.strip()
        while pos < len(text):
            for name, pat in _STATEMENTS:
                m = pat.match(text, pos)
                if m and m.end() > pos:
                    out.append((name, m.groups()))
                    pos = m.end()
                    break
            else:
                near = text[pos:].strip()[:20]
                self.errors.append(
                    (-285, f"TSP Syntax error at line 1: unexpected symbol near `{near}'")
                )
                return None
        return out

    def handle(self, message: str) -> str | None:
        statements = self._parse_chunk(message)
        if statements is None:
            return None
        out: list[str] = []
        for name, args in statements:
            try:
                reply = self._run(name, args)
            except _RuntimeError as exc:
                self.errors.append((-286, f"TSP Runtime error at line 1: {exc.message}"))
                break
            if reply is not None:
                out.append(reply)
        return "\n".join(out) if out else None

    def _run(self, name: str, args: tuple[str, ...]) -> str | None:
        if name == "close":
            self._apply(set(), set(self._parse_list(args[0])))
        elif name == "open":
            self._apply(set(self._parse_list(args[0])), set())
        elif name == "exclusiveclose":
            new = set(self._parse_list(args[0]))
            self._apply(self.closed - new, new)
        elif name == "exclusiveslotclose":
            new = set(self._parse_list(args[0]))
            slots = {xp[0] for xp in new}
            self._apply({xp for xp in self.closed if xp[0] in slots} - new, new)
        elif name == "getclose":
            scope = self._parse_list(args[0])
            hit = sorted(set(scope) & self.closed)
            return ";".join(self.name_of(x) for x in hit) if hit else "nil"
        elif name == "setrule":
            self.rule = _RULES[args[0]]
        elif name == "getrule":
            return tsp_number(self.rule)
        elif name == "errcount":
            return tsp_number(len(self.errors))
        elif name == "errnext":
            code, msg = self.errors.popleft() if self.errors else (0, "Queue Is Empty")
            return (
                f"{tsp_number(code)}\t{msg}\t{tsp_number(0 if code == 0 else 2)}\t{tsp_number(0)}"
            )
        elif name == "errclear" or name == "*CLS":
            self.errors.clear()
        elif name in ("reset", "*RST"):
            self.reset()
        elif name == "*OPC?":
            return "1"
        elif name == "delay":
            try:
                s = float(args[0])
            except ValueError:
                raise _RuntimeError(f"bad argument #1 to 'delay' ({args[0]!r})") from None
            if not s >= 0:
                raise _RuntimeError("bad argument #1 to 'delay' (a delay >= 0 expected)")
            self.chip.advance(s)  # the script engine pauses; the bench's clock runs on
        elif name == "*IDN?":
            return self.static.match("*IDN?")
        return None  # waitcomplete: relays settle synchronously

    # ------------------------------------------------------------------ for the simulated 4200
    def closed_crosspoints(self) -> frozenset[Crosspoint]:
        """The crosspoints closed now: (slot, row index, column)."""
        return frozenset(self.closed)


__all__ = ["Sim707B", "tsp_number"]
