"""TuneResult and the event sinks (pure data; no backend)."""

from __future__ import annotations

import json

import numpy as np

from memprog.protocols.events import EventSink, EventsOnly, MemorySink, NullSink
from memprog.protocols.results import TuneResult, compose_flags


def _res(n: int = 3, **kw) -> TuneResult:
    base = dict(
        protocol="alibart",
        rows=np.arange(n),
        cols=np.zeros(n, dtype=int),
        target_us=np.full(n, 100.0),
        final_us=np.array([100.5, 98.0, 101.0])[:n],
        pulses=np.array([10, 20, 30])[:n],
        reads=np.array([15, 25, 35])[:n],
        converged=np.array([True, False, True])[:n],
        flags=np.array(["", "stuck", ""], dtype=object)[:n],
        tolerance_us=1.0,
        extra={"polarity_flips": np.array([1, 0, 2])[:n]},
        wall_s=0.5,
        bench_time_s=0.01,
    )
    base.update(kw)
    return TuneResult(**base)


def test_frame_and_summary():
    r = _res()
    df = r.to_frame()
    assert list(df.columns) == [
        "row",
        "col",
        "target_us",
        "final_us",
        "error_us",
        "tolerance_us",
        "pulses",
        "reads",
        "converged",
        "flags",
        "polarity_flips",
    ]
    assert df["error_us"].tolist() == [0.5, -2.0, 1.0]
    s = r.summary()
    json.dumps(s)  # JSON-ready
    assert s["cells"] == 3 and s["converged"] == 2 and s["within_tolerance"] == 2
    assert s["pulses_total"] == 60 and s["pulses_max"] == 30 and s["max_abs_error_us"] == 2.0
    assert s["flags"] == {"stuck": 1}
    assert s["max_abs_error_converged_us"] == 1.0
    assert r.has_flag("stuck").tolist() == [False, True, False]
    assert r.row_dict(1)["flags"] == "stuck" and r.row_dict(1)["polarity_flips"] == 0


def test_concat_and_subset():
    a, b = _res(), _res(2, rows=np.array([7, 8]), extra={})
    c = TuneResult.concat([a, b])
    assert len(c) == 5 and c.rows.tolist() == [0, 1, 2, 7, 8]
    assert np.isnan(c.extra["polarity_flips"][3:]).all()
    assert c.wall_s == 1.0 and c.bench_time_s == 0.02
    s = c.subset(c.converged)
    assert s.rows.tolist() == [0, 2, 7]


def test_flags_from_masks():
    f = compose_flags(
        {"stuck": np.array([1, 0, 1], bool), "pulse_budget": np.array([0, 0, 1], bool)}
    )
    assert f.tolist() == ["stuck", "", "stuck,pulse_budget"]


def test_sinks():
    m = MemorySink()
    assert isinstance(m, EventSink) and isinstance(NullSink(), EventSink)
    m.record_event({"event": "a"})
    m.record_result({"row": 1})
    e = EventsOnly(m)
    e.record_event({"event": "b"})
    e.record_result({"row": 2})
    assert [x["event"] for x in m.events] == ["a", "b"]
    assert m.results == [{"row": 1}]
    assert m.results_frame()["row"].tolist() == [1]
    assert not m.wants_trace and MemorySink(trace=True).wants_trace
