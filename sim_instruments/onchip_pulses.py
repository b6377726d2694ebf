"""Pulse commands of the simulated on-chip controller: configured pulses, row and batch
pulses, pulse trains with a read burst (``PULS:READ?``) and read bursts (``READ:BURS?``).

Why a module of its own: these are the write paths of the firmware, where a row's cells
are pulsed in parallel and rows one after the other; the single-cell write-verify hot path
is checked on Python scalars here so one pulse costs microseconds, while every batch goes
through :meth:`FirmwareChecks._check_batch`.
"""

from __future__ import annotations

import numpy as np

from memprog.sim_instruments.onchip_checks import FirmwareChecks
from memprog.sim_instruments.onchip_scpi import (
    CommandError,
    decode_block,
    encode_block,
    parse_integer,
    parse_number,
    split_fields,
)

TRAIN_MAX = 32  # pulses of one PULS:READ? train
BURST_READS_MAX = 64  # reads of one PULS:READ? / READ:BURS? burst (firmware buffer)
BURST_INTERVAL_MAX_S = 0.01  # longest spacing of a burst's reads, s


class PulseCommands(FirmwareChecks):
    """Pulse configuration, pulses and bursts (a mixin of the controller)."""

    set_v: float
    reset_v: float
    width_s: float
    gate_v: float

    # ------------------------------------------------------------------ pulse configuration
    def _set_amplitude(self, args: str, which: str) -> None:
        (tok,) = split_fields(args, ("amplitude",))
        v = parse_number(tok, "amplitude")
        if v < 0:
            raise CommandError(-222, f"Data out of range; amplitude is a magnitude, got {v:.6G}")
        self._check_amplitudes(np.array([v]))
        if which == "set":
            self.set_v = v
        else:
            self.reset_v = v

    def _set_width(self, args: str) -> None:
        (tok,) = split_fields(args, ("width",))
        w = parse_number(tok, "width")
        self._check_width(w)
        self.width_s = w

    def _set_gate(self, args: str) -> None:
        (tok,) = split_fields(args, ("gate",))
        g = parse_number(tok, "gate")
        if not np.isfinite(g):
            raise CommandError(-222, "Data out of range; the configured gate must be finite")
        self._check_gates(np.array([g]))
        self.gate_v = g

    def _set_read_v(self, args: str) -> None:
        (tok,) = split_fields(args, ("voltage",))
        self.read_v = self._read_voltage(tok)

    # ------------------------------------------------------------------ pulses
    def _apply_pulses(
        self, rows: np.ndarray, cols: np.ndarray, amp: np.ndarray, width_s: float, gate: np.ndarray
    ) -> None:
        """Validated pulses: cells of one row in parallel, rows one after the other."""
        r, c, gate_v, n_rows = self._check_batch(rows, cols, amp, gate, (width_s,))
        self.chip.pulse(r, c, amp, width_s, gate_v=gate_v)
        self._charge_rows(n_rows, width_s)

    def _pulse_configured(self, args: str, sign: int) -> None:
        r, c = split_fields(args, ("row", "column"))
        rows = np.array([parse_integer(r, "row")])
        cols = np.array([parse_integer(c, "column")])
        amp = np.array([sign * (self.set_v if sign > 0 else self.reset_v)])
        gate = np.array([self.gate_v if sign > 0 else np.nan])
        self._apply_pulses(rows, cols, amp, self.width_s, gate)

    def _pulse_row(self, args: str) -> str:
        parts = args.split(",") if args.strip() else []
        if len(parts) == 5:  # one cell: the write-verify hot path, checked on Python scalars
            try:
                row, col = int(parts[0]), int(parts[2])
                width, amp, gate = float(parts[1]), float(parts[3]), float(parts[4])
            except ValueError:
                row = -1  # let the general path name the bad field
            else:
                w0, w1 = self.width_range_s
                if (
                    0 <= row < self.rows
                    and 0 <= col < self.cols
                    and abs(amp) <= self.amplitude_max_v
                    and w0 <= width <= w1
                    and (gate != gate or 0 <= gate <= self.gate_max_v)
                ):
                    self.chip.pulse(row, col, amp, width, gate_v=None if gate != gate else gate)
                    return "1"
        if len(parts) < 5:
            raise CommandError(
                -109, "Missing parameter; expected row,width,col,amplitude,gate[,...]"
            )
        if (len(parts) - 2) % 3:
            raise CommandError(
                -109, "Missing parameter; cells come as col,amplitude,gate triplets"
            )
        row = parse_integer(parts[0], "row")
        width = parse_number(parts[1], "width")
        try:
            cells = np.array(parts[2:], dtype=np.float64).reshape(-1, 3)
        except ValueError:
            raise CommandError(-104, "Data type error; cell triplets must be numbers") from None
        n = cells.shape[0]
        self._apply_pulses(np.full(n, row), cells[:, 0], cells[:, 1], width, cells[:, 2])
        return str(n)

    def _pulse_read(self, args: str) -> bytes:
        """``PULS:READ?``: a train of k pulses on cells of one row, then a read burst."""
        parts = args.split(",") if args.strip() else []
        if len(parts) < 4:
            raise CommandError(
                -109,
                "Missing parameter; expected row,reads,interval,k,width...,col,gate,amplitude...",
            )
        row = parse_integer(parts[0], "row")
        reads, interval = self._burst_params(parts[1], parts[2])
        k = parse_integer(parts[3], "pulse count")
        if not 1 <= k <= TRAIN_MAX:
            raise CommandError(-222, f"Data out of range; {k} pulses, allowed [1, {TRAIN_MAX}]")
        rec_len = 2 + k
        if len(parts) < 4 + k + rec_len or (len(parts) - 4 - k) % rec_len:
            raise CommandError(
                -109, f"Missing parameter; cells come as col,gate,amplitude x {k} records"
            )
        try:
            widths = [float(t) for t in parts[4 : 4 + k]]
            cells = np.array(parts[4 + k :], dtype=np.float64).reshape(-1, rec_len)
        except ValueError:
            raise CommandError(
                -104, "Data type error; widths and records must be numbers"
            ) from None
        n = cells.shape[0]
        if n == 1 and 0 <= row < self.rows:  # one cell: checked on Python scalars
            col, gate, *amps = cells[0].tolist()
            if (
                col.is_integer()
                and 0 <= col < self.cols
                and all(abs(a) <= self.amplitude_max_v for a in amps)
                and all(self.width_range_s[0] <= w <= self.width_range_s[1] for w in widths)
                and (gate != gate or 0 <= gate <= self.gate_max_v)
            ):
                self.safe = False
                c, gv = int(col), None if gate != gate else gate
                for a, w in zip(amps, widths, strict=True):
                    if a != 0:
                        self.chip.pulse(row, c, a, w, gate_v=gv)
                    else:
                        self._advance(w)
                return encode_block(self._burst(row, c, reads, interval), "<f4")
        amps = cells[:, 2:]
        r, c, gate_v, _ = self._check_batch(
            np.full(n, row), cells[:, 0], amps, cells[:, 1], tuple(widths)
        )
        for j, w in enumerate(widths):  # one parallel row operation per pulse of the train
            a = amps[:, j]
            on = a != 0
            if on.all():
                self.chip.pulse(r, c, a, w, gate_v=gate_v)
            elif on.any():
                self.chip.pulse(
                    r[on], c[on], a[on], w, gate_v=None if gate_v is None else gate_v[on]
                )
            else:
                self._advance(w)
        return encode_block(self._burst(r, c, reads, interval), "<f4")

    def _read_burst(self, args: str) -> bytes:
        """``READ:BURS?``: ``reads`` reads of cells of one row (configured read voltage)."""
        parts = args.split(",") if args.strip() else []
        if len(parts) < 4:
            raise CommandError(-109, "Missing parameter; expected row,reads,interval,col[,...]")
        row = parse_integer(parts[0], "row")
        reads, interval = self._burst_params(parts[1], parts[2])
        cols = np.array([parse_integer(t, "column") for t in parts[3:]], dtype=np.int64)
        self._check_rows(np.array([row]))
        self._check_cols(cols)
        if cols.size == 1:
            return encode_block(self._burst(row, int(cols[0]), reads, interval), "<f4")
        return encode_block(self._burst(np.full(cols.size, row), cols, reads, interval), "<f4")

    def _burst_params(self, reads_t: str, interval_t: str) -> tuple[int, float]:
        reads = parse_integer(reads_t, "reads")
        interval = parse_number(interval_t, "interval")
        if not 1 <= reads <= BURST_READS_MAX:
            raise CommandError(
                -222, f"Data out of range; reads {reads}, allowed [1, {BURST_READS_MAX}]"
            )
        if not 0 <= interval <= BURST_INTERVAL_MAX_S:
            raise CommandError(
                -222,
                f"Data out of range; interval {interval:.6G} s, "
                f"allowed [0, {BURST_INTERVAL_MAX_S:g}] s",
            )
        return reads, interval

    def _burst(
        self, rows: np.ndarray | int, cols: np.ndarray | int, reads: int, interval_s: float
    ) -> np.ndarray:
        """``reads`` row reads of the cells (S), (reads, cells): each one ``read_time_s``, their
        starts ``max(interval_s, read_time_s)`` apart, at the configured read voltage."""
        p = self.chip.params
        v = None if self.read_v == p.read_v else self.read_v
        g_us = self.chip.read_burst(
            rows, cols, reads, v, interval_s=max(interval_s, p.read_time_s)
        )
        return g_us * 1e-6

    def _pulse_rows(self, args: str) -> None:
        head, sep, block = args.partition(",")
        if not sep:
            raise CommandError(-109, "Missing parameter; expected width,<block>")
        width = parse_number(head, "width")
        rec = decode_block(block, "<f4", 4).reshape(-1, 4).astype(np.float64)
        if rec.shape[0] == 0:
            raise CommandError(-161, "Invalid block data; no cells")
        self._apply_pulses(rec[:, 0], rec[:, 1], rec[:, 2], width, rec[:, 3])
