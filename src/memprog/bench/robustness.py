"""Robustness of the protocols to a chip that is not the model (issue 10, item 4).

Each row of the table changes one piece of the simulated chip's physics away from its
preset (read noise x3 and x10, overdrive exponent 1.5 and 3, width exponent 0.3 and 0.8,
cycle-to-cycle noise x0.5 and x2, relaxation off) and runs the three protocols on level
ladders, counting the levels achieved and the pulses per level. The protocols never see
the change: they read no simulator parameter and measure what they need, so a row shows
how each algorithm copes with a device it was not written around.

Ladders (``n_levels`` small enough for a table in minutes):

* ``alibart`` and ``feedforward``: TiO2-x (``tio2x_feedforward``), ``n_levels`` states at
  Diao's spacing (80 µS / 511) from 420 µS; a state counts when its averaged verification
  lies within half a spacing (criterion ``mean``), after the settle.
* ``denoise``: HfO2 (``hfo2_1t1r``), ``n_levels`` levels 2 µS apart from 1,000 µS; a level
  counts when every one of 5 verification reads lies within 1 µS (Rao), after the settle.

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
PROTOCOLS = tuple(LADDERS)


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


def altered_chip(technology: str, row: Row, seed: int = 2023, rows: int = 2, cols: int = 2) -> SimChip:
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


__all__ = ["ROWS", "ROW_NAMES", "PROTOCOLS", "LADDERS", "Ladder", "Row", "altered_chip", "run_row", "robustness_table"]
