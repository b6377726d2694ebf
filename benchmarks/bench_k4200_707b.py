"""Wall time of one select-pulse-read cycle through the simulated 4200A-SCS and 707B.

One cycle = route the cell for a V/3 write (707B), pulse it (4225-PMU), open, route it for a
read, read it at 0.2 V (SMU), open: every message through pyvisa, the ``@memprog`` backend,
both simulated instruments and the chip physics. The simulated bench time the cycle stands
for (relay settling, PMU execution, SMU integration, bus latency) comes from the chip clock.

Target (issue 4): wall / simulated < 1, i.e. the simulator is faster than the bench it
imitates. Also reports the wall time of tuning all 64 cells to 8 levels at 1 % with a
reference Alibart loop. Run: ``python benchmarks/bench_k4200_707b.py [--json]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from memprog.bench.assembly import open_bench

BENCH = Path(__file__).resolve().parents[1] / "benches" / "sim_k4200_707b.yaml"


def _tune_cell(p, r: int, c: int, target: float) -> int:
    v_set, v_reset, last, ok, pulses = 0.8, -1.1, 0, 0, 0
    while pulses < 500:
        g = float(p.read(r, c)[0])
        err = (g - target) / target
        if abs(err) <= 0.01:
            ok += 1
            if ok == 10:
                break
            continue
        ok = 0
        d = 1 if err < 0 else -1
        if d != last:
            v_set, v_reset = 0.8, -1.1
        last = d
        if d > 0:
            p.pulse(r, c, v_set, 200e-9)
            v_set = min(v_set + 0.02, 2.0)
        else:
            p.pulse(r, c, v_reset, 200e-9)
            v_reset = max(v_reset - 0.02, -2.4)
        pulses += 1
    return pulses


def measure(cycles: int = 200, tune: bool = True) -> dict:
    out: dict = {"bench": BENCH.name}
    with open_bench(BENCH) as bench:
        p = bench.programmer
        rng = np.random.default_rng(0)
        cells = rng.integers(0, 8, size=(cycles + 10, 2))
        walls, sims = [], []
        for k, (r, c) in enumerate(cells):
            amp = 0.6 if k % 2 == 0 else -0.6  # sub-threshold: the chip stays where it is
            w0, s0 = time.perf_counter(), bench.bench_time_s
            p.pulse(int(r), int(c), amp, 200e-9)
            p.read(int(r), int(c))
            walls.append(time.perf_counter() - w0)
            sims.append(bench.bench_time_s - s0)
        walls_a, sims_a = np.array(walls[10:]), np.array(sims[10:])
        out.update(
            cycle_wall_ms_median=float(np.median(walls_a) * 1e3),
            cycle_wall_ms_p90=float(np.percentile(walls_a, 90) * 1e3),
            cycle_sim_ms_median=float(np.median(sims_a) * 1e3),
            wall_over_sim=float(np.median(walls_a / sims_a)),
            target_wall_over_sim=1.0,
        )
    if tune:
        levels = np.linspace(100.0, 400.0, 8)
        with open_bench(BENCH) as bench:
            w0, s0 = time.perf_counter(), bench.bench_time_s
            pulses = sum(
                _tune_cell(bench.programmer, r, c, levels[(r + c) % 8])
                for r in range(8)
                for c in range(8)
            )
            out.update(
                tune64_wall_s=time.perf_counter() - w0,
                tune64_sim_s=bench.bench_time_s - s0,
                tune64_pulses=int(pulses),
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--cycles", type=int, default=200)
    ap.add_argument("--no-tune", action="store_true", help="skip the 64-cell tuning run")
    args = ap.parse_args()
    res = measure(args.cycles, tune=not args.no_tune)
    if args.json:
        print(json.dumps(res))
        return
    print(
        f"select-pulse-read cycle: wall {res['cycle_wall_ms_median']:.2f} ms median "
        f"(p90 {res['cycle_wall_ms_p90']:.2f} ms), "
        f"simulated bench {res['cycle_sim_ms_median']:.1f} ms, "
        f"wall/simulated {res['wall_over_sim']:.3f} (target < 1)"
    )
    if "tune64_wall_s" in res:
        print(
            f"64-cell tuning (8 levels, 1 %): wall {res['tune64_wall_s']:.2f} s for "
            f"{res['tune64_sim_s']:.1f} s of bench time, {res['tune64_pulses']} pulses"
        )


if __name__ == "__main__":
    import os

    # throw-away simulated chips, fresh from their seed on every open: the figures do not
    # depend on what an earlier run left on a stored chip (sim_instruments/chip_state)
    os.environ.setdefault("MEMPROG_SIM_VOLATILE", "1")
    main()
