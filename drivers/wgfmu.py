"""Keysight B1530A WGFMU driver over Keysight's WGFMU instrument library (``wgfmu.dll``).

There is no public command set for the WGFMU: Keysight ships a C library that opens its
own VISA session to the B1500 mainframe's GPIB/LAN address and drives the module. This
driver binds that library with ctypes (:func:`load_wgfmu_library`, prototypes from
``wgfmu.h`` in :mod:`memprog.drivers.wgfmu_constants`) and checks the return code of every
call: a negative code becomes an :class:`~memprog.core.errors.InstrumentError` carrying the
code, its ``wgfmu.h`` name and the library's own text (``WGFMU_getError``, or the
summary), plus the call that failed.

The library object is injected: in the lab it is the ctypes ``CDLL``/``WinDLL`` loaded
from the path in the bench file (only when a real WGFMU is used, so Linux users never need
it); on the simulated bench it is ``memprog.sim_instruments.wgfmu_library.SimWgfmuLibrary``,
which has the same functions, takes the same ctypes arguments and returns the same codes.
This module cannot tell them apart and has no simulation branch.

Above the raw calls, :meth:`WGFMU.run` takes the pythonic waveforms of
:mod:`memprog.drivers.wgfmu_patterns` (a write pulse, a read window, a whole train), sends
them as patterns, measure events and sequences, executes, waits, and returns each
measuring channel's times and values as numpy arrays.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Mapping, Sequence
from ctypes import POINTER, byref, c_char_p, c_double, c_int
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from memprog.core.errors import ConfigError, InstrumentError
from memprog.core.validation import MemprogModel
from memprog.drivers import wgfmu_constants as wc
from memprog.drivers.wgfmu_patterns import Pattern

_PD = POINTER(c_double)


def load_wgfmu_library(path: str | Path) -> Any:
    """Load Keysight's WGFMU library with ctypes and declare its prototypes.

    ``wgfmu.dll`` uses the ``_stdcall`` convention, so on Windows it is loaded as a
    ``WinDLL``; elsewhere ``CDLL`` (for a compatible shared library). Raises ConfigError
    naming the path when it cannot be loaded (not installed, or 32/64-bit mismatch with
    this Python).
    """
    p = str(path)
    loader = ctypes.WinDLL if sys.platform == "win32" else ctypes.CDLL  # type: ignore[attr-defined]
    try:
        lib = loader(p)
    except OSError as exc:
        raise ConfigError(
            "instruments.wgfmu.library",
            p,
            "the path of Keysight's WGFMU instrument library (wgfmu.dll, installed with the "
            "B1530A software; its bitness must match this Python's)",
            str(exc),
        ) from exc
    missing = wc.bind_prototypes(lib)
    core = {"WGFMU_openSession", "WGFMU_execute", "WGFMU_getMeasureValues", "WGFMU_getError"}
    if core & set(missing):
        raise ConfigError(
            "instruments.wgfmu.library",
            p,
            "a WGFMU instrument library",
            f"missing {sorted(core & set(missing))}",
        )
    return lib


class ChannelSetup(MemprogModel):
    """How one WGFMU channel is configured (applied by the library at execute/update).

    Attributes:
        operation_mode: ``fastiv`` (force and measure I or V), ``pg`` (fast pulses,
            voltage measurement only), ``dc``, or ``smu`` (the RSU passes the SMU through).
        force_range: force voltage range; ``auto`` lets the library choose.
        measure: ``current``, ``voltage`` or ``none`` (no measure mode set).
        current_range: full scale of the current measurement (fastiv only).
        voltage_range: voltage measurement range.
    """

    operation_mode: Literal["dc", "fastiv", "pg", "smu"] = "fastiv"
    force_range: Literal["auto", "3V", "5V", "10V_negative", "10V_positive"] = "auto"
    measure: Literal["current", "voltage", "none"] = "none"
    current_range: Literal["1uA", "10uA", "100uA", "1mA", "10mA"] = "1mA"
    voltage_range: Literal["5V", "10V"] = "5V"

    @property
    def current_range_a(self) -> float:
        """Full scale of the current range (A)."""
        return wc.CURRENT_RANGE_A[wc.MEASURE_CURRENT_RANGES[self.current_range]]

    @property
    def force_span_v(self) -> tuple[float, float]:
        """Lowest and highest voltage the force range can output."""
        return wc.FORCE_VOLTAGE_SPAN_V[wc.FORCE_VOLTAGE_RANGES[self.force_range]]


class WgfmuSettings(MemprogModel):
    """Settings of the WGFMU driver."""

    name: str = "wgfmu"
    timeout_s: float = Field(default=100.0, ge=1.0, le=1e5, description="library timeout (>= 1 s)")
    over_range_factor: float = Field(
        default=1.0, gt=0, le=2, description="a current beyond factor x range is over range"
    )


@dataclass(frozen=True)
class Trace:
    """What one channel measured in one execution.

    Attributes:
        channel: channel id.
        times_s: time of each value from the start of the execution (for an averaged
            event: the middle of its window).
        values: amperes (current measure mode) or volts.
        unit: ``"A"`` or ``"V"``.
    """

    channel: int
    times_s: np.ndarray
    values: np.ndarray
    unit: str


class WGFMU:
    """One B1530A session (all WGFMU channels of one B1500) through the instrument library.

    Args:
        library: the library object (ctypes ``CDLL``/``WinDLL`` or the simulated one), or
            None to load ``library_path`` at :meth:`connect`.
        address: VISA address of the B1500 mainframe, e.g. ``"GPIB0::17::INSTR"``.
        library_path: path of ``wgfmu.dll`` (used when ``library`` is None).
        settings: driver settings.

    Nothing is loaded or sent before :meth:`connect`.
    """

    def __init__(
        self,
        library: Any | None,
        address: str,
        library_path: str | Path | None = None,
        settings: WgfmuSettings | None = None,
    ) -> None:
        if library is None and library_path is None:
            raise ConfigError("library", None, "a WGFMU library object or library_path")
        if not isinstance(address, str) or not address.strip():
            raise ConfigError("address", address, "the VISA address of the B1500 mainframe")
        self.lib = library
        self.address = address
        self.library_path = None if library_path is None else str(library_path)
        self.settings = settings or WgfmuSettings()
        self.name = self.settings.name
        self.channel_ids: list[int] = []
        self.setups: dict[int, ChannelSetup] = {}
        self.connected_channels: set[int] = set()
        self.session_open = False
        self.executions = 0
        self._sent: dict[int, ChannelSetup] = {}

    # ------------------------------------------------------------------ core call
    def call(self, function: str, *args: Any) -> int:
        """Call library ``function``; raise InstrumentError with the library's text on error.

        Codes >= 0 are returned (0 = no error). A negative code is looked up in
        ``wgfmu.h``'s table and the library is asked for its error text.
        """
        fn = getattr(self.lib, function)
        try:
            code = int(fn(*args))
        except ctypes.ArgumentError as exc:
            raise ConfigError(function, args, "arguments of the C prototype", str(exc)) from exc
        if code < 0:
            name = wc.ERROR_NAMES.get(code, "unknown WGFMU error")
            text = self._error_text()
            msg = f"{name}: {text}" if text else name
            raise InstrumentError(self.name, code, msg, _describe(function, args))
        return code

    def _error_text(self) -> str:
        """Every pending error string of the library (``getError``), else its summary."""
        texts: list[str] = []
        try:
            for _ in range(32):
                size = c_int(0)
                if int(self.lib.WGFMU_getErrorSize(byref(size))) < 0 or size.value <= 0:
                    break
                buf = ctypes.create_string_buffer(size.value + 1)
                n = c_int(size.value + 1)
                if int(self.lib.WGFMU_getError(buf, byref(n))) < 0:
                    break
                text = buf.value.decode("latin-1").strip()
                if not text:
                    break
                texts.append(text)
            if not texts:
                size = c_int(0)
                if int(self.lib.WGFMU_getErrorSummarySize(byref(size))) >= 0 and size.value > 0:
                    buf = ctypes.create_string_buffer(size.value + 1)
                    n = c_int(size.value + 1)
                    if int(self.lib.WGFMU_getErrorSummary(buf, byref(n))) >= 0:
                        texts.append(buf.value.decode("latin-1").strip())
        except Exception:  # noqa: BLE001 - the error code itself is already known
            pass
        return "; ".join(t for t in texts if t)

    # ------------------------------------------------------------------ session
    def connect(self) -> None:
        """Load the library if needed, open the session, reset the channels, list them."""
        if self.lib is None:
            self.lib = load_wgfmu_library(self.library_path or "")
        self.call("WGFMU_openSession", self.address.encode("ascii"))
        self.session_open = True
        self.call("WGFMU_setTimeout", float(self.settings.timeout_s))
        self.call("WGFMU_initialize")
        self.channel_ids = self.get_channel_ids()
        self.connected_channels.clear()
        self._sent.clear()

    def close(self) -> None:
        """Reset the channels (outputs to 0 V, disconnected) and close the session."""
        if not self.session_open:
            return
        try:
            self.call("WGFMU_initialize")
        finally:
            self.session_open = False
            self.connected_channels.clear()
            self.call("WGFMU_closeSession")

    def safe_state(self) -> None:
        """Stop any running sequencer, then outputs to 0 V and every channel disconnected.

        ``WGFMU_abort`` first because a waveform interrupted mid-train (an exception while
        waiting, Ctrl-C) would otherwise keep forcing its pattern; its own failure must not
        keep ``WGFMU_initialize`` from running.
        """
        if self.session_open:
            try:
                self.call("WGFMU_abort")
            except InstrumentError:
                pass
            self.call("WGFMU_initialize")
            self.connected_channels.clear()
            self._sent.clear()

    def get_channel_ids(self) -> list[int]:
        """Channel ids of every installed WGFMU channel (slot x 100 + 1 or 2)."""
        size = c_int(0)
        self.call("WGFMU_getChannelIdSize", byref(size))
        ids = (c_int * max(size.value, 1))()
        n = c_int(size.value)
        self.call("WGFMU_getChannelIds", ids, byref(n))
        return [int(ids[i]) for i in range(n.value)]

    # ------------------------------------------------------------------ channel setup
    def configure(self, channel: int, setup: ChannelSetup) -> None:
        """Remember ``setup`` for ``channel`` and send it (re-sent after every clear)."""
        self._check_channel(channel)
        self.setups[channel] = setup
        self._apply_setup(channel, setup)

    def _check_channel(self, channel: int) -> None:
        if self.channel_ids and channel not in self.channel_ids:
            raise ConfigError("channel", channel, f"an installed WGFMU channel {self.channel_ids}")

    def _apply_setup(self, ch: int, s: ChannelSetup) -> None:
        self.call("WGFMU_setOperationMode", ch, wc.OPERATION_MODES[s.operation_mode])
        if s.operation_mode in ("fastiv", "pg", "dc"):
            self.call("WGFMU_setForceVoltageRange", ch, wc.FORCE_VOLTAGE_RANGES[s.force_range])
        if s.measure == "current":
            self.call("WGFMU_setMeasureMode", ch, wc.MEASURE_MODE_CURRENT)
            self.call(
                "WGFMU_setMeasureCurrentRange", ch, wc.MEASURE_CURRENT_RANGES[s.current_range]
            )
        elif s.measure == "voltage":
            self.call("WGFMU_setMeasureMode", ch, wc.MEASURE_MODE_VOLTAGE)
            self.call(
                "WGFMU_setMeasureVoltageRange", ch, wc.MEASURE_VOLTAGE_RANGES[s.voltage_range]
            )
        self._sent[ch] = s

    def connect_channel(self, channel: int) -> None:
        """Enable ``channel`` and close its RSU output relay (``WGFMU_connect``)."""
        self._check_channel(channel)
        if channel not in self.connected_channels:
            self.call("WGFMU_connect", channel)
            self.connected_channels.add(channel)

    def disconnect_channel(self, channel: int) -> None:
        """Open the RSU output relay of ``channel`` (``WGFMU_disconnect``)."""
        self.call("WGFMU_disconnect", channel)
        self.connected_channels.discard(channel)

    # ------------------------------------------------------------------ offline: patterns
    def clear(self) -> None:
        """Forget every pattern, event and sequence; the channel setups are sent again.

        ``WGFMU_clear`` clears the library's software setup; re-sending each channel's
        setup afterwards (offline calls, no bus traffic) keeps the driver correct whether
        or not the library keeps the operation modes across a clear.
        """
        self.call("WGFMU_clear")
        for ch, s in self.setups.items():
            self._apply_setup(ch, s)

    def create_pattern(self, pattern: Pattern) -> None:
        """Send ``pattern``: ``createPattern`` + ``addVectors`` + one ``setMeasureEvent`` each."""
        name = pattern.name.encode("ascii")
        self.call("WGFMU_createPattern", name, float(pattern.initial_v))
        n = int(pattern.dt_s.size)
        dts = np.ascontiguousarray(pattern.dt_s, dtype=np.float64)
        vs = np.ascontiguousarray(pattern.v, dtype=np.float64)
        if n == 1:
            self.call("WGFMU_addVector", name, float(dts[0]), float(vs[0]))
        else:
            self.call("WGFMU_addVectors", name, dts.ctypes.data_as(_PD), vs.ctypes.data_as(_PD), n)
        for e in pattern.events:
            self.call(
                "WGFMU_setMeasureEvent",
                name,
                e.name.encode("ascii"),
                float(e.time_s),
                int(e.points),
                float(e.interval_s),
                float(e.averaging_s),
                e.data_mode,
            )

    def add_sequence(self, channel: int, pattern_name: str, loops: float = 1) -> None:
        """Append ``loops`` repetitions of a pattern to ``channel``'s sequence."""
        self.call("WGFMU_addSequence", channel, pattern_name.encode("ascii"), float(loops))

    def add_sequences(
        self, channel: int, pattern_names: Sequence[str], loops: Sequence[float]
    ) -> None:
        """Append several (pattern, loops) at once (``WGFMU_addSequences``)."""
        n = len(pattern_names)
        if n != len(loops) or n == 0:
            raise ConfigError("loops", list(loops), f"one loop count per pattern ({n})")
        names = (c_char_p * n)(*[p.encode("ascii") for p in pattern_names])
        counts = (c_double * n)(*[float(c) for c in loops])
        self.call("WGFMU_addSequences", channel, names, counts, n)

    # ------------------------------------------------------------------ online: run
    def execute(self) -> None:
        """Run the sequencers of every connected channel (``WGFMU_execute``)."""
        self.call("WGFMU_execute")
        self.executions += 1

    def wait_until_completed(self) -> None:
        """Block until every sequencer has finished (``WGFMU_waitUntilCompleted``)."""
        self.call("WGFMU_waitUntilCompleted")

    def status(self, channel: int | None = None) -> tuple[str, float, float]:
        """(status name, elapsed s, total s) of all channels or of ``channel``."""
        st, el, tot = c_int(0), c_double(0.0), c_double(0.0)
        if channel is None:
            self.call("WGFMU_getStatus", byref(st), byref(el), byref(tot))
        else:
            self.call("WGFMU_getChannelStatus", channel, byref(st), byref(el), byref(tot))
        return wc.STATUS_NAMES.get(st.value, str(st.value)), el.value, tot.value

    def measure_value_size(self, channel: int) -> tuple[int, int]:
        """(measured so far, total expected) numbers of values of ``channel``."""
        measured, total = c_int(0), c_int(0)
        self.call("WGFMU_getMeasureValueSize", channel, byref(measured), byref(total))
        return measured.value, total.value

    def measure_values(
        self, channel: int, offset: int = 0, count: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Times (s) and values (A or V) measured by ``channel`` (``getMeasureValues``)."""
        measured, total = self.measure_value_size(channel)
        if measured < total:
            raise InstrumentError(
                self.name,
                wc.RESULT_NOT_READY_ERROR,
                f"only {measured} of {total} values measured",
                f"WGFMU_getMeasureValueSize({channel})",
            )
        n = measured - offset if count is None else int(count)
        if n <= 0:
            return np.zeros(0), np.zeros(0)
        times = np.empty(n, dtype=np.float64)
        values = np.empty(n, dtype=np.float64)
        size = c_int(n)
        self.call(
            "WGFMU_getMeasureValues",
            channel,
            int(offset),
            byref(size),
            times.ctypes.data_as(_PD),
            values.ctypes.data_as(_PD),
        )
        return times[: size.value], values[: size.value]

    def run(self, sequences: Mapping[int, Sequence[Pattern] | Pattern]) -> dict[int, Trace]:
        """Play one waveform per channel (all channels start together) and fetch the data.

        Args:
            sequences: channel id -> pattern (or list of patterns played in order). Every
                channel named must have been configured; it is connected if it is not.

        Returns:
            For each channel whose patterns hold measure events: its :class:`Trace`,
            checked for over-range currents (InstrumentError if any value is beyond the
            range: the WGFMU saturates there, so the number would be wrong).
        """
        if not self.session_open:
            raise InstrumentError(
                self.name, wc.CONTEXT_ERROR, "no session: call connect() first", "run"
            )
        for ch in sequences:
            if ch not in self.setups:
                raise ConfigError("channel", ch, f"a configured channel {sorted(self.setups)}")
        self.clear()
        seen: set[str] = set()
        for ch, pats in sequences.items():
            plist = [pats] if isinstance(pats, Pattern) else list(pats)
            for p in plist:
                if p.name not in seen:
                    self._check_span(ch, p)
                    self.create_pattern(p)
                    seen.add(p.name)
            if len(plist) == 1:
                self.add_sequence(ch, plist[0].name, 1)
            else:
                self.add_sequences(ch, [p.name for p in plist], [1.0] * len(plist))
        for ch in sequences:
            self.connect_channel(ch)
        try:
            self.execute()
            self.wait_until_completed()
        except BaseException:
            self.safe_state()  # never leave a sequencer playing behind an error
            raise
        out: dict[int, Trace] = {}
        for ch, pats in sequences.items():
            plist = [pats] if isinstance(pats, Pattern) else list(pats)
            if not any(p.events for p in plist):
                continue
            s = self.setups[ch]
            t, v = self.measure_values(ch)
            unit = "A" if s.measure == "current" else "V"
            if unit == "A":
                limit = s.current_range_a * self.settings.over_range_factor
                bad = np.abs(v) > limit
                if bad.any():
                    raise InstrumentError(
                        self.name,
                        wc.ERROR,
                        f"channel {ch} measured {float(v[bad][0]):.4g} A, beyond its {s.current_range} "
                        "range (over range: the reading is saturated, not a current)",
                        "WGFMU_getMeasureValues",
                    )
            out[ch] = Trace(ch, t, v, unit)
        return out

    def _check_span(self, ch: int, p: Pattern) -> None:
        lo, hi = self.setups[ch].force_span_v
        pmin, pmax = p.peak_v
        if pmin < lo - 1e-12 or pmax > hi + 1e-12:
            raise ConfigError(
                f"pattern {p.name!r} on channel {ch}",
                (pmin, pmax),
                f"[{lo:g}, {hi:g}] V ({self.setups[ch].force_range} force range)",
            )

    def update(self) -> None:
        """Apply the channel setups and the sequences' initial voltages (``WGFMU_update``)."""
        self.call("WGFMU_update")

    def abort(self) -> None:
        """Stop every sequencer (``WGFMU_abort``); outputs keep their present voltage."""
        self.call("WGFMU_abort")

    def interpolated_force_value(self, channel: int, time_s: float) -> float:
        """Programmed output of ``channel`` at ``time_s`` of its sequence."""
        value = c_double(0.0)
        self.call("WGFMU_getInterpolatedForceValue", channel, float(time_s), byref(value))
        return float(value.value)

    def export_ascii(self, path: str | Path) -> None:
        """Write the library's setup summary (patterns, events, sequences) as CSV."""
        self.call("WGFMU_exportAscii", str(path).encode())

    def open_log(self, path: str | Path) -> None:
        """Log the library's errors and warnings to ``path`` (``WGFMU_openLogFile``)."""
        self.call("WGFMU_openLogFile", str(path).encode())

    def close_log(self) -> None:
        """Stop logging (``WGFMU_closeLogFile``)."""
        self.call("WGFMU_closeLogFile")

    # ------------------------------------------------------------------ DC mode
    def dc_force_voltage(self, channel: int, voltage_v: float) -> None:
        """Output a DC voltage at once (channel in DC mode)."""
        self.call("WGFMU_dcforceVoltage", channel, float(voltage_v))

    def dc_measure(self, channel: int) -> float:
        """One DC measurement (current or voltage, per the channel's measure mode)."""
        value = c_double(0.0)
        self.call("WGFMU_dcmeasureValue", channel, byref(value))
        return float(value.value)


def _describe(function: str, args: tuple[Any, ...]) -> str:
    """``WGFMU_addVector(b'pulse', 1e-08, 1.0)``-style text of a call (pointers elided)."""
    parts = []
    for a in args:
        if isinstance(a, bytes | int | float):
            parts.append(repr(a))
        else:
            parts.append("<ptr>")
    return f"{function}({', '.join(parts)})"


__all__ = ["ChannelSetup", "Trace", "WGFMU", "WgfmuSettings", "load_wgfmu_library"]
