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

from typing import Any

import numpy as np
from pydantic import Field, model_validator

from memprog.core.errors import ConfigError
from memprog.core.validation import MemprogModel
from memprog.protocols.alibart import FINE_GATED_RAMP, AlibartParams, tune_alibart
from memprog.protocols.common import (
    Clock,
    Progress,
    check_amplitudes,
    check_cells,
    check_read_v,
    check_targets,
)
from memprog.protocols.events import (
    EventSink,
    EventsOnly,
    NullSink,
    sink_or_null,
    wants_bulk,
    wants_trace,
)
from memprog.protocols.programmer import BURST_INTERVAL_S, CellProgrammer
from memprog.protocols.results import (
    FLAG_BUDGET,
    FLAG_NOISY,
    FLAG_RETRIES,
    FLAG_STUCK,
    TuneResult,
    compose_flags,
)
from memprog.protocols.settle import resolve_settle_s, settle_and_reverify, settle_s_field

SET, RESET = 0, 1
# what a cell's last pulse was
_NONE, _CAL, _TUNE, _DENOISE = 0, 1, 2, 3


class DenoiseParams(MemprogModel):
    """Settings of the denoising write-verify. Defaults: HfO2 1T1R at ±1 µS (Rao 2023).

    Voltages are magnitudes; SET pulses are applied positive, RESET negative. Why five
    denoise pulses after every tuning pulse: a tuning pulse redraws the filament's
    fluctuators (a large one on ~60 % of states), slow ones hide from a short read burst,
    and each denoise pulse removes the large one with p ~ 0.7, so after five it survives
    on ~0.15 % of accepted states (four: ~0.5 %, measured 9 vs 1 failing levels in 8
    ladders of 2,048). ``accept_tol_us`` 0.4 leaves room for the small fluctuator (<= 0.4
    µS p-p) and read noise inside a ±1 µS verification band.
    """

    read_v: float | None = Field(default=0.2, description="read voltage; None: the stack's")
    accept_tol_us: float = Field(default=0.4, gt=0, description="|burst mean - target| to accept")
    tune_tol_us: float = Field(default=0.3, gt=0, description="|mean - target| to stop tuning")
    max_spread_us: float = Field(default=0.6, gt=0, description="burst peak-to-peak to accept")
    burst_reads: int = Field(default=4, ge=2, le=1000, description="reads after each pulse")
    burst_interval_s: float = Field(
        default=BURST_INTERVAL_S,
        ge=0,
        le=0.01,
        description="least time between the starts of a burst's reads (stacks that time "
        "the burst themselves; see protocols/programmer.py)",
    )
    denoise: bool = Field(default=True, description="False: the same loop without denoising")
    min_denoise: int = Field(default=5, ge=0, le=100, description="denoise pulses before accepting")
    denoise_after_tune: int = Field(
        default=5, ge=0, le=100, description="denoise pulses right after every tuning pulse"
    )
    max_denoise: int = Field(default=12, ge=1, le=1000, description="denoise pulses per round")
    denoise_frac: float = Field(
        default=0.6,
        gt=0,
        lt=1,
        description="denoise amplitude / the cell's calibrated SET amplitude",
    )
    denoise_v: float | None = Field(
        default=None, gt=0, le=20, description="fixed denoise amplitude"
    )
    denoise_width_s: float = Field(default=1e-6, gt=0, le=1.0, description="denoise pulse width")
    max_retunes: int = Field(default=30, ge=0, le=10_000, description="re-tunes after denoising")
    max_pulses: int = Field(default=400, ge=1, le=10_000_000, description="all pulses per cell")
    set_start_v: float = Field(default=0.8, gt=0, le=20, description="SET calibration ramp start")
    set_max_v: float = Field(default=1.6, gt=0, le=20, description="SET amplitude cap")
    reset_start_v: float = Field(default=0.9, gt=0, le=20, description="RESET calibration start")
    reset_max_v: float = Field(default=1.8, gt=0, le=20, description="RESET amplitude cap")
    cal_step_v: float = Field(default=0.005, gt=0, le=0.5, description="calibration ramp step")
    cal_width_s: float = Field(default=10e-6, gt=0, le=1.0, description="calibration pulse width")
    cal_detect_us: float = Field(default=3.0, gt=0, description="move that ends the calibration")
    amp_step_v: float = Field(default=0.005, gt=0, le=0.5, description="amplitude re-adjust step")
    width_min_s: float = Field(default=10e-9, gt=0, description="shortest tuning pulse")
    width_max_s: float = Field(default=100e-6, gt=0, description="longest tuning pulse")
    width_ref_s: float = Field(default=1e-6, gt=0, description="width at which gains are quoted")
    width_exponent: float = Field(
        default=0.5,
        gt=0,
        le=2,
        description="first guess of how dG grows with the width (dG ~ width**this), until "
        "the cell's own tuning pulses have measured it (learn_width_exponent); [choice] 0.5, "
        "a prior only: a first guess that overshoots leaves large volatile steps behind",
    )
    learn_width_exponent: bool = Field(
        default=True, description="fit each cell's width exponent from its own pulses"
    )
    width_grid_per_decade: int = Field(default=24, ge=2, le=1000, description="width quantisation")
    gain_learning: float = Field(default=0.4, gt=0, le=1, description="log-gain update weight")
    coarse_us: float = Field(
        default=5.0, gt=0, description="tuning pulses for larger errors skip the denoise pulses"
    )
    pretune_us: float | None = Field(
        default=20.0, gt=0, description="cells starting farther than this are pre-tuned by Alibart"
    )
    pretune: AlibartParams | None = Field(
        default=None, description="pre-tune settings (None: fine 1T1R ramp)"
    )
    batch_size: int | None = Field(
        default=None, ge=1, description="None: all (row stacks), 1 (serial)"
    )
    settle_s: float | None = settle_s_field("the final re-verify of tune()")
    settle_rounds: int = Field(
        default=5,
        ge=0,
        le=100,
        description="re-tunes of cells that drift out while settling (a ±0.4 µS acceptance "
        "sees the volatile part of even a fine step)",
    )

    @model_validator(mode="after")
    def _order(self) -> DenoiseParams:
        if self.width_min_s >= self.width_max_s:
            raise ConfigError(
                "width_min_s", self.width_min_s, f"< width_max_s ({self.width_max_s})"
            )
        if self.set_start_v > self.set_max_v:
            raise ConfigError("set_start_v", self.set_start_v, f"<= set_max_v ({self.set_max_v})")
        if self.reset_start_v > self.reset_max_v:
            raise ConfigError(
                "reset_start_v", self.reset_start_v, f"<= reset_max_v ({self.reset_max_v})"
            )
        if self.min_denoise > self.max_denoise:
            raise ConfigError(
                "min_denoise", self.min_denoise, f"<= max_denoise ({self.max_denoise})"
            )
        if self.tune_tol_us > self.accept_tol_us:
            raise ConfigError(
                "tune_tol_us", self.tune_tol_us, f"<= accept_tol_us ({self.accept_tol_us})"
            )
        if self.denoise_v is not None and self.denoise_v >= self.set_start_v:
            raise ConfigError(
                "denoise_v", self.denoise_v, f"< set_start_v ({self.set_start_v}): sub-threshold"
            )
        return self


class DenoiseTuner:
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
        n = info.rows * info.cols
        self.g_lo, self.g_hi = (float(x) for x in info.g_range_us)
        # per cell, per polarity: calibrated amplitude (NaN: not yet), ramp position, gain
        self.v_fix = np.full((2, n), np.nan)
        self.v_cal = np.empty((2, n))
        self.v_cal[SET], self.v_cal[RESET] = p.set_start_v, p.reset_start_v
        self.gain = np.full((2, n), np.nan)
        # amplitude at which the calibration first saw the cell move (~ its threshold): the
        # denoise pulses scale from it, not from amplitudes raised later for long steps
        self.v_onset = np.full((2, n), np.nan)
        # per cell, per polarity: the width exponent, fitted (log-log least squares) from the
        # moves of the cell's own tuning pulses at different widths
        self.beta = np.full((2, n), p.width_exponent)
        self._fit = np.zeros((5, 2, n))  # n, sum x, sum y, sum xx, sum xy
        lo, hi = np.log10(p.width_min_s), np.log10(p.width_max_s)
        self._log_w_lo, self._log_w_hi = lo, hi
        self._grid = p.width_grid_per_decade

    # ------------------------------------------------------------------ helpers
    def _quantise(self, w: np.ndarray) -> np.ndarray:
        lw = np.clip(np.log10(w), self._log_w_lo, self._log_w_hi)
        q = np.round((lw - self._log_w_lo) * self._grid) / self._grid + self._log_w_lo
        return 10.0 ** np.minimum(q, self._log_w_hi)

    def _room(self, g: np.ndarray, pol: np.ndarray) -> np.ndarray:
        room = np.where(pol == SET, self.g_hi - g, g - self.g_lo)
        return np.maximum(room, 0.01 * (self.g_hi - self.g_lo))

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

    # ------------------------------------------------------------------ the lock-step loop
    def _burst(self, r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``burst_reads`` separate reads of the cells: mean, min, max."""
        p = self.params
        g = self.programmer.read_burst(r, c, p.burst_reads, self.read_v, p.burst_interval_s)
        return g.mean(axis=0), g.min(axis=0), g.max(axis=0)

    def _pulse_burst(
        self,
        r: np.ndarray,
        c: np.ndarray,
        amps: np.ndarray,
        widths_s: list[float],
        sink: EventSink,
        trace: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A train of pulses (``amps`` (k, cells), 0: the cell sits that pulse out), then
        the burst of every cell: mean, min, max.

        One :meth:`CellProgrammer.pulse_read`: a stack that runs it on the instrument
        saves the round trips between the pulses and the reads.
        """
        p = self.params
        g = self.programmer.pulse_read(
            r, c, amps, widths_s, None, p.burst_reads, self.read_v, p.burst_interval_s
        )
        if trace:
            for a, w in zip(amps, widths_s, strict=True):
                on = a != 0
                sink.record_event(
                    {"event": "pulse", "rows": r[on], "cols": c[on], "amplitude_v": a[on],
                     "width_s": w}
                )  # fmt: skip
        return g.mean(axis=0), g.min(axis=0), g.max(axis=0)

    def _run(
        self,
        r: np.ndarray,
        c: np.ndarray,
        t: np.ndarray,
        sink: EventSink,
        bar: Progress,
        dead: np.ndarray | None = None,
        start_us: np.ndarray | None = None,
    ) -> TuneResult:
        p, prog = self.params, self.programmer
        n = r.size
        flat = r * prog.info.cols + c
        trace = wants_trace(sink)
        pulses = np.zeros(n, dtype=np.int64)
        dn_pulses = np.zeros(n, dtype=np.int64)
        reads = np.zeros(n, dtype=np.int64)
        retunes = np.zeros(n, dtype=np.int64)
        dn_count = np.zeros(n, dtype=np.int64)  # denoise pulses since the last tuning pulse
        last = np.full(n, _NONE, dtype=np.int8)
        last_pol = np.zeros(n, dtype=np.int8)
        last_w = np.ones(n)
        m_prev = np.full(n, np.nan)
        final = np.full(n, np.nan)
        spread = np.full(n, np.nan)
        done = np.zeros(n, dtype=bool)
        conv = np.zeros(n, dtype=bool)
        f_stuck = np.zeros(n, dtype=bool)
        f_budget = np.zeros(n, dtype=bool)
        f_retry = np.zeros(n, dtype=bool)
        f_noisy = np.zeros(n, dtype=bool)
        # pulse plan of the current iteration (per cell): amplitude (signed), width
        amp = np.zeros(n)
        width = np.zeros(n)
        act = np.arange(n)
        # per-cell columns of the streamed results (the arrays above, updated in place)
        report = {
            "row": r, "col": c, "target_us": t, "final_us": final, "pulses": pulses,
            "denoise_pulses": dn_pulses, "reads": reads, "spread_us": spread, "converged": conv,
        }  # fmt: skip
        flag_masks = {
            FLAG_STUCK: f_stuck,
            FLAG_BUDGET: f_budget,
            FLAG_RETRIES: f_retry,
            FLAG_NOISY: f_noisy,
        }
        if dead is not None and dead.any():
            # found stuck by the pre-tune: report, do not pulse again
            f_stuck[dead] = True
            done[dead] = True
            final[dead] = self.programmer.read(r[dead], c[dead], self.read_v)
            reads[dead] += 1
            if trace:
                sink.record_event({"event": "read", "rows": r[dead], "cols": c[dead], "g_us": final[dead]})
            self._emit(sink, np.flatnonzero(dead), report, flag_masks)
            bar.update(int(dead.sum()))
            act = np.flatnonzero(~dead)
        first = start_us is not None
        pending: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        while act.size:
            # 1. measure (the caller may already know where the cells start; the last
            # iteration's pulses came back with their burst)
            measured = not first
            if first:
                m = np.asarray(start_us, dtype=float)[act]
                lo = hi = m
                first = False
            else:
                m, lo, hi = self._burst(r[act], c[act]) if pending is None else pending
                pending = None
                reads[act] += p.burst_reads
            ptp = hi - lo
            spread[act] = ptp
            if trace and measured:  # a burst: one record, its mean of burst_reads reads
                sink.record_event(
                    {"event": "read", "rows": r[act], "cols": c[act], "g_us": m, "ptp_us": ptp,
                     "n_reads": p.burst_reads}
                )  # fmt: skip
            fa = flat[act]
            err = t[act] - m
            aerr = np.abs(err)
            noisy = ptp > p.max_spread_us
            kind = last[act]
            # 2. learn from the pulse just applied
            self._learn(act, fa, kind, last_pol[act], last_w[act], m_prev[act], m, f_stuck)
            m_prev[act] = m
            # 3. decide, per cell: accept, denoise, tune, or give up
            dn = dn_count[act]
            on_target = aerr <= p.accept_tol_us
            if p.denoise:
                accept = ~noisy & on_target & (dn >= p.min_denoise)
                # more denoising: noise visible near the target, or too few pulses yet
                need_dn = (noisy & (aerr <= p.accept_tol_us + 0.5 * ptp)) | (
                    on_target & (dn < p.min_denoise)
                )
                want_dn = ~accept & need_dn & (dn < p.max_denoise)
                f_noisy[act[~accept & need_dn & noisy & (dn >= p.max_denoise)]] = True
                want_tune = ~accept & ~want_dn
                retune = want_tune & (dn > 0) & (kind != _CAL) & (aerr <= p.coarse_us)
            else:
                accept = ~noisy & on_target
                want_dn = np.zeros(act.size, dtype=bool)
                want_tune = ~accept
                retune = want_tune & (aerr <= p.tune_tol_us)
            retunes[act[retune]] += 1
            out_of_retries = want_tune & (retunes[act] > p.max_retunes)
            out_of_pulses = ~accept & (pulses[act] + dn_pulses[act] >= p.max_pulses)
            stuck_now = f_stuck[act] & ~accept
            stop = accept | out_of_retries | out_of_pulses | stuck_now
            f_retry[act[out_of_retries & ~accept]] = True
            f_budget[act[out_of_pulses & ~out_of_retries]] = True
            if stop.any():
                idx = act[stop]
                conv[idx] = accept[stop]
                final[idx] = m[stop]
                done[idx] = True
                self._emit(sink, idx, report, flag_masks)
                bar.update(idx.size)
            go_dn = want_dn & ~stop
            go_tune = want_tune & ~stop
            # 4. plan the pulses
            if go_dn.any():
                i = act[go_dn]
                amp[i] = self._denoise_amp(flat[i])
                width[i] = p.denoise_width_s
                last[i] = _DENOISE
                dn_count[i] += 1
                dn_pulses[i] += 1
            if go_tune.any():
                i = act[go_tune]
                a, w, k, pol = self._tune_pulse(flat[i], m[go_tune], err[go_tune])
                amp[i], width[i], last[i], last_pol[i], last_w[i] = a, w, k, pol, w
                dn_count[i] = 0
                pulses[i] += 1
                if p.denoise and p.denoise_after_tune:
                    # calibration and coarse pulses are not worth denoising
                    fine = (k == _TUNE) & (np.abs(err[go_tune]) <= p.coarse_us)
                    dn_count[i[fine]] = p.denoise_after_tune
                    dn_pulses[i[fine]] += p.denoise_after_tune
                    tuned_now = i[fine]
                else:
                    tuned_now = i[:0]
            else:
                tuned_now = act[:0]
            act = act[go_dn | go_tune]
            if act.size == 0:
                break
            # 5. pulse: one pulse per distinct width (each cell's own), then the denoise
            # pulses after tuning, then the next burst of every active cell: one train
            # (pulse_read; amplitude 0 where a cell sits a pulse out)
            ws = width[act]
            a_act = amp[act]
            uw = ws if ws.size == 1 else np.unique(ws)
            amps = [np.where(ws == wv, a_act, 0.0) for wv in uw] if uw.size > 1 else [a_act]
            widths = uw.tolist()
            if p.denoise and p.denoise_after_tune and tuned_now.size:
                da = np.zeros(act.size)
                in_train = np.zeros(n, dtype=bool)
                in_train[tuned_now] = True
                in_train = in_train[act]
                da[in_train] = self._denoise_amp(flat[act[in_train]])
                amps += [da] * p.denoise_after_tune
                widths += [p.denoise_width_s] * p.denoise_after_tune
            pending = self._pulse_burst(r[act], c[act], np.array(amps), widths, sink, trace)
        flags = compose_flags(
            {FLAG_STUCK: f_stuck, FLAG_BUDGET: f_budget, FLAG_RETRIES: f_retry, FLAG_NOISY: f_noisy}
        )
        return TuneResult(
            protocol="denoise",
            rows=r,
            cols=c,
            target_us=t,
            final_us=final,
            pulses=pulses,
            reads=reads,
            converged=conv,
            flags=flags,
            tolerance_us=np.full(n, p.accept_tol_us),
            extra={"denoise_pulses": dn_pulses, "spread_us": spread, "retunes": retunes},
        )

    def _denoise_amp(self, fa: np.ndarray) -> np.ndarray:
        p = self.params
        if p.denoise_v is not None:
            return np.full(fa.size, p.denoise_v)
        v = self.v_onset[SET, fa]
        # not calibrated yet: the ramp's position has not moved the cell, so it is at most
        # the threshold and a fraction of it stays well below
        v = np.where(np.isnan(v), self.v_cal[SET, fa], v)
        return p.denoise_frac * v

    def _tune_pulse(
        self, fa: np.ndarray, g: np.ndarray, err: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Signed amplitude, width, kind (_CAL/_TUNE) and polarity of each tuning pulse."""
        p = self.params
        pol = np.where(err > 0, SET, RESET).astype(np.int8)
        v_fix = self.v_fix[pol, fa]
        cal = np.isnan(v_fix)
        amp = np.where(cal, self.v_cal[pol, fa], v_fix)
        width = np.full(fa.size, p.cal_width_s)
        kind = np.where(cal, _CAL, _TUNE).astype(np.int8)
        tn = ~cal
        if tn.any():
            room = self._room(g[tn], pol[tn])
            k = self.gain[pol[tn], fa[tn]]
            d = np.abs(err[tn])
            w = p.width_ref_s * (d / (k * room)) ** (1.0 / self.beta[pol[tn], fa[tn]])
            # out of the width range: move the amplitude one step for the next pulses
            too_long = w > p.width_max_s
            too_short = w < p.width_min_s * 0.5
            fi, pi = fa[tn], pol[tn]
            if too_long.any():
                cap = np.where(pi[too_long] == SET, p.set_max_v, p.reset_max_v)
                # one amplitude step per factor 4 of missing width (at most 8 steps)
                n_up = np.clip(np.ceil(np.log(w[too_long] / p.width_max_s) / np.log(4.0)), 1, 8)
                newv = np.minimum(self.v_fix[pi[too_long], fi[too_long]] + n_up * p.amp_step_v, cap)
                self.v_fix[pi[too_long], fi[too_long]] = newv
                self.gain[pi[too_long], fi[too_long]] *= 2.0**n_up
            if too_short.any():
                floor = np.where(pi[too_short] == SET, p.set_start_v, p.reset_start_v)
                newv = np.maximum(self.v_fix[pi[too_short], fi[too_short]] - p.amp_step_v, floor)
                self.v_fix[pi[too_short], fi[too_short]] = newv
                self.gain[pi[too_short], fi[too_short]] *= 0.5
            width[tn] = self._quantise(w)
        signed = np.where(pol == SET, amp, -amp)
        return signed, width, kind, pol

    def _learn(
        self,
        act: np.ndarray,
        fa: np.ndarray,
        kind: np.ndarray,
        pol: np.ndarray,
        w: np.ndarray,
        m_before: np.ndarray,
        m_after: np.ndarray,
        f_stuck: np.ndarray,
    ) -> None:
        """Update calibration ramps and gains from the move the last pulse produced."""
        p = self.params
        moved = np.where(pol == SET, m_after - m_before, m_before - m_after)  # toward the pulse
        cal = kind == _CAL
        if cal.any():
            ci, cp = fa[cal], pol[cal]
            hit = moved[cal] >= p.cal_detect_us
            room = self._room(m_before[cal], cp)
            if hit.any():
                self.v_fix[cp[hit], ci[hit]] = self.v_cal[cp[hit], ci[hit]]
                self.v_onset[cp[hit], ci[hit]] = self.v_cal[cp[hit], ci[hit]]
                self.gain[cp[hit], ci[hit]] = moved[cal][hit] / (
                    room[hit] * (p.cal_width_s / p.width_ref_s) ** self.beta[cp[hit], ci[hit]]
                )
            miss = ~hit
            if miss.any():
                cap = np.where(cp[miss] == SET, p.set_max_v, p.reset_max_v)
                cur = self.v_cal[cp[miss], ci[miss]]
                at_cap = cur >= cap - 1e-12
                f_stuck[act[cal][miss][at_cap]] = True
                self.v_cal[cp[miss], ci[miss]] = np.minimum(cur + p.cal_step_v, cap)
        tn = kind == _TUNE
        if tn.any():
            ti, tp = fa[tn], pol[tn]
            room = self._room(m_before[tn], tp)
            x = np.log(w[tn] / p.width_ref_s)
            if p.learn_width_exponent:
                mv = moved[tn]
                seen = mv > 0.1  # a move clear of the read noise
                if seen.any():
                    y = np.log(mv[seen] / room[seen])
                    xs, ts, ps = x[seen], ti[seen], tp[seen]
                    for row, val in enumerate((np.ones_like(xs), xs, y, xs * xs, xs * y)):
                        np.add.at(self._fit[row], (ps, ts), val)
                    f = self._fit[:, ps, ts]
                    nn = f[0]
                    var = f[3] / nn - (f[1] / nn) ** 2
                    cov = f[4] / nn - (f[1] / nn) * (f[2] / nn)
                    ok = (nn >= 4) & (var > 0.1)
                    if ok.any():
                        self.beta[ps[ok], ts[ok]] = np.clip(cov[ok] / var[ok], 0.1, 2.0)
            pred = self.gain[tp, ti] * room * np.exp(self.beta[tp, ti] * x)
            ratio = np.clip(np.maximum(moved[tn], 0.05 * pred) / pred, 0.25, 4.0)
            self.gain[tp, ti] *= ratio**p.gain_learning

    @staticmethod
    def _emit(
        sink: EventSink,
        idx: np.ndarray,
        report: dict[str, np.ndarray],
        flag_masks: dict[str, np.ndarray],
    ) -> None:
        """Stream one result row per finished cell ``idx`` (and an event for failed ones)."""
        if isinstance(sink, NullSink):
            return
        flags = compose_flags({name: mask[idx] for name, mask in flag_masks.items()})
        if wants_bulk(sink):  # the run store: one TuneResult for the cells finishing together
            base = ("row", "col", "target_us", "final_us", "pulses", "reads", "converged")
            sink.record_results(  # type: ignore[attr-defined]
                TuneResult(
                    protocol="denoise", rows=report["row"][idx], cols=report["col"][idx],
                    target_us=report["target_us"][idx], final_us=report["final_us"][idx],
                    pulses=report["pulses"][idx], reads=report["reads"][idx],
                    converged=report["converged"][idx], flags=flags, tolerance_us=np.nan,
                    extra={k: v[idx] for k, v in report.items() if k not in base},
                )
            )  # fmt: skip
            return  # flagged cells carry their flags in the result (no event per cell)
        cols = {name: a[idx].tolist() for name, a in report.items()}
        cols["error_us"] = (report["final_us"][idx] - report["target_us"][idx]).tolist()
        for k in range(idx.size):
            row: dict[str, Any] = {"protocol": "denoise", **{n: v[k] for n, v in cols.items()}}
            row["flags"] = str(flags[k])
            sink.record_result(row)
            if not row["converged"]:
                sink.record_event(
                    {
                        "event": "cell_flagged",
                        "row": row["row"],
                        "col": row["col"],
                        "flags": row["flags"],
                    }
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


__all__ = ["DenoiseParams", "DenoiseTuner", "tune_denoise"]
