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
    state: dict[str, int | None] = {"signum": None}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
        if state["signum"] is not None:
            return  # already unwinding: let the safe state finish
        state["signum"] = signum
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Interrupted(signum)

    sigs = list(_CAUGHT) + ([signal.SIGINT] if sigint else [])
    previous = {s: signal.signal(s, handler) for s in sigs}
    try:
        yield state
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


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
]
