"""On-chip controller stack speed: driver -> @memprog VISA backend -> simulated controller -> chip.

Targets (issue 3): whole-array read <= 50 ms wall, one batched row pulse <= 2 ms wall. Also
measured: one VMM of 256 inputs, the single-cell pulse + read step of a write-verify ladder,
a pulse on all 65,536 cells with per-cell amplitudes and gates, and the on-chip 6-bit
programming of the 64-level block map. Each figure is the median over repeats, printed with
the simulated bench time the same operation costs on the (simulated) lab bench.

Run: ``python benchmarks/bench_onchip.py [--json] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import memprog

BENCH = Path(__file__).resolve().parents[1] / "benches" / "sim_onchip.yaml"


def _measure(bench: memprog.Bench, fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall time and median simulated bench time of ``fn`` (seconds)."""
    fn()  # warm up
    wall, sim = [], []
    for _ in range(repeats):
        s0 = bench.bench_time_s
        t0 = time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        sim.append(bench.bench_time_s - s0)
    return float(np.median(wall)), float(np.median(sim))


def measure(repeats: int = 20) -> dict:
    rng = np.random.default_rng(0)
    results: dict[str, dict] = {}
    with memprog.open_bench(BENCH) as bench:
        prog = bench.programmer
        ctrl = bench.instruments["controller"]
        row_cols = np.arange(256)
        row_amp = rng.uniform(1.0, 1.3, 256)
        row_gate = rng.uniform(0.8, 1.6, 256)
        all_r, all_c = np.divmod(np.arange(65536), 256)
        all_amp = rng.uniform(1.0, 1.3, 65536)
        all_gate = rng.uniform(0.8, 1.6, 65536)
        v_in = rng.uniform(-0.2, 0.2, 256)
        one_r, one_c = np.array([17]), np.array([42])

        def ladder_step() -> None:
            prog.pulse(one_r, one_c, np.array([1.0]), 100e-9, gate_v=np.array([1.2]))
            prog.read(one_r, one_c)

        cases = {
            "whole_array_read": (lambda: prog.read_array(), 50.0),
            "row_pulse_256_cells": (
                lambda: prog.pulse(np.full(256, 5), row_cols, row_amp, 100e-9, gate_v=row_gate),
                2.0,
            ),
            "vmm_256_inputs": (lambda: ctrl.vmm(v_in), None),
            "ladder_step_pulse_and_read_1_cell": (ladder_step, None),
            "array_pulse_65536_cells": (
                lambda: prog.pulse(all_r, all_c, all_amp, 100e-9, gate_v=all_gate),
                None,
            ),
        }
        for name, (fn, target_ms) in cases.items():
            wall, sim = _measure(bench, fn, repeats)
            results[name] = {
                "wall_ms": wall * 1e3,
                "bench_ms": sim * 1e3,
                "target_wall_ms": target_ms,
            }
        pattern = np.arange(64, dtype=np.uint8).reshape(8, 8).repeat(32, axis=0).repeat(32, axis=1)
        wall, sim = _measure(bench, lambda: ctrl.program_levels(pattern), max(2, repeats // 10))
        results["onchip_6bit_program_64_blocks"] = {
            "wall_ms": wall * 1e3,
            "bench_ms": sim * 1e3,
            "target_wall_ms": None,
        }
    return {"bench": BENCH.name, "repeats": repeats, "results": results}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    res = measure(args.repeats)
    if args.json:
        print(json.dumps(res))
        return
    print(
        f"{res['bench']}: median of {res['repeats']} repeats "
        "(driver + VISA backend + simulated controller)"
    )
    print(f"{'operation':38s} {'wall ms':>9s} {'bench ms':>9s}  target")
    for name, r in res["results"].items():
        target = f"<= {r['target_wall_ms']:g} ms wall" if r["target_wall_ms"] else ""
        print(f"{name:38s} {r['wall_ms']:9.3f} {r['bench_ms']:9.3f}  {target}")


if __name__ == "__main__":
    import os

    # throw-away simulated chips, fresh from their seed on every open: the figures do not
    # depend on what an earlier run left on a stored chip (sim_instruments/chip_state)
    os.environ.setdefault("MEMPROG_SIM_VOLATILE", "1")
    main()
