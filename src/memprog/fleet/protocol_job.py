"""One protocol job on every chip of a fleet: ``characterize`` (a yield view) and
``tune --map`` (the same conductance map on every chip).

Why a job of its own beside :mod:`memprog.fleet.job`: the program job's record is a
network's (placement, tiles, accuracy); these jobs are one chip's command repeated on each
chip, each chip's run exactly what the single command stores (kind, chip id, technology,
parameters, samples or cells), so everything that reads one chip's runs (``memprog db
variability --chip-id``, ``memprog sim calibrate --chip``, ``memprog db export``) reads a
fleet's chips the same way. The ``fleet`` run holds the job: the chips, the engine, and the
chips' runs side by side.

A worker lost mid-job (a killed Ray actor; Ray restarts it and it reopens its bench) is
never retried blindly by Ray (at-most-once). The job decides by what the run holds:

* ``characterize`` (``resume_lost=False``): the lost run is marked ``interrupted`` and the
  chip is characterised again in a NEW run: a characterisation's samples (the disturb
  sequence, the repeats of a level) only mean something when they come from one
  uninterrupted session, so two sessions are never mixed in one run.
* ``tune --map`` (``resume_lost=True``): the chip's run is continued: the dead worker's
  finished cells are read first and only those now outside their band are tuned again
  (issue 16's resume, :func:`memprog.jobs.resume_reads.reread_kept`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memprog.core.errors import ClusterError, ConfigError
from memprog.core.signals import interrupt_signum, signal_name
from memprog.fleet.chips import ChipSpec
from memprog.fleet.engines import MAX_RESTARTS, LocalEngine, RayEngine, WorkerLost
from memprog.fleet.record import FleetRecord
from memprog.fleet.worker import ProtocolTask
from memprog.jobs.resume_reads import reread_kept
from memprog.protocols import registry
from memprog.protocols.array import ArrayParams, program_array
from memprog.protocols.characterize import CharacterizeParams, characterize
from memprog.protocols.common import Progress
from memprog.protocols.settle import resolve_settle_s
from memprog.reporting.outcome import result_outcome


@dataclass
class ChipJob:
    """What every chip of the fleet runs, and how its run is recorded.

    Attributes:
        kind: the chips' run kind (``characterize`` or ``array``).
        protocol: the runs' protocol name (``characterize``, ``array/alibart``, ...).
        params: what each chip's run records as its parameters (the single command's).
        fn: ``fn(programmer, sink, done) -> dict`` (:class:`~memprog.fleet.worker.ProtocolTask`).
        resume_lost: a lost worker's chip continues its run reading first (True) or starts
            a new run (False; the lost one is marked ``interrupted``).
        cells_total: cells each chip's run plans (None: not a cell job).
    """

    kind: str
    protocol: str
    params: dict[str, Any]
    fn: Callable[..., dict[str, Any]]
    resume_lost: bool
    cells_total: int | None = None


@dataclass
class ProtocolFleetReport:
    """What the fleet measured: one summary per chip (``summary()`` is the ``--json`` document)."""

    kind: str
    engine: dict[str, Any]
    chips: list[dict[str, Any]]
    wall_s: float = 0.0
    fleet_run_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def outcome(self) -> dict[str, Any]:
        """The job holds when every chip's run does (the worst chip's exit code)."""
        codes = [int((c.get("outcome") or {}).get("exit_code") or 0) for c in self.chips]
        failed = sum(int((c.get("outcome") or {}).get("failed") or 0) for c in self.chips)
        return {"exit_code": max(codes, default=0), "failed": failed, "chips_failed": sum(1 for c in codes if c)}

    def summary(self) -> dict[str, Any]:
        """The ``--json`` document and the fleet run's stored summary."""
        return {
            "fleet_run_id": self.fleet_run_id, "kind": self.kind, "engine": self.engine,
            "n_chips": len(self.chips), "chips": self.chips, "wall_s": self.wall_s,
            "bench_time_s_max": max((float(c.get("bench_time_s") or 0.0) for c in self.chips), default=0.0),
            "outcome": self.outcome(), **self.extra,
        }  # fmt: skip


# ---------------------------------------------------------------------- what a chip runs
def characterize_chip(params: CharacterizeParams, programmer: Any, sink: Any, done: Any) -> dict[str, Any]:
    """``memprog characterize`` on one chip (``done`` is never given: a new run each time)."""
    t0 = time.perf_counter()
    counts = characterize(programmer, params, sink=sink)
    return {"counts": counts, "wall_s": time.perf_counter() - t0, "outcome": {"exit_code": 0, "failed": 0}}


def tune_map_chip(
    m: np.ndarray, origin: tuple[int, int], protocol: str, order: str, tolerance_rel: float | None,
    max_pulses: int | None, settle_s: float | None, programmer: Any, sink: Any, done: Any,
) -> dict[str, Any]:
    """``memprog tune --map`` on one chip; ``done`` (a restarted worker's stored cells) is
    read first, as ``tune --map --resume`` does, and only the cells outside band re-tuned."""
    spec = registry.get(protocol, maps=True)
    prog = programmer
    settings = spec.with_user(
        spec.defaults(prog.info, prog.limits), tolerance_rel=tolerance_rel, max_pulses=max_pulses, settle_s=settle_s
    )
    ap = ArrayParams(
        protocol=protocol, order=order, settle_s=settle_s,
        **({spec.name: settings} if spec.name in ArrayParams.model_fields else {}),
        **({"tolerance_rel": tolerance_rel} if tolerance_rel is not None else {}),
        **({"max_pulses": max_pulses} if spec.caller_band and max_pulses else {}),
    )  # fmt: skip
    kept = reread = None
    if done is not None and len(done):
        kept, reread = reread_kept(
            prog, done, ap.tolerance_rel, ap.tolerance_min_us, int(np.isfinite(m).sum()), sink, keep_unaccepted=False
        )  # (an array job's outcome counts a given-up cell by why: it is tuned again)
    res = program_array(prog, m, ap, origin=origin, resume=kept if kept is not None and len(kept) else None, sink=sink)
    if sink is not None:
        sink.record_results(res)  # the final (re-verified) row of every cell
    summary = res.summary()
    summary.update({"technology": prog.info.technology, "settle_s": resolve_settle_s(prog, settle_s),
                    "outcome": result_outcome(res)})  # fmt: skip
    if reread is not None:
        summary["resume"] = reread.summary(None)
    return summary


def characterize_job(params: CharacterizeParams) -> ChipJob:
    """The fleet's ``characterize``: a lost worker's chip is characterised again in a new run."""
    return ChipJob("characterize", "characterize", params.model_dump(), functools.partial(characterize_chip, params), False)


def tune_map_job(
    m: np.ndarray, origin: tuple[int, int], protocol: str, order: str, tolerance_rel: float | None,
    max_pulses: int | None, settle_s: float | None, run_params: dict[str, Any],
) -> ChipJob:
    """The fleet's ``tune --map``: a lost worker's chip resumes its run reading first."""
    fn = functools.partial(tune_map_chip, np.asarray(m, float), tuple(origin), protocol, order, tolerance_rel, max_pulses, settle_s)
    return ChipJob("array", f"array/{protocol}", run_params, fn, True, int(np.isfinite(m).sum()))


# ---------------------------------------------------------------------- the driver
class _Runs(FleetRecord):
    """The fleet run and each chip's runs in the store (none without a URL)."""

    def start_fleet(self, job: ChipJob, params: dict[str, Any]) -> None:
        if self.store is not None:
            self.fleet_id = self.store.start_run(kind="fleet", protocol=job.protocol, params=params)

    def start_chip(self, job: ChipJob, spec: ChipSpec, info: dict[str, Any], extra: dict[str, Any] | None = None) -> str | None:
        """A chip's run, as the single command records it, plus its fleet and place."""
        if self.store is None:
            return None
        return self.store.start_run(
            kind=job.kind, bench=spec.bench, chip_id=info["chip_id"], technology=info["technology"],
            protocol=job.protocol, cells_total=job.cells_total,
            params={**job.params, "fleet_run_id": self.fleet_id, "chip_index": spec.index, "chip_name": spec.name,
                    **(extra or {})},
        )  # fmt: skip


def _run_all(
    engine: LocalEngine | RayEngine, specs: list[ChipSpec], infos: dict[int, dict[str, Any]], job: ChipJob,
    db: str | None, runs: _Runs, run_ids: dict[int, str | None], bar: Progress,
) -> tuple[dict[int, dict[str, Any]], dict[int, int], dict[int, list[str | None]]]:
    """Every chip's job; a lost worker is waited for and asked again, in its run (resumed,
    reading first) or in a new one (the lost run marked ``interrupted``)."""
    out: dict[int, dict[str, Any]] = {}
    restarts = {s.index: 0 for s in specs}
    replaced: dict[int, list[str | None]] = {s.index: [] for s in specs}
    pending = [s.index for s in specs]
    while pending:
        got = engine.call_each(
            "run_protocol", {i: (ProtocolTask(job.fn, db, run_ids[i], job.resume_lost),) for i in pending},
            lambda _i, r: None if isinstance(r, WorkerLost) else bar.update(1),  # chip by chip
        )  # fmt: skip
        pending = []
        for i, r in got.items():
            if not isinstance(r, WorkerLost):
                out[i] = r
                continue
            restarts[i] += 1
            runs.event({"event": "worker_lost", "chip": i, "run_id": run_ids[i], "reason": r.reason, "restart": restarts[i]})
            if restarts[i] > MAX_RESTARTS:
                raise ClusterError(engine.describe().get("address") or "local", f"chip {i}'s worker died {restarts[i]} times")
            engine.wait_alive(i)
            if not job.resume_lost:
                old = run_ids[i]
                run_ids[i] = runs.start_chip(job, specs[i], infos[i], {"replaces_run": old})
                runs.finish(old, "interrupted", {"interrupted_by": "worker lost", "reason": r.reason, "replaced_by": run_ids[i]})
                replaced[i].append(old)
            pending.append(i)
    return out, restarts, replaced


def run_fleet_protocol(
    engine: LocalEngine | RayEngine,
    specs: list[ChipSpec],
    job: ChipJob,
    shape: tuple[int, int],
    *,
    db: str | None = None,
    run_params: dict[str, Any] | None = None,
    summarize: Callable[[Any, str | None, dict[str, Any]], dict[str, Any]] | None = None,
    progress: bool = False,
) -> ProtocolFleetReport:
    """Run ``job`` on every chip of ``specs`` with ``engine`` (see the module docstring).

    Args:
        shape: the chips' (rows, cols), for the Ray engine's memory request.
        run_params: what the fleet run records besides the chips and the engine.
        summarize: ``summarize(store, run_id, worker_summary)`` gives the summary a chip's
            run stores (the single command's document; None: the worker's summary).

    Raises:
        ConfigError: a fleet on several hosts with an SQLite store.
        ClusterError: a chip's worker lost more than ``MAX_RESTARTS`` times.
    """
    t0 = time.perf_counter()
    runs = _Runs(db)
    bar = Progress(progress, len(specs), "chips")
    run_ids: dict[int, str | None] = {}
    try:
        engine.start(specs, *shape)
        infos = engine.call_each("info", {s.index: () for s in specs})
        desc = engine.describe()
        if runs.store is not None and str(runs.store.url).startswith("sqlite") and len(set(desc.get("nodes") or [])) > 1:
            raise ConfigError("--db", "sqlite", "PostgreSQL for a fleet on several hosts", f"the fleet spans {len(set(desc['nodes']))} nodes")
        runs.start_fleet(job, {**(run_params or {}), "job": job.kind, "engine": desc, "chips": [s.to_dict() for s in specs]})
        for s in specs:  # every chip's run exists before the first pulse
            run_ids[s.index] = runs.start_chip(job, s, infos[s.index])
        try:
            got, restarts, replaced = _run_all(engine, specs, infos, job, db, runs, run_ids, bar)
        except BaseException as exc:
            signum = interrupt_signum(exc)
            status, why = ("interrupted", {"interrupted_by": signal_name(signum)}) if signum is not None else ("failed", {"error": str(exc)})
            for rid in [*run_ids.values(), runs.fleet_id]:
                runs.finish(rid, status, why)
            raise
        chips = []
        for s in specs:
            i = s.index
            doc = summarize(runs.store, run_ids[i], got[i]) if summarize is not None else dict(got[i])
            runs.finish(run_ids[i], "complete", doc)
            chips.append({**doc, "index": i, "name": s.name, "chip_id": infos[i]["chip_id"], "seed": s.seed,
                          "run_id": run_ids[i], "restarts": restarts[i], "runs_interrupted": replaced[i],
                          "pid": got[i].get("pid"), "host": got[i].get("host")})  # fmt: skip
        report = ProtocolFleetReport(job.kind, desc, chips, time.perf_counter() - t0, runs.fleet_id)
        runs.finish(runs.fleet_id, "complete", report.summary())
        return report
    finally:
        bar.close()
        try:
            engine.stop()
        finally:
            runs.close()


__all__ = [
    "ChipJob", "ProtocolFleetReport", "characterize_chip", "characterize_job", "run_fleet_protocol",
    "tune_map_chip", "tune_map_job",
]
