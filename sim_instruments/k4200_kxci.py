"""The KXCI text of the simulated 4200A-SCS: splitting messages, parsing numbers, formatting
readings, and the instrument state those commands set (SMUs and 4225-PMU channels).

Why a module of its own: every KXCI command family (user mode, system-mode sweeps, user
libraries, the PMU) parses and answers the same way, and the parser is where a client's
hostile text lands first; apart from the routing and the physics it reads (and fuzzes) on
its own. The readings' format follows the 4200A's KXCI manual (``NAI+1.2345E-05``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

V_LETTERS = {1: "A", 2: "B", 3: "C", 4: "D", 5: "G", 6: "H", 7: "I", 8: "J"}
I_LETTERS = {n: "ABCDEFGH"[n - 1] for n in range(1, 9)}
PLC = {1: 0.1, 2: 1.0, 3: 16.0}


class KxciError(Exception):
    """A command the simulated 4200 rejects: becomes an ``ERROR <code>: <message>`` reply."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class SmuState:
    mode: str = "off"  # "off", "V" (voltage source) or "I" (current source)
    value: float = 0.0
    compliance: float = 0.0
    range_code: int = 0


@dataclass
class PmuChannelState:
    base: float = 0.0
    amplitude: float = 0.0
    period: float = 1e-6
    width: float = 500e-9
    rise: float = 100e-9
    fall: float = 100e-9
    output: bool = False
    rpm: int = 0
    load: float = 1e6  # :PMU:LOAD (ohm)
    range_v: int = 10  # :PMU:SOURCE:RANGE

    @property
    def driving(self) -> bool:
        return self.output and self.rpm == 0


def pmu_terminal(n: int) -> str:
    """KXCI PMU channel number -> terminal name: 1 -> PMU1-1, 3 -> PMU2-1."""
    return f"PMU{(n + 1) // 2}-{2 - n % 2}"


def split_commands(message: str) -> list[str]:
    """Split on ``;`` outside parentheses and quotes."""
    out, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(message):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(depth - 1, 0)
        elif ch == ";" and depth == 0:
            out.append(message[start:i])
            start = i + 1
    out.append(message[start:])
    return [c.strip() for c in out if c.strip()]


def split_args(text: str) -> list[str]:
    return [a.strip().strip("'\"") for a in text.split(",")] if text.strip() else []


def parse_float(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise KxciError(-102, f"invalid {what} {text!r}") from None
    if not np.isfinite(v):
        raise KxciError(-102, f"invalid {what} {text!r}")
    return v


def parse_int(text: str, what: str) -> int:
    v = parse_float(text, what)
    if v != int(v):
        raise KxciError(-102, f"invalid {what} {text!r}")
    return int(v)


def fmt_reading(value: float) -> str:
    """A KXCI reading mantissa/exponent ``±N.NNNNE±NN``."""
    return f"{value:+.4E}"
