"""A program job in one file: weights (URL + pin), bench, protocol, test set, tolerances.

Why: an edge lab re-runs the same job on the next chip, and a reviewer wants to know exactly
what was programmed. ``memprog program --job JOB.yaml`` reads everything from one small
YAML file, validated completely (unknown keys, ranges, the pin's form, the bench file)
before anything is fetched or any instrument opened. Example::

    weights: https://models.example.org/digits/v3/net.pt
    sha256: 4f1c…e9                      # the file's SHA-256; a mismatch is refused
    bench: sim_onchip                    # a shipped bench name or a bench file
    protocol: alibart
    test_set: digits_test.npz            # a path (relative to this file) or a URL
    test_set_sha256: 9a0b…11
    accuracy_tolerance: 0.03             # chip accuracy may be 3 points below software

Relative paths are read relative to the job file, so a job folder can move as a whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from memprog.core.errors import ConfigError
from memprog.core.strict_yaml import load_yaml_file
from memprog.core.validation import MemprogModel
from memprog.jobs.fetch import DEFAULT_MAX_BYTES, check_sha256, is_url


class ProgramJob(MemprogModel):
    """Everything ``memprog program`` needs, as one validated record."""

    weights: str = Field(min_length=1, description="a weight file or map: a path or a URL")
    sha256: str | None = Field(default=None, description="the weights' SHA-256 (hex)")
    bench: str = Field(default="sim_onchip", min_length=1, description="a shipped bench name or a bench file")
    protocol: Literal["alibart", "feedforward", "denoise", "predictive"] = "alibart"
    test_set: str | None = Field(default=None, description="a .npz test set: a path or a URL")
    test_set_sha256: str | None = None
    accuracy_tolerance: float = Field(default=0.03, ge=0, le=1, description="fraction: 0.03 = 3 points")
    copies: int | None = Field(default=None, ge=1, le=2)
    settle_s: float | None = Field(default=None, ge=0, le=86_400)
    order: Literal["row-major", "column-major", "snake", "high-first", "low-first"] = "row-major"
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, gt=0, le=DEFAULT_MAX_BYTES)

    @field_validator("sha256", "test_set_sha256")
    @classmethod
    def _pin(cls, value: str | None) -> str | None:
        return check_sha256(value)


def load_job(path: str | Path) -> ProgramJob:
    """Read and validate a job file; relative local paths become relative to its folder."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("--job", str(p), "an existing job file (YAML)")
    data = load_yaml_file(p, what="job file")
    if not isinstance(data, dict):
        raise ConfigError("--job", str(p), "a YAML mapping (weights:, sha256:, bench:, …)")
    odd = [k for k in data if not isinstance(k, str)]
    if odd:
        raise ConfigError(f"{p.name}: key", odd[0], "field names (weights, sha256, bench, …)")
    try:
        job = ProgramJob(**data)
    except ConfigError as exc:
        raise ConfigError(f"{p.name}: {exc.parameter}", exc.value, exc.allowed, exc.detail) from None
    base = p.resolve().parent
    updates: dict[str, str] = {}
    for name in ("weights", "test_set"):
        value = getattr(job, name)
        if value is not None and not is_url(value) and not Path(value).is_absolute():
            updates[name] = str(base / value)
    bench = job.bench
    if (bench.endswith((".yaml", ".yml")) or "/" in bench) and not Path(bench).is_absolute():
        if (base / bench).is_file():
            updates["bench"] = str(base / bench)
    return job.model_copy(update=updates) if updates else job


__all__ = ["ProgramJob", "load_job"]
