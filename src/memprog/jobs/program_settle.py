"""The program job's settle: let the cells relax, read every cell, re-tune and re-aim pairs.

Why a module of its own: after the last chunk the job waits what is left of the settle
since its protocols last pulsed or read any cell, reads every cell, and then, one batch
and one settle per round (never one per copy or per kind of fix), re-tunes the cells that
relaxed out of their band and re-aims the working copy of a pair outside its band at what
the other copy holds now. What this leaves in the result is what the chip holds: the
report, the store and the inference all start from it.

With a protocol that aims inside the job's band (predictive, issue 25), every round is a
5 s settle, so the settle is arranged to need as few as it can: the copies beside a stuck
or given-up one are re-aimed before the first settle (their settle is the one every cell
waits anyway), the cells whose settle runs out meanwhile are read and the few out of band
re-tuned at once, re-tunes carry a settle of the protocol's own, and the verification's
reads are spread over the telegraph noise (back to back they re-tuned cells that held
their band, round after round)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from memprog.jobs.program_cells import _Programmer
from memprog.jobs.program_plan import Plan, _twin
from memprog.jobs.program_pulses import READ_GAP_S as READ_GAP_S  # (re-export: tests, docs)
from memprog.jobs.program_pulses import spaced_read
from memprog.protocols.common import target_range_us
from memprog.protocols.events import EventSink, EventsOnly
from memprog.protocols.programmer import CellProgrammer
from memprog.protocols.results import (
    FLAG_BUDGET,
    FLAG_DISTURBED,
    FLAG_DRIFTED,
    FLAG_LIMIT_CYCLE,
    FLAG_RELAXED,
    FLAG_RETRIES,
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


@dataclass(frozen=True)
class JobSettle:
    """What the job's settle did: its numbers for scripts, :meth:`text` for people.

    Why both: the report's ``settle`` sentence reads well, but a script must get the time
    waited and the re-tunes as numbers, not by parsing prose.
    """

    waited_s: float  # bench time waited, every round together
    rounds: int  # settles that waited (the first, then one per re-tune round)
    settle_s: float  # the settle asked for (each wait is at most this)
    cells_retuned: int  # cells re-tuned after relaxing out of their band
    pair_reaims: int  # working copies re-aimed beside a stuck or failed twin
    form: str = ""  # "" the full sentence; else a short form ({waited} filled in)

    def text(self) -> str:
        """The sentence the report shows (seconds to 0.01 s: microseconds say nothing)."""
        waited = f"{round(self.waited_s, 2):g}"
        if self.form:
            return self.form.format(waited=waited)
        return (
            f"waited {waited} s in {self.rounds} settle(s) of up to {self.settle_s:g} s after "
            f"the cells' last pulse or read, {self.cells_retuned} cells re-tuned"
            + (f", {self.pair_reaims} re-tuned for a pair whose twin is stuck or failed" if self.pair_reaims else "")
        )

    def numbers(self) -> dict[str, Any]:
        """The ``--json`` fields beside the sentence."""
        return {
            "settle_waited_s": float(self.waited_s),
            "settle_rounds": int(self.rounds),
            "settle_cells_retuned": int(self.cells_retuned),
            "settle_pair_reaims": int(self.pair_reaims),
        }


def settle_and_verify(
    bench: Any,
    prog: CellProgrammer,
    plan: Plan,
    res: TuneResult,
    settle_s_asked: float | None,
    tuner: _Programmer,
    s: EventSink,
    rounds: int = JOB_SETTLE_ROUNDS,
) -> JobSettle:
    """Settle, then one verification read of every cell; ``res`` updated. Returns what was
    done (:class:`JobSettle`: the report's ``settle`` sentence and its numbers).

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
    full settle after the cell's last pulse and the protocol's last read of it; with a
    protocol that takes the job's band, whose verification reads are spread over the noise
    (:func:`~memprog.jobs.program_pulses.spaced_read`), a full settle after its last
    pulse and ``READ_SETTLE_S`` after
    the protocol's last read, and the module docstring's steps come first.
    """
    wait = getattr(prog, "wait", None) or getattr(bench, "wait", None)
    settle_s = resolve_settle_s(prog, settle_s_asked)  # None: the technology's (as levels, tune)
    res.extra["programmed_us"] = res.final_us.copy()
    settles = callable(getattr(prog, "wait", None)) and settle_s > 0
    tol = np.array(np.broadcast_to(np.asarray(res.tolerance_us, float), (len(res),)))
    every = np.arange(len(res))
    if not settles:
        if callable(wait) and settle_s > 0:
            wait(settle_s)
        _read(prog, res, every, tol)
        if callable(wait) and settle_s > 0:
            return JobSettle(settle_s, 1, settle_s, 0, 0, "waited {waited} s")
        return JobSettle(0.0, 0, settle_s, 0, 0, "not available on this stack" if settle_s > 0 else "skipped")
    quiet = EventsOnly(s)  # re-tunes report events; each cell's final row is written by the job
    # a protocol that aims inside the job's band (caller_band) is held to it by reads spaced
    # over the telegraph noise (see spaced_read); the others keep the reads they were
    # measured with (Alibart's job: README command 1)
    spaced = tuner.spec.caller_band
    retuned = np.zeros(len(res), dtype=bool)
    paired = np.zeros(len(res), dtype=bool)
    first = tuner.first_reaimed  # re-aimed inside their first batch (program_first_batch)
    if first is not None and first.shape == paired.shape and first.any():
        paired |= first
        add_flag(res.flags, first, FLAG_DISTURBED)
    # pairs beside a copy the protocol found stuck are re-aimed before the first wait, so
    # their settle is the one every cell waits anyway (see _reaim_stuck_pairs)
    early = (
        _reaim_stuck_pairs(prog, plan, res, tol, tuner, quiet) if tuner.spec.caller_band else None
    )
    if early is not None and early.size:
        paired[early] = True
        add_flag(res.flags, paired, FLAG_DISTURBED)
        s.record_event(
            {"event": "pair_compensation", "cells": int(early.size), "before_settle": True}
        )
    if spaced:  # the cells whose settle ran out while the re-aims were tuned: fixed now
        due, early_fix = _fix_settled(prog, res, tol, paired, tuner, quiet, settle_s)
        if early_fix.size:
            add_flag(res.flags, np.isin(every, early_fix), FLAG_RELAXED)
            retuned[early_fix] = True
        if due:
            s.record_event(
                {"event": "settle_early", "checked": due, "retuned": int(early_fix.size)}
            )
    # one wait: what is left of the settle since the protocols last pulsed or read any cell
    waited = _settle(prog, tuner, res, every, settle_s, spaced)
    # averaged as the protocols verify (a cell's telegraph noise can be a few µS p-p on
    # HfO2, so one read would report the fluctuation, not the programmed state)
    _read(prog, res, every, tol, spaced=spaced)
    s.record_event(
        {
            "event": "settle",
            "round": 0,
            "settle_s": settle_s,
            "waited_s": waited,
            "checked": len(res),
        }
    )
    settles_n = int(waited > 0)
    if _copies(plan) < 2:  # no pairs: the protocols' own rounds, none for pairs
        rounds = min(rounds, DEFAULT_SETTLE_ROUNDS)
    # a passive crossbar's writes disturb the cells on their row and column (V/3): after a
    # round every cell is read again, or a neighbour's reading kept from before would say
    # what the chip no longer holds; a 1T1R array's transistors isolate the unselected cells
    read_all = not prog.info.has_gate
    for k in range(rounds + 1):
        out = _out_of_band(res, tol, paired, tuner)
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
        _retune(
            tuner,
            res,
            idx,
            targets,
            quiet,
            tune=_settling_tuner(tuner, band=0.5) if spaced else None,
        )
        add_flag(res.flags, r_mask, FLAG_RELAXED)
        add_flag(res.flags, p_mask, FLAG_DISTURBED)
        retuned |= r_mask
        paired |= p_mask
        if pair_idx.size:
            s.record_event({"event": "pair_compensation", "cells": int(pair_idx.size)})
        look = every if read_all else np.union1d(idx, others)
        waited_k = _settle(prog, tuner, res, look, settle_s, spaced)
        waited += waited_k
        settles_n += int(waited_k > 0)
        _read(prog, res, look, tol, spaced=spaced)
        s.record_event(
            {"event": "settle", "round": k + 1, "settle_s": settle_s, "waited_s": waited_k,
             "checked": int(look.size), "retuned": int(r_mask.sum()), "pair_compensation": int(pair_idx.size)}
        )  # fmt: skip
    tuner.pair_reaimed = paired  # (the resume summary counts its kept cells)
    out = _out_of_band(res, tol, paired, tuner)
    if out.any():  # out of band after the last settle: the result says so
        res.converged[out] = False
        add_flag(res.flags, out, FLAG_DRIFTED)
    return JobSettle(waited, settles_n, settle_s, int(retuned.sum()), int(paired.sum()))


def _fix_settled(
    prog: CellProgrammer,
    res: TuneResult,
    tol: np.ndarray,
    paired: np.ndarray,
    tuner: _Programmer,
    sink: EventSink,
    settle_s: float,
) -> tuple[int, np.ndarray]:
    """Read the cells whose settle is already over and re-tune those out of their band now;
    returns (how many were read, the cells re-tuned).

    Why: while the copies beside a stuck one are re-aimed (a protocol batch with an
    observation and a settle of its own, ~3 s), the settle of every other cell runs out.
    Read then, the few that relaxed out of their band are re-tuned at once and their settle
    runs beside the re-aimed cells' own, instead of costing a round (a re-tune and a whole
    settle) after it. Their readings are re-read with every cell's after the settle.
    """
    every = np.arange(len(res))
    left = tuner.log.settle_left_each_s(res.rows, res.cols, settle_s, READ_SETTLE_S)
    due = every[(left <= 0) & res.converged & ~paired]
    if due.size == 0 or not (left > 0).any():  # none due, or all: the settle's own read
        return 0, due[:0]
    _read(prog, res, due, tol, spaced=True)
    out = due[np.abs(res.final_us[due] - res.target_us[due]) > tol[due]]
    if out.size:
        _retune(tuner, res, out, res.target_us.copy(), sink, tune=_settling_tuner(tuner, band=0.5))
    return int(due.size), out


def _out_of_band(
    res: TuneResult, tol: np.ndarray, paired: np.ndarray, tuner: _Programmer
) -> np.ndarray:
    """The converged cells outside their own band: the row's band, or for a copy the settle
    re-aimed for its pair, the band of the target it was re-aimed at.

    Why: a re-aimed copy keeps its row's band (that of ``G``: the pair is judged on it), but
    a protocol that takes the job's band (``caller_band``) tunes it to the band of its new
    target (``2·G`` minus its twin, up to twice as wide). Judged by the narrower one, a copy
    the protocol holds in band was counted out, re-tuned without a pulse (it was in the
    protocol's band) and counted out again, a 5 s settle per round until the rounds ran out
    (its pair meanwhile within its band). Its pair is judged by :func:`_pairs_to_reaim`, on
    the pair's band.
    """
    own = tol.copy()
    if tuner.spec.caller_band:  # (a protocol with a band of its own keeps being judged by it)
        p = tuner.params
        own[paired] = np.maximum(p.tolerance_rel * res.target_us[paired], p.tolerance_min_us)
    return res.converged & (np.abs(res.final_us - res.target_us) > own)


def _reaim_stuck_pairs(
    prog: CellProgrammer,
    plan: Plan,
    res: TuneResult,
    tol: np.ndarray,
    tuner: _Programmer,
    sink: EventSink,
) -> np.ndarray | None:
    """Re-aim, before the job's first settle, the working copy of each pair whose other copy
    the protocol found stuck or gave up on; returns the cells re-aimed (None: no pairs).

    Why before the settle: a stuck copy does not switch, so nothing of it relaxes and an
    averaged read now says what it holds as well as one after the settle would (its
    telegraph noise is averaged either way). Re-aimed after the first settle, as before,
    the ~10 % of copies beside a stuck cell cost a round of their own: a re-tune, a settle,
    and then the rounds their relaxation needs. Re-aimed now, with the protocol's own
    settle-and-re-verify (a re-aim is a step of tens to hundreds of µS, whose random
    relaxation, +-3 % of the step on HfO2, only a settle shows), they share the settle
    every cell waits anyway.
    """
    c = plan.cells
    copies = _copies(plan)
    if copies < 2:
        return None
    lo, hi = target_range_us(prog)
    first = np.flatnonzero(c["copy"] == 0)
    twin = _twin(c, first, np.flatnonzero(c["copy"] == copies - 1))
    stuck = res.has_flag(FLAG_STUCK) | res.has_flag(FLAG_SKIPPED)
    # a copy the protocol gave up on (pulse budget, limit cycle) holds what it holds too: its
    # working twin makes up for it as for a stuck one (what it still relaxes, the rounds see)
    failed = stuck | ~res.converged
    a_moves = (stuck[twin] & ~stuck[first]) | (failed[twin] & ~failed[first])
    b_moves = ((stuck[first] & ~stuck[twin]) | (failed[first] & ~failed[twin])) & ~a_moves
    mover = np.concatenate([first[a_moves], twin[b_moves]])
    other = np.concatenate([twin[a_moves], first[b_moves]])
    if mover.size == 0:
        return mover
    # what the stuck (or given-up) copies hold, averaged over their noise
    _read(prog, res, other, tol, spaced=True)
    g_pair = c["g_us"][mover]
    off = np.abs(0.5 * (res.final_us[mover] + res.final_us[other]) - g_pair) > np.maximum(
        tol[mover], tol[other]
    )
    t_new = np.clip(copies * g_pair - res.final_us[other], lo, hi)
    keep = off & np.isfinite(t_new) & (t_new != res.target_us[mover])
    idx = mover[keep]
    if idx.size:
        targets = res.target_us.copy()
        targets[idx] = t_new[keep]
        # tuned inside half the job's band (relative; the floor stays): the pair holds when
        # the mean of its copies is within the band of G, i.e. this copy within twice that
        # minus the error of the stuck copy's reading, and the band of its new target (up to
        # 2·G) is already twice the band of G: at the full band a copy accepted near its
        # edge put its pair out (measured: 14-16 pairs per chip re-aimed again a round later)
        _retune(tuner, res, idx, targets, sink, tune=_settling_tuner(tuner, band=0.5))
    return idx


# [choice] one settle of the protocol's own in a job re-tune: it catches what a re-tune's
# steps still relax (+-3 % of a step on HfO2, which no model predicts) before the job's
# settle, and the job's settle rounds catch the rest; three (the protocol's default,
# right for a tune whose result is final) cost two more protocol settles of ~1.5 s each
# for the few cells they still find. Measured on 3 chips (the digits job, while this
# module was being changed): 3 -> 2 -> 1 rounds gave 27.8-29.8 -> 25.0-27.1 -> 25.0-25.2 s
# of bench time, 0 failed pairs each; 2 rounds for the early re-aims alone (1 for the
# job's rounds) 21.8-31.9 s against 20.3-24.0 s on 6 chips.
REAIM_SETTLE_ROUNDS = 1


# [choice] a job re-tune fits its own relaxation only from this many coarse steps, else it
# keeps the first batch's: the decay's time and share are properties of the chip, fitted
# on the first batch from ~14,000 cells; 256 cells still give a median to a few % while a
# re-tune batch of a few dozen gave 14.6 s (the clip's bound) and a share of -0.2 (the
# clip's), 68 of 68 cells out of band after its settle (measured, chip seed 11)
RETUNE_FIT_MIN_CELLS = 256


def _settling_tuner(
    tuner: _Programmer, band: float = 1.0, rounds: int = REAIM_SETTLE_ROUNDS
) -> Callable[..., TuneResult]:
    """The engine's protocol with its own settle (``REAIM_SETTLE_ROUNDS``), aiming inside
    ``band`` times the job's relative band: a tune of a protocol that takes the job's band
    (``caller_band``: its settings have ``tolerance_rel`` and ``settle_rounds``)."""
    p = tuner.settings
    upd = {"tolerance_rel": band * float(p.tolerance_rel), "settle_rounds": rounds}  # type: ignore[attr-defined]
    tau = tuner.relax_tau_s
    if tau is not None and getattr(p, "settle_s", 1.0) is None:
        # the relaxation time the first batch measured on thousands of coarse steps: a
        # re-tune's batch of a few dozen fits its own decay from few cells, and such a fit
        # gave 14.6 s (the clip's bound) on 60 cells, a protocol settle of 22 s
        upd["relax_tau_s"] = tau
        upd["settle_s"] = float(p.settle_taus) * tau  # type: ignore[attr-defined]
        upd["relax_fit_min_cells"] = RETUNE_FIT_MIN_CELLS
    return tuner.spec.tuner(tuner.log, p.model_copy(update=upd)).tune  # type: ignore[no-any-return]


def _retune(
    tuner: _Programmer,
    res: TuneResult,
    idx: np.ndarray,
    targets: np.ndarray,
    sink: EventSink,
    tune: Callable[..., TuneResult] | None = None,
) -> None:
    """Re-tune the cells ``idx`` to ``targets``; ``res`` updated. ``tune``: a tuner's own
    (with the protocol's settle and re-verify); default the engine's re-tune, which does
    not settle (the caller settles)."""
    settles = tune is not None
    tune = tune or tuner.retune
    again = tune(res.rows[idx], res.cols[idx], targets[idx], sink=sink)
    res.target_us[idx] = targets[idx]
    res.pulses[idx] += again.pulses
    res.reads[idx] += again.reads
    conv = again.converged.copy()
    if settles:
        # a cell the protocol re-tuned in its last settle round and could not check again
        # (flagged drifted_out, nothing else) is the job's to judge: its settle reads it a
        # full settle later, and re-tunes it or flags it drifted_out as any other cell
        gave_up = np.zeros(len(again), dtype=bool)
        for f in (FLAG_STUCK, FLAG_BUDGET, FLAG_LIMIT_CYCLE, FLAG_RETRIES):
            gave_up |= again.has_flag(f)
        conv |= again.has_flag(FLAG_DRIFTED) & ~gave_up
    res.converged[idx] = conv
    res.final_us[idx] = again.final_us
    for j in np.flatnonzero(~conv):  # the cells the re-tune gave up on
        i = idx[j]
        words = (*str(res.flags[i]).split(","), *str(again.flags[j]).split(","))
        res.flags[i] = ",".join(dict.fromkeys(w for w in words if w))


# [choice] with reads spread over the telegraph noise (spaced), a protocol's last read of a
# cell asks for 1 s before the verification, not a whole settle: its accepting read and
# the verification's then see independent states of the noise (reads seconds apart do,
# PulseLog; the protocols take lock-step rounds milliseconds apart to), while the settle
# itself, the relaxation a pulse leaves behind, is still waited in full after the last
# pulse. Measured on the digits job: a round whose protocol settle (1.5 s of reads after
# its pulses) found nothing left to re-tune no longer adds it to the job's 5 s.
READ_SETTLE_S = 1.0


def _settle(
    prog: CellProgrammer,
    tuner: _Programmer,
    res: TuneResult,
    idx: np.ndarray,
    settle_s: float,
    spaced: bool = False,
) -> float:
    """Wait what is left of ``settle_s`` since the last pulse or read of the cells ``idx``
    (``spaced``: since the last pulse, and ``READ_SETTLE_S`` since the last read)."""
    gap = READ_SETTLE_S if spaced else None
    left = tuner.log.settle_left_s(res.rows[idx], res.cols[idx], settle_s, gap)
    if left > 0:
        prog.wait(left)
    return left


def _read(
    prog: CellProgrammer, res: TuneResult, idx: np.ndarray, tol: np.ndarray, spaced: bool = False
) -> None:
    """Averaged reads of the cells ``idx`` (as many as each one's noise needs) into ``res``;
    ``spaced`` (a stack that can wait): reads of a cell at least ``READ_GAP_S`` apart."""
    if idx.size == 0:
        return
    if spaced:
        g, n_reads = spaced_read(prog, res.rows[idx], res.cols[idx], 0.25 * tol[idx])
    else:
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
    t_raw = copies * c["g_us"][idx] - fin[other]
    t_new = np.clip(t_raw, lo, hi)
    # a copy that cannot make up for its twin within the chip's range, beside a twin that
    # gave up but is not stuck (pulse budget, limit cycle: it still switches): the twin is
    # re-aimed at 2G minus what this copy holds instead. Why: otherwise the pair is failed
    # for good (measured: chip seed 5, a copy given up at 84 µS beside a 50 µS pair, its
    # twin at the range's 30 µS floor)
    swap = (t_new != t_raw) & ~stuck[other]
    if swap.any():
        t_swap = np.clip(copies * c["g_us"][other] - fin[idx], lo, hi)
        idx, other = np.where(swap, other, idx), np.where(swap, idx, other)
        t_new = np.where(swap, t_swap, t_new)
    # a re-aim that asks for the target the cell already has is no re-aim (the twin would
    # have to leave the chip's range: the pair is the stuck cell's, reported, not failed)
    keep = t_new != res.target_us[idx]
    return idx[keep], t_new[keep], other[keep]


__all__ = ["JobSettle", "settle_and_verify"]
