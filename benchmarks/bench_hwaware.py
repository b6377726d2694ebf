"""Hardware-aware training and Monte Carlo transfer evaluation: what they cost (issue 11).

Measures
  * one training step (forward, backward, Adam; batch 256) of a hardware-aware network
    against the same step of the plain torch network, for the 2-8-1 half-moons network, the
    64-54-10 digits network and one 256x256 layer (target: <= 1.5x for the same network);
  * 10,000 simulated transfers of the 2-8-1 network on the 200 half-moons test points
    (target: <= 0.25 s on CPU), and transfers per second of the 64-54-10 network on the 360
    digits test points; with ``--device cuda`` the same on a GPU (target there: >= 10 million
    transfers per second of the 2-8-1 network).

Timings are the median of repeated blocks (and the best block, less sensitive to other
processes on a shared machine); both sides of a ratio are measured interleaved in the same
run. Training steps run on one thread and are timed in that thread's CPU time (a shared
machine's other processes then cost the ratio less than in wall time); Monte Carlo transfers
in wall time (torch may use several threads: on a loaded machine ``--threads 1``).

Variability: as training from a database samples it (issue 24) — raw imprecision reads per level (here: 8 levels x 400 reads drawn from the tio2_passive preset's published line,
or the reads of ``--db URL``), raw disturb samples by number of later writes, 0.5 % + 0.5 %
stuck devices frozen through each optimiser step (as :func:`memprog.hwaware.training.train`
steps), and the 2-8-1 network's disturb keyed as the program job writes the 12x24
``sim_tio2_crossbar`` array. ``--fitted`` measures the fitted-line sampling instead.
Run: ``python benchmarks/bench_hwaware.py [--json] [--device cpu|cuda] [--quick] [--db URL]
[--fitted] [--threads N]``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from memprog.hwaware.datasets import digits, halfmoons
from memprog.hwaware.layers import MLP, convert
from memprog.hwaware.order import network_later_writes
from memprog.hwaware.training import _StuckFreezer
from memprog.hwaware.transfer import TransferSimulator
from memprog.hwaware.variability import VariabilityModel, _raw_imprecision
from memprog.store import VariabilityDB

TIO2_CROSSBAR = (12, 24)  # benches/sim_tio2_crossbar.yaml


def raw_preset_model(levels: int = 8, reads: int = 400) -> VariabilityModel:
    """The preset's figures with raw imprecision reads per level (what --db gives), drawn
    once from its published line and offset: the sampling path training from a DB takes."""
    v = VariabilityModel.from_preset("tio2_passive")
    rng = np.random.default_rng(0)
    lv = np.linspace(v.g_min_us, v.g_max_us, levels)
    sig = v.slope_pct_per_us * lv + v.intercept_pct
    g = lv[:, None] * (1 + (sig[:, None] * rng.standard_normal((levels, reads))
                            + rng.normal(v.offset_mean_pct, v.offset_std_pct, (levels, reads))) / 100)
    lv_t, fac = _raw_imprecision(pd.DataFrame({"level_us": np.repeat(lv, reads), "g_us": g.ravel()}))
    kw = {f: getattr(v, f) for f in v.__dataclass_fields__}
    kw.update(imp_levels_us=torch.as_tensor(lv_t, dtype=torch.float32), imp_factors=torch.as_tensor(fac, dtype=torch.float32),
              source="preset:tio2_passive+raw", notes=[])
    return VariabilityModel(**kw)


def _timeit(f, n: int, reps: int, clock=time.perf_counter) -> tuple[float, float]:
    for _ in range(max(1, n // 5)):
        f()
    ts = []
    for _ in range(reps):
        t = clock()
        for _ in range(n):
            f()
        ts.append((clock() - t) / n)
    return float(np.median(ts)), float(min(ts))


def _step_fn(sizes, hw: bool, var, x, y, multi: bool, device):
    torch.manual_seed(0)
    m = MLP(sizes, device=device)
    freezer = None
    if hw:
        keys = network_later_writes(sizes, TIO2_CROSSBAR) if sizes == [2, 8, 1] else None
        convert(m, var, generator=torch.Generator(device=device).manual_seed(1), later_writes=keys)
        freezer = _StuckFreezer(m)
    m.train()
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    loss_fn = F.cross_entropy if multi else F.binary_cross_entropy_with_logits

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(m(x), y).backward()
        if freezer is not None:
            freezer.step(opt)
        else:
            opt.step()

    return step


def bench_steps(var, device, quick: bool) -> list[dict]:
    # one thread: these ops are below torch's parallel grain size (memprog train does the same)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = []
    cases = [("2-8-1", [2, 8, 1], False), ("64-54-10", [64, 54, 10], True), ("256x256", [256, 256], True)]
    for name, sizes, multi in cases:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(256, sizes[0], generator=g).to(device)
        y = (torch.randint(0, sizes[-1], (256,), generator=g) if multi else torch.randint(0, 2, (256, 1), generator=g).float()).to(device)
        n, reps = (50, 5) if quick else (300, 15)
        plain = _step_fn(sizes, False, var, x, y, multi, device)
        hw = _step_fn(sizes, True, var, x, y, multi, device)
        # interleave the two so both see the same background load
        pm, pb, hm, hb = [], [], [], []
        for _ in range(reps):
            a = _timeit(plain, n, 1, time.thread_time)
            b = _timeit(hw, n, 1, time.thread_time)
            pm.append(a[0])
            hm.append(b[0])
        pm_, hm_ = float(np.median(pm)), float(np.median(hm))
        pb, hb = float(min(pm)), float(min(hm))
        out.append({
            "network": name,
            "plain_step_ms": pm_ * 1e3,
            "hwaware_step_ms": hm_ * 1e3,
            "ratio_median": hm_ / pm_,
            "ratio_best": hb / pb,
        })
    torch.set_num_threads(threads)
    return out


def bench_transfers(var, device, quick: bool) -> list[dict]:
    out = []
    hm = halfmoons(0)
    torch.manual_seed(0)
    net = [(torch.randn(8, 2), torch.randn(8)), (torch.randn(1, 8), torch.randn(1))]
    sim = TransferSimulator(net, var, device=device, later_writes=network_later_writes([2, 8, 1], TIO2_CROSSBAR))
    n = 10_000
    f = lambda: sim.evaluate(hm.x_test, hm.y_test, n, seed=1)  # noqa: E731
    med, best = _timeit(f, 1, 3 if quick else 7)
    out.append({"network": "2-8-1", "test_points": 200, "transfers": n, "median_s": med, "best_s": best,
                "transfers_per_s": n / med})
    if torch.device(device).type == "cuda":
        n_gpu = 1_000_000
        f = lambda: sim.evaluate(hm.x_test, hm.y_test, n_gpu, seed=1)  # noqa: E731
        med, best = _timeit(f, 1, 3)
        out.append({"network": "2-8-1", "test_points": 200, "transfers": n_gpu, "median_s": med,
                    "best_s": best, "transfers_per_s": n_gpu / med})
    dg = digits(0)
    torch.manual_seed(0)
    net = [(torch.randn(54, 64) * 0.3, torch.randn(54) * 0.1), (torch.randn(10, 54) * 0.3, torch.randn(10) * 0.1)]
    sim = TransferSimulator(net, var, device=device)
    n = 1_000 if quick else 10_000
    f = lambda: sim.evaluate(dg.x_test, dg.y_test, n, seed=1)  # noqa: E731
    med, best = _timeit(f, 1, 3)
    out.append({"network": "64-54-10", "test_points": int(len(dg.y_test)), "transfers": n, "median_s": med,
                "best_s": best, "transfers_per_s": n / med})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--db", default=None, help="variability database URL (default: the preset's figures, raw reads)")
    ap.add_argument("--fitted", action="store_true", help="sample the fitted imprecision line instead of raw reads")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for the Monte Carlo transfers (default: torch's own)")
    a = ap.parse_args()
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    if a.db:
        var = VariabilityModel.from_db(VariabilityDB(a.db), imprecision="fitted" if a.fitted else "raw")
        var = var.with_stuck(0.005, 0.005)
    else:
        var = VariabilityModel.from_preset("tio2_passive") if a.fitted else raw_preset_model()
    res = {
        "device": a.device,
        "variability": var.source,
        "imprecision": var.imprecision,
        "torch_threads": torch.get_num_threads(),
        "steps": bench_steps(var, a.device, a.quick),
        "transfers": bench_transfers(var, a.device, a.quick),
    }
    if a.json:
        print(json.dumps(res))
        return
    print(f"device {a.device}, torch threads {res['torch_threads']} (training steps: 1)")
    print("training step (batch 256)   plain ms   hw-aware ms   ratio (median / best block)")
    for s in res["steps"]:
        print(f"  {s['network']:>10}          {s['plain_step_ms']:8.3f}   {s['hwaware_step_ms']:11.3f}   "
              f"{s['ratio_median']:.2f} / {s['ratio_best']:.2f}")
    print("Monte Carlo transfers       points   transfers   median s   best s   transfers/s")
    for t in res["transfers"]:
        print(f"  {t['network']:>10}          {t['test_points']:6d}   {t['transfers']:9d}   {t['median_s']:8.3f}   "
              f"{t['best_s']:6.3f}   {t['transfers_per_s']:,.0f}")


if __name__ == "__main__":
    main()
