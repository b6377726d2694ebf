"""Programming the plan's cells: the protocol engine, chunks, twin copies, streamed rows.

Why a module of its own: this is the part of the program job that pulses. Cells are
programmed in chunks of logical conductances (copy 0 to its share, the last copy to
``2·G − what copy 0 reached``, a copy 0 whose twin turned out stuck re-aimed; with a
protocol that aims inside the job's band and the job's settle re-aiming pairs, both copies
in one batch: :func:`_tune_copies_together`, where a protocol that takes a ``retarget``
hook has the twins of the copies it finds stuck re-aimed inside that batch:
:mod:`memprog.jobs.program_first_batch`), each
chunk's rows reach the sink once it is final, and a resumed run pulses no finished cell
again. The protocol comes from the registry (:mod:`memprog.protocols.registry`): the job
asks it for the settings, the tuner and the re-tune rule instead of naming protocols.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from memprog.core.errors import ConfigError
from memprog.hwaware.order import copy0_order
from memprog.jobs.program_first_batch import FIRST_BATCH_SETTLE_ROUNDS, PairRetarget
from memprog.jobs.program_plan import Plan, _twin
from memprog.jobs.program_pulses import PulseLog
from memprog.protocols import registry
from memprog.protocols.common import Progress, target_range_us
from memprog.protocols.events import EventSink, EventsOnly, sink_or_null, wants_bulk
from memprog.protocols.programmer import CellProgrammer
from memprog.protocols.results import FLAG_DISTURBED, FLAG_SKIPPED, FLAG_STUCK, TuneResult
from memprog.protocols.settle import reverify

if TYPE_CHECKING:
    from memprog.jobs.program import ProgramParams

# The job's own choices per protocol, on top of the protocol's stack defaults.
# [choice] Alibart: single loop reads, as in the paper: the job's band floor
# (tolerance_min_us, 3 µS) is above the as-programmed RTN of a few µS peak-to-peak, so
# averaging every loop read buys no precision the map needs and costs most of the job's
# time; the settle-and-re-verify stays.
JOB_SETTINGS: dict[str, dict[str, Any]] = {"alibart": {"noise_probe_reads": 0}}


class _Programmer:
    """Chunked, resumable write-verify of a list of cells with one protocol."""

    def __init__(self, prog: CellProgrammer, params: ProgramParams, clock: Callable[[], float] | None = None) -> None:
        self.prog = prog
        self.params = params
        self.spec = spec = registry.get(params.protocol)
        upd: dict[str, Any] = dict(JOB_SETTINGS.get(spec.name, {}))
        if spec.caller_band:  # it aims inside the job's band, after the job's settle
            upd.update(
                tolerance_rel=params.tolerance_rel, tolerance_min_us=params.tolerance_min_us,
                settle_s=params.settle_s,
            )  # fmt: skip
        if spec.verify_at_end:
            # the job settles, reads and re-aims every cell itself at the end (run_program):
            # the protocol's own end-of-batch disturb check would only read them once more
            upd["verify_at_end"] = False
        # [fact] the job's stack defaults have been capped by the bench's limits only for
        # the protocols that take the job's band (predictive); a protocol refuses ramps
        # beyond the limits before any pulse
        limits = prog.limits if spec.caller_band else None
        self.settings = spec.defaults(prog.info, limits, **upd)
        # one engine per job: a feedforward chip is characterised once, a denoise cell's
        # calibration is kept for its re-tunes. Its protocols pulse and read through the
        # job's log, so the job's final settle waits only for the cells touched last
        self.log = PulseLog(prog, clock)
        self.pair_reaimed: np.ndarray | None = None  # set by the job's settle (program_settle)
        # the copies re-aimed for a stuck twin inside their first batch (plan order; None:
        # none was, see program_first_batch)
        self.first_reaimed: np.ndarray | None = None
        # the relaxation time the protocol measured on the job's largest batch (its
        # ``relaxation_fit`` event): the job's small re-tune batches start from it
        self.relax_tau_s: float | None = None
        self.relax_cells = 0
        self.tuner = spec.tuner(self.log, self.settings)  # type: ignore[arg-type]
        self.retuner = spec.retuner(self.tuner, self.log, self.settings)  # type: ignore[arg-type]
        # protocols with relaxation-aware verification settle and re-verify every batch
        # against the job's band themselves; the job's own re-verify read is then redundant
        self.protocol_settles = spec.holds_band

    def tune(self, r: np.ndarray, c: np.ndarray, t: np.ndarray, sink: EventSink) -> TuneResult:
        """Tune the cells with the job's protocol and settings."""
        return self.tuner.tune(r, c, t, sink=sink)

    def retune(self, r: np.ndarray, c: np.ndarray, t: np.ndarray, sink: EventSink) -> TuneResult:
        """Bring back cells that relaxed out of band after the job's settle, without settling
        (the job settles them all together): the registry's re-tune (Alibart by its fine
        ramp, as the array job's re-tunes; the other protocols as they tune)."""
        return self.retuner.tune(r, c, t, sink=sink)

    def tune_verify(self, r: np.ndarray, c: np.ndarray, t: np.ndarray, sink: EventSink) -> TuneResult:
        """Tune the cells, read them again, re-tune those out of the map's band once."""
        p = self.params
        res = self.tune(r, c, t, sink)
        res.tolerance_us = np.maximum(p.tolerance_rel * res.target_us, p.tolerance_min_us)
        if self.protocol_settles:
            return res  # the protocol settled and re-verified its cells already
        reverify(
            self.prog, res, lambda idx: self.tune(res.rows[idx], res.cols[idx], res.target_us[idx], sink),
            sink, passes=1, adopt_reads=True,
        )  # fmt: skip
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
    defer_pairs: bool = False,
) -> TuneResult:
    """Program every cell of ``plan``; one result row per cell, in plan order.

    Chunks of logical conductances, each: copy 0 tuned to its share (or to the whole when
    its twin is known stuck), then copy 1 tuned to ``2·G − copy 0 as reached``, then a
    copy 0 whose twin turned out stuck re-tuned to make up for it; the chunk's rows go to
    the sink together, once, when every cell of it is final. Where the job re-aims pairs
    in its settle (``defer_pairs``) and the protocol aims inside the job's band, both
    copies are tuned as one batch instead (:func:`_tune_copies_together`).

    Args:
        done: cells finished by an earlier, interrupted run of the same plan (from the
            store), already re-read by :func:`run_program` (``jobs.resume_reads``): they
            are not pulsed again; ``final_us`` is their fresh reading.
        defer_pairs: the caller settles every cell at the end and re-aims there the working
            copy of a pair whose other copy failed
            (:func:`memprog.jobs.program_settle.settle_and_verify`): copy 0 is then not
            re-tuned here for a twin found stuck. Why: that re-tune is a batch of its own,
            and a protocol that settles its batches (predictive, Alibart) waits a whole
            settle for it, only for the job's settle to wait again; re-aimed at the end, it
            shares the settle the job waits anyway, with the twin's reading after it.
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
    # both copies of a chunk in one batch where the protocol aims inside the job's band and
    # the job's settle re-aims the pairs (see _tune_copies_together)
    together = copies > 1 and defer_pairs and engine.spec.caller_band
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
            rb = None
            if together and ib.size:
                ra, rb = _tune_copies_together(
                    engine, plan, ia, ib, ta, todo_a, finished, final, total, lo, hi, inner
                )
            elif todo_a.any():
                ka = ia[todo_a]
                ra = engine.tune_verify(c["row"][ka], c["col"][ka], ta[todo_a], inner)
                final[ka] = ra.final_us
            # the last copy makes up what copy 0 reached
            if ib.size and not together:
                todo_b = ~finished[ib] & ~plan.known_stuck[ib]
                if todo_b.any():
                    kb_ = ib[todo_b]
                    fa = final[ia[todo_b]]
                    # a copy 0 without a reading (a protocol that gave up on it): its share
                    tb = np.clip(np.where(np.isfinite(fa), total[kb_] - fa, c["g_us"][kb_]), lo, hi)
                    rb = engine.tune_verify(c["row"][kb_], c["col"][kb_], tb, inner)
                    final[kb_] = rb.final_us
                    # copy 1 stuck: re-tune its copy 0 (not yet recorded) to make up for it
                    # (where the job settles at the end, its settle does it: see defer_pairs)
                    if ra is not None and not defer_pairs:
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
                    if kfix.any() and not defer_pairs:
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


def _tune_copies_together(
    engine: _Programmer,
    plan: Plan,
    ia: np.ndarray,
    ib: np.ndarray,
    ta: np.ndarray,
    todo_a: np.ndarray,
    finished: np.ndarray,
    final: np.ndarray,
    total: np.ndarray,
    lo: float,
    hi: float,
    sink: EventSink,
) -> tuple[TuneResult | None, TuneResult | None]:
    """Copy 0 and the last copy of a chunk as one batch: (copy 0's result, the last copy's).

    Why: a protocol that settles its batches waits a settle (and its relaxation
    observation) per batch; the last copy used to wait for copy 0's, only to aim at
    ``2·G − what copy 0 reached``. A protocol that aims inside the job's band
    (``caller_band``: both copies land within the band of ``G``, so their mean does) needs
    no such compensation, and the job's final settle re-aims every pair whose mean is out
    of its band anyway — with readings a whole settle old, better than the ones the last
    copy used to aim at. So the last copy is aimed at ``2·G − copy 0's target`` (a kept
    copy 0 on resume: what it holds now) and both share one batch, one relaxation
    observation and one settle. ``final`` is updated.
    """
    c = plan.cells
    todo_b = ~finished[ib] & ~plan.known_stuck[ib]
    if not (todo_a.any() or todo_b.any()):
        return None, None
    aimed_a = np.where(todo_a, ta, final[ia])  # a kept copy 0 holds what it was re-read at
    tb = np.clip(np.where(np.isfinite(aimed_a), total[ib] - aimed_a, c["g_us"][ib]), lo, hi)
    ka, kb = ia[todo_a], ib[todo_b]
    k = np.concatenate([ka, kb])
    t = np.concatenate([ta[todo_a], tb[todo_b]])
    hook = None
    if engine.spec.retargets and engine.protocol_settles and engine.prog.info.has_gate:
        p = engine.params
        hook = PairRetarget(engine.log, plan, p.tolerance_rel, p.tolerance_min_us, lo, hi)
    if hook is None:
        res = engine.tune_verify(c["row"][k], c["col"][k], t, sink)
    else:
        seen = _RelaxationSeen(sink)
        # the job settles, reads and re-tunes every cell after (program_settle): the
        # protocol's own settle takes FIRST_BATCH_SETTLE_ROUNDS rounds here
        first = engine.spec.tuner(
            engine.log,
            engine.settings.model_copy(update={"settle_rounds": FIRST_BATCH_SETTLE_ROUNDS}),  # type: ignore[arg-type]
        )
        res = first.tune_retargeting(c["row"][k], c["col"][k], t, hook, sink=seen)  # type: ignore[attr-defined]
        if seen.tau_s is not None and (engine.relax_tau_s is None or seen.cells >= engine.relax_cells):
            engine.relax_tau_s, engine.relax_cells = seen.tau_s, seen.cells
        # a re-aimed copy's row keeps the band of the pair (G's), as the settle's re-aims
        res.tolerance_us = hook.band_us(t)
        moved = hook.reaimed
        engine.first_reaimed = moved if engine.first_reaimed is None else engine.first_reaimed | moved
        n = int(moved.sum())
        if n:
            sink.record_event({"event": "pair_compensation", "cells": n, "in_first_batch": True})
    final[k] = res.final_us
    ra = res.subset(np.arange(ka.size)) if ka.size else None
    rb = res.subset(np.arange(ka.size, k.size)) if kb.size else None
    return ra, rb


class _RelaxationSeen:
    """A sink passing everything on, noting the relaxation time the protocol measured
    (its ``relaxation_fit`` event: ``tau_s`` over ``cells``)."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self.wants_trace = getattr(sink, "wants_trace", False)
        self.tau_s: float | None = None
        self.cells = 0

    def record_event(self, event: dict[str, Any]) -> None:  # noqa: D102
        if event.get("event") == "relaxation_fit" and int(event.get("cells", 0)) > self.cells:
            self.tau_s, self.cells = float(event["tau_s"]), int(event["cells"])
        self.sink.record_event(event)

    def record_result(self, row: dict[str, Any]) -> None:  # noqa: D102
        self.sink.record_result(row)

    def record_results(self, result: TuneResult) -> None:  # noqa: D102
        if wants_bulk(self.sink):  # (a per-row sink here is the job's EventsOnly: nothing to pass)
            self.sink.record_results(result)  # type: ignore[attr-defined]


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


__all__ = ["program_plan", "JOB_SETTINGS"]
