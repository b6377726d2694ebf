"""What a run's database rows may hold, and how Python values are written into them.

Why a module of its own: the store (run rows), the sink (event rows) and the run scope
share one vocabulary (run kinds and statuses, sample tables, trace events) and one way of
encoding values (strict JSON, UTC times, the bench file's hash, who ran it).
A reader of the database (the dashboard, a script) relies on exactly these.
"""

from __future__ import annotations

import getpass
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memprog.core.jsonout import dumps, lenient

RUN_STATUSES = ("running", "complete", "interrupted", "failed")
RUN_KINDS = ("tune", "array", "levels", "characterize", "program", "insitu", "train", "fleet")
SAMPLE_TABLES = ("imprecision", "disturb", "stuck", "rtn", "range", "response", "noise", "relax")
TRACE_EVENTS = ("pulse", "read")


def json_text(obj: Any) -> str:
    """``obj`` as strict JSON (NaN/inf -> null): a stored summary is read back by the
    dashboard and scripts, which must not meet a bare ``NaN``."""
    return dumps(obj, fallback=lenient)


def utc_now() -> datetime:
    """Now, in UTC (the store writes UTC; readers treat naive times as UTC)."""
    return datetime.now(UTC)


def iso(t: datetime | None) -> str | None:
    """A stored time as ISO 8601 with its UTC offset (None stays None)."""
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.isoformat()


def bench_hash(path: str | Path | None) -> str | None:
    """SHA-256 of the bench file a run used (None when there is none or it cannot be read):
    a later reader can tell whether the bench file changed since."""
    if path is None:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def operator_name() -> str | None:
    """The login name of who ran it, or None (some containers have none)."""
    try:
        return getpass.getuser()[:64]
    except Exception:  # noqa: BLE001 - no login name in some containers
        return None


__all__ = [
    "RUN_KINDS",
    "RUN_STATUSES",
    "SAMPLE_TABLES",
    "TRACE_EVENTS",
    "bench_hash",
    "iso",
    "json_text",
    "operator_name",
    "utc_now",
]
