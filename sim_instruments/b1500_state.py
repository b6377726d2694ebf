"""The simulated B1500A's hardware state: SMU outputs, sweep set-up, kept settings, WGFMU channels.

Why a module of its own: this state is shared by two simulators. The FLEX side
(:mod:`.b1500`) sets the SMUs and the kept settings; the simulated WGFMU library
(:mod:`.wgfmu_library`) sets :class:`WgfmuHardware` -- the hand-off between the two is
that one dict of channel states on the mainframe, which decides whether a pad is driven by
its WGFMU channel, by the SMU behind its RSU, or floats. Plain records, no behaviour
beyond expanding a sweep into its levels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from memprog.sim_instruments.b1500_flex import FlexError

# WGFMU constants (wgfmu.h) the hardware state uses; the simulator keeps its own copy
OP_DC, OP_FASTIV, OP_PG, OP_SMU = 2000, 2001, 2002, 2003
MEAS_VOLTAGE, MEAS_CURRENT = 4000, 4001
FORCE_AUTO = 3000
I_RANGE_1MA = 6004
V_RANGE_5V = 5001


@dataclass
class SmuState:
    """One SMU: output relay, source mode and value, compliance, ranges (``DV``/``DI``/``CN``...)."""

    enabled: bool = False
    mode: str = "V"  # "V" voltage source, "I" current source
    value: float = 0.0
    compliance: float | None = None
    range_code: int = 0
    cmm: int = 0
    ri: int = 0


@dataclass
class WgfmuHardware:
    """What a WGFMU channel is doing right now (set by the simulated library)."""

    mode: int = OP_SMU
    force_range: int = FORCE_AUTO
    measure_mode: int = MEAS_VOLTAGE
    current_range: int = I_RANGE_1MA
    voltage_range: int = V_RANGE_5V
    connected: bool = False
    level_v: float = 0.0

    @property
    def drives(self) -> bool:
        """True when the channel's own output drives its probe."""
        return self.connected and self.mode in (OP_DC, OP_FASTIV, OP_PG)


@dataclass
class SweepSetup:
    """The staircase sweep source set by ``WV`` (played by ``MM 2`` + ``XE``)."""

    channel: int
    mode: int
    range_code: int
    start: float
    stop: float
    steps: int
    icomp: float | None
    pcomp: float | None

    def levels(self) -> np.ndarray:
        if self.mode in (1, 3):
            up = np.linspace(self.start, self.stop, self.steps)
        else:
            if self.start == 0 or self.stop == 0 or self.start * self.stop < 0:
                raise FlexError(120, "log sweep needs start and stop of one sign")
            up = np.geomspace(self.start, self.stop, self.steps)
        return np.concatenate([up, up[::-1]]) if self.mode in (3, 4) else up


@dataclass
class FlexSettings:
    """Settings FLEX keeps between commands (formats, averaging, timing, ``MM``), for ``*LRN?``."""

    fmt: tuple[int, int] = (1, 0)
    av: tuple[int, int] = (1, 0)
    az: int = 1
    mm: tuple[int, list[int]] | None = None
    wt: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)
    wm: tuple[int, int] = (1, 1)
    sweep: SweepSetup | None = None
    filters: dict[int, int] = field(default_factory=dict)
    acknowledged: dict[str, str] = field(default_factory=dict)
