"""The passive crossbar as an electrical network: line biasing (V/3, V/2), cell voltages
from line voltages, floating lines solved by Kirchhoff's current law, and line currents.

Why a module of its own: a passive (0T1R) chip is only reachable through its lines, so
half-selected cells are disturbed and a floating read scheme lets sneak paths add current,
exactly as in the lab; the simulated 4200 (through the 707B) drives the chip only through
these functions. A 1T1R chip uses them for the analog reads of whole lines too.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from memprog.core.errors import ConfigError
from memprog.sim_instruments.chip_switching import SwitchingPhysics

BiasScheme = Literal["v3", "v2"]
ReadScheme = Literal["ground", "float"]
LEAK_S = 1e-12  # tiny conductance to ground so isolated floating lines stay solvable


class LineNetwork(SwitchingPhysics):
    """Line voltages in, cell voltages and line currents out (a mixin of
    :class:`~memprog.sim_instruments.chip.SimChip`)."""

    rows: int
    cols: int
    bias_scheme: BiasScheme
    _cnt: memoryview

    def bias_lines(self, row: int, col: int, amplitude_v: float) -> tuple[np.ndarray, np.ndarray]:
        """Line voltages of the chip's V/3 or V/2 scheme selecting one cell."""
        v = amplitude_v
        if self.bias_scheme == "v3":
            row_v = np.full(self.rows, v / 3.0)
            col_v = np.full(self.cols, 2.0 * v / 3.0)
        else:
            row_v = np.full(self.rows, v / 2.0)
            col_v = np.full(self.cols, v / 2.0)
        row_v[row] = v
        col_v[col] = 0.0
        return row_v, col_v

    def apply_line_voltages(
        self, row_v: object, col_v: object, width_s: float, gate_v: object | None = None
    ) -> None:
        """Drive every line (NaN = floating) for ``width_s``; every cell sees V_row - V_col."""
        rv = np.asarray(row_v, dtype=float)
        cv = np.asarray(col_v, dtype=float)
        if rv.shape != (self.rows,) or cv.shape != (self.cols,):
            raise ConfigError("row_v/col_v shape", (rv.shape, cv.shape), f"({self.rows},), ({self.cols},)")
        self._check_pulse(np.nan_to_num(np.concatenate([rv, cv])), width_s)
        if np.isnan(rv).all() and np.isnan(cv).all():
            self._clk[0] += width_s
            return
        rv, cv = self._solve_floating(rv, cv, self._g.reshape(self.rows, self.cols))
        v_cell = (rv[:, None] - cv[None, :]).ravel()
        gate = None if gate_v is None else np.repeat(np.asarray(gate_v, float), self.cols)
        self._apply(slice(0, self.n_cells), v_cell, float(width_s), gate)
        self._cnt[0] += 1
        self._clk[0] += width_s

    def _solve_floating(
        self, rv: np.ndarray, cv: np.ndarray, g_us: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Voltages of floating (NaN) lines from Kirchhoff's current law on the array."""
        fr, fc = np.isnan(rv), np.isnan(cv)
        if not fr.any() and not fc.any():
            return rv, cv
        g = g_us * 1e-6
        if not self.effects.sneak:
            # no sneak paths: floating lines carry no current, cells on them see 0 V
            return np.where(fr, 0.0, rv), np.where(fc, 0.0, cv)
        nr, nc = int(fr.sum()), int(fc.sum())
        a = np.zeros((nr + nc, nr + nc))
        b = np.zeros(nr + nc)
        rv0, cv0 = np.nan_to_num(rv), np.nan_to_num(cv)
        if nr:
            grr = g[fr]
            a[:nr, :nr] = np.diag(grr.sum(axis=1) + LEAK_S)
            a[:nr, nr:] = -grr[:, fc]
            b[:nr] = grr[:, ~fc] @ cv0[~fc]
        if nc:
            gcc = g[:, fc].T
            a[nr:, nr:] = np.diag(gcc.sum(axis=1) + LEAK_S)
            a[nr:, :nr] = -gcc[:, fr]
            b[nr:] = gcc[:, ~fr] @ rv0[~fr]
        x = np.linalg.solve(a, b)
        rv, cv = rv0.copy(), cv0.copy()
        rv[fr], cv[fc] = x[:nr], x[nr:]
        return rv, cv

    def line_currents(
        self, row_v: object, col_v: object, advance: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Currents (A) at every line for a read-level bias (NaN = floating line).

        Row currents flow from the row's source into the array; column currents flow out
        of the array into the column's terminal. Noise, RTN and relaxation are included.
        """
        rv = np.asarray(row_v, dtype=float)
        cv = np.asarray(col_v, dtype=float)
        if rv.shape != (self.rows,) or cv.shape != (self.cols,):
            raise ConfigError("row_v/col_v shape", (rv.shape, cv.shape), f"({self.rows},), ({self.cols},)")
        vmax = np.nanmax(np.abs(np.concatenate([rv, cv]))) if not np.isnan(rv).all() or not np.isnan(cv).all() else 0.0
        if vmax >= self.params.disturb_v_min_v and self.params.cell_type == "passive":
            raise ConfigError("read bias", float(vmax), f"< {self.params.disturb_v_min_v} V (a read must not disturb)")
        g = self._observed_g(slice(0, self.n_cells)).reshape(self.rows, self.cols)
        rv, cv = self._solve_floating(rv, cv, g)
        dv = rv[:, None] - cv[None, :]
        i = g * 1e-6 * dv
        if advance:
            self._clk[0] += self.params.read_time_s
        return i.sum(axis=1), i.sum(axis=0)
