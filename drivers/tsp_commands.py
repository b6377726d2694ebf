"""Pure TSP text for the Keithley 707B switch matrix: channel names, lists, commands, replies.

No I/O. Facts (707B/708B Reference Manual 707B-901-01; hephy-dd/comet's 707B driver):

* A channel is slot (1-6) + row letter (A-H) + two-digit column (01-12): ``"1A01"``.
* Channel lists separate items with commas (``"1A01,1B02"``); ``"1A01:1A05"`` is a range;
  ``"slot2"`` is every crosspoint of a card and ``"allslots"`` every crosspoint.
  memprog reads a range spanning several rows as the rectangle of rows x columns (the
  manual's examples only show ranges within one row, which this module also emits).
* ``channel.close``, ``channel.open``, ``channel.exclusiveclose`` (opens everything else),
  ``channel.exclusiveslotclose`` (opens everything else on the cards named),
  ``print(channel.getclose("allslots"))`` -> ``nil`` or ``1A01;1B02``,
  ``channel.connectrule = channel.BREAK_BEFORE_MAKE`` (the default).
* ``print(errorqueue.count)``; ``print(errorqueue.next())`` -> ``code<TAB>message<TAB>
  severity<TAB>node``. TSP prints numbers in its ASCII format (``1.00000e+00``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from memprog.core.errors import ConfigError, ProtocolError

ROWS = "ABCDEFGH"
SLOTS = range(1, 7)
COLUMNS = range(1, 13)
_CHANNEL_RE = re.compile(r"^([1-6])([A-H])([0-9]{2})\Z")  # \Z: "$" accepts a final newline

#: connect rules: memprog name -> TSP constant
CONNECT_RULES = {
    "break_before_make": "channel.BREAK_BEFORE_MAKE",
    "make_before_break": "channel.MAKE_BEFORE_BREAK",
    "off": "channel.OFF",
}
#: numeric values the instrument prints for the constants (memprog's reading of the manual)
CONNECT_RULE_VALUES = {0: "off", 1: "break_before_make", 2: "make_before_break"}


def parse_channel(name: str) -> tuple[int, str, int]:
    """``"1A01"`` -> ``(1, "A", 1)``; ConfigError for anything the 707B would not accept."""
    m = _CHANNEL_RE.match(name.strip()) if isinstance(name, str) else None
    if not m or int(m.group(3)) not in COLUMNS:
        raise ConfigError("channel", name, "slot 1-6 + row A-H + column 01-12, e.g. '1A01'")
    return int(m.group(1)), m.group(2), int(m.group(3))


def channel_name(slot: int, row: str, column: int) -> str:
    """``(1, "A", 1)`` -> ``"1A01"``, validated."""
    name = f"{slot}{row}{column:02d}"
    parse_channel(name)
    return name


def _key(name: str) -> tuple[int, int, int]:
    s, r, c = parse_channel(name)
    return s, ROWS.index(r), c


def expand_channels(spec: str | Iterable[str], slots: Iterable[int] = SLOTS) -> list[str]:
    """Every crosspoint named by a channel list (ranges, ``slotN`` and ``allslots`` expanded).

    Args:
        spec: a list string (``"1A01,1B02:1B04"``) or an iterable of such items.
        slots: the slots that exist (for ``slotN``/``allslots``).
    """
    items = [spec] if isinstance(spec, str) else list(spec)
    parts = [p.strip() for item in items for p in re.split(r"[,;]", item) if p.strip()]
    if not parts:
        raise ConfigError("channels", spec, "at least one channel")
    out: list[str] = []
    slot_list = list(slots)
    for p in parts:
        low = p.lower()
        if low == "allslots":
            out += [f"{s}{r}{c:02d}" for s in slot_list for r in ROWS for c in COLUMNS]
        elif re.fullmatch(r"slot[1-6]", low):
            s = int(low[4])
            if s not in slot_list:
                raise ConfigError("channels", p, f"a slot in {slot_list}")
            out += [f"{s}{r}{c:02d}" for r in ROWS for c in COLUMNS]
        elif ":" in p:
            a, _, b = p.partition(":")
            s1, r1, c1 = parse_channel(a)
            s2, r2, c2 = parse_channel(b)
            if s1 != s2:
                raise ConfigError("channels", p, "a range within one slot")
            i1, i2 = sorted((ROWS.index(r1), ROWS.index(r2)))
            lo, hi = sorted((c1, c2))
            out += [f"{s1}{ROWS[i]}{c:02d}" for i in range(i1, i2 + 1) for c in range(lo, hi + 1)]
        else:
            parse_channel(p)
            out.append(p)
    seen: set[str] = set()
    return [c for c in out if not (c in seen or seen.add(c))]


def format_channel_list(channels: Iterable[str]) -> str:
    """A sorted channel list with runs of adjacent columns in one row written as ranges.

    ``["1A02", "1A01", "1A03", "2B05"]`` -> ``"1A01:1A03,2B05"``.
    """
    keys = sorted({_key(c) for c in channels})
    if not keys:
        raise ConfigError("channels", [], "at least one channel")
    parts: list[str] = []
    i = 0
    while i < len(keys):
        s, r, c = keys[i]
        j = i
        while j + 1 < len(keys) and keys[j + 1] == (s, r, keys[j][2] + 1):
            j += 1
        first = f"{s}{ROWS[r]}{c:02d}"
        parts.append(first if j == i else f"{first}:{s}{ROWS[r]}{keys[j][2]:02d}")
        i = j + 1
    return ",".join(parts)


# ---------------------------------------------------------------------- commands
_LIST_RE = re.compile(r"^[A-Za-z0-9:,;]+\Z")  # \Z: "$" accepts a final newline


def _list(channel_list: str, what: str = "channel_list") -> str:
    """A channel list as it may stand inside a TSP string literal.

    The list is pasted into Lua source (``channel.close("...")``): a quote, a newline or
    a NUL would end the literal or the statement and run whatever follows on the switch.
    """
    if not isinstance(channel_list, str) or not _LIST_RE.match(channel_list):
        raise ConfigError(
            what, channel_list, "channels such as 1A01:1A03,2B05, 'allslots' or 'slot1' (letters, digits , : ;)"
        )
    return channel_list


def close(channel_list: str) -> str:
    """``channel.close("...")``: close the crosspoints (others unchanged)."""
    return f'channel.close("{_list(channel_list)}")'


def open_(channel_list: str) -> str:
    """``channel.open("...")``: open the crosspoints (``"allslots"`` opens all)."""
    return f'channel.open("{_list(channel_list)}")'


def exclusive_close(channel_list: str) -> str:
    """``channel.exclusiveclose("...")``: close these, open every other crosspoint."""
    return f'channel.exclusiveclose("{_list(channel_list)}")'


def exclusive_slot_close(channel_list: str) -> str:
    """``channel.exclusiveslotclose("...")``: close these, open the rest of their cards."""
    return f'channel.exclusiveslotclose("{_list(channel_list)}")'


def get_closed(scope: str = "allslots") -> str:
    """``print(channel.getclose("allslots"))``."""
    return f'print(channel.getclose("{_list(scope, "scope")}"))'


def set_connect_rule(rule: str) -> str:
    """``channel.connectrule = channel.BREAK_BEFORE_MAKE`` (or MAKE_BEFORE_BREAK, OFF)."""
    if rule not in CONNECT_RULES:
        raise ConfigError("connect_rule", rule, f"one of {sorted(CONNECT_RULES)}")
    return f"channel.connectrule = {CONNECT_RULES[rule]}"


def get_connect_rule() -> str:
    """``print(channel.connectrule)``."""
    return "print(channel.connectrule)"


def delay(seconds: float) -> str:
    """``delay(s)``: the TSP engine pauses ``s`` seconds before the next command."""
    s = float(seconds)
    if not s > 0 or s != s or s == float("inf"):
        raise ConfigError("seconds", seconds, "a finite delay > 0 s")
    return f"delay({s:.6g})"


def error_count() -> str:
    """``print(errorqueue.count)``."""
    return "print(errorqueue.count)"


def error_next() -> str:
    """``print(errorqueue.next())``."""
    return "print(errorqueue.next())"


def error_clear() -> str:
    """``errorqueue.clear()``."""
    return "errorqueue.clear()"


# ---------------------------------------------------------------------- replies
def parse_number(reply: str, what: str = "a number", instrument: str = "707B") -> float:
    """A TSP-printed number (``1.00000e+00``)."""
    try:
        return float(reply.strip())
    except ValueError:
        raise ProtocolError(what, reply, instrument) from None


def parse_closed(reply: str, instrument: str = "707B") -> set[str]:
    """``nil`` -> empty set; ``1A01;1B02`` -> ``{"1A01", "1B02"}``."""
    text = reply.strip()
    if text == "nil":
        return set()
    items = [p.strip() for p in text.split(";") if p.strip()]
    try:
        return set(expand_channels(items)) if items else set()
    except ConfigError:
        raise ProtocolError("'nil' or channels separated by ';'", reply, instrument) from None


def parse_error(reply: str, instrument: str = "707B") -> tuple[int, str]:
    """``code<TAB>message<TAB>severity<TAB>node`` -> ``(code, message)``."""
    parts = reply.rstrip("\r\n").split("\t")
    try:
        code = int(float(parts[0]))
    except (ValueError, IndexError, OverflowError):  # OverflowError: "INF"
        raise ProtocolError("'code<TAB>message<TAB>severity<TAB>node'", reply, instrument) from None
    message = parts[1].strip().strip("\"'") if len(parts) > 1 else ""
    return code, message
