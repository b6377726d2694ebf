"""Input checks that need no instrument, run before a command creates its stored run.

Why: a ``tune --target-us 5000`` on a 30-4,800 µS chip used to open the store, create a
run, open the bench, and only then be refused: the store kept a ``failed`` run for what
was a typo. Everything these checks need is in the bench file (chip size, safety limits,
technology) and the command line, so :func:`memprog.cli.runs.run_command` runs them
(``precheck=``) before the store is opened; a refusal is one line, exit 2, no run.

The checks refuse exactly what the run itself would refuse (same parameter names and
ranges as the protocols' own checks, which stay: they guard library callers): never more,
so a valid job is never turned away here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memprog.core.errors import ConfigError
from memprog.core.probe_wiring import probe_wiring_from_bench


def reachable_cells(config: Any) -> list[tuple[int, int]] | None:
    """The cells a bench file's stack reaches: None for every cell of the chip (an on-chip
    controller of another size is refused at connect), or on a probe station the devices
    under its probes (the wiring section, as the b1500_wgfmu stack reads it)."""
    if config.programmer.stack != "b1500_wgfmu":
        return None
    chip = config.chip
    return [(int(r), int(c)) for r, c in probe_wiring_from_bench(config.wiring, chip.rows, chip.cols).devices()]


def target_range_us(config: Any) -> tuple[float, float]:
    """Targets the bench accepts: the safety limits, and on a simulated on-chip controller
    also the technology's range (what its ``ARR:COND?`` reports at connect).

    A real controller reports its own chip's range at connect; the run checks it then.
    """
    chip = config.chip
    lo, hi = float(chip.limits.conductance_min_us), float(chip.limits.conductance_max_us)
    sim_controller = config.programmer.stack == "onchip" and all(
        i.simulated for i in config.instruments.values() if i.kind == "onchip"
    )
    if sim_controller:
        p = chip.device_params()
        lo, hi = max(lo, float(p.g_min_us)), min(hi, float(p.g_max_us))
    return lo, hi


def check_cells(
    config: Any, rows: np.ndarray, cols: np.ndarray, names: tuple[str, str] = ("rows", "cols")
) -> None:
    """Every row and column index inside the bench file's chip (``names``: the options)."""
    for name, idx, n in ((names[0], rows, config.chip.rows), (names[1], cols, config.chip.cols)):
        a = np.asarray(idx).ravel()
        bad = a[(a < 0) | (a >= n)]
        if bad.size:
            raise ConfigError(name, int(bad[0]), f"[0, {n - 1}]")


def check_targets(config: Any, targets_us: Any, name: str = "targets_us") -> None:
    """Every (non-NaN) target inside :func:`target_range_us`."""
    t = np.asarray(targets_us, dtype=float).ravel()
    t = t[~np.isnan(t)]
    lo, hi = target_range_us(config)
    bad = t[(t < lo) | (t > hi)]
    if bad.size:
        raise ConfigError(name, float(bad[0]), f"[{lo:g}, {hi:g}] µS ({config.chip.technology} range)")


def check_map(config: Any, target_map_us: Any, origin: tuple[int, int]) -> None:
    """The map fits the chip at ``origin`` and its targets are in range."""
    m = np.asarray(target_map_us, dtype=float)
    rows, cols = config.chip.rows, config.chip.cols
    r0, c0 = origin
    if m.ndim == 2 and (r0 < 0 or c0 < 0 or r0 + m.shape[0] > rows or c0 + m.shape[1] > cols):
        raise ConfigError("target_map_us shape", m.shape, f"fits the {rows}x{cols} array at origin {origin}")
    check_targets(config, m, "target_map_us")


__all__ = ["check_cells", "check_map", "check_targets", "target_range_us"]
