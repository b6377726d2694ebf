"""A fleet job's report folder and console text: per chip and in total.

Why a figure: a fleet's story is a comparison across chips — which chip is slow, which one
holds the failed cells, how the chip accuracies of a yield study spread — and a bar per chip
(or a histogram beside the software accuracy) shows it faster than a table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memprog.core.jsonout import dumps
from memprog.fleet.job import FleetReport
from memprog.reporting.outcome import describe


def write_fleet_report(report: FleetReport, out: Path, context: dict[str, Any]) -> dict[str, str]:
    """``fleet.json`` (the summary and ``context``), ``fleet.png`` and one ``<chip>_cells.csv``
    per chip; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    doc = {**report.summary(), **context}
    files = {"json": str(out / "fleet.json"), "png": str(out / "fleet.png")}
    doc["report"] = files
    for name, res in report.chip_results.items():  # each chip's cells, as a single job writes them
        path = out / f"{name}_cells.csv"
        res.to_frame().to_csv(path, index=False)
        files[f"{name}_cells"] = str(path)
    Path(files["json"]).write_text(dumps(doc, fallback=str) + "\n")
    _figure(report, Path(files["png"]))
    return files


def _figure(report: FleetReport, path: Path) -> None:
    # deferred: matplotlib takes ~0.5 s to import
    import matplotlib

    matplotlib.use("Agg")
    # deferred: after the backend is chosen
    import matplotlib.pyplot as plt

    s = report.summary()
    names = [c["name"] for c in s["chips"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    within = [c["cells_within_tolerance"] for c in s["chips"]]
    other = [c["cells_total"] - c["cells_within_tolerance"] for c in s["chips"]]
    ax.bar(names, within, label="within tolerance", color="#2a7")
    ax.bar(names, other, bottom=within, label="outside or stuck", color="#d54")
    ax.set_ylabel("cells")
    ax.set_title(f"{s['mode']} fleet of {s['n_chips']} chips ({s['engine']['engine']} engine)")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", rotation=45)
    ax = axes[1]
    acc = report.accuracies()
    if s["mode"] == "replicated" and acc:
        ax.hist([100 * a for a in acc], bins=max(5, min(30, len(acc))), color="#47a", label="chips")
        if report.software_accuracy is not None:
            ax.axvline(100 * report.software_accuracy, color="k", ls="--", label="software")
        pred = report.extra.get("predicted")
        if isinstance(pred, dict) and pred.get("p05") is not None:
            ax.axvspan(100 * pred["p05"], 100 * pred["p95"], color="#fa3", alpha=0.3, label="MC 5-95 %")
        ax.set_xlabel("chip accuracy (%)")
        ax.set_ylabel("chips")
        ax.yaxis.get_major_locator().set_params(integer=True)  # whole chips
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    else:
        ax.bar(names, [c["bench_time_s"] or 0.0 for c in s["chips"]], color="#888")
        ax.set_ylabel("bench time (s)")
        if report.chip_accuracy is not None and report.software_accuracy is not None:
            ax.set_title(f"network: chip {100 * report.chip_accuracy:.1f} % vs software {100 * report.software_accuracy:.1f} %")
        ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def human_fleet(s: dict[str, Any]) -> str:
    """The console text: one line per chip, then the total."""
    lines = [f"fleet job ({s['mode']}, {s['n_chips']} chips, {s['engine']['engine']} engine)"
             + (f", fleet run {s['fleet_run_id']}" if s.get("fleet_run_id") else "")]
    for c in s["chips"]:
        acc = "" if c.get("chip_accuracy") is None else f", accuracy {100 * c['chip_accuracy']:.1f} %"
        rs = f", worker restarted {c['restarts']}x ({c['cells_kept_after_restart']} kept cells re-read)" if c["restarts"] else ""
        lines.append(
            f"  {c['name']} {c['chip_id']}: {c['cells_within_tolerance']}/{c['cells_total']} cells within tolerance, "
            f"{c['cells_stuck']} stuck, {c['pulses_total']} pulses, bench {c['bench_time_s'] or 0:.1f} s{acc}{rs}"
        )
    if s.get("chip_accuracy") is not None and s.get("software_accuracy") is not None:
        how = s.get("inference")
        lines.append(f"  network: chip {100 * s['chip_accuracy']:.1f} % ({how}) vs software {100 * s['software_accuracy']:.1f} %")
    if "yield" in s:
        y = s["yield"]
        lines.append(f"  yield: chip accuracy mean {100 * y['mean']:.1f} %, std {100 * y['std']:.1f}, min {100 * y['min']:.1f}, max {100 * y['max']:.1f}")
    lines.append(f"  wall {s['wall_s']:.1f} s; bench time per chip max {s['bench_time_s_max']:.1f} s, sum {s['bench_time_s_sum']:.1f} s")
    if s.get("chips_unused"):
        lines.append(f"  {len(s['chips_unused'])} chips not used ({', '.join(s['chips_unused'])}): the network's "
                     f"{s['n_chips']} chips' worth of tiles went to fewer chips (each tile stays whole on one chip)")
    o = s["outcome"]
    if "rule" in o:  # the whole network's outcome (tiled): the one rule every report states
        lines.append(f"  result: {describe(o)}; {'holds' if o.get('ok') else 'FAILED'} (exit {o['exit_code']}: {o['rule']})")
    else:
        bad = int(o.get("chips_failed", 0))
        verdict = "every chip holds" if not bad else f"{bad} of {s['n_chips']} chips FAILED (their lines above)"
        lines.append(f"  result: {verdict} (exit {o['exit_code']})")
    if s.get("report"):
        lines.append(f"  report: {s['report']['json']}, {s['report']['png']}")
    return "\n".join(lines)


__all__ = ["human_fleet", "write_fleet_report"]
