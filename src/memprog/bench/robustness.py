"""Robustness of the protocols to a chip that is not the model (issue 10, item 4).

Each row of the table changes one piece of the simulated chip's physics away from its
preset (read noise x3 and x10, overdrive exponent 1.5 and 3, width exponent 0.3 and 0.8,
cycle-to-cycle noise x0.5 and x2, relaxation off) and runs the protocols on level
ladders (or, for a map protocol, a map of as many levels), counting the levels achieved
and the pulses per level. The protocols never see the change: they read no simulator
parameter and measure what they need, so a row shows how each algorithm copes with a
device it was not written around.

Ladders (``n_levels`` small enough for a table in minutes):

* ``alibart`` and ``feedforward``: TiO2-x (``tio2x_feedforward``), ``n_levels`` states at
  Diao's spacing (80 µS / 511) from 420 µS; a state counts when its averaged verification
  lies within half a spacing (criterion ``mean``), after the settle.
* ``denoise``: HfO2 (``hfo2_1t1r``), ``n_levels`` levels 2 µS apart from 1,000 µS; a level
  counts when every one of 5 verification reads lies within 1 µS (Rao), after the settle.
* ``predictive`` (not a ladder protocol, registry ``ladder=False``): a **map** of
  ``n_levels`` cells of the same altered HfO2 chip, each at a different one of the random
  64-level map's levels (50-4,144 µS, in a seeded random order), in one lock-step batch; a
  level counts when the mean of 5 verification reads after the protocol's own settle lies
  within the map's band (1 % of target, >= 3 µS). Why a map and not a ladder: what the
  protocol learns is each cell's response from that cell's own first pulses (and the
  batch's gate map and relaxation from the batch), so its native task is many unlearned
  cells landed once each; a ladder on one cell would measure one cell's model reused 64
  times. The same count (levels achieved / ``n_levels``), the same altered physics and
  pulses per level = pulses per cell; the first ``n_levels`` working cells are used (the
  bench, not the protocol, knows which cells are dead, as it picks the ladders' cell).

It lives in :mod:`memprog.bench` (above the simulator and the protocols) because it needs
both (the simulator to build the altered chips, the protocols' registry to run them), and
neither may import the other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from memprog.bench.direct import DirectChipProgrammer
from memprog.core.errors import ConfigError
from memprog.core.presets import get_preset
from memprog.protocols import registry
from memprog.protocols.ladder import ladder_levels, run_ladder
from memprog.protocols.results import FLAG_RELAXED
from memprog.sim_instruments import Effects, SimChip

TIO2X_STEP_US = 80.0 / 511


@dataclass(frozen=True)
class Ladder:
    """The ladder a protocol is measured on: its paper's chip, levels and criterion."""

    technology: str
    start_us: float
    step_us: float
    tolerance_us: float
    criterion: str


# by registered protocol name (protocols/registry.py): the chip each was written around
LADDERS: dict[str, Ladder] = {
    "alibart": Ladder("tio2x_feedforward", 420.0, TIO2X_STEP_US, TIO2X_STEP_US / 2, "mean"),
    "feedforward": Ladder("tio2x_feedforward", 420.0, TIO2X_STEP_US, TIO2X_STEP_US / 2, "mean"),
    "denoise": Ladder("hfo2_1t1r", 1000.0, 2.0, 1.0, "every-read"),
}


@dataclass(frozen=True)
class MapSpec:
    """The map a map protocol is measured on: its chip and the map's level range (its band
    is the protocol's own: the map job's 1 % of target, >= 3 µS)."""

    technology: str
    lo_us: float
    hi_us: float


# by registered protocol name: protocols whose native task is a map (not a ladder); the
# range of the random 64-level map of issue 25 (protocols/array.py: random_level_map)
MAPS: dict[str, MapSpec] = {"predictive": MapSpec("hfo2_1t1r", 50.0, 4144.0)}
PROTOCOLS = (*LADDERS, *MAPS)
MAP_VERIFY_READS = 5


@dataclass(frozen=True)
class Row:
    """One row of the table: a name and how the chip differs from its preset."""

    name: str
    scale: dict[str, float]  # DeviceParams field -> multiplier
    set_to: dict[str, float]  # DeviceParams field -> value
    relaxation: bool = True


ROWS: tuple[Row, ...] = (
    Row("preset", {}, {}),
    Row("read noise x3", {"read_noise_abs_us": 3, "read_noise_rel": 3}, {}),
    Row("read noise x10", {"read_noise_abs_us": 10, "read_noise_rel": 10}, {}),
    Row("overdrive exponent 1.5", {}, {"overdrive_exponent": 1.5}),
    Row("overdrive exponent 3", {}, {"overdrive_exponent": 3.0}),
    Row("width exponent 0.3", {}, {"width_exponent": 0.3}),
    Row("width exponent 0.8", {}, {"width_exponent": 0.8}),
    Row("c2c x0.5", {"c2c_rel_std": 0.5}, {}),
    Row("c2c x2", {"c2c_rel_std": 2}, {}),
    Row("relaxation off", {}, {}, relaxation=False),
)
ROW_NAMES = tuple(r.name for r in ROWS)


def altered_chip(
    technology: str, row: Row, seed: int = 2023, rows: int = 2, cols: int = 2
) -> SimChip:
    """A chip of ``technology`` whose physics differs from the preset as ``row`` says."""
    p = get_preset(technology)
    upd: dict[str, Any] = {k: getattr(p, k) * v for k, v in row.scale.items()}
    upd.update(row.set_to)
    params = p.model_copy(update=upd) if upd else p
    chip = SimChip(rows, cols, params, seed=seed, effects=Effects(relaxation=row.relaxation))
    chip.technology = technology  # the bench still says what the chip is; only physics differs
    return chip


def run_row(protocol: str, row: Row | str, n_levels: int = 64, seed: int = 2023) -> dict[str, Any]:
    """Run one protocol's ladder on one row's chip; the ladder summary plus the row."""
    if isinstance(row, str):
        row = {r.name: r for r in ROWS}[row]
    if protocol in MAPS:
        return run_map_row(protocol, row, n_levels, seed)
    spec = registry.get(protocol, ladder=True)
    if spec.name not in LADDERS:
        raise ConfigError("protocol", protocol, f"one of {list(PROTOCOLS)}")
    lad = LADDERS[spec.name]
    chip = altered_chip(lad.technology, row, seed)
    levels = ladder_levels(lad.start_us, lad.step_us, n_levels)
    kw: dict[str, Any] = {"tolerance_us": lad.tolerance_us, "criterion": lad.criterion}
    work = np.flatnonzero(chip.working_mask.ravel())
    r, c = divmod(int(work[0]), chip.cols)
    prog = DirectChipProgrammer(chip)
    t0 = time.perf_counter()
    s = run_ladder(prog, r, c, levels, protocol=protocol, **kw).summary()
    return {
        "row": row.name,
        "protocol": protocol,
        "levels": int(s["levels_within_tolerance"]),
        "attempted": int(s["levels_attempted"]),
        "pulses_per_level": float(s["pulses_per_level"]),
        "reads_per_level": float(s["reads"]) / max(int(s["levels_attempted"]), 1),
        "setup_pulses": int(s["setup_pulses"]),
        "settle_retunes": int(s["settle_retunes"]),
        "wall_s": time.perf_counter() - t0,
        "bench_time_s": s["bench_time_s"],
    }


def run_map_row(protocol: str, row: Row, n_levels: int = 64, seed: int = 2023) -> dict[str, Any]:
    """Run a map protocol on one row's chip: ``n_levels`` cells, each at its own level.

    The levels are the random 64-level map's (``n_levels`` of them, evenly spread over its
    range) in a seeded random order over the first ``n_levels`` working cells; a level
    counts when the mean of :data:`MAP_VERIFY_READS` reads after the protocol's settle lies
    within the map's band (what a user reads back, as the ladders' verification).
    """
    spec = registry.get(protocol, maps=True)
    if spec.name not in MAPS:
        raise ConfigError("protocol", protocol, f"one of {list(PROTOCOLS)}")
    m = MAPS[spec.name]
    side = int(np.ceil(np.sqrt(n_levels / 0.8)))  # room for ~11 % dead cells (Li 2018)
    chip = altered_chip(m.technology, row, seed, side, side)
    work = np.flatnonzero(chip.working_mask.ravel())
    if work.size < n_levels:
        raise ConfigError("n_levels", n_levels, f"<= {work.size} (working cells of the chip)")
    r, c = np.divmod(work[:n_levels], chip.cols)
    levels = np.linspace(m.lo_us, m.hi_us, n_levels)
    t = levels[np.random.default_rng(seed).permutation(n_levels)]
    prog = DirectChipProgrammer(chip)
    p = spec.defaults(prog.info, prog.limits)
    b0 = prog.bench_time_s
    t0 = time.perf_counter()
    res = spec.tuner(prog, p).tune(r, c, t)
    wall = time.perf_counter() - t0
    reads = np.stack([np.asarray(prog.read(r, c), float) for _ in range(MAP_VERIFY_READS)])
    within = np.abs(reads.mean(axis=0) - t) <= res.tolerance_us
    true = chip.true_conductance_us()[r, c]
    return {
        "row": row.name,
        "protocol": protocol,
        "levels": int(within.sum()),
        "attempted": int(n_levels),
        "pulses_per_level": float(res.pulses.mean()),
        "reads_per_level": float(res.reads.mean()) + MAP_VERIFY_READS,
        "setup_pulses": 0,
        "settle_retunes": int(res.has_flag(FLAG_RELAXED).sum()),
        "wall_s": wall,
        "bench_time_s": prog.bench_time_s - b0,
        "true_within": int((np.abs(true - t) <= res.tolerance_us).sum()),
    }


def robustness_table(
    n_levels: int = 64, rows: tuple[str, ...] = ROW_NAMES, protocols: tuple[str, ...] = PROTOCOLS
) -> list[dict[str, Any]]:
    """Every (row, protocol) result, with each row's levels relative to the preset's."""
    out = [run_row(p, r, n_levels) for r in rows for p in protocols]
    base = {d["protocol"]: d["levels"] for d in out if d["row"] == "preset"}
    for d in out:
        b = base.get(d["protocol"])
        d["levels_vs_preset"] = None if not b else d["levels"] / b
    return out


__all__ = [
    "ROWS",
    "ROW_NAMES",
    "PROTOCOLS",
    "LADDERS",
    "MAPS",
    "MapSpec",
    "run_map_row",
    "Ladder",
    "Row",
    "altered_chip",
    "run_row",
    "robustness_table",
]
