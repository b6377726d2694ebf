"""The stuck census: drive every examined cell to each rail, and call the ones that do not move stuck.

Why a census that drives to the rails rather than a fixed few pulses: an abrupt switcher
(a filament that forms or ruptures: HfO2, TiO2 on a passive array) crosses most of its
window in one or two pulses at the ramp caps, so ``census_pulses`` pulses saturate it. A
gradual device (the TiO2-x of the feedforward scheme) moves a few % of its window per
pulse: three pulses at the caps left it 15 µS up and 3 µS down on a 95 µS window, so a
criterion scaled to a full swing called every cell stuck and the working range came out
empty. The census therefore repeats its rounds of ``census_pulses`` pulses while a round
still moves the moving cells (module constants below), up to ``census_max_pulses``, and
reports how many pulses each rail took: later procedures untune and prepare with as many.
An abrupt chip gets exactly the one round per rail it always got.

A cell is stuck when its SET-to-RESET swing stays under the larger of
``stuck_min_move_us`` (an absolute floor well above any read noise) and
``stuck_min_move_frac`` of the technology's window (``ProgrammerInfo.g_range_us``, from the
bench's limits): a swing judged against the device's window, not against its state,
means the same on a 95 µS window and on a 4.8 mS one.

Nothing here reads a simulator parameter: only the programmer's pulses and reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from memprog.protocols.alibart import AlibartParams
from memprog.protocols.programmer import CellProgrammer

# [choice] a first round that moves the moving cells (median) by a quarter of the window
# or more is a switching event: an abrupt device has crossed its window and further
# pulses at the cap only press it against the rail (HfO2: 80 %, passive TiO2: 60-100 %
# of the window in three pulses); a gradual device moves ~15 % (TiO2-x, three pulses)
ABRUPT_ROUND_FRAC = 0.25
# [choice] a gradual device is at its rail once a round moves it less than a tenth of
# what the first round did (a saturating exponential approach: within ~10 % of the rail)
SATURATED_ROUND_FRAC = 0.1


@dataclass
class Census:
    """What the census measured, per examined cell, and what each rail took."""

    g_initial_us: np.ndarray
    g_set_us: np.ndarray
    g_reset_us: np.ndarray
    stuck: np.ndarray
    set_pulses: int
    reset_pulses: int

    @property
    def rail_pulses(self) -> int:
        """Pulses at a cap that take a working cell to either rail (the most either took)."""
        return max(self.set_pulses, self.reset_pulses)


def stuck_threshold_us(prog: CellProgrammer, p: Any) -> float:
    """The swing under which a cell is stuck (module docstring)."""
    lo, hi = prog.info.g_range_us
    return max(float(p.stuck_min_move_us), float(p.stuck_min_move_frac) * (hi - lo))


def _to_rail(
    prog: CellProgrammer,
    r: np.ndarray,
    c: np.ndarray,
    amplitude_v: float,
    width_s: float,
    gate_v: np.ndarray | None,
    g_start: np.ndarray,
    p: Any,
    threshold_us: float,
) -> tuple[np.ndarray, int]:
    """Rounds of ``census_pulses`` pulses at ``amplitude_v`` until the cells stop moving.

    Returns the state read after the last round and the pulses given. Cells that moved
    less than ``threshold_us`` in the first round are not moving (stuck, or already at
    this rail) and do not count in the median that decides when to stop.
    """
    g_prev, pulses, first = g_start, 0, 0.0
    moving = np.ones(r.size, dtype=bool)
    while True:
        for _ in range(p.census_pulses):
            prog.pulse(r, c, np.full(r.size, amplitude_v), width_s, gate_v=gate_v)
        pulses += p.census_pulses
        g = prog.read(r, c)
        step = np.abs(g - g_prev)
        if pulses == p.census_pulses:
            moving = step > threshold_us
            if not moving.any():
                return g, pulses
            first = float(np.median(step[moving]))
        elif float(np.median(step[moving])) <= SATURATED_ROUND_FRAC * first:
            return g, pulses
        if pulses + p.census_pulses > p.census_max_pulses:
            return g, pulses
        g_prev = g


def _gradual(step: np.ndarray, threshold_us: float, window_us: float) -> bool:
    """Whether one round at a cap left the moving cells (median) short of a quarter of
    the window: a gradual switcher, not yet at its rail."""
    moving = step > threshold_us
    return bool(moving.any()) and float(np.median(step[moving])) < ABRUPT_ROUND_FRAC * window_us


def run_census(
    prog: CellProgrammer,
    cr: np.ndarray,
    cc: np.ndarray,
    p: Any,
    ali: AlibartParams,
    bar: Any,
) -> Census:
    """SET then RESET every cell ``cr``/``cc`` to the rails; every cell ends RESET (off).

    A first pass gives every cell one round (``census_pulses``) at each cap. Whether the
    chip is an abrupt or a gradual switcher is judged on that whole pass, per polarity,
    not cell by cell (one slow cell of an abrupt chip is not a gradual chip); on a gradual
    chip a second pass drives each cell to both rails in as many rounds as it takes.

    Serial (passive) stacks go one cell at a time, read right after its own pulses: on a
    V/3 array a RESET at the cap puts +V/3 on every cell off its lines, enough to SET a
    cell with a low threshold, so a cell is only judged by its own response.
    """
    info = prog.info
    n = cr.size
    step = 1 if info.parallel == "cell" else max(n, 1)
    threshold = stuck_threshold_us(prog, p)
    window = float(info.g_range_us[1] - info.g_range_us[0])
    groups = [slice(a, a + step) for a in range(0, n, step)]
    gate = (lambda k: np.full(k, ali.gate_v_max)) if info.has_gate else (lambda k: None)  # noqa: E731
    g0, g_set, g_reset = (np.empty(n) for _ in range(3))
    for sl in groups:
        r_, c_ = cr[sl], cc[sl]
        g0[sl] = prog.read(r_, c_)
        for _ in range(p.census_pulses):
            prog.pulse(r_, c_, np.full(r_.size, ali.set_max_v), ali.width_s, gate_v=gate(r_.size))
        g_set[sl] = prog.read(r_, c_)
        for _ in range(p.census_pulses):
            prog.pulse(r_, c_, np.full(r_.size, -ali.reset_max_v), ali.width_s, gate_v=None)
        g_reset[sl] = prog.read(r_, c_)
        bar.update(r_.size)
    set_pulses = reset_pulses = p.census_pulses
    if _gradual(np.abs(g_set - g0), threshold, window) or _gradual(np.abs(g_set - g_reset), threshold, window):
        for sl in groups:
            r_, c_ = cr[sl], cc[sl]
            g_set[sl], k_set = _to_rail(prog, r_, c_, ali.set_max_v, ali.width_s, gate(r_.size), g_reset[sl], p, threshold)
            g_reset[sl], k_reset = _to_rail(prog, r_, c_, -ali.reset_max_v, ali.width_s, None, g_set[sl], p, threshold)
            set_pulses, reset_pulses = max(set_pulses, k_set), max(reset_pulses, k_reset)
    stuck = np.abs(g_set - g_reset) < threshold
    return Census(g0, g_set, g_reset, stuck, set_pulses, reset_pulses)


__all__ = ["Census", "run_census", "stuck_threshold_us", "ABRUPT_ROUND_FRAC", "SATURATED_ROUND_FRAC"]
