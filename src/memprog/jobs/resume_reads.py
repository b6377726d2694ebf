"""Resume reads before it trusts: the kept cells of an interrupted run are read again.

Why: the rows an interrupted run stored say what each finished cell held *when it
finished*. Between the interruption and the resume the chip may have been re-pulsed by
someone else, relaxed, been swapped, or (a simulated chip in a process that died) be a
fresh chip. A resume that trusts the rows reports a finished job while the chip holds
something else (issue 20: a 91.9 % network classified at 8.8 % after a resume). So every
kept cell is read once more — one batched, averaged read of all of them, never a per-cell
loop — and a working cell now outside its band goes back into the work list, to be tuned
again together with the cells that never finished. Cells the run found stuck stay kept:
re-pulsing them cannot help, and the job compensates them through their twin.

Used by ``memprog program --resume`` (the program job) and ``memprog tune --map --resume``
(the array job). Protocol-level: it works through the CellProgrammer interface only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memprog.protocols.events import EventSink, sink_or_null
from memprog.protocols.programmer import CellProgrammer
from memprog.protocols.results import FLAG_SKIPPED, FLAG_STUCK, TuneResult
from memprog.protocols.settle import adaptive_read, resolve_settle_s


@dataclass
class ResumeReads:
    """What the re-read of an interrupted run's kept cells found.

    Attributes:
        kept: the cells the run had finished (stored rows), re-read.
        out_of_tolerance: of those, working cells now outside their band: tuned again.
        new: cells the interrupted run never finished (planned minus kept).
        keep: bool per row of the stored result: still trusted (within band, or stuck).
        g_us: the fresh reading of every kept cell (µS).
        stuck: bool per row: flagged stuck or skipped (trusted, never within tolerance).
    """

    kept: int
    out_of_tolerance: int
    new: int
    keep: np.ndarray
    g_us: np.ndarray
    stuck: np.ndarray

    def summary(self, run_id: str | None) -> dict[str, int | str | None]:
        """The ``resume`` block of a summary (``--json``, the stored run, report.json)."""
        return {
            "resumed_from": run_id,
            "cells_kept": self.kept,
            "cells_reread_out_of_tolerance": self.out_of_tolerance,
            "cells_retuned": self.out_of_tolerance,
            # within band on the re-read; a kept stuck cell is trusted, not within tolerance
            "cells_kept_within_tolerance": int((self.keep & ~self.stuck).sum()),
            "cells_kept_stuck": int(self.stuck.sum()),
            "cells_new": self.new,
        }

    def text(self, run_id: str | None) -> str:
        """One human line."""
        return (
            f"resumed run {run_id}: {self.kept} kept cells re-read, {self.out_of_tolerance} of them "
            f"outside tolerance and re-tuned; {self.new} cells new"
        )


def reread_kept(
    programmer: CellProgrammer,
    done: TuneResult,
    tolerance_rel: float,
    tolerance_min_us: float,
    planned: int,
    sink: EventSink | None = None,
    keep_unaccepted: bool = True,
) -> tuple[TuneResult, ResumeReads]:
    """Read every kept cell of ``done`` (batched), keep those still within band.

    Args:
        done: the stored rows of the interrupted run (one per finished cell).
        tolerance_rel, tolerance_min_us: the run's band: ``max(rel · target, min)``.
        planned: cells the job plans in all (for the count of new cells).
        keep_unaccepted: keep a cell the protocol had given up on when it now reads in band.
            The program job does (it settles and reads every cell again at its end); an
            array job does not (its outcome counts such a cell by why the protocol gave
            up, memprog.reporting.outcome), so the resume tunes it again instead.

    Returns:
        (the rows still trusted, with ``final_us`` set to the fresh reading; what was found).
    """
    n = len(done)
    s = sink_or_null(sink)
    if n == 0:
        empty = np.zeros(0)
        return done, ResumeReads(0, 0, planned, empty.astype(bool), empty, empty.astype(bool))
    target = np.asarray(done.target_us, float)
    band = np.maximum(tolerance_rel * target, tolerance_min_us)
    # a kept row may be provisional: a cell the protocol had finished but not yet settled
    # and re-verified when the run was cut short. Let the technology's settle time pass
    # first (once, for all of them), as the protocol would have, so a cell still relaxing
    # out of its band is caught here and not after the job says it is done.
    settle_s = resolve_settle_s(programmer, None)
    wait = getattr(programmer, "wait", None)
    if settle_s > 0 and callable(wait):
        wait(settle_s)
    # averaged like the job's own verification read: a single read of an HfO2 cell can be
    # a few µS off by telegraph noise, which would send a good cell back to be tuned
    g, _n_reads, _ = adaptive_read(
        programmer,
        np.asarray(done.rows),
        np.asarray(done.cols),
        None,
        0.25 * band,
        min_reads=2,
        max_reads=16,
    )
    stuck = done.has_flag(FLAG_STUCK) | done.has_flag(FLAG_SKIPPED)
    in_band = np.abs(g - target) <= band
    keep = stuck | (in_band if keep_unaccepted else in_band & np.asarray(done.converged, dtype=bool))
    out = int((~keep).sum())
    kept_rows = done.subset(np.flatnonzero(keep))
    kept_rows.final_us = np.where(stuck[keep], kept_rows.final_us, g[keep])
    kept_rows.tolerance_us = band[keep]  # judged by the run's band from now on
    info = ResumeReads(kept=n, out_of_tolerance=out, new=max(planned - n, 0), keep=keep, g_us=g, stuck=stuck)
    s.record_event({"event": "resume_reread", **info.summary(None)})
    return kept_rows, info


__all__ = ["ResumeReads", "reread_kept"]
