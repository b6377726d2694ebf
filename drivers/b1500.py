"""Keysight B1500A semiconductor device analyzer: SMUs over FLEX (GPIB, CR LF).

The driver discovers the modules (``UNT?``: SMUs, MFCMU, and the B1530A WGFMUs whose
channels the WGFMU library then drives), switches SMU outputs (``CN``/``CL``), forces
(``DV``/``DI``), takes spot measurements (``TI``/``TV``) and staircase or spot
measurements (``MM`` + ``XE``), and sets the data format, averaging and auto-zero
(``FMT``, ``AV``, ``AZ``). Every configuration command is followed by ``ERRX?``: an
error becomes an :class:`~memprog.core.errors.InstrumentError` with the B1500's code and text,
and status codes in measurement data become flags or exceptions
(:mod:`memprog.drivers.flex_commands`), never silent numbers.

Voltages are checked against the chip's safety limits before anything is sent. Nothing is
sent before :meth:`B1500.connect`.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import Field

from memprog.core.errors import ConfigError, InstrumentError, ProtocolError
from memprog.core.limits import SafetyLimits
from memprog.core.validation import MemprogModel
from memprog.drivers import flex_commands as fx
from memprog.drivers.flex_commands import FlexReading, ModuleSlot
from memprog.drivers.transport import LinkTimeout, Transport
from memprog.protocols.programmer import wait_chunks


class B1500Settings(MemprogModel):
    """Settings of the B1500A driver.

    Attributes:
        name: instrument name used in errors.
        reset_on_connect: send ``*RST`` at connect (off by default: it also resets a WGFMU
            set-up in progress, and labs often keep front-panel settings).
        data_format: ``FMT`` code, 1 (ASCII with header) or 2 (ASCII without header).
        averaging: ``AV`` samples of the high-speed ADC (None: leave as is).
        autozero: ``AZ`` (None: leave as is).
        check_errors: send ``ERRX?`` after each configuration command.
        drain_errors_on_connect: read out (and discard, after logging them in
            :attr:`B1500.stale_errors`) errors queued before memprog connected; the WGFMU
            library refuses to open a session while the queue holds an error.
    """

    name: str = "b1500"
    reset_on_connect: bool = False
    data_format: int = Field(default=1, ge=1, le=2)
    averaging: int | None = Field(default=None, ge=-100, le=1023)
    autozero: bool | None = None
    check_errors: bool = True
    drain_errors_on_connect: bool = True


class B1500:
    """A B1500A mainframe over FLEX.

    Args:
        transport: message transport (GPIB, CR LF terminations).
        limits: safety limits checked before any DC bias is sent (None: no chip limits).
        settings: driver settings.
    """

    def __init__(
        self,
        transport: Transport,
        limits: SafetyLimits | None = None,
        settings: B1500Settings | None = None,
    ) -> None:
        self.t = transport
        self.limits = limits
        self.settings = settings or B1500Settings()
        self.name = self.settings.name
        self.identity = ""
        self.modules: list[ModuleSlot] = []
        self.stale_errors: list[tuple[int, str]] = []
        self.enabled: set[int] = set()

    # ------------------------------------------------------------------ errors
    def write(self, command: str) -> None:
        """Send a configuration command and check ``ERRX?`` afterwards."""
        self.t.write(command)
        if self.settings.check_errors:
            self.check_errors(command)

    def check_errors(self, command: str = "") -> None:
        """Raise InstrumentError (code and text of the B1500) if the error queue is not empty.

        Every queued error is read, so the queue is empty afterwards; the exception carries
        the first one and lists the others.
        """
        errors = self.read_errors()
        if errors:
            code, text = errors[0]
            more = "; ".join(f"{c}: {t}" for c, t in errors[1:])
            raise InstrumentError(
                self.name, code, text + (f" (then {more})" if more else ""), command
            )

    def read_errors(self, max_errors: int = 32) -> list[tuple[int, str]]:
        """Read the error queue until ``+0`` (at most ``max_errors`` entries)."""
        out = []
        for _ in range(max_errors):
            code, text = fx.parse_errx(self.t.query(fx.errx()), self.name)
            if code == 0:
                break
            out.append((code, text))
        return out

    # ------------------------------------------------------------------ connect
    def connect(self) -> None:
        """Identify the mainframe, clear stale errors, list the modules, set the format."""
        self.identity = self.t.query(fx.idn()).strip()
        if "B1500" not in self.identity:
            raise ProtocolError("a B1500 identity (*IDN?)", self.identity, self.name)
        set_marker = getattr(self.t, "set_marker", None)
        if callable(set_marker):  # *IDN?'s reply marks the end of stale replies after a timeout
            set_marker(fx.idn(), self.identity)
        if self.settings.drain_errors_on_connect:
            self.stale_errors = self.read_errors()
        if self.settings.reset_on_connect:
            self.write(fx.rst())
        self.modules = fx.parse_unt(self.t.query(fx.unt(0)), self.name)
        self.write(fx.fmt(self.settings.data_format, 0))
        if self.settings.averaging is not None:
            self.write(fx.av(self.settings.averaging, 0))
        if self.settings.autozero is not None:
            self.write(fx.az(self.settings.autozero))
        self.enabled.clear()

    # ------------------------------------------------------------------ modules
    def _of_kind(self, kind: str) -> list[int]:
        return [ch for m in self.modules if m.kind == kind for ch in m.channels]

    @property
    def smu_channels(self) -> list[int]:
        """FLEX channel numbers of the SMUs."""
        return self._of_kind("SMU")

    @property
    def cmu_channels(self) -> list[int]:
        """FLEX channel numbers of the MFCMUs."""
        return self._of_kind("CMU")

    @property
    def wgfmu_channels(self) -> list[int]:
        """WGFMU channel ids (slot x 100 + 1/2) of every installed B1530A."""
        return self._of_kind("WGFMU")

    def _check_smu(self, ch: int) -> None:
        if ch not in self.smu_channels:
            raise ConfigError(
                "channel", ch, f"an SMU channel of this mainframe {self.smu_channels}"
            )

    # ------------------------------------------------------------------ outputs
    def enable_channels(self, channels: Iterable[int] | None = None) -> None:
        """Close output relays (``CN``); all SMUs/CMUs when ``channels`` is None."""
        chs = None if channels is None else list(channels)
        for ch in chs or []:
            self._check_smu(ch)
        self.write(fx.cn(chs))
        self.enabled |= set(chs) if chs is not None else set(self.smu_channels)

    def disable_channels(self, channels: Iterable[int] | None = None) -> None:
        """Open output relays (``CL``); all when ``channels`` is None."""
        chs = None if channels is None else list(channels)
        self.write(fx.cl(chs))
        self.enabled -= set(chs) if chs is not None else set(self.enabled)

    def force_voltage(
        self, ch: int, voltage_v: float, compliance_a: float | None = None, range_code: int = 0
    ) -> None:
        """Force ``voltage_v`` on SMU ``ch`` (``DV``), after the safety check."""
        self._check_smu(ch)
        if self.limits is not None:
            self.limits.check_voltage("voltage_v", float(voltage_v))
            if compliance_a is not None and abs(compliance_a) > self.limits.current_compliance_a:
                raise ConfigError(
                    "compliance_a",
                    compliance_a,
                    f"<= {self.limits.current_compliance_a} A (limits)",
                )
        self.write(fx.dv(ch, range_code, voltage_v, compliance_a))

    def force_current(
        self, ch: int, current_a: float, compliance_v: float | None = None, range_code: int = 0
    ) -> None:
        """Force ``current_a`` on SMU ``ch`` (``DI``); the voltage compliance is checked."""
        self._check_smu(ch)
        if self.limits is not None:
            if compliance_v is None:
                raise ConfigError(
                    "compliance_v", None, "a voltage compliance within the safety limits"
                )
            self.limits.check_voltage("compliance_v", float(compliance_v))
            if abs(current_a) > self.limits.current_compliance_a:
                raise ConfigError(
                    "current_a", current_a, f"<= {self.limits.current_compliance_a} A (limits)"
                )
        self.write(fx.di(ch, range_code, current_a, compliance_v))

    def zero(self, channels: Iterable[int] | None = None) -> None:
        """Every (or the listed) SMU output to 0 V (``DZ``)."""
        self.write(fx.dz(None if channels is None else list(channels)))

    # ------------------------------------------------------------------ measurements
    def _measure_query(self, command: str) -> str:
        """A measurement query (``TI``/``TV``/``XE``). A rejected one sends no data: the
        timeout is followed by ``ERRX?`` so the B1500's error is reported for this command
        (not for whichever command checks the queue next)."""
        try:
            return self.t.query(command)
        except LinkTimeout as exc:
            try:
                errors = self.read_errors()
            except InstrumentError:
                raise exc from None
            if not errors:
                raise
            code, text = errors[0]
            more = "; ".join(f"{c}: {t}" for c, t in errors[1:])
            raise InstrumentError(
                self.name, code, text + (f" (then {more})" if more else ""), command
            ) from exc

    def _reading(self, reply: str) -> FlexReading:
        readings = fx.parse_data(reply, self.name)
        if len(readings) != 1:
            raise ProtocolError("one spot measurement value", reply, self.name)
        return readings[0]

    def measure_current(self, ch: int, range_code: int | None = None) -> FlexReading:
        """Spot current reading of SMU ``ch`` (``TI``) with its status."""
        self._check_smu(ch)
        return self._reading(self._measure_query(fx.ti(ch, range_code)))

    def measure_voltage(self, ch: int, range_code: int | None = None) -> FlexReading:
        """Spot voltage reading of SMU ``ch`` (``TV``) with its status."""
        self._check_smu(ch)
        return self._reading(self._measure_query(fx.tv(ch, range_code)))

    def current(self, ch: int, range_code: int | None = None) -> float:
        """Spot current (A); ComplianceError / OverRangeError instead of a wrong number."""
        cmd = fx.ti(ch, range_code)
        return self.measure_current(ch, range_code).checked(self.name, cmd)

    def voltage(self, ch: int, range_code: int | None = None) -> float:
        """Spot voltage (V); exceptions for non-normal status."""
        cmd = fx.tv(ch, range_code)
        return self.measure_voltage(ch, range_code).checked(self.name, cmd)

    def set_measurement_mode(self, mode: int, channels: Iterable[int]) -> None:
        """``MM mode,channels`` (1 spot, 2 staircase sweep)."""
        chs = list(channels)
        for ch in chs:
            self._check_smu(ch)
        self.write(fx.mm(mode, chs))

    def execute_measurement(self) -> list[FlexReading]:
        """``XE``: run the measurement set by ``MM`` and return every value with its header."""
        return fx.parse_data(self._measure_query(fx.xe()), self.name)

    def set_format(self, format_code: int = 1, mode: int = 0) -> None:
        """Data output format (``FMT``); this driver parses formats 1 and 2."""
        if format_code not in (1, 2):
            raise ConfigError("format_code", format_code, "1 (ASCII with header) or 2 (without)")
        self.write(fx.fmt(format_code, mode))

    def set_averaging(self, samples: int, mode: int = 0) -> None:
        """High-speed ADC averaging (``AV``)."""
        if samples == 0 or not -100 <= samples <= 1023:
            raise ConfigError("samples", samples, "1..1023 samples or -1..-100 power-line cycles")
        self.write(fx.av(samples, mode))

    def set_autozero(self, on: bool) -> None:
        """ADC auto-zero (``AZ``)."""
        self.write(fx.az(on))

    def pause(self, seconds: float) -> None:
        """Let ``seconds`` pass on the mainframe: FLEX ``PA`` (pause), checked by ``ERRX?``.

        Why ``PA``: it is the B1500's own wait (command execution pauses for the given
        time), and the ``ERRX?`` that follows is answered only after it, so the host blocks
        exactly as long as the bench waits, on GPIB as on the simulated bench (whose clock
        advances by the pause). Long waits go as pauses of at most ``WAIT_CHUNK_S``, each
        inside any VISA timeout over a second.
        """
        for chunk in wait_chunks(seconds):
            self.t.write(fx.pa(chunk))
            self.check_errors("PA")

    # ------------------------------------------------------------------ safety
    def safe_state(self) -> None:
        """Every SMU to 0 V (``DZ``) and every output relay open (``CL``)."""
        self.t.write(fx.dz())
        self.t.write(fx.cl())
        self.enabled.clear()
        if self.settings.check_errors:
            self.check_errors("DZ; CL")

    def close(self) -> None:
        """Leave the outputs safe and close the transport."""
        try:
            self.safe_state()
        finally:
            self.t.close()


__all__ = ["B1500", "B1500Settings"]
