"""The firmware's checks of the simulated on-chip controller, and its time bookkeeping.

Why a module of its own: every command that touches the array (pulses, bursts, reads,
programming) validates addresses, amplitudes, gates and widths against the chip's
breakdown-safe limits in the same way, and refuses with the same numbered errors
(``SYST:ERR?``), before anything reaches the chip. One place for the limits means a limit
cannot be checked on one path and forgotten on another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from memprog.sim_instruments.onchip_scpi import CommandError, parse_number

if TYPE_CHECKING:  # pragma: no cover
    from memprog.sim_instruments.chip import SimChip

READ_V_MAX = 0.5  # firmware limit on read and VMM input voltages, V


class FirmwareChecks:
    """Validation and clock helpers shared by the controller's command families (a mixin of
    :class:`~memprog.sim_instruments.onchip_controller.SimOnChipController`)."""

    chip: SimChip
    rows: int
    cols: int
    amplitude_max_v: float
    gate_max_v: float
    width_range_s: tuple[float, float]
    read_v: float
    safe: bool

    def _check_amplitudes(self, amp: np.ndarray) -> None:
        bad = ~np.isfinite(amp) | (np.abs(amp) > self.amplitude_max_v)
        if bad.any():
            v = float(amp[bad][0])
            raise CommandError(
                202,
                f"Amplitude above chip limit; {v:.6G} V, "
                f"allowed |V| <= {self.amplitude_max_v:.6G} V",
            )

    def _check_gates(self, gate: np.ndarray) -> None:
        bad = (gate < 0) | (gate > self.gate_max_v) | np.isinf(gate)
        if bad.any():
            raise CommandError(
                203,
                f"Gate voltage out of range; {float(gate[bad][0]):.6G} V, "
                f"allowed [0, {self.gate_max_v:.6G}] V",
            )

    def _check_width(self, width_s: float) -> None:
        w0, w1 = self.width_range_s
        if not w0 <= width_s <= w1:
            raise CommandError(
                204, f"Pulse width out of range; {width_s:.6G} s, allowed [{w0:.6G}, {w1:.6G}] s"
            )

    def _check_read_v(self, v: float) -> None:
        if not 0 < abs(v) <= READ_V_MAX:
            raise CommandError(
                205, f"Read voltage out of range; {v:.6G} V, allowed 0 < |V| <= {READ_V_MAX:.6G} V"
            )

    def _check_rows(self, rows: np.ndarray) -> None:
        bad = (rows < 0) | (rows >= self.rows) | (rows != np.floor(rows))
        if bad.any():
            raise CommandError(
                201, f"Address out of range; row {rows[bad][0]:.6G}, allowed [0, {self.rows - 1}]"
            )

    def _check_cols(self, cols: np.ndarray) -> None:
        bad = (cols < 0) | (cols >= self.cols) | (cols != np.floor(cols))
        if bad.any():
            raise CommandError(
                201,
                f"Address out of range; column {cols[bad][0]:.6G}, allowed [0, {self.cols - 1}]",
            )

    def _read_voltage(self, token: str | None) -> float:
        if token is None:
            return self.read_v
        v = parse_number(token, "read voltage")
        self._check_read_v(v)
        return v

    def _advance(self, dt_s: float) -> None:
        """Let simulated time pass (``dt_s`` is computed here: finite and >= 0 by construction)."""
        self.chip.clock_s += dt_s

    def _charge_rows(self, n_rows: int, duration_s: float) -> None:
        """Extra time of row-sequential operations beyond the first row (charged by the chip)."""
        if n_rows > 1:
            self._advance((n_rows - 1) * duration_s)

    def _distinct_rows(self, rows: np.ndarray) -> int:
        """How many row operations a set of cells needs (one per distinct row)."""
        if rows.size <= 1:
            return int(rows.size)
        return int(np.count_nonzero(np.bincount(rows, minlength=self.rows)))

    def _check_batch(
        self,
        rows: np.ndarray,
        cols: np.ndarray,
        amp: np.ndarray,
        gate: np.ndarray,
        widths_s: tuple[float, ...] = (),
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
        """Firmware checks of a pulse batch (addresses, amplitudes, gates, duplicates, row
        grouping); (rows, cols) as int64, the chip's gate voltages (None: all fully on),
        the number of row operations. Nothing is pulsed here."""
        self.safe = False
        self._check_rows(rows)
        self._check_cols(cols)
        self._check_amplitudes(amp)
        self._check_gates(gate)
        for w in widths_s:
            self._check_width(w)
        r = rows.astype(np.int64)
        c = cols.astype(np.int64)
        n_rows = self._distinct_rows(r)
        if r.size > 1:
            if np.bincount(r * self.cols + c, minlength=self.rows * self.cols).max() > 1:
                raise CommandError(
                    206, "Duplicate cell in batch; each cell may appear once per message"
                )
            if np.count_nonzero(r[1:] != r[:-1]) + 1 != n_rows:
                raise CommandError(
                    207, "Records not grouped by row; a row's cells must be contiguous"
                )
        nan = np.isnan(gate)
        if nan.all():
            gate_v = None  # transistor fully on: no compliance
        else:
            gate_v = np.where(nan, self.chip.params.gate_v_max_v, gate)
        return r, c, gate_v, n_rows
