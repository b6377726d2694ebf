"""The program job's settle: let the cells relax, read every cell, re-tune and re-aim pairs.

Why a module of its own: after the last chunk the job waits what is left of the settle
since its protocols last pulsed or read any cell, reads every cell, and then, one batch
and one settle per round (never one per copy or per kind of fix), re-tunes the cells that
relaxed out of their band and re-aims the working copy of a pair outside its band at what
the other copy holds now. What this leaves in the result is what the chip holds: the
report, the store and the inference all start from it."""

from __future__ import annotations

from typing import Any

import numpy as np

from memprog.jobs.program_cells import _Programmer
from memprog.jobs.program_plan import Plan, _twin
from memprog.protocols.common import target_range_us
from memprog.protocols.events import EventSink, EventsOnly
from memprog.protocols.programmer import CellProgrammer
from memprog.protocols.results import (
    FLAG_DISTURBED,
    FLAG_DRIFTED,
    FLAG_RELAXED,
    FLAG_SKIPPED,
    FLAG_STUCK,
    TuneResult,
    add_flag,
)
from memprog.protocols.settle import DEFAULT_SETTLE_ROUNDS, adaptive_read, resolve_settle_s

# [choice] the re-tune rounds of the protocols' settle (DEFAULT_SETTLE_ROUNDS) plus the two
# rounds the job used to spend on pairs after them: a pair whose copy drifted out in the
# last of the first kind still gets its twin re-aimed. Rounds end as soon as one finds
# nothing to re-tune, so a round only costs a settle where a cell was pulsed for it.
JOB_SETTLE_ROUNDS = DEFAULT_SETTLE_ROUNDS + 2


def _copies(plan: Plan) -> int:
    c = plan.cells["copy"]
    return int(c.max()) + 1 if len(c) else 1


def settle_and_verify(
    bench: Any,
    prog: CellProgrammer,
    plan: Plan,
    res: TuneResult,
    settle_s_asked: float | None,
    tuner: _Programmer,
    s: EventSink,
    rounds: int = JOB_SETTLE_ROUNDS,
) -> str:
    """Settle, then one verification read of every cell; ``res`` updated. Returns what was
    done, in words (the report's ``settle``).

    Where the stack can wait: the job waits what is left of the technology's settle since
    its protocols last pulsed or read any cell (:class:`~memprog.jobs.program_pulses.PulseLog`:
    after a pulse the relaxation, after the protocol's accepting read the state of the
    telegraph noise must have had time to change, or the verification checks nothing; a
    cell whose settle is over needs no second one), reads every cell, and then, in at most
    ``rounds`` rounds, re-tunes together the cells out of their band (flag ``relaxed``) and
    the working copy of each pair outside its band beside a copy that is stuck or failed
    (re-aimed at ``2·G`` minus what that copy holds now; flag ``retuned``), waits one settle
    for them and reads them (and those pairs' other copies) again. A cell still out after
    the last round is flagged ``drifted_out``. Every reading the result keeps was taken a
    full settle after the cell's last pulse and the protocol's last read of it.
    """
    wait = getattr(prog, "wait", None) or getattr(bench, "wait", None)
    settle_s = resolve_settle_s(prog, settle_s_asked)  # None: the technology's (as levels, tune)
    res.extra["programmed_us"] = res.final_us.copy()
    settles = callable(getattr(prog, "wait", None)) and settle_s > 0
    tol = np.broadcast_to(np.asarray(res.tolerance_us, float), (len(res),))
    every = np.arange(len(res))
    if not settles:
        if callable(wait) and settle_s > 0:
            wait(settle_s)
        _read(prog, res, every, tol)
        if callable(wait) and settle_s > 0:
            return f"waited {settle_s:g} s"
        return "not available on this stack" if settle_s > 0 else "skipped"
    # one wait: what is left of the settle since the protocols last pulsed or read any cell
    waited = _settle(prog, tuner, res, every, settle_s)
    # averaged as the protocols verify (a cell's telegraph noise can be a few µS p-p on
    # HfO2, so one read would report the fluctuation, not the programmed state)
    _read(prog, res, every, tol)
    s.record_event(
        {
            "event": "settle",
            "round": 0,
            "settle_s": settle_s,
            "waited_s": waited,
            "checked": len(res),
        }
    )
    quiet = EventsOnly(s)  # re-tunes report events; each cell's final row is written by the job
    retuned = np.zeros(len(res), dtype=bool)
    paired = np.zeros(len(res), dtype=bool)
    settles_n = int(waited > 0)
    if _copies(plan) < 2:  # no pairs: the protocols' own rounds, none for pairs
        rounds = min(rounds, DEFAULT_SETTLE_ROUNDS)
    # a passive crossbar's writes disturb the cells on their row and column (V/3): after a
    # round every cell is read again, or a neighbour's reading kept from before would say
    # what the chip no longer holds; a 1T1R array's transistors isolate the unselected cells
    read_all = not prog.info.has_gate
    for k in range(rounds + 1):
        out = res.converged & (np.abs(res.final_us - res.target_us) > tol)
        pair_idx, pair_t, others = _pairs_to_reaim(prog, plan, res, tol, out)
        if k == rounds or not (out.any() or pair_idx.size):
            break  # (no settle is left to read a re-tune after: nothing more is pulsed)
        targets = res.target_us.copy()
        targets[pair_idx] = pair_t
        move = out.copy()
        move[pair_idx] = True
        idx = np.flatnonzero(move)
        r_mask = out.copy()
        r_mask[pair_idx] = False
        p_mask = np.zeros(len(res), dtype=bool)
        p_mask[pair_idx] = True
        _retune(tuner, res, idx, targets, quiet)
        add_flag(res.flags, r_mask, FLAG_RELAXED)
        add_flag(res.flags, p_mask, FLAG_DISTURBED)
        retuned |= r_mask
        paired |= p_mask
        if pair_idx.size:
            s.record_event({"event": "pair_compensation", "cells": int(pair_idx.size)})
        look = every if read_all else np.union1d(idx, others)
        waited_k = _settle(prog, tuner, res, look, settle_s)
        waited += waited_k
        settles_n += int(waited_k > 0)
        _read(prog, res, look, tol)
        s.record_event(
            {"event": "settle", "round": k + 1, "settle_s": settle_s, "waited_s": waited_k,
             "checked": int(look.size), "retuned": int(r_mask.sum()), "pair_compensation": int(pair_idx.size)}
        )  # fmt: skip
    tuner.pair_reaimed = paired  # (the resume summary counts its kept cells)
    out = res.converged & (np.abs(res.final_us - res.target_us) > tol)
    if out.any():  # out of band after the last settle: the result says so
        res.converged[out] = False
        add_flag(res.flags, out, FLAG_DRIFTED)
    return (
        f"waited {waited:g} s in {settles_n} settle(s) of up to {settle_s:g} s after the cells' "
        f"last pulse or read, {int(retuned.sum())} cells re-tuned"
        + (
            f", {int(paired.sum())} re-tuned for a pair whose twin is stuck or failed"
            if paired.any()
            else ""
        )
    )


def _retune(
    tuner: _Programmer, res: TuneResult, idx: np.ndarray, targets: np.ndarray, sink: EventSink
) -> None:
    """Re-tune the cells ``idx`` to ``targets`` (no settle: the caller settles); ``res`` updated."""
    again = tuner.retune(res.rows[idx], res.cols[idx], targets[idx], sink)
    res.target_us[idx] = targets[idx]
    res.pulses[idx] += again.pulses
    res.reads[idx] += again.reads
    res.converged[idx] = again.converged
    res.final_us[idx] = again.final_us
    for j in np.flatnonzero(~again.converged):  # the cells the re-tune gave up on
        i = idx[j]
        words = (*str(res.flags[i]).split(","), *str(again.flags[j]).split(","))
        res.flags[i] = ",".join(dict.fromkeys(w for w in words if w))


def _settle(
    prog: CellProgrammer, tuner: _Programmer, res: TuneResult, idx: np.ndarray, settle_s: float
) -> float:
    """Wait what is left of ``settle_s`` since the last pulse or read of the cells ``idx``."""
    left = tuner.log.settle_left_s(res.rows[idx], res.cols[idx], settle_s)
    if left > 0:
        prog.wait(left)
    return left


def _read(prog: CellProgrammer, res: TuneResult, idx: np.ndarray, tol: np.ndarray) -> None:
    """Averaged reads of the cells ``idx`` (as many as each one's noise needs) into ``res``."""
    if idx.size == 0:
        return
    g, n_reads, _ = adaptive_read(
        prog, res.rows[idx], res.cols[idx], None, 0.25 * tol[idx], min_reads=2, max_reads=16
    )
    res.reads[idx] += n_reads
    res.final_us[idx] = g


def _pairs_to_reaim(
    prog: CellProgrammer, plan: Plan, res: TuneResult, tol: np.ndarray, out: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The copies to re-aim for pairs outside their band; ``out``: cells re-tuned to their own
    target this round (their pairs wait for the next one).

    Why: a pair's copies are judged together (memprog.reporting.outcome), and the last copy
    aimed at ``2·G − what copy 0 reached`` when it was tuned — but copy 0's reading after the
    settle is not that one (a copy the protocol gave up on ends where it ends, a stuck
    cell's reading moves with its telegraph noise and slow drift). With the settled reads in
    hand, a pair outside its band gets its last copy re-aimed at ``2·G`` minus what copy 0
    holds now, or copy 0 at ``2·G`` minus the last copy when that one is stuck or failed
    (a cell that drifts out after each re-tune is not chased again). Returns
    (cells to re-aim, their new targets, the other copies of those pairs).
    """
    c = plan.cells
    none = np.zeros(0, np.int64)
    copies = _copies(plan)
    if copies < 2:
        return none, np.zeros(0), none
    lo, hi = target_range_us(prog)
    first = np.flatnonzero(c["copy"] == 0)
    twin = _twin(c, first, np.flatnonzero(c["copy"] == copies - 1))
    fin = res.final_us
    stuck = res.has_flag(FLAG_STUCK) | res.has_flag(FLAG_SKIPPED)
    off = np.abs(0.5 * (fin[first] + fin[twin]) - c["g_us"][first]) > np.maximum(
        tol[first], tol[twin]
    )
    off &= np.isfinite(fin[first]) & np.isfinite(fin[twin]) & ~out[first] & ~out[twin]
    # the copy to move: the last one, unless it is stuck, or failed (gave up, drifted out)
    # beside a copy 0 that holds its band: then copy 0 makes up for it
    within = np.abs(fin - res.target_us) <= tol
    failed = stuck | (~res.converged & ~within)
    to_a = stuck[twin] | (failed[twin] & ~failed[first])
    move_b = off & ~to_a
    move_a = off & to_a & ~stuck[first]
    idx = np.concatenate([twin[move_b], first[move_a]])
    other = np.concatenate([first[move_b], twin[move_a]])
    t_new = np.clip(copies * c["g_us"][idx] - fin[other], lo, hi)
    # a re-aim that asks for the target the cell already has is no re-aim (the twin would
    # have to leave the chip's range: the pair is the stuck cell's, reported, not failed)
    keep = t_new != res.target_us[idx]
    return idx[keep], t_new[keep], other[keep]


__all__ = ["settle_and_verify"]
