"""Robustness table (issue 10): the protocols on chips whose physics is not the preset's.

Rows: the preset; read noise x3 and x10; overdrive exponent 1.5 and 3; width exponent 0.3
and 0.8; cycle-to-cycle noise x0.5 and x2; relaxation off. Columns: Alibart and feedforward
on TiO2-x (``--levels`` states at Diao's spacing, a state counts when its averaged
verification is within half a spacing after the settle) and denoise on HfO2 (levels 2 µS
apart, every one of 5 reads within 1 µS after the settle), and predictive, which is not a
ladder protocol (it learns each cell from that cell's own first pulses, so its native task
is many unlearned cells landed once each): ``--levels`` cells of the same altered HfO2 chip
as a map, each at a different level of the random 64-level map (50-4,144 µS), one
lock-step batch, a level counting when the mean of 5 reads after its settle is within the
map's band (1 % of target, >= 3 µS); pulses per level = pulses per cell. Each cell: levels
achieved and pulses per level. Target: no protocol loses more than half its levels under
any single row.
No protocol reads a simulator parameter (``memprog.bench.robustness`` builds the altered chips;
the protocols only see reads). Run: ``python benchmarks/bench_robustness.py [--json]
[--levels N] [--rows NAME,...]`` (64 levels: a few minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import time

from memprog.bench.robustness import PROTOCOLS, ROW_NAMES, robustness_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--levels", type=int, default=64)
    ap.add_argument("--rows", default=",".join(ROW_NAMES))
    a = ap.parse_args()
    rows = tuple(r.strip() for r in a.rows.split(",") if r.strip())
    t0 = time.perf_counter()
    out = robustness_table(a.levels, rows)
    worst = min((d["levels_vs_preset"] for d in out if d["levels_vs_preset"] is not None), default=None)
    summary = {"rows": out, "levels": a.levels, "worst_levels_vs_preset": worst,
               "target_worst": 0.5, "wall_s": time.perf_counter() - t0}  # fmt: skip
    if a.json:
        print(json.dumps(summary))
        return
    head = "| row | " + " | ".join(f"{p}: levels, pulses/level" for p in PROTOCOLS) + " |"
    print(head)
    print("|---" * (len(PROTOCOLS) + 1) + "|")
    for r in rows:
        cells = []
        for p in PROTOCOLS:
            d = next(x for x in out if x["row"] == r and x["protocol"] == p)
            cells.append(f"{d['levels']}/{d['attempted']}, {d['pulses_per_level']:.2f}")
        print(f"| {r} | " + " | ".join(cells) + " |")
    print(f"worst row keeps {worst:.2f} of the preset's levels; wall {summary['wall_s']:.0f} s")
    print("predictive: a map of as many cells as levels on the row's HfO2 chip (not a ladder)")


if __name__ == "__main__":
    main()
