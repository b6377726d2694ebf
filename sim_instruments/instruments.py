"""Imports every built-in simulated instrument so each registers its kind."""

from __future__ import annotations

import importlib

_MODULES = ("onchip_controller", "k4200", "k707b", "b1500")

for _name in _MODULES:
    try:
        importlib.import_module(f"memprog.sim_instruments.{_name}")
    except ModuleNotFoundError as exc:  # a simulator not written yet
        if exc.name != f"memprog.sim_instruments.{_name}":
            raise
