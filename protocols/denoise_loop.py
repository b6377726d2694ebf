"""The lock-step loop of the denoising write-verify: measure, learn, decide, pulse.

Why a module of its own: this is the part that runs on the bench. Every active cell gets
one decision per iteration (accept, denoise, tune, or give up, each bounded and flagged),
the pulses of all cells travel as one train followed by a burst of reads (one
:meth:`~memprog.protocols.programmer.CellProgrammer.pulse_read`), and the burst's mean,
minimum and maximum are the RTN estimate: a spread above ``max_spread_us`` means a
fluctuator is still there. Finished cells stream to the sink as they finish.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memprog.protocols.common import Progress
from memprog.protocols.denoise_cells import (
    PULSE_CAL,
    PULSE_DENOISE,
    PULSE_NONE,
    PULSE_TUNE,
    DenoiseCellModel,
)
from memprog.protocols.denoise_params import DenoiseParams
from memprog.protocols.events import EventSink, NullSink, wants_bulk, wants_trace
from memprog.protocols.programmer import CellProgrammer
from memprog.protocols.results import (
    FLAG_BUDGET,
    FLAG_NOISY,
    FLAG_RETRIES,
    FLAG_STUCK,
    TuneResult,
    compose_flags,
)


class DenoiseLoop(DenoiseCellModel):
    """The loop of :class:`~memprog.protocols.denoise.DenoiseTuner`, which provides the
    stack, the settings and the read voltage; the cell model it learns into is its base."""

    programmer: CellProgrammer
    params: DenoiseParams
    read_v: float | None

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
        last = np.full(n, PULSE_NONE, dtype=np.int8)
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
                sink.record_event(
                    {"event": "read", "rows": r[dead], "cols": c[dead], "g_us": final[dead]}
                )
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
                retune = want_tune & (dn > 0) & (kind != PULSE_CAL) & (aerr <= p.coarse_us)
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
                last[i] = PULSE_DENOISE
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
                    fine = (k == PULSE_TUNE) & (np.abs(err[go_tune]) <= p.coarse_us)
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
