"""Pulses of the on-chip controller: the configured pulse and batched per-cell pulses.

Why a module of its own: pulsing is the hot path of write-verify and the part that can
harm a chip, so its rules sit together: the one-cell pulse is checked on Python scalars
and costs one acknowledged message; batches go one message per round (a row's cells as a
text ``PULS:ROW?`` list, anything larger as one ``PULS:ROWS`` block, each cell at most
once per message); every amplitude, width and gate is checked against the safety limits
before sending, and a refused pulse leaves the chip in the safe state.
"""

from __future__ import annotations

import numpy as np

from memprog.core.errors import ConfigError, InstrumentError
from memprog.drivers import onchip_commands as cmd
from memprog.drivers.onchip_link import TEXT_BATCH_MAX, OnChipLink, one_cell


class OnChipPulses(OnChipLink):
    """Pulse methods of :class:`~memprog.drivers.onchip.OnChipController`."""

    def configure_pulses(
        self,
        set_amplitude_v: float | None = None,
        reset_amplitude_v: float | None = None,
        width_s: float | None = None,
        gate_v: float | None = None,
    ) -> None:
        """Set the pulse used by :meth:`pulse_set` / :meth:`pulse_reset` (magnitudes in V).

        Every given value is checked against the safety limits before anything is sent.
        """
        self._require_connected()
        w = self._pulse_config.get("width_s", self._w_lo) if width_s is None else float(width_s)
        if set_amplitude_v is not None:
            self.limits.check_pulse(float(set_amplitude_v), w)
        if reset_amplitude_v is not None:
            self.limits.check_pulse(-abs(float(reset_amplitude_v)), w)
        if width_s is not None:
            self.limits.check_pulse(0.0, w)
        if gate_v is not None:
            self.limits.check_gate(float(gate_v))
        sent = []
        for key, header, value in (
            ("set_amplitude_v", "PULS:SET:AMPL", set_amplitude_v),
            (
                "reset_amplitude_v",
                "PULS:RES:AMPL",
                None if reset_amplitude_v is None else abs(reset_amplitude_v),
            ),
            ("width_s", "PULS:WIDT", width_s),
            ("gate_v", "PULS:GATE", gate_v),
        ):
            if value is not None:
                message = f"{header} {cmd.num(float(value))}"
                self.transport.write(message)
                sent.append(message)
                self._pulse_config[key] = float(value)
        if sent:
            self._check("; ".join(sent))

    def pulse_settings(self) -> dict[str, float]:
        """The configured pulse, read back from the controller."""
        out = {}
        for key, query in (
            ("set_amplitude_v", "PULS:SET:AMPL?"),
            ("reset_amplitude_v", "PULS:RES:AMPL?"),
            ("width_s", "PULS:WIDT?"),
            ("gate_v", "PULS:GATE?"),
        ):
            out[key] = self._query_float(query, f"a number from {query}")
        return out

    def pulse_set(self, row: int, col: int) -> None:
        """``PULS:SET``: one configured SET pulse (gate at the configured voltage)."""
        self._pulse_configured("PULS:SET", "set_amplitude_v", row, col)

    def pulse_reset(self, row: int, col: int) -> None:
        """``PULS:RES``: one configured RESET pulse."""
        self._pulse_configured("PULS:RES", "reset_amplitude_v", row, col)

    def _pulse_configured(self, header: str, key: str, row: int, col: int) -> None:
        needed = (key, "width_s") + (("gate_v",) if key == "set_amplitude_v" else ())
        missing = [k for k in needed if k not in self._pulse_config]
        if missing:
            raise ConfigError(
                "pulse configuration",
                missing,
                "",
                "call configure_pulses() first: the driver only sends pulses it has checked",
            )
        r, c = self._cells(row, col)
        if r.size != 1:
            raise ConfigError("row/col", (row, col), "a single cell")
        message = f"{header} {int(r[0])},{int(c[0])}"
        self.transport.write(message)
        try:
            self._check(message)
        except InstrumentError:
            self._safe_after_error()
            raise

    # ------------------------------------------------------------------ batched pulses
    def pulse_cells(
        self,
        rows: object,
        cols: object,
        amplitude_v: object,
        width_s: float,
        gate_v: object | None = None,
    ) -> int:
        """Pulse cells: each row's cells in parallel, one message per batch.

        Amplitudes (positive SET, negative RESET) and gate voltages may be one per cell;
        ``gate_v=None`` drives the gate fully on (no compliance). A single row of up to
        ``TEXT_BATCH_MAX`` cells travels as one acknowledged ``PULS:ROW?`` text list; larger
        or multi-row batches travel as one ``PULS:ROWS`` binary block (records grouped by
        row) followed by an error-queue check. A cell named twice is pulsed twice (in two
        messages). Returns the number of cell pulses applied.
        """
        width = float(width_s)
        one = one_cell(rows, cols)
        if (
            one is not None
            and np.size(amplitude_v) == 1
            and (gate_v is None or np.size(gate_v) == 1)
        ):
            # one cell: Python-scalar checks, one message (the write-verify hot path)
            amp1 = float(np.asarray(amplitude_v).ravel()[0])
            gate1 = None if gate_v is None else float(np.asarray(gate_v).ravel()[0])
            return self._pulse_one(one[0], one[1], amp1, width, gate1)
        r, c = self._cells(rows, cols)
        n = r.size
        if n == 0:
            return 0
        try:
            amp = np.broadcast_to(np.asarray(amplitude_v, dtype=float), (n,))
            gate = (
                None if gate_v is None else np.broadcast_to(np.asarray(gate_v, dtype=float), (n,))
            )
        except ValueError:
            raise ConfigError(
                "amplitude_v/gate_v", np.shape(amplitude_v), f"a scalar or {n} values"
            ) from None
        self._check_pulse(amp, width, gate)
        if n == 1:
            return self._pulse_one(
                int(r[0]), int(c[0]), float(amp[0]), width, None if gate is None else float(gate[0])
            )
        g = np.full(n, np.nan) if gate is None else gate
        for idx in self._rounds(r, c):
            self._send_batch(r[idx], c[idx], amp[idx], width, g[idx])
        return n

    def _pulse_one(self, row: int, col: int, amp: float, width: float, gate_v: float | None) -> int:
        self._require_connected()
        if not (0 <= row < self.rows and 0 <= col < self.cols):
            self._cells(row, col)  # raises the ConfigError naming the bad index
        gate = float("nan") if gate_v is None else gate_v
        if not (self._amp_lo <= amp <= self._amp_hi and self._w_lo <= width <= self._w_hi):
            self.limits.check_pulse(amp, width)
        if gate_v is not None and not 0 <= gate <= self._gate_hi:
            self.limits.check_gate(gate)
        message = cmd.pulse_one(row, col, width, amp, gate)
        self._ack(message, 1)
        return 1

    def _ack(self, message: str, count: int) -> None:
        reply = self.transport.query(message)
        if reply == str(count):
            return
        error = self._bad_reply(message, reply, f"the count of cells pulsed ('{count}')")
        self._safe_after_error()
        raise error

    def _rounds(self, r: np.ndarray, c: np.ndarray) -> list[np.ndarray]:
        """Indices per message: every cell at most once per message, each round row-grouped."""
        flat = r * self.cols + c
        if np.bincount(flat, minlength=self.rows * self.cols).max() == 1:  # the usual case
            return [_group_by_row(r, np.arange(r.size))]
        order = np.argsort(flat, kind="stable")
        fs = flat[order]
        repeat = np.zeros(flat.size, dtype=bool)
        repeat[1:] = fs[1:] == fs[:-1]
        pos = np.arange(flat.size)
        group_start = np.maximum.accumulate(np.where(repeat, 0, pos))
        rank = np.empty(flat.size, dtype=np.int64)
        rank[order] = pos - group_start
        return [_group_by_row(r, np.flatnonzero(rank == k)) for k in range(int(rank.max()) + 1)]

    def _send_batch(
        self, r: np.ndarray, c: np.ndarray, amp: np.ndarray, width: float, gate: np.ndarray
    ) -> None:
        if r.size <= TEXT_BATCH_MAX and r[0] == r[-1]:  # sorted by row: one row
            self._ack(cmd.pulse_row(int(r[0]), width, c, amp, gate), r.size)
            return
        header = cmd.pulse_rows_header(width)
        self.transport.write_binary(header, cmd.pulse_rows_records(r, c, amp, gate), "f")
        try:
            self._check(header + "<block>")
        except InstrumentError:
            self._safe_after_error()
            raise


def _group_by_row(r: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``idx`` reordered so each row's cells are contiguous (stable; radix sort on uint16)."""
    rows = r[idx]
    if rows.size < 2 or np.all(rows[1:] >= rows[:-1]):
        return idx
    return idx[np.argsort(rows.astype(np.uint16), kind="stable")]
