"""Feedforward linear potentiation (Diao et al., Nanoscale Horiz. 10, 780, 2025).

Why: identical pulses give a saturating potentiation curve (big steps near the HRS, tiny
ones near the LRS), so equally spaced states need different pulses; and when the window
is narrow (HRS/LRS = 1.19, 512 states 0.16 µS apart) a write-verify search spends many
pulses per state. The feedforward scheme measures the device's response once, inverts it
into a pulse schedule that gives equal conductance steps, and then programs by feeding the
schedule forward: one pulse per state, verified by one read, corrected only when a state
lands off target.

Model (fitted per cell from its own curves; no device constant is assumed):

    SET   : dG = +(G_max - G) * (1 - exp(-s_set(V))),  sqrt(s_set) = m_set * (V - V0_set)
    RESET : dG = -(G - G_min) * (1 - exp(-s_reset(|V|))),  likewise

Characterisation (:meth:`FeedforwardTuner.characterise`, lock-step over the batch): two
depression and two potentiation runs of ``char_pulses`` identical pulses, at two
amplitudes per polarity, read after every pulse. A linear fit of the step against the
conductance gives the bound and the per-pulse fraction ``a`` of each run;
``s = -ln(1 - a)``; two amplitudes give ``m`` and ``V0``. The inverse,
``V(d, G) = V0 + sqrt(-ln(1 - d / room)) / m``, gives the pulse for a step of ``d`` µS.
The pulse width is fixed (``width_s``): the amplitude is the schedule's knob.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field, model_validator

from memprog.core.errors import ConfigError
from memprog.core.validation import MemprogModel
from memprog.protocols.common import (
    Clock,
    Progress,
    check_amplitudes,
    check_cells,
    check_read_v,
    check_targets,
)
from memprog.protocols.events import EventSink, NullSink, sink_or_null, wants_trace
from memprog.protocols.programmer import CellProgrammer
from memprog.protocols.results import FLAG_BUDGET, FLAG_NO_MODEL, TuneResult, compose_flags
from memprog.protocols.settle import (
    adaptive_read,
    resolve_settle_s,
    settle_and_reverify,
    settle_rounds_field,
    settle_s_field,
)


class FeedforwardParams(MemprogModel):
    """Settings of the feedforward scheme. Defaults: the TiO2-x preset (Diao 2025).

    Amplitudes are magnitudes; SET pulses are applied positive, RESET negative.
    """

    read_v: float | None = Field(default=0.2, description="read voltage; None: the stack's")
    width_s: float = Field(default=1e-6, gt=0, le=1.0, description="width of every pulse")
    char_pulses: int = Field(
        default=60, ge=8, le=10_000, description="pulses per characterisation run"
    )
    char_set_v: tuple[float, float] = Field(default=(0.95, 1.2), description="SET runs' amplitudes")
    char_reset_v: tuple[float, float] = Field(
        default=(1.1, 1.35), description="RESET runs' amplitudes"
    )
    learning: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="weight of each observed step in re-fitting V0 (0: off)",
    )
    set_max_v: float = Field(default=1.6, gt=0, le=20, description="SET amplitude cap")
    reset_max_v: float = Field(default=1.8, gt=0, le=20, description="RESET amplitude cap")
    tolerance_us: float = Field(
        default=0.05, gt=0, description="|read - target| accepted without correction"
    )
    max_corrections: int = Field(
        default=8, ge=0, le=10_000, description="correction pulses per target"
    )
    max_pulses: int = Field(default=200, ge=1, le=1_000_000, description="all pulses per target")
    batch_size: int | None = Field(
        default=None, ge=1, description="None: all (row stacks), 1 (serial)"
    )
    settle_s: float | None = settle_s_field("the final re-verify of tune()")
    settle_rounds: int = settle_rounds_field()
    verify_sem_frac: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="adaptive verify: read a cell again until the standard error of its mean "
        "is below this fraction of tolerance_us (only cells whose spread needs it)",
    )
    verify_max_reads: int = Field(
        default=16, ge=1, le=10_000, description="most reads of one verification"
    )

    @model_validator(mode="after")
    def _check(self) -> FeedforwardParams:
        for name, pair, cap in (
            ("char_set_v", self.char_set_v, self.set_max_v),
            ("char_reset_v", self.char_reset_v, self.reset_max_v),
        ):
            a, b = pair
            if not (0 < a < b <= cap):
                raise ConfigError(name, pair, f"two increasing amplitudes in (0, {cap}] V")
        return self


@dataclass
class Characterisation:
    """Fitted response of each cell (arrays, one entry per cell)."""

    rows: np.ndarray
    cols: np.ndarray
    g_max_us: np.ndarray
    g_min_us: np.ndarray
    m_set: np.ndarray  # sqrt(s) per volt above V0, SET
    v0_set: np.ndarray
    m_reset: np.ndarray
    v0_reset: np.ndarray
    pulses: np.ndarray  # pulses spent characterising
    reads: np.ndarray
    ok: np.ndarray  # the fit is usable (the cell moved in every run)

    def set_amplitude(
        self, d_us: np.ndarray, g_us: np.ndarray, idx: np.ndarray | None = None
    ) -> np.ndarray:
        """SET amplitude moving the cells from ``g_us`` up by ``d_us`` (NaN if out of reach)."""
        sel = slice(None) if idx is None else idx
        room = self.g_max_us[sel] - g_us
        with np.errstate(invalid="ignore", divide="ignore"):
            s = -np.log1p(-np.asarray(d_us) / room)
            return np.where(
                (room > d_us) & (d_us > 0), self.v0_set[sel] + np.sqrt(s) / self.m_set[sel], np.nan
            )

    def reset_amplitude(
        self, d_us: np.ndarray, g_us: np.ndarray, idx: np.ndarray | None = None
    ) -> np.ndarray:
        """RESET amplitude (magnitude) moving the cells down by ``d_us`` (NaN if out of reach)."""
        sel = slice(None) if idx is None else idx
        room = g_us - self.g_min_us[sel]
        with np.errstate(invalid="ignore", divide="ignore"):
            s = -np.log1p(-np.asarray(d_us) / room)
            return np.where(
                (room > d_us) & (d_us > 0),
                self.v0_reset[sel] + np.sqrt(s) / self.m_reset[sel],
                np.nan,
            )

    def schedule(self, levels_us: np.ndarray, idx: int = 0) -> np.ndarray:
        """Amplitudes taking cell ``idx`` from ``levels_us[k]`` to ``levels_us[k + 1]``."""
        lv = np.asarray(levels_us, float)
        ix = np.full(lv.size - 1, idx)
        return self.set_amplitude(np.diff(lv), lv[:-1], ix)


def _fit_run(g: np.ndarray, sign: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-cell fit of one run (g: pulses+1 x cells): bound, per-pulse fraction a, ok mask.

    dG_i = sign * a * (bound - G_i)  =>  dG_i = sign*a*bound - sign*a*G_i (least squares).
    """
    x = g[:-1]
    y = g[1:] - g[:-1]
    xm, ym = x.mean(axis=0), y.mean(axis=0)
    sxx = ((x - xm) ** 2).sum(axis=0)
    sxy = ((x - xm) * (y - ym)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = sxy / sxx
        intercept = ym - slope * xm
        a = -slope  # SET: slope = -a; RESET: dG = -a*(G - gmin) = a*gmin - a*G: slope = -a too
        bound = intercept / a
    ok = np.isfinite(a) & (a > 1e-6) & (a < 0.9) & np.isfinite(bound)
    return bound, np.where(ok, a, np.nan), ok


def _fit_fraction(g: np.ndarray, bound: np.ndarray, sign: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pulse fraction ``a`` of a run with the bound known: dG = sign * a * room."""
    room = (bound - g[:-1]) if sign > 0 else (g[:-1] - bound)
    y = sign * (g[1:] - g[:-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        a = (y * room).sum(axis=0) / (room * room).sum(axis=0)
    ok = np.isfinite(a) & (a > 1e-6) & (a < 0.9)
    return np.where(ok, a, np.nan), ok


class FeedforwardTuner:
    """Characterise cells once, then program them with their own pulse schedule."""

    def __init__(self, programmer: CellProgrammer, params: FeedforwardParams | None = None) -> None:
        self.programmer = programmer
        self.params = p = params or FeedforwardParams()
        check_amplitudes(programmer, p.set_max_v, p.reset_max_v, p.width_s)
        self.read_v = check_read_v(programmer, p.read_v)
        self.char: Characterisation | None = None
        self._flat_index: dict[int, int] = {}

    # ------------------------------------------------------------------ characterisation
    def _run_pulses(
        self, r: np.ndarray, c: np.ndarray, amp: float, n: int, sink: EventSink | None = None
    ) -> np.ndarray:
        """n identical pulses on every cell, reading after each: (n+1, cells) conductances."""
        prog, p = self.programmer, self.params
        trace = sink is not None and wants_trace(sink)
        out = np.empty((n + 1, r.size))
        out[0] = prog.read(r, c, self.read_v)
        if trace:
            sink.record_event({"event": "read", "rows": r, "cols": c, "g_us": out[0]})  # type: ignore[union-attr]
        for k in range(n):
            prog.pulse(r, c, amp, p.width_s)
            out[k + 1] = prog.read(r, c, self.read_v)
            if trace:
                sink.record_event({"event": "pulse", "rows": r, "cols": c, "amplitude_v": amp, "width_s": p.width_s})  # type: ignore[union-attr]
                sink.record_event({"event": "read", "rows": r, "cols": c, "g_us": out[k + 1]})  # type: ignore[union-attr]
        return out

    def characterise(
        self, rows: object, cols: object, sink: EventSink | None = None
    ) -> Characterisation:
        """Measure and fit each cell's response (lock-step over the batch); ends at the HRS."""
        prog, p = self.programmer, self.params
        r, c = check_cells(prog, rows, cols)
        s = sink_or_null(sink)
        n = p.char_pulses
        self._run_pulses(
            r, c, -p.char_reset_v[1], n, s
        )  # to the HRS first (starts anywhere: not fitted)
        u1 = self._run_pulses(r, c, p.char_set_v[0], n, s)
        d2 = self._run_pulses(r, c, -p.char_reset_v[0], n, s)
        u2 = self._run_pulses(r, c, p.char_set_v[1], n, s)
        d3 = self._run_pulses(r, c, -p.char_reset_v[1], n, s)  # back to the HRS
        # bounds from the strong runs (they cross most of the window), fractions from all
        g_max, a_u2, ok2 = _fit_run(u2, +1)
        g_min, a_d1, ok3 = _fit_run(d3, -1)
        a_u1, ok1 = _fit_fraction(u1, g_max, +1)
        a_d2, ok4 = _fit_fraction(d2, g_min, -1)
        with np.errstate(invalid="ignore", divide="ignore"):
            q1, q2 = np.sqrt(-np.log1p(-a_u1)), np.sqrt(-np.log1p(-a_u2))
            m_set = (q2 - q1) / (p.char_set_v[1] - p.char_set_v[0])
            v0_set = p.char_set_v[0] - q1 / m_set
            # RESET runs: d3 at the high amplitude, d2 at the low one
            r_lo, r_hi = np.sqrt(-np.log1p(-a_d2)), np.sqrt(-np.log1p(-a_d1))
            m_reset = (r_hi - r_lo) / (p.char_reset_v[1] - p.char_reset_v[0])
            v0_reset = p.char_reset_v[0] - r_lo / m_reset
        ok = ok1 & ok2 & ok3 & ok4 & (m_set > 0) & (m_reset > 0) & (g_max > g_min)
        ch = Characterisation(
            rows=r,
            cols=c,
            g_max_us=g_max,
            g_min_us=g_min,
            m_set=m_set,
            v0_set=v0_set,
            m_reset=m_reset,
            v0_reset=v0_reset,
            pulses=np.full(r.size, 5 * n),
            reads=np.full(r.size, 5 * (n + 1)),
            ok=ok,
        )
        self.char = ch
        self._flat_index = {int(f): i for i, f in enumerate(r * prog.info.cols + c)}
        s.record_event(
            {
                "event": "characterised",
                "protocol": "feedforward",
                "cells": int(r.size),
                "usable": int(ok.sum()),
                "g_max_us_mean": float(np.nanmean(g_max)),
                "g_min_us_mean": float(np.nanmean(g_min)),
            }
        )
        return ch

    def _char_index(self, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        if self.char is None:
            raise ConfigError("characterisation", None, "characterise() these cells first")
        flat = r * self.programmer.info.cols + c
        try:
            return np.array([self._flat_index[int(f)] for f in flat], dtype=np.int64)
        except KeyError as exc:
            raise ConfigError(
                "cell", divmod(int(exc.args[0]), self.programmer.info.cols), "a characterised cell"
            ) from None

    # ------------------------------------------------------------------ programming
    def tune(
        self,
        rows: object,
        cols: object,
        targets_us: object,
        sink: EventSink | None = None,
        progress: bool = False,
        feed_us: object | None = None,
        settle: bool = True,
    ) -> TuneResult:
        """Program each cell to its target: feed the model's pulse forward, verify, correct.

        Cells not yet characterised are characterised first. ``feed_us`` (optional, one per
        cell) is where the schedule expects each cell to be: the first pulse is then the
        scheduled one (computed from ``feed_us``) rather than one computed from a read,
        which is how a precomputed schedule is fed forward; the verify read follows.
        """
        prog, p = self.programmer, self.params
        r, c = check_cells(prog, rows, cols)
        t = check_targets(prog, targets_us, r.size)
        s = sink_or_null(sink)
        clock = Clock(prog)
        known = self.char is not None and all(
            int(f) in self._flat_index for f in (r * prog.info.cols + c)
        )
        char_pulses = np.zeros(r.size, dtype=np.int64)
        if not known:
            char_pulses[:] = self.characterise(r, c, sink=s).pulses
        ix = self._char_index(r, c)
        bar = Progress(progress, r.size, "feedforward")
        try:
            res = self._program(
                r, c, t, ix, s, bar, None if feed_us is None else np.asarray(feed_us, float)
            )
        finally:
            bar.close()
        settle = resolve_settle_s(prog, p.settle_s) if settle else 0.0
        if settle > 0:
            settle_and_reverify(
                prog,
                res,
                lambda idx: self._program(r[idx], c[idx], t[idx], ix[idx], s, Progress(False, 0, ""), None),
                settle,
                rounds=p.settle_rounds,
                read_v=self.read_v,
                sink=s,
                min_reads=2,
                max_reads=p.verify_max_reads,
            )
        res.extra["characterisation_pulses"] = char_pulses  # spent in this call, not in pulses
        res.wall_s, res.bench_time_s, res.params = clock.wall_s, clock.bench_s, p.model_dump()
        s.record_event({"event": "tune_end", "protocol": "feedforward", "summary": res.summary()})
        return res

    def _learn(self, ci: np.ndarray, amp: np.ndarray, g0: np.ndarray, g1: np.ndarray) -> None:
        """Re-fit each pulsed cell's V0 from the step its pulse just produced.

        The characterisation runs sit at larger amplitudes than the schedule's tiny steps,
        so V0 is an extrapolation; every verified step is a measurement right where the
        schedule works. Steps too small to see above the read noise are skipped.
        """
        ch, p = self.char, self.params
        assert ch is not None
        up = amp > 0
        d = np.where(up, g1 - g0, g0 - g1)
        room = np.where(up, ch.g_max_us[ci] - g0, g0 - ch.g_min_us[ci])
        good = (d > 0.02) & (room > d)
        if not good.any():
            return
        with np.errstate(invalid="ignore", divide="ignore"):
            q = np.sqrt(-np.log1p(-d / room))
        m = np.where(up, ch.m_set[ci], ch.m_reset[ci])
        v0_obs = np.abs(amp) - q / m
        v0 = np.where(up, ch.v0_set[ci], ch.v0_reset[ci])
        new = v0 + p.learning * np.clip(v0_obs - v0, -0.05, 0.05)
        su, sr = good & up, good & ~up
        ch.v0_set[ci[su]] = new[su]
        ch.v0_reset[ci[sr]] = new[sr]

    def _verify(
        self, r: np.ndarray, c: np.ndarray, sink: EventSink | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Adaptive verification: mean of as many reads as each cell's own spread needs."""
        p = self.params
        m, cnt, _ = adaptive_read(
            self.programmer, r, c, self.read_v, p.verify_sem_frac * p.tolerance_us,
            min_reads=min(2, p.verify_max_reads), max_reads=p.verify_max_reads, sink=sink,
        )  # fmt: skip
        return m, cnt

    def _program(self, r, c, t, ix, sink, bar, feed) -> TuneResult:
        prog, p, ch = self.programmer, self.params, self.char
        assert ch is not None
        n = r.size
        trace = wants_trace(sink)
        pulses = np.zeros(n, dtype=np.int64)
        reads = np.zeros(n, dtype=np.int64)
        corr = np.zeros(n, dtype=np.int64)
        final = np.full(n, np.nan)
        conv = np.zeros(n, dtype=bool)
        stuck = ~ch.ok[ix]  # no usable model: the cell did not respond as the model expects
        budget = np.zeros(n, dtype=bool)
        done = stuck.copy()
        if feed is None:
            g, cnt = self._verify(r, c, sink)
            reads += cnt
        else:
            g = np.broadcast_to(feed, (n,)).astype(float)
        first = feed is not None
        while True:
            act = np.flatnonzero(~done)
            if act.size == 0:
                break
            err = t[act] - g[act]
            ok = np.abs(err) <= p.tolerance_us
            if not first and ok.any():
                i = act[ok]
                conv[i], final[i], done[i] = True, g[i], True
            out = ~ok & ((corr[act] > p.max_corrections) | (pulses[act] >= p.max_pulses))
            if out.any():
                i = act[out]
                budget[i], final[i], done[i] = True, g[i], True
            go = ~ok & ~out if not first else np.ones(act.size, dtype=bool)
            if first:
                go &= np.abs(err) > 1e-12
            i, e = act[go], err[go]
            if i.size:
                up = e > 0
                amp = np.full(i.size, np.nan)
                if up.any():
                    amp[up] = ch.set_amplitude(e[up], g[i[up]], ix[i[up]])
                if (~up).any():
                    amp[~up] = -ch.reset_amplitude(-e[~up], g[i[~up]], ix[i[~up]])
                # out of the model's reach or beyond the caps: the strongest allowed pulse
                amp = np.where(np.isnan(amp), np.where(up, p.set_max_v, -p.reset_max_v), amp)
                capped = (amp >= p.set_max_v) | (amp <= -p.reset_max_v)
                amp = np.clip(amp, -p.reset_max_v, p.set_max_v)
                prog.pulse(r[i], c[i], amp, p.width_s)
                pulses[i] += 1
                # a capped pulse is one step of a longer schedule, not a correction
                corr[i] += 0 if first else (~capped).astype(np.int64)
                if trace:
                    sink.record_event(
                        {
                            "event": "pulse",
                            "rows": r[i],
                            "cols": c[i],
                            "amplitude_v": amp,
                            "width_s": p.width_s,
                        }
                    )
            first = False
            act = np.flatnonzero(~done)
            if act.size == 0:
                break
            g_before = g[i].copy() if i.size else None
            g[act], cnt = self._verify(r[act], c[act], sink)
            reads[act] += cnt
            if i.size and p.learning > 0:
                self._learn(ix[i], amp, g_before, g[i])
        flags = compose_flags({FLAG_NO_MODEL: stuck, FLAG_BUDGET: budget})
        if not isinstance(sink, NullSink):
            for k in range(n):
                sink.record_result(
                    {
                        "protocol": "feedforward",
                        "row": int(r[k]),
                        "col": int(c[k]),
                        "target_us": float(t[k]),
                        "final_us": float(final[k]),
                        "pulses": int(pulses[k]),
                        "reads": int(reads[k]),
                        "converged": bool(conv[k]),
                        "flags": str(flags[k]),
                    }
                )
        bar.update(n)
        return TuneResult(
            protocol="feedforward",
            rows=r,
            cols=c,
            target_us=t,
            final_us=final,
            pulses=pulses,
            reads=reads,
            converged=conv,
            flags=flags,
            tolerance_us=np.full(n, p.tolerance_us),
            extra={"corrections": corr},
        )


def tune_feedforward(
    programmer: CellProgrammer,
    rows: object,
    cols: object,
    targets_us: object,
    params: FeedforwardParams | None = None,
    sink: EventSink | None = None,
    progress: bool = False,
) -> TuneResult:
    """Characterise the cells, then program them to their targets (one-shot tuner)."""
    return FeedforwardTuner(programmer, params).tune(
        rows, cols, targets_us, sink=sink, progress=progress
    )


def linearity_r2(levels_us: np.ndarray, measured_us: np.ndarray) -> float:
    """R^2 of the measured states against the equal-step ladder (1 = perfectly linear)."""
    y = np.asarray(measured_us, float)
    x = np.asarray(levels_us, float)
    ss_res = float(np.sum((y - x) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0


__all__ = [
    "FeedforwardParams",
    "FeedforwardTuner",
    "Characterisation",
    "tune_feedforward",
    "linearity_r2",
]
