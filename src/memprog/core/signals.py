"""Signals that end a pulsing command: turn SIGTERM and SIGHUP into an exception.

Why: Python's default for SIGTERM and SIGHUP is to die on the spot, skipping every
``finally`` and ``with`` exit, so the bench is never put in its safe state, the run store
keeps a run marked ``running`` and the finished cells buffered in memory are lost. Raising
:class:`Interrupted` instead unwinds the stack like Ctrl-C does (SIGINT already raises
``KeyboardInterrupt``): ``open_bench``'s exit zeroes the sources and opens the matrix, the
store marks the run ``interrupted`` after flushing its finished cells, and the command
exits with 128 + the signal number (130 SIGINT, 143 SIGTERM, 129 SIGHUP).

Only the first signal raises: a second one arriving while the stack unwinds (an impatient
``kill`` repeated, or the shell's SIGHUP after the SIGTERM) must not cut the safe state
short, so it is remembered and ignored.

Inside :func:`signals_deferred` (opening the bench) the first signal waits until the block
ends: a signal landing in the last instructions of ``open_bench`` would otherwise unwind
past a bench that is connected but not yet in anyone's hands, so nobody would make it safe.
A second signal there raises at once (a user who insists while a connection hangs).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

EXIT_OK = 0
EXIT_CELLS_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INSTRUMENT = 3


class Interrupted(BaseException):  # noqa: N818 - reads like KeyboardInterrupt, which it mirrors
    """A caught SIGTERM or SIGHUP (a BaseException, so ``except Exception`` lets it through).

    Attributes:
        signum: the signal number received.
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(f"interrupted by {signal_name(self.signum)}")

    @property
    def name(self) -> str:
        """``SIGTERM``, ``SIGHUP``..."""
        return signal_name(self.signum)


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15, ``signal 99`` for an unknown number."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def interrupt_signum(exc: BaseException) -> int | None:
    """The signal behind ``exc`` (SIGINT for KeyboardInterrupt), or None if it is not one."""
    if isinstance(exc, Interrupted):
        return exc.signum
    if isinstance(exc, KeyboardInterrupt):
        return int(signal.SIGINT)
    return None


def exit_code_for_signal(signum: int) -> int:
    """The shell's convention: 128 + signal number (130, 143, 129)."""
    return 128 + int(signum)


_ACTIVE: list[dict[str, int | None]] = []  # the states of the handle_signals blocks, innermost last

_CAUGHT = tuple(
    s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None
)


@contextmanager
def handle_signals(*, sigint: bool = True) -> Iterator[dict[str, int | None]]:
    """Within the block, SIGTERM/SIGHUP raise :class:`Interrupted`; SIGINT raises
    ``KeyboardInterrupt`` (once; later signals are ignored until the block ends).

    Yields a dict whose ``"signum"`` is the first signal received (None if none). Outside
    the main thread this does nothing (Python only delivers signals there).

    Args:
        sigint: also take over SIGINT so that a second Ctrl-C cannot cut the clean-up short.
    """
    state: dict[str, int | None] = {"signum": None, "defer": 0, "pending": None}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
        if state["signum"] is not None:
            return  # already unwinding: let the safe state finish
        if state["defer"] and state["pending"] is None:
            state["pending"] = signum  # raised when the deferring block ends
            return
        state["signum"] = signum
        raise _exception(signum)

    sigs = list(_CAUGHT) + ([signal.SIGINT] if sigint else [])
    previous = {s: signal.signal(s, handler) for s in sigs}
    _ACTIVE.append(state)
    try:
        yield state
    finally:
        _ACTIVE.remove(state)
        for s, h in previous.items():
            signal.signal(s, h)


def _exception(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Interrupted(signum)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold the first caught signal until the block ends, then raise it (see the module
    docstring); outside :func:`handle_signals`, or off the main thread, this does nothing."""
    if not _ACTIVE or threading.current_thread() is not threading.main_thread():
        yield
        return
    state = _ACTIVE[-1]
    state["defer"] = int(state["defer"] or 0) + 1
    try:
        yield
    finally:
        state["defer"] = int(state["defer"] or 0) - 1
    pending = state["pending"]
    if not state["defer"] and pending is not None and state["signum"] is None:
        state["pending"] = None
        state["signum"] = pending
        raise _exception(pending)


__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_CELLS_FAILED",
    "EXIT_INSTRUMENT",
    "EXIT_OK",
    "Interrupted",
    "exit_code_for_signal",
    "handle_signals",
    "interrupt_signum",
    "signal_name",
    "signals_deferred",
]
