"""Imports every built-in simulated instrument so each registers its kind (see base.register)."""

from memprog.sim_instruments import b1500, k707b, k4200, onchip_controller  # noqa: F401
