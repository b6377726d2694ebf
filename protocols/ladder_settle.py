"""The ladder's settle rule and its validation: per-level settles and a lab's check of them.

Why a module of its own: a settle chosen per level (:func:`~memprog.protocols.ladder.run_ladder`'s
``settle_rule``, e.g. from the chip's measured relaxation, :mod:`.settle_choice`) needs to
know how far that level's pulses moved the cell, and a shorter settle than the technology's
default is only a claim until it is checked. :class:`MovementSink` measures the movement
from what the tuner itself read (a lab sees the same reads: nothing here asks the chip
anything else); :func:`final_check` and the ladder's validation levels re-read after a
longer wait, which is how a lab checks that a settle was long enough.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memprog.core.errors import ConfigError
from memprog.protocols.events import EventSink, wants_trace
from memprog.protocols.programmer import CellProgrammer


class MovementSink:
    """Forwards events to ``sink`` and sums ``|dG|`` between the tuner's successive reads.

    It asks the tuner for its trace (the read records are how the movement is seen) and
    forwards trace records only where ``sink`` asked for them itself, so a plain run's
    store is unchanged. ``start(g)`` begins a level (or a re-tune) at a known conductance
    (the previous verification mean; None: from the tuner's first read).
    """

    wants_trace = True

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self._forward_trace = wants_trace(sink)
        self._last: float | None = None
        self.movement_us = 0.0

    def start(self, g_us: float | None) -> None:
        """A new level or re-tune: the movement counts from ``g_us``."""
        self._last, self.movement_us = g_us, 0.0

    def record_event(self, event: dict[str, Any]) -> None:  # noqa: D102
        kind = event.get("event")
        if kind == "read":
            g = float(np.mean(event["g_us"]))
            if self._last is not None:
                self.movement_us += abs(g - self._last)
            self._last = g
        if self._forward_trace or kind not in ("read", "pulse"):
            self.sink.record_event(event)

    def record_result(self, result: dict[str, Any]) -> None:  # noqa: D102
        rec = getattr(self.sink, "record_result", None)
        if rec is not None:
            rec(result)


def check_validation(
    validate_every: object, validate_wait_s: float | None, final_wait_s: float,
    settle_s: float | None, settle_rule: object,
) -> None:  # fmt: skip
    """The validation settings checked before any pulse (ConfigError naming the one)."""
    if (
        isinstance(validate_every, bool)
        or not isinstance(validate_every, int | np.integer)
        or validate_every < 0
    ):
        raise ConfigError("validate_every", validate_every, "an integer >= 0 (0: no validation)")
    if not np.isfinite(final_wait_s) or final_wait_s < 0:
        raise ConfigError("final_wait_s", final_wait_s, "a finite number of seconds >= 0")
    if settle_rule is not None and settle_s is not None:
        raise ConfigError(
            "settle_s", settle_s, "None when a settle rule chooses each level's settle"
        )
    if settle_rule is not None and not callable(settle_rule):
        raise ConfigError(
            "settle_rule", settle_rule, "a function of the level's movement (µS) -> seconds"
        )


def final_check(
    programmer: CellProgrammer, r: np.ndarray, c: np.ndarray, read_v: float, level_us: float,
    reads: int, wait_s: float, interval_s: float,
) -> dict[str, float]:  # fmt: skip
    """The last level read again (``reads`` reads) after ``wait_s`` more of bench time."""
    programmer.wait(wait_s)
    v = programmer.read_burst(r, c, reads, read_v, interval_s)[:, 0]
    return {"wait_s": float(wait_s), "level_us": float(level_us), "mean_us": float(v.mean()),
            "max_error_us": float(np.abs(v - level_us).max())}  # fmt: skip


__all__ = ["MovementSink", "check_validation", "final_check"]
