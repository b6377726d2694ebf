"""Bringing a stack to its safe state when several instruments must each be made safe.

Why a helper: a failure while zeroing one instrument (a timeout on the analyzer, say) must
never stop the next one (opening the matrix) from being tried; and after an error in a
measurement, a failure of the safe state itself must not hide the original error.
"""

from __future__ import annotations

from collections.abc import Callable


def run_safe_steps(*steps: Callable[[], object]) -> None:
    """Call every step, whatever the others do; then raise the first error, if any."""
    errors: list[Exception] = []
    for step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - every step must be tried
            errors.append(exc)
    if errors:
        raise errors[0]


def try_safe_state(safe_state: Callable[[], object]) -> None:
    """Best-effort safe state after another error (which is the one the caller re-raises)."""
    try:
        safe_state()
    except Exception:  # noqa: BLE001 - the original error matters more
        pass
