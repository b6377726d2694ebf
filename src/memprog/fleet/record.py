"""A fleet job's record in the store: one ``fleet`` run and the chips' own runs.

Why one class for every fleet command: the program job, ``characterize`` and
``tune --map`` on a fleet record the same way — a ``fleet`` run holding the job (its summary
is the whole report), one run per chip created by the driver before the first pulse (so a
worker that dies leaves its cells in a run the restarted worker continues), lost workers
noted as events of the fleet run — and with no store URL nothing is recorded at all.
"""

from __future__ import annotations

from typing import Any

from memprog.core.jsonout import sanitize
from memprog.store import open_store


class FleetRecord:
    """The fleet run and its chips' runs in the store at ``db`` (none without a URL)."""

    def __init__(self, db: str | None) -> None:
        self.store = None if db is None else open_store(db)
        self.fleet_id: str | None = None

    def sqlite(self) -> bool:
        """Whether the store is an SQLite file (one host only)."""
        return self.store is not None and str(self.store.url).startswith("sqlite")

    def event(self, ev: dict[str, Any]) -> None:
        """An event of the fleet run (a lost worker, a chip done again)."""
        if self.store is not None and self.fleet_id is not None:
            sink = self.store.sink(self.fleet_id)
            sink.record_event(ev)
            sink.close()

    def finish(self, run_id: str | None, status: str, summary: dict[str, Any]) -> None:
        """End a run (the fleet's or a chip's) with its summary."""
        if self.store is not None and run_id is not None:
            self.store.finish_run(run_id, status, sanitize(summary, fallback=str))

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


__all__ = ["FleetRecord"]
