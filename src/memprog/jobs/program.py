"""The program job: trained weights in, a programmed, verified chip running the network out.

This is the job of Rao et al. 2023 (seed 000): weights trained elsewhere are downloaded
and programmed precisely into an array, then the array runs the network. Steps:

1. load the file (:mod:`memprog.jobs.weights`: safe, validated before the bench opens);
2. place the layers (:mod:`memprog.hwaware.placement`: differential pairs, tiles, several
   layers on one array, copies, known stuck cells avoided) — refused if it does not fit;
3. program the cells with the chosen write-verify protocol, in chunks: each chunk is
   tuned, re-verified (out-of-band cells re-tuned once) and only then streamed to the
   sink as final rows, so a store holds exactly one row per cell and a killed run resumes
   at the first unfinished chunk (no finished cell is pulsed again). With two copies,
   copy 0 is programmed first and the last copy second, to ``2·G − (copy 0 as reached)``
   (a copy 0 whose twin turned out stuck is re-aimed by the settle, step 4); a protocol
   that aims inside the job's band (predictive) tunes both copies of a chunk as one batch,
   the last copy aimed at ``2·G − (copy 0's target)``, and the settle re-aims the pairs;
4. settle (``programmer.wait``, where the stack provides it: what is left of the settle
   since the protocols last pulsed or read any cell) and verify every cell with one more
   read; cells out of band are re-tuned, and the working copy of a pair outside its band
   re-aimed, together, one batch and one settle per round (:mod:`.program_settle`);
5. run the network on the chip: analog ``VMM?`` where the stack has it (the on-chip
   controller), else from read-out conductances; software vs chip accuracy on a test set;
6. report: per-layer conductance error, stuck cells, wall and bench time, JSON + PNG.

The job is a library function (:func:`run_program`); ``memprog program`` is a thin CLI
over it. This module holds the job's entry points (its settings, :func:`run_program`,
:func:`make_plan`, :func:`write_report`); the steps live beside it:
:mod:`~memprog.jobs.program_plan` (placement and mapping), :mod:`~memprog.jobs.program_cells`
(programming, through the protocol registry), :mod:`~memprog.jobs.program_settle` (the
settle and the re-aim of pairs), :mod:`~memprog.jobs.program_inference` (the network on the
chip) and :mod:`~memprog.jobs.program_report` (figures, JSON, heat maps). The store is optional (a duck-typed Contract A ``Store``): without one, the job
still runs and reports; with one, every cell and event lands in a ``program`` run.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
from pydantic import Field

from memprog.core.errors import ConfigError
from memprog.core.validation import MemprogModel
from memprog.hwaware.placement import Placement
from memprog.jobs.program_cells import _Programmer, _record, program_plan
from memprog.jobs.program_inference import chip_inference, effective_matrices
from memprog.jobs.program_plan import DEFAULT_MAPPING_US, Plan, make_plan
from memprog.jobs.program_report import ProgramReport, layer_figures, write_report
from memprog.jobs.program_settle import settle_and_verify
from memprog.jobs.resume_reads import reread_kept
from memprog.jobs.weights import ConductanceMap, Network
from memprog.protocols import registry
from memprog.protocols.common import Clock
from memprog.protocols.events import EventSink, sink_or_null
from memprog.protocols.programmer import CellProgrammer
from memprog.protocols.results import TuneResult
from memprog.protocols.settle import resolve_settle_s

PROTOCOLS = registry.names()  # what ProgramParams.protocol accepts


class ProgramParams(MemprogModel):
    """How to program a network (every field has a safe default)."""

    protocol: Literal["alibart", "feedforward", "denoise", "predictive"] = "alibart"
    copies: int | None = Field(
        default=None, ge=1, le=2, description="cells per conductance; None: 2 where it fits"
    )
    g_min_us: float | None = Field(
        default=None, gt=0, description="low end of the weight mapping; None: the file's, else the chip's"
    )
    g_max_us: float | None = Field(default=None, gt=0, description="high end of the weight mapping")
    tolerance_rel: float = Field(default=0.01, gt=0, lt=1, description="band / target")
    tolerance_min_us: float = Field(default=3.0, ge=0, description="floor of the band (µS)")
    chunk_cells: int = Field(
        default=16384,
        ge=2,
        description="cells per lock-step chunk (larger: fewer lock-step iterations; the "
        "cells the protocol finishes reach the store as they finish, whatever the chunk)",
    )
    settle_s: float | None = Field(
        default=None,
        ge=0,
        description="bench time (s) to let pass before the final verification read (None: the "
        "chip technology's settle, protocols/settle.py, as every other command)",
    )
    input_v: float | None = Field(
        default=None, gt=0, description="VMM input voltage for an input of 1; None: the read voltage"
    )
    avoid_stuck: bool = True
    accuracy_tolerance: float = Field(
        default=0.03,
        ge=0,
        le=1,
        description="the job holds when chip accuracy is at most this much (a fraction: "
        "0.03 = 3 points) below software (memprog.reporting.outcome)",
    )
    order: Literal["row-major", "column-major", "snake", "high-first", "low-first"] = Field(
        default="row-major",
        description="programming order of the cells (protocols.array.order_cells); on a "
        "passive crossbar it decides which cells collect the disturb of later writes",
    )


def run_program(
    bench: Any,
    source: Network | ConductanceMap,
    params: ProgramParams | None = None,
    test_set: tuple[np.ndarray, np.ndarray] | None = None,
    sink: EventSink | None = None,
    run_id: str | None = None,
    known_stuck: dict[tuple[int, int], float] | None = None,
    done: TuneResult | None = None,
    placement: Placement | None = None,
    progress: bool = False,
    on_plan: Any = None,
) -> ProgramReport:
    """Program ``source`` on an open bench, settle, verify, run the network; see the module docstring.

    Args:
        bench: an open :class:`~memprog.bench.assembly.Bench` (or anything with ``programmer``).
        source: a :class:`Network` or a :class:`ConductanceMap`.
        test_set: (x [n, in], labels [n]) for software vs chip accuracy.
        sink: where cells and events go (a run store's sink).
        known_stuck: {(row, col): conductance µS} of cells known stuck (variability DB).
        done, placement: an earlier, interrupted run's finished cells and layout (resume):
            every kept cell is read again first; those outside their band are re-tuned
            with the unfinished ones (``summary()["resume"]`` gives the counts).
        on_plan: called with the :class:`Plan` before the first pulse (the CLI stores it).
    """
    p = params or ProgramParams()
    prog: CellProgrammer = bench.programmer
    clock = Clock(prog)
    b0 = getattr(bench, "bench_time_s", None)
    t0 = time.perf_counter()
    plan = make_plan(source, prog, p, known_stuck, placement)
    if test_set is not None and isinstance(source, Network):
        x, y = test_set
        if x.shape[1] != source.sizes[0]:
            raise ConfigError("test set inputs", x.shape[1], f"{source.sizes[0]} (the network's input width)")
    if on_plan is not None:
        on_plan(plan)
    s = sink_or_null(sink)
    resume_info = None
    if done is not None and len(done):
        # resume reads before it trusts: kept cells now outside their band are tuned again
        done, resume_info = reread_kept(prog, done, p.tolerance_rel, p.tolerance_min_us, plan.n, s)
    stats: dict[str, int] = {}
    # one engine: a feedforward chip is characterised once; its log times pulses by the
    # bench's clock where the programmer has none (serial stacks)
    bench_now = (lambda: float(bench.bench_time_s)) if b0 is not None else None
    tuner = _Programmer(prog, p, bench_now)
    # where the stack can wait, the job's final settle re-aims pairs beside a failed copy
    # (only for protocols that settle their own batches: others keep the in-chunk re-tune,
    # which costs them no settle of its own)
    settles = callable(getattr(prog, "wait", None)) and resolve_settle_s(prog, p.settle_s) > 0
    defer = settles and tuner.protocol_settles
    res = program_plan(prog, plan, p, s, done, progress, stats, engine=tuner, defer_pairs=defer)
    # settle, then one verification read of every cell
    settled = settle_and_verify(bench, prog, plan, res, p.settle_s, tuner, s)
    settle = settled.text()
    s.record_event({"event": "verify", "settle": settle, "within_tolerance": int(res.within_tolerance.sum())})
    # the settled reading is what the chip holds: it replaces each cell's row in the store
    # (the store keeps the latest row per cell), so the dashboard counts what the CLI counts
    _record(s, res)
    sw = chip = readout = None
    inference = None
    mats_chip = effective_matrices(plan, res.final_us) if isinstance(source, Network) else None
    layers = layer_figures(source, plan, res, mats_chip)
    if test_set is not None and isinstance(source, Network):
        assert mats_chip is not None
        sw, chip, readout, inference = chip_inference(
            source, plan, test_set, mats_chip, prog, p.input_v, progress, s
        )
    res.wall_s = time.perf_counter() - t0
    bt = clock.bench_s
    if bt is None and isinstance(b0, float):  # the stack has no clock, the bench has one
        bt = float(bench.bench_time_s) - b0
    res.bench_time_s = bt
    report = ProgramReport(run_id, res, plan, sw, chip, readout, inference, layers, res.wall_s, bt, settle)
    report.settle_numbers = settled.numbers()
    report.accuracy_tolerance = p.accuracy_tolerance
    if resume_info is not None:
        report.extra["resume"] = resume_info.summary(None)
        # kept cells pulsed again because their twin (programmed now) turned out stuck: in
        # the chunk, or (protocols that settle their batches) re-aimed in the job's settle
        report.extra["resume"]["cells_kept_twin_compensated"] = stats.get("kept_twin_compensated", 0) + _kept_reaimed(res, done, tuner.pair_reaimed)
    return report


def _kept_reaimed(res: TuneResult, done: TuneResult | None, paired: np.ndarray | None) -> int:
    """Kept cells (``done``: the interrupted run's rows still in band) the job's settle
    re-aimed for a pair (``paired``: per cell of ``res``)."""
    if paired is None or done is None or not len(done) or not len(res):
        return 0
    cols = int(max(np.max(res.cols), np.max(done.cols))) + 1
    key = np.asarray(res.rows, np.int64) * cols + np.asarray(res.cols, np.int64)
    kd = np.asarray(done.rows, np.int64) * cols + np.asarray(done.cols, np.int64)
    return int((np.isin(key, kd) & np.asarray(paired, bool)).sum())


__all__ = [
    "ProgramParams",
    "ProgramReport",
    "Plan",
    "make_plan",
    "program_plan",
    "run_program",
    "write_report",
    "PROTOCOLS",
    "DEFAULT_MAPPING_US",
]
