"""Seeded fault injection: the link and instrument failures a lab sees, on demand.

Real benches drop replies, garble them, answer late, report spurious errors, lose the
connection in the middle of a block and reboot controllers. The drivers must survive all
of that without leaving the chip unsafe or losing a cell, and a test can only show they do
if the simulator fails the same ways, reproducibly. This module decides, per message a
client sends, whether and how that message goes wrong; the VISA backend (``@memprog``)
and the socket server (``memprog sim serve``) both apply the decision, so the in-process
bench and the served one fail alike.

Kinds (each message draws at most one):

* ``drop``: the command runs, its reply is lost (the client times out);
* ``garbage``: the command runs, its reply is replaced by random bytes of the same length;
* ``timeout``: the command runs, its reply arrives late, after the client's timeout;
* ``error``: the instrument refuses the command with a transient error (nothing runs);
* ``link``: the command runs, the connection drops in the middle of the reply;
* ``reset``: the instrument reboots before the command (power-on state, connection lost).

Every message drawn is faulted (the applied fraction is the rate): a reply fault drawn for a
command without a reply becomes ``link``, an ``error`` drawn for a message the instrument
always answers (its error queue, its identity) becomes ``drop``. Configuration: ``instruments.<name>.options.sim_faults`` in the bench file
(``{rate: 0.01, seed: 1, kinds: [drop, garbage, ...]}``) or ``memprog sim serve
--fault-rate 0.01 --fault-seed 1``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from memprog.core.validation import MemprogModel

FaultKind = Literal["drop", "garbage", "timeout", "error", "link", "reset"]
FAULT_KINDS: tuple[str, ...] = ("drop", "garbage", "timeout", "error", "link", "reset")
_NEEDS_REPLY = frozenset({"drop", "garbage", "timeout"})


class FaultPlan(MemprogModel):
    """How often and how a simulated instrument fails (``options.sim_faults``)."""

    rate: float = Field(default=0.0, ge=0.0, le=0.5, description="fraction of messages faulted")
    seed: int = Field(default=0, ge=0, description="same seed, same faults")
    kinds: list[FaultKind] = Field(default_factory=lambda: list(FAULT_KINDS))
    late_s: float = Field(
        default=0.3, gt=0, le=60, description="served sockets: how late a 'timeout' reply comes"
    )
    skip_first: int = Field(
        default=0, ge=0, description="messages left alone at the start (connection set-up)"
    )


class FaultInjector:
    """Draws the fault of each message; counts what it injected.

    Args:
        plan: the fault plan (rate 0 never faults and draws nothing).
        salt: mixed into the seed so each instrument of a bench has its own sequence.
    """

    def __init__(self, plan: FaultPlan | None, salt: int = 0) -> None:
        self.plan = plan or FaultPlan()
        self._rng = np.random.default_rng([self.plan.seed, salt])
        self._kinds = list(self.plan.kinds)
        self.messages = 0
        self.injected: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)

    @property
    def active(self) -> bool:
        return self.plan.rate > 0 and bool(self._kinds)

    def draw(self) -> str | None:
        """The fault drawn for the next message, or None (count it with :meth:`applied`)."""
        self.messages += 1
        if not self.active or self.messages <= self.plan.skip_first:
            return None
        if self._rng.random() >= self.plan.rate:
            return None
        return self._kinds[int(self._rng.integers(len(self._kinds)))]

    def before(self, can_refuse: bool) -> tuple[str | None, str | None]:
        """Draw the fault of the next message: (what to do before executing it, what to do
        with its reply). A message drawn for a fault always gets one: ``error`` on a message
        the instrument always answers becomes ``drop``; a reply fault on a command without
        reply becomes ``link`` (see :meth:`after`)."""
        kind = self.draw()
        if kind is None:
            return None, None
        if kind == "reset":
            self.injected["reset"] += 1
            return "reset", None
        if kind == "error":
            if can_refuse:
                self.injected["error"] += 1
                return "error", None
            kind = "drop"
        return None, kind

    def after(self, pending: str | None, has_reply: bool) -> str | None:
        """The fault applied to the reply (counted), given whether there is one."""
        if pending is None:
            return None
        if not has_reply and pending in _NEEDS_REPLY:
            pending = "link"
        self.injected[pending] += 1
        return pending

    def garble(self, body: bytes) -> bytes:
        """Random bytes as long as ``body`` (termination bytes avoided)."""
        n = max(len(body), 1)
        junk = self._rng.integers(32, 127, size=n, dtype=np.uint8).tobytes()
        return junk

    def cut(self, body: bytes) -> bytes:
        """The part of ``body`` sent before the link drops (at least one byte kept back)."""
        if len(body) < 2:
            return b""
        return body[: int(self._rng.integers(1, len(body)))]

    def summary(self) -> dict[str, int]:
        return {"messages": self.messages, **self.injected, "total": sum(self.injected.values())}


def plan_from_options(options: dict) -> FaultPlan | None:
    """The FaultPlan of an instrument's bench options (``sim_faults``), or None."""
    raw = options.get("sim_faults")
    if raw is None:
        return None
    if isinstance(raw, FaultPlan):
        return raw
    return FaultPlan(**raw)


__all__ = ["FAULT_KINDS", "FaultInjector", "FaultPlan", "plan_from_options"]
