"""Alibart vs the predictive protocol on the random 64-level 256x256 map (issue 25).

Both run in the same process, each on a fresh simulated chip (the same seed), through the
on-chip bench (``benches/sim_onchip.yaml``: real driver, protocol v1, the @memprog
simulator): ``alibart`` as ``memprog tune --map`` runs it (the array job with the stack's
Alibart defaults, settle and re-verify included), ``predictive`` as
:func:`memprog.protocols.predictive.tune_predictive` on the same cells in the same order
and the same band (1 % of target, at least 3 µS). Figures per protocol: pulses per cell
(every cell counted, stuck ones included), the most pulses any cell got, bench time (the
simulated clock, settles included), protocol wall and wall with the bench open, and the
fraction of working cells whose true conductance is within the band after the protocol's
settle and after 1 h of retention (truth, and the reads of ``retention_check``). The numpy
floor (``../shared/floors/program_floor.py``) runs in the same process; its wall and the
ratio are printed.

Targets (issue 25): <= 8 pulses per cell, <= 8 s bench time, >= 99.9 % of working cells
within band after the settle and after 1 h, protocol wall <= 2.5 s and <= 2x the floor.
Run: ``python benchmarks/bench_predictive.py [--json] [--only predictive]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import runpy
import time
from pathlib import Path

import numpy as np

from memprog import open_bench
from memprog.protocols.alibart import alibart_defaults
from memprog.protocols.array import ArrayParams, program_array, random_level_map
from memprog.protocols.predictive import tune_predictive
from memprog.protocols.settle import retention_check

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benches" / "sim_onchip.yaml"
FLOOR = ROOT.parent / "shared" / "floors" / "program_floor.py"
TARGETS = {"pulses_per_cell": 8.0, "bench_time_s": 8.0, "within": 0.999, "wall_s": 2.5}


def _run(protocol: str, m: np.ndarray, retention_s: float) -> dict:
    t_open = time.perf_counter()
    with open_bench(BENCH) as b:
        prog, chip = b.programmer, b.sim_chip
        b0 = b.bench_time_s
        t0 = time.perf_counter()
        if protocol == "alibart":
            params = ArrayParams(
                protocol="alibart", alibart=alibart_defaults(prog.info, prog.limits)
            )
            res = program_array(prog, m, params)
        else:
            rr, cc = np.nonzero(np.isfinite(m))  # row-major, as the array job's default order
            res = tune_predictive(prog, rr, cc, m[rr, cc])
        wall = time.perf_counter() - t0
        bench_s = b.bench_time_s - b0
        working = chip.working_mask[res.rows, res.cols]
        true = chip.true_conductance_us()[res.rows, res.cols]
        within_settle = np.abs(true - res.target_us) <= res.tolerance_us
        rep = retention_check(
            prog, res.rows, res.cols, res.target_us, res.tolerance_us, [retention_s],
            whole_array=True, converged=res.converged,
        )[0]  # fmt: skip
        true = chip.true_conductance_us()[res.rows, res.cols]
        within_1h = np.abs(true - res.target_us) <= res.tolerance_us
    s = res.summary()
    return {
        "protocol": protocol,
        "cells": len(res),
        "working": int(working.sum()),
        "flagged_stuck": int(res.has_flag("stuck").sum()),
        "stuck_flagged_fraction_of_dead": float(res.has_flag("stuck")[~working].mean())
        if (~working).any()
        else None,
        "pulses_per_cell": float(res.pulses.mean()),
        "pulses_per_working_cell": float(res.pulses[working].mean()),
        "pulses_max": int(res.pulses.max()),
        "pulses_max_dead_cell": int(res.pulses[~working].max()) if (~working).any() else 0,
        "reads_per_cell": float(res.reads.mean()),
        "bench_time_s": float(bench_s),
        "protocol_wall_s": float(wall),
        "wall_s_with_bench_open": float(time.perf_counter() - t_open),
        "within_working_after_settle": float(within_settle[working].mean()),
        "out_of_band_working_after_settle": int((~within_settle & working).sum()),
        "within_working_after_retention": float(within_1h[working].mean()),
        "out_of_band_working_after_retention": int((~within_1h & working).sum()),
        "retention_read_within_converged": rep["fraction_within_converged"],
        "retention_s": retention_s,
        "flags": s["flags"],
    }


def _floor() -> dict:
    """Run the numpy floor in this process; its own wall (it prints it) and ours."""
    out = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(FLOOR), run_name="__main__")
    total = time.perf_counter() - t0
    m = re.search(r"wall ([0-9.]+) s", out.getvalue())
    return {
        "floor_wall_s": float(m.group(1)) if m else total,
        "floor_output": out.getvalue().strip(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only", choices=("alibart", "predictive"), default=None)
    ap.add_argument("--retention-s", type=float, default=3600.0)
    a = ap.parse_args()
    m = random_level_map(256, 256, 64, seed=1)
    protocols = [a.only] if a.only else ["alibart", "predictive"]
    rows = [_run(p, m, a.retention_s) for p in protocols]
    floor = _floor()
    for r in rows:
        r["wall_over_floor"] = r["protocol_wall_s"] / floor["floor_wall_s"]
        r["meets"] = {
            "pulses_per_cell": r["pulses_per_cell"] <= TARGETS["pulses_per_cell"],
            "bench_time_s": r["bench_time_s"] <= TARGETS["bench_time_s"],
            "within_after_settle": r["within_working_after_settle"] >= TARGETS["within"],
            "within_after_retention": r["within_working_after_retention"] >= TARGETS["within"],
            "wall_s": r["protocol_wall_s"] <= TARGETS["wall_s"],
            "wall_2x_floor": r["wall_over_floor"] <= 2.0,
        }
    out = {"map": "random 64-level 256x256 (seed 1), sim_onchip", "results": rows, **floor}
    if a.json:
        print(json.dumps(out))
        return
    head = (
        f"{'protocol':<11}{'pulses/cell':>12}{'max':>6}{'bench s':>9}{'wall s':>8}"
        f"{'x floor':>8}{'within@settle':>15}{'within@1h':>11}"
    )
    print(head)
    for r in rows:
        print(
            f"{r['protocol']:<11}{r['pulses_per_cell']:>12.2f}{r['pulses_max']:>6d}"
            f"{r['bench_time_s']:>9.2f}{r['protocol_wall_s']:>8.2f}{r['wall_over_floor']:>8.2f}"
            f"{r['within_working_after_settle'] * 100:>14.3f}%"
            f"{r['within_working_after_retention'] * 100:>10.3f}%"
        )
    print(f"numpy floor: {floor['floor_wall_s']:.2f} s ({floor['floor_output']})")
    for r in rows:
        miss = [k for k, ok in r["meets"].items() if not ok]
        print(f"{r['protocol']}: targets {'all met' if not miss else 'missed: ' + ', '.join(miss)}")


if __name__ == "__main__":
    # throw-away simulated chips, fresh from their seed on every open (same chip for both)
    os.environ.setdefault("MEMPROG_SIM_VOLATILE", "1")
    main()
