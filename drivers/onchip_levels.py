"""On-chip 6-bit programming: the controller's own write-verify engine (``PROG:*``).

Why a module of its own: here the controller, not the host, tunes a whole target map of
64 levels (Rao 2023). The driver's part is to check the map, the level range and the
engine's pulses against the safety limits before ``PROG:STAR``, then to wait for the run
(``*OPC?``) and read its summary and final conductances.
"""

from __future__ import annotations

import numpy as np

from memprog.core.errors import ConfigError, InstrumentError, ProtocolError
from memprog.drivers import onchip_commands as cmd
from memprog.drivers.onchip_commands import ProgramPulses, ProgramResult
from memprog.drivers.onchip_link import OnChipLink


class OnChipLevels(OnChipLink):
    """The 6-bit programming methods of :class:`~memprog.drivers.onchip.OnChipController`."""

    def program_range_us(self) -> tuple[float, float]:
        """``PROG:RANG?``: conductances (µS) of level 0 and level 63."""
        lo, hi = cmd.parse_floats(
            self._query("PROG:RANG?"), 2, "a level range '<low_S>,<high_S>'", self.name
        )
        return lo * 1e6, hi * 1e6

    def program_pulses(self) -> ProgramPulses:
        """``PROG:PULS?``: the pulses the on-chip programming engine will use."""
        values = cmd.parse_floats(
            self._query("PROG:PULS?"), 4, "four values 'set_v,set_w,reset_v,reset_w'", self.name
        )
        return ProgramPulses(*values)

    def program_status(self) -> tuple[str, float | None]:
        """``PROG:STAT?``: ``("RUN", fraction)`` while programming, else (state, None)."""
        return cmd.parse_program_status(self._query("PROG:STAT?"), self.name)

    def program_result(self) -> ProgramResult:
        """``PROG:RES?``: summary of the last on-chip programming run."""
        return cmd.parse_program_result(self._query("PROG:RES?"), self.name)

    def program_data(self) -> np.ndarray:
        """``PROG:DATA?``: final verify conductance (µS) of every cell (NaN where skipped)."""
        self._require_connected()
        n = self.rows * self.cols
        g = self._query_block("PROG:DATA?", "f", n, f"a block of {n} float32 conductances")
        return (g.astype(np.float64) * 1e6).reshape(self.rows, self.cols)

    def program_levels(
        self,
        levels: object,
        range_us: tuple[float, float] | None = None,
        pulses: ProgramPulses | None = None,
        wait: bool = True,
    ) -> ProgramResult | None:
        """On-chip 6-bit programming of a whole target map (64 levels, Rao 2023).

        Args:
            levels: (rows, cols) level codes 0..63, or 255 to leave a cell alone.
            range_us: conductances of level 0 and level 63; None keeps the controller's.
            pulses: the engine's SET/RESET pulses; None keeps the controller's, which are
                read back and checked against the safety limits before starting.
            wait: block (``*OPC?``) until done and return the summary; else return None
                and poll :meth:`program_status`. The transport's timeout must cover the run.
        """
        self._require_connected()
        codes = np.asarray(levels)
        if codes.shape != (self.rows, self.cols):
            raise ConfigError("levels shape", codes.shape, f"({self.rows}, {self.cols})")
        allowed = f"integers 0..{cmd.LEVELS - 1} or {cmd.SKIP_CODE} (skip)"
        if codes.dtype.kind not in "iu":
            raise ConfigError("levels dtype", str(codes.dtype), allowed)
        bad = ((codes < 0) | (codes >= cmd.LEVELS)) & (codes != cmd.SKIP_CODE)
        if bad.any():
            raise ConfigError("levels", int(codes[bad][0]), allowed)
        if range_us is not None:
            lo, hi = (float(x) for x in range_us)
            lim = self.limits
            if not lim.conductance_min_us <= lo < hi <= lim.conductance_max_us:
                raise ConfigError(
                    "range_us",
                    (lo, hi),
                    f"{lim.conductance_min_us} <= low < high <= {lim.conductance_max_us} µS",
                )
        if pulses is None:
            pulses = self.program_pulses()
            send_pulses = False
        else:
            send_pulses = True
        self.limits.check_pulse(pulses.set_amplitude_v, pulses.set_width_s)
        self.limits.check_pulse(-abs(pulses.reset_amplitude_v), pulses.reset_width_s)
        sent = []
        if range_us is not None:
            sent.append(cmd.program_range(lo, hi))
        if send_pulses:
            sent.append(cmd.program_pulses(pulses))
        for message in sent:
            self.transport.write(message)
        self.transport.write_binary(cmd.PROGRAM_MAP_HEADER, codes.astype(np.uint8).ravel(), "B")
        self._check("; ".join(sent + [cmd.PROGRAM_MAP_HEADER + "<block>"]))
        try:
            self.transport.write("PROG:STAR")
            self._check("PROG:STAR")
            if not wait:
                return None
            self.wait_complete()
        except (InstrumentError, ProtocolError):
            self._safe_after_error()
            raise
        return self.program_result()
