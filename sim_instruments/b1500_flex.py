"""The FLEX vocabulary of the simulated B1500A: error table, number parsing, value format.

Why a module of its own: the command handlers (:mod:`.b1500_commands`,
:mod:`.b1500_measure`), the sweep state (:mod:`.b1500_state`) and the mainframe's
dispatcher (:mod:`.b1500`) all speak the same FLEX words -- the error codes a rejected
command queues, the way a number is parsed and a reading is printed, the range tables of
``TI``/``TV``/``RI``/``DV``/``DI``. Keeping them here gives each one exactly one
definition. Sources: the FLEX data and error formats as used by QCoDeS's and PyMeasure's
B1500 drivers; the error codes of the FLEX family (E5270B programming guide).
"""

from __future__ import annotations

import math
import re

SMU_MODELS = {"B1510A", "B1511A", "B1511B", "B1514A", "B1517A"}
CMU_MODELS = {"B1520A"}
WGFMU_MODELS = {"B1530A"}
KNOWN_MODELS = SMU_MODELS | CMU_MODELS | WGFMU_MODELS | {"B1525A", "B1542A"}

NO_ERROR = '+0,"No Error."'
ERRORS = {
    100: "Undefined GPIB command.",
    102: "Incorrect numeric data syntax.",
    103: "Incorrect terminator position.",
    120: "Incorrect parameter value.",
    121: "Channel number must be a slot with a suitable module.",
    122: "Number of channels must be corrected.",
    123: "Compliance must be set correctly.",
    124: "Incorrect range value for this channel.",
    999: "Not supported by the memprog simulator.",
}
DUMMY = 199.999e99  # FLEX value of an over-range reading

# measurement range codes of TI (A) and TV (V); negative = fixed, positive = limited auto
I_RANGES = {8: 1e-12, 9: 1e-11, 10: 1e-10, 11: 1e-9, 12: 1e-8, 13: 1e-7, 14: 1e-6, 15: 1e-5,
            16: 1e-4, 17: 1e-3, 18: 1e-2, 19: 1e-1}  # fmt: skip
V_RANGES = {5: 0.5, 20: 2.0, 50: 5.0, 200: 20.0, 400: 40.0, 1000: 100.0}
SMU_I_MAX = 0.1  # B1517A: 100 mA
SMU_V_MAX = 100.0  # B1517A: 100 V
READING_S = 100e-6  # [choice] one spot reading (high-speed ADC, AV 1)
XE_OVERHEAD_S = 1e-3  # [choice]
COMMAND_RE = re.compile(r"^(\*?[A-Za-z]+\??)\s*(.*)$")


class FlexError(Exception):
    """A rejected command: queued as ``+code,"text"`` for ``ERRX?``."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(detail or ERRORS.get(code, ""))
        self.code = code
        self.detail = detail


def format_value(value: float) -> str:
    """A FLEX 12-digit value ``+ddd.dddE+ee`` (engineering exponent)."""
    if not math.isfinite(value) or abs(value) >= 1e99:
        return "+199.999E+99"
    if value == 0:
        return "+000.000E+00"
    e = 3 * math.floor(math.log10(abs(value)) / 3)
    m = value / 10.0**e
    if abs(round(m, 3)) >= 1000.0:
        e += 3
        m /= 1000.0
    return f"{m:+08.3f}E{e:+03d}"


def channel_letter(ch: int) -> str:
    """FLEX channel letter of channels 1-10 (A-J)."""
    return "ABCDEFGHIJ"[ch - 1] if 1 <= ch <= 10 else "Z"


def flex_num(text: str) -> float:
    """A FLEX numeric parameter (error 102 when it is not a finite number)."""
    t = text.strip()
    try:
        v = float(t)
    except ValueError:
        raise FlexError(102, f"not a number: {t!r}") from None
    if not math.isfinite(v):
        raise FlexError(102, f"not a number: {t!r}")
    return v


def flex_int(text: str) -> int:
    """A FLEX integer parameter (error 102 when it is not a whole number)."""
    v = flex_num(text)
    if v != int(v):
        raise FlexError(102, f"not an integer: {text!r}")
    return int(v)


__all__ = ["FlexError", "channel_letter", "flex_int", "flex_num", "format_value"]
