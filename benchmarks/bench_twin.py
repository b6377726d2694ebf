"""Does a twin behave like its chip? Hidden chips -> characterise -> calibrate -> a held-out job.

Each hidden chip is the HfO2 1T1R preset with fields changed (switching strength x0.5-1.5,
read noise x4, spreads, unresponsive fraction) that the fit never sees: it only reads the
characterize run stored from the chip. The held-out job (write-verify of a 32x32 block at
two targets, and a 64-level ladder on 16 cells) then runs on the hidden chip, on its twin
(another seed: another draw of devices) and on the uncalibrated preset (that seed too).
Targets (issue 23): the twin predicts pulses per cell within 15 % and the not-converged
fraction within 3 points (exit 1 if not), closer than the preset on both (reported: where
a hidden chip keeps a preset value, e.g. its dead-cell fraction, the preset ties there).

Run: python benchmarks/bench_twin.py [--quick]   (DirectChipProgrammer on SimChip)
     python benchmarks/bench_twin.py --passive [--devices 16]   (the TiO2 crossbar, recovery + an 8x8 block, 8 draws)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from memprog.bench.direct import DirectChipProgrammer
from memprog.core.device_params import DeviceParams
from memprog.core.presets import get_preset
from memprog.protocols.array import program_array
from memprog.protocols.characterize import CharacterizeParams, characterize
from memprog.protocols.ladder import run_ladder
from memprog.sim_instruments import SimChip
from memprog.store import VariabilityDB, open_store, stored_run
from memprog.twin.calibrate import calibrate

TECH = "hfo2_1t1r"
P = get_preset(TECH)
HIDDEN = {
    "weak x0.5": dict(set_kappa=0.5, reset_kappa=0.5, unresponsive_fraction=0.05),
    "strong x1.5, noisy x4": dict(set_kappa=1.5, reset_kappa=1.5, read_noise_abs_us=0.2, read_noise_rel=4e-5),
    "spreads, 20 % dead": dict(kappa_d2d=0.35, c2c_rel_std=0.35, g_bounds_d2d=0.08, v_threshold_d2d=0.08, unresponsive_fraction=0.2),
    "mixed x0.7 / x1.3": dict(set_kappa=0.7, reset_kappa=1.3, unresponsive_fraction=0.02, c2c_rel_std=0.1),
}
SIDE = 64


def job(params: DeviceParams, seed: int) -> dict[str, float]:
    """The held-out job on a fresh chip: a 32x32 block at two targets, a 64-level ladder."""
    chip = SimChip(SIDE, SIDE, params, seed=seed)
    prog = DirectChipProgrammer(chip)
    target = np.full((32, 32), 1000.0)
    target[:, 16:] = 3000.0
    res = program_array(prog, target)
    lv = np.linspace(200.0, 4000.0, 64)
    lad = [run_ladder(prog, 40 + k, 40, lv, protocol="alibart", tolerance_us=15.0) for k in range(16)]
    lad_pulses = float(np.mean([np.mean(r.pulses) for r in lad]))
    return {
        "pulses_per_cell": float(res.pulses.mean()),
        "not_converged": float(1 - res.converged.mean()),
        "ladder_pulses_per_level": lad_pulses,
    }


def characterise(params: DeviceParams, seed: int, url: str, chip_id: str, devices: int) -> None:
    chip = SimChip(SIDE, SIDE, params, seed=seed)
    s = open_store(url)
    with stored_run(s, kind="characterize", chip_id=chip_id, technology=TECH, quiet=True) as run:
        characterize(
            DirectChipProgrammer(chip),
            CharacterizeParams(devices=devices, levels=2, repeats=1, disturb_cells=2),
            sink=run.sink,
        )
    s.close()


def main(quick: bool = False) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="bench_twin_"))
    url = f"sqlite:///{tmp / 'twin.sqlite'}"
    fields = ["set_kappa", "reset_kappa", "kappa_d2d", "c2c_rel_std", "g_bounds_d2d", "v_threshold_d2d",
              "read_noise_abs_us", "unresponsive_fraction", "v_set_threshold_v", "g_max_us", "relax_step_mean"]  # fmt: skip
    ok_all = True
    rows = []
    for i, (name, hid) in enumerate(HIDDEN.items()):
        if quick and i > 1:
            break
        true = DeviceParams(**{**P.model_dump(), **hid})
        cid = f"HIDDEN-{i}"
        t0 = time.perf_counter()
        characterise(true, 100 + i, url, cid, devices=64)
        res = calibrate(VariabilityDB(url, chip_id=cid), cid)
        twin = DeviceParams(**{**P.model_dump(), **res.sim_params()})
        print(f"\n## {name}  (characterise + calibrate {time.perf_counter() - t0:.1f} s)")
        print(f"{'field':24} {'true':>10} {'fitted':>10} {'± std':>9} {'preset':>10}")
        for f in fields:
            fit = res.fitted.get(f)
            fv = "kept" if fit is None else f"{fit.value:.4g}"
            sd = "" if fit is None or fit.std is None else f"{fit.std:.2g}"
            print(f"{f:24} {getattr(true, f):>10.4g} {fv:>10} {sd:>9} {getattr(P, f):>10.4g}")
        h, t, p = job(true, 7), job(twin, 8), job(P, 8)
        e_t = abs(t["pulses_per_cell"] / h["pulses_per_cell"] - 1)
        e_p = abs(p["pulses_per_cell"] / h["pulses_per_cell"] - 1)
        n_t = abs(t["not_converged"] - h["not_converged"]) * 100
        n_p = abs(p["not_converged"] - h["not_converged"]) * 100
        ok = e_t <= 0.15 and n_t <= 3
        beats = e_t <= e_p and n_t <= n_p
        ok_all &= ok
        rows.append((name, h, t, p, e_t, e_p, n_t, n_p, ok, beats))
    print("\n## held-out job: hidden chip | twin (other seed) | preset")
    print(f"{'chip':24} {'pulses/cell h/t/p':>24} {'err twin/preset':>16} {'not conv % h/t/p':>20} {'pts twin/preset':>16} {'ladder p/level h/t/p':>22} targets  beats-preset")
    for name, h, t, p, e_t, e_p, n_t, n_p, ok, beats in rows:
        print(
            f"{name:24} {h['pulses_per_cell']:7.1f}/{t['pulses_per_cell']:6.1f}/{p['pulses_per_cell']:6.1f}  "
            f"{100 * e_t:6.1f}%/{100 * e_p:5.1f}%  "
            f"{100 * h['not_converged']:6.1f}/{100 * t['not_converged']:5.1f}/{100 * p['not_converged']:5.1f}  "
            f"{n_t:6.1f}/{n_p:5.1f}  "
            f"{h['ladder_pulses_per_level']:6.1f}/{t['ladder_pulses_per_level']:6.1f}/{p['ladder_pulses_per_level']:6.1f}  {'yes' if ok else 'NO':7}  {'yes' if beats else 'no'}"
        )
    return 0 if ok_all else 1


def _cells_own(chip: SimChip, resp: pd.DataFrame, side: int) -> dict[str, float]:
    """What the characterised cells themselves hold (the simulator's draw, read here only to
    score the fit, never by it): their mean threshold and median strength, their spreads (SET and
    RESET pooled, as the simulator draws both with one spread). A fit of 16 cells can at
    best recover these, not the chip's population values."""
    rc = resp[["row", "col"]].drop_duplicates().to_numpy()
    idx = rc[:, 0] * side + rc[:, 1]
    cells = {"v_set_threshold_v": chip.v_set_th, "v_reset_threshold_v": chip.v_reset_th,
             "set_kappa": chip.set_kappa, "reset_kappa": chip.reset_kappa}  # fmt: skip
    # thresholds: their mean (the simulator spreads them normally about the chip's; the fit
    # estimates that mean); strengths: their median (as the fit)
    out = {k: float(np.mean(v[idx]) if "threshold" in k else np.median(v[idx])) for k, v in cells.items()}

    def spread(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.sqrt(np.mean([(np.std(x[idx], ddof=1) / np.mean(x[idx])) ** 2 for x in (a, b)])))

    out["v_threshold_d2d"] = spread(chip.v_set_th, chip.v_reset_th)
    out["kappa_d2d"] = spread(chip.set_kappa, chip.reset_kappa)
    return out


PASSIVE = {
    "TiO2 x0.7 / x1.3": dict(set_kappa=0.7, reset_kappa=1.3),
    "TiO2 x1.5, 3 % HRS-stuck": dict(set_kappa=1.5, reset_kappa=1.5, stuck_hrs_fraction=0.03),
}
PASSIVE_SEEDS = 8  # [choice] job draws per chip: one 8x8 draw spreads its pulses/cell by ~12 %


def passive(seeds: int = PASSIVE_SEEDS, devices: int = 16) -> int:
    """The passive TiO2 crossbar (V/3, serial): a 16x16 chip, an 8x8 block at 150 / 300 µS.

    Why several draws: the block is 64 cells (a serial stack pulses one cell at a time), and
    one draw of 64 cells moves its pulses per cell by ~12 % (which cells are stuck, how
    strong the few slowest are): the hidden chip's own parameters on another seed miss
    their first draw by up to 16 %. One draw against one draw measures the draw, not the
    twin, so each job is the mean over ``seeds`` chips (hidden: seeds 7.., twin and preset:
    seeds 100..), given with its standard error; "same params" is the hidden chip's own
    parameters on the twin's seeds: what a perfect twin would score; "cells' own" the twin
    with the sampled cells' own thresholds, strengths and spreads: what a perfect fit of
    the characterised cells would score.
    """
    tech, side = "tio2_passive", 16
    pp = get_preset(tech)
    tmp = Path(tempfile.mkdtemp(prefix="bench_twin_p_"))
    url = f"sqlite:///{tmp / 'twin.sqlite'}"
    fields = ["set_kappa", "reset_kappa", "kappa_d2d", "c2c_rel_std", "v_set_threshold_v", "v_reset_threshold_v",
              "v_threshold_d2d", "overdrive_exponent", "width_exponent", "g_min_us", "g_max_us", "g_bounds_d2d",
              "stuck_hrs_fraction", "settled_spread_rel"]  # fmt: skip
    target = np.full((8, 8), 150.0)
    target[:, 4:] = 300.0

    def pjob(p: DeviceParams, seed0: int) -> tuple[float, float, float, float]:
        """Pulses per cell and not-converged fraction: means over the draws, and their SEs."""
        r = [program_array(DirectChipProgrammer(SimChip(side, side, p, seed=seed0 + k)), target) for k in range(seeds)]
        pulses = np.array([x.pulses.mean() for x in r])
        nc = np.array([1 - x.converged.mean() for x in r])
        se = np.sqrt(seeds)
        return float(pulses.mean()), float(pulses.std(ddof=1) / se), float(nc.mean()), float(nc.std(ddof=1) / se)

    ok_all = True
    for i, (name, hid) in enumerate(PASSIVE.items()):
        true = DeviceParams(**{**pp.model_dump(), **hid})
        cid = f"HIDDEN-P{i}"
        chip = SimChip(side, side, true, seed=200 + i)
        s = open_store(url)
        with stored_run(s, kind="characterize", chip_id=cid, technology=tech, quiet=True) as run:
            characterize(DirectChipProgrammer(chip), CharacterizeParams(devices=devices, levels=2, repeats=1, disturb_cells=2), sink=run.sink)
        s.close()
        res = calibrate(VariabilityDB(url, chip_id=cid), cid)
        twin = DeviceParams(**{**pp.model_dump(), **res.sim_params()})
        own = _cells_own(chip, VariabilityDB(url, chip_id=cid).raw("response"), side)
        print(f"\n## {name}  ({devices} cells characterised)")
        print(f"{'field':24} {'true':>10} {'cells own':>10} {'fitted':>10} {'± std':>9} {'preset':>10}")
        for f in fields:
            fit = res.fitted.get(f)
            fv = "kept" if fit is None else f"{fit.value:.4g}"
            sd = "" if fit is None or fit.std is None else f"{fit.std:.2g}"
            ov = f"{own[f]:.4g}" if f in own else ""
            print(f"{f:24} {getattr(true, f):>10.4g} {ov:>10} {fv:>10} {sd:>9} {getattr(pp, f):>10.4g}")
        # "cells' own": the twin with its thresholds, strengths and their spreads replaced by
        # the sampled cells' own: what a perfect fit of these cells would score (the rest of
        # the gap to "same params" is which cells were sampled, not the fit)
        cells = DeviceParams(**{**twin.model_dump(), **own})
        h, t, p0, same, c_own = pjob(true, 7), pjob(twin, 100), pjob(pp, 100), pjob(true, 100), pjob(cells, 100)
        print(f"8x8 block, mean ± SE over {seeds} draws: pulses/cell | not converged %")
        for label, (pm, ps, nm, ns) in (("hidden", h), ("twin", t), ("preset", p0), ("same params", same), ("cells' own", c_own)):
            print(f"  {label:12} {pm:6.1f} ± {ps:4.1f} ({100 * (pm / h[0] - 1):+6.1f} %)   {100 * nm:5.1f} ± {100 * ns:4.1f} ({100 * (nm - h[2]):+5.1f} pts)")
        e_t, e_p = abs(t[0] / h[0] - 1), abs(p0[0] / h[0] - 1)
        n_t, n_p = abs(t[2] - h[2]) * 100, abs(p0[2] - h[2]) * 100
        ok = e_t <= 0.15 and n_t <= 3
        ok_all &= ok
        print(f"  targets (15 %, 3 pts): {'yes' if ok else 'NO'}; closer than the preset: pulses {'yes' if e_t <= e_p else 'no'}, not converged {'yes' if n_t <= n_p else 'no'}")
    return 0 if ok_all else 1


if __name__ == "__main__":
    n_dev = int(sys.argv[sys.argv.index("--devices") + 1]) if "--devices" in sys.argv else 16
    sys.exit(passive(devices=n_dev) if "--passive" in sys.argv else main("--quick" in sys.argv))
