"""Keithley 4200A-SCS parameter analyzer over KXCI: SMUs (user and system mode), 4225-PMU
pulses and KULT user libraries.

The driver holds a :class:`~memprog.drivers.transport.Transport` and nothing else: in the lab
it is a VISA session (GPIB, or LAN ``TCPIP0::<ip>::1225::SOCKET`` with NUL terminations), on
the simulated bench the same VISA session served by ``@memprog``, in protocol tests the
exact-string fake. Every command is a query: KXCI answers ``ACK`` to commands without data,
so a rejected command is noticed at once (:class:`~memprog.core.errors.InstrumentError`), not
three commands later.

Readings keep their data status: :meth:`Keithley4200.measure_current` returns a
:class:`~memprog.drivers.kxci_commands.Reading`; :meth:`Keithley4200.current` returns a
float only for a normal reading and raises
:class:`~memprog.drivers.kxci_commands.KxciStatusError` on compliance, overflow or
oscillation (mapping in :data:`~memprog.drivers.kxci_commands.STATUS`).

Usage::

    k = Keithley4200(transport, limits=bench_limits)
    k.connect()                                  # *OPT?, BC, US
    k.source_voltage(1, 0.2, compliance_a=1e-3)  # DV1,0,0.2,0.001 -> ACK
    i = k.current(2)                             # TI2 -> NAI-4.0E-05 -> -4.0e-05
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from memprog.core.errors import ConfigError, InstrumentError, ProtocolError, SafetyError
from memprog.core.limits import SafetyLimits
from memprog.core.validation import MemprogModel
from memprog.drivers import kxci_commands as kx
from memprog.drivers.kxci_commands import Reading
from memprog.drivers.transport import LinkError, Transport

#: the code of a command refused as busy and not executed (our simulator's [choice]; the
#: crossbar stack treats it as transient too)
BUSY_CODE = -990


class Keithley4200Settings(MemprogModel):
    """Timing of the waits the driver does on the bench (wall clock)."""

    name: str = Field(default="4200A-SCS", min_length=1, description="name used in errors")
    pmu_poll_interval_s: float = Field(default=1e-3, gt=0, le=10)
    pmu_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    sweep_poll_interval_s: float = Field(default=0.05, gt=0, le=10)
    sweep_timeout_s: float = Field(default=300.0, gt=0, le=36000)
    link: Literal["lan", "gpib"] = Field(
        default="lan",
        description="lan: KXCI answers ACK to every command; gpib: no ACK, errors by serial poll",
    )


@dataclass(frozen=True)
class SweepResult:
    """A system-mode voltage sweep: forced voltage and measured current per step.

    ``current_a`` is NaN wherever the reading's status forbids a number; ``status`` keeps
    the letter of every step so the caller can see why.
    """

    voltage_v: np.ndarray
    current_a: np.ndarray
    status: np.ndarray

    @property
    def flags(self) -> set[str]:
        """memprog flag names of the non-normal statuses that occurred."""
        return {kx.STATUS[s][0] for s in self.status.tolist() if s != "N"}


class Keithley4200:
    """KXCI driver of a 4200A-SCS.

    Args:
        transport: the connection (termination handled by the transport).
        limits: the chip's safety limits; every voltage that can reach the chip and every
            compliance is checked before it is sent. ``None`` only for bench-less use.
        settings: wall-clock polling settings.
    """

    def __init__(
        self,
        transport: Transport,
        limits: SafetyLimits | None = None,
        settings: Keithley4200Settings | None = None,
    ) -> None:
        self.transport = transport
        self.limits = limits
        self.settings = settings or Keithley4200Settings()
        self.cards: list[str] = []
        self.smus: list[int] = []
        self.pmu_channels: list[int] = []
        self._mode: str | None = None
        #: per PMU channel: DUT load (ohm) and source range (V) as last sent (power-on values)
        self.pmu_loads: dict[int, float] = {}
        self.pmu_ranges: dict[int, int] = {}
        #: bumped whenever the driver changes source states wholesale (connect, PMU init,
        #: a system-mode test, a user module, safe_state): callers caching levels re-sync
        self.epoch = 0

    @property
    def name(self) -> str:
        return self.settings.name

    # ------------------------------------------------------------------ plumbing
    def _query(self, command: str) -> str:
        return self.transport.query(command)

    def _command(self, command: str) -> None:
        """Send a command without data: ``ACK`` over LAN; over GPIB KXCI sends nothing, so
        the status byte is read by serial poll and its syntax-error bit checked."""
        if self.settings.link == "lan":
            kx.check_ack(self._query(command), command, self.name)
            return
        self.transport.write(command)
        stb = self.transport.read_stb()  # type: ignore[attr-defined]
        if stb & kx.STB_SYNTAX_ERROR:
            raise InstrumentError(
                self.name, kx.STB_SYNTAX_ERROR, "syntax error bit set in the status byte", command
            )

    def _ensure_mode(self, mode: str) -> None:
        if self._mode == mode:
            return
        cmd = {"user": kx.user_mode(), "ul": kx.user_library()}[mode]
        self._command(cmd)
        self._mode = mode

    def _smu(self, ch: int) -> int:
        if isinstance(ch, bool) or not isinstance(ch, (int, np.integer)):
            raise ConfigError("smu", ch, "an SMU number")
        if self.smus and int(ch) not in self.smus:
            raise ConfigError("smu", ch, f"one of the installed SMUs {self.smus}")
        return int(ch)

    def _pmu(self, ch: int) -> int:
        if isinstance(ch, bool) or not isinstance(ch, (int, np.integer)):
            raise ConfigError("pmu channel", ch, "a PMU channel number 1-4")
        if self.cards and int(ch) not in self.pmu_channels:
            raise ConfigError(
                "pmu channel", ch, f"one of the installed PMU channels {self.pmu_channels}"
            )
        return int(ch)

    def _check_voltage(self, name: str, voltage_v: float) -> float:
        v = kx.sent_value(voltage_v)
        if self.limits is not None:
            self.limits.check_voltage(name, v)
        return v

    def _check_compliance(self, compliance_a: float) -> float:
        c = kx.sent_value(compliance_a)
        if self.limits is not None and not 0 < c <= self.limits.current_compliance_a:
            raise SafetyError("compliance_a", c, f"(0, {self.limits.current_compliance_a:g}] A")
        return c

    # ------------------------------------------------------------------ session
    def connect(self) -> list[str]:
        """Discover the cards (``*OPT?``), clear the buffer (``BC``) and enter user mode."""
        reply = self._query(kx.options())
        self.cards = kx.parse_options(reply)
        set_marker = getattr(self.transport, "set_marker", None)
        if callable(set_marker):  # *OPT?'s reply marks the end of stale replies after a timeout
            set_marker(kx.options(), reply)
        self.smus = kx.smus_from_options(self.cards)
        self.pmu_channels = [
            2 * (c - 1) + n for c in kx.pmus_from_options(self.cards) for n in (1, 2)
        ]
        self._command("BC")
        self._mode = None
        self.epoch += 1
        self._ensure_mode("user")
        return self.cards

    def identity(self) -> str:
        """``*IDN?``."""
        reply = self._query("*IDN?")
        kx.raise_if_error(reply, "*IDN?", self.name)
        return reply.strip()

    def status_byte(self) -> int:
        """``SP``: the status byte (1 data ready, 2 syntax error, 16 busy)."""
        return kx.parse_status_byte(self._query(kx.status_poll()))

    # ------------------------------------------------------------------ user mode (SMU)
    def source_voltage(
        self, smu: int, voltage_v: float, compliance_a: float, range_code: int = 0
    ) -> None:
        """Set an SMU to force ``voltage_v`` with a current compliance (``DV``)."""
        ch = self._smu(smu)
        v = self._check_voltage("voltage_v", voltage_v)
        c = self._check_compliance(compliance_a)
        self._ensure_mode("user")
        self._command(kx.dv(ch, range_code, v, c))

    def source_current(
        self, smu: int, current_a: float, compliance_v: float, range_code: int = 0
    ) -> None:
        """Set an SMU to force ``current_a`` with a voltage compliance (``DI``).

        The compliance is the largest voltage the SMU may reach, so it is checked against
        the chip's limits like a forced voltage.
        """
        ch = self._smu(smu)
        i = kx.sent_value(current_a)
        if self.limits is not None and abs(i) > self.limits.current_compliance_a:
            raise SafetyError("current_a", i, f"|I| <= {self.limits.current_compliance_a:g} A")
        comp = self._check_voltage("compliance_v", compliance_v)
        self._ensure_mode("user")
        self._command(kx.di(ch, range_code, i, comp))

    def output_off(self, smu: int) -> None:
        """Turn an SMU off (``DVch``)."""
        ch = self._smu(smu)
        self._ensure_mode("user")
        self._command(kx.output_off(ch))

    def measure_current(self, smu: int) -> Reading:
        """Trigger a current reading (``TI``); the status is kept, never dropped."""
        ch = self._smu(smu)
        self._ensure_mode("user")
        cmd = kx.ti(ch)
        return kx.parse_reading(self._query(cmd), self.name)

    def measure_voltage(self, smu: int) -> Reading:
        """Trigger a voltage reading (``TV``)."""
        ch = self._smu(smu)
        self._ensure_mode("user")
        cmd = kx.tv(ch)
        return kx.parse_reading(self._query(cmd), self.name)

    def current(self, smu: int) -> float:
        """Measure the current (A); KxciStatusError on compliance/overflow/oscillation."""
        return self.measure_current(smu).checked(kx.ti(smu), self.name)

    def voltage(self, smu: int) -> float:
        """Measure the voltage (V); KxciStatusError on compliance/overflow/oscillation."""
        return self.measure_voltage(smu).checked(kx.tv(smu), self.name)

    # ------------------------------------------------------------------ system mode (sweeps)
    def sweep_voltage(
        self,
        smu: int,
        start_v: float,
        stop_v: float,
        step_v: float,
        compliance_a: float,
        constant_v: dict[int, float] | None = None,
        hold_s: float = 0.0,
        delay_s: float = 0.0,
    ) -> SweepResult:
        """A linear VAR1 voltage sweep on ``smu`` (system mode), current measured at each step.

        Other SMUs in ``constant_v`` hold a constant voltage. Data come back with ``DO`` so
        every step keeps its status; the driver returns to user mode afterwards.
        """
        ch = self._smu(smu)
        consts = {self._smu(k): v for k, v in (constant_v or {}).items()}
        if ch in consts:
            raise ConfigError("constant_v", ch, "SMUs other than the swept one")
        for v in (start_v, stop_v):
            self._check_voltage("sweep voltage", v)
        for v in consts.values():
            self._check_voltage("constant_v", v)
        comp = self._check_compliance(compliance_a)
        v_name, i_name = f"V{ch}", f"I{ch}"
        self.epoch += 1
        cmds = [kx.channel_definition(), kx.ch(ch, v_name, i_name, 1, 1)]
        cmds += [kx.ch(k, f"V{k}", f"I{k}", 1, 3) for k in sorted(consts)]
        cmds += [kx.source_setup(), kx.vr(start_v, stop_v, step_v, comp)]
        cmds += [kx.vc(k, consts[k], comp) for k in sorted(consts)]
        cmds += [kx.hold_time(hold_s), kx.delay_time(delay_s)]
        lo, hi = sorted((start_v, stop_v))
        cmds += [kx.measurement_setup(), kx.display_graph(), kx.x_axis(v_name, lo, hi)]
        cmds += [kx.y_axis(i_name, -comp, comp), kx.measurement_control()]
        self._mode = "system"
        for c in cmds:
            self._command(c)
        self._command(kx.measure_run())
        deadline = time.monotonic() + self.settings.sweep_timeout_s
        while True:
            stb = self.status_byte()
            if stb & kx.STB_SYNTAX_ERROR:
                raise InstrumentError(
                    self.name, kx.STB_SYNTAX_ERROR, "syntax error bit set in the status byte", "ME1"
                )
            if not stb & kx.STB_BUSY:
                break
            if time.monotonic() > deadline:
                raise InstrumentError(
                    self.name, -1, f"sweep still busy after {self.settings.sweep_timeout_s} s", "SP"
                )
            time.sleep(self.settings.sweep_poll_interval_s)
        v_read = kx.parse_data_output(self._query(kx.data_output(v_name)), self.name)
        i_read = kx.parse_data_output(self._query(kx.data_output(i_name)), self.name)
        if len(v_read) != len(i_read):
            raise InstrumentError(
                self.name, -1, f"{len(v_read)} voltages but {len(i_read)} currents", "DO"
            )
        status = np.array([r.status for r in i_read], dtype="<U1")
        cur = np.array([r.value if r.valid else np.nan for r in i_read], dtype=float)
        volt = np.array([r.value for r in v_read], dtype=float)
        self._ensure_mode("user")
        return SweepResult(volt, cur, status)

    def read_data(self, name: str, index: int) -> float:
        """``RD 'name',index``: one value of a data column of the last system-mode test."""
        cmd = kx.read_data(name, index)
        return kx.parse_value(self._query(cmd), cmd, self.name)

    # ------------------------------------------------------------------ user libraries (KULT)
    def execute_module(
        self, library: str, module: str, args: tuple[object, ...] | list[object] = ()
    ) -> int:
        """``UL`` then ``EX library module(args)``; returns the module's return value.

        ``None`` in ``args`` leaves an output-array argument empty (fetch it with
        :meth:`get_param`). Modules drive the hardware themselves, so only call modules
        whose voltages you have checked against the chip's limits.
        """
        cmd = kx.ex(library, module, args)
        self.epoch += 1
        self._ensure_mode("ul")
        return kx.parse_return_value(self._query(cmd), cmd, self.name)

    def get_param(self, position: int, count: int) -> np.ndarray:
        """``GP position count``: an output parameter of the last module, by position."""
        cmd = kx.gp(position, count)
        return kx.parse_param_values(self._query(cmd), cmd, self.name)

    def get_param_by_name(self, name: str, count: int) -> np.ndarray:
        """``GN name count``: an output parameter of the last module, by name."""
        cmd = kx.gn(name, count)
        return kx.parse_param_values(self._query(cmd), cmd, self.name)

    # ------------------------------------------------------------------ 4225-PMU
    def pmu_init(self, mode: int = 0) -> None:
        """``:PMU:INIT``: reset every PMU channel (0 standard pulse mode)."""
        self.epoch += 1
        self._command(kx.pmu_init(mode))
        self.pmu_loads.clear()
        self.pmu_ranges.clear()

    def pmu_load(self, ch: int, load_ohm: float) -> None:
        """``:PMU:LOAD``: the DUT resistance the channel's 50 ohm source is corrected for."""
        c = self._pmu(ch)
        self._command(kx.pmu_load(c, load_ohm))
        self.pmu_loads[c] = kx.sent_value(load_ohm)

    def pmu_source_range(self, ch: int, range_v: int) -> None:
        """``:PMU:SOURCE:RANGE``: 10 V or 40 V source range."""
        c = self._pmu(ch)
        self._command(kx.pmu_source_range(c, range_v))
        self.pmu_ranges[c] = range_v

    def pmu_device_voltage(self, ch: int, level_v: float) -> float:
        """The largest voltage a device on channel ``ch`` can see for a programmed level."""
        return kx.pmu_device_voltage_max(level_v, self.pmu_loads.get(ch, 1e6))

    def pmu_configure_rpm(self, terminal: str, mode: int = 0) -> None:
        """``:PMU:RPM:CONFIGURE``: connect the RPM of ``terminal`` (``PMU1-1``) to the PMU (0)."""
        self._command(kx.pmu_rpm_configure(terminal, mode))

    def pmu_measure_mode(self, mode: int) -> None:
        """``:PMU:MEASURE:MODE`` (1 spot mean, 2 waveform)."""
        self._command(kx.pmu_measure_mode(mode))

    def pmu_pulse_train(self, ch: int, base_v: float, amplitude_v: float) -> None:
        """``:PMU:PULSE:TRAIN``: pulses from ``base_v`` up to ``amplitude_v`` on channel ``ch``.

        Both levels reach the chip, so both are checked against the limits first.
        """
        c = self._pmu(ch)
        b = self._check_voltage("base_v", base_v)
        a = self._check_voltage("amplitude_v", amplitude_v)
        rng = self.pmu_ranges.get(c, 10)
        for what, level in (("base_v", b), ("amplitude_v", a)):
            at_device = self.pmu_device_voltage(c, level) if c in self.pmu_loads else level
            if at_device != level:  # the 50 ohm source corrected for the load: check that
                self._check_voltage(f"{what} at the device (load {self.pmu_loads.get(c, 1e6):g} ohm)", at_device)
            if abs(at_device) > rng:
                raise SafetyError(what, level, f"|V| <= {rng} V (source range of PMU channel {c})")
        self._command(kx.pmu_pulse_train(c, b, a))

    def pmu_pulse_times(
        self, ch: int, period_s: float, width_s: float, rise_s: float, fall_s: float
    ) -> None:
        """``:PMU:PULSE:TIMES`` (width at half maximum); the width is checked against the limits."""
        c = self._pmu(ch)
        w = kx.sent_value(width_s)
        if self.limits is not None:
            self.limits.check_pulse(0.0, w)
        self._command(kx.pmu_pulse_times(c, period_s, w, rise_s, fall_s))

    def pmu_burst_count(self, count: int) -> None:
        """``:PMU:PULSE:BURST:COUNT``: pulses per execution."""
        self._command(kx.pmu_burst_count(count))

    def pmu_output(self, ch: int, on: bool) -> None:
        """``:PMU:OUTPUT:STATE``: connect (at the base level) or disconnect a channel."""
        self._command(kx.pmu_output_state(self._pmu(ch), on))

    def pmu_execute(self, wait: bool = True) -> None:
        """``:PMU:EXECUTE``, then poll ``:PMU:TEST:STATUS?`` until idle (if ``wait``)."""
        self._command(kx.pmu_execute())
        if wait:
            self.pmu_wait()

    def pmu_wait(self) -> None:
        """Poll ``:PMU:TEST:STATUS?`` until 0; InstrumentError after the timeout."""
        deadline = time.monotonic() + self.settings.pmu_timeout_s
        cmd = kx.pmu_test_status()
        while kx.parse_test_status(self._query(cmd), self.name) != 0:
            if time.monotonic() > deadline:
                raise InstrumentError(
                    self.name,
                    -1,
                    f"PMU test still running after {self.settings.pmu_timeout_s} s",
                    cmd,
                )
            time.sleep(self.settings.pmu_poll_interval_s)

    def forget_state(self) -> None:
        """Forget the mode and PMU settings the driver believes in (after a link fault the
        4200 may have rebooted): the next command re-enters user mode, the stack sets up
        again."""
        self._mode = None
        self.epoch += 1
        self.pmu_loads.clear()
        self.pmu_ranges.clear()

    # ------------------------------------------------------------------ safety
    def safe_state(self, attempts: int = 5) -> None:
        """Every SMU to 0 V, every PMU channel off. Tries every source even if one fails.

        Through link faults (a lost or garbled acknowledgement) and busy refusals: the link
        is brought back in step and the whole safe state sent again, up to ``attempts``
        times. Every step is idempotent, and the safe state is what every error path ends
        in, so one faulted reply must not leave a source driven. Any other refusal by the
        instrument is raised at once.
        """
        for attempt in range(attempts):
            errors = self._safe_state_once()
            if not errors:
                return
            transient = all(
                isinstance(e, LinkError | ProtocolError)
                or (isinstance(e, InstrumentError) and e.code == BUSY_CODE)
                for e in errors
            )
            if not transient or attempt == attempts - 1:
                raise errors[0]
            self._mode = None  # not known after a fault: user mode is entered again
            recover = getattr(self.transport, "recover", None)
            if callable(recover):
                try:
                    recover()
                except LinkError:
                    continue

    def _safe_state_once(self) -> list[Exception]:
        errors: list[Exception] = []
        self.epoch += 1
        comp = self.limits.current_compliance_a if self.limits is not None else 1e-3
        steps: list[str] = []
        if self._mode != "user":
            steps.append(kx.user_mode())
        steps += [kx.dv(ch, 0, 0.0, min(comp, 1.0)) for ch in self.smus]
        steps += [kx.pmu_output_state(ch, False) for ch in self.pmu_channels]
        for cmd in steps:
            try:
                self._command(cmd)
                if cmd == kx.user_mode():
                    self._mode = "user"
            except InstrumentError as exc:
                if cmd.startswith("DV") and "mode" in exc.message:
                    try:  # the 4200 lost user mode (a reboot): enter it and try again
                        self._command(kx.user_mode())
                        self._mode = "user"
                        self._command(cmd)
                        continue
                    except Exception as exc2:  # noqa: BLE001 - reach every source
                        errors.append(exc2)
                        continue
                errors.append(exc)
            except Exception as exc:  # noqa: BLE001 - reach every source
                errors.append(exc)
        return errors


__all__ = ["Keithley4200", "Keithley4200Settings", "SweepResult"]
