"""The one JSON encoder of everything memprog prints or writes: strict, plain, null for "none".

Why one encoder, on the ground floor: scripts parse ``--json``, ``report.json`` and the
stored run summaries with strict parsers (``jq``, JavaScript's ``JSON.parse``, Go, Rust),
and those refuse ``NaN`` and ``Infinity`` — which Python's ``json`` writes by default for a
mean over no cells or a stuck cell's missing reading. Every command, the program job's
report, the run store and the dashboard encode through :func:`dumps`, so no document can
carry a non-finite number again. It imports nothing from memprog, so a library module
(a job, the store, the dashboard) can use it without importing the CLI.

Mapping: non-finite floats -> ``null``; numpy scalars and arrays -> Python numbers and
lists (their NaNs too); ``Path`` -> ``str``; datetimes -> ISO 8601; sets and tuples ->
lists; anything else -> ``TypeError`` (or ``str`` with ``fallback=str``, or a model's fields
and else its ``repr`` with ``fallback=lenient``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import Any

import numpy as np


def sanitize(x: Any, fallback: Callable[[Any], Any] | None = None, *, utc: bool = False) -> Any:
    """A copy of ``x`` made of plain JSON types, non-finite floats replaced by ``None``.

    Args:
        x: dicts, lists, tuples, numpy values, floats, ... (nested).
        fallback: what to do with an unknown type (default: ``TypeError`` naming it).
        utc: write every datetime in UTC, a naive one taken as UTC already (the store
            writes UTC without a zone; the dashboard shows it with one). A missing time
            (pandas' ``NaT``) becomes ``None`` either way.
    """
    if x is None or isinstance(x, bool | str):
        return x
    if isinstance(x, int):
        return int(x)
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Mapping):
        return {str(k): sanitize(v, fallback, utc=utc) for k, v in x.items()}
    if isinstance(x, list | tuple | set | frozenset):
        return [sanitize(v, fallback, utc=utc) for v in x]
    if isinstance(x, np.ndarray):
        if x.dtype.kind in "fc":
            a = x.astype(float)
            obj = a.astype(object)
            obj[~np.isfinite(a)] = None
            return sanitize(obj.tolist(), fallback, utc=utc)
        return sanitize(x.tolist(), fallback, utc=utc)
    if isinstance(x, np.generic):
        return sanitize(x.item(), fallback, utc=utc)
    if isinstance(x, PurePath):
        return str(x)
    if isinstance(x, datetime):
        if x != x:  # pandas' NaT, which compares unequal to itself as NaN does
            return None
        if hasattr(x, "to_pydatetime"):  # a pandas Timestamp: written as the datetime it holds
            x = x.to_pydatetime()
        if utc:
            x = x.replace(tzinfo=UTC) if x.tzinfo is None else x.astimezone(UTC)
        return x.isoformat()
    if isinstance(x, date):
        return x.isoformat()
    if fallback is not None:
        return sanitize(fallback(x), utc=utc)
    raise TypeError(f"{type(x).__name__} is not JSON-serialisable")


def lenient(x: Any) -> Any:
    """A ``fallback`` for records that must be written whatever they hold (a stored run's
    parameters and summary): a pydantic model as its fields, anything else as its ``repr``.

    Why: a run record that failed to encode would lose the run; an odd value in it is better
    kept as text than refused."""
    if hasattr(x, "model_dump"):
        return x.model_dump()
    return repr(x)


def dumps(x: Any, *, fallback: Callable[[Any], Any] | None = None, **kwargs: Any) -> str:
    """Strict JSON text of ``x`` (see :func:`sanitize`); ``allow_nan=False`` as a guard."""
    return json.dumps(sanitize(x, fallback), allow_nan=False, **kwargs)


def strict_loads(text: str | bytes) -> Any:
    """Parse JSON as a strict parser does: ``NaN``/``Infinity`` raise ``ValueError``."""

    def refuse(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


__all__ = ["dumps", "lenient", "sanitize", "strict_loads"]
