"""Re-aiming a stuck copy's twin inside the batch that programs both copies (issue 25).

Why a module of its own: it is the program job's side of the protocols' ``retarget`` hook
(:class:`~memprog.protocols.registry.ProtocolSpec.retargets`). A differential pair holds
``2·G`` between its two copies; when one copy turns out stuck, the other must make up for
it, aimed at ``2·G`` minus what the stuck one holds. The job used to learn which copies
were stuck from the batch's result and re-aim their twins in a batch of their own before
its settle: a second relaxation observation and protocol settle, ~3 s of bench time for
~10 % of the cells. The protocol finds the stuck cells in its coarse placement, before it
observes the relaxation, so the hook re-aims the twins there and they are observed,
fine-stepped and settled with every other cell of the batch. The settle's own early
re-aim (:mod:`memprog.jobs.program_settle`) stays for the copies the protocol gave up on
later (pulse budget, limit cycle) and for pairs this one left outside their band.
"""

from __future__ import annotations

import numpy as np

from memprog.jobs.program_plan import Plan, _twin
from memprog.jobs.program_pulses import spaced_read
from memprog.protocols.programmer import CellProgrammer

# [choice] a re-aimed copy is tuned inside half the job's relative band (its floor kept),
# as the settle's early re-aims are (program_settle._reaim_stuck_pairs, where it was
# measured): the band of its new target (up to 2·G) is twice the pair's, and a copy
# accepted near its edge put its pair out.
REAIM_BAND = 0.5


# [choice] the protocol's own settle rounds in the job's first batch: 1, not the protocol's
# default 3 (right for a tune whose result is final). The job waits a full settle after
# every cell's last pulse, reads every cell (spaced over its noise) and re-tunes those out
# of band anyway; each further protocol round costs ~1.2 s before the job's settle can
# start, for the ~3 % (round 2) and ~1 % (round 3) of cells it still re-tunes, which the
# job's settle then finds in one round it waits anyway. Measured, digits job, chip seeds
# 2023, 7, 11, 1, 2, 3, 4, 5, 6, 8 (bench s), with the re-aims of this module:
# 3 rounds 21.5, 20.6, 20.4, 20.5, 21.1, 22.0, 21.0, 22.2, 23.0, 19.7;
# 2 rounds 18.2, 18.3, 18.3, 18.2, 19.8, 20.9, 18.5, 19.5, 20.8, 19.7;
# 1 round  18.1, 17.0, 15.8, 19.6, 18.2, 18.5, 19.9, 18.1, 18.0, 17.1;
# 0 failed pairs and the same chip accuracy (+-1 test image) in every run. (Before the
# re-aims moved into the batch, 1 round was worse: 22.1 s on seed 2023, 40-52 s on others,
# its ~2,700 re-tuned cells meeting the separate re-aim batch's own rounds.)
FIRST_BATCH_SETTLE_ROUNDS = 1


class PairRetarget:
    """The hook for one batch of both copies of a plan's pairs; ``reaimed`` (plan order)
    says which copies it re-aimed (the settle judges them by their new target's band).

    Called by the protocol with (rows, cols, targets, stuck, reads) of its batch; reads
    each stuck copy spread over its telegraph noise (a stuck cell does not relax, so it
    holds now what it will hold after the settle), and re-aims the working twin of a pair
    whose mean would otherwise be outside the pair's band.
    """

    def __init__(
        self,
        prog: CellProgrammer,
        plan: Plan,
        tolerance_rel: float,
        tolerance_min_us: float,
        lo_us: float,
        hi_us: float,
    ) -> None:
        self.prog = prog
        self.plan = plan
        self.rel = float(tolerance_rel)
        self.floor = float(tolerance_min_us)
        self.lo, self.hi = lo_us, hi_us
        c = plan.cells
        self.copies = int(c["copy"].max()) + 1 if len(c) else 1
        self.cols = int(prog.info.cols)
        flat = c["row"].astype(np.int64) * self.cols + c["col"].astype(np.int64)
        self._pos = np.full(int(flat.max()) + 1 if flat.size else 0, -1, dtype=np.int64)
        self._pos[flat] = np.arange(plan.n)
        self.partner = np.full(plan.n, -1, dtype=np.int64)
        if self.copies > 1:
            first = np.flatnonzero(c["copy"] == 0)
            twin = _twin(c, first, np.flatnonzero(c["copy"] == self.copies - 1))
            self.partner[first] = twin
            self.partner[twin] = first
        self.reaimed = np.zeros(plan.n, dtype=bool)
        self.events: list[dict[str, int]] = []

    def band_us(self, g_us: np.ndarray, share: float = 1.0) -> np.ndarray:
        """The job's band (``share`` of its relative part; the floor kept)."""
        return np.maximum(share * self.rel * np.asarray(g_us, float), self.floor)

    def __call__(
        self,
        rows: np.ndarray,
        cols: np.ndarray,
        targets: np.ndarray,
        stuck: np.ndarray,
        g: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        if self.copies < 2 or rows.size == 0:
            return None
        flat = np.asarray(rows, np.int64) * self.cols + np.asarray(cols, np.int64)
        k = np.where(flat < self._pos.size, self._pos[np.minimum(flat, self._pos.size - 1)], -1)
        # batch position of each plan cell (-1: not in this batch)
        bpos = np.full(self.plan.n, -1, dtype=np.int64)
        bpos[k[k >= 0]] = np.flatnonzero(k >= 0)
        mine = np.flatnonzero(k >= 0)
        other_plan = self.partner[k[mine]]
        ok = other_plan >= 0
        mine, other_plan = mine[ok], other_plan[ok]
        other = bpos[other_plan]
        ok = other >= 0
        mine, other = mine[ok], other[ok]
        movers = stuck[other] & ~stuck[mine]
        mine, other = mine[movers], other[movers]
        if mine.size == 0:
            return None
        g_pair = self.plan.cells["g_us"][k[mine]]
        tol_row = self.band_us(targets[mine])
        held, _ = spaced_read(
            self.prog, rows[other], cols[other], 0.25 * self.band_us(targets[other])
        )
        off = np.abs(0.5 * (targets[mine] + held) - g_pair) > np.maximum(
            tol_row, self.band_us(targets[other])
        )
        t_new = np.clip(self.copies * g_pair - held, self.lo, self.hi)
        keep = off & np.isfinite(t_new) & (t_new != targets[mine])

        self.events.append({"stuck_twins": int(mine.size), "reaimed": int(keep.sum())})
        if not keep.any():
            return None
        new_t = np.array(targets, dtype=float)
        new_tol = np.full(rows.size, np.nan)
        j = mine[keep]
        new_t[j] = t_new[keep]
        new_tol[j] = self.band_us(t_new[keep], REAIM_BAND)
        self.reaimed[k[j]] = True
        return new_t, new_tol


__all__ = ["FIRST_BATCH_SETTLE_ROUNDS", "PairRetarget", "REAIM_BAND"]
