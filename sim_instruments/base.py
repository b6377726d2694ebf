"""The contract between the VISA simulation backend and each simulated instrument.

A simulated instrument is a Python object that receives each complete message the client
wrote (termination stripped) and returns the reply payload, if the command produces one.
Its static surface (identity, options) lives in a pyvisa-sim YAML file shipped beside it
and is consulted through :class:`StaticSurface`; the dynamic behaviour (pulses, reads,
routing) is Python acting on the bench's one :class:`~memprog.sim_instruments.chip.SimChip`.

Every message also advances the chip's simulated clock by the instrument's bus latency, so
runs report how long they would take in the lab.

Each simulator registers its kind with :func:`register`; :mod:`.instruments` imports the
built-in ones and :class:`~memprog.sim_instruments.sim_bench.SimBench` builds a bench's
instruments from the registry. This module imports no simulator, so every simulator can
import it.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from pyvisa_sim import parser

from memprog.core.errors import ConfigError
from memprog.sim_instruments.faults import FaultInjector, plan_from_options

if TYPE_CHECKING:  # pragma: no cover
    from memprog.core.bench_config import InstrumentConfig
    from memprog.sim_instruments.chip import SimChip
    from memprog.sim_instruments.sim_bench import SimBench


class StaticSurface:
    """Fixed dialogues of one instrument, read from a pyvisa-sim YAML file in this package.

    Args:
        yaml_name: file name inside ``memprog.sim_instruments`` (``spec: "1.1"``, one device).
        device: the device key in that file.
    """

    def __init__(self, yaml_name: str, device: str) -> None:
        path = importlib.resources.files("memprog.sim_instruments").joinpath(yaml_name)
        loader = parser.Loader(str(path), False)
        device_dict = loader.get_device_dict(device, None, False, parser.SPEC_VERSION_TUPLE[0])
        self._device = parser.get_device(device, device_dict, loader, {})

    def match(self, query: str) -> str | None:
        """The YAML reply to ``query``, or None if the file does not know it."""
        reply = self._device._match(query.encode())  # noqa: SLF001 - pyvisa-sim's matcher
        if reply is None or not isinstance(reply, bytes | bytearray):
            return None
        return bytes(reply).decode()


class SimulatedInstrument:
    """Base class of the simulated instruments served by the ``@memprog`` backend.

    Subclasses set :attr:`kind`, the terminations, and implement :meth:`handle`.
    ``handle`` returns ``None`` for a command without a reply, a ``str`` (the backend
    appends :attr:`read_termination`) or ``bytes`` (sent as-is plus the termination, used
    for IEEE 488.2 binary blocks).
    """

    kind: ClassVar[str] = ""
    write_termination: ClassVar[str] = "\n"  # ends each message the client writes
    read_termination: ClassVar[str] = "\n"  # appended to each reply
    latency_s: ClassVar[float] = 50e-6  # bus latency charged to the simulated clock per message

    def __init__(self, name: str, config: InstrumentConfig, bench: SimBench) -> None:
        self.name = name
        self.config = config
        self.bench = bench
        #: seeded fault injection (``options.sim_faults``; ``memprog sim serve --fault-rate``)
        self.faults = FaultInjector(plan_from_options(config.options), salt=fault_salt(name))

    @property
    def chip(self) -> SimChip:
        return self.bench.chip

    def handle(self, message: str) -> str | bytes | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def reset(self) -> None:  # noqa: B027 - optional hook
        """Return to power-on state (called on ``*RST`` or when the bench is rebuilt)."""

    def power_cycle(self) -> None:
        """A reboot (fault injection): power-on state; subclasses also forget their errors."""
        self.reset()

    def can_refuse(self, message: str) -> bool:
        """Whether ``message`` can be refused as busy (error-queue queries are always answered)."""
        return True

    def transient_error(self, message: str) -> str | bytes | None:
        """Refuse ``message`` with a transient error (fault injection); nothing is executed.

        Returns the reply the instrument gives instead (None: none). The base class has no
        error reporting, so the message is simply not answered.
        """
        return None


_REGISTRY: dict[str, type[SimulatedInstrument]] = {}


def register(kind: str) -> Callable[[type[SimulatedInstrument]], type[SimulatedInstrument]]:
    """Class decorator: make ``cls`` the simulator of instruments of ``kind``."""

    def _wrap(cls: type[SimulatedInstrument]) -> type[SimulatedInstrument]:
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return _wrap


def simulator_for(kind: str) -> type[SimulatedInstrument]:
    """The simulated-instrument class registered for ``kind``.

    The built-in simulators register when :mod:`.instruments` is imported (the bench,
    :mod:`.sim_bench`, imports it).
    """
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise ConfigError("instrument kind", kind, f"one of {sorted(_REGISTRY)}", "no simulator") from None


def fault_salt(name: str) -> int:
    """Per-instrument salt of the seeded fault injection (two instruments never fail alike)."""
    return int.from_bytes(name.encode()[:8].ljust(8, b"\0"), "little") & 0x7FFFFFFF
