"""Simulated chip speed and size: one pulse on every cell plus one read of every cell.

Targets (issue 2): median ≤ 5 ms per iteration on a 256×256 array on 2 cores, and ≤ 50 MB
for one chip's state. Run: ``python benchmarks/bench_chip.py [--json]``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from memprog.sim_instruments import SimChip


def measure(rows: int = 256, cols: int = 256, repeats: int = 50, technology: str = "hfo2_1t1r") -> dict:
    chip = SimChip(rows, cols, technology, seed=0)
    r, c = np.divmod(np.arange(rows * cols), cols)
    gate = 1.4 if chip.params.cell_type == "1t1r" else None
    times = []
    for k in range(repeats + 5):
        amp = 1.2 if k % 2 == 0 else -1.2
        t0 = time.perf_counter()
        chip.pulse(r, c, amp, 100e-9, gate_v=gate)
        chip.read(r, c)
        times.append(time.perf_counter() - t0)
    times = np.array(times[5:])
    return {
        "array": f"{rows}x{cols}",
        "technology": technology,
        "median_ms_per_pulse_and_read": float(np.median(times) * 1e3),
        "p90_ms": float(np.percentile(times, 90) * 1e3),
        "state_mb": chip.state_nbytes() / 1e6,
        "target_ms": 5.0,
        "target_mb": 50.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    res = measure(repeats=args.repeats)
    if args.json:
        print(json.dumps(res))
    else:
        print(
            f"{res['array']} {res['technology']}: median {res['median_ms_per_pulse_and_read']:.2f} ms "
            f"(p90 {res['p90_ms']:.2f} ms) per pulse+read of every cell; state {res['state_mb']:.1f} MB"
        )


if __name__ == "__main__":
    main()
