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

Issue 25, the ladder's bench time (``--settle-from-relax``, also in the default set): the
chip is first characterised in the same session (``memprog characterize``'s procedures,
default settings: its relax table is one switching pulse on 8 random cells, read 0-10 s
after), the relaxation is fitted from those reads (protocols/settle_choice.py), and each
level then settles for what its own pulses moved the cell; every 64th level and the last
wait the technology's 5 s more and are read again (a lab's check of the shorter settle),
and the last level once more after 60 s. The characterisation's bench time is reported
apart (a lab pays it once per chip, not per ladder).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from memprog import open_bench
from memprog.bench.direct import DirectChipProgrammer
from memprog.protocols.characterize import CharacterizeParams, characterize
from memprog.protocols.events import MemorySink
from memprog.protocols.ladder import ladder_levels, run_ladder
from memprog.protocols.settle_choice import BUDGET_FRACTION, RelaxFit, fit_relax_samples
from memprog.sim_instruments import SimChip

BENCHES = Path(__file__).resolve().parents[1] / "benches"
VALIDATE_EVERY = 64  # [choice] 33 of 2,048 levels checked at the full settle
FINAL_WAIT_S = 60.0  # [choice] 60 time constants of the measured relaxation (~1 s)


def _measured_relax(programmer: object) -> RelaxFit:
    """Characterise the chip (default procedures) and fit its relax table."""
    sink = MemorySink()
    characterize(programmer, CharacterizeParams(), sink=sink)
    parts = [e["columns"] for e in sink.events_of("samples") if e.get("table") == "relax"]
    cols = {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}
    return fit_relax_samples(cols)


def _run(
    bench: str,
    technology: str,
    levels: np.ndarray,
    protocol: str,
    tol: float,
    direct: bool,
    criterion: str = "every-read",
    noise_x: float = 1.0,
    characterised: str = "",
) -> dict:
    """``characterised``: "" (a fresh chip, the technology's settle), "relax" (characterise
    first, each level's settle from the measured relaxation, validated) or "default" (the
    same, with the technology's settle: the validation's control)."""
    kw = {"protocol": protocol, "tolerance_us": tol, "criterion": criterion}
    if characterised:
        kw.update(validate_every=VALIDATE_EVERY, final_wait_s=FINAL_WAIT_S)
    if direct:
        chip = SimChip(4, 4, technology, seed=2023)
        _scale_noise(chip, noise_x)
        r, c = divmod(int(np.flatnonzero(chip.working_mask.ravel())[0]), 4)
        s = run_ladder(DirectChipProgrammer(chip), r, c, levels, **kw).summary()
        s["backend"] = "DirectChipProgrammer"
    else:
        with open_bench(BENCHES / bench) as b:
            _scale_noise(b.sim_chip, noise_x)  # the chip, not the protocol, is noisier
            fit = None
            if characterised:
                b0 = b.bench_time_s
                fit = _measured_relax(b.programmer)
                char_s = b.bench_time_s - b0
                budget = BUDGET_FRACTION * tol
                if characterised == "relax":
                    kw["settle_rule"] = lambda m: float(fit.settle_for_movement(m, budget))
            s = run_ladder(b.programmer, 0, 0, levels, **kw).summary()
            if fit is not None:
                s["relax_fit"] = fit.summary()
                s["characterize_bench_s"] = char_s
        s["backend"] = f"open_bench({bench})"
    s["read_noise_x"] = noise_x
    s["wall_per_level_ms"] = 1e3 * s["wall_s"] / max(s["levels_attempted"], 1)
    # every level settles once, and once more per re-tune: the rest is the protocol's own
    settles = s["levels_attempted"] + s["settle_retunes"]
    s["settle_wait_s"] = s.get("settle_wait_total_s", settles * s["settle_s"])
    s["validate_wait_total_s"] = s.get("validated_levels", 0) * s.get("validate_wait_s", 0.0)
    if s["bench_time_s"] is not None:
        s["bench_other_s"] = s["bench_time_s"] - s["settle_wait_s"] - s["validate_wait_total_s"]
    s["settle_from"] = "measured relaxation" if characterised == "relax" else "technology default"
    s["characterised_first"] = bool(characterised)
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
    for how in ("relax", "default"):  # issue 25: the settle from the measured relaxation
        runs.append(("sim_onchip.yaml", "hfo2_1t1r", hf, "denoise", 1.0, "every-read", 1.0, how))
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
        if "validated_levels" in s:
            fc, rf = s["final_check"], s["relax_fit"]
            print(
                f"{'':18s} characterised first, settle from the {s['settle_from']} (tau {rf['tau_s']:.3f} s, fraction "
                f"{rf['frac_mean']:+.4f} ± {rf['frac_std']:.4f} of a step, {rf['n_series']} steps; "
                f"characterisation {s['characterize_bench_s']:.0f} s bench): mean {s.get('settle_wait_mean_s', s['settle_s']):.2f} s, "
                f"max {s.get('settle_wait_max_s', s['settle_s']):.2f} s per level; validation {s['validated_within']}/"
                f"{s['validated_levels']} within after {s['validate_wait_s']:g} s more (max "
                f"{s['validated_max_error_us']:.3f} µS, {s['validate_wait_total_s']:.0f} s bench); last level after "
                f"{fc['wait_s']:g} s more: max {fc['max_error_us']:.3f} µS"
            )


if __name__ == "__main__":
    import os

    # throw-away simulated chips, fresh from their seed on every open: the figures do not
    # depend on what an earlier run left on a stored chip (sim_instruments/chip_state)
    os.environ.setdefault("MEMPROG_SIM_VOLATILE", "1")
    main()
