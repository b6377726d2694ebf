"""Wall time vs simulated bench time of one pulse + read cycle on the B1500A + WGFMU stack.

One cycle = a 200 ns write pulse (one ``WGFMU_execute`` of a trapezoid on the top channel,
0 V on the bottom one) then a 0.2 V, 10 us read window (one ``WGFMU_execute`` with an
averaged measure event on both channels, then ``getMeasureValues``): every call through the
WGFMU driver, the simulated instrument library (ctypes argument conversion included) and
the chip physics. The simulated time (execute overheads, sequence durations, data
transfers) comes from the chip clock.

Also reported: the same N pulses + reads played as ONE pattern (``pulse_read_train``),
and the wall/bench time of tuning the probed device to a target with the Alibart loop.
Run: ``python benchmarks/bench_b1500_wgfmu.py [--cycles N] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from memprog.bench.assembly import open_bench
from memprog.protocols.alibart import AlibartParams, tune_alibart

BENCH = Path(__file__).resolve().parents[1] / "benches" / "sim_b1500_wgfmu.yaml"


def measure(cycles: int = 300, tune: bool = True) -> dict:
    out: dict = {"bench": BENCH.name, "cycles": cycles}
    with open_bench(BENCH) as bench:
        p = bench.programmer
        for _ in range(10):  # warm-up
            p.pulse(0, 0, 0.6, 200e-9)
            p.read(0, 0)
        walls, sims = [], []
        for k in range(cycles):
            amp = 0.6 if k % 2 == 0 else -0.6  # sub-threshold: the device stays where it is
            w0, s0 = time.perf_counter(), bench.bench_time_s
            p.pulse(0, 0, amp, 200e-9)
            p.read(0, 0)
            walls.append(time.perf_counter() - w0)
            sims.append(bench.bench_time_s - s0)
        wall, sim = float(np.median(walls)), float(np.median(sims))
        out["cycle_wall_ms"] = wall * 1e3
        out["cycle_bench_ms"] = sim * 1e3
        out["wall_over_bench"] = wall / sim
        n = 50
        w0, s0 = time.perf_counter(), bench.bench_time_s
        p.pulse_read_train(0, 0, np.tile([0.6, -0.6], n // 2), 200e-9)
        out["train_cycles"] = n
        out["train_wall_ms_per_cycle"] = (time.perf_counter() - w0) / n * 1e3
        out["train_bench_ms_per_cycle"] = (bench.bench_time_s - s0) / n * 1e3
        if tune:
            params = AlibartParams(
                set_start_v=0.8, set_step_v=0.02, set_max_v=2.0, reset_start_v=1.1, reset_step_v=0.02,
                reset_max_v=2.4, width_s=200e-9, read_v=0.2, tolerance_rel=0.01, reads_in_band=10,
            )  # fmt: skip
            targets = [250.0, 100.0, 400.0, 180.0]
            w0, s0 = time.perf_counter(), bench.bench_time_s
            pulses = 0
            for t in targets:
                res = tune_alibart(p, [0], [0], [t], params=params)
                pulses += int(res.pulses[0])
                assert bool(res.converged[0])
            out["tune_targets"] = len(targets)
            out["tune_pulses"] = pulses
            out["tune_wall_s"] = time.perf_counter() - w0
            out["tune_bench_s"] = bench.bench_time_s - s0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=300)
    ap.add_argument("--no-tune", action="store_true")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()
    r = measure(a.cycles, tune=not a.no_tune)
    if a.json:
        print(json.dumps(r))
        return
    print(f"bench file: {r['bench']}")
    print(
        f"pulse+read cycle (median of {r['cycles']}): wall {r['cycle_wall_ms']:.3f} ms, "
        f"simulated bench {r['cycle_bench_ms']:.3f} ms, wall/bench {r['wall_over_bench']:.3f}"
    )
    print(
        f"as one pulse/read train of {r['train_cycles']}: wall {r['train_wall_ms_per_cycle']:.3f} ms "
        f"and bench {r['train_bench_ms_per_cycle']:.4f} ms per cycle"
    )
    if "tune_wall_s" in r:
        print(
            f"Alibart tuning to {r['tune_targets']} targets at 1 %: {r['tune_pulses']} pulses, "
            f"wall {r['tune_wall_s']:.3f} s, simulated bench {r['tune_bench_s']:.3f} s"
        )


if __name__ == "__main__":
    import os

    # throw-away simulated chips, fresh from their seed on every open: the figures do not
    # depend on what an earlier run left on a stored chip (sim_instruments/chip_state)
    os.environ.setdefault("MEMPROG_SIM_VOLATILE", "1")
    main()
