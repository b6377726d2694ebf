"""The program job's settle: let the whole array relax, read every cell, re-aim pairs.

Why a module of its own: after the last chunk the job settles all cells as one batch (as
every protocol settles its own batches), re-tunes those that relaxed out of their band,
reads the rest, and then re-aims the working copy of a pair whose other copy is stuck or
unfinished at what that copy holds now. What this leaves in the result is what the chip
holds: the report, the store and the inference all start from it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memprog.jobs.program_cells import _Programmer
from memprog.jobs.program_plan import Plan, _twin
from memprog.protocols.common import target_range_us
from memprog.protocols.events import EventSink, EventsOnly
from memprog.protocols.programmer import CellProgrammer
from memprog.protocols.results import FLAG_DISTURBED, FLAG_SKIPPED, FLAG_STUCK, TuneResult, add_flag
from memprog.protocols.settle import adaptive_read, resolve_settle_s, settle_and_reverify


def settle_and_verify(
    bench: Any, prog: CellProgrammer, plan: Plan, res: TuneResult, settle_s_asked: float | None,
    tuner: _Programmer, s: EventSink,
) -> str:
    """Settle, then one verification read of every cell; ``res`` updated. Returns what was
    done, in words (the report's ``settle``)."""
    wait = getattr(prog, "wait", None) or getattr(bench, "wait", None)
    settle_s = resolve_settle_s(prog, settle_s_asked)  # None: the technology's (as levels, tune)
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
        return (
            f"waited {settle_s:g} s x {rep.rounds}, {int(rep.retuned.sum())} cells re-tuned"
            + (f", {fixed} re-tuned for a pair whose twin is stuck or unfinished" if fixed else "")
        )
    if callable(wait) and settle_s > 0:
        return f"waited {settle_s:g} s"
    return "not available on this stack" if settle_s > 0 else "skipped"


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


__all__ = ["settle_and_verify", "settle_pairs"]
