"""The program job: trained weights in, a programmed, verified chip running the network out.

This is the job of Rao et al. 2023 (seed 000): weights trained elsewhere are downloaded
and programmed precisely into an array, then the array runs the network. Steps:

1. load the file (:mod:`memprog.jobs.weights`: safe, validated before the bench opens);
2. place the layers (:mod:`memprog.jobs.placement`: differential pairs, tiles, several
   layers on one array, copies, known stuck cells avoided) — refused if it does not fit;
3. program the cells with the chosen write-verify protocol, in chunks: each chunk is
   tuned, re-verified (out-of-band cells re-tuned once) and only then streamed to the
   sink as final rows, so a store holds exactly one row per cell and a killed run resumes
   at the first unfinished chunk (no finished cell is pulsed again). With two copies,
   copy 0 is programmed first and the last copy second, to ``2·G − (copy 0 as reached)``;
4. settle (``programmer.wait``, where the stack provides it) and verify every cell with
   one more read;
5. run the network on the chip: analog ``VMM?`` where the stack has it (the on-chip
   controller), else from read-out conductances; software vs chip accuracy on a test set;
6. report: per-layer conductance error, stuck cells, wall and bench time, JSON + PNG.

The job is a library function (:func:`run_program`); ``memprog program`` is a thin CLI
over it. The store is optional (a duck-typed Contract A ``Store``): without one, the job
still runs and reports; with one, every cell and event lands in a ``program`` run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from memprog.core.errors import ConfigError
from memprog.core.validation import MemprogModel
from memprog.jobs.fetch import file_sha256  # noqa: F401 - re-exported: the job's content hash
from memprog.jobs.placement import Placement, copy0_order, place_network, weights_to_pairs
from memprog.jobs.weights import ConductanceMap, Network, predict_from_scores
from memprog.protocols.common import Clock, Progress, target_range_us
from memprog.protocols.events import EventSink, EventsOnly, sink_or_null
from memprog.protocols.programmer import CellProgrammer
from memprog.protocols.results import FLAG_DISTURBED, FLAG_SKIPPED, FLAG_STUCK, TuneResult, add_flag
from memprog.protocols.settle import adaptive_read, resolve_settle_s, settle_and_reverify

PROTOCOLS = ("alibart", "feedforward", "denoise", "predictive")


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


@dataclass
class Plan:
    """What will be written where: the placement, per-cell targets and the layer scales."""

    placement: Placement | None
    cells: dict[str, np.ndarray]  # row, col, layer, i, j, sign, copy, g_us (per-copy nominal)
    scales: list[float]
    mapping: dict[str, float]
    known_stuck: np.ndarray  # bool per cell: not pulsed
    known_stuck_us: np.ndarray  # their conductance (from the store), NaN unknown

    @property
    def n(self) -> int:
        return int(self.cells["row"].size)

    def to_params(self) -> dict[str, Any]:
        return {
            "placement": None if self.placement is None else self.placement.to_dict(),
            "scales": list(self.scales),
            "mapping": dict(self.mapping),
        }


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

    def outcome(self) -> dict[str, Any]:
        """What the job achieved and its exit decision (:func:`memprog.reporting.outcome.report_outcome`)."""
        from memprog.reporting.outcome import report_outcome

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
            "outcome": o,
            "software_accuracy": self.software_accuracy,
            "chip_accuracy": self.chip_accuracy,
            "readout_accuracy": self.readout_accuracy,
            "inference": self.inference,
            "copies": None if self.plan.placement is None else self.plan.placement.copies,
            "layers": self.layers,
            "pulses_total": int(r.pulses.sum()),
            "settle": self.settle,
            "wall_s": self.wall_s,
            "job_wall_s": self.wall_s,
            "bench_time_s": self.bench_time_s,
        }
        out.update(self.extra)
        return out


# --------------------------------------------------------------------------- planning
def make_plan(
    source: Network | ConductanceMap,
    programmer: CellProgrammer,
    params: ProgramParams,
    known_stuck: dict[tuple[int, int], float] | None = None,
    placement: Placement | None = None,
) -> Plan:
    """Place the network (or the map) and compute every cell's nominal target."""
    info = programmer.info
    lo, hi = target_range_us(programmer)
    stuck = known_stuck or {}
    stuck_mask = None
    if stuck and params.avoid_stuck:
        stuck_mask = np.zeros((info.rows, info.cols), dtype=bool)
        rs, cs = np.array(list(stuck)).T
        keep = (rs < info.rows) & (cs < info.cols)
        stuck_mask[rs[keep], cs[keep]] = True
    if isinstance(source, ConductanceMap):
        m = source.map_us
        if m.shape[0] > info.rows or m.shape[1] > info.cols:
            raise ConfigError(
                "conductance map shape",
                m.shape,
                f"at most {info.rows}x{info.cols} (the array)",
                f"{max(0, m.shape[0] - info.rows)} rows and {max(0, m.shape[1] - info.cols)} columns too many",
            )
        rr, cc = np.nonzero(~np.isnan(m))
        g = m[rr, cc]
        _check_range("conductance map", g, lo, hi)
        z = np.zeros(rr.size, dtype=np.int64)
        cells = {"row": rr, "col": cc, "layer": z, "i": rr, "j": cc, "sign": z + 1, "copy": z, "g_us": g}
        plan = Plan(None, cells, [], {}, np.zeros(rr.size, bool), np.full(rr.size, np.nan))
    else:
        mats = source.chip_matrices()
        g_min, g_max = _mapping(source, params, lo, hi, info.technology)
        if placement is None:
            placement = place_network(
                [m.shape for m in mats], (info.rows, info.cols), params.copies, stuck_mask
            )
        cells = placement.cells()
        g = np.empty(cells["row"].size)
        scales = []
        for k, m in enumerate(mats):
            gp, gm, sc = weights_to_pairs(m, g_min, g_max)
            scales.append(float(sc))
            sel = cells["layer"] == k
            i, j, s = cells["i"][sel], cells["j"][sel], cells["sign"][sel]
            g[sel] = np.where(s > 0, gp[i, j], gm[i, j])
        cells["g_us"] = g
        plan = Plan(
            placement, cells, scales, {"g_min_us": g_min, "g_max_us": g_max},
            np.zeros(g.size, bool), np.full(g.size, np.nan),
        )
    if stuck:
        key = list(zip(plan.cells["row"].tolist(), plan.cells["col"].tolist(), strict=True))
        ks = np.array([k in stuck for k in key])
        plan.known_stuck = ks
        plan.known_stuck_us = np.array([stuck.get(k, np.nan) for k in key])
    return plan


# Weight-mapping windows per technology when neither the file nor the user gives one.
DEFAULT_MAPPING_US: dict[str, tuple[float, float]] = {
    "hfo2_1t1r": (50.0, 500.0),  # [Rao] levels start at 50 µS; [choice] the lowest decade:
    # small VMM currents, a 1 % band still above the as-programmed RTN of a few µS
    "tio2_passive": (100.0, 400.0),  # [Drolet] working range 100-400 µS
    "tio2x_feedforward": (420.0, 500.0),  # [Diao] HRS/LRS = 1.19 window of the preset
}


def _mapping(net: Network, params: ProgramParams, lo: float, hi: float, technology: str = "") -> tuple[float, float]:
    """Weight mapping window: the caller's, else the file's, else the technology's.

    Unknown technology: [choice] the inner 10-90 % of the chip's target range.
    """
    m = net.mapping or {}
    d_lo, d_hi = DEFAULT_MAPPING_US.get(technology, (lo + 0.1 * (hi - lo), lo + 0.9 * (hi - lo)))
    g_min = params.g_min_us or m.get("g_min_us") or d_lo
    g_max = params.g_max_us or m.get("g_max_us") or d_hi
    if not g_min < g_max:
        raise ConfigError("g_min_us/g_max_us", (g_min, g_max), "g_min_us < g_max_us")
    _check_range("weight mapping", np.array([g_min, g_max]), lo, hi)
    return float(g_min), float(g_max)


def _check_range(what: str, g: np.ndarray, lo: float, hi: float) -> None:
    bad = (g < lo) | (g > hi)
    if bad.any():
        raise ConfigError(what, float(g[bad][0]), f"[{lo:g}, {hi:g}] µS (the chip's target range)")


# --------------------------------------------------------------------------- programming
class _Programmer:
    """Chunked, resumable write-verify of a list of cells with one protocol."""

    def __init__(self, prog: CellProgrammer, params: ProgramParams) -> None:
        self.prog = prog
        self.params = params
        self._denoiser = None
        self._ff = None
        self._pred = None
        from memprog.protocols.array import alibart_defaults

        ali = alibart_defaults(prog.info)
        if "noise_probe_reads" in type(ali).model_fields:
            # [choice] single loop reads, as in the paper: the job's band floor
            # (tolerance_min_us, 3 µS) is above the as-programmed RTN of a few µS
            # peak-to-peak, so averaging every loop read buys no precision the map needs
            # and costs most of the job's time; the settle-and-re-verify stays.
            ali = ali.model_copy(update={"noise_probe_reads": 0})

        # the job settles, reads and re-aims every cell itself at the end (run_program): the
        # protocol's own end-of-batch disturb check would only read the same cells once more
        self.alibart = ali.model_copy(update={"verify_at_end": False})
        # protocols with relaxation-aware verification (Contract C stacks) settle and
        # re-verify every batch themselves; the job's own re-verify read is then redundant
        self.protocol_settles = params.protocol == "alibart" and "settle_s" in type(ali).model_fields
        if params.protocol == "predictive":
            from memprog.protocols.predictive import predictive_defaults

            self._pred = predictive_defaults(
                prog.info, prog.limits, tolerance_rel=params.tolerance_rel,
                tolerance_min_us=params.tolerance_min_us, settle_s=params.settle_s,
            )  # fmt: skip
            self.protocol_settles = True  # it settles and verifies each batch itself
        elif params.protocol == "denoise":
            from memprog.protocols.denoise import DenoiseTuner

            self._denoiser = DenoiseTuner(prog)
        elif params.protocol == "feedforward":
            from memprog.protocols.feedforward import FeedforwardTuner

            self._ff = FeedforwardTuner(prog)

    def tune(self, r: np.ndarray, c: np.ndarray, t: np.ndarray, sink: EventSink) -> TuneResult:
        if self._pred is not None:
            from memprog.protocols.predictive import tune_predictive

            return tune_predictive(self.prog, r, c, t, params=self._pred, sink=sink)
        if self._denoiser is not None:
            return self._denoiser.tune(r, c, t, sink=sink)
        if self._ff is not None:
            return self._ff.tune(r, c, t, sink=sink)
        from memprog.protocols.alibart import tune_alibart

        return tune_alibart(self.prog, r, c, t, params=self.alibart, sink=sink)

    def retune(self, r: np.ndarray, c: np.ndarray, t: np.ndarray, sink: EventSink) -> TuneResult:
        """Bring back cells that relaxed out of band after the job's settle, without settling
        (the job settles them all together): Alibart by its fine ramp, as the array job's
        re-tunes; the other protocols as they tune."""
        if self._pred is not None:
            from memprog.protocols.predictive import tune_predictive

            return tune_predictive(self.prog, r, c, t, params=self._pred.model_copy(update={"settle_s": 0.0}), sink=sink)
        if self._denoiser is not None or self._ff is not None:
            return self.tune(r, c, t, sink)
        from memprog.protocols.alibart import RETUNE_COARSE_REL, tune_alibart

        a = self.alibart
        update: dict[str, Any] = {"coarse_min_rel": max(a.coarse_min_rel, RETUNE_COARSE_REL)}
        if "settle_s" in type(a).model_fields:
            update["settle_s"] = 0.0
        return tune_alibart(self.prog, r, c, t, params=a.model_copy(update=update), sink=sink)

    def tune_verify(self, r: np.ndarray, c: np.ndarray, t: np.ndarray, sink: EventSink) -> TuneResult:
        """Tune the cells, read them again, re-tune those out of the map's band once."""
        p = self.params
        res = self.tune(r, c, t, sink)
        res.tolerance_us = np.maximum(p.tolerance_rel * res.target_us, p.tolerance_min_us)
        if self.protocol_settles:
            return res  # the protocol settled and re-verified its cells already
        return self._reverify(res, sink)

    def _reverify(self, res: TuneResult, sink: EventSink) -> TuneResult:
        g = self.prog.read(res.rows, res.cols)
        res.reads = res.reads + 1
        out = res.converged & (np.abs(g - res.target_us) > res.tolerance_us)
        res.final_us = np.where(res.converged, g, res.final_us)
        if out.any():
            idx = np.flatnonzero(out)
            sink.record_event({"event": "reverify", "out_of_band": int(idx.size)})
            again = self.tune(res.rows[idx], res.cols[idx], res.target_us[idx], sink)
            res.final_us[idx] = again.final_us
            res.pulses[idx] += again.pulses
            res.reads[idx] += again.reads
            res.converged[idx] = again.converged
            for j, i in enumerate(idx):
                res.flags[i] = ",".join(w for w in (str(again.flags[j]), FLAG_DISTURBED) if w)
        return res


class _StreamFinished:
    """The protocols' sink inside the job: events pass, and each cell the protocol
    finishes goes to the store at once (with the job's per-cell columns), not only when
    its whole chunk is final.

    Why: a lock-step chunk is large (one batch per copy is what keeps the job fast: every
    lock-step iteration costs about the same whatever the batch size, so 2,048-cell chunks
    cost the digits job ~1.9x the CPU), and a chunk's rows used to reach the store only
    when all of it was final — an interrupt at half time kept nothing (issue 20:
    ``interrupted 0/16240``). Streaming the protocol's finished cells keeps them. Such a
    row is provisional (a later settle re-verify or twin compensation may tune the cell
    again, and the chunk's final row then replaces it: the store keeps the latest row of
    each cell); a resume reads every kept cell before it trusts it
    (:mod:`memprog.jobs.resume_reads`), so a provisional row that the chip no longer
    matches is tuned again.
    """

    def __init__(
        self,
        sink: EventSink,
        pos_of_flat: np.ndarray,
        n_cols: int,
        extra: dict[str, np.ndarray],
        params: ProgramParams,
    ) -> None:
        self.sink = sink
        self.wants_trace = getattr(sink, "wants_trace", False)
        self._pos = pos_of_flat
        self._n_cols = n_cols
        self._extra = extra
        self._params = params

    @classmethod
    def wrap(
        cls, sink: EventSink, plan: Plan, n_cols: int, extra: dict[str, np.ndarray], params: ProgramParams
    ) -> EventSink:
        """The streaming wrapper for a bulk sink (the run store); EventsOnly otherwise.

        ``extra``: the per-cell columns (plan order) every stored row of the job carries.
        """
        from memprog.protocols.events import wants_bulk

        if not wants_bulk(sink) or plan.n == 0:
            return EventsOnly(sink)
        flat = plan.cells["row"] * n_cols + plan.cells["col"]
        pos = np.full(int(flat.max()) + 1, -1, dtype=np.int64)
        pos[flat] = np.arange(plan.n)
        return cls(sink, pos, n_cols, extra, params)

    def record_event(self, event: dict[str, Any]) -> None:  # noqa: D102
        self.sink.record_event(event)

    def record_result(self, row: dict[str, Any]) -> None:  # noqa: D102
        pass  # per-row streams: the chunk's rows come at its end

    def record_results(self, result: TuneResult) -> None:
        """Forward the cells a protocol just finished, tagged with their place in the plan."""
        if not len(result):
            return
        flat = np.asarray(result.rows, dtype=np.int64) * self._n_cols + np.asarray(result.cols, dtype=np.int64)
        ok = flat < self._pos.size
        k = np.where(ok, self._pos[np.minimum(flat, self._pos.size - 1)], -1)
        if (k < 0).any():  # not a cell of the plan: nothing to store
            result = result.subset(np.flatnonzero(k >= 0))
            k = k[k >= 0]
        for key, v in self._extra.items():
            result.extra[key] = v[k]
        # the job's band (what its final rows carry), not the protocol's inner one
        p = self._params
        result.tolerance_us = np.maximum(p.tolerance_rel * np.asarray(result.target_us, float), p.tolerance_min_us)
        self.sink.record_results(result)  # type: ignore[attr-defined]


def _record(sink: EventSink, res: TuneResult) -> None:
    bulk = getattr(sink, "record_results", None)
    if callable(bulk):
        bulk(res)
    else:
        for i in range(len(res)):
            sink.record_result(res.row_dict(i))


def _concat(parts: list[TuneResult]) -> TuneResult:
    parts = [p for p in parts if len(p)]
    if not parts:
        return _empty()
    return parts[0] if len(parts) == 1 else TuneResult.concat(parts)


def _empty() -> TuneResult:
    z = np.zeros(0)
    return TuneResult("program", z, z, z, z, z, z, z.astype(bool), z.astype(object), z)


def _skipped(plan: Plan, idx: np.ndarray, extra: dict[str, np.ndarray]) -> TuneResult:
    c = plan.cells
    g = plan.known_stuck_us[idx]
    return TuneResult(
        "program",
        c["row"][idx],
        c["col"][idx],
        c["g_us"][idx],
        np.where(np.isnan(g), 0.0, g),
        np.zeros(idx.size),
        np.zeros(idx.size),
        np.zeros(idx.size, bool),
        np.full(idx.size, f"{FLAG_SKIPPED},{FLAG_STUCK}", dtype=object),
        np.zeros(idx.size),
        extra={k: v[idx] for k, v in extra.items()},
    )


def program_plan(
    programmer: CellProgrammer,
    plan: Plan,
    params: ProgramParams,
    sink: EventSink | None = None,
    done: TuneResult | None = None,
    progress: bool = False,
    stats: dict[str, int] | None = None,
    engine: _Programmer | None = None,
) -> TuneResult:
    """Program every cell of ``plan``; one result row per cell, in plan order.

    Chunks of logical conductances, each: copy 0 tuned to its share (or to the whole when
    its twin is known stuck), then copy 1 tuned to ``2·G − copy 0 as reached``, then a
    copy 0 whose twin turned out stuck re-tuned to make up for it; the chunk's rows go to
    the sink together, once, when every cell of it is final.

    Args:
        done: cells finished by an earlier, interrupted run of the same plan (from the
            store), already re-read by :func:`run_program` (``jobs.resume_reads``): they
            are not pulsed again; ``final_us`` is their fresh reading.
    """
    s = sink_or_null(sink)
    c = plan.cells
    n = plan.n
    lo, hi = target_range_us(programmer)
    copies = plan.placement.copies if plan.placement is not None else 1
    info = programmer.info
    flat = c["row"] * info.cols + c["col"]
    have: dict[int, int] = {}
    if done is not None and len(done):
        dflat = done.rows * info.cols + done.cols
        pos = {int(f): k for k, f in enumerate(flat)}
        outside = [int(f) for f in dflat if int(f) not in pos]
        if outside:
            raise ConfigError(
                "resume", f"{len(outside)} stored cells outside the plan", "a run of the same weights and bench"
            )
        have = {pos[int(f)]: k for k, f in enumerate(dflat)}
    # layer/i/j/sign/nominal_us: what memprog.reporting.outcome needs to judge the pairs, stored
    # with every cell so the dashboard recomputes the CLI's numbers from the store
    extra = {
        "layer": c["layer"], "copy": c["copy"], "sign": c["sign"], "i": c["i"], "j": c["j"],
        "nominal_us": c["g_us"],
    }  # fmt: skip
    total = c["g_us"] * copies
    first = copy0_order(c, params.order)  # the order hardware-aware training keys disturb by
    twin = _twin(c, first, np.flatnonzero(c["copy"] == copies - 1)) if copies > 1 else None
    results: list[tuple[np.ndarray, TuneResult]] = []
    if have:
        ks = np.array(sorted(have), dtype=np.int64)
        prev = done.subset(np.array([have[int(k)] for k in ks]))  # type: ignore[union-attr]
        for key, v in extra.items():
            prev.extra[key] = v[ks]
        results.append((ks, prev))
    final = np.full(n, np.nan)
    kept_working = np.zeros(n, bool)  # resume: kept cells that can still be tuned
    for ks, r in results:
        final[ks] = r.final_us
        kept_working[ks] = r.converged & ~r.has_flag(FLAG_STUCK)
    s.record_event({"event": "program_start", "cells": n, "resumed_cells": len(have), "copies": copies})
    bar = Progress(progress, n, "program")
    bar.update(len(have))
    engine = engine if engine is not None else _Programmer(programmer, params)
    inner = _StreamFinished.wrap(s, plan, info.cols, extra, params)
    step = max(1, params.chunk_cells // copies)
    finished = np.zeros(n, bool)
    finished[list(have)] = True
    try:
        for a0 in range(0, first.size, step):
            ia = first[a0 : a0 + step]
            ib = twin[a0 : a0 + step] if twin is not None else np.zeros(0, np.int64)
            chunk: list[tuple[np.ndarray, TuneResult]] = []
            # stuck cells known beforehand are not pulsed
            for idx in (ia, ib):
                sk = idx[plan.known_stuck[idx] & ~finished[idx]]
                if sk.size:
                    r = _skipped(plan, sk, extra)
                    final[sk] = r.final_us
                    chunk.append((sk, r))
            # copy 0: its share, or the whole when the twin is known stuck
            ta = c["g_us"][ia].copy()
            if ib.size:
                kb = plan.known_stuck_us[ib]
                ta = np.where(np.isfinite(kb), np.clip(total[ia] - kb, lo, hi), ta)
                # resume: a copy 0 re-tuned beside a kept last copy makes up what that
                # copy holds now (its fresh re-read), so the pair lands on 2·G
                kept_b = finished[ib] & ~plan.known_stuck[ib] & np.isfinite(final[ib])
                ta = np.where(kept_b, np.clip(total[ia] - final[ib], lo, hi), ta)
            ra = None
            todo_a = ~finished[ia] & ~plan.known_stuck[ia]
            if todo_a.any():
                ka = ia[todo_a]
                ra = engine.tune_verify(c["row"][ka], c["col"][ka], ta[todo_a], inner)
                final[ka] = ra.final_us
            # the last copy makes up what copy 0 reached
            rb = None
            if ib.size:
                todo_b = ~finished[ib] & ~plan.known_stuck[ib]
                if todo_b.any():
                    kb_ = ib[todo_b]
                    fa = final[ia[todo_b]]
                    # a copy 0 without a reading (a protocol that gave up on it): its share
                    tb = np.clip(np.where(np.isfinite(fa), total[kb_] - fa, c["g_us"][kb_]), lo, hi)
                    rb = engine.tune_verify(c["row"][kb_], c["col"][kb_], tb, inner)
                    final[kb_] = rb.final_us
                    # copy 1 stuck: re-tune its copy 0 (not yet recorded) to make up for it
                    if ra is not None:
                        stuck_b = rb.has_flag(FLAG_STUCK) | (~rb.converged & ~rb.within_tolerance)
                        a_pos = np.flatnonzero(todo_a)  # positions of ia in ra
                        a_of = {int(p): q for q, p in enumerate(a_pos)}
                        fix = [
                            (a_of[int(p)], q)
                            for q, p in enumerate(np.flatnonzero(todo_b))
                            if stuck_b[q] and int(p) in a_of and ra.converged[a_of[int(p)]]
                            and np.isfinite(rb.final_us[q])
                        ]
                        if fix:
                            qa = np.array([f[0] for f in fix])
                            qb = np.array([f[1] for f in fix])
                            t_new = np.clip(total[ia[a_pos[qa]]] - rb.final_us[qb], lo, hi)
                            again = engine.tune_verify(ra.rows[qa], ra.cols[qa], t_new, inner)
                            ra.target_us[qa] = again.target_us
                            ra.tolerance_us[qa] = again.tolerance_us
                            ra.final_us[qa] = again.final_us
                            ra.pulses[qa] += again.pulses
                            ra.reads[qa] += again.reads
                            ra.converged[qa] = again.converged
                            for j, q in enumerate(qa):
                                ra.flags[q] = ",".join(w for w in (str(again.flags[j]), FLAG_DISTURBED) if w)
                            final[ia[a_pos[qa]]] = again.final_us
                            s.record_event({"event": "twin_compensation", "cells": int(qa.size)})
                    # resume: a kept copy 0 beside a copy 1 that turned out stuck makes up
                    # for it too (its new row replaces the kept one)
                    a_of_b = ia[todo_b]
                    kfix = (
                        (rb.has_flag(FLAG_STUCK) | (~rb.converged & ~rb.within_tolerance))
                        & finished[a_of_b] & kept_working[a_of_b] & np.isfinite(rb.final_us)
                    )  # fmt: skip
                    if kfix.any():
                        ka = a_of_b[kfix]
                        t_new = np.clip(total[ka] - rb.final_us[kfix], lo, hi)
                        again = engine.tune_verify(c["row"][ka], c["col"][ka], t_new, inner)
                        again.flags = np.array(
                            [",".join(w for w in (str(f), FLAG_DISTURBED) if w) for f in again.flags], dtype=object
                        )
                        final[ka] = again.final_us
                        chunk.append((ka, again))
                        s.record_event({"event": "twin_compensation", "cells": int(ka.size), "kept": True})
                        if stats is not None:
                            stats["kept_twin_compensated"] = stats.get("kept_twin_compensated", 0) + int(ka.size)
            if ra is not None:
                chunk.append((ia[todo_a], ra))
            if rb is not None:
                chunk.append((ib[~finished[ib] & ~plan.known_stuck[ib]], rb))
            if chunk:
                for ks, r in chunk:
                    for key, v in extra.items():
                        r.extra[key] = v[ks]
                merged = _concat([r for _, r in chunk])
                _record(s, merged)
                s.record_event({"event": "checkpoint", "cells_done": int(finished.sum()) + len(merged)})
                for ks, _r in chunk:
                    finished[ks] = True
                results.extend(chunk)
                bar.update(len(merged))
    finally:
        bar.close()
    order: list[Any] = [None] * n
    for ks, r in results:
        for q, k in enumerate(ks.tolist()):
            order[k] = (r, q)
    missing = [k for k in range(n) if order[k] is None]
    if missing:  # pragma: no cover - every cell is in exactly one part
        raise RuntimeError(f"{len(missing)} cells without a result")
    return _gather(order)


def settle_pairs(
    prog: CellProgrammer, plan: Plan, res: TuneResult, tuner: _Programmer, settle_s: float,
    sink: EventSink, rounds: int = 2,
) -> int:
    """After the job's settle: make up, once more, for a copy that cannot hold its share.

    Why: a pair's copies are judged together (memprog.reporting.outcome), and twin compensation during
    programming aims the last copy at ``2·G − what the first reached`` — but a stuck cell's
    reading moves (its telegraph noise, its slow drift) and a copy the protocol gave up on
    ends where it ends. With the settled reads in hand, a pair outside its band whose one
    copy is stuck or unfinished gets its other, working copy re-tuned to ``2·G`` minus what
    the first holds now, then the bench settles and both are read again. Returns the number
    of cells re-tuned.
    """
    c = plan.cells
    copies = int(c["copy"].max()) + 1 if len(c["copy"]) else 1
    if copies < 2 or settle_s <= 0 or not callable(getattr(prog, "wait", None)):
        return 0
    lo, hi = target_range_us(prog)
    first = np.flatnonzero(c["copy"] == 0)
    twin = _twin(c, first, np.flatnonzero(c["copy"] == copies - 1))
    stuck = res.has_flag(FLAG_STUCK) | res.has_flag(FLAG_SKIPPED)
    tol = np.broadcast_to(np.asarray(res.tolerance_us, float), (len(res),))
    done = 0
    for _ in range(rounds):
        fin = res.final_us
        off = np.abs(0.5 * (fin[first] + fin[twin]) - c["g_us"][first]) > np.maximum(tol[first], tol[twin])
        off &= np.isfinite(fin[first]) & np.isfinite(fin[twin])
        # the copy to move: working (not stuck), beside a copy that is stuck or unfinished
        # the last copy makes up what the first holds now; the first, when the last is stuck
        move_b = off & ~stuck[twin]
        move_a = off & stuck[twin] & ~stuck[first]
        idx = np.concatenate([twin[move_b], first[move_a]])
        other = np.concatenate([first[move_b], twin[move_a]])
        if idx.size == 0:
            break
        t_new = np.clip(copies * c["g_us"][idx] - fin[other], lo, hi)
        again = tuner.retune(res.rows[idx], res.cols[idx], t_new, sink)
        prog.wait(settle_s)
        both = np.concatenate([idx, other])
        g, n_reads, _ = adaptive_read(
            prog, res.rows[both], res.cols[both], None, 0.25 * tol[both], min_reads=2, max_reads=16
        )
        res.reads[both] += n_reads
        res.target_us[idx] = t_new
        res.pulses[idx] += again.pulses
        res.reads[idx] += again.reads
        res.final_us[both] = g
        res.converged[idx] = np.abs(g[: idx.size] - t_new) <= tol[idx]
        moved = np.zeros(len(res), dtype=bool)
        moved[idx] = True
        add_flag(res.flags, moved, FLAG_DISTURBED)
        sink.record_event({"event": "pair_compensation", "cells": int(idx.size)})
        done += int(idx.size)
    return done


def _twin(c: dict[str, np.ndarray], from_idx: np.ndarray, to_idx: np.ndarray) -> np.ndarray:
    """For each cell of ``from_idx``, the index (in the whole cell list) of its twin in
    ``to_idx``: same layer, input, output and sign."""

    def key(idx: np.ndarray) -> np.ndarray:
        return ((c["layer"][idx] * 100003 + c["i"][idx]) * 100003 + c["j"][idx]) * 2 + (c["sign"][idx] > 0)

    kf, kt = key(from_idx), key(to_idx)
    srt = np.argsort(kt)
    return to_idx[srt[np.searchsorted(kt[srt], kf)]]


def _gather(order: list[Any]) -> TuneResult:
    """One TuneResult from (result, index) pairs, in the given order."""
    groups: dict[int, tuple[TuneResult, list[int], list[int]]] = {}
    for pos, (res, i) in enumerate(order):
        g = groups.setdefault(id(res), (res, [], []))
        g[1].append(i)
        g[2].append(pos)
    subs, positions = [], []
    for res, idx, pos in groups.values():
        subs.append(res.subset(np.array(idx, dtype=np.int64)))
        positions.extend(pos)
    allres = _concat(subs)
    inv = np.empty(len(positions), dtype=np.int64)
    inv[np.array(positions)] = np.arange(len(positions))
    out = allres.subset(inv)
    out.protocol = "program"
    return out


# --------------------------------------------------------------------------- inference
def effective_matrices(plan: Plan, g_us: np.ndarray) -> list[np.ndarray]:
    """Layer matrices (in+1, out) as the chip holds them, from per-cell conductances."""
    pl = plan.placement
    assert pl is not None
    c = plan.cells
    mats = []
    for k, (nin, nout) in enumerate(pl.layer_shapes):
        d = np.zeros((nin, nout))
        sel = c["layer"] == k
        np.add.at(d, (c["i"][sel], c["j"][sel]), c["sign"][sel] * g_us[sel])
        mats.append(d * plan.scales[k] / pl.copies)
    return mats


def vmm_forward(
    net: Network, plan: Plan, x: np.ndarray, vmm: Any, n_rows: int, input_v: float, progress: bool = False
) -> np.ndarray:
    """Output scores computed by the chip's analog VMM, tile by tile, sample by sample.

    Each sample's layer input (with the bias input 1) is scaled so its largest magnitude
    maps to ``input_v`` (linear, undone digitally); every copy row of an input gets the
    same voltage; the ``+`` minus ``−`` column currents, divided by the voltage scale, the
    copies and the layer scale, are the layer's pre-activations.
    """
    pl = plan.placement
    assert pl is not None
    a = np.asarray(x, dtype=float)
    nl = len(pl.layer_shapes)
    bar = Progress(progress, a.shape[0] * len(pl.tiles), "inference")
    try:
        for k in range(nl):
            nin, nout = pl.layer_shapes[k]
            ext = np.hstack([a, np.ones((a.shape[0], 1))])
            s = np.maximum(np.abs(ext).max(axis=1), 1.0)
            z = np.zeros((a.shape[0], nout))
            for t in pl.tiles_of(k):
                v = np.zeros(n_rows)
                for n in range(a.shape[0]):
                    v[:] = 0.0
                    v[t.rows] = (input_v / s[n]) * ext[n, t.in_lo : t.in_hi][None, :]
                    cur = np.asarray(vmm(v), dtype=float)
                    diff = (cur[t.cols_plus] - cur[t.cols_minus]) * 1e6  # µS·V
                    z[n, t.out_lo : t.out_hi] += diff * (s[n] / input_v)
                bar.update(a.shape[0])
            z *= plan.scales[k] / pl.copies
            from memprog.jobs.weights import activate

            a = activate(z, net.output if k == nl - 1 else net.activation)
    finally:
        bar.close()
    return a


def find_vmm(programmer: CellProgrammer) -> Any:
    """The stack's analog VMM (row voltages → column currents, A), or None.

    A capability, not a simulation check: the on-chip controller's driver has ``vmm``.
    """
    f = getattr(programmer, "vmm", None)
    if callable(f):
        return f
    ctrl = getattr(programmer, "controller", None)
    f = getattr(ctrl, "vmm", None)
    return f if callable(f) else None


# --------------------------------------------------------------------------- the job
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
        from memprog.jobs.resume_reads import reread_kept

        done, resume_info = reread_kept(prog, done, p.tolerance_rel, p.tolerance_min_us, plan.n, s)
    stats: dict[str, int] = {}
    tuner = _Programmer(prog, p)  # one engine: a feedforward chip is characterised once
    res = program_plan(prog, plan, p, s, done, progress, stats, engine=tuner)
    # settle, then one verification read of every cell
    wait = getattr(prog, "wait", None) or getattr(bench, "wait", None)
    settle_s = resolve_settle_s(prog, p.settle_s)  # None: the technology's (as levels, tune)
    res.extra["programmed_us"] = res.final_us.copy()
    # averaged as the protocols verify (a cell's telegraph noise can be a few µS p-p on
    # HfO2, so one read would report the fluctuation, not the programmed state)
    checked = np.zeros(len(res), dtype=bool)
    settles = callable(getattr(prog, "wait", None)) and settle_s > 0
    rep = None
    if settles:
        # the whole job settles as one batch, as every protocol's own batches do: cells that
        # relaxed out of band since their batch's settle are re-tuned by the fine ramp and
        # settled again (protocols/settle.py: at most DEFAULT_SETTLE_ROUNDS rounds; a cell
        # still out after the last one is flagged drifted_out)
        checked = res.converged.copy()
        quiet = EventsOnly(s)  # re-tunes report events; each cell's final row is written below
        rep = settle_and_reverify(
            prog, res, lambda idx: tuner.retune(res.rows[idx], res.cols[idx], res.target_us[idx], quiet),
            settle_s, sink=quiet,
        )
    elif callable(wait) and settle_s > 0:
        wait(settle_s)
    rest = np.flatnonzero(~checked)  # cells the settle did not read (not converged, stuck, no wait)
    if rest.size:
        tol = np.broadcast_to(np.asarray(res.tolerance_us, float), (len(res),))
        g, n_reads, _ = adaptive_read(
            prog, res.rows[rest], res.cols[rest], None, 0.25 * tol[rest], min_reads=2, max_reads=16
        )
        res.reads[rest] += n_reads
        res.final_us[rest] = g
    if rep is not None:
        # every cell now read after the settle: pairs a stuck or unfinished copy holds back
        fixed = settle_pairs(prog, plan, res, tuner, settle_s, EventsOnly(s))
        settle = (
            f"waited {settle_s:g} s x {rep.rounds}, {int(rep.retuned.sum())} cells re-tuned"
            + (f", {fixed} re-tuned for a pair whose twin is stuck or unfinished" if fixed else "")
        )
    elif callable(wait) and settle_s > 0:
        settle = f"waited {settle_s:g} s"
    else:
        settle = "not available on this stack" if settle_s > 0 else "skipped"
    s.record_event({"event": "verify", "settle": settle, "within_tolerance": int(res.within_tolerance.sum())})
    # the settled reading is what the chip holds: it replaces each cell's row in the store
    # (the store keeps the latest row per cell), so the dashboard counts what the CLI counts
    _record(s, res)
    layers: list[dict[str, Any]] = []
    sw = chip = readout = None
    inference = None
    if isinstance(source, Network):
        mats_sw = source.chip_matrices()
        mats_chip = effective_matrices(plan, res.final_us)
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
                    "cell_error_rms_us": float(np.sqrt(np.mean(res.error_us[sel] ** 2))),
                    "scale_per_us": plan.scales[k],
                }
            )
        if test_set is not None:
            x, y = test_set
            sw = float(np.mean(source.predict(x) == y))
            readout = float(np.mean(source.predict(x, mats_chip) == y))
            vmm = find_vmm(prog)
            if vmm is not None:
                vin = p.input_v or prog.info.read_v
                scores = vmm_forward(source, plan, x, vmm, prog.info.rows, vin, progress)
                chip = float(np.mean(predict_from_scores(scores, source.output) == y))
                inference = "vmm"
            else:
                chip = readout
                inference = "readout"
            s.record_event({"event": "inference", "software_accuracy": sw, "chip_accuracy": chip, "inference": inference})
    else:
        sel = np.ones(len(res), bool)
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
    res.wall_s = time.perf_counter() - t0
    bt = clock.bench_s
    if bt is None and isinstance(b0, float):  # the stack has no clock, the bench has one
        bt = float(bench.bench_time_s) - b0
    res.bench_time_s = bt
    report = ProgramReport(run_id, res, plan, sw, chip, readout, inference, layers, res.wall_s, bt, settle)
    report.accuracy_tolerance = p.accuracy_tolerance
    if resume_info is not None:
        report.extra["resume"] = resume_info.summary(None)
        # kept cells pulsed again because their twin (programmed now) turned out stuck
        report.extra["resume"]["cells_kept_twin_compensated"] = stats.get("kept_twin_compensated", 0)
    return report


# --------------------------------------------------------------------------- report
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
    from memprog.core.jsonout import dumps

    path.write_text(dumps(summary, indent=2))  # strict: null, never NaN
    return files


def _plot_layer(report: ProgramReport, k: int, out: Path, technology: str, chip: str | None = None) -> None:
    """Target, achieved and error maps of one layer's cells, at their physical array positions.

    Colour limits are percentiles (memprog.reporting.figures): a few stuck cells hundreds of µS away
    must not make target and achieved look alike; flagged cells carry their own colours.
    """
    from memprog.reporting.figures import (
        array_axes,
        heat_map,
        paint_flags,
        pyplot,
        robust_limits,
        run_title,
    )
    from memprog.reporting.outcome import ERROR_CMAP, within_tolerance

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


__all__ = [
    "ProgramParams",
    "ProgramReport",
    "Plan",
    "make_plan",
    "program_plan",
    "run_program",
    "effective_matrices",
    "vmm_forward",
    "find_vmm",
    "write_report",
    "file_sha256",
    "PROTOCOLS",
    "DEFAULT_MAPPING_US",
]
