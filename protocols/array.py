"""Whole-array programming: a conductance map in, every cell tuned, disturbed cells re-tuned.

Why a layer above the write-verify loops: on a real array the order of writes matters (on a
passive crossbar every write half-selects the cells sharing its lines, so cells written
early collect the disturb of all later writes; Drolet measured this drift by the number of
devices programmed afterwards), a run of 65,536 cells must survive an interruption, and
the cells a later write disturbed must be found and fixed. So :class:`ArrayJob`:

1. validates the map against the array (shape, range) before any pulse; NaN = leave alone;
2. orders the cells (``row-major`` as Drolet, ``column-major``, ``snake``, or
   ``high-first``: highest targets first, so the low-conductance cells, for which a fixed
   disturb in µS is the largest relative error, collect the fewest later writes);
3. programs them in batches through the chosen protocol (lock-step batches on row-parallel
   stacks, one cell at a time on serial ones), streaming each cell's result to the sink
   and keeping every finished batch, so :meth:`ArrayJob.run` can be called again (or a new
   job given ``resume=``) to continue from the last finished cell;
4. re-verifies: reads every programmed cell again and re-tunes those that drifted out of
   their band (flag ``retuned``), up to ``max_reverify_passes`` times; records for each
   cell how many cells were programmed after it and how far it drifted (the disturb
   samples of the variability database).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from memprog.core.errors import ConfigError
from memprog.core.validation import MemprogModel, require_finite
from memprog.protocols import registry
from memprog.protocols.alibart import AlibartParams
from memprog.protocols.common import Clock, Progress, target_range_us
from memprog.protocols.denoise_params import DenoiseParams
from memprog.protocols.events import EventSink, sink_or_null
from memprog.protocols.predictive import PredictiveParams, tune_predictive
from memprog.protocols.programmer import CellProgrammer
from memprog.protocols.results import TuneResult
from memprog.protocols.settle import resolve_settle_s, reverify

Order = Literal["row-major", "column-major", "snake", "high-first", "low-first"]
ORDERS: tuple[str, ...] = ("row-major", "column-major", "snake", "high-first", "low-first")


class ArrayParams(MemprogModel):
    """How to program a map. ``None`` protocol settings: the stack's (protocols/registry.py)."""

    protocol: Literal["alibart", "denoise", "predictive"] = "alibart"
    order: Order = "row-major"
    alibart: AlibartParams | None = None
    denoise: DenoiseParams | None = None
    batch_cells: int | None = Field(
        default=None,
        ge=1,
        description="cells per lock-step batch; None: all (row stacks), 1 (serial)",
    )
    tolerance_rel: float = Field(default=0.01, gt=0, lt=1, description="map band / target")
    tolerance_min_us: float = Field(
        default=3.0, ge=0, description="floor of the band (the as-programmed RTN is a few µS p-p)"
    )
    reverify: bool = True
    max_reverify_passes: int = Field(default=2, ge=0, le=100)
    max_pulses: int | None = Field(
        default=None, ge=2, le=10_000,
        description="predictive: its per-cell pulse bound (None: its own); Alibart and denoise "
        "take theirs from their own parameters",
    )
    settle_s: float | None = Field(
        default=None,
        ge=0,
        description="bench time waited before each re-verify read of the whole batch (None: "
        "the technology's default, protocols/settle.py; 0: none). Once per batch of the "
        "job, not once per cell (a serial stack's batch is one cell)",
    )


def order_cells(
    rows: np.ndarray, cols: np.ndarray, targets_us: np.ndarray, order: str
) -> np.ndarray:
    """Permutation of the cells giving the programming order."""
    if order == "row-major":
        return np.lexsort((cols, rows))
    if order == "column-major":
        return np.lexsort((rows, cols))
    if order == "snake":
        key = np.where(rows % 2 == 0, cols, -cols)
        return np.lexsort((key, rows))
    if order == "high-first":
        return np.lexsort((cols, rows, -targets_us))
    if order == "low-first":
        return np.lexsort((cols, rows, targets_us))
    raise ConfigError("order", order, f"one of {list(ORDERS)}")


class ArrayJob:
    """Program a conductance map onto the array; resumable (see the module docstring).

    Args:
        programmer: the stack's CellProgrammer.
        target_map_us: 2-D map (µS); NaN cells are skipped. Its shape must fit the array
            at ``origin``.
        params: order, protocol and its settings.
        origin: (row, col) of the map's top-left cell on the array.
        resume: results of an earlier, interrupted job on the same map: its cells are
            not programmed again.
    """

    def __init__(
        self,
        programmer: CellProgrammer,
        target_map_us: object,
        params: ArrayParams | None = None,
        origin: tuple[int, int] = (0, 0),
        resume: TuneResult | None = None,
    ) -> None:
        self.programmer = programmer
        self.params = p = params or ArrayParams()
        info = programmer.info
        m = np.asarray(target_map_us, dtype=float)
        if m.ndim != 2:
            raise ConfigError("target_map_us", f"{m.ndim}-D", "a 2-D map")
        r0, c0 = origin
        if r0 < 0 or c0 < 0 or r0 + m.shape[0] > info.rows or c0 + m.shape[1] > info.cols:
            raise ConfigError(
                "target_map_us shape",
                m.shape,
                f"fits the {info.rows}x{info.cols} array at origin {origin}",
            )
        keep = ~np.isnan(m)
        if not keep.any():
            raise ConfigError("target_map_us", "all NaN", "at least one target")
        rr, cc = np.nonzero(keep)
        targets = require_finite("target_map_us", m[keep])
        lo, hi = target_range_us(programmer)
        bad = (targets < lo) | (targets > hi)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ConfigError(
                "target_map_us",
                float(targets[k]),
                f"[{lo:g}, {hi:g}] µS (cell {rr[k] + r0},{cc[k] + c0})",
            )
        rows, cols = rr + r0, cc + c0
        perm = order_cells(rows, cols, targets, p.order)
        self.rows, self.cols, self.targets = rows[perm], cols[perm], targets[perm]
        self.map_shape = m.shape
        self.origin = (r0, c0)
        # the protocol settles and re-verifies once per batch of this job (its lock-step
        # batch); the job's re-verify passes then look for the disturb of later writes
        self.spec = spec = registry.get(p.protocol, maps=True)
        self.settle_s = resolve_settle_s(programmer, p.settle_s)
        upd: dict[str, object] = {"settle_s": p.settle_s}
        if spec.verify_at_end:
            # the job re-verifies every cell itself after all writes (_reverify): the
            # protocol's own end-of-batch disturb check would only read the same cells again
            upd["verify_at_end"] = False
        if spec.caller_band:
            upd.update(
                tolerance_rel=p.tolerance_rel, tolerance_min_us=p.tolerance_min_us,
                max_pulses=p.max_pulses,
            )  # fmt: skip
        own = getattr(p, spec.name, None) if spec.name in ArrayParams.model_fields else None
        base = own if own is not None else spec.defaults(info, programmer.limits)
        self.protocol_params = spec.override(base, **upd)
        self._tuner = spec.tuner(programmer, self.protocol_params)
        # the disturb re-verify's re-tunes: no settle (and Alibart by its fine ramp)
        self._retuner = spec.retuner(self._tuner, programmer, self.protocol_params)
        self.batch = p.batch_cells or (1 if info.parallel == "cell" else self.rows.size)
        self.parts: list[TuneResult] = []
        self.next_index = 0
        if resume is not None:
            self._apply_resume(resume)

    def _apply_resume(self, resume: TuneResult) -> None:
        flat = self.rows * self.programmer.info.cols + self.cols
        done_flat = resume.rows * self.programmer.info.cols + resume.cols
        finished = np.isin(flat, done_flat)
        foreign = ~np.isin(done_flat, flat)
        if foreign.any():
            k = int(np.flatnonzero(foreign)[0])
            raise ConfigError(
                "resume",
                f"cell {int(resume.rows[k])},{int(resume.cols[k])}",
                "results of cells of the same map",
            )
        # serial stacks finish cells in order (a prefix); a lock-step batch interrupted
        # half-way finished some of its cells: those move to the front, in order, so that
        # no finished cell is pulsed again
        n = int(finished.sum())
        if finished[n:].any():
            perm = np.concatenate([np.flatnonzero(finished), np.flatnonzero(~finished)])
            self.rows, self.cols, self.targets = self.rows[perm], self.cols[perm], self.targets[perm]
        self.parts = [resume]
        self.next_index = n

    @property
    def cells(self) -> int:
        """Cells the map asks for."""
        return int(self.rows.size)

    def partial_result(self) -> TuneResult | None:
        """Results of every finished batch so far (what ``resume=`` takes)."""
        if not self.parts:
            return None
        return TuneResult.concat(self.parts, "array") if len(self.parts) > 1 else self.parts[0]

    def run(self, sink: EventSink | None = None, progress: bool = False) -> TuneResult:
        """Program every remaining cell, then re-verify; returns one row per map cell."""
        prog, p = self.programmer, self.params
        s = sink_or_null(sink)
        clock = Clock(prog)
        s.record_event(
            {
                "event": "array_start",
                "cells": self.cells,
                "order": p.order,
                "protocol": p.protocol,
                "resume_from": self.next_index,
                "map_shape": list(self.map_shape),
                "origin": list(self.origin),
            }
        )
        bar = Progress(progress, self.cells, "array")
        bar.update(self.next_index)
        try:
            while self.next_index < self.cells:
                sl = slice(self.next_index, min(self.next_index + self.batch, self.cells))
                part = self._tune(self.rows[sl], self.cols[sl], self.targets[sl], s)
                self.parts.append(part)
                self.next_index = sl.stop
                s.record_event({"event": "checkpoint", "next_index": self.next_index})
                bar.update(sl.stop - sl.start)
        finally:
            bar.close()
        res = self.partial_result()
        assert res is not None
        res = self._restore_order(res)
        res.tolerance_us = np.maximum(p.tolerance_rel * res.target_us, p.tolerance_min_us)
        res.extra["order_index"] = np.arange(self.cells)
        res.extra["later_writes"] = self.cells - 1 - np.arange(self.cells)
        # 1T1R (a gated array): the access transistor keeps later writes off the cells already
        # programmed, and the predictive protocol settled and verified each batch after its
        # relaxation; a disturb re-verify would only re-read what it just measured
        final = self.spec.final_on_gated and self.programmer.info.has_gate
        if p.reverify and p.max_reverify_passes > 0 and not final:
            reverify(
                prog, res,
                lambda idx: self._retuner.tune(res.rows[idx], res.cols[idx], res.target_us[idx], sink=s),
                s, passes=p.max_reverify_passes, final_check=True, whole_array=True,
            )  # fmt: skip
        res.protocol = f"array/{p.protocol}"
        res.wall_s = clock.wall_s
        res.bench_time_s = clock.bench_s
        res.params = p.model_dump()
        s.record_event({"event": "array_end", "summary": res.summary()})
        return res

    def _restore_order(self, res: TuneResult) -> TuneResult:
        """The concatenated parts in programming order (a resumed part may hold them all)."""
        cols_n = self.programmer.info.cols
        fr = res.rows * cols_n + res.cols
        srt = np.argsort(fr)
        idx = srt[np.searchsorted(fr[srt], self.rows * cols_n + self.cols)]
        return res.subset(idx)

    def _tune(self, r: np.ndarray, c: np.ndarray, t: np.ndarray, sink: EventSink) -> TuneResult:
        return self._tuner.tune(r, c, t, sink=sink)

def program_array(
    programmer: CellProgrammer,
    target_map_us: object,
    params: ArrayParams | None = None,
    origin: tuple[int, int] = (0, 0),
    resume: TuneResult | None = None,
    sink: EventSink | None = None,
    progress: bool = False,
) -> TuneResult:
    """Program a conductance map (see :class:`ArrayJob`); one result row per map cell."""
    return ArrayJob(programmer, target_map_us, params, origin, resume).run(
        sink=sink, progress=progress
    )



def tune_predictive_map(
    programmer: CellProgrammer,
    target_map_us: object,
    origin: tuple[int, int] = (0, 0),
    order: str = "row-major",
    params: PredictiveParams | None = None,
    sink: EventSink | None = None,
    progress: bool = False,
) -> TuneResult:
    """A conductance map (µS, NaN = leave alone) through the predictive protocol.

    What ``memprog tune --map`` and the program job need to offer ``predictive``: the map
    is validated and ordered exactly as :class:`ArrayJob` does it (shape at ``origin``,
    range, ``order``) before any pulse; one row per map cell, in that order. The protocol
    settles and re-verifies per batch itself (no separate re-verify pass: a 1T1R array has
    no half-select disturb to look for). It lives here, not in ``predictive``, because it
    uses the array job's validation and the array job uses the protocol.
    """
    job = ArrayJob(programmer, target_map_us, ArrayParams(order=order), origin)  # type: ignore[arg-type]
    res = tune_predictive(
        programmer, job.rows, job.cols, job.targets, params=params, sink=sink, progress=progress
    )
    res.extra["order_index"] = np.arange(len(res))
    return res


def random_level_map(
    rows: int,
    cols: int,
    n_levels: int = 64,
    lo_us: float = 50.0,
    hi_us: float = 4144.0,
    seed: int = 0,
) -> np.ndarray:
    """A map of ``n_levels`` equally spaced levels drawn at random per cell (seeded)."""
    levels = np.linspace(lo_us, hi_us, n_levels)
    return levels[np.random.default_rng(seed).integers(0, n_levels, (rows, cols))]


__all__ = [
    "ArrayParams",
    "ArrayJob",
    "program_array",
    "order_cells",
    "tune_predictive_map",
    "random_level_map",
    "ORDERS",
]
