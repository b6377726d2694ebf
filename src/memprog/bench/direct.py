"""A CellProgrammer straight onto a simulated chip, with no instrument in between.

Protocol development and fast unit tests use it: the algorithm sees exactly what it would
see through a driver (noisy reads, the chip's physics, the safety limits enforced) without
the cost of formatting and parsing commands. End-to-end tests still go through the real
drivers and the VISA backend.
"""

from __future__ import annotations

import numpy as np

from memprog.core.limits import SafetyLimits
from memprog.protocols.programmer import CellProgrammer, ProgrammerInfo, check_wait_s
from memprog.sim_instruments.chip import SimChip


class DirectChipProgrammer(CellProgrammer):
    """CellProgrammer over a :class:`SimChip` (1T1R chips pulse whole batches at once)."""

    def __init__(self, chip: SimChip, limits: SafetyLimits | None = None) -> None:
        p = chip.params
        self.chip = chip
        self.limits = limits or SafetyLimits(
            set_v_max=min(2.5, 0.9 * p.v_breakdown_v), reset_v_max=min(2.5, 0.9 * p.v_breakdown_v)
        )
        self.info = ProgrammerInfo(
            rows=chip.rows,
            cols=chip.cols,
            parallel="row" if p.cell_type == "1t1r" else "cell",
            has_gate=p.cell_type == "1t1r",
            g_range_us=(float(p.g_min_us), float(p.g_max_us)),
            read_v=p.read_v,
            technology=chip.technology,
        )

    def pulse(self, rows, cols, amplitude_v, width_s, gate_v=None) -> None:  # noqa: D102
        self.limits.check_pulse(amplitude_v, width_s)
        if gate_v is not None:
            self.limits.check_gate(gate_v)
        self.chip.pulse(rows, cols, amplitude_v, width_s, gate_v=gate_v)

    def read(self, rows, cols, read_v=None) -> np.ndarray:  # noqa: D102
        v = self.info.read_v if read_v is None else read_v
        self.limits.check_read(v)
        return self.chip.read(rows, cols, v)

    def wait(self, seconds: float) -> None:
        """Let simulated time pass on the chip (relaxation proceeds; nothing is applied)."""
        self.chip.advance(check_wait_s(seconds))

    @property
    def bench_time_s(self) -> float:
        """Simulated time spent on the chip so far."""
        return self.chip.clock_s
