"""Bench-file options for a stack builder, split between driver and simulator.

Why a module of its own: every stack builder reads the same two things from the bench file
(the ``programmer.options`` model and each instrument's ``options``), and a typo there must
fail the same way everywhere, naming the bench-file field. Keys starting with ``sim_`` are
the simulator's (relay settling, installed cards) and never reach a driver.
"""

from __future__ import annotations

from typing import Any, TypeVar

from memprog.core.errors import ConfigError

M = TypeVar("M")


def driver_options(name: str, options: dict[str, Any], allowed: set[str]) -> dict[str, Any]:
    """The options of instrument ``name`` meant for its driver (``sim_*`` keys dropped)."""
    out = {}
    for k, v in options.items():
        if k.startswith("sim_"):
            continue
        if k not in allowed:
            raise ConfigError(
                f"instruments.{name}.options.{k}", v, f"one of {sorted(allowed)} or a sim_* key"
            )
        out[k] = v
    return out


def programmer_options(model: type[M], options: dict[str, Any]) -> M:
    """``programmer.options`` validated by ``model``; errors name the bench-file field."""
    try:
        return model(**options)
    except ConfigError as exc:
        field = exc.parameter.removeprefix(f"{model.__name__}.")
        raise ConfigError(
            f"programmer.options.{field}", exc.value, exc.allowed, exc.detail
        ) from exc
