"""The level ladders: Rao 2023 Fig. 1g (2,048 HfO2 levels) and Diao 2025 (512 TiO2-x states).

Runs through the on-chip bench (``benches/sim_onchip.yaml``: real driver, protocol v1, the
@memprog simulator) unless ``--direct`` (DirectChipProgrammer straight onto the chip) is
given. Prints, per run: levels attempted, levels whose every verification read is within
the tolerance, max error, pulses per level, wall time and simulated bench time.

Targets (issue 6): 2,048 levels 50-4,144 µS at 2 µS, every verification read within ±1 µS
with denoising, a measurable fraction failing without it, whole ladder <= 10 s wall on 2
cores; >= 512 distinguishable TiO2-x states with feedforward at <= half Alibart's pulses
per level. Run: ``python benchmarks/bench_levels.py [--json] [--direct] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from memprog import open_bench
from memprog.direct import DirectChipProgrammer
from memprog.protocols.ladder import ladder_levels, run_ladder
from memprog.sim_instruments import SimChip

BENCHES = Path(__file__).resolve().parents[1] / "benches"


def _run(
    bench: str, technology: str, levels: np.ndarray, protocol: str, tol: float, direct: bool
) -> dict:
    if direct:
        chip = SimChip(4, 4, technology, seed=2023)
        r, c = divmod(int(np.flatnonzero(chip.working_mask.ravel())[0]), 4)
        s = run_ladder(
            DirectChipProgrammer(chip), r, c, levels, protocol=protocol, tolerance_us=tol
        ).summary()
        s["backend"] = "DirectChipProgrammer"
        return s
    with open_bench(BENCHES / bench) as b:
        s = run_ladder(b.programmer, 0, 0, levels, protocol=protocol, tolerance_us=tol).summary()
    s["backend"] = f"open_bench({bench})"
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--direct", action="store_true", help="DirectChipProgrammer instead of the bench"
    )
    ap.add_argument(
        "--quick", action="store_true", help="skip the control runs (no denoise, Alibart)"
    )
    a = ap.parse_args()
    hf = ladder_levels(50.0, 2.0, 2048)
    step = 80.0 / 511
    tx = ladder_levels(420.0, step, 512)
    runs = [("sim_onchip.yaml", "hfo2_1t1r", hf, "denoise", 1.0)]
    if not a.quick:
        runs.append(("sim_onchip.yaml", "hfo2_1t1r", hf, "denoise-off", 1.0))
    runs.append(("sim_onchip_tio2x.yaml", "tio2x_feedforward", tx, "feedforward", step / 2))
    if not a.quick:
        runs.append(("sim_onchip_tio2x.yaml", "tio2x_feedforward", tx, "alibart", step / 2))
    out = [dict(_run(*r, direct=a.direct), technology=r[1]) for r in runs]
    if a.json:
        print(json.dumps(out))
        return
    for s in out:
        print(
            f"{s['technology']:18s} {s['protocol']:12s} {s['levels_within_tolerance']:5d}/{s['levels_attempted']:<5d} "
            f"within ±{s['tolerance_us']:.3g} µS  max err {s['max_error_us']:.3f} µS  "
            f"pulses/level {s['pulses_per_level']:.2f} (+{s['setup_pulses']} setup)  "
            f"wall {s['wall_s']:.2f} s  bench {s['bench_time_s']:.3f} s  [{s['backend']}]"
        )


if __name__ == "__main__":
    main()
