"""High-resolution write-verify with RTN denoising (Rao et al., Nature 615, 823, 2023).

Why: an as-programmed HfO2 state often carries a large random-telegraph fluctuator (a few
µS peak to peak), so even a perfectly tuned cell reads outside a ±1 µS band part of the
time. Rao et al. found that sub-threshold pulses remove that fluctuator. On the simulated
chip a pulse with ``0.4 <= |V|/V_th < 0.8`` removes it with probability 0.7 and nudges the
conductance by about N(0, 0.3 µS), so denoising must be interleaved with tuning: denoise,
read a burst of samples, accept only when the spread is below the allowed error and the
mean is on target, re-tune when the mean moved. Everything is bounded (pulses, denoise
rounds, re-tunes) and every give-up is flagged.

Fine tuning ("high-resolution mode", the off-chip driving of Rao's Fig. 1g). Steps of a
fraction of a µS on a 4 mS device need pulses barely above threshold, and thresholds vary
from cell to cell. So each cell learns, per polarity:

* an amplitude: found once by a calibration ramp (small amplitude steps at a long pulse
  until the cell visibly moves), then kept; raised or lowered by one step only when the
  width it would need leaves the allowed range;
* a gain ``k`` in ``dG = k * room * (width / width_ref) ** width_exponent`` (``room`` is the
  distance to the bound the pulse pushes toward), updated after every tuning pulse.

A step of ``d`` µS is then one pulse of width ``width_ref * (d / (k * room)) ** (1 /
width_exponent)``; the width is the fine knob (widths are quantised to a log grid so that a
batch needs one ``pulse`` call per distinct width). The learned amplitudes and gains live
in a :class:`DenoiseTuner` and carry over from one call to the next, so a 2,048-level ladder
on one cell calibrates once.

Cells run in lock-step: one pulse per cell per iteration (grouped by width), the denoise
pulses that follow a tuning pulse, then a burst of ``burst_reads`` reads of every active
cell, all handed to the stack as one :meth:`~memprog.protocols.programmer.CellProgrammer.pulse_read`
(one ``PULS:READ?`` message on the on-chip controller; separate pulses and reads elsewhere).
"""

from __future__ import annotations

import numpy as np

from memprog.protocols.alibart import FINE_GATED_RAMP, AlibartParams, tune_alibart
from memprog.protocols.common import (
    Clock,
    Progress,
    check_amplitudes,
    check_cells,
    check_read_v,
    check_targets,
)
from memprog.protocols.denoise_loop import DenoiseLoop
from memprog.protocols.denoise_params import DenoiseParams
from memprog.protocols.events import EventSink, EventsOnly, sink_or_null, wants_trace
from memprog.protocols.programmer import CellProgrammer
from memprog.protocols.results import FLAG_STUCK, TuneResult
from memprog.protocols.settle import resolve_settle_s, settle_and_reverify


class DenoiseTuner(DenoiseLoop):
    """Denoising write-verify on one chip, remembering what it learned about each cell.

    Args:
        programmer: the stack's CellProgrammer.
        params: settings (Rao-style defaults for HfO2 if None).
    """

    def __init__(self, programmer: CellProgrammer, params: DenoiseParams | None = None) -> None:
        self.programmer = programmer
        self.params = p = params or DenoiseParams()
        check_amplitudes(programmer, p.set_max_v, p.reset_max_v, p.width_max_s)
        check_amplitudes(programmer, p.set_max_v, p.reset_max_v, p.width_min_s)
        check_amplitudes(programmer, p.set_max_v, p.reset_max_v, p.cal_width_s)
        check_amplitudes(programmer, p.set_max_v, p.reset_max_v, p.denoise_width_s)
        self.read_v = check_read_v(programmer, p.read_v)
        info = programmer.info
        # per cell, per polarity: calibrated amplitudes, gains, width exponents
        super().__init__(p, info.rows * info.cols, info.g_range_us)

    # ------------------------------------------------------------------ public
    def tune(
        self,
        rows: object,
        cols: object,
        targets_us: object,
        sink: EventSink | None = None,
        progress: bool = False,
    ) -> TuneResult:
        """Tune and denoise each named cell (see the module docstring); ConfigError first."""
        prog, p = self.programmer, self.params
        r, c = check_cells(prog, rows, cols)
        t = check_targets(prog, targets_us, r.size)
        s = sink_or_null(sink)
        clock = Clock(prog)
        s.record_event(
            {
                "event": "tune_start",
                "protocol": "denoise",
                "cells": int(r.size),
                "params": p.model_dump(),
            }
        )
        pre = self._pretune(r, c, t, s) if p.pretune_us is not None else None
        batch = p.batch_size or (1 if prog.info.parallel == "cell" else r.size)
        bar = Progress(progress, r.size, "denoise")
        parts = []
        settle = resolve_settle_s(prog, p.settle_s)
        try:
            for k in range(0, r.size, batch):
                sl = slice(k, k + batch)
                dead = None if pre is None else ~pre.converged[sl]
                part = self._run(r[sl], c[sl], t[sl], s, bar, dead)
                if settle > 0:  # once per lock-step batch
                    rb, cb, tb = r[sl], c[sl], t[sl]

                    def _retune(idx: np.ndarray, rb=rb, cb=cb, tb=tb) -> TuneResult:
                        again = self._run(rb[idx], cb[idx], tb[idx], s, Progress(False, 0, ""))
                        again.pulses = again.pulses + again.extra["denoise_pulses"]
                        return again

                    settle_and_reverify(
                        prog, part, _retune, settle, rounds=p.settle_rounds,
                        read_v=self.read_v, sink=s,
                    )  # fmt: skip
                parts.append(part)
        finally:
            bar.close()
        res = TuneResult.concat(parts, "denoise") if len(parts) > 1 else parts[0]
        if pre is not None:
            res.pulses += pre.pulses
            res.reads += pre.reads
            res.extra["pretune_pulses"] = pre.pulses
        res.wall_s, res.bench_time_s, res.params = clock.wall_s, clock.bench_s, p.model_dump()
        s.record_event({"event": "tune_end", "protocol": "denoise", "summary": res.summary()})
        return res

    def _pretune(
        self, r: np.ndarray, c: np.ndarray, t: np.ndarray, sink: EventSink
    ) -> TuneResult | None:
        """Bring far cells within ``pretune_us`` with Alibart (coarse gate step on 1T1R)."""
        p, prog = self.params, self.programmer
        g = prog.read(r, c, self.read_v)
        if wants_trace(sink):
            sink.record_event({"event": "read", "rows": r, "cols": c, "g_us": g})
        far = np.abs(g - t) > p.pretune_us
        conv = np.ones(r.size, dtype=bool)
        pulses = np.zeros(r.size, dtype=np.int64)
        reads = np.ones(r.size, dtype=np.int64)
        if far.any():
            ap = p.pretune or _pretune_defaults(p.pretune_us)
            ap = ap if ap.settle_s is not None else ap.model_copy(update={"settle_s": 0.0})
            pre = tune_alibart(prog, r[far], c[far], t[far], params=ap, sink=EventsOnly(sink))
            pulses[far] = pre.pulses
            reads[far] += pre.reads
            stuck = np.zeros(r.size, dtype=bool)
            stuck[far] = pre.has_flag(FLAG_STUCK)
            conv = ~stuck
            sink.record_event(
                {"event": "pretune", "cells": int(far.sum()), "converged": int(pre.converged.sum())}
            )
        return TuneResult(
            protocol="alibart",
            rows=r,
            cols=c,
            target_us=t,
            final_us=g,
            pulses=pulses,
            reads=reads,
            converged=conv,
            flags=np.full(r.size, ""),
            tolerance_us=p.pretune_us,
        )

    def tune_level(
        self,
        rows: np.ndarray,
        cols: np.ndarray,
        targets_us: np.ndarray,
        sink: EventSink | None = None,
        start_us: np.ndarray | None = None,
    ) -> TuneResult:
        """Fast path for callers that already validated the cells and targets (the ladder).

        ``rows``/``cols`` must be int64 arrays of distinct cells and ``targets_us`` a float
        array inside the chip's range, as :func:`~memprog.protocols.common.check_cells` and
        :func:`~memprog.protocols.common.check_targets` return them. ``start_us``: where the
        cells are known to be (e.g. the mean of fresh verification reads), which saves the
        first read burst.
        """
        return self._run(
            rows, cols, targets_us, sink_or_null(sink), Progress(False, 0, ""), start_us=start_us
        )


def _pretune_defaults(band_us: float) -> AlibartParams:
    """A fine Alibart ramp for HfO2-like 1T1R cells, stopping within half of ``band_us``."""
    # no settle of its own: the denoising loop and its final settle follow
    return AlibartParams(
        **FINE_GATED_RAMP, tolerance_us=0.5 * band_us, reads_in_band=1, settle_s=0.0
    )


def tune_denoise(
    programmer: CellProgrammer,
    rows: object,
    cols: object,
    targets_us: object,
    params: DenoiseParams | None = None,
    sink: EventSink | None = None,
    progress: bool = False,
) -> TuneResult:
    """One-shot :class:`DenoiseTuner` run (calibration is not kept afterwards)."""
    return DenoiseTuner(programmer, params).tune(
        rows, cols, targets_us, sink=sink, progress=progress
    )


__all__ = ["DenoiseTuner", "tune_denoise"]
