"""A fleet of simulated chips: one network no array holds, local engine vs Ray (issue 26).

Measures, on the 64-1024-10 digits network (trained here in a few seconds with torch; its
first layer alone needs 65 x 2,048 cells, eight 256-column tiles) tiled over N simulated
on-chip HfO2 chips (``sim_onchip``, 256x256, one pair per weight):
  * the job's wall time with the local engine (chips one after another) and with Ray (one
    ``BenchActor`` per chip in parallel; a Ray started for the job on 127.0.0.1), and the
    speed-up (target: >= 1.6x at 4 chips on 2 cores; >= 8x at 16 chips on 16 cores);
  * chip accuracy (the chips' VMMs, partial sums added) against software (target: within 3
    points), read-out accuracy, cells within tolerance;
  * Ray's overhead: starting the actors (the constructor opens each chip's bench), one
    round trip to an actor, and each actor's resident memory.

Run: ``python benchmarks/bench_fleet.py [--chips 4 5] [--json] [--skip-local]``. Fresh chips
every run (a temporary ``MEMPROG_SIM_STATE_DIR``). Nothing but 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def wide_network(folder: Path, hidden: int = 1024, epochs: int = 60, seed: int = 0) -> Path:
    """Train the 64-hidden-10 digits network (sigmoid hidden, softmax out) and save it."""
    import torch

    from memprog.hwaware.datasets import DATA_SEED, load_dataset
    from memprog.hwaware.mapping import WEIGHTS_FORMAT, save_weights

    ds = load_dataset("digits", DATA_SEED)
    torch.manual_seed(seed)
    layers = torch.nn.ModuleList([torch.nn.Linear(64, hidden), torch.nn.Linear(hidden, 10)])
    opt = torch.optim.Adam(layers.parameters(), lr=0.005)
    xt, yt = torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)
    for _ in range(epochs):
        perm = torch.randperm(xt.shape[0])
        for b in range(0, xt.shape[0], 128):
            idx = perm[b : b + 128]
            loss = torch.nn.functional.cross_entropy(layers[1](torch.sigmoid(layers[0](xt[idx]))), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    path = folder / "wide_64_1024_10.pt"
    sd = {f"layers.{k}.{n}": p.detach().clone() for k, lin in enumerate(layers) for n, p in lin.named_parameters()}
    save_weights(
        {"format": WEIGHTS_FORMAT, "dataset": "digits", "sizes": [64, hidden, 10], "activation": "sigmoid",
         "output": "softmax", "state_dict": sd, "mapping": {"scheme": "differential", "g_min_us": 50.0, "g_max_us": 500.0},
         "hardware_aware": False, "seed": seed, "epochs": epochs, "variability_source": "none (software training)"},
        path,
    )  # fmt: skip
    np.savez(folder / "digits_test.npz", x=ds.x_test, y=ds.y_test)
    return path


def one_job(engine_name: str, n_chips: int, folder: Path, weights: Path) -> dict:
    from memprog.fleet.chips import simulated_chips
    from memprog.fleet.engines import make_engine
    from memprog.fleet.job import run_fleet_program
    from memprog.jobs.program import ProgramParams
    from memprog.jobs.weights import load_program_input

    os.environ["MEMPROG_SIM_STATE_DIR"] = tempfile.mkdtemp(dir=folder)  # fresh chips
    net = load_program_input(weights)
    z = np.load(folder / "digits_test.npz")
    eng = make_engine(engine_name)
    specs = simulated_chips("sim_onchip", n_chips)
    extra: dict = {}
    if engine_name == "ray":  # the actors' start and a round trip, measured on their own
        t0 = time.perf_counter()
        eng.start(specs, 256, 256)
        infos = eng.call_each("info", {s.index: () for s in specs})
        extra["actors_start_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        for _ in range(20):
            eng.call(0, "info")
        extra["round_trip_ms"] = (time.perf_counter() - t1) / 20 * 1e3
        extra["actor_rss_mb"] = [v.get("rss_mb") for v in infos.values()]
        eng.stop()
        eng = make_engine("ray")
    t0 = time.perf_counter()
    rep = run_fleet_program(eng, specs, net, ProgramParams(copies=1), (256, 256), test_set=(z["x"], z["y"]))
    wall = time.perf_counter() - t0
    s = rep.summary()
    return {
        "engine": engine_name, "chips": n_chips, "wall_s": wall, "software_accuracy": s["software_accuracy"],
        "chip_accuracy": s["chip_accuracy"], "readout_accuracy": s["readout_accuracy"], "inference": s["inference"],
        "cells_total": s["total"]["cells_total"], "cells_within_tolerance": s["total"]["cells_within_tolerance"],
        "cells_stuck": s["total"]["cells_stuck"], "chip_wall_s": [c["wall_s"] for c in s["chips"]],
        "bench_time_s_max": s["bench_time_s_max"], "phases": s["phases"], **extra,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--chips", type=int, nargs="+", default=[4, 5])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--skip-local", action="store_true")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        weights = wide_network(folder)
        train_s = time.perf_counter() - t0
        # a lab's cluster is up before a job (``ray start --head``; --ray-address): started
        # once here, on loopback, and its start timed apart from the jobs
        import ray

        from memprog.fleet.engines import loopback_ray

        loopback_ray(ray)
        t1 = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 object_store_memory=256 * 2**20)  # fmt: skip
        ray_init_s = time.perf_counter() - t1
        nodes = [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]]
        assert nodes == ["127.0.0.1"], nodes
        for n in args.chips:
            ray_row = one_job("ray", n, folder, weights)
            rows.append(ray_row)
            if not args.skip_local:
                loc = one_job("local", n, folder, weights)
                rows.append(loc)
                ray_row["speedup_vs_local"] = loc["wall_s"] / ray_row["wall_s"]
        ray.shutdown()
    doc = {"train_s": train_s, "ray_init_s": ray_init_s, "cpus": os.cpu_count(), "runs": rows}
    if args.json:
        print(json.dumps(doc))
        return
    print(f"64-1024-10 digits network trained in {train_s:.1f} s; {os.cpu_count()} CPUs; "
          f"Ray cluster (127.0.0.1) started in {ray_init_s:.1f} s, before the jobs")
    for r in rows:
        sp = f", {r['speedup_vs_local']:.2f}x the local engine" if "speedup_vs_local" in r else ""
        print(
            f"{r['engine']:>5} {r['chips']} chips: wall {r['wall_s']:.1f} s{sp}; chip {100 * r['chip_accuracy']:.1f} % "
            f"({r['inference']}) vs software {100 * r['software_accuracy']:.1f} %, read-out {100 * r['readout_accuracy']:.1f} %; "
            f"{r['cells_within_tolerance']}/{r['cells_total']} cells within, {r['cells_stuck']} stuck; "
            f"per-chip job wall {', '.join(f'{w:.1f}' for w in r['chip_wall_s'])} s; "
            + ", ".join(f"{k} {v:.1f}" for k, v in r["phases"].items())
        )
        if r["engine"] == "ray":
            print(f"      actors started in {r['actors_start_s']:.1f} s, round trip {r['round_trip_ms']:.2f} ms, "
                  f"resident memory per actor {r['actor_rss_mb']} MB")


if __name__ == "__main__":
    main()
