"""Instrument drivers (floor 1): each instrument in its own command language — FLEX for the
B1500A (``b1500``, ``flex_commands``), KXCI for the 4200A-SCS (``keithley4200``,
``kxci_commands``), TSP for the 707B (``keithley707b``, ``tsp_commands``), the WGFMU library
calls through ctypes (``wgfmu``, ``wgfmu_*``) and the on-chip controller protocol
(``onchip`` with its parts ``onchip_*``) — over pyvisa (``transport``). The ``*_programmer``
modules put a stack of drivers behind the protocols' ``CellProgrammer`` interface.

Imports :mod:`memprog.core` and :mod:`memprog.protocols` (the interface) only; never the
simulator, and no simulation branch: the VISA library string or the library object changes,
the driver does not. Every driver checks the chip's limits before anything is sent.
"""
