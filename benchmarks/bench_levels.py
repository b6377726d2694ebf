"""The level ladders: Rao 2023 Fig. 1g (2,048 HfO2 levels) and Diao 2025 (512 TiO2-x states).

Runs through the on-chip bench (``benches/sim_onchip.yaml``: real driver, protocol v1, the
@memprog simulator) unless ``--direct`` (DirectChipProgrammer straight onto the chip) is
given. Prints, per run: levels attempted, levels whose every verification read is within
the tolerance, max error, pulses per level, wall time and simulated bench time.

Targets (issue 6): 2,048 levels 50-4,144 µS at 2 µS, every verification read within ±1 µS
with denoising, a measurable fraction failing without it, whole ladder <= 10 s wall on 2
cores; >= 512 distinguishable TiO2-x states with feedforward at <= half Alibart's pulses
per level. Run: ``python benchmarks/bench_levels.py [--json] [--direct] [--quick]
[--protocol P] [--technology T]`` (the last two keep only the matching runs, e.g. the
2,048-level Alibart control: ``--protocol alibart --technology hfo2_1t1r``).

Issue 10: every level is verified after the technology's settle (5 s of bench time per level,
re-tuned if it relaxed out), so the figures are the ones that stay and the bench time is
honest (hours for 2,048 levels). TiO2-x runs with its sourced read noise (6 nA at 0.2 V),
RTN and relaxation on; a state counts when its averaged verification is within half a
spacing (criterion ``mean``); one more feedforward run at 3x the preset's read noise.

Issue 25: the control runs include Alibart's 2,048-level HfO2 ladder (no denoising: Rao's
contrast, some levels must fail); each run prints its wall per level and, on the bench,
how its bench time splits into settle waits and the rest (pulses, reads, the link). Most of
that ladder's wall was the simulator computing its averaged reads one read at a time; a
burst is now one array operation (sim_instruments/chip_burst, bit for bit the same reads).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from memprog import open_bench
from memprog.bench.direct import DirectChipProgrammer
from memprog.protocols.ladder import ladder_levels, run_ladder
from memprog.sim_instruments import SimChip

BENCHES = Path(__file__).resolve().parents[1] / "benches"


def _run(
    bench: str,
    technology: str,
    levels: np.ndarray,
    protocol: str,
    tol: float,
    direct: bool,
    criterion: str = "every-read",
    noise_x: float = 1.0,
) -> dict:
    kw = {"protocol": protocol, "tolerance_us": tol, "criterion": criterion}
    if direct:
        chip = SimChip(4, 4, technology, seed=2023)
        _scale_noise(chip, noise_x)
        r, c = divmod(int(np.flatnonzero(chip.working_mask.ravel())[0]), 4)
        s = run_ladder(DirectChipProgrammer(chip), r, c, levels, **kw).summary()
        s["backend"] = "DirectChipProgrammer"
    else:
        with open_bench(BENCHES / bench) as b:
            _scale_noise(b.sim_chip, noise_x)  # the chip, not the protocol, is noisier
            s = run_ladder(b.programmer, 0, 0, levels, **kw).summary()
        s["backend"] = f"open_bench({bench})"
    s["read_noise_x"] = noise_x
    s["wall_per_level_ms"] = 1e3 * s["wall_s"] / max(s["levels_attempted"], 1)
    # every level settles once, and once more per re-tune: the rest is the protocol's own
    settles = s["levels_attempted"] + s["settle_retunes"]
    s["settle_wait_s"] = settles * s["settle_s"]
    if s["bench_time_s"] is not None:
        s["bench_other_s"] = s["bench_time_s"] - s["settle_wait_s"]
    return s


def _scale_noise(chip: SimChip, k: float) -> None:
    if k != 1.0:
        p = chip.params
        chip.params = p.model_copy(
            update={"read_noise_abs_us": k * p.read_noise_abs_us, "read_noise_rel": k * p.read_noise_rel}
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--direct", action="store_true", help="DirectChipProgrammer instead of the bench"
    )
    ap.add_argument(
        "--quick", action="store_true", help="skip the control runs (no denoise, Alibart)"
    )
    ap.add_argument("--protocol", help="only the runs of this protocol (e.g. alibart)")
    ap.add_argument("--technology", help="only the runs of this technology (e.g. hfo2_1t1r)")
    a = ap.parse_args()
    hf = ladder_levels(50.0, 2.0, 2048)
    step = 80.0 / 511
    tx = ladder_levels(420.0, step, 512)
    runs = [("sim_onchip.yaml", "hfo2_1t1r", hf, "denoise", 1.0)]
    if not a.quick:
        runs.append(("sim_onchip.yaml", "hfo2_1t1r", hf, "denoise-off", 1.0))
        runs.append(("sim_onchip.yaml", "hfo2_1t1r", hf, "alibart", 1.0))
    ff = ("sim_onchip_tio2x.yaml", "tio2x_feedforward", tx, "feedforward", step / 2)
    runs.append((*ff, "mean"))
    if not a.quick:
        runs.append(("sim_onchip_tio2x.yaml", "tio2x_feedforward", tx, "alibart", step / 2, "mean"))
    runs.append((*ff, "mean", 3.0))
    runs = [
        r for r in runs
        if a.protocol in (None, r[3]) and a.technology in (None, r[1])
    ]
    if not runs:
        ap.error(f"no run of protocol {a.protocol!r} and technology {a.technology!r}")
    out = [dict(_run(*r[:5], a.direct, *r[5:]), technology=r[1]) for r in runs]
    if a.json:
        print(json.dumps(out))
        return
    for s in out:
        print(
            f"{s['technology']:18s} {s['protocol']:12s} {s['levels_within_tolerance']:5d}/{s['levels_attempted']:<5d} "
            f"within ±{s['tolerance_us']:.3g} µS  max err {s['max_error_us']:.3f} µS  "
            f"pulses/level {s['pulses_per_level']:.2f} (+{s['setup_pulses']} setup)  "
            f"wall {s['wall_s']:.2f} s ({s['wall_per_level_ms']:.2f} ms/level)  "
            f"bench {s['bench_time_s']:.1f} s (settle waits {s['settle_wait_s']:.0f} s)  settle {s['settle_s']:g} s "
            f"({s['settle_retunes']} re-tuned)  {s['criterion']}  noise x{s['read_noise_x']:g}  "
            f"[{s['backend']}]"
        )


if __name__ == "__main__":
    import os

    # throw-away simulated chips, fresh from their seed on every open: the figures do not
    # depend on what an earlier run left on a stored chip (sim_instruments/chip_state)
    os.environ.setdefault("MEMPROG_SIM_VOLATILE", "1")
    main()
