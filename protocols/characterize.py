"""Seed 001's characterisation procedures, run on any stack through the CellProgrammer.

Why: hardware-aware training samples its variability from measured tables (Drolet et al.:
tuning imprecision by level, disturb by number of later writes, stuck-device conductances);
memprog measures them on the bench's own chip with the same write-verify loop it programs
with, so the tables describe what programming will really do. Each procedure streams its
raw samples to the sink as ``{"event": "samples", "table": NAME, "columns": {...}}``
records (the run store keeps them; :class:`memprog.store.VariabilityDB` derives the tables):

1. **census** (table ``stuck``, ``range``; :mod:`.characterize_census`): every examined
   cell is driven to the SET rail, then the RESET rail, in rounds of ``census_pulses``
   pulses at the ramp caps (one round for an abrupt switcher, as many as it takes a gradual
   one), read after each (one cell at a time on a serial stack); a cell whose swing stays
   under a fraction of the technology's window
   is stuck (HRS below the middle of the technology's range, LRS above); the working range
   is where most working cells reach (the median RESET state to the 10th percentile of the
   SET states, ``range_margin`` inside). Every cell ends RESET (off).
2. **imprecision** (table ``imprecision``): ``devices`` working cells x ``levels``
   equidistant targets in the working range x ``repeats``: untune (RESET to off), tune
   with Alibart (Drolet: 1 % band, 10 reads in band), then ``reads`` consecutive reads.
3. **disturb** (table ``disturb``): ``disturb_cells`` working cells programmed in order
   (row-major, random targets, as Drolet's transfers); after each write every earlier cell
   is read again; a sample is (later writes, change since that cell's own tune).
4. **rtn** (table ``rtn``): ``devices`` cells tuned to mid-range, ``rtn_reads`` reads
   (peak-to-peak = spread ``before``); ``denoise_pulses`` sub-threshold pulses (a fraction
   of the SET ramp's start, the protocol's own threshold estimate); reads again (``after``).

5-7. **response**, **noise**, **relax** (tables of the same names): what one pulse does
   against amplitude, width and gate, read and telegraph noise, relaxation over bench
   time, on ``response_devices`` random working cells (:mod:`.characterize_twin`): what
   ``memprog sim calibrate`` fits the twin's physics from.

Nothing here reads a simulator parameter: only the programmer's pulses and reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from memprog.core.errors import ConfigError
from memprog.core.validation import MemprogModel
from memprog.protocols.alibart import AlibartParams, alibart_defaults, tune_alibart
from memprog.protocols.characterize_census import run_census
from memprog.protocols.characterize_twin import characterize_twin
from memprog.protocols.common import Progress, target_range_us
from memprog.protocols.events import EventSink, EventsOnly, NullSink, sink_or_null
from memprog.protocols.programmer import CellProgrammer


class CharacterizeParams(MemprogModel):
    """Sizes and settings of a characterisation (defaults: enough to fit std%(G))."""

    devices: int = Field(default=8, ge=1, le=4096, description="cells for imprecision and RTN")
    levels: int = Field(default=8, ge=2, le=64, description="equidistant target levels")
    repeats: int = Field(default=5, ge=1, le=1000, description="tune/untune per level, device")
    reads: int = Field(default=10, ge=2, le=1000, description="consecutive reads after a tune")
    disturb_cells: int | None = Field(default=None, ge=0, le=4096, description="None: min(64, array)")
    census_cells: int | None = Field(default=None, ge=1, description="None: min(4096, array)")
    census_pulses: int = Field(default=3, ge=1, le=100, description="pulses at each ramp cap, per census round")
    # [choice] 120: the slowest switcher shipped (TiO2-x, ~5 µS per pulse up and ~1 µS down
    # at the caps on a 95 µS window) reaches both rails in 40-90 pulses
    census_max_pulses: int = Field(default=120, ge=1, le=10_000, description="most census pulses per rail")
    # [choice] 5 µS: many times the noisiest instrument's read noise (0.2 µS), so a cell that
    # swings less is not switching whatever its window
    stuck_min_move_us: float = Field(default=5.0, gt=0, description="a smaller swing = stuck")
    # [choice] 5 % of the window: a cell that swings less between the rails holds too few
    # distinguishable levels to be programmed
    stuck_min_move_frac: float = Field(default=0.05, ge=0, lt=1, description="x the technology's window; a smaller swing = stuck")
    range_margin: float = Field(default=0.05, ge=0, lt=0.5, description="inside the reachable range")
    rtn_reads: int = Field(default=20, ge=2, le=10_000)
    denoise_pulses: int = Field(default=10, ge=0, le=1000)
    denoise_frac: float = Field(default=0.6, gt=0, lt=1, description="x the SET ramp start")
    seed: int = Field(default=0, ge=0)
    alibart: AlibartParams | None = None
    # --- the twin's procedures (protocols/characterize_twin.py); 0 turns one off
    response_devices: int | None = Field(default=None, ge=1, le=4096, description="None: devices (random working cells)")
    response_amplitudes: int = Field(default=7, ge=0, le=64, description="amplitudes per polarity; < 2: no response")
    response_widths: int = Field(default=3, ge=1, le=16, description="widths, ramp width up a decade")
    response_gates: int = Field(default=3, ge=1, le=16, description="gate voltages (1T1R)")
    response_repeats: int = Field(default=3, ge=0, le=100, description="same pulse from the same state")
    response_fine_amplitudes: int | None = Field(
        default=None, ge=0, le=64, description="more amplitudes just above the ramp start, at its width; None: 8 without a gate (passive), 0 with one",
    )  # fmt: skip
    noise_reads: int = Field(default=64, ge=0, le=100_000, description="back-to-back reads (white noise)")
    telegraph_reads: int = Field(default=256, ge=0, le=100_000, description="reads for telegraph noise")
    telegraph_interval_s: float = Field(default=100e-6, ge=0, le=1.0, description="their spacing")
    noise_cycles: int = Field(default=4, ge=1, le=100, description="off/on states alternated")
    relax_delays_s: list[float] = Field(
        default_factory=lambda: [0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0],
        max_length=64, description="read delays after one pulse; []: no relax",
    )  # fmt: skip


def _samples(sink: EventSink, table: str, **cols: Any) -> None:
    sink.record_event({"event": "samples", "table": table, "columns": cols})


def _checkpoint(sink: EventSink, step: str) -> None:
    sink.record_event({"event": "checkpoint", "step": step})


def _gate(prog: CellProgrammer, p: AlibartParams, n: int) -> np.ndarray | None:
    return np.full(n, p.gate_v_max) if prog.info.has_gate else None


def _pulse_all(prog: CellProgrammer, r: np.ndarray, c: np.ndarray, amp: float, width: float, gate: Any) -> None:
    prog.pulse(r, c, np.full(r.size, amp), width, gate_v=gate)


def _reachable(name: str, asked: int, reachable: int, p: CharacterizeParams) -> int:
    """``asked`` cells, if the stack reaches that many. Asked for explicitly, more is
    refused (never cut down unsaid); a default (8 devices) takes every reachable cell
    when there are fewer (a probe station's one device)."""
    if asked <= reachable:
        return asked
    if name in p.model_fields_set:
        flag = "--" + name.replace("_", "-")
        raise ConfigError(flag, asked, f"<= {reachable}", "the cells the bench's stack reaches")
    return reachable


def characterize(
    programmer: CellProgrammer,
    params: CharacterizeParams | None = None,
    sink: EventSink | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run the procedures (module docstring); returns the sample counts per table, and
    under ``"skipped"`` (only when one was) each procedure the stack could not run and why."""
    p = params or CharacterizeParams()
    prog, info = programmer, programmer.info
    s = sink_or_null(sink)
    inner = s if isinstance(s, NullSink) else EventsOnly(s)
    ali = p.alibart or alibart_defaults(info)
    lo_t, hi_t = target_range_us(prog)
    # the cells the stack reaches (a probe station: the devices under its probes)
    ar, ac = info.addressable_cells()
    n_cells = ar.size
    n_census = min(p.census_cells or 4096, n_cells)
    cr, cc = ar[:n_census], ac[:n_census]
    n_dev = _reachable("devices", p.devices, n_census, p)
    n_dist = min(64, n_cells) if p.disturb_cells is None else _reachable("disturb_cells", p.disturb_cells, n_cells, p)
    tunes = p.levels * p.repeats
    n_twin = _reachable("response_devices", p.response_devices or n_dev, n_census, p)
    bar = Progress(progress, n_census + tunes * n_dev + n_dist + n_dev + n_twin, "characterize")
    s.record_event({"event": "characterize_start", "params": p.model_dump()})
    counts: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    try:
        # 1. census and working range (protocols/characterize_census.py) ---------------
        cen = run_census(prog, cr, cc, p, ali, bar)
        g0, g_set, g_reset, stuck = cen.g_initial_us, cen.g_set_us, cen.g_reset_us, cen.stuck
        mid = 0.5 * (info.g_range_us[0] + info.g_range_us[1])
        g_stuck = 0.5 * (g_set + g_reset)
        kind = np.where(~stuck, "ok", np.where(g_stuck < mid, "hrs", "lrs")).astype(object)
        _samples(s, "stuck", row=cr, col=cc, kind=kind, g_us=np.where(stuck, g_stuck, np.nan),
                 g_initial_us=g0, g_set_us=g_set, g_reset_us=g_reset)  # fmt: skip
        untune = cen.reset_pulses
        counts["stuck"] = n_census
        working = np.flatnonzero(~stuck)
        if working.size < n_dev:
            raise ConfigError(
                "characterize", f"{working.size} working cells of {n_census}", f">= {n_dev} (--devices)"
            )
        # on a passive array every RESET at the cap disturbs the cells already reset (V/3),
        # so the RESET states spread upward: their median is the reachable low end
        lo = max(float(np.median(g_reset[working])), lo_t)
        hi = min(float(np.quantile(g_set[working], 0.1)), hi_t)
        if not hi > lo:
            raise ConfigError("characterize working range", (lo, hi), "g_lo < g_hi", "the cells do not switch")
        span = hi - lo
        lo, hi = lo + p.range_margin * span, hi - p.range_margin * span
        _samples(s, "range", g_lo_us=[lo], g_hi_us=[hi], n_working=[int(working.size)], n_cells=[n_census])
        counts["range"] = 1
        _checkpoint(s, "census")

        # 2. imprecision ---------------------------------------------------------------
        pick = working[np.linspace(0, working.size - 1, min(n_dev, working.size)).round().astype(int)]
        pick = np.unique(pick)
        dr, dc = cr[pick], cc[pick]
        levels = np.linspace(lo, hi, p.levels)
        # serial (passive) stacks: one device at a time, read right after its own tune,
        # before a neighbour's write can disturb it; row-parallel stacks: all in lock-step
        groups = (
            [np.array([i]) for i in range(dr.size)]
            if info.parallel == "cell"
            else [np.arange(dr.size)]
        )
        n_imp = 0
        for li, level in enumerate(levels):
            for rep in range(p.repeats):
                for gi in groups:
                    gr, gc = dr[gi], dc[gi]
                    for _ in range(untune):  # untune: back to the off state (the census's count)
                        _pulse_all(prog, gr, gc, -ali.reset_max_v, ali.width_s, None)
                    res = tune_alibart(prog, gr, gc, np.full(gi.size, level), params=ali, sink=inner)
                    g = np.stack([prog.read(gr, gc) for _ in range(p.reads)])  # reads x devices
                    k = gi.size
                    _samples(
                        s, "imprecision",
                        device=np.tile(gi, p.reads), row=np.tile(gr, p.reads),
                        col=np.tile(gc, p.reads), level=np.full(g.size, li),
                        level_us=np.full(g.size, level), repeat=np.full(g.size, rep),
                        read=np.repeat(np.arange(p.reads), k), g_us=g.ravel(),
                        converged=np.tile(res.converged, p.reads), pulses=np.tile(res.pulses, p.reads),
                    )  # fmt: skip
                    n_imp += g.size
                    bar.update(k)
            _checkpoint(s, f"imprecision level {li}")
        counts["imprecision"] = n_imp
        for _ in range(untune):
            _pulse_all(prog, dr, dc, -ali.reset_max_v, ali.width_s, None)

        # 3. disturb ---------------------------------------------------------------------
        n_d = min(n_dist, working.size)
        if n_d < 2 and n_dist != 0:
            # a disturb is what a write does to *another* cell: one reachable cell has none
            skipped["disturb"] = (
                f"needs 2 working cells; disturb_cells={n_dist} asked for one"
                if p.disturb_cells is not None and p.disturb_cells < 2
                else f"needs 2 working cells the stack reaches; it reaches {n_d}"
            )
        if n_d >= 2:
            sel = working[:n_d]  # row-major order, as Drolet's transfers
            sr, sc = cr[sel], cc[sel]
            rng = np.random.default_rng(p.seed)
            targets = rng.uniform(lo, hi, n_d)
            g_after = np.full(n_d, np.nan)
            conv = np.zeros(n_d, dtype=bool)
            pulses = np.zeros(n_d, dtype=np.int64)
            rows_: list[np.ndarray] = []
            for k in range(n_d):
                res = tune_alibart(prog, sr[k : k + 1], sc[k : k + 1], targets[k : k + 1], params=ali, sink=inner)
                conv[k], pulses[k] = bool(res.converged[0]), int(res.pulses[0])
                g_after[k] = prog.read(sr[k : k + 1], sc[k : k + 1])[0]
                if k:
                    gj = prog.read(sr[:k], sc[:k])
                    later_pulses = np.cumsum(pulses[1 : k + 1][::-1])[::-1]  # writes after j
                    rows_.append(
                        np.column_stack(
                            [np.arange(k), k - np.arange(k), gj - g_after[:k], later_pulses]
                        )
                    )
                bar.update(1)
            allr = np.concatenate(rows_)
            j = allr[:, 0].astype(int)
            _samples(
                s, "disturb",
                row=sr[j], col=sc[j], order=j, later_writes=allr[:, 1].astype(np.int64),
                delta_us=allr[:, 2], later_pulses=allr[:, 3].astype(np.int64),
                target_us=targets[j], g_tuned_us=g_after[j], converged=conv[j],
            )  # fmt: skip
            counts["disturb"] = int(j.size)
            _checkpoint(s, "disturb")
            for _ in range(untune):
                _pulse_all(prog, sr, sc, -ali.reset_max_v, ali.width_s, None)

        # 4. RTN before / after denoising --------------------------------------------------
        t_mid = np.full(dr.size, 0.5 * (lo + hi))
        res = tune_alibart(prog, dr, dc, t_mid, params=ali, sink=inner)
        before = np.stack([prog.read(dr, dc) for _ in range(p.rtn_reads)])
        v_dn = p.denoise_frac * ali.set_start_v
        for _ in range(p.denoise_pulses):
            _pulse_all(prog, dr, dc, v_dn, ali.width_s, _gate(prog, ali, dr.size))
        after = np.stack([prog.read(dr, dc) for _ in range(p.rtn_reads)])
        k = dr.size
        _samples(
            s, "rtn",
            phase=np.array(["before"] * k + ["after"] * k, dtype=object),
            spread_us=np.concatenate([np.ptp(before, axis=0), np.ptp(after, axis=0)]),
            mean_us=np.concatenate([before.mean(axis=0), after.mean(axis=0)]),
            row=np.tile(dr, 2), col=np.tile(dc, 2), target_us=np.tile(t_mid, 2),
            converged=np.tile(res.converged, 2), reads=np.full(2 * k, p.rtn_reads),
        )  # fmt: skip
        counts["rtn"] = 2 * k
        bar.update(k)

        # 5-7. response, noise, relaxation (the twin's fit) on random working cells -------
        rng_t = np.random.default_rng(p.seed + 1)
        tw = np.sort(rng_t.choice(working, min(n_twin, working.size), replace=False))
        counts.update(characterize_twin(prog, p, cr[tw], cc[tw], ali, s, bar, rail_pulses=cen.rail_pulses))
        bar.finish()
    finally:
        bar.close()
    if skipped:
        counts["skipped"] = skipped
    s.record_event({"event": "characterize_end", "counts": counts, "g_range_us": [lo, hi]})
    return counts


__all__ = ["CharacterizeParams", "characterize"]
