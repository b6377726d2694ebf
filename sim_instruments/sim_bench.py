"""One simulated bench: the chip and the simulated instruments wired to it.

Why a module of its own: the bench is built from the whole registry of simulators (it
imports :mod:`.instruments`, which imports every built-in simulator), while each simulator
imports only the contract in :mod:`.base`; keeping the two apart keeps the arrows one way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memprog.core.errors import ConfigError
from memprog.sim_instruments import instruments  # noqa: F401 - registers the built-in simulators
from memprog.sim_instruments.base import SimulatedInstrument, simulator_for
from memprog.sim_instruments.chip_state import open_chip, release_chip

if TYPE_CHECKING:  # pragma: no cover
    from memprog.core.bench_config import BenchConfig


class SimBench:
    """One simulated bench: a chip and the simulated instruments wired to it.

    The chip is non-volatile (:mod:`.chip_state`): the same chip id and seed reopen the
    state the last process left; :meth:`close` releases it for other processes.

    Built by the VISA backend from the bench file. Instruments find each other through
    :meth:`instrument` (the simulated 4200 asks the simulated 707B what is closed).
    Non-VISA libraries (the WGFMU) get their state from here too.
    """

    def __init__(self, config: BenchConfig) -> None:
        self.config = config
        c = config.chip
        technology = c.device_params() if c.sim_params else c.technology
        # non-volatile: the chip's stored state if it has one (chip_state); ChipInUseError
        # while another process holds it
        self.chip = open_chip(
            c.rows, c.cols, technology, seed=c.seed, chip_id=c.id, technology_name=c.technology,
            bias_scheme=c.bias_scheme, read_scheme=c.read_scheme,
        )
        self._closed = False
        self.chip.technology = c.technology  # the preset it derives from, as the chip reports it
        self.instruments: dict[str, SimulatedInstrument] = {}
        self.by_resource: dict[str, SimulatedInstrument] = {}
        for name, inst_cfg in config.instruments.items():
            if not inst_cfg.simulated:
                continue
            if inst_cfg.kind == "wgfmu":
                continue  # served as a library object, not a VISA resource
            sim = simulator_for(inst_cfg.kind)(name, inst_cfg, self)
            self.instruments[name] = sim
            self.by_resource[_normalise(inst_cfg.resource)] = sim
        self.extras: dict[str, Any] = {}

    def close(self) -> None:
        """Let go of the chip: its state stays in its file, the lock goes with the last user."""
        if not self._closed:
            self._closed = True
            release_chip(self.chip)

    def instrument(self, kind: str) -> SimulatedInstrument:
        """The bench's simulated instrument of ``kind``; ConfigError if the bench has none."""
        for sim in self.instruments.values():
            if sim.kind == kind:
                return sim
        raise ConfigError("simulated instrument", kind, f"one of {[s.kind for s in self.instruments.values()]}")

    def find(self, resource: str) -> SimulatedInstrument | None:
        """The simulated instrument at a VISA resource string (case-insensitive)."""
        return self.by_resource.get(_normalise(resource))


def _normalise(resource: str) -> str:
    return resource.strip().upper()
