"""Bursts of the on-chip controller: a pulse train then reads, or reads alone, in one message.

Why a module of its own: a write-verify step is a pulse train followed by a burst of
reads; protocol 1.1 runs the pair on the controller (``PULS:READ?``) and a verification
burst alone (``READ:BURS?``), each one round trip. Both take distinct cells of one row,
need firmware 1.1 or later, and check pulses and counts before sending.
"""

from __future__ import annotations

import numpy as np

from memprog.core.errors import ConfigError, InstrumentError
from memprog.drivers import onchip_commands as cmd
from memprog.drivers.onchip_link import TEXT_BATCH_MAX, OnChipLink, one_cell
from memprog.protocols.programmer import pulse_train


class OnChipBursts(OnChipLink):
    """Burst methods of :class:`~memprog.drivers.onchip.OnChipController`."""

    def row_cells(self, rows: object, cols: object) -> tuple[int, np.ndarray] | None:
        """(row, columns) when the named cells are 1..``TEXT_BATCH_MAX`` distinct cells of one
        row, in the order given (what ``PULS:READ?`` and ``READ:BURS?`` take); else None.

        Raises ConfigError for a cell outside the array (as every other method does).
        """
        one = one_cell(rows, cols)
        if one is not None and 0 <= one[0] < self.rows and 0 <= one[1] < self.cols:
            self._require_connected()
            return one[0], np.array([one[1]], dtype=np.int64)
        r, c = self._cells(rows, cols)
        if not 1 <= r.size <= TEXT_BATCH_MAX or np.any(r != r[0]):
            return None
        if c.size > 1 and np.unique(c).size != c.size:
            return None
        return int(r[0]), c

    def _burst_args(
        self, row: object, cols: object, reads: object, interval_s: object
    ) -> tuple[int, np.ndarray, int, float]:
        """Validated (row, columns, reads, interval) of a burst on cells of one row."""
        self._require_connected()
        c = np.atleast_1d(np.asarray(cols))
        if c.ndim != 1 or c.size == 0 or c.size > TEXT_BATCH_MAX:
            raise ConfigError("cols", np.shape(cols), f"1 to {TEXT_BATCH_MAX} columns of one row")
        fit = self.row_cells(np.full(c.size, row) if np.ndim(row) == 0 else row, c)
        if fit is None:
            raise ConfigError("cols", c.tolist(), "distinct columns of one row")
        r, c = fit
        if isinstance(reads, bool) or not isinstance(reads, int | np.integer):
            raise ConfigError("reads", reads, f"an integer in [1, {cmd.BURST_READS_MAX}]")
        if not 1 <= reads <= cmd.BURST_READS_MAX:
            raise ConfigError("reads", reads, f"[1, {cmd.BURST_READS_MAX}]")
        iv = float(interval_s)  # type: ignore[arg-type]
        if not 0.0 <= iv <= cmd.BURST_INTERVAL_MAX_S:  # also refuses NaN
            raise ConfigError("interval_s", interval_s, f"[0, {cmd.BURST_INTERVAL_MAX_S:g}] s")
        return r, c, int(reads), iv

    def read_burst(self, row: int, cols: object, reads: int, interval_s: float = 0.0) -> np.ndarray:
        """``READ:BURS?``: ``reads`` reads (µS) of cells of one row, (reads, cells).

        The controller reads the cells (in parallel, at the configured read voltage)
        ``reads`` times, the reads' starts at least ``interval_s`` apart, and answers all of
        them in one block: a verification burst costs one round trip.
        """
        self._require_bursts("READ:BURS?")
        r, c, n, iv = self._burst_args(row, cols, reads, interval_s)
        message = cmd.read_burst(r, n, iv, c)
        m = n * c.size
        g = self._query_block(message, "f", m, f"a block of {m} float32 conductances")
        return (g.astype(np.float64) * 1e6).reshape(n, c.size)

    def pulse_read(
        self,
        row: int,
        cols: object,
        amplitude_v: object,
        width_s: object,
        gate_v: object | None = None,
        reads: int = 1,
        interval_s: float = 0.0,
    ) -> np.ndarray:
        """``PULS:READ?``: a pulse train on cells of one row, then a read burst.

        ``width_s``: one width or k widths (k <= ``TRAIN_MAX`` pulses, one after the other);
        ``amplitude_v`` broadcast to (k, cells): positive SET, negative RESET, 0 = the cell
        sits that pulse out; gates (None: fully on) one per cell. Everything is checked
        against the safety limits before sending. The cells are then read ``reads`` times
        (starts at least ``interval_s`` apart, configured read voltage). Returns the reads
        (µS), (reads, cells): a write-verify step in one round trip.
        """
        self._require_bursts("PULS:READ?")
        r, c, n, iv = self._burst_args(row, cols, reads, interval_s)
        k = c.size
        amp, widths = pulse_train(amplitude_v, width_s, k)
        if widths.size > cmd.TRAIN_MAX:
            raise ConfigError("width_s", f"{widths.size} pulses", f"1 to {cmd.TRAIN_MAX} pulses")
        try:
            gate = None if gate_v is None else np.broadcast_to(np.asarray(gate_v, float), (k,))
        except ValueError:
            raise ConfigError("gate_v", np.shape(gate_v), f"a scalar or {k} values") from None
        flat = amp.ravel()
        for w in set(widths.tolist()):
            self._check_pulse(flat, w, gate)
        g_wire = np.full(k, np.nan) if gate is None else gate
        message = cmd.pulse_read(r, n, iv, widths, c, g_wire, amp.T)
        try:
            g = self._query_block(message, "f", n * k, f"a block of {n * k} float32 conductances")
        except InstrumentError:
            self._safe_after_error()
            raise
        return (g.astype(np.float64) * 1e6).reshape(n, k)
