"""Simulated chip physics and simulated instruments speaking the real command languages."""

from .chip import SimChip
from .device_params import DeviceParams, Effects
from .presets import PRESETS, get_preset

__all__ = ["SimChip", "DeviceParams", "Effects", "PRESETS", "get_preset"]
