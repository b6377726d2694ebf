"""The program job over a fleet of chips: tiled (a network no single array holds) or
replicated (a yield study: the same network on every chip).

Why one job for both: either way every chip runs the ordinary program job
(:func:`memprog.jobs.program.run_program`) on its share, in its own worker
(:mod:`memprog.fleet.engines`), writing its own ``program`` run; what differs is what is
shared. Tiled, each chip holds some tiles of each layer (:mod:`memprog.fleet.tiling`), the
fleet runs the network layer by layer — each chip's ``VMM?`` gives partial sums, added
digitally here — and the report is per chip and in total. Replicated, every chip holds the
whole network and runs it itself; the report is the distribution of chip accuracies (beside
the Monte Carlo prediction where one is given: ``evaluate --on-bench``).

The record: a ``fleet`` run holds the job (the chips, the mode, the engine, the total) and
one ``program`` run per chip holds its cells, created here before the first pulse (so a
worker that dies mid-job leaves its cells in a run the restarted worker resumes). A local
fleet can share one SQLite file (every worker is on this host; SQLite's locking and WAL
serialise the writers); a fleet spread over several hosts must write to PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memprog.core.bench_config import load_bench_config
from memprog.core.errors import ClusterError, ConfigError
from memprog.core.signals import interrupt_signum, signal_name
from memprog.fleet.chips import ChipSpec, simulated_chips
from memprog.fleet.engines import MAX_RESTARTS, LocalEngine, RayEngine, WorkerLost
from memprog.fleet.record import FleetRecord
from memprog.fleet.tiling import chips_needed, place_across_chips
from memprog.fleet.worker import ChipOutcome, ChipTask
from memprog.hwaware.placement import Placement, place_network
from memprog.jobs.program import ProgramParams
from memprog.jobs.program_inference import effective_matrices
from memprog.jobs.program_plan import Plan
from memprog.jobs.program_report import ProgramReport, layer_figures
from memprog.jobs.weights import Network, activate, predict_from_scores
from memprog.protocols.common import Progress
from memprog.protocols.results import TuneResult

MODES = ("auto", "tiled", "replicated")


@dataclass
class FleetReport:
    """What the fleet job measured (``summary()`` is the ``--json`` document)."""

    mode: str
    engine: dict[str, Any]
    chips: list[dict[str, Any]]
    software_accuracy: float | None
    chip_accuracy: float | None
    readout_accuracy: float | None
    inference: str | None
    total: ProgramReport | None
    wall_s: float
    fleet_run_id: str | None = None
    chips_needed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    chip_results: dict[str, TuneResult] = field(default_factory=dict)  # per chip name: its cells

    def accuracies(self) -> list[float]:
        """Each chip's accuracy (a yield study)."""
        return [float(c["chip_accuracy"]) for c in self.chips if c.get("chip_accuracy") is not None]

    def outcome(self) -> dict[str, Any]:
        """The job holds when every chip's (replicated) or the whole network's (tiled) does."""
        if self.total is not None:
            return self.total.outcome()
        codes = [int(c["outcome"]["exit_code"]) for c in self.chips]
        failed = sum(int(c["outcome"].get("failed") or 0) for c in self.chips)
        return {"exit_code": max(codes) if codes else 0, "failed": failed, "chips_failed": sum(1 for c in codes if c)}

    def summary(self) -> dict[str, Any]:
        """The ``--json`` document and the fleet run's stored summary."""
        out: dict[str, Any] = {
            "fleet_run_id": self.fleet_run_id,
            "mode": self.mode,
            "engine": self.engine,
            "n_chips": len(self.chips),
            "chips_needed": self.chips_needed,
            "software_accuracy": self.software_accuracy,
            "chip_accuracy": self.chip_accuracy,
            "readout_accuracy": self.readout_accuracy,
            "inference": self.inference,
            "chips": self.chips,
            "wall_s": self.wall_s,
            "bench_time_s_max": max((c.get("bench_time_s") or 0.0 for c in self.chips), default=0.0),
            "bench_time_s_sum": float(sum(c.get("bench_time_s") or 0.0 for c in self.chips)),
            "outcome": self.outcome(),
        }
        if self.total is not None:
            t = self.total.summary()
            out["total"] = {k: t[k] for k in (
                "cells_total", "cells_within_tolerance", "cells_stuck", "cells_failed",
                "pairs_within_tolerance", "pairs_failed", "pulses_total", "layers", "copies",
            ) if k in t}  # fmt: skip
        acc = self.accuracies()
        if self.mode == "replicated" and acc:
            a = np.asarray(acc)
            out["yield"] = {
                "chip_accuracies": acc, "mean": float(a.mean()), "std": float(a.std()),
                "min": float(a.min()), "max": float(a.max()),
            }  # fmt: skip
        out.update(self.extra)
        return out


def _chip_line(spec: ChipSpec, info: dict[str, Any], o: ChipOutcome, run_id: str | None, restarts: int) -> dict[str, Any]:
    s = o.summary
    return {
        "index": spec.index, "name": spec.name, "chip_id": info.get("chip_id", spec.chip_id),
        "run_id": run_id, "seed": spec.seed, "cells_total": s["cells_total"],
        "cells_within_tolerance": s["cells_within_tolerance"], "cells_stuck": s["cells_stuck"],
        "cells_failed": s["cells_failed"], "pulses_total": s["pulses_total"],
        "bench_time_s": s["bench_time_s"], "wall_s": s["wall_s"], "chip_accuracy": s.get("chip_accuracy"),
        "readout_accuracy": s.get("readout_accuracy"),
        "software_accuracy": s.get("software_accuracy"), "outcome": s["outcome"], "restarts": restarts,
        "cells_kept_after_restart": o.resumed_cells, "pid": o.pid, "host": info.get("host"),
    }  # fmt: skip


def choose_mode(source: Network, shape: tuple[int, int], params: ProgramParams, mode: str) -> str:
    """``replicated`` when the network fits one array (and ``mode`` allows), else ``tiled``."""
    if mode not in MODES:
        raise ConfigError("mode", mode, f"one of {list(MODES)}")
    if mode != "auto":
        return mode
    try:
        place_network([m.shape for m in source.chip_matrices()], shape, params.copies)
    except ConfigError:
        return "tiled"
    return "replicated"


class _Record(FleetRecord):
    """The program job's fleet run and one ``program`` run per chip."""

    def start(self, specs: list[ChipSpec], infos: dict[int, dict[str, Any]], params: dict[str, Any], cells: dict[int, int | None]) -> list[str | None]:
        if self.store is None:
            return [None] * len(specs)
        # the fleet run holds no cells of its own: its chips' runs do (its summary has the total)
        self.fleet_id = self.store.start_run(kind="fleet", bench=params.get("bench"), protocol=params.get("protocol"), params=params)
        ids: list[str | None] = []
        for s in specs:
            info = infos[s.index]
            ids.append(self.store.start_run(
                kind="program", bench=s.bench, chip_id=info["chip_id"], technology=info["technology"],
                protocol=params.get("protocol"), cells_total=cells[s.index],
                # the chip's run names its fleet and place; the fleet run holds the chip list
                params={**{k: v for k, v in params.items() if k != "chips"}, "fleet_run_id": self.fleet_id,
                        "chip_index": s.index, "chip_name": s.name},
            ))  # fmt: skip
        return ids


def _program_all(
    engine: LocalEngine | RayEngine, tasks: dict[int, ChipTask], record: _Record, bar: Progress
) -> tuple[dict[int, ChipOutcome], dict[int, int]]:
    """Every chip's program job; a lost worker (killed actor) is waited for and asked again
    (its :meth:`ChipWorker.program` resumes from the store, reading first)."""
    outcomes: dict[int, ChipOutcome] = {}
    restarts = {i: 0 for i in tasks}
    pending = dict(tasks)
    while pending:
        got = engine.call_each(
            "program", {i: (t,) for i, t in pending.items()},
            lambda _i, r: None if isinstance(r, WorkerLost) else bar.update(1),  # chip by chip
        )  # fmt: skip
        pending = {}
        for i, r in got.items():
            if isinstance(r, WorkerLost):
                restarts[i] += 1
                record.event({"event": "worker_lost", "chip": i, "reason": r.reason, "restart": restarts[i]})
                if restarts[i] > MAX_RESTARTS:
                    raise ClusterError(engine.describe().get("address") or "local", f"chip {i}'s worker died {restarts[i]} times")
                engine.wait_alive(i)
                pending[i] = tasks[i]
            else:
                outcomes[i] = r
    return outcomes, restarts


def _vmm_each(engine: LocalEngine | RayEngine, args: dict[int, tuple[Any, ...]]) -> dict[int, np.ndarray]:
    """Partial sums from every chip holding tiles of the layer (a read: safe to ask again)."""
    out: dict[int, np.ndarray] = {}
    pending = dict(args)
    for _ in range(MAX_RESTARTS + 1):
        got = engine.call_each("vmm", pending)
        pending = {}
        for i, r in got.items():
            if isinstance(r, WorkerLost):
                engine.wait_alive(i)
                pending[i] = args[i]
            else:
                out[i] = r
        if not pending:
            return out
    raise ClusterError("local", f"chips {sorted(pending)} lost their workers during inference")


def tiled_forward(engine: LocalEngine | RayEngine, source: Network, placements: list[dict[str, Any]], scales: list[float], copies: int, x: np.ndarray) -> np.ndarray:
    """The network's output scores, layer by layer: each chip's ``VMM?`` partial sums added."""
    a = np.asarray(x, dtype=float)
    n_layers = len(scales)
    for k in range(n_layers):
        ext = source.extended_input(a, k)  # the bias row at its drive (1 unless biases have their own scale)
        holders = {i: (pl, k, ext) for i, pl in enumerate(placements) if any(t["layer"] == k for t in pl["tiles"])}
        parts = _vmm_each(engine, holders)
        z = np.zeros((a.shape[0], source.chip_matrices()[k].shape[1]))
        for i in sorted(parts):
            z += parts[i]
        z *= scales[k] / copies
        a = activate(z, source.output if k == n_layers - 1 else source.activation)
    return a


def run_fleet_program(
    engine: LocalEngine | RayEngine,
    specs: list[ChipSpec],
    source: Network,
    params: ProgramParams,
    array_shape: tuple[int, int],
    *,
    test_set: tuple[np.ndarray, np.ndarray] | None = None,
    db: str | None = None,
    mode: str = "auto",
    run_params: dict[str, Any] | None = None,
    progress: bool = False,
    prediction: dict[str, Any] | None = None,
) -> FleetReport:
    """Program ``source`` onto the fleet ``specs`` with ``engine`` (see the module docstring).

    Args:
        array_shape: every chip's (rows, cols): the tiles are cut for it; a chip of another
            shape is refused once its worker reports it.
        mode: ``auto`` (replicated when the network fits one array, else tiled),
            ``tiled`` or ``replicated``.
        run_params: what the fleet run records besides the job's own settings (weights, bench).
        prediction: a Monte Carlo prediction of the chips' accuracy (mean, std, p05, p50,
            p95) reported beside the measured ones (a yield study).

    Raises:
        ConfigError: too few chips for the network (naming how many it needs), chips of
            different shapes, a multi-host fleet on an SQLite store.
    """
    t0 = time.perf_counter()
    n = len(specs)
    shapes = [m.shape for m in source.chip_matrices()]
    mode = choose_mode(source, array_shape, params, mode)
    placements: list[dict[str, Any]] | None = None
    need = None
    unused: list[str] = []
    if mode == "tiled":
        need = chips_needed(shapes, array_shape, params.copies or 1)
        placed = place_across_chips(shapes, array_shape, n, params.copies)
        unused = [s.name for s, p in zip(specs, placed, strict=True) if not p.tiles]
        if unused:  # more chips than tiles: the idle ones are not opened
            specs = [s for s, p in zip(specs, placed, strict=True) if p.tiles]
            placed = [p for p in placed if p.tiles]
            specs = [ChipSpec(**{**s.__dict__, "index": k}) for k, s in enumerate(specs)]
            n = len(specs)
        placements = [p.to_dict() for p in placed]
    record = _Record(db)
    bar = Progress(progress, n, "chips")
    try:
        t_start = time.perf_counter()
        engine.start(specs, *array_shape)
        infos = engine.call_each("info", {s.index: () for s in specs})
        phases = {"workers_start_s": time.perf_counter() - t_start}
        odd = {i: (v["rows"], v["cols"]) for i, v in infos.items() if (v["rows"], v["cols"]) != tuple(array_shape)}
        if odd:
            raise ConfigError("fleet chips", odd, f"every chip {array_shape[0]}x{array_shape[1]} (the tiles were cut for it)")
        desc = engine.describe()
        if record.sqlite() and len(set(desc.get("nodes") or [])) > 1:
            raise ConfigError("--db", "sqlite", "PostgreSQL for a fleet on several hosts", f"the fleet spans {len(set(desc['nodes']))} nodes")
        cells = {i: None if placements is None else _cells_of(placements[i]) for i in range(n)}
        rp = {**(run_params or {}), "mode": mode, "engine": desc, "program_params": params.model_dump(),
              "chips": [s.to_dict() for s in specs]}  # fmt: skip
        run_ids = record.start(specs, infos, rp, cells)
        tasks = {
            s.index: ChipTask(source, params, None if placements is None else placements[s.index],
                              test_set if mode == "replicated" else None, db, run_ids[s.index])
            for s in specs
        }  # fmt: skip
        open_runs = [*run_ids, record.fleet_id]
        try:
            t_prog = time.perf_counter()
            outcomes, restarts = _program_all(engine, tasks, record, bar)
            phases["program_s"] = time.perf_counter() - t_prog
            chips = [_chip_line(s, infos[s.index], outcomes[s.index], run_ids[s.index], restarts[s.index]) for s in specs]
            for s in specs:
                record.finish(run_ids[s.index], "complete", outcomes[s.index].summary)
            open_runs = [record.fleet_id]  # the chips are done; the network's run is not yet
            t_inf = time.perf_counter()
            report = _report(engine, mode, desc, chips, source, outcomes, placements, test_set, params, infos)
        except BaseException as exc:
            signum = interrupt_signum(exc)
            status, why = ("interrupted", {"interrupted_by": signal_name(signum)}) if signum is not None else ("failed", {"error": str(exc)})
            for rid in open_runs:
                record.finish(rid, status, why)
            raise
        phases["inference_s"] = time.perf_counter() - t_inf  # tiled: the chips' VMMs, layer by layer
        report.extra["phases"] = phases
        report.chip_results = {s.name: outcomes[s.index].result for s in specs}
        if prediction is not None:
            report.extra["predicted"] = dict(prediction)
        report.extra["worker_rss_mb"] = [infos[s.index].get("rss_mb") for s in specs]
        report.chips_needed = need
        if mode == "tiled" and unused:
            report.extra["chips_unused"] = unused
        report.wall_s = time.perf_counter() - t0
        report.fleet_run_id = record.fleet_id
        record.finish(record.fleet_id, "complete", report.summary())
        return report
    finally:
        bar.close()
        try:
            engine.stop()
        finally:
            record.close()


def _cells_of(placement: dict[str, Any]) -> int:
    return int(sum(np.asarray(t["rows"]).size * 2 * (t["out"][1] - t["out"][0]) for t in placement["tiles"]))


def _report(
    engine: LocalEngine | RayEngine, mode: str, desc: dict[str, Any], chips: list[dict[str, Any]],
    source: Network, outcomes: dict[int, ChipOutcome], placements: list[dict[str, Any]] | None,
    test_set: tuple[np.ndarray, np.ndarray] | None, params: ProgramParams, infos: dict[int, dict[str, Any]],
) -> FleetReport:
    """Per chip and in total: a tiled fleet's whole network, or a replicated fleet's yield."""
    if mode == "replicated":
        acc = [c["chip_accuracy"] for c in chips if c["chip_accuracy"] is not None]
        sw = chips[0]["software_accuracy"] if chips else None
        return FleetReport(mode, desc, chips, sw, float(np.mean(acc)) if acc else None, None,
                           "per chip", None, 0.0)  # fmt: skip
    assert placements is not None
    order = sorted(outcomes)
    parts = [outcomes[i] for i in order if len(outcomes[i].result)]
    scales, copies = parts[0].scales, parts[0].copies
    mats = [np.zeros(s) for s in (m.shape for m in source.chip_matrices())]
    for i in order:
        o = outcomes[i]
        if not len(o.result):
            continue
        plan_i = Plan(Placement.from_dict(placements[i]), o.plan_cells, o.scales, {}, np.zeros(len(o.result), bool),
                      np.full(len(o.result), np.nan))  # fmt: skip
        for k, m in enumerate(effective_matrices(plan_i, o.result.final_us)):
            mats[k] += m
    res = TuneResult.concat([p.result for p in parts])
    cells = {k: np.concatenate([p.plan_cells[k] for p in parts]) for k in parts[0].plan_cells}
    plan = Plan(None, cells, scales, {}, np.zeros(len(res), bool), np.full(len(res), np.nan))
    sw = chip = readout = None
    inference = None
    if test_set is not None:
        x, y = test_set
        sw = float(np.mean(source.predict(x) == y))
        readout = float(np.mean(source.predict(x, mats) == y))
        if all(v.get("supports_vmm") for v in infos.values()):
            scores = tiled_forward(engine, source, placements, scales, copies, x)
            chip = float(np.mean(predict_from_scores(scores, source.output) == y))
            inference = "vmm"
        else:
            chip, inference = readout, "readout"
    total = ProgramReport(None, res, plan, sw, chip, readout, inference, layer_figures(source, plan, res, mats),
                          0.0, max((c["bench_time_s"] or 0.0) for c in chips), "per chip")  # fmt: skip
    total.accuracy_tolerance = params.accuracy_tolerance
    return FleetReport(mode, desc, chips, sw, chip, readout, inference, total, 0.0)


def fleet_chip_programmer(make: Callable[[], LocalEngine | RayEngine], db: str | None = None) -> Callable[..., list[dict[str, Any]]]:
    """``evaluate --on-bench``'s chips programmed by a fleet (``make()`` gives the engine):
    fresh simulated chips, one per seed — the very chips
    :func:`memprog.jobs.evaluate.program_fresh_chips` programs, in parallel on Ray. With a
    store ``db`` the yield study is recorded as a fleet run, the Monte Carlo prediction in
    its summary beside the chips (the dashboard draws both)."""

    def program(bench: Any, seeds: list[int], net: Network, params: ProgramParams,
                test_set: tuple[np.ndarray, np.ndarray], progress: bool = False,
                prediction: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        if list(seeds) != list(range(seeds[0], seeds[0] + len(seeds))):
            raise ConfigError("seeds", seeds, "consecutive seeds")
        cfg, _ = load_bench_config(bench)
        specs = simulated_chips(bench, len(seeds), first_seed=seeds[0], volatile=True)
        rep = run_fleet_program(make(), specs, net, params, (int(cfg.chip.rows), int(cfg.chip.cols)),
                                test_set=test_set, mode="replicated", progress=progress, db=db,
                                prediction=prediction, run_params={"bench": str(bench), "study": "evaluate --on-bench"})  # fmt: skip
        return rep.summary()["chips"]

    return program


__all__ = ["FleetReport", "MODES", "choose_mode", "fleet_chip_programmer", "run_fleet_program", "tiled_forward"]
