"""The on-chip 6-bit write-verify engine of the simulated controller (``PROG:*``).

Why a module of its own: autonomous programming is the firmware's one long algorithm (a
gate-limited SET pass and a verify pass per iteration, RESET on overshoot, a higher gate
when a cell stalls), vectorised over every coded cell; apart from the command parsing it
reads as the algorithm the chip's datasheet describes.
"""

from __future__ import annotations

import numpy as np

from memprog.sim_instruments.onchip_reads import ReadCommands
from memprog.sim_instruments.onchip_scpi import (
    CommandError,
    decode_block,
    encode_block,
    parse_number,
    split_fields,
)

LEVELS = 64  # 6-bit on-chip programming
SKIP_CODE = 255  # target-map code: leave this cell alone
STALL_ITERATIONS = 8  # on-chip programming gives up on a cell that has not moved by then
MAX_ITERATIONS = 60  # on-chip programming iterations (SET + verify passes)
VERIFY_FRACTION = 0.6  # accept a cell within this fraction of the half level step


class ProgrammingCommands(ReadCommands):
    """``PROG:RANG``, ``PROG:PULS``, ``PROG:MAP``, ``PROG:STAR`` and their queries (a mixin
    of the controller)."""

    prog_range_s: tuple[float, float]
    prog_pulse: tuple[float, float, float, float]
    prog_map: np.ndarray | None
    prog_state: str
    prog_summary: tuple[int, int, int, int, int, float] | None
    prog_data: np.ndarray | None

    # ------------------------------------------------------------------ on-chip 6-bit programming
    def _prog_range(self, args: str) -> None:
        lo_t, hi_t = split_fields(args, ("low", "high"))
        lo, hi = parse_number(lo_t, "low"), parse_number(hi_t, "high")
        p = self.chip.params
        g0, g1 = p.g_min_us * 1e-6, p.g_max_us * 1e-6
        if not g0 <= lo < hi <= g1:
            raise CommandError(
                -222, f"Data out of range; need {g0:.6G} <= low < high <= {g1:.6G} S"
            )
        self.prog_range_s = (lo, hi)

    def _prog_pulse(self, args: str) -> None:
        toks = split_fields(args, ("set amplitude", "set width", "reset amplitude", "reset width"))
        sv, sw, rv, rw = (parse_number(t, "value") for t in toks)
        if sv <= 0 or rv <= 0:
            raise CommandError(-222, "Data out of range; amplitudes are positive magnitudes")
        self._check_amplitudes(np.array([sv, rv]))
        self._check_width(sw)
        self._check_width(rw)
        self.prog_pulse = (sv, sw, rv, rw)

    def _prog_map_load(self, args: str) -> None:
        self.prog_map = None
        codes = decode_block(args.lstrip(" "), "u1")
        if codes.size != self.rows * self.cols:
            raise CommandError(
                -161,
                f"Invalid block data; {codes.size} codes, "
                f"the array has {self.rows * self.cols} cells",
            )
        bad = (codes >= LEVELS) & (codes != SKIP_CODE)
        if bad.any():
            raise CommandError(
                214,
                f"Level code out of range; {int(codes[bad][0])}, "
                f"allowed 0-{LEVELS - 1} or {SKIP_CODE}",
            )
        self.prog_map = codes.copy()

    def _prog_start(self, args: str) -> None:
        split_fields(args, ())
        if self.prog_map is None:
            raise CommandError(211, "No target map; send PROG:MAP <block> first")
        # The simulated firmware finishes within this message's simulated time (the clock
        # advances by the whole run), so it is never seen busy: status goes straight to DONE.
        self.prog_summary, self.prog_data = self._program(self.prog_map)
        self.prog_state = "DONE"

    def _prog_status(self, args: str) -> str:
        split_fields(args, ())
        return self.prog_state

    def _prog_result(self, args: str) -> str:
        split_fields(args, ())
        if self.prog_summary is None:
            raise CommandError(215, "No programming result; run PROG:STAR first")
        n, ok, failed, it, pulses, dt = self.prog_summary
        return f"{n},{ok},{failed},{it},{pulses},{dt:.6G}"

    def _prog_data(self, args: str) -> bytes:
        split_fields(args, ())
        if self.prog_data is None:
            raise CommandError(215, "No programming result; run PROG:STAR first")
        return encode_block(self.prog_data, "<f4")

    def _program(
        self, codes: np.ndarray
    ) -> tuple[tuple[int, int, int, int, int, float], np.ndarray]:
        """Autonomous write-verify of every coded cell to its 6-bit level, vectorised.

        RESET every target cell twice, then iterate: one gate-limited SET pass on the cells
        not yet done (the gate sets a compliance a little above the target, so the cell
        approaches its level from below in shrinking steps), one verify read pass; cells
        inside the verify band are done, cells above it are RESET, cells whose progress
        stalls get a higher gate, cells that never moved are given up. Each pass costs one
        row operation per row holding an active cell.
        """
        chip, p = self.chip, self.chip.params
        t_start = chip.clock_s
        sel = np.flatnonzero(codes != SKIP_CODE)
        data = np.full(self.rows * self.cols, np.nan)
        n = sel.size
        if n == 0:
            return (0, 0, 0, 0, 0, 0.0), data
        set_v, set_w, reset_v, reset_w = self.prog_pulse
        lo, hi = (x * 1e6 for x in self.prog_range_s)
        step = (hi - lo) / (LEVELS - 1)
        target = lo + codes[sel].astype(np.float64) * step
        band = VERIFY_FRACTION * step / 2
        rows, cols = np.divmod(sel, self.cols)
        slope = (p.g_max_us - p.g_min_us) / (p.gate_v_max_v - p.gate_v_min_v)  # µS per gate volt
        gate = np.clip(
            p.gate_v_min_v + (target + 2 * band - p.g_min_us) / slope, 0.0, self.gate_max_v
        )
        pulses = 0

        def pulse(idx: np.ndarray, amp: float, width: float, g: np.ndarray | None) -> None:
            nonlocal pulses
            chip.pulse(rows[idx], cols[idx], amp, width, gate_v=g)
            self._charge_rows(self._distinct_rows(rows[idx]), width)
            pulses += idx.size

        everyone = np.arange(n)
        for _ in range(2):
            pulse(everyone, -reset_v, reset_w, None)
        g = self._read(rows, cols, self.read_v, self._distinct_rows(rows)) * 1e6
        start = g.copy()
        active = np.ones(n, dtype=bool)
        moved = np.zeros(n, dtype=bool)
        was_reset = np.zeros(n, dtype=bool)
        failed = np.zeros(n, dtype=bool)
        it = 0
        for it in range(1, MAX_ITERATIONS + 1):
            idx = np.flatnonzero(active)
            if idx.size == 0:
                it -= 1
                break
            pulse(idx, set_v, set_w, gate[idx])
            before = g[idx]
            g[idx] = (
                self._read(rows[idx], cols[idx], self.read_v, self._distinct_rows(rows[idx])) * 1e6
            )
            err = g[idx] - target[idx]
            done = np.abs(err) <= band
            high = err > band
            # below the band and hardly moving (and not just RESET): the compliance is too low
            stalled = ~done & ~high & ~was_reset[idx] & (g[idx] - before < band / 4)
            gate[idx[stalled]] = np.minimum(
                gate[idx[stalled]] + (band - err[stalled]) / slope, p.gate_v_max_v
            )
            gate[idx[high]] -= (err[high] + band) / slope
            was_reset[idx] = high
            if high.any():
                pulse(idx[high], -reset_v, reset_w, None)
            moved[idx] |= np.abs(g[idx] - start[idx]) > band
            dead = ~done & ~moved[idx] & (it >= STALL_ITERATIONS)
            failed[idx[dead]] = True
            active[idx[done | dead]] = False
        failed |= active
        data[sel] = g * 1e-6
        ok = int(np.count_nonzero(~failed))
        return (n, ok, n - ok, it, pulses, chip.clock_s - t_start), data
