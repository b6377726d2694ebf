"""Routing of the simulated 4200A-SCS through the simulated 707B: which chip lines each
terminal drives, the voltages they force, and the currents the array returns.

Why a module of its own: what the 4200 measures depends on what the 707B has closed, and
that is the part a lab gets wrong (nothing routed reads an open circuit, a misrouting reads
the wrong cell, floating lines read sneak paths, shorted terminals fight). SMU readings,
sweeps and PMU pulses all ask these few functions; the connectivity is cached per matrix
state so a reading costs no re-walk of the crosspoints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from memprog.core.crossbar_wiring import CrossbarWiring, pmu_channel_number

if TYPE_CHECKING:  # pragma: no cover
    from memprog.sim_instruments.chip import SimChip
    from memprog.sim_instruments.k4200_kxci import PmuChannelState, SmuState
    from memprog.sim_instruments.sim_bench import SimBench


class Routing:
    """Line voltages and terminal currents through the switch matrix (a mixin of
    :class:`~memprog.sim_instruments.k4200.Sim4200`)."""

    bench: SimBench
    chip: SimChip
    wiring: CrossbarWiring | None
    smus: dict[int, SmuState]
    pmu: dict[int, PmuChannelState]
    _conn_key: tuple[int, int] | None
    _conn: dict[str, tuple[np.ndarray, np.ndarray]]
    _multi: tuple[np.ndarray, np.ndarray]

    def _matrix(self) -> Any:
        if self.wiring is None:
            return None
        return self.bench.instruments.get(self.wiring.matrix)

    def _connectivity(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """terminal -> (word-line indices, bit-line indices) it is connected to now."""
        matrix = self._matrix()
        if matrix is None:
            return {}
        key = (id(matrix), matrix.version)
        if key == self._conn_key:
            return self._conn
        w = self.wiring
        assert w is not None
        col_lines = w.column_lines()
        rows: dict[str, list[int]] = {}
        cols: dict[str, list[int]] = {}
        row_count = np.zeros(self.chip.rows, int)
        col_count = np.zeros(self.chip.cols, int)
        letters = "ABCDEFGH"
        for slot, r, c in matrix.closed_crosspoints():
            term = w.rows.get(letters[r])
            line = col_lines.get((slot, c))
            if term is None or line is None:
                continue
            kind, i = line
            (rows if kind == "word" else cols).setdefault(term, []).append(i)
            (row_count if kind == "word" else col_count)[i] += 1
        conn = {
            t: (
                np.array(sorted(set(rows.get(t, []))), int),
                np.array(sorted(set(cols.get(t, []))), int),
            )
            for t in set(rows) | set(cols)
        }
        self._conn, self._conn_key = conn, key
        self._multi = (np.flatnonzero(row_count > 1), np.flatnonzero(col_count > 1))
        return conn

    def _terminal_level(self, term: str, pulse_levels: dict[int, float] | None) -> float | None:
        """Voltage a terminal forces (None: high impedance / current source)."""
        if term == "GNDU":
            return 0.0
        if term.startswith("SMU"):
            s = self.smus.get(int(term[3:]))
            return s.value if s is not None and s.mode == "V" else None
        ch = self.pmu.get(pmu_channel_number(term))
        if ch is None or not ch.driving:
            return None
        if pulse_levels is not None and pmu_channel_number(term) in pulse_levels:
            return pulse_levels[pmu_channel_number(term)]
        return ch.base

    def _drive(
        self,
        conn: dict[str, tuple[np.ndarray, np.ndarray]],
        pulse_levels: dict[int, float] | None = None,
    ):
        """Line voltages (NaN floating) and the terminals fighting on a shorted line."""
        rv = np.full(self.chip.rows, np.nan)
        cv = np.full(self.chip.cols, np.nan)
        levels = {t: self._terminal_level(t, pulse_levels) for t in conn}
        for t, (ri, ci) in conn.items():
            v = levels[t]
            if v is not None:
                rv[ri] = v
                cv[ci] = v
        fighting: set[str] = set()
        mr, mc = self._multi
        if mr.size or mc.size:
            for kind, idx in (("r", mr), ("c", mc)):
                for i in idx:
                    terms = [t for t, (ri, ci) in conn.items() if i in (ri if kind == "r" else ci)]
                    driven = [levels[t] for t in terms if levels[t] is not None]
                    if len(driven) > 1 and max(driven) - min(driven) > 1e-9:
                        fighting |= {t for t in terms if levels[t] is not None}
        return rv, cv, fighting

    def _currents(self, rv: np.ndarray, cv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Line currents for any bias: the ohmic array scales, so large biases are scaled down."""
        allv = np.concatenate([rv, cv])
        if np.isnan(allv).all():
            return np.zeros(self.chip.rows), np.zeros(self.chip.cols)
        vmax = float(np.nanmax(np.abs(allv)))
        lim = 0.9 * self.chip.params.disturb_v_min_v
        s = 1.0 if vmax < lim or vmax == 0 else lim / vmax
        ri, ci = self.chip.line_currents(rv * s, cv * s, advance=False)
        return ri / s, ci / s

    @staticmethod
    def _terminal_current(
        conn: dict[str, tuple[np.ndarray, np.ndarray]], term: str, ri: np.ndarray, ci: np.ndarray
    ) -> float:
        """Current out of a terminal into the array (SMU sign convention)."""
        rows, cols = conn.get(term, (np.zeros(0, int), np.zeros(0, int)))
        return float(ri[rows].sum() - ci[cols].sum())

    def _stress(self, rv: np.ndarray, cv: np.ndarray, duration_s: float) -> float:
        """DC levels above the disturb threshold act on the chip as a pulse of the reading's
        length (capped at the technology's longest pulse); returns the time so spent."""
        p = self.chip.params
        allv = np.concatenate([rv, cv])
        if np.isnan(allv).all() or float(np.nanmax(np.abs(allv))) < p.disturb_v_min_v:
            return 0.0
        width = min(duration_s, p.width_max_s)
        if width < p.width_min_s:
            return 0.0
        self.chip.apply_line_voltages(rv, cv, width)
        return width
