"""Prediction vs chip: program a network onto K fresh simulated chips and set the measured
accuracies beside the hardware-aware Monte Carlo prediction for the same weights.

Why: the Monte Carlo transfer evaluation (:mod:`memprog.hwaware.transfer`) predicts, from
the variability model, how accurate a transferred network will be; the simulated bench
can program the very same weights onto as many fresh chips as wanted (a different chip
seed is a different chip: other stuck cells, other device spread). Set side by side,
the two distributions validate the variability model against the chip it came from.

For an apples-to-apples comparison the chips are programmed as the prediction assumes:
one differential pair per weight (``copies=1``, no twin compensation) unless asked
otherwise, the biases mapped as the weight file says (``mapping.bias_scale``) on both
sides, and the prediction keys every device's disturb by the number of cells the job
writes after it on that bench's array, in the job's own order
(:func:`memprog.hwaware.order.network_later_writes`, from the placement and order
functions the job itself calls) — not by the layout the network was trained for, if that
was another chip.

Fresh chips: simulated chips are non-volatile (their state persists under
``$MEMPROG_SIM_STATE_DIR``), so each chip here is opened inside ``volatile_chips()``: fresh
from its seed, never stored, never reused by a later call.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from memprog.bench.assembly import open_bench
from memprog.core.bench_config import load_bench_config
from memprog.core.errors import ConfigError
from memprog.core.strict_yaml import dump_yaml
from memprog.hwaware.order import network_later_writes
from memprog.jobs.program import ProgramParams, run_program
from memprog.jobs.weights import Network, load_program_input
from memprog.sim_instruments.chip_state import volatile_chips


def fresh_chip_bench(bench: str | Path, seed: int, folder: Path) -> Path:
    """A copy of a simulated bench file whose chip has another seed (another chip)."""
    cfg, path = load_bench_config(bench)
    if not all(i.simulated for i in cfg.instruments.values()):
        raise ConfigError("--on-bench", str(bench), "a simulated bench (fresh chips are new seeds)")
    data = yaml.safe_load(path.read_text())
    data["chip"]["seed"] = int(seed)
    data["chip"]["id"] = f"{data['chip']['id']}-seed{seed}"
    out = folder / f"{path.stem}_seed{seed}.yaml"
    out.write_text(dump_yaml(data, sort_keys=False))
    return out


CHIP_FIELDS = ("seed", "chip_accuracy", "readout_accuracy", "cells_stuck", "cells_within_tolerance",
               "cells_total", "bench_time_s")  # fmt: skip


def program_fresh_chips(
    bench: str | Path, seeds: list[int], net: Network, params: ProgramParams,
    test_set: tuple[np.ndarray, np.ndarray], progress: bool = False,
) -> list[dict[str, Any]]:
    """Program ``net`` onto one fresh simulated chip of ``bench`` per seed, one after another."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            path = fresh_chip_bench(bench, seed, Path(tmp))
            # throw-away chips: fresh from the seed every time, never stored (chip_state)
            with volatile_chips(), open_bench(path) as b:
                rep = run_program(b, net, params, test_set=test_set, progress=progress)
            out.append({**rep.summary(), "seed": seed})
    return out


def compare_with_prediction(
    weights: str | Path,
    bench: str | Path,
    transfers: int,
    variability: Any,
    test_set: tuple[np.ndarray, np.ndarray],
    *,
    mc_transfers: int = 1000,
    first_seed: int = 1,
    params: ProgramParams | None = None,
    png: str | Path | None = None,
    progress: bool = False,
    program_chips: Callable[..., list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Program ``weights`` onto ``transfers`` fresh simulated chips; compare with the MC prediction.

    Args:
        weights: a weight file (any format :func:`load_program_input` reads, not a map).
        bench: a simulated bench (name or file); chip ``k`` gets seed ``first_seed + k``.
        transfers: how many chips to program (K).
        variability: a :class:`memprog.hwaware.variability.VariabilityModel` (``--db`` or
            ``--preset``) for the Monte Carlo prediction.
        test_set: (x, y) used by both.
        mc_transfers: simulated transfers of the prediction.
        params: programming settings; default one pair per weight (``copies=1``).
        png: where to draw both distributions side by side.
        program_chips: how the chips are programmed, ``(bench, seeds, network, params,
            test_set, progress, prediction=...) -> [per-chip dict with CHIP_FIELDS]``
            (``prediction``: the Monte Carlo figures, for the fleet's record); default
            :func:`program_fresh_chips` (one after another, here). ``evaluate --engine ray``
            passes the fleet's (one Ray actor per chip, in parallel; the same chips).

    Returns:
        ``measured_accuracies`` (one per chip), ``predicted`` (mean, std, 5/50/95 %
        percentiles of the MC transfer accuracies), ``software_accuracy`` and whether the
        measured mean lies inside the predicted 5-95 % band.
    """
    from memprog.hwaware.transfer import TransferSimulator  # deferred: imports torch (~1 s)

    if transfers < 1:
        raise ConfigError("transfers", transfers, ">= 1")
    net = load_program_input(weights)
    if not isinstance(net, Network):
        raise ConfigError("weights", str(weights), "a network (not a conductance map)")
    x, y = test_set
    p = params or ProgramParams(copies=1)
    t0 = time.perf_counter()
    g_range = None
    if net.mapping is not None:
        g_range = (net.mapping["g_min_us"], net.mapping["g_max_us"])
    cfg, _ = load_bench_config(bench)
    keys = None
    if p.copies == 1:  # the job's own placement and order on this bench's array
        keys = network_later_writes(list(net.sizes), (int(cfg.chip.rows), int(cfg.chip.cols)), p.order)
    sim = TransferSimulator(
        list(zip(net.weights, net.biases, strict=True)), variability,
        activation=net.activation, g_range_us=g_range, later_writes=keys,
        bias_scale=net.bias_scale,  # the file's mapping, as the job writes it (old files: folded)
    )
    pred = sim.evaluate(x, y, mc_transfers, seed=first_seed)
    acc = np.asarray(pred.transfer_accuracy, dtype=float)
    seeds = [first_seed + k for k in range(transfers)]
    program = program_chips or program_fresh_chips
    q5, q50, q95 = np.percentile(acc, [5, 50, 95])
    prediction = {"source": getattr(variability, "source", None), "mc_transfers": mc_transfers,
                  "mean": float(acc.mean()), "std": float(acc.std()), "p05": float(q5), "p50": float(q50),
                  "p95": float(q95)}  # fmt: skip
    kw = {"prediction": prediction} if program_chips is not None else {}  # a fleet records it beside its chips
    chips = [{k: c.get(k) for k in CHIP_FIELDS} for c in program(bench, seeds, net, p, (x, y), progress, **kw)]
    measured = [float(c["chip_accuracy"]) for c in chips]
    m = np.array(measured)
    out: dict[str, Any] = {
        "weights": str(weights),
        "bench": str(bench),
        "transfers": transfers,
        "copies": p.copies,
        "order": p.order,
        "disturb_keys": "program job order on the bench's array" if keys is not None else "each layer alone",
        "software_accuracy": float(np.mean(net.predict(x) == y)),
        "measured_accuracies": measured,
        "measured_mean": float(m.mean()),
        "measured_std": float(m.std()),
        "chips": chips,
        "predicted": {
            "source": getattr(variability, "source", None),
            "mc_transfers": mc_transfers,
            "mean": float(acc.mean()),
            "std": float(acc.std()),
            "p5": float(q5),
            "p50": float(q50),
            "p95": float(q95),
            "ideal_accuracy": float(pred.ideal_accuracy),
        },
        "measured_mean_in_predicted_5_95": bool(q5 <= m.mean() <= q95),
        "measured_minus_predicted_mean": float(m.mean() - acc.mean()),
        "wall_s": time.perf_counter() - t0,
    }
    if png is not None:
        plot_comparison(out, acc, png)
        out["png"] = str(png)
    return out


def plot_comparison(summary: dict[str, Any], predicted: np.ndarray, png: str | Path) -> None:
    """Predicted transfer accuracies (histogram) beside the measured chips (points)."""
    import matplotlib  # deferred: matplotlib takes ~0.5 s to import; only a figure needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # deferred: as above (after the Agg backend is chosen)

    fig, ax = plt.subplots(figsize=(9, 4), constrained_layout=True)
    pct = 100 * np.asarray(predicted)
    bins = np.linspace(min(pct.min(), 100 * min(summary["measured_accuracies"])) - 1, 100, 40)
    ax.hist(pct, bins=bins, color="tab:blue", alpha=0.6, density=True,
            label=f"predicted ({summary['predicted']['mc_transfers']} MC transfers)")
    ym = ax.get_ylim()[1]
    meas = 100 * np.asarray(summary["measured_accuracies"])
    ax.plot(meas, np.full(meas.size, 0.5 * ym), "o", color="tab:red", ms=7,
            label=f"measured ({meas.size} programmed chips)")
    ax.axvline(100 * summary["software_accuracy"], color="k", ls=":", lw=1, label="software")
    ax.set_xlabel("test accuracy (%)")
    ax.set_ylabel("probability density (1/%)")
    ax.set_title(f"predicted transfer accuracy ({summary['predicted']['source']}) vs measured chips", fontsize=10)
    # outside the axes: inside, it would cover the histogram or the measured points
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.savefig(png, dpi=110)
    plt.close(fig)


__all__ = ["CHIP_FIELDS", "compare_with_prediction", "fresh_chip_bench", "plot_comparison", "program_fresh_chips"]
