"""In-situ training speed and seed 002's stuck-device comparison, on the simulated on-chip bench.

Target (issue 13): one epoch over the digits training set (1,438 images, minibatches of 16)
through the on-chip stack — driver, ``@memprog`` VISA backend, simulated controller,
batched ``VMM?`` forward passes, row-parallel RESET/SET update pulses, one read of the
output layer per minibatch — in <= 20 s wall on 2 cores. The simulated bench time of that
epoch is reported too, with its extrapolation to seed 002's training length (80,000
samples); seed 002 states the length, not how long its measurement set-up took.

``--sweep`` adds seed 002 Fig. 4b: test accuracy at 0, 11, 30 and 50 % stuck devices for
in-situ training and for an ex-situ transfer (software-trained network programmed by
write-verify, run by ``VMM?``), one chip seed, stuck sets nested; ``--png`` draws it.

Run: ``python benchmarks/bench_insitu.py [--json] [--sweep] [--epochs N] [--png FILE]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import memprog
from memprog.hwaware.datasets import load_dataset
from memprog.jobs.insitu import bench_with_stuck_fraction, train_insitu
from memprog.jobs.insitu_exsitu import exsitu_transfer
from memprog.jobs.insitu_params import LI2018_INSITU_ACCURACY, InsituParams

BENCH = Path(__file__).resolve().parents[1] / "benches" / "sim_onchip.yaml"
FRACTIONS = (0.0, 0.11, 0.30, 0.50)
SEED002_SAMPLES = 80_000  # seed 002: trained on 80,000 MNIST samples


def one_epoch() -> dict:
    data = load_dataset("digits", seed=0)
    with memprog.open_bench(BENCH) as bench:
        t0 = time.perf_counter()
        res = train_insitu(bench, InsituParams(epochs=1), data)
        total = time.perf_counter() - t0
    n = data.x_train.shape[0]
    bench_s = res.epoch_bench_s[0]
    return {
        "bench": BENCH.name,
        "train_samples": n,
        "batch_size": res.params["batch_size"],
        "epoch_wall_s": res.epoch_wall_s[0],
        "epoch_bench_s": bench_s,
        "target_epoch_wall_s": 20.0,
        "setup_and_eval_wall_s": total - res.epoch_wall_s[0],
        "pulses": res.pulses,
        "vmm_vectors": res.vmm_vectors,
        "bench_s_per_sample": bench_s / n,
        "bench_s_for_seed002_80000_samples": bench_s / n * SEED002_SAMPLES,
        "test_accuracy_after_1_epoch": res.test_accuracy,
    }


def sweep(epochs: int) -> dict:
    data = load_dataset("digits", seed=0)
    rows = []
    for f in FRACTIONS:
        with bench_with_stuck_fraction(BENCH, f) as path:
            with memprog.open_bench(path) as bench:
                ins = train_insitu(bench, InsituParams(epochs=epochs), data, stuck_fraction=f)
            with memprog.open_bench(path) as bench:
                ex = exsitu_transfer(bench, InsituParams(), data)
        rows.append(
            {
                "stuck_fraction": f,
                "insitu_accuracy": ins.test_accuracy,
                "exsitu_accuracy": ex["chip_accuracy"],
                "software_accuracy": ex["software_accuracy"],
                "insitu_wall_s": ins.wall_s,
                "insitu_bench_s": ins.bench_time_s,
                "exsitu_wall_s": ex["wall_s"],
                "exsitu_cells_converged": ex["cells_converged"],
                "cells": ex["cells"],
            }
        )
    return {"epochs": epochs, "seed002_insitu_accuracy_11pct": LI2018_INSITU_ACCURACY, "rows": rows}


def draw(result: dict, out: Path) -> None:
    import matplotlib  # deferred: only --png draws; the timing runs need no matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # deferred: as above (after the Agg backend is chosen)

    rows = result["rows"]
    f = [100 * r["stuck_fraction"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(f, [100 * r["insitu_accuracy"] for r in rows], "o-", label="in-situ (this chip)")
    ax.plot(f, [100 * r["exsitu_accuracy"] for r in rows], "s--", label="ex-situ transfer")
    ax.axhline(100 * rows[0]["software_accuracy"], color="grey", lw=0.8, ls=":", label="software")
    ax.plot([11], [100 * LI2018_INSITU_ACCURACY], "k*", ms=10, label="seed 002 hardware (MNIST 8x8)")
    ax.axhline(60, color="r", lw=0.6, ls=":")
    ax.set_xlabel("stuck devices (%)")
    ax.set_ylabel("test accuracy, digits (%)")
    ax.set_title(f"64-54-10 on the simulated HfO2 1T1R array ({result['epochs']} epochs)")
    ax.set_ylim(0, 100)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--sweep", action="store_true", help="accuracy vs stuck fraction as well")
    ap.add_argument("--epochs", type=int, default=8, help="in-situ epochs of the sweep")
    ap.add_argument("--png", type=Path, default=None, help="draw the sweep to this file")
    args = ap.parse_args()
    res: dict = {"one_epoch": one_epoch()}
    if args.sweep or args.png:
        res["sweep"] = sweep(args.epochs)
        if args.png:
            draw(res["sweep"], args.png)
            res["png"] = str(args.png)
    if args.json:
        print(json.dumps(res))
        return
    e = res["one_epoch"]
    print(f"{e['bench']}: one epoch, {e['train_samples']} images, minibatch {e['batch_size']}")
    print(f"  wall {e['epoch_wall_s']:.2f} s (target <= 20 s), bench time {e['epoch_bench_s']:.3f} s")
    print(
        f"  {e['bench_s_per_sample'] * 1e3:.3f} ms bench time per image -> "
        f"{e['bench_s_for_seed002_80000_samples']:.0f} s for seed 002's 80,000 samples"
    )
    if "sweep" in res:
        print(f"stuck %   in-situ   ex-situ   (software; {res['sweep']['epochs']} in-situ epochs)")
        for r in res["sweep"]["rows"]:
            print(
                f"{100 * r['stuck_fraction']:6.0f}   {100 * r['insitu_accuracy']:7.1f}   "
                f"{100 * r['exsitu_accuracy']:7.1f}   ({100 * r['software_accuracy']:.1f})"
            )


if __name__ == "__main__":
    import os

    # throw-away simulated chips, fresh from their seed on every open: the figures do not
    # depend on what an earlier run left on a stored chip (sim_instruments/chip_state)
    os.environ.setdefault("MEMPROG_SIM_VOLATILE", "1")
    main()
