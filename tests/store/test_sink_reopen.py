"""A run continued by a second sink (a fleet worker restarted after a kill) keeps one order
of events: the new sink numbers its events after the ones already stored."""

from __future__ import annotations

from memprog.store import open_store


def test_a_second_sink_on_a_run_numbers_its_events_after_the_first(tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    try:
        rid = store.start_run(kind="program")
        first = store.sink(rid)
        first.record_event({"event": "worker", "session": 1})
        first.record_event({"event": "chunk", "session": 1})
        first.close()
        second = store.sink(rid)
        second.record_event({"event": "worker", "session": 2})
        second.close()
        ev = store.events(rid)
        assert [e["session"] for e in ev] == [1, 1, 2]
        assert [e["seq"] for e in ev] == [0, 1, 2]
    finally:
        store.close()
