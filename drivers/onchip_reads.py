"""Reads of the on-chip controller: one cell, a row, the array, or any selection.

Why a module of its own: a read is cheap only in the right form, so :meth:`read_cells`
picks the fewest messages for the cells named (one cell, one row, a selection block, the
whole array); every read voltage is checked against the chip's read limit first.
"""

from __future__ import annotations

import numpy as np

from memprog.core.errors import ConfigError
from memprog.drivers import onchip_commands as cmd
from memprog.drivers.onchip_link import OnChipLink, one_cell


class OnChipReads(OnChipLink):
    """Read methods of :class:`~memprog.drivers.onchip.OnChipController`."""

    def set_read_voltage(self, read_v: float) -> None:
        """``READ:VOLT``: the read voltage of reads that do not name one."""
        self._require_connected()
        self.limits.check_read(float(read_v))
        message = f"READ:VOLT {cmd.num(float(read_v))}"
        self.transport.write(message)
        self._check(message)
        self.read_v = float(read_v)

    def read_cell(self, row: int, col: int, read_v: float | None = None) -> float:
        """``READ:CELL?``: conductance (µS) of one cell."""
        self._require_connected()
        one = one_cell(row, col)
        if one is None or not (0 <= one[0] < self.rows and 0 <= one[1] < self.cols):
            r, c = self._cells(row, col)  # names the bad index
            if r.size != 1:
                raise ConfigError("row/col", (row, col), "a single cell")
            one = int(r[0]), int(c[0])
        row, col = one
        self._check_read_v(read_v)
        return self._query_float(cmd.read_cell(row, col, read_v), "a conductance in S") * 1e6

    def read_row(self, row: int, read_v: float | None = None) -> np.ndarray:
        """``READ:ROW?``: conductances (µS) of one whole row, read in parallel."""
        r, _ = self._cells(row, 0)
        if r.size != 1:
            raise ConfigError("row", row, "a single row index")
        self._check_read_v(read_v)
        g = self._query_block(
            cmd.read_row(int(r[0]), read_v),
            "f",
            self.cols,
            f"a block of {self.cols} float32 conductances",
        )
        return g.astype(np.float64) * 1e6

    def read_array(self, read_v: float | None = None) -> np.ndarray:
        """``READ:ARR?``: conductance map (µS) of the whole array, row by row."""
        self._require_connected()
        self._check_read_v(read_v)
        n = self.rows * self.cols
        g = self._query_block(
            cmd.read_array(read_v), "f", n, f"a block of {n} float32 conductances"
        )
        return (g.astype(np.float64) * 1e6).reshape(self.rows, self.cols)

    def read_cells(self, rows: object, cols: object, read_v: float | None = None) -> np.ndarray:
        """Conductances (µS) of any cells, in the order given, in as few messages as possible.

        One cell: ``READ:CELL?``; cells of one row: ``READ:ROW?``; half the array or more:
        ``READ:ARR?``; otherwise ``READ:SEL`` (the cell list as a block) + ``READ:SEL?``,
        which the controller reads row by row.
        """
        one = one_cell(rows, cols)
        if one is not None:
            return np.array([self.read_cell(one[0], one[1], read_v)])
        r, c = self._cells(rows, cols)
        n = r.size
        if n == 0:
            return np.empty(0)
        self._check_read_v(read_v)
        if n == 1:
            return np.array([self.read_cell(int(r[0]), int(c[0]), read_v)])
        if n * 2 >= self.rows * self.cols:
            return self.read_array(read_v)[r, c]
        if np.all(r == r[0]):
            return self.read_row(int(r[0]), read_v)[c]
        self.transport.write_binary(cmd.SELECT_HEADER, cmd.selection_records(r, c), "H")
        g = self._query_block(
            cmd.read_selection(read_v), "f", n, f"a block of {n} float32 conductances"
        )
        return g.astype(np.float64) * 1e6
