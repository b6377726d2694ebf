"""Simulated chip physics and simulated instruments speaking the real command languages."""

from memprog.core.device_params import DeviceParams, Effects
from memprog.core.presets import PRESETS, get_preset
from memprog.sim_instruments.chip import SimChip

__all__ = ["SimChip", "DeviceParams", "Effects", "PRESETS", "get_preset"]
