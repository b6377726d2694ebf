"""Open a bench file: connected instruments plus the CellProgrammer that drives the chip.

    with memprog.open_bench("benches/sim_onchip.yaml") as bench:
        g = bench.programmer.read([0, 0], [0, 1])

The bench file decides everything: which VISA library each instrument uses (``@memprog``
for the simulator of that same file, ``@py``/``@ivi`` for the lab), how the chip is wired,
and which stack builds the programmer. Leaving the ``with`` block, normally or by an
exception, calls every driver's ``safe_state()`` (sources to 0 V, matrix open) and closes
the connections.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyvisa

from memprog.core.bench_config import SIM_LIBRARY, BenchConfig, InstrumentConfig, load_bench_config
from memprog.core.errors import ConfigError, InstrumentError
from memprog.core.safe_steps import run_safe_steps
from memprog.drivers import b1500_programmer, crossbar_programmer, onchip_programmer
from memprog.drivers.stack_options import programmer_options
from memprog.drivers.transport import LinkError, VisaTransport
from memprog.protocols.programmer import CellProgrammer
from memprog.sim_instruments.remote_clock import RemoteClock
from memprog.sim_instruments.wgfmu_library import SimWgfmuLibrary
from memprog.sim_instruments.wgfmu_remote import RemoteWgfmuLibrary

_NAME_ERRORS = (-1073807342, -1073807343)  # VI_ERROR_INV_RSRC_NAME, VI_ERROR_RSRC_NFOUND


class ConnectionFailed(InstrumentError):
    """An instrument could not be reached: one line naming it, its resource and the cause."""

    def __init__(self, name: str, resource: str, cause: str) -> None:
        cause = " ".join(str(cause).split())[:300]
        super().__init__(name, -1, f"cannot connect to {resource}: {cause}", "open")
        self.resource = resource
        self.cause = cause


# stack name -> the driver function building (instruments, programmer) from a StackContext
STACK_BUILDERS: dict[str, Callable[[StackContext], tuple[dict[str, Any], CellProgrammer]]] = {
    "onchip": onchip_programmer.build_stack,
    "k4200_707b": crossbar_programmer.build_stack,
    "b1500_wgfmu": b1500_programmer.build_stack,
}

# stack name -> the model of its ``programmer.options``
STACK_OPTIONS: dict[str, type] = {
    "onchip": onchip_programmer.OnChipStackOptions,
    "k4200_707b": crossbar_programmer.CrossbarOptions,
    "b1500_wgfmu": b1500_programmer.B1500WgfmuOptions,
}


def check_stack_options(config: BenchConfig, bench_path: Path) -> None:
    """``programmer.options`` checked by the stack's own model, as opening the bench does.

    Why before anything connects: ``bench check`` promises the answer before a run, and a
    command refuses a misspelt option before it creates a stored run. The error names the
    file and the bench-file field (``sim_onchip.yaml: programmer.options.retrys``).
    """
    try:
        programmer_options(STACK_OPTIONS[config.programmer.stack], config.programmer.options)
    except ConfigError as exc:
        raise ConfigError(f"{bench_path.name}: {exc.parameter}", exc.value, exc.allowed, exc.detail) from exc


@dataclass
class StackContext:
    """Everything a stack builder needs, and nothing that would tie a driver to the simulator.

    Attributes:
        config: the validated bench file.
        bench_path: where it was read from.
    """

    config: BenchConfig
    bench_path: Path
    _managers: dict[str, Any] = field(default_factory=dict)
    _opened: list[Any] = field(default_factory=list)
    _remote_clock: Any = None
    _closed: bool = False
    _clock_origin_s: float | None = None

    def visa_library_string(self, inst: InstrumentConfig) -> str:
        """The pyvisa library string for an instrument (``@memprog`` -> ``PATH@memprog``)."""
        if inst.visa_library == SIM_LIBRARY:
            return f"{self.bench_path}{SIM_LIBRARY}"
        return inst.visa_library

    def resource_manager(self, inst: InstrumentConfig) -> Any:
        lib = self.visa_library_string(inst)
        if lib not in self._managers:
            try:
                self._managers[lib] = pyvisa.ResourceManager(lib)
            except ConfigError:
                raise  # the simulator's own complaint about the bench file: already precise
            except (OSError, ValueError) as exc:
                names = [n for n, i in self.config.instruments.items() if i is inst]
                where = f"instruments.{names[0]}." if names else ""
                raise ConfigError(
                    f"{where}visa_library",
                    inst.visa_library,
                    "an installed VISA library ('@py': pip install pyvisa-py; "
                    "'@ivi': NI-VISA or Keysight IO Libraries)",
                    " ".join(str(exc).split()),
                ) from exc
            self.sim_clock_s()  # a simulated chip's clock starts counting for this bench here
        return self._managers[lib]

    def open_resource(self, name: str) -> Any:
        """Open the pyvisa resource of instrument ``name`` with its timeout set."""
        inst = self._instrument(name)
        rm = self.resource_manager(inst)
        try:
            res = rm.open_resource(inst.resource, timeout=inst.timeout_ms)
        except ConfigError:
            raise
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code in _NAME_ERRORS:  # the bench file names no such resource
                raise ConfigError(
                    f"instruments.{name}.resource", inst.resource, "a resource the VISA library can open", exc.description
                ) from exc
            raise ConnectionFailed(name, inst.resource, exc.description) from exc
        except Exception as exc:  # noqa: BLE001 - refused socket, bad name, missing GPIB driver
            raise ConnectionFailed(name, inst.resource, f"{type(exc).__name__}: {exc}") from exc
        self._opened.append(res)
        return res

    def transport(self, name: str, read_termination: str, write_termination: str) -> Any:
        """A :class:`~memprog.drivers.transport.VisaTransport` to instrument ``name``."""
        res = self.open_resource(name)
        res.read_termination = read_termination
        res.write_termination = write_termination
        # a lost connection is reopened by the transport (same terminations and timeout)
        return VisaTransport(res, name, reopen=lambda: self.open_resource(name))

    def library(self, name: str) -> Any:
        """The vendor library object of instrument ``name`` (the WGFMU library).

        ``library: "@memprog"`` gives the simulator's library object on this bench's chip;
        a path gives ``None`` here and the driver loads the real library with ctypes.
        """
        inst = self._instrument(name)
        if inst.library is not None and inst.library.startswith("tcp://"):
            # memprog sim serve: the simulated library's calls cross a socket
            try:
                lib = RemoteWgfmuLibrary(inst.library, timeout_s=inst.timeout_ms / 1000)
            except ConfigError as exc:  # nothing serves it: a connection error naming it
                raise ConnectionFailed(name, inst.library, exc.detail or str(exc)) from exc
            self.on_close(lib)
            return lib
        if inst.library == SIM_LIBRARY or (inst.library is None and inst.simulated):
            rm = self.resource_manager(inst)
            return SimWgfmuLibrary(rm.visalib.ensure_bench())
        return None

    def has_library(self, name: str) -> bool:
        """Whether instrument ``name`` has a vendor library to load: a path or ``tcp://`` in the
        bench file, or the simulator's (``@memprog``, or none given on a simulated instrument).
        Checked before anything is loaded, so a bench that lacks it is refused first."""
        inst = self._instrument(name)
        return bool(inst.library) or (inst.library is None and inst.simulated)

    def on_close(self, closer: Any) -> None:
        """Register something with a ``close()`` (a vendor-library session) to close with the bench.

        Closers run in reverse order of registration, after the bench's safe state, together
        with the VISA resources; a failing closer does not stop the others.
        """
        if not callable(getattr(closer, "close", None)):
            raise TypeError(f"on_close needs an object with close(), got {type(closer).__name__}")
        self._opened.append(closer)

    def _instrument(self, name: str) -> InstrumentConfig:
        try:
            return self.config.instruments[name]
        except KeyError:
            raise ConfigError("instrument", name, f"one of {sorted(self.config.instruments)}") from None

    def close(self) -> None:
        for res in reversed(self._opened):
            try:
                res.close()
            except Exception:  # noqa: BLE001 - closing must go on
                pass
        self._opened.clear()
        for rm in self._managers.values():
            try:
                rm.close()
            except Exception:  # noqa: BLE001
                pass
        self._managers.clear()
        self._remote_clock = None
        self._closed = True

    def sim_clock_s(self) -> float | None:
        """Simulated bench time since this bench first reached its simulator, else None.

        In-process (``@memprog``) the chip's clock is read directly; a bench served by
        ``memprog sim serve`` names its chip's clock in ``options.sim_clock`` (written by
        ``--write-bench``), read over loopback, so both paths report the clock of the chip
        that did the work (wall time over sockets is not bench time: nothing sleeps there).
        Counted from this bench's first contact, as a lab bench counts from its opening:
        a non-volatile chip's clock keeps running across processes and servers, and the
        time this bench spent must not depend on what the chip did before.
        """
        raw = self._raw_sim_clock_s()
        if raw is None:
            return None
        if self._clock_origin_s is None:
            self._clock_origin_s = raw
        return raw - self._clock_origin_s

    def _raw_sim_clock_s(self) -> float | None:
        """The simulated chip's own clock (it keeps running across reopens), else None."""
        for rm in self._managers.values():
            clock = getattr(rm.visalib, "sim_clock_s", None)
            if callable(clock):
                return float(clock())
        if self._closed:
            return None
        if self._remote_clock is None:
            address = next(
                (i.options["sim_clock"] for i in self.config.instruments.values() if "sim_clock" in i.options),
                None,
            )
            if address is None:
                return None
            self._remote_clock = RemoteClock(str(address))
            self._opened.insert(0, self._remote_clock)  # closed last, after the safe state
        return self._remote_clock.clock_s()


class Bench:
    """An open bench: ``instruments`` by name, ``programmer``, and the bench clock."""

    def __init__(self, config: BenchConfig, path: Path, ctx: StackContext, instruments: dict[str, Any], programmer: CellProgrammer) -> None:
        self.config = config
        self.path = path
        self.instruments = instruments
        self.programmer = programmer
        self._ctx = ctx
        self._t0 = time.perf_counter()
        self._closed = False

    @property
    def simulated(self) -> bool:
        """True when every instrument is served by the simulator."""
        return all(i.simulated for i in self.config.instruments.values())

    @property
    def bench_time_s(self) -> float:
        """Time the bench has spent since it was opened: the simulated chip's clock on a
        simulator (in-process or served by ``memprog sim serve``), wall time in the lab."""
        sim = self._ctx.sim_clock_s()
        return sim if sim is not None else time.perf_counter() - self._t0

    @property
    def sim_bench(self) -> Any:
        """The simulated bench (chip and instruments, truth for tests); None in the lab."""
        for rm in self._ctx._managers.values():
            ensure = getattr(rm.visalib, "ensure_bench", None)
            if callable(ensure):
                return ensure()
        return None

    @property
    def sim_chip(self) -> Any:
        """The simulated chip behind a simulated bench (truth for tests); None in the lab."""
        for rm in self._ctx._managers.values():
            ensure = getattr(rm.visalib, "ensure_bench", None)
            if callable(ensure):
                return ensure().chip
        return None

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` of bench time pass (Contract C): the programmer's instrument-side wait.

        On a simulated bench the simulated clock advances by ``seconds``; in the lab the
        instruments wait for real. ``bench_time_s`` includes the wait either way.
        """
        self.programmer.wait(seconds)

    def safe_state(self) -> None:
        """Every instrument to its safe state (0 V, outputs off, matrix open)."""
        steps = [getattr(inst, "safe_state", None) for inst in self.instruments.values()]
        run_safe_steps(*(fn for fn in steps if callable(fn)))

    def close(self) -> None:
        """Leave everything safe and close every connection (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.safe_state()
        finally:
            self._ctx.close()

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.close()
        except (InstrumentError, OSError):
            if exc_type is None:
                raise


def open_bench(path: str | Path) -> Bench:
    """Load and validate a bench file, connect its instruments and build its programmer."""
    config, bench_path = load_bench_config(path)
    ctx = StackContext(config, bench_path)
    try:
        builder = STACK_BUILDERS[config.programmer.stack]
    except KeyError:
        raise ConfigError("programmer.stack", config.programmer.stack, f"one of {sorted(STACK_BUILDERS)}") from None
    try:
        instruments, programmer = builder(ctx)
    except ConfigError as exc:
        ctx.close()
        if exc.parameter.startswith(bench_path.name):
            raise
        # one line that says which file, then which field
        raise ConfigError(
            f"{bench_path.name}: {exc.parameter}", exc.value, exc.allowed, exc.detail
        ) from exc
    except InstrumentError as exc:
        ctx.close()
        inst = config.instruments.get(exc.instrument)
        if isinstance(exc, LinkError) and inst is not None:  # could not talk to it at all
            raise ConnectionFailed(exc.instrument, inst.resource, exc.message) from exc
        raise
    except BaseException:
        ctx.close()
        raise
    return Bench(config, bench_path, ctx, instruments, programmer)
