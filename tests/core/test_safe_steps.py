"""Safe state: every instrument is tried even when an earlier one fails."""

from __future__ import annotations

import pytest

from memprog.core.errors import InstrumentError
from memprog.core.safe_steps import run_safe_steps, try_safe_state


def test_every_step_runs_and_the_first_error_is_raised():
    done: list[str] = []

    def analyzer() -> None:
        done.append("analyzer")
        raise InstrumentError("k4200", -1, "timeout", "DV1")

    def matrix() -> None:
        done.append("matrix")
        raise RuntimeError("second")

    with pytest.raises(InstrumentError, match="timeout"):
        run_safe_steps(analyzer, matrix, lambda: done.append("wgfmu"))
    assert done == ["analyzer", "matrix", "wgfmu"]


def test_best_effort_safe_state_swallows_its_own_failure():
    calls: list[str] = []

    def broken() -> None:
        calls.append("tried")
        raise RuntimeError("instrument gone")

    assert try_safe_state(broken) is None  # the caller re-raises the error that made it call this
    assert calls == ["tried"]
    assert run_safe_steps() is None  # nothing to do is not an error
