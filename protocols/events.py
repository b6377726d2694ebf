"""Where protocols stream what they do: the :class:`EventSink` protocol and two sinks.

A write-verify run on 65,536 cells must not keep its history only in memory, and a crash
half-way must not lose the cells already finished. So every protocol hands each finished
cell to :meth:`EventSink.record_result` the moment it finishes, and reports notable
moments (start, end, flagged cells, re-tunes, denoise rounds) to
:meth:`EventSink.record_event`. The run store plugs in here; :class:`MemorySink` keeps
everything in lists for tests and notebooks.

A sink that also has ``record_results(result)`` (the run store's) receives the cells that
finish together as one :class:`~memprog.protocols.results.TuneResult` instead of a dict per
cell (see :func:`wants_bulk`), and no ``cell_flagged`` event per failed cell (the flags are in
the result): storing 65,536 cells is then a few array operations.

Per-iteration pulse traces are bulky (one record per lock-step iteration, arrays of the
pulsed cells), so protocols only send them to sinks that ask: a sink whose
``wants_trace`` attribute is true also receives ``{"event": "pulse", ...}`` and
``{"event": "read", ...}`` records carrying numpy arrays.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class EventSink(Protocol):
    """Receives a protocol's events and per-cell results as they happen.

    Both methods get plain dicts (str keys; values are numbers, strings, or numpy arrays
    for trace records). A sink must not modify them and should return quickly.
    """

    def record_event(self, event: dict[str, Any]) -> None:
        """Record one event; ``event["event"]`` names its kind."""

    def record_result(self, row: dict[str, Any]) -> None:
        """Record the final result of one cell (a row of :meth:`TuneResult.to_frame`)."""


class NullSink:
    """Discards everything (the default when no sink is given)."""

    wants_trace = False

    def record_event(self, event: dict[str, Any]) -> None:  # noqa: D102
        pass

    def record_result(self, row: dict[str, Any]) -> None:  # noqa: D102
        pass


class MemorySink:
    """Keeps every event and result in lists, in arrival order.

    Args:
        trace: also receive the per-iteration ``pulse``/``read`` trace records.
    """

    def __init__(self, trace: bool = False) -> None:
        self.wants_trace = bool(trace)
        self.events: list[dict[str, Any]] = []
        self.results: list[dict[str, Any]] = []

    def record_event(self, event: dict[str, Any]) -> None:
        """Append ``event``."""
        self.events.append(event)

    def record_result(self, row: dict[str, Any]) -> None:
        """Append ``row``."""
        self.results.append(row)

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        """Every event whose ``"event"`` field is ``kind``."""
        return [e for e in self.events if e.get("event") == kind]

    def results_frame(self) -> Any:
        """The recorded results as a pandas DataFrame (one row per cell)."""
        import pandas as pd  # deferred: pandas (~0.4 s) loads only when a DataFrame is asked for

        return pd.DataFrame(self.results)


class EventsOnly:
    """Forwards events to ``sink`` but drops per-cell results (for nested protocols).

    A composite run (a ladder, an array job) reports its own per-item results; the
    protocols it calls inside still report their events through this wrapper.
    """

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self.wants_trace = wants_trace(sink)

    def record_event(self, event: dict[str, Any]) -> None:  # noqa: D102
        self.sink.record_event(event)

    def record_result(self, row: dict[str, Any]) -> None:  # noqa: D102
        pass


def sink_or_null(sink: EventSink | None) -> EventSink:
    """``sink``, or a :class:`NullSink` when None."""
    return NullSink() if sink is None else sink


def wants_trace(sink: EventSink) -> bool:
    """True when the sink asked for the bulky per-iteration trace records."""
    return bool(getattr(sink, "wants_trace", False))


def wants_bulk(sink: EventSink) -> bool:
    """True when the sink takes finished cells in bulk (``record_results(TuneResult)``)."""
    return callable(getattr(sink, "record_results", None))


__all__ = [
    "EventSink",
    "EventsOnly",
    "MemorySink",
    "NullSink",
    "sink_or_null",
    "wants_bulk",
    "wants_trace",
]
