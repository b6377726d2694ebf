"""The simulated bench (floor 1): a physics-backed chip and simulated instruments that answer
in each instrument's own command language (FLEX, KXCI, TSP, the WGFMU library calls, the
on-chip controller protocol), reached through the ``…@memprog`` pyvisa backend or over
loopback sockets (``memprog sim serve``).

Imports only :mod:`memprog.core` (the technology presets and ``DeviceParams`` live there:
they describe a chip, not a simulator). Never imported by drivers or protocols. The public
entry for scripts is :class:`SimChip` with the :class:`Effects` it can switch on.
"""

from memprog.core.device_params import Effects
from memprog.sim_instruments.chip import SimChip

__all__ = ["SimChip", "Effects"]
