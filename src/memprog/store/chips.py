"""Which network is on which chip: the question an edge lab asks first, from the run store.

Why a query and not a table: every ``memprog program`` run already stores its weights'
provenance (source URL with credentials masked, sha256, size, format) in its ``params``
and its chip accuracy in its ``summary``; what is on a chip is the newest program run that
touched it. A run that was interrupted (or failed) after it started pulsing leaves the chip
holding a mix, and the listing says so rather than naming the older, complete run; so does
a later run of any kind on the same chip (a tune, a characterisation) that may have pulsed
the network's cells. What the store cannot see — a simulated chip reset with ``memprog sim
reset``, a chip swapped on the bench under the same id — it cannot report.
"""

from __future__ import annotations

from typing import Any


def chips_on_record(store: Any, chip_id: str | None = None) -> list[dict[str, Any]]:
    """One entry per chip the store knows, newest activity first.

    Each entry: ``chip_id``, ``technology``, ``bench``, ``runs`` (how many runs touched the
    chip), ``last_run`` (id, kind, status, when) and ``weights`` — the newest program run's
    provenance: ``sha256``, ``source``, ``format``, ``size_bytes``, ``pinned``, ``run_id``,
    ``status``, ``programmed_at``, ``chip_accuracy`` and ``software_accuracy`` where the run
    measured them, and ``state``: ``complete``, ``partial`` (that run did not finish, so the
    chip holds part of those weights over what was there before) or ``changed`` (later runs
    pulsed the chip: ``later_runs`` lists them). ``weights`` is None for a chip never
    programmed with a network or a map.
    """
    runs = store.list_runs(chip_id=chip_id)
    runs = runs[runs["chip_id"].notna()]
    out: list[dict[str, Any]] = []
    for cid, group in runs.groupby("chip_id", sort=False):
        group = group.sort_values("started_at", ascending=False)
        last = group.iloc[0]
        entry: dict[str, Any] = {
            "chip_id": str(cid),
            "technology": last["technology"],
            "bench": last["bench"],
            "runs": int(len(group)),
            "last_run": {
                "run_id": last["run_id"],
                "kind": last["kind"],
                "status": last["status"],
                "started_at": last["started_at"].isoformat() if last["started_at"] is not None else None,
            },
            "weights": None,
        }
        programs = group[group["kind"] == "program"]
        if len(programs):
            w = _provenance(store.get_run(str(programs.iloc[0]["run_id"])))
            after = group[group["started_at"] > programs.iloc[0]["started_at"]]
            w["later_runs"] = [f"{r} ({k})" for r, k in zip(after["run_id"], after["kind"], strict=True)]
            if w["later_runs"] and w["state"] == "complete":
                w["state"] = "changed"
            entry["weights"] = w
        out.append(entry)
    out.sort(key=lambda e: e["last_run"]["started_at"] or "", reverse=True)
    return out


def _provenance(run: dict[str, Any]) -> dict[str, Any]:
    params = run.get("params") or {}
    summary = run.get("summary") or {}
    src = params.get("weights_source") or {}
    return {
        "sha256": src.get("sha256") or params.get("weights_sha256"),
        "source": src.get("source") or params.get("weights"),
        "format": src.get("format"),
        "size_bytes": src.get("size_bytes"),
        "pinned": src.get("pinned"),
        "run_id": run["run_id"],
        "status": run["status"],
        "state": "complete" if run["status"] == "complete" else "partial",
        "programmed_at": run.get("ended_at") or run.get("started_at"),
        "chip_accuracy": summary.get("chip_accuracy"),
        "software_accuracy": summary.get("software_accuracy"),
    }


def format_chips(chips: list[dict[str, Any]]) -> str:
    """The human table of :func:`chips_on_record`."""
    if not chips:
        return "no chip in this store yet: run memprog program (or tune, characterize) on a bench"
    lines = []
    for c in chips:
        w = c["weights"]
        head = f"{c['chip_id']} ({c['technology']}, bench {c['bench']}): {c['runs']} run(s)"
        if w is None:
            lines.append(f"{head}; no network programmed (last run {c['last_run']['run_id']}, {c['last_run']['kind']})")
            continue
        acc = ""
        if w["chip_accuracy"] is not None:
            acc = f", chip accuracy {100 * w['chip_accuracy']:.1f} %"
            if w["software_accuracy"] is not None:
                acc += f" (software {100 * w['software_accuracy']:.1f} %)"
        state = {
            "complete": "",
            "partial": f" — PARTIAL: run {w['status']}, the chip holds a mix",
            "changed": f" — CHANGED since: later runs {', '.join(w['later_runs'])} pulsed this chip",
        }[w["state"]]
        lines.append(
            f"{head}\n  weights sha256 {w['sha256']} from {w['source']}\n"
            f"  run {w['run_id']} at {w['programmed_at']}{acc}{state}"
        )
    return "\n".join(lines)


__all__ = ["chips_on_record", "format_chips"]
