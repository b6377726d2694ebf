"""What a fleet run's page shows: one row per chip, the totals, and a yield study's
distribution of chip accuracies — computed from the fleet run and its chips' runs.

Why a module of its own: a ``fleet`` run stores no cells; its story is spread over its own
record (the chips it was given, and once complete ``FleetReport.summary()``), its events
(``worker_lost``) and one ``program`` run per chip. These pure functions put that together,
so the page, a script and a test see the same table without a server. While the job runs
(or after it failed) the fleet's summary is empty, so each chip's row is filled from its
own run instead: its progress live, its figures once that run is complete. Nothing here
reads the store (:mod:`.data` does).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from memprog.dashboard.records import clean, progress_of, valid_run_id

CHIP_FIGURES = (
    "cells_total", "cells_within_tolerance", "cells_stuck", "cells_failed", "pulses_total",
    "bench_time_s", "wall_s", "chip_accuracy",
)  # fmt: skip
TOTAL_KEYS = (
    "cells_total",
    "cells_within_tolerance",
    "cells_stuck",
    "cells_failed",
    "pulses_total",
)
MAX_BINS = 30


def fleet_link(run: dict[str, Any]) -> dict[str, Any] | None:
    """A chip's ``program`` run → the fleet run it belongs to (None for any other run)."""
    p = run.get("params") or {}
    fid = p.get("fleet_run_id") if isinstance(p, dict) else None
    if not valid_run_id(fid):  # a malformed id never becomes a link
        return None
    return {"fleet_run_id": fid, "chip_index": p.get("chip_index"), "chip_name": p.get("chip_name")}


def fleet_chip_count(run: dict[str, Any]) -> int:
    """How many chips the fleet run was given (its params), or reports (its summary)."""
    p, s = run.get("params") or {}, run.get("summary") or {}
    chips = s.get("chips") or p.get("chips") or []
    return max(len(chips), int(s.get("n_chips") or 0))


def chip_run_ids(run: dict[str, Any]) -> dict[int, str]:
    """chip index → its program run, as a complete fleet's summary records them."""
    out: dict[int, str] = {}
    for c in (run.get("summary") or {}).get("chips") or []:
        if isinstance(c, dict) and valid_run_id(c.get("run_id")) and c.get("index") is not None:
            out[int(c["index"])] = c["run_id"]
    return out


def restarts_from_events(events: list[dict[str, Any]]) -> dict[int, int]:
    """chip index → how many times its worker was lost (the fleet run's ``worker_lost``)."""
    out: dict[int, int] = {}
    for e in events:
        if e.get("event") == "worker_lost" and e.get("chip") is not None:
            i = int(e["chip"])
            out[i] = max(out.get(i, 0) + 1, int(e.get("restart") or 0))
    return out


def _from_child(child: dict[str, Any] | None) -> dict[str, Any]:
    """A chip's figures from its own program run (its summary, once complete)."""
    if not child:
        return {}
    s = child.get("summary") or {}
    out = {k: s[k] for k in CHIP_FIGURES if k in s}
    if "outcome" in s:
        out["outcome"] = s["outcome"]
    return out


def chip_rows(
    run: dict[str, Any], children: dict[int, dict[str, Any]], events: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per chip: name, chip id, its run (id, status, progress), cells within/total,
    stuck, failed, pulses, bench time, accuracy, restarts.

    ``children`` maps a chip index to its program run's record (``get_run``/``list_runs``
    columns; ``summary`` optional). The fleet's summary wins where it has a figure (it is
    what the job reported); a chip's own run fills the rest.
    """
    p, s = run.get("params") or {}, run.get("summary") or {}
    given = {
        int(c["index"]): c for c in p.get("chips") or [] if isinstance(c, dict) and "index" in c
    }
    reported = {
        int(c["index"]): c for c in s.get("chips") or [] if isinstance(c, dict) and "index" in c
    }
    lost = restarts_from_events(events)
    rows = []
    for i in sorted(set(given) | set(reported) | set(children)):
        g, r, child = given.get(i, {}), reported.get(i, {}), children.get(i)
        row: dict[str, Any] = {
            "index": i,
            "name": r.get("name")
            or g.get("name")
            or (child or {}).get("params", {}).get("chip_name"),
            "chip_id": r.get("chip_id") or (child or {}).get("chip_id") or g.get("chip_id"),
            "bench": g.get("bench") or (child or {}).get("bench"),
            "seed": r.get("seed", g.get("seed")),
        }
        row.update(_from_child(child))
        row.update({k: r[k] for k in (*CHIP_FIGURES, "outcome", "host") if k in r})
        rid = r.get("run_id") if valid_run_id(r.get("run_id")) else (child or {}).get("run_id")
        row["run_id"] = rid if valid_run_id(rid) else None
        row["run_status"] = (child or {}).get("status")
        row["progress"] = progress_of(child) if child else None
        row["restarts"] = int(r["restarts"]) if r.get("restarts") is not None else lost.get(i, 0)
        o = row.get("outcome")
        row["exit_code"] = o.get("exit_code") if isinstance(o, dict) else None
        row.pop("outcome", None)  # the full census is on the chip's own page
        rows.append(row)
    return rows


def totals(run: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The fleet in total: cells, stuck, pulses and bench time summed over the chips (the
    cells of chips still running counted as far as they got), a tiled fleet's whole-network
    figures (per layer, pairs) and the accuracies the job reported."""
    s = run.get("summary") or {}
    out: dict[str, Any] = {}
    for k in TOTAL_KEYS:
        vals = [r[k] for r in rows if r.get(k) is not None]
        out[k] = int(sum(vals)) if vals else None
    done = [r["progress"]["cells_done"] for r in rows if r.get("progress")]
    planned = [r["progress"]["cells_total"] for r in rows if r.get("progress")]
    out["cells_done"] = int(sum(done)) if done else None
    out["cells_planned"] = int(sum(planned)) if planned and None not in planned else None
    bench = [float(r["bench_time_s"]) for r in rows if r.get("bench_time_s") is not None]
    out["bench_time_s_sum"] = float(sum(bench)) if bench else None
    out["bench_time_s_max"] = max(bench) if bench else None
    out["restarts"] = int(sum(r.get("restarts") or 0 for r in rows))
    net = s.get("total") if isinstance(s.get("total"), dict) else {}
    out.update(net)  # a tiled fleet's own total (the network's cells, pairs, layers) wins
    for k in (
        "software_accuracy",
        "chip_accuracy",
        "readout_accuracy",
        "inference",
        "wall_s",
        "outcome",
    ):
        if k in s:
            out[k] = s[k]
    return out


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def accuracy_histogram(run: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A replicated fleet (a yield study): the histogram of chip accuracies in %, beside the
    software accuracy and, when the job was given one, the Monte Carlo prediction's 5–95 %
    band. None for a tiled fleet or before any chip has an accuracy.

    The bins span the chips, the software accuracy and the band together (so every marker
    lies on the axis), 5 to 30 of them (the report's figure uses the same count).
    """
    s = run.get("summary") or {}
    mode = s.get("mode") or (run.get("params") or {}).get("mode")
    if mode != "replicated":
        return None
    y = s.get("yield") if isinstance(s.get("yield"), dict) else {}
    acc = [_finite(a) for a in (y.get("chip_accuracies") or [r.get("chip_accuracy") for r in rows])]
    pct = np.array([100.0 * a for a in acc if a is not None])
    if not pct.size:
        return None
    sw = _finite(s.get("software_accuracy"))
    pred = s.get("predicted") if isinstance(s.get("predicted"), dict) else None
    band = None
    if pred and _finite(pred.get("p05")) is not None and _finite(pred.get("p95")) is not None:
        band = {f"{k}_pct": 100.0 * v for k in ("p05", "p50", "p95", "mean", "std")
                if (v := _finite(pred.get(k))) is not None}  # fmt: skip
        band.update({k: pred[k] for k in ("source", "mc_transfers") if k in pred})
    marks = [*pct.tolist(), *([100.0 * sw] if sw is not None else []),
             *([band["p05_pct"], band["p95_pct"]] if band else [])]  # fmt: skip
    lo, hi = min(marks), max(marks)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    bins = max(5, min(MAX_BINS, int(pct.size)))
    counts, edges = np.histogram(pct, bins=bins, range=(lo, hi))
    mean = float(pct.mean())
    return clean({
        "chip_accuracies_pct": pct, "counts": counts, "edges_pct": edges,
        "n_chips": int(pct.size), "mean_pct": mean, "std_pct": float(pct.std()),
        "min_pct": float(pct.min()), "max_pct": float(pct.max()),
        "software_pct": None if sw is None else 100.0 * sw, "predicted": band,
        "mean_in_predicted_5_95": None if band is None
        else bool(band["p05_pct"] <= mean <= band["p95_pct"]),
    })  # fmt: skip


def fleet_of(
    run: dict[str, Any], children: dict[int, dict[str, Any]], events: list[dict[str, Any]]
) -> dict[str, Any]:
    """The fleet page's document: the job (mode, engine, status), one row per chip, the
    totals and, for a yield study, the accuracy histogram."""
    p, s = run.get("params") or {}, run.get("summary") or {}
    rows = chip_rows(run, children, events)
    eng = s.get("engine") or p.get("engine") or {}
    return clean({
        "run_id": run.get("run_id"),
        "status": run.get("status"),
        "mode": s.get("mode") or p.get("mode"),
        "engine": eng,
        "n_chips": max(len(rows), fleet_chip_count(run)),
        "chips_needed": s.get("chips_needed"),
        "chips_unused": s.get("chips_unused"),
        "chips": rows,
        "total": totals(run, rows),
        "accuracy_histogram": accuracy_histogram(run, rows),
        "error": s.get("error"),
        "workers_lost": sum(1 for e in events if e.get("event") == "worker_lost"),
    })  # fmt: skip


__all__ = [
    "accuracy_histogram",
    "chip_rows",
    "chip_run_ids",
    "fleet_chip_count",
    "fleet_link",
    "fleet_of",
    "restarts_from_events",
    "totals",
]
