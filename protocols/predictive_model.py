"""The predictive protocol's per-cell model and its lock-step loop (see :mod:`.predictive`).

Why a module of its own: the model (what is learned: thresholds per cell and polarity, the
batch's gate map, relaxation time, relaxation share and read error) and the loop that
pulses and reads through it are the protocol's core; the parameters, entry points and the
settle live beside it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from memprog.protocols.common import bench_clock
from memprog.protocols.events import EventSink, wants_trace
from memprog.protocols.predictive_gate import fit_gate_map, pilot_cells
from memprog.protocols.programmer import CellProgrammer, ProgrammerInfo
from memprog.protocols.results import (
    FLAG_AT_CAP,
    FLAG_BUDGET,
    FLAG_LIMIT_CYCLE,
    FLAG_RETRIES,
    FLAG_STUCK,
    TuneResult,
    compose_flags,
)

if TYPE_CHECKING:
    from memprog.protocols.predictive import PredictiveParams

PROTOCOL = "predictive"

# A caller's hook, called per batch when its coarse placement has found the stuck cells and
# again after the fine steps: (rows, cols, targets µS, mask of the cells that will not move
# any more (stuck or given up), last reads µS) -> None (no change) or
# (targets µS, band half-widths µS, NaN: unchanged) for every cell of the batch. See
# Run._retarget.
Retarget = Callable[
    [np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    "tuple[np.ndarray, np.ndarray] | None",
]


class Learned:
    """What the protocol learned about the chip, shared by the batches of one run."""

    def __init__(self, p: PredictiveParams, info: ProgrammerInfo) -> None:
        lo, hi = info.g_range_us
        self.g_lo, self.g_hi = float(lo), float(hi)
        # gate map: compliance = g_lo + (gate - gate0) * slope (prior: the technology's span)
        self.gate0 = p.gate_v_min
        self.gate_slope = (self.g_hi - self.g_lo) / (p.gate_v_max - p.gate_v_min)
        self.tau_s = p.relax_tau_s
        self.relax_rho = 0.0  # mean share of a step that relaxes back (signed)
        self.relax_sd = p.relax_spread_rel  # its random part (share of the step)
        self.read_sd = p.read_noise_us  # one read's error (RTN, instrument)
        self.read_sd_prior = p.read_noise_us
        self.pool_ss = 0.0  # repeated reads without a pulse between: their scatter
        self.pool_dof = 0
        self.drift_rel = 0.0  # settle drift of an accepted cell, share of G (batch median)
        self.drift_n = 0
        # thresholds learned by earlier batches: the next batch's prior (a serial stack's
        # batch is one cell, so the chip's typical cell is learned after the first few)
        self.vth_prior = np.array([p.set_vth_v, p.reset_vth_v])
        self.vth_n = np.zeros(2, dtype=np.int64)

    def learn_thresholds(self, cells: _Cells) -> None:
        """Fold a finished batch's learned thresholds into the prior of the next ones."""
        for k in (0, 1):
            seen = cells.nobs[k] > 0
            m = int(seen.sum())
            if m:
                med = float(np.median(cells.vth[k, seen]))
                self.vth_prior[k] = (self.vth_prior[k] * self.vth_n[k] + med * m) / (
                    self.vth_n[k] + m
                )
                self.vth_n[k] += m

    def gate_for(self, g_us: np.ndarray, p: PredictiveParams, margin_v: float = 0.0) -> np.ndarray:
        """The gate whose compliance is ``g_us`` on the map (``margin_v`` above it), kept
        inside the protocol's gate bounds (gate_v_max x 1.1 is checked against the bench)."""
        gate = self.gate0 + (np.asarray(g_us, float) - self.g_lo) / self.gate_slope + margin_v
        return np.clip(gate, p.gate_v_min * 0.5, p.gate_v_max * 1.1)


def _decay_fit(d1: np.ndarray, d2: np.ndarray, L: Learned) -> float:
    """The batch's relaxation decay over one wait (d2 = q d1) and its read error, together.

    Why not a per-cell ratio: the middle read's error enters d1 and d2 with opposite signs,
    so d2/d1 (or a plain regression) is biased low; least squares corrected for that
    covariance (-var) and for the error's own share of d1² (2 var) is not. The read error
    comes from the same fit: g3 - (1 + q) g2 + q g1 holds no relaxation at all. Sums, not
    medians: telegraph noise is two-level and heavy-tailed, and what puts a cell out of
    band is its tail.
    """
    n = d1.size
    var = L.read_sd**2
    q = 0.5
    s11, s12 = float(np.sum(d1 * d1)), float(np.sum(d1 * d2))
    for _ in range(4):
        q = float(np.clip((s12 + n * var) / max(s11 - 2 * n * var, 1e-12), 0.02, 0.95))
        e = d2 - q * d1
        var = float(np.mean(e * e)) / (1 + (1 + q) ** 2 + q * q)
    L.read_sd = L.read_sd_prior = max(math.sqrt(var), 1e-3)
    return q


class _Cells:
    """Per-cell lock-step state of one batch (numpy arrays of the batch length)."""

    def __init__(self, n: int, vth_prior: np.ndarray) -> None:
        self.g = np.full(n, np.nan)  # last read
        self.vth = np.empty((2, n))  # 0: SET, 1: RESET threshold estimates
        self.vth[0], self.vth[1] = vth_prior
        self.fine_ss = np.zeros(n)  # sum of squared fine steps (their relaxation's spread)
        self.pend_sd = np.zeros(n)  # error of the pending-relaxation estimate, at t_pend
        self.nobs = np.zeros((2, n), dtype=np.int64)
        self.pend = np.zeros(n)  # predicted relaxation still to come (µS), at t_pend
        self.t_pend = np.zeros(n)
        self.t_pulse = np.full(n, -np.inf)  # bench time of the last pulse
        self.fresh = np.zeros(n, dtype=bool)  # read since its estimate was last updated
        self.flips_base = np.zeros(n, dtype=np.int64)  # flips before the current re-tune
        self.denoised = np.zeros(n, dtype=bool)  # denoised since its last switching pulse
        self.denoise_pulses = np.zeros(n, dtype=np.int64)
        self.n_since = np.zeros(n, dtype=np.int64)  # reads since the last pulse
        self.sum_since = np.zeros(n)  # their lasting-state estimates, summed
        self.ss_since = np.zeros(n)  # ... and squared
        self.pulses = np.zeros(n, dtype=np.int64)
        self.reads = np.zeros(n, dtype=np.int64)
        self.unmoved = np.zeros(n, dtype=np.int64)
        self.flips = np.zeros(n, dtype=np.int64)
        self.last_dir = np.zeros(n, dtype=np.int8)
        self.done = np.zeros(n, dtype=bool)
        self.conv = np.zeros(n, dtype=bool)
        self.stuck = np.zeros(n, dtype=bool)
        self.budget = np.zeros(n, dtype=bool)
        self.cycle = np.zeros(n, dtype=bool)
        self.rounds_out = np.zeros(n, dtype=bool)
        self.at_cap = np.zeros(n, dtype=bool)
        self.final = np.full(n, np.nan)
        self.predicted = np.full(n, np.nan)  # lasting state predicted at acceptance

    def flags(self, more: dict[str, np.ndarray] | None = None) -> np.ndarray:
        return compose_flags(
            {
                FLAG_STUCK: self.stuck,
                FLAG_BUDGET: self.budget,
                FLAG_LIMIT_CYCLE: self.cycle,
                FLAG_AT_CAP: self.at_cap,
                FLAG_RETRIES: self.rounds_out,
                **(more or {}),
            }
        )


class Run:
    """One lock-step batch: coarse, relaxation fit, fine steps (see the module docstring)."""

    def __init__(
        self,
        prog: CellProgrammer,
        r: np.ndarray,
        c: np.ndarray,
        t: np.ndarray,
        p: PredictiveParams,
        learned: Learned,
        read_v: float,
        sink: EventSink,
        cells: _Cells | None = None,
        retarget: Retarget | None = None,
    ) -> None:
        self.prog, self.r, self.c, self.t, self.p, self.L = prog, r, c, t, p, learned
        self.retarget = retarget
        self.read_v, self.sink = read_v, sink
        self.trace = wants_trace(sink)
        self.tol = p.band_us(t)
        self.st = cells if cells is not None else _Cells(r.size, learned.vth_prior)
        self.waited_s = 0.0
        self.g_start = np.full(r.size, np.nan)
        self.gate_used = np.full(r.size, np.nan)  # the gate of each cell's last coarse SET
        self.coarsed = np.zeros(r.size, dtype=bool)  # cells this run placed coarsely
        self.flags_extra: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ instrument access
    def now(self) -> float:
        """Bench seconds (the stack's clock, or the waits this run made)."""
        b = bench_clock(self.prog)
        return self.waited_s if b is None else b

    def wait(self, s: float) -> None:
        if s > 0:
            self.prog.wait(s)
            self.waited_s += s

    def read(self, idx: np.ndarray) -> np.ndarray:
        g = np.asarray(self.prog.read(self.r[idx], self.c[idx], self.read_v), float)
        self.st.reads[idx] += 1
        self.st.g[idx] = g
        self.st.fresh[idx] = True
        if self.trace:
            self.sink.record_event(
                {"event": "read", "rows": self.r[idx], "cols": self.c[idx], "g_us": g}
            )
        return g

    def pulse(
        self, idx: np.ndarray, amp: np.ndarray | float, width_s: float, gate: np.ndarray | None
    ) -> None:
        if idx.size == 0:
            return
        self.prog.pulse(self.r[idx], self.c[idx], amp, width_s, gate_v=gate)
        self.st.pulses[idx] += 1
        self.st.t_pulse[idx] = self.now()
        self._pool_reads(idx)
        self.st.denoised[idx] = False  # a switching pulse draws a new filament (new RTN)
        if self.trace:
            ev: dict[str, Any] = {
                "event": "pulse", "rows": self.r[idx], "cols": self.c[idx],
                "amplitude_v": np.broadcast_to(np.asarray(amp, float), idx.shape).copy(),
                "width_s": width_s,
            }  # fmt: skip
            if gate is not None:
                ev["gate_v"] = gate
            self.sink.record_event(ev)

    # ------------------------------------------------------------------ phases
    def run(self, coarse: bool, observe: bool) -> None:
        st = self.st
        everyone = np.flatnonzero(~st.done)
        if everyone.size == 0:
            return
        if np.isnan(st.g[everyone]).any():
            self.read(everyone)
        if coarse:
            self.g_start = st.g.copy()
            # nothing coarse, nothing large to relax: no waits (a re-tune of a few cells)
            placed = self._coarse()
            if placed and self.retarget is not None:
                self._retarget()
            if placed and observe:
                self._observe_relaxation()
        self._fine()
        # the hook again for the cells the fine steps found stuck (capped pulses that did
        # not move them): the cells it moves are finished in this batch too
        if coarse and self.retarget is not None and self._retarget(late=True):
            self._fine()

    def _coarse_aim(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(aim, side): SET approach (+1) for high targets, RESET approach (-1) for low."""
        p, L = self.p, self.L
        t = self.t[idx]
        split = L.g_lo + p.approach_split * (L.g_hi - L.g_lo)
        side = np.where(t >= split, 1, -1)
        aim = t * (1 - side * p.coarse_margin_rel)
        return np.clip(aim, L.g_lo, L.g_hi), side

    def _retarget(self, late: bool = False) -> int:
        """Ask the caller's hook for new targets now that the stuck cells are known, and
        coarse-place again the cells it moved far from where they stand; returns how many
        cells it moved (``late``: after the fine steps, which find the rest of the stuck
        cells; the moved cells are opened again for the fine steps).

        Why here: a caller that makes up for a stuck cell with another cell (the program
        job's differential pair: the working copy re-aimed at ``2·G`` minus what the stuck
        one holds) otherwise learns of it only from the batch's result, and re-aims in a
        batch of its own: a second relaxation observation and settle, seconds of bench time
        for ~10 % of the cells. Re-aimed before this batch's observation, the moved cells'
        coarse steps are observed, fine-stepped and settled with every other cell's. A
        coarse step after the observation (``late``) is not observed: its pending
        relaxation is the batch's measured share of the step, with the batch's measured
        spread as its error, so the settle re-verifies it.
        """
        st, L = self.st, self.L
        # the cells that will not move any more: stuck, or given up (pulse budget, limit
        # cycle, out of rounds: they hold what they hold, as a stuck one)
        fixed = st.stuck | st.budget | st.cycle | st.rounds_out
        got = self.retarget(self.r, self.c, self.t.copy(), fixed, st.g.copy())  # type: ignore[misc]
        if got is None:
            return 0
        t_new = np.asarray(got[0], float)
        tol_new = np.asarray(got[1], float)  # NaN: the cell keeps its band
        tol_new = np.where(np.isnan(tol_new), self.tol, tol_new)
        moved = np.flatnonzero(((t_new != self.t) | (tol_new != self.tol)) & ~fixed)
        if moved.size == 0:
            return 0
        self.t = self.t.copy()
        self.tol = np.array(self.tol, dtype=float)
        self.t[moved] = t_new[moved]
        self.tol[moved] = tol_new[moved]
        if late:  # open them again: what they were accepted on was for the old target
            st.done[moved] = st.conv[moved] = False
            st.final[moved] = st.predicted[moved] = np.nan
            st.flips_base[moved] = st.flips[moved]
            st.fresh[moved] = True  # their last read counts toward the new target
            g0 = st.g[moved].copy()
        # a coarse step is up to three pulses (RESET, SET, the confirming SET): a cell whose
        # pulse bound leaves no room for them is brought there by fine steps, or flagged
        room = moved[st.pulses[moved] + 3 <= self.p.max_pulses] if late else moved
        n = self._coarse(among=room)
        if late and n:
            placed = moved[self.coarsed[moved] & ~st.done[moved]]
            step = st.g[placed] - g0[np.searchsorted(moved, placed)]
            st.pend[placed] = L.relax_rho * step
            st.pend_sd[placed] = L.relax_sd * np.abs(step)
            st.t_pend[placed] = self.now()
        self.sink.record_event(
            {"event": "retarget", "cells": int(moved.size), "coarse": n, "late": late}
        )
        return int(moved.size)

    def _coarse(self, among: np.ndarray | None = None) -> int:
        """Coarse-place the cells outside their band (``among``: of those only, and no
        pilot: the gate map is the batch's already); returns how many it pulsed."""
        p, st = self.p, self.st
        act = np.flatnonzero(~st.done) if among is None else among[~st.done[among]]
        # a cell a few % off comes back by fine steps (a re-tune after a settle or a
        # disturb): a coarse step would leave a large volatile part behind again
        off = np.abs(st.g[act] - self.t[act])
        far = act[
            (off > np.maximum(1.0, p.coarse_min_bands) * self.tol[act])
            & (off > p.coarse_min_rel * self.t[act])
        ]
        if far.size == 0:
            return 0
        # the pilot depends on the cells and their targets, not on their order (see
        # predictive_gate: a period of the batch's order must not choose what is learned)
        pilot = pilot_cells(far, self.r, self.c, self.t, p) if among is None else far[:0]
        rest = np.setdiff1d(far, pilot, assume_unique=True)
        for part in (pilot, rest):
            if part.size:
                self._coarse_once(part)
                if part is pilot:
                    self._fit_gate_map(pilot)
        # cells a strong pulse should have moved and did not get one more, then are stuck;
        # its gate goes confirm_gate_margin_v above the map's, so a working cell the map
        # aimed below its transistor's onset moves now and is not counted unmoved again
        for _ in range(max(p.stuck_pulses - 1, 0)):
            again = far[(st.unmoved[far] > 0) & ~st.done[far]]
            if again.size == 0:
                break
            self._coarse_once(again, p.confirm_gate_margin_v)
        self.sink.record_event(
            {"event": "coarse_set", "cells": int(far.size), "pilot": int(pilot.size),
             "stuck": int(st.stuck[far].sum())}
        )  # fmt: skip
        self.coarsed[far] = True
        return int(far.size)

    def _coarse_once(self, idx: np.ndarray, gate_margin_v: float = 0.0) -> None:
        p, st, L = self.p, self.st, self.L
        aim, _ = self._coarse_aim(idx)
        g0 = st.g[idx].copy()
        high = g0 > aim - self.tol[idx]  # a SET cannot bring these down: RESET first
        hi_idx = idx[high]
        unmoved = np.zeros(idx.size, dtype=np.int64)
        if hi_idx.size:
            # read between the RESET and the SET: a round trip back to a compliance near
            # where the cell started would otherwise look like a cell that never moved
            self.pulse(hi_idx, -p.coarse_reset_v, p.coarse_width_s, None)
            g_mid = self.read(hi_idx)
            g0h = g0[high]
            room = g0h - L.g_lo
            informative = room > 0.5 * g0h  # far above G_min: a strong RESET must show
            still = np.abs(g0h - g_mid) < p.stuck_move_rel * room
            unmoved[high] = informative & still
            g0 = g0.copy()
            g0[high] = g_mid
        gate = L.gate_for(aim, p, gate_margin_v)
        self.gate_used[idx] = gate
        self.pulse(idx, p.coarse_set_v, p.coarse_width_s, gate)
        g1 = self.read(idx)
        st.pend[idx] = 0.0
        st.t_pend[idx] = self.now()
        # a SET is informative when the cell sat far below its compliance
        informative = g0 < 0.5 * aim
        still = np.abs(g1 - g0) < p.stuck_move_rel * np.abs(aim - g0)
        unmoved += informative & still
        st.unmoved[idx] = np.where(unmoved > 0, st.unmoved[idx] + unmoved, 0)
        dead = idx[st.unmoved[idx] >= p.stuck_pulses]
        if dead.size:
            st.stuck[dead] = True
            st.done[dead] = True
            st.final[dead] = st.g[dead]

    def _fit_gate_map(self, pilot: np.ndarray) -> None:
        """Refit the gate map on the pilot cells that moved (:mod:`.predictive_gate`)."""
        st = self.st
        ok = pilot[(st.unmoved[pilot] == 0) & ~st.done[pilot]]
        ev = fit_gate_map(
            self.L, self.p, self.gate_used[ok], st.g[ok], self.r[ok], self.c[ok], self.t[ok]
        )
        self.sink.record_event(ev)

    def _observe_relaxation(self) -> None:
        """Two waits after the coarse steps: the batch's relaxation time, each cell's rest."""
        p, st, L = self.p, self.st, self.L
        act = np.flatnonzero(~st.done)
        if act.size == 0 or p.observe_s <= 0:
            return
        g1 = st.g[act].copy()
        self.wait(p.observe_s)
        g2 = self.read(act)
        t2 = self.now()
        self.wait(p.observe_s)
        g3 = self.read(act)
        dt = self.now() - t2  # the wait and the read: the interval the decay spans
        d1, d2 = g2 - g1, g3 - g2
        q = math.exp(-dt / L.tau_s)
        # the decay is fitted on the cells a coarse step left relaxing: a re-tune's batch is
        # mostly cells a band or two out, closed by fine steps, whose reads hold no decay to
        # fit (only noise: on 21 such cells and 6 coarse ones the fit gave 14.6 s, the clip's
        # bound, and the settle that follows, 1.5 of it, waited 22 s)
        fit = self.coarsed[act]
        if fit.sum() >= p.relax_fit_min_cells:
            q = _decay_fit(d1[fit], d2[fit], L)
            L.tau_s = -dt / math.log(q)
        # the rest still to come after the second wait: d2 q / (1 - q), shrunk toward 0
        # where it is no larger than what the reads' own error makes of it
        raw = d2 * q / (1 - q)
        noise_var = 2 * (L.read_sd * q / (1 - q)) ** 2
        total = (d1 + d2) / (1 - q * q)  # whole relaxation of the coarse steps
        sig_var = np.maximum(raw * raw - noise_var, 0.0)
        shrink = sig_var / (sig_var + noise_var)
        st.pend[act] = raw * shrink
        # its error: the reads' (what the shrinkage left) and the decay law's own (the
        # share of the rest a per-batch decay misjudges on one cell: model_error_rel)
        st.pend_sd[act] = np.hypot(
            np.sqrt(noise_var) * np.maximum(shrink, 0.5), p.model_error_rel * np.abs(raw)
        )
        st.t_pend[act] = self.now()
        g0 = self.g_start[act]
        step = g1 - np.where(np.isnan(g0), g1, g0)
        use = np.abs(step) > 50 * L.read_sd
        if use.sum() >= p.relax_fit_min_cells:
            share = total[use] / step[use]
            L.relax_rho = float(np.clip(np.median(share), -0.2, 0.2))
            L.relax_sd = float(1.4826 * np.median(np.abs(share - L.relax_rho)))
        self.sink.record_event(
            {"event": "relaxation_fit", "cells": int(act.size), "tau_s": L.tau_s,
             "relax_share": L.relax_rho, "relax_spread": L.relax_sd, "read_sd_us": L.read_sd,
             "waited_s": 2 * p.observe_s}
        )  # fmt: skip

    def lasting(self, idx: np.ndarray) -> np.ndarray:
        """Predicted lasting state: last read, the relaxation still pending, the drift."""
        st, L = self.st, self.L
        now = self.now()
        age = np.maximum(now - st.t_pend[idx], 0.0)
        since = np.maximum(now - st.t_pulse[idx], 0.0)
        drift = L.drift_rel * np.exp(-since / L.tau_s)  # a share of G, relaxing as the rest
        return st.g[idx] * (1 + drift) + st.pend[idx] * np.exp(-age / L.tau_s)

    def _fine(self) -> None:
        p, st, L = self.p, self.st, self.L
        aim_tol = p.aim_frac * self.tol
        for _ in range(p.max_iterations):
            act = np.flatnonzero(~st.done)
            if act.size == 0:
                return
            # every read since the cell's last pulse, each carried to the lasting state: the
            # lock-step rounds are milliseconds apart, so their telegraph states differ
            new = act[st.fresh[act]]
            est = self.lasting(new)
            st.sum_since[new] += est
            st.ss_since[new] += est * est
            st.n_since[new] += 1
            st.fresh[new] = False
            n_r = np.maximum(st.n_since[act], 1)
            pred = st.sum_since[act] / n_r
            se = L.read_sd / np.sqrt(n_r)
            err = pred - self.t[act]
            dist = np.abs(err)
            tol, aim = self.tol[act], aim_tol[act]
            # a cell whose steps keep changing sign is chasing its read noise: it stops
            # once inside its band and the settle's reads, seconds apart, decide
            chasing = st.flips[act] - st.flips_base[act] >= 3
            full = st.n_since[act] >= p.max_reads
            ok = (dist + 2 * se <= np.maximum(aim, 0.75 * tol)) | (full & (dist <= aim))
            ok |= chasing & (dist + se <= tol)
            # Rao's denoise: a cell whose band is within a few telegraph amplitudes gets
            # one sub-threshold pulse before it is accepted (it removes the large
            # fluctuator most of the time); then it is read again, cleaner
            if p.denoise_below_sigmas > 0:
                noisy = ok & ~st.denoised[act] & (tol < p.denoise_below_sigmas * L.read_sd)
                noisy &= st.pulses[act] < p.max_pulses
                if noisy.any():
                    self._denoise(act[noisy])
                    ok &= ~noisy
            # pulse only a cell surely outside its aim band (or out of reads); read again
            # the ones the noise leaves in doubt
            sure = (dist - 2 * se > 0.5 * aim) | full
            if ok.any():
                i = act[ok]
                st.conv[i] = True
                st.done[i] = True
                st.final[i] = st.g[i]
                st.predicted[i] = pred[ok]
            over = ~ok & (st.pulses[act] >= p.max_pulses)
            if over.any():
                i = act[over]
                st.budget[i] = True
                st.done[i] = True
                st.final[i] = st.g[i]
            go = ~ok & ~over & sure
            again = act[~ok & ~over & ~sure]
            if not go.any() and again.size == 0:
                return
            idx = act[go]
            need = -err[go]  # signed step the lasting state needs
            if idx.size:
                self._fine_step(idx, need)
            if again.size:
                self.read(again)
        # out of lock-step rounds: the cells still undecided stop here, flagged
        left = np.flatnonzero(~st.done)
        st.rounds_out[left] = True
        st.done[left] = True
        st.final[left] = st.g[left]

    def _pool_reads(self, idx: np.ndarray) -> None:
        """Fold the repeated reads of the cells ``idx`` into the batch's read error; restart.

        Why: the read error decides when a cell is known to be in its band, and it is the
        chip's (telegraph noise, a settled state's own spread, the instrument), not a
        number to assume: every cell read twice or more without a pulse in between says
        something about it. Stacks without the relaxation fit learn it only here.
        """
        st, L = self.st, self.L
        n = st.n_since[idx]
        k = n >= 2
        if k.any():
            m = st.sum_since[idx[k]] / n[k]
            L.pool_ss += float(np.sum(np.maximum(st.ss_since[idx[k]] - n[k] * m * m, 0.0)))
            L.pool_dof += int(np.sum(n[k] - 1))
            if L.pool_dof >= 8:
                prior_dof = 8
                var = (prior_dof * L.read_sd_prior**2 + L.pool_ss) / (prior_dof + L.pool_dof)
                L.read_sd = math.sqrt(var)
        st.n_since[idx] = 0
        st.sum_since[idx] = 0.0
        st.ss_since[idx] = 0.0

    def _denoise(self, idx: np.ndarray) -> None:
        """One sub-threshold SET pulse (denoise_frac of the cell's learned threshold), a read."""
        p, st = self.p, self.st
        amp = p.denoise_frac * st.vth[0, idx]
        self.prog.pulse(self.r[idx], self.c[idx], amp, p.denoise_width_s)
        st.pulses[idx] += 1
        st.denoise_pulses[idx] += 1
        st.denoised[idx] = True
        self._pool_reads(idx)
        if self.trace:
            self.sink.record_event(
                {"event": "pulse", "rows": self.r[idx], "cols": self.c[idx], "amplitude_v": amp,
                 "width_s": p.denoise_width_s, "denoise": True}
            )  # fmt: skip
        self.read(idx)

    def _fine_step(self, idx: np.ndarray, need: np.ndarray) -> None:
        p, st, L = self.p, self.st, self.L
        g = st.g[idx]
        is_set = need > 0
        pol = np.where(is_set, 0, 1)
        d = np.where(is_set, 1, -1).astype(np.int8)
        flip = (st.last_dir[idx] != 0) & (d != st.last_dir[idx])
        st.flips[idx] += flip
        st.last_dir[idx] = d
        learned = st.nobs[pol, idx] > 0
        share = np.where(learned, 1.0, p.first_aim)
        # the step relaxes back by relax_rho of itself: ask for a step that nets ``need``
        step = np.abs(need) * share / max(1.0 + L.relax_rho, 0.5)
        room = np.where(is_set, L.g_hi * 1.0 - g, g - L.g_lo)
        room = np.maximum(room, 1e-3)
        frac = np.clip(step / room, 1e-6, 0.95)
        s_need = -np.log1p(-frac)
        gain = np.where(is_set, p.set_gain, p.reset_gain)
        vth = st.vth[pol, idx]
        vmax = np.where(is_set, p.fine_set_max_v, p.fine_reset_max_v)
        v = np.minimum(vth * (1 + np.sqrt(s_need / gain)), vmax)
        capped = v >= vmax - 1e-12
        st.at_cap[idx[capped]] = True
        g0 = g.copy()
        si, ri = idx[is_set], idx[~is_set]
        self.pulse(si, v[is_set], p.fine_width_s, None)
        self.pulse(ri, -v[~is_set], p.fine_width_s, None)
        g1 = self.read(idx)
        moved = (g1 - g0) * d  # along the intended direction
        # learn: invert the law at the amplitude used, for the cells whose step is measurable
        noise = 2 * L.read_sd
        meas = moved > max(noise, 0.0)
        f_obs = np.clip(moved / room, 1e-9, 0.99)
        s_obs = -np.log1p(-f_obs)
        vth_obs = v / (1 + np.sqrt(s_obs / gain))
        n = st.nobs[pol, idx]
        # nothing measurable: the threshold is at least where this pulse was
        silent = ~meas & (moved > -noise)
        upd = np.where(meas, (vth * n + vth_obs) / (n + 1), vth)
        upd = np.where(silent, np.maximum(vth, v), upd)
        st.vth[pol, idx] = upd
        st.nobs[pol, idx] += meas
        # its own relaxation is still to come
        age = np.maximum(self.now() - st.t_pend[idx], 0.0)
        decay = np.exp(-age / L.tau_s)
        st.pend[idx] = st.pend[idx] * decay + L.relax_rho * (g1 - g0)
        st.pend_sd[idx] *= decay
        st.t_pend[idx] = self.now()
        st.fine_ss[idx] += (g1 - g0) ** 2
        # a capped pulse that did not move the cell counts toward stuck
        st.unmoved[idx] = np.where(capped & ~meas, st.unmoved[idx] + 1, 0)
        dead = idx[st.unmoved[idx] >= p.stuck_pulses]
        if dead.size:
            st.stuck[dead] = True
            st.done[dead] = True
            st.final[dead] = st.g[dead]
        limit = idx[st.flips[idx] >= 8]
        st.cycle[limit] = True

    # ------------------------------------------------------------------ result
    def result(self) -> TuneResult:
        st = self.st
        final = np.where(np.isnan(st.final), st.g, st.final)
        return TuneResult(
            protocol=PROTOCOL, rows=self.r, cols=self.c, target_us=self.t, final_us=final,
            pulses=st.pulses.copy(), reads=st.reads.copy(), converged=st.conv.copy(),
            flags=st.flags(self.flags_extra), tolerance_us=self.tol,
            extra={"polarity_flips": st.flips.copy(), "predicted_us": st.predicted.copy(),
                   "denoise_pulses": st.denoise_pulses.copy()},
        )  # fmt: skip


__all__ = ["PROTOCOL", "Learned", "Retarget", "Run"]
