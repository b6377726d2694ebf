"""Read and vector-matrix-multiply commands of the simulated on-chip controller.

Why a module of its own: reads are where the firmware's sense amplifiers meet the chip's
noise, and where time is charged per row (a row's columns are sensed in parallel); the
analog VMM shares the read voltage limit and the block replies. The on-chip programmer's
verify passes use :meth:`ReadCommands._read` too.
"""

from __future__ import annotations

import numpy as np

from memprog.sim_instruments.onchip_checks import READ_V_MAX, FirmwareChecks
from memprog.sim_instruments.onchip_scpi import (
    CommandError,
    decode_block,
    encode_block,
    parse_integer,
    split_fields,
)

VMM_BATCH_MAX = 1024  # input vectors one VMM:INP block may hold (firmware buffer)


class ReadCommands(FirmwareChecks):
    """Cell, row, array and selection reads; VMM (a mixin of the controller)."""

    _row_cols: np.ndarray
    _all_rc: tuple[np.ndarray, np.ndarray]
    selection: np.ndarray | None
    vmm_input: np.ndarray | None

    # ------------------------------------------------------------------ reads
    def _read(
        self, rows: np.ndarray | int, cols: np.ndarray | int, read_v: float, n_rows: int
    ) -> np.ndarray:
        """Conductance in S: every row read senses its selected columns in parallel."""
        p = self.chip.params
        v = None if read_v == p.read_v else read_v  # the chip's own read voltage needs no re-check
        g_us = self.chip.read(rows, cols, v, duration_s=n_rows * p.read_time_s)
        return g_us * 1e-6

    def _read_cell(self, args: str) -> str:
        parts = args.split(",")
        if len(parts) == 2:  # the write-verify hot path, checked on Python scalars
            try:
                r, c = int(parts[0]), int(parts[1])
            except ValueError:
                r = -1
            if 0 <= r < self.rows and 0 <= c < self.cols:
                return f"{self._read(r, c, self.read_v, 1)[0]:.7E}"
        parts = split_fields(args, ("row", "column", "voltage"), optional=1)
        r = np.array([parse_integer(parts[0], "row")])
        c = np.array([parse_integer(parts[1], "column")])
        self._check_rows(r)
        self._check_cols(c)
        v = self._read_voltage(parts[2] if len(parts) > 2 else None)
        return f"{self._read(r, c, v, 1)[0]:.7E}"

    def _read_row(self, args: str) -> bytes:
        parts = split_fields(args, ("row", "voltage"), optional=1)
        r = parse_integer(parts[0], "row")
        self._check_rows(np.array([r]))
        v = self._read_voltage(parts[1] if len(parts) > 1 else None)
        return encode_block(self._read(np.full(self.cols, r), self._row_cols, v, 1), "<f4")

    def _read_array(self, args: str) -> bytes:
        parts = split_fields(args, ("voltage",), optional=1)
        v = self._read_voltage(parts[0] if parts else None)
        r, c = self._all_rc
        return encode_block(self._read(r, c, v, self.rows), "<f4")

    def _select(self, args: str) -> None:
        self.selection = None
        pairs = decode_block(args.lstrip(" "), "<u2", 2).reshape(-1, 2).astype(np.int64)
        if pairs.shape[0] == 0:
            raise CommandError(-161, "Invalid block data; empty selection")
        self._check_rows(pairs[:, 0])
        self._check_cols(pairs[:, 1])
        self.selection = pairs

    def _read_selection(self, args: str) -> bytes:
        parts = split_fields(args, ("voltage",), optional=1)
        if self.selection is None:
            raise CommandError(212, "No read selection; send READ:SEL <block> first")
        v = self._read_voltage(parts[0] if parts else None)
        r, c = self.selection[:, 0], self.selection[:, 1]
        return encode_block(self._read(r, c, v, self._distinct_rows(r)), "<f4")

    # ------------------------------------------------------------------ VMM
    def _vmm_input(self, args: str) -> None:
        self.vmm_input = None
        v = decode_block(args.lstrip(" "), "<f4").astype(np.float64)
        if v.size == 0 or v.size % self.rows:
            raise CommandError(
                -161, f"Invalid block data; {v.size} input voltages, the array has {self.rows} rows"
            )
        if v.size // self.rows > VMM_BATCH_MAX:
            raise CommandError(
                -161,
                f"Invalid block data; {v.size // self.rows} input vectors, at most {VMM_BATCH_MAX}",
            )
        bad = ~np.isfinite(v) | (np.abs(v) > READ_V_MAX)
        if bad.any():
            raise CommandError(
                205,
                f"Input voltage out of range; {float(v[bad][0]):.6G} V, "
                f"allowed |V| <= {READ_V_MAX:.6G} V",
            )
        self.vmm_input = v.reshape(-1, self.rows)

    def _vmm(self, args: str) -> bytes:
        """One integration per stored input vector, in order; currents vector by vector."""
        split_fields(args, ())
        if self.vmm_input is None:
            raise CommandError(213, "No VMM input; send VMM:INP <block> first")
        return encode_block(self.chip.vmm(self.vmm_input), "<f4")
