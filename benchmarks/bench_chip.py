"""Simulated chip speed and size: one pulse on every cell plus one read of every cell.

Targets: issue 2, median ≤ 5 ms per iteration on a 256×256 array on 2 cores and ≤ 50 MB for
one chip's state; issue 26, ≤ 80 ns per cell at 1024×1024 (median time / cells), so a fleet
of simulated chips is cheap. Reported per size: the wall-clock median and, because the
2-core machines are shared, the median CPU time of this process (what one chip costs a
fleet's core), and the load average while it ran.

Run: ``python benchmarks/bench_chip.py [--rows R --cols C] [--repeats N] [--json]``
(default: 256×256 and 1024×1024).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from memprog.sim_instruments import SimChip


def measure(rows: int = 256, cols: int = 256, repeats: int = 50, technology: str = "hfo2_1t1r") -> dict:
    chip = SimChip(rows, cols, technology, seed=0)
    r, c = np.divmod(np.arange(rows * cols), cols)
    gate = 1.4 if chip.params.cell_type == "1t1r" else None
    wall, cpu = [], []
    for k in range(repeats + 5):
        amp = 1.2 if k % 2 == 0 else -1.2
        t0, c0 = time.perf_counter(), time.process_time()
        chip.pulse(r, c, amp, 100e-9, gate_v=gate)
        chip.read(r, c)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    w, u = np.array(wall[5:]), np.array(cpu[5:])
    n = rows * cols
    return {
        "array": f"{rows}x{cols}",
        "technology": technology,
        "median_ms_per_pulse_and_read": float(np.median(w) * 1e3),
        "p90_ms": float(np.percentile(w, 90) * 1e3),
        "ns_per_cell": float(np.median(w) * 1e9 / n),
        "cpu_ns_per_cell": float(np.median(u) * 1e9 / n),
        "state_mb": chip.state_nbytes() / 1e6,
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "target_ms": 5.0,
        "target_mb": 50.0,
        "target_ns_per_cell_1024": 80.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rows", type=int, default=None, help="one size only (default: 256x256 and 1024x1024)")
    ap.add_argument("--cols", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None, help="default: 50 at 256x256, 15 above")
    args = ap.parse_args()
    if (args.rows is None) != (args.cols is None):
        ap.error("--rows and --cols go together")
    sizes = [(args.rows, args.cols)] if args.rows is not None else [(256, 256), (1024, 1024)]
    results = []
    for rows, cols in sizes:
        repeats = args.repeats or (50 if rows * cols <= 65536 else 15)
        results.append(measure(rows, cols, repeats=repeats))
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0]))
        return
    for res in results:
        print(
            f"{res['array']} {res['technology']}: median {res['median_ms_per_pulse_and_read']:.2f} ms "
            f"(p90 {res['p90_ms']:.2f} ms) per pulse+read of every cell = {res['ns_per_cell']:.1f} ns/cell "
            f"(CPU {res['cpu_ns_per_cell']:.1f} ns/cell); state {res['state_mb']:.1f} MB; "
            f"load {res['load_average_1min']}"
        )


if __name__ == "__main__":
    main()
