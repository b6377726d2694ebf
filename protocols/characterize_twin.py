"""The characterisation a digital twin is fitted from: pulse response, noise, relaxation.

Why: ``memprog sim calibrate`` (:mod:`memprog.twin.calibrate`) fits the simulator's physics to one
chip from what the chip itself answered, so the chip must be asked the questions whose
answers pin each physics field down. Seed 001's procedures (census, imprecision, disturb,
RTN) describe what *tuning* does; these describe what *one pulse* does, which is what the
pulse law is written in. Each streams raw samples (``{"event": "samples", ...}``), as the
rest of :mod:`~memprog.protocols.characterize`:

5. **response** (table ``response``): on a random subset of working cells, from a
   prepared state (RESET to the off state for a SET pulse, SET at the cap for a RESET
   pulse: ``census_pulses`` wide pulses), one pulse at each point of a grid of amplitude x
   width (x gate on a 1T1R stack), ``response_repeats`` times: the mean of a few reads
   before and after. The grid yields the pulse law and each cell's bounds and thresholds
   (device-to-device), the repeats of the same pulse from the same state its
   cycle-to-cycle spread; the gate points its compliance. On a stack without a gate
   (passive) ``response_fine_amplitudes`` more amplitudes at the ramp's width, just above
   the ramp start, pin the threshold apart from the overdrive exponent (:func:`response_grid`).
6. **noise** (table ``noise``): each cell in its off and its on state, a burst of reads
   back to back (white read noise: successive differences) and a longer burst at
   ``telegraph_interval_s`` (telegraph noise: two-level amplitudes and dwell times).
7. **relax** (table ``relax``): after a long settle (bench waits, as a lab would), one
   switching pulse, then reads at increasing delays (bench waits in between): how much of
   the step relaxes back, and how fast.

Amplitudes, widths and gates come from the protocol's own ramps (:class:`AlibartParams`)
and the stack's limits; nothing here reads a simulator parameter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memprog.protocols.alibart import AlibartParams
from memprog.protocols.programmer import CellProgrammer

# [choice] reads averaged before and after each response pulse: enough to put the read
# noise well under the steps measured, few enough that a fluctuator cannot average out
RESPONSE_READS = 4
# [choice] the preparation pulses (to the off / on state) are this many times the ramp's
# width: wide enough that a weak cell still reaches its bound in a few pulses
PREP_WIDTH_X = 100
# [choice] the fine amplitudes span the ramp start to this many times it: where a ramp at
# the ramp's width takes its first visible steps (overdrive ~0-0.4 on a cell at the ramp
# start), the steps that decide how many pulses a write-verify needs
FINE_SPAN_X = 1.4
# [choice] the lowest gate point, as a fraction of the protocol's gate window: the
# compliance there (~10 % of the range) is still far above the prepared off state (a wide
# RESET reaches the lower bound), and the gate law's onset is interpolated between
# measured points instead of extrapolated from the upper part (from 40 % up, the onset
# came out 0.596-0.620 V on three draws of one preset chip at 0.600 V, and a write-verify's
# pulses at low targets moved 25-35 % with it)
GATE_LOW_FRAC = 0.1
# [choice] fine amplitudes per polarity on a stack without a gate (response_fine None)
FINE_PASSIVE = 8


def _samples(sink: Any, table: str, **cols: Any) -> None:
    sink.record_event({"event": "samples", "table": table, "columns": cols})


def response_grid(prog: CellProgrammer, ali: AlibartParams, n_amp: int, n_width: int, n_gate: int, n_fine: int = 0) -> dict[str, np.ndarray]:
    """The amplitudes (per polarity), widths and gates the response procedure pulses at.

    Why these: the protocol's ramps span where its cells switch (a little below the ramp
    start, to see the threshold, up to the cap); widths from the ramp's width up a decade
    (the width law), capped by the stack's limits; gates over the
    protocol's gate window, from :data:`GATE_LOW_FRAC` of it up (the onset of the gate
    law is what low targets are programmed at).

    ``n_fine`` more amplitudes per polarity (``fine_set_v``, ``fine_reset_v``), evenly from
    the ramp start to ``FINE_SPAN_X`` times it, pulsed at the ramp's width only. Why: the
    threshold and the overdrive exponent are told apart only by steps just above the
    threshold, and on a passive array those steps (a few % of the range) sit under the
    sub-threshold kicks a selected cell takes (its half-select disturb, 10-25 µS on TiO2):
    with the 7-point grid (two points in that region) a fitted exponent error of +0.1
    moved every threshold by -1.1 %, and a write-verify's pulses move ~4.5 % per 1 %.
    These are the pulses a ramp spends first, at the ramp's own width.
    """
    lim = prog.limits
    # denser near the ramp start: the threshold is where the steps begin, and only points
    # just above it separate it from the law's exponent
    u = np.linspace(0.0, 1.0, n_amp) ** 1.7
    set_lo, reset_lo = 0.9 * ali.set_start_v, 0.9 * ali.reset_start_v
    set_amp = set_lo + (min(ali.set_max_v, lim.set_v_max) - set_lo) * u
    reset_amp = reset_lo + (min(ali.reset_max_v, lim.reset_v_max) - reset_lo) * u
    w = ali.width_s * np.logspace(0, 1, n_width)
    step = prog.info.width_step_s
    if step:  # the stack's timing grid (the WGFMU's 10 ns): 632.5 ns would be refused
        w = np.maximum(np.round(w / step), 1) * step
    w = np.clip(w, lim.width_s_min, lim.width_s_max)
    gates = np.array([np.nan])
    if prog.info.has_gate:
        lo, hi = ali.gate_v_min, min(ali.gate_v_max, lim.gate_v_max)
        gates = lo + (hi - lo) * np.linspace(GATE_LOW_FRAC, 1.0, max(n_gate, 1))
    set_cap, reset_cap = min(ali.set_max_v, lim.set_v_max), min(ali.reset_max_v, lim.reset_v_max)
    fine_set = np.linspace(ali.set_start_v, min(FINE_SPAN_X * ali.set_start_v, set_cap), n_fine)
    fine_reset = np.linspace(ali.reset_start_v, min(FINE_SPAN_X * ali.reset_start_v, reset_cap), n_fine)
    width = float(np.clip(ali.width_s, lim.width_s_min, lim.width_s_max))
    return {"set_v": set_amp, "reset_v": reset_amp, "width_s": np.unique(w), "gate_v": gates,
            "fine_set_v": fine_set, "fine_reset_v": fine_reset, "fine_width_s": np.array([width])}  # fmt: skip


class _Cells:
    """The sampled cells and how they are addressed (lock-step or one at a time)."""

    def __init__(self, prog: CellProgrammer, rows: np.ndarray, cols: np.ndarray, ali: AlibartParams, pulses: int) -> None:
        self.prog, self.r, self.c, self.ali, self.pulses = prog, rows, cols, ali, pulses
        serial = prog.info.parallel == "cell"
        self.groups = [np.array([i]) for i in range(rows.size)] if serial else [np.arange(rows.size)]
        lim = prog.limits
        self.prep_width_s = float(min(ali.width_s * PREP_WIDTH_X, lim.width_s_max))
        self.set_cap = min(ali.set_max_v, lim.set_v_max)
        self.reset_cap = min(ali.reset_max_v, lim.reset_v_max)
        self.gate_max = min(ali.gate_v_max, lim.gate_v_max) if prog.info.has_gate else None

    def gate(self, g: np.ndarray, value: float | None) -> np.ndarray | None:
        if not self.prog.info.has_gate or value is None or not np.isfinite(value):
            return None
        return np.full(g.size, float(value))

    def prepare(self, g: np.ndarray, state: str) -> None:
        """The off state (RESET at the cap) or the on state (SET at the cap, gate open)."""
        r, c = self.r[g], self.c[g]
        for _ in range(self.pulses):
            if state == "off":
                self.prog.pulse(r, c, np.full(g.size, -self.reset_cap), self.prep_width_s)
            else:
                self.prog.pulse(r, c, np.full(g.size, self.set_cap), self.prep_width_s, gate_v=self.gate(g, self.gate_max))

    def read_mean(self, g: np.ndarray, n: int = RESPONSE_READS) -> np.ndarray:
        return self.prog.read_burst(self.r[g], self.c[g], n).mean(axis=0)


def run_response(cells: _Cells, grid: dict[str, np.ndarray], repeats: int, sink: Any, bar: Any) -> int:
    """Procedure 5 (module docstring); returns the samples stored."""
    n = 0
    points = [("set", a, w, gv) for a in grid["set_v"] for w in grid["width_s"] for gv in grid["gate_v"]]
    points += [("reset", a, w, np.nan) for a in grid["reset_v"] for w in grid["width_s"]]
    # the fine points: the gate open (as a ramp SETs), or none on a stack without one
    g_open = float(grid["gate_v"][-1])
    points += [("set", a, w, g_open) for a in grid.get("fine_set_v", []) for w in grid.get("fine_width_s", [])]
    points += [("reset", a, w, np.nan) for a in grid.get("fine_reset_v", []) for w in grid.get("fine_width_s", [])]
    for rep in range(repeats):
        for g in cells.groups:
            cols: dict[str, list[Any]] = {k: [] for k in ("polarity", "amplitude_v", "width_s", "gate_v", "g_before_us", "g_after_us", "point")}
            for k, (pol, amp, w, gv) in enumerate(points):
                cells.prepare(g, "off" if pol == "set" else "on")
                before = cells.read_mean(g)
                v = amp if pol == "set" else -amp
                cells.prog.pulse(cells.r[g], cells.c[g], np.full(g.size, v), float(w), gate_v=cells.gate(g, gv))
                after = cells.read_mean(g)
                for key, val in (("polarity", pol), ("amplitude_v", v), ("width_s", w), ("gate_v", gv), ("point", k)):
                    cols[key].append(np.full(g.size, val, dtype=object if key == "polarity" else float))
                cols["g_before_us"].append(before)
                cols["g_after_us"].append(after)
            m = len(points) * g.size
            _samples(
                sink, "response",
                row=np.tile(cells.r[g], len(points)), col=np.tile(cells.c[g], len(points)),
                repeat=np.full(m, rep), point=np.concatenate(cols["point"]).astype(np.int64),
                polarity=np.concatenate(cols["polarity"]), amplitude_v=np.concatenate(cols["amplitude_v"]),
                width_s=np.concatenate(cols["width_s"]), gate_v=np.concatenate(cols["gate_v"]),
                g_before_us=np.concatenate(cols["g_before_us"]), g_after_us=np.concatenate(cols["g_after_us"]),
                reads=np.full(m, RESPONSE_READS),
            )  # fmt: skip
            n += m
        bar.update(0)
    return n


def _row_bursts(rows: np.ndarray, per_burst: int = 16) -> list[np.ndarray]:
    """Indices of ``rows`` grouped by row, at most ``per_burst`` cells each.

    Why: a noise series is only as fast as its reads are close; a stack that can run a
    burst on the instrument does so for the cells of one row (the on-chip controller's
    ``READ:BURS?``, up to 16 cells), and reads spread over rows go one at a time, paced by
    the host, slow enough for a telegraph flip between any two.
    """
    out = []
    for row in np.unique(rows):
        idx = np.flatnonzero(rows == row)
        out += [idx[k : k + per_burst] for k in range(0, idx.size, per_burst)]
    return out


def run_noise(cells: _Cells, white_reads: int, telegraph_reads: int, interval_s: float, cycles: int, sink: Any, settle_s: float) -> int:
    """Procedure 6 (module docstring); returns the samples stored. Each state settles
    ``settle_s`` of bench time first: a relaxing state drifts, and a drift is not noise."""
    n = 0
    for cyc in range(cycles):
        state = "off" if cyc % 2 == 0 else "on"
        for g in cells.groups:
            cells.prepare(g, state)
            cells.prog.wait(settle_s)
            for kind, reads, dt in (("white", white_reads, 0.0), ("telegraph", telegraph_reads, interval_s)):
                if reads < 2:
                    continue
                for sub in _row_bursts(cells.r[g]):  # one burst per row: timed by the stack
                    r, c = cells.r[g][sub], cells.c[g][sub]
                    b = cells.prog.read_burst(r, c, reads, interval_s=dt)  # (reads, cells)
                    m = b.size
                    _samples(
                        sink, "noise",
                        row=np.tile(r, reads), col=np.tile(c, reads), cycle=np.full(m, cyc),
                        state=np.array([state] * m, dtype=object), kind=np.array([kind] * m, dtype=object),
                        read=np.repeat(np.arange(reads), sub.size), interval_s=np.full(m, dt), g_us=b.ravel(),
                    )  # fmt: skip
                    n += m
    return n


def run_relax(cells: _Cells, delays_s: list[float], sink: Any) -> int:
    """Procedure 7 (module docstring): one SET and one RESET step; returns the samples."""
    n = 0
    d = np.sort(np.asarray(delays_s, float))
    pre = float(d[-1]) if d.size else 0.0
    for cyc, (pol, state) in enumerate((("set", "off"), ("reset", "on"))):
        for g in cells.groups:
            r, c = cells.r[g], cells.c[g]
            cells.prepare(g, state)
            cells.prog.wait(pre)  # what the preparation left volatile relaxes first
            before = cells.read_mean(g)
            if pol == "set":
                cells.prog.pulse(r, c, np.full(g.size, cells.set_cap), cells.ali.width_s, gate_v=cells.gate(g, cells.gate_max))
            else:
                cells.prog.pulse(r, c, np.full(g.size, -cells.reset_cap), cells.ali.width_s)
            g_t, waited = [], 0.0
            for t in d:
                cells.prog.wait(max(float(t) - waited, 0.0))
                waited = float(t)
                g_t.append(cells.read_mean(g))
            k = d.size
            _samples(
                sink, "relax",
                row=np.tile(r, k), col=np.tile(c, k), cycle=np.full(k * g.size, cyc),
                polarity=np.array([pol] * (k * g.size), dtype=object), delay_s=np.repeat(d, g.size),
                g_before_us=np.tile(before, k), g_us=np.concatenate(g_t),
            )  # fmt: skip
            n += k * g.size
    return n


def characterize_twin(
    prog: CellProgrammer,
    p: Any,
    rows: np.ndarray,
    cols: np.ndarray,
    ali: AlibartParams,
    sink: Any,
    bar: Any,
    rail_pulses: int | None = None,
) -> dict[str, int]:
    """Procedures 5-7 on the cells ``rows``/``cols``; every cell ends RESET (off).

    ``rail_pulses``: the pulses the census found a working cell needs to reach a rail
    (None: ``census_pulses``); each preparation gives as many.
    """
    cells = _Cells(prog, rows, cols, ali, rail_pulses or p.census_pulses)
    counts: dict[str, int] = {}
    if p.response_amplitudes >= 2 and p.response_repeats >= 1:
        n_fine = p.response_fine_amplitudes
        if n_fine is None:
            n_fine = 0 if prog.info.has_gate else FINE_PASSIVE
        grid = response_grid(prog, ali, p.response_amplitudes, p.response_widths, p.response_gates, n_fine)
        counts["response"] = run_response(cells, grid, p.response_repeats, sink, bar)
    bar.update(rows.size // 3)
    if p.noise_reads >= 2 or p.telegraph_reads >= 2:
        settle = max([*p.relax_delays_s, 1.0])
        counts["noise"] = run_noise(cells, p.noise_reads, p.telegraph_reads, p.telegraph_interval_s, p.noise_cycles, sink, settle)
    bar.update(rows.size // 3)
    if p.relax_delays_s:
        counts["relax"] = run_relax(cells, list(p.relax_delays_s), sink)
    for g in cells.groups:
        cells.prepare(g, "off")
    bar.update(rows.size - 2 * (rows.size // 3))
    return counts


__all__ = ["characterize_twin", "response_grid", "RESPONSE_READS"]
