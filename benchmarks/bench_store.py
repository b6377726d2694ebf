"""What storing a run costs: the 256x256 HfO2 64-level map job with and without the run store.

The job is ``bench_array_map.py``'s (sim_onchip bench, real driver, @memprog simulator).
Measures (issue 9 targets): the wall-time overhead of streaming every finished cell to a
:class:`~memprog.store.StoreSink` and storing the final per-cell results (<= 10 %), and the
time to store the job's pulse/read traces (<= 1 s). With ``--variability URL`` it also
prints the tables a ``memprog characterize`` run derived, beside seed 001's.
Run: ``python benchmarks/bench_store.py [--json] [--db URL] [--repeats N] [--variability URL]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from memprog import open_bench
from memprog.protocols.array import ArrayParams, program_array, random_level_map
from memprog.protocols.events import MemorySink
from memprog.store import VariabilityDB, mask_url, open_store, stored_run

BENCHES = Path(__file__).resolve().parents[1] / "benches"

# seed 001 (Drolet et al.): imprecision std (%) by level, mean offset, V/3 disturb table
SEED_IMPRECISION = {100: 0.63, 200: 0.57, 300: 0.50, 400: 0.44}
SEED_OFFSET_PCT = -0.589
SEED_DISTURB = {1: (-0.63, 8.2), 5: (None, 13.4), 13: (None, 16.5), 29: (-11.2, 22.6)}


def _job(store=None, trace_sink=None) -> tuple[float, float]:
    m = random_level_map(256, 256, 64, seed=1)
    with open_bench(BENCHES / "sim_onchip.yaml") as b:
        if store is None:
            t0 = time.perf_counter()
            program_array(b.programmer, m, ArrayParams(), sink=trace_sink)
            return time.perf_counter() - t0, 0.0
        t0 = time.perf_counter()
        with stored_run(store, kind="array", bench="sim_onchip", quiet=True) as run:
            timed = _Timed(run.sink)
            res = program_array(b.programmer, m, ArrayParams(), sink=timed)
            timed.record_results(res)
            t1 = time.perf_counter()
        dt = time.perf_counter() - t0
        timed.spent_s += dt - (t1 - t0)  # the final flush and finish_run
        assert len(store.cells(run.run_id)) == len(res)
        return dt, timed.spent_s


class _Timed:
    """Forwards to a StoreSink and adds up the wall time spent inside it."""

    def __init__(self, sink) -> None:
        self.sink, self.wants_trace, self.spent_s = sink, sink.wants_trace, 0.0

    def _call(self, name: str, arg) -> None:
        t = time.perf_counter()
        getattr(self.sink, name)(arg)
        self.spent_s += time.perf_counter() - t

    def record_event(self, e) -> None:  # noqa: D102
        self._call("record_event", e)

    def record_result(self, r) -> None:  # noqa: D102
        self._call("record_result", r)

    def record_results(self, r) -> None:  # noqa: D102
        self._call("record_results", r)


def _traces(store) -> dict:
    mem = MemorySink(trace=True)
    _job(trace_sink=mem)
    recs = [e for e in mem.events if e.get("event") in ("pulse", "read")]
    rid = store.start_run(kind="array", bench="sim_onchip")
    sink = store.sink(rid, trace=True, flush_s=3600)
    t0 = time.perf_counter()
    for e in recs:
        sink.record_event(e)
    sink.flush()
    dt = time.perf_counter() - t0
    rows = sum(len(e["rows"]) for e in recs)
    store.finish_run(rid, "complete")
    return {"trace_records": len(recs), "trace_rows": rows, "trace_store_s": dt}


def _variability(url: str) -> dict:
    v = VariabilityDB(url)
    imp = v.imprecision()
    fit = v.imprecision_fit()
    dist = v.disturb_table()
    out = {
        "imprecision": [
            {"level_us": float(r.level_us), "std_pct": float(r.std_pct),
             "seed_std_pct_at_level": float(fit["slope_pct_per_us"] * r.level_us + fit["intercept_pct"])}
            for r in imp.itertuples()
        ],  # fmt: skip
        "fit": fit,
        "fit_at_seed_levels": {g: fit["slope_pct_per_us"] * g + fit["intercept_pct"] for g in SEED_IMPRECISION},
        "seed_imprecision": SEED_IMPRECISION,
        "seed_offset_pct": SEED_OFFSET_PCT,
        "disturb": {int(r.later_writes): (float(r.mean_us), float(r.std_us)) for r in dist.itertuples()},
        "seed_disturb": SEED_DISTURB,
        "stuck_fractions": v.stuck_fractions(),
        "g_range_us": v.g_range_us(),
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--db", default=None, help="store URL (default: a temporary SQLite file)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variability", default=None, help="store URL holding a characterize run")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = a.db or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        store = open_store(url)
        base, stored, inside = [], [], []
        for k in range(a.repeats):  # alternate (and swap the order), so load hits both
            for which in ((0, 1) if k % 2 == 0 else (1, 0)):
                if which == 0:
                    base.append(_job()[0])
                else:
                    dt, spent = _job(store)
                    stored.append(dt)
                    inside.append(spent)
        out = {
            "db": mask_url(url),
            "cells": 65536,
            "job_wall_s_median": statistics.median(base),
            "job_with_store_wall_s_median": statistics.median(stored),
            "job_wall_s": base,
            "job_with_store_wall_s": stored,
        }
        out["store_overhead_pct"] = 100 * (out["job_with_store_wall_s_median"] / out["job_wall_s_median"] - 1)
        # the time spent inside the store (sink calls, final flush, finish) over the job's:
        # robust against load from other processes, which the difference of medians is not
        out["time_in_store_s_median"] = statistics.median(inside)
        out["time_in_store_pct"] = 100 * statistics.median(
            [s_ / (d_ - s_) for s_, d_ in zip(inside, stored, strict=True)]
        )
        out.update(_traces(store))
        out.update({"target_overhead_pct": 10.0, "target_trace_store_s": 1.0})
        store.close()
    if a.variability:
        out["variability"] = _variability(a.variability)
    if a.json:
        print(json.dumps(out))
        return
    print(
        f"256x256 64-level map job: {out['job_wall_s_median']:.3f} s wall without the store, "
        f"{out['job_with_store_wall_s_median']:.3f} s storing every cell ({out['store_overhead_pct']:+.1f} %; "
        f"time inside the store {out['time_in_store_s_median']:.3f} s = {out['time_in_store_pct']:.1f} % of the job, "
        f"target <= 10 %) [{out['db']}]; traces: {out['trace_rows']} rows in {out['trace_records']} records "
        f"stored in {out['trace_store_s']:.3f} s (target <= 1 s)"
    )
    if a.variability:
        v = out["variability"]
        print("imprecision std %:  level  ours(fit)  seed 001")
        for g, s in SEED_IMPRECISION.items():
            print(f"                   {g:5d}  {v['fit_at_seed_levels'][g]:9.3f}  {s:8.2f}")
        print(f"mean offset %: ours {v['fit']['offset_mean_pct']:+.3f}, seed {SEED_OFFSET_PCT:+.3f}")
        print("disturb (later writes: mean/std µS): ours | seed 001")
        for k, (m_, s_) in SEED_DISTURB.items():
            ours = v["disturb"].get(k)
            o = f"{ours[0]:+.2f}/{ours[1]:.2f}" if ours else "n/a"
            print(f"  {k:3d}: {o:>14} | {'' if m_ is None else f'{m_:+.2f}'}/{s_:.1f}")


if __name__ == "__main__":
    import os

    # throw-away simulated chips, fresh from their seed on every open: the figures do not
    # depend on what an earlier run left on a stored chip (sim_instruments/chip_state)
    os.environ.setdefault("MEMPROG_SIM_VOLATILE", "1")
    main()
