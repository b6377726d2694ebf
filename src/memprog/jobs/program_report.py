"""The program job's report: what the chip holds, per layer, as JSON, CSV and heat maps.

Why a module of its own: the report is what a user reads after a run (``--json``,
``report.json``, the stored summary, one PNG per layer), and its counts are the outcome's
(:mod:`memprog.reporting.outcome`, one function for the CLI, the file and the dashboard).
Nothing here touches the bench.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memprog.core.jsonout import dumps
from memprog.jobs.program_plan import Plan
from memprog.jobs.weights import ConductanceMap, Network
from memprog.protocols.results import FLAG_STUCK, TuneResult
from memprog.reporting.figures import (
    array_axes,
    heat_map,
    paint_flags,
    pyplot,
    robust_limits,
    run_title,
)
from memprog.reporting.outcome import ERROR_CMAP, report_outcome, within_tolerance


@dataclass
class ProgramReport:
    """Everything the job measured (``summary()`` is the ``--json`` document)."""

    run_id: str | None
    result: TuneResult  # one row per cell, in plan order, final = the settled verify read
    plan: Plan
    software_accuracy: float | None
    chip_accuracy: float | None
    readout_accuracy: float | None
    inference: str | None
    layers: list[dict[str, Any]]
    wall_s: float
    bench_time_s: float | None
    settle: str
    extra: dict[str, Any] = field(default_factory=dict)
    accuracy_tolerance: float = 0.03
    # the settle's numbers (memprog.jobs.program_settle.JobSettle.numbers); None where the
    # report was put together from several (a fleet's total): those fields are then null
    settle_numbers: dict[str, Any] | None = None

    def outcome(self) -> dict[str, Any]:
        """What the job achieved and its exit decision (:func:`memprog.reporting.outcome.report_outcome`)."""
        return report_outcome(self, self.accuracy_tolerance)

    def summary(self) -> dict[str, Any]:
        """The ``--json`` document, ``report.json`` and the stored summary: the counts are
        the outcome's (one function), ``wall_s``/``job_wall_s`` as the CLI prints them."""
        r = self.result
        o = self.outcome()
        out = {
            "run_id": self.run_id,
            "cells_total": o["cells"],
            "cells_within_tolerance": o["within_tolerance"],
            "cells_stuck": o["stuck"],
            "cells_converged": o["converged"],
            "cells_not_converged": len(r) - int(o["converged"] or 0),
            "cells_failed": o["failed"],
            "pairs_within_tolerance": o["pairs_within_tolerance"],
            "pairs_failed": o["pairs_failed"],
            "pairs_stuck_limited": o.get("pairs_stuck_limited", 0),
            "pairs_by_outcome": o.get("pairs_by_outcome"),
            "outcome": o,
            "software_accuracy": self.software_accuracy,
            "chip_accuracy": self.chip_accuracy,
            "readout_accuracy": self.readout_accuracy,
            "inference": self.inference,
            "copies": None if self.plan.placement is None else self.plan.placement.copies,
            "layers": self.layers,
            "pulses_total": int(r.pulses.sum()),
            "settle": self.settle,
            **(self.settle_numbers or dict.fromkeys(SETTLE_FIELDS)),
            "wall_s": self.wall_s,
            "job_wall_s": self.wall_s,
            "bench_time_s": self.bench_time_s,
        }
        out.update(self.extra)
        return out


def layer_figures(
    source: Network | ConductanceMap, plan: Plan, res: TuneResult, mats_chip: list[np.ndarray] | None
) -> list[dict[str, Any]]:
    """Per-layer figures of the settled chip: cells in band, stuck, pair and cell errors.

    ``mats_chip``: the layer matrices as the chip holds them (a network; None for a map).
    """
    layers: list[dict[str, Any]] = []
    if isinstance(source, Network):
        assert mats_chip is not None
        mats_sw = source.chip_matrices()
        for k, (m_sw, m_ch) in enumerate(zip(mats_sw, mats_chip, strict=True)):
            sel = plan.cells["layer"] == k
            dg = (m_ch - m_sw) / plan.scales[k]  # differential conductance error, µS
            # weights one of whose conductances has every copy stuck: nothing could fix them
            c = plan.cells
            live = np.zeros((2,) + m_sw.shape)
            st = res.has_flag(FLAG_STUCK)
            np.add.at(live, ((c["sign"][sel] < 0).astype(int), c["i"][sel], c["j"][sel]), (~st[sel]).astype(float))
            dead = (live == 0).any(axis=0)
            layers.append(
                {
                    "layer": k,
                    "shape": list(m_sw.shape),
                    "cells": int(sel.sum()),
                    "cells_within_tolerance": int(res.within_tolerance[sel].sum()),
                    "cells_stuck": int(res.has_flag(FLAG_STUCK)[sel].sum()),
                    "pair_error_rms_us": float(np.sqrt(np.mean(dg**2))),
                    "weights_dead": int(dead.sum()),
                    "pair_error_rms_live_us": float(np.sqrt(np.mean(dg[~dead] ** 2))) if (~dead).any() else None,
                    "pair_error_max_us": float(np.abs(dg).max()),
                    "cell_error_rms_us": float(np.sqrt(np.mean(res.error_us[sel] ** 2))) if sel.any() else None,
                    "scale_per_us": plan.scales[k],
                }
            )
    else:
        layers.append(
            {
                "layer": 0,
                "shape": list(source.map_us.shape),
                "cells": len(res),
                "cells_within_tolerance": int(res.within_tolerance.sum()),
                "cells_stuck": int(res.has_flag(FLAG_STUCK).sum()),
                "cell_error_rms_us": float(np.sqrt(np.mean(res.error_us**2))),
            }
        )
    return layers


def write_report(
    report: ProgramReport,
    out_dir: str | Path,
    technology: str = "",
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``report.json`` (summary + per-cell table as CSV) and one PNG heat map per layer.

    Args:
        context: what the caller adds to the summary it prints (bench, weights, the
            command's total ``wall_s``, ...): merged into ``report.json`` too, so the file
            and the console state the same quantities under the same names.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    summary = report.summary()
    summary.update(context or {})
    csv = out / "cells.csv"
    report.result.to_frame().to_csv(csv, index=False)
    files["cells_csv"] = str(csv)
    pngs = []
    layers = sorted(set(report.plan.cells["layer"].tolist()))
    for k in layers:
        png = out / f"layer{k}.png"
        _plot_layer(report, k, png, technology, (context or {}).get("chip_id"))
        pngs.append(str(png))
    files["png"] = pngs
    path = out / "report.json"
    files["report_json"] = str(path)
    summary["report"] = files
    path.write_text(dumps(summary, indent=2))  # strict: null, never NaN
    return files


def _plot_layer(report: ProgramReport, k: int, out: Path, technology: str, chip: str | None = None) -> None:
    """Target, achieved and error maps of one layer's cells, at their physical array positions.

    Colour limits are percentiles (memprog.reporting.figures): a few stuck cells hundreds of µS away
    must not make target and achieved look alike; flagged cells carry their own colours.
    """
    plt = pyplot()
    r = report.result
    sel = report.plan.cells["layer"] == k
    rows, cols = r.rows[sel], r.cols[sel]
    r0, c0 = int(rows.min()), int(cols.min())
    shape = (int(rows.max()) - r0 + 1, int(cols.max()) - c0 + 1)
    tgt = np.full(shape, np.nan)
    ach = np.full(shape, np.nan)
    tgt[rows - r0, cols - c0] = r.target_us[sel]
    ach[rows - r0, cols - c0] = r.final_us[sel]
    err = ach - tgt
    extent = (c0 - 0.5, c0 + shape[1] - 0.5, r0 + shape[0] - 0.5, r0 - 0.5)
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.2), constrained_layout=True)
    # one conductance scale for target and achieved (so the two compare), from the targets
    # and the working cells' reads: stuck outliers saturate instead of setting it
    ok = ~r.has_flag(FLAG_STUCK)[sel]
    g_lims = robust_limits(np.concatenate([r.target_us[sel], r.final_us[sel][ok]]))
    lo, hi, _ = g_lims
    beyond = int(((r.final_us[sel] < lo) | (r.final_us[sel] > hi)).sum())
    ach_note = g_lims[2].split(";")[0] + (f"; {beyond} beyond (saturated)" if beyond else "")
    heat_map(fig, axes[0], tgt, extent, g_lims, "viridis", "target conductance (µS)")
    heat_map(fig, axes[1], ach, extent, (lo, hi, ach_note), "viridis", "achieved conductance (µS)")
    axes[0].set_title("target")
    axes[1].set_title("achieved, read after the settle (stuck and failed cells painted)")
    paint_flags(axes[1], extent, (r0, c0), shape, rows, cols, r.flags[sel])
    e_lims = robust_limits(np.abs(r.final_us[sel] - r.target_us[sel])[ok], symmetric=True)
    n_beyond = int((np.abs(err[np.isfinite(err)]) > e_lims[1]).sum())
    e_note = f"±{PCT_NOTE}" + (f"; {n_beyond} beyond (saturated)" if n_beyond else "")
    heat_map(fig, axes[2], err, extent, (e_lims[0], e_lims[1], e_note), ERROR_CMAP, "achieved − target (µS)")
    axes[2].set_title("error (stuck and failed cells painted)")
    paint_flags(axes[2], extent, (r0, c0), shape, rows, cols, r.flags[sel])
    for ax in axes:
        array_axes(ax)
    n_in = int(within_tolerance(r.final_us[sel], r.target_us[sel], r.tolerance_us[sel]).sum())
    fig.suptitle(
        f"{run_title('program', report.run_id, chip, technology)}: layer {k} at its physical array "
        f"positions (rows {r0}-{r0 + shape[0] - 1}, columns {c0}-{c0 + shape[1] - 1}); "
        f"{n_in}/{int(sel.sum())} cells within tolerance",
        fontsize=10,
    )
    fig.savefig(out, dpi=100)
    plt.close(fig)


# what the error scale spans (the working cells' errors: stuck ones saturate)
PCT_NOTE = "99th percentile of working cells"
# the settle as numbers in the --json document, beside its sentence
SETTLE_FIELDS = ("settle_waited_s", "settle_rounds", "settle_cells_retuned", "settle_pair_reaims")


__all__ = ["ProgramReport", "layer_figures", "write_report", "SETTLE_FIELDS", "PCT_NOTE"]
