"""Validated parameter models shared by every layer.

Every parameter set in memprog (device physics, safety limits, protocol settings,
bench files) is a frozen pydantic model. Validation happens at construction and a
failure is turned into :class:`memprog.core.errors.ConfigError` naming the parameter, the
offending value and the allowed range, so nothing is ever clipped silently.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from memprog.core.errors import ConfigError

_CONSTRAINT_WORDS = {
    "greater_than": "> {gt}",
    "greater_than_equal": ">= {ge}",
    "less_than": "< {lt}",
    "less_than_equal": "<= {le}",
    "finite_number": "a finite number",
}


def _allowed_from_error(err: dict[str, Any]) -> str:
    ctx = err.get("ctx") or {}
    template = _CONSTRAINT_WORDS.get(err.get("type", ""))
    if template:
        try:
            return template.format(**ctx)
        except KeyError:
            pass
    return err.get("msg", "")


def config_error_from(exc: ValidationError, model: str) -> ConfigError:
    """Turn the first pydantic error into a ConfigError with parameter, value, range.

    An unknown key comes first: a misspelled ``set_vmax`` also makes ``set_v_max`` missing,
    and the unknown key (with the closest known name) is what the user must fix.
    """
    errs = exc.errors()
    extra = [e for e in errs if e.get("type") == "extra_forbidden"]
    if extra:
        e = extra[0]
        loc = tuple(e.get("loc", ()))
        missing = [str(m["loc"][-1]) for m in errs if m.get("type") == "missing" and tuple(m["loc"][:-1]) == loc[:-1]]
        close = difflib.get_close_matches(str(loc[-1]), missing, n=1) if loc else []
        hint = f"did you mean {close[0]!r}?" if close else "remove it or check its spelling"
        name = ".".join(str(p) for p in loc)
        return ConfigError(f"{model}.{name}", e.get("input"), "", f"unknown key; {hint}")
    err = errs[0]
    loc = ".".join(str(p) for p in err.get("loc", ())) or model
    inner = (err.get("ctx") or {}).get("error")
    if isinstance(inner, ConfigError):
        # a nested model or validator already explained itself: keep its words, add the path
        name = inner.parameter
        head, _, rest = name.partition(".")
        if rest and head[:1].isupper():
            name = rest
        if loc != model and not name.startswith(loc):
            name = f"{loc}.{name}"
        return ConfigError(f"{model}.{name}", inner.value, inner.allowed, inner.detail)
    detail = "" if err.get("type", "").startswith(("greater", "less")) else err.get("msg", "")
    allowed = _allowed_from_error(err)
    if detail == allowed:
        detail = ""
    ce = ConfigError(f"{model}.{loc}" if loc != model else model, err.get("input"), allowed, detail)
    return ce


class MemprogModel(BaseModel):
    """Frozen, strict base model whose validation errors are ConfigErrors."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error_from(exc, type(self).__name__) from exc


def require_finite(name: str, value: Any) -> np.ndarray:
    """Return ``value`` as a float array, refusing NaN and inf with a ConfigError."""
    if type(value) is float or type(value) is int:  # a Python scalar: no array checks needed
        if math.isfinite(value):
            return np.array(value, dtype=float)
        raise ConfigError(name, value, "a finite number")
    arr = np.asarray(value, dtype=float)
    if not np.isfinite(arr).all():
        bad = arr[~np.isfinite(arr)].ravel()[0] if arr.ndim else float(arr)
        raise ConfigError(name, bad, "a finite number")
    return arr


def require_range(name: str, value: Any, lo: float, hi: float, unit: str = "") -> np.ndarray:
    """Return ``value`` as a float array after checking ``lo <= value <= hi`` everywhere."""
    arr = require_finite(name, value)
    bad = (arr < lo) | (arr > hi)
    if np.any(bad):
        first = arr[bad].ravel()[0] if arr.ndim else float(arr)
        u = f" {unit}" if unit else ""
        raise ConfigError(name, float(first), f"[{lo:g}, {hi:g}]{u}")
    return arr


def require_positive(name: str, value: Any, unit: str = "") -> np.ndarray:
    """Return ``value`` as a float array after checking it is finite and > 0."""
    if type(value) is float and math.isfinite(value) and value > 0:  # the usual scalar
        return np.array(value)
    arr = require_finite(name, value)
    if np.any(arr <= 0):
        first = arr[arr <= 0].ravel()[0] if arr.ndim else float(arr)
        u = f" {unit}" if unit else ""
        raise ConfigError(name, float(first), f"> 0{u}")
    return arr


__all__ = [
    "MemprogModel",
    "config_error_from",
    "require_finite",
    "require_range",
    "require_positive",
]
