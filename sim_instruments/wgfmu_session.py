"""The simulated WGFMU library's session layer: open/close, errors and warnings, channel setup.

Why a module of its own: this is the bottom layer of
:class:`.wgfmu_library.SimWgfmuLibrary` -- the state every other call relies on (the open
session to a simulated B1500A, the error queue, the per-channel setup kept until
``execute``/``update``/a DC call applies it) and the small checks every call uses (a
session is open, a channel is installed, a name is printable ASCII, an out-pointer is not
NULL, a voltage is within +-10 V). The layers above it (:mod:`.wgfmu_patterns`,
:mod:`.wgfmu_execution`, :mod:`.wgfmu_readout`) only add functions.

``openSession(address)`` finds the simulated B1500A at that VISA address on the bench
(``WGFMU_COMMUNICATION_ERROR`` if none; ``WGFMU_FW_ERROR`` if the mainframe's FLEX error
queue is not empty, as public lab reports describe for the real library). Errors: every
failing call queues a text (``"WGFMU_addVector: pattern 'x' not found"``) for ``getError``
(one at a time, oldest first) and ``getErrorSummary`` (all since the last ``clear``). A
string buffer *smaller* than the text is legal and keeps the real library's behaviour: the
text is truncated to fit (NUL-terminated) and the size argument receives the size the full
text needs. [choice] ``initialize`` returns the channels to 0 V, disconnected, RSU on the
SMU path.
"""

from __future__ import annotations

import ctypes
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from memprog.sim_instruments.b1500 import SimB1500
from memprog.sim_instruments.b1500_state import OP_SMU
from memprog.sim_instruments.wgfmu_codes import (
    CHANNEL_NOT_FOUND_ERROR,
    COMMUNICATION_ERROR,
    CONTEXT_ERROR,
    CURRENT_RANGES,
    ERROR,
    ERROR_TEXT_MAX,
    FORCE_RANGES,
    FW_ERROR,
    ILLEGAL_STRING_ERROR,
    MEASURE_MODES,
    OPERATION_MODES,
    PARAMETER_OUT_OF_RANGE_ERROR,
    STATUS_IDLE,
    V_ABS_MAX,
    VOLTAGE_RANGES,
    WARNING_LEVELS,
    CallFailed,
)

if TYPE_CHECKING:  # pragma: no cover
    from memprog.sim_instruments.sim_bench import SimBench


@dataclass
class KeptSetup:
    """A channel's setup as the library keeps it until ``execute``/``update``/a DC call applies it."""

    mode: int = OP_SMU
    force_range: int = 3000
    measure_mode: int = 4000
    current_range: int = 6004
    voltage_range: int = 5001
    force_delay: float = 0.0
    measure_delay: float = 0.0


class WgfmuSession:
    """Session, error and channel-setup functions of ``wgfmu.h`` (state set up by the library)."""

    bench: SimBench
    mainframe: SimB1500 | None
    address: str
    setups: dict[int, KeptSetup]
    errors: deque[str]
    summary: deque[str]
    results: dict[int, tuple[np.ndarray, np.ndarray]]
    expected: dict[int, int]
    status: int
    timeout_s: float
    warning_level: int
    log_path: Path | None
    _timing: dict[str, float]

    def _record(self, function: str, text: str) -> None:
        if len(text) > ERROR_TEXT_MAX:
            text = text[: ERROR_TEXT_MAX - 3] + "..."
        msg = f"{function}: {text}"
        self.errors.append(msg)
        self.summary.append(msg)
        if self.log_path is not None:
            with self.log_path.open("a", encoding="utf-8") as f:
                f.write(msg + "\n")

    def _session(self) -> SimB1500:
        if self.mainframe is None:
            raise CallFailed(CONTEXT_ERROR, "no session is open (WGFMU_openSession)")
        return self.mainframe

    def _channel(self, ch: int) -> int:
        mf = self._session()
        if ch not in mf.wgfmu:
            raise CallFailed(
                CHANNEL_NOT_FOUND_ERROR,
                f"channel {ch} is not installed (installed: {sorted(mf.wgfmu)})",
            )
        return ch

    def _setup(self, ch: int) -> KeptSetup:
        self._channel(ch)
        return self.setups.setdefault(ch, KeptSetup())

    @staticmethod
    def _name(raw: bytes | None, what: str = "pattern") -> str:
        if raw is None or raw == b"":
            raise CallFailed(ILLEGAL_STRING_ERROR, f"empty {what} name")
        try:
            name = raw.decode("ascii")
        except UnicodeDecodeError:
            raise CallFailed(ILLEGAL_STRING_ERROR, f"{what} name {raw!r} is not ASCII") from None
        if not name.isprintable():
            raise CallFailed(ILLEGAL_STRING_ERROR, f"{what} name {raw!r}")
        return name

    @staticmethod
    def _out(ptr: Any, value: Any, what: str = "output") -> None:
        if not ptr:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, f"{what} pointer is NULL")
        ptr[0] = value

    @staticmethod
    def _volt(v: float) -> float:
        if not np.isfinite(v) or abs(v) > V_ABS_MAX:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, f"voltage {v} outside [-10, 10] V")
        return float(v)

    def _advance(self, key: str) -> None:
        mf = self.mainframe
        dt = self._timing[key]
        if mf is not None:
            dt = float(mf.config.options.get(f"sim_wgfmu_{key}_s", dt))
        self.bench.chip.advance(dt)

    # ================================================================== initialize / session
    def _openSession(self, address: bytes | None) -> None:
        addr = self._name(address, "address")
        if self.mainframe is not None:
            raise CallFailed(CONTEXT_ERROR, f"a session to {self.address} is already open")
        inst = self.bench.find(addr)
        if not isinstance(inst, SimB1500):
            raise CallFailed(COMMUNICATION_ERROR, f"no B1500A answers at {addr}")
        if not inst.wgfmu:
            raise CallFailed(CHANNEL_NOT_FOUND_ERROR, f"the B1500A at {addr} holds no B1530A")
        if inst.errors:
            code, text = inst.errors[0]
            raise CallFailed(
                FW_ERROR,
                f'the B1500A error queue is not empty (+{code},"{text}"): read it with ERRX? first',
            )
        self.mainframe = inst
        self.address = addr
        self._advance("open")

    def _closeSession(self) -> None:
        self._session()
        self.mainframe = None
        self.address = ""

    def _initialize(self) -> None:
        mf = self._session()
        mf.reset_wgfmu()
        self.results.clear()
        self.expected.clear()
        self.status = STATUS_IDLE
        self._advance("init")

    def _setTimeout(self, timeout: float) -> None:
        if not timeout >= 1.0:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, f"timeout {timeout} s < 1 s")
        self.timeout_s = float(timeout)

    def _doSelfCalibration(self, result: Any, detail: Any, size: Any) -> None:
        self._session()
        self._out(result, 0, "result")
        self._write_string(detail, size, "")

    _doSelfTest = _doSelfCalibration

    def _getChannelIdSize(self, size: Any) -> None:
        self._out(size, len(self._session().wgfmu_channels), "size")

    def _getChannelIds(self, ids: Any, size: Any) -> None:
        chans = self._session().wgfmu_channels
        if not size:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, "size pointer is NULL")
        n = min(int(size[0]), len(chans))
        if n < 0:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, f"size {n}")
        for i in range(n):
            ids[i] = chans[i]
        size[0] = n

    # ================================================================== errors and warnings
    def _write_string(self, buf: Any, size: Any, text: str) -> None:
        data = text.encode("latin-1")
        if not size:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, "size pointer is NULL")
        cap = int(size[0])
        if buf and cap > 0:
            n = min(len(data), cap - 1)
            ctypes.memmove(buf, data[:n] + b"\0", n + 1)
        size[0] = len(data) + 1 if data else 0

    def _getErrorSize(self, size: Any) -> None:
        self._out(size, len(self.errors[0].encode("latin-1")) + 1 if self.errors else 0, "size")

    def _getError(self, buf: Any, size: Any) -> None:
        text = self.errors.popleft() if self.errors else ""
        self._write_string(buf, size, text)

    def _getErrorSummarySize(self, size: Any) -> None:
        text = "\n".join(self.summary)
        self._out(size, len(text.encode("latin-1")) + 1 if text else 0, "size")

    def _getErrorSummary(self, buf: Any, size: Any) -> None:
        self._write_string(buf, size, "\n".join(self.summary))

    def _treatWarningsAsErrors(self, level: int) -> None:
        if level not in WARNING_LEVELS:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, f"warning level {level}")

    def _setWarningLevel(self, level: int) -> None:
        self._treatWarningsAsErrors(level)
        self.warning_level = level

    def _getWarningLevel(self, level: Any) -> None:
        self._out(level, self.warning_level, "warningLevel")

    def _getWarningSummarySize(self, size: Any) -> None:
        self._out(size, 0, "size")

    def _getWarningSummary(self, buf: Any, size: Any) -> None:
        self._write_string(buf, size, "")

    def _openLogFile(self, name: bytes | None) -> None:
        path = Path(self._name(name, "file"))
        try:
            path.open("a", encoding="utf-8").close()
        except OSError as exc:
            raise CallFailed(ERROR, f"cannot open log file {path}: {exc}") from None
        self.log_path = path

    def _closeLogFile(self) -> None:
        self.log_path = None

    # ================================================================== channel setup
    def _setOperationMode(self, ch: int, mode: int) -> None:
        if mode not in OPERATION_MODES:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, f"operation mode {mode}")
        self._setup(ch).mode = mode

    def _getOperationMode(self, ch: int, mode: Any) -> None:
        self._out(mode, self._setup(ch).mode, "operationMode")

    def _setForceVoltageRange(self, ch: int, rng: int) -> None:
        if rng not in FORCE_RANGES:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, f"force voltage range {rng}")
        self._setup(ch).force_range = rng

    def _getForceVoltageRange(self, ch: int, rng: Any) -> None:
        self._out(rng, self._setup(ch).force_range, "forceVoltageRange")

    def _setMeasureMode(self, ch: int, mode: int) -> None:
        if mode not in MEASURE_MODES:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, f"measure mode {mode}")
        self._setup(ch).measure_mode = mode

    def _getMeasureMode(self, ch: int, mode: Any) -> None:
        self._out(mode, self._setup(ch).measure_mode, "measureMode")

    def _setMeasureVoltageRange(self, ch: int, rng: int) -> None:
        if rng not in VOLTAGE_RANGES:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, f"measure voltage range {rng}")
        self._setup(ch).voltage_range = rng

    def _getMeasureVoltageRange(self, ch: int, rng: Any) -> None:
        self._out(rng, self._setup(ch).voltage_range, "measureVoltageRange")

    def _setMeasureCurrentRange(self, ch: int, rng: int) -> None:
        if rng not in CURRENT_RANGES:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, f"measure current range {rng}")
        self._setup(ch).current_range = rng

    def _getMeasureCurrentRange(self, ch: int, rng: Any) -> None:
        self._out(rng, self._setup(ch).current_range, "measureCurrentRange")

    def _setForceDelay(self, ch: int, delay: float) -> None:
        if not -50e-9 <= delay <= 50e-9:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, f"force delay {delay} outside [-50, 50] ns")
        self._setup(ch).force_delay = delay

    def _getForceDelay(self, ch: int, delay: Any) -> None:
        self._out(delay, self._setup(ch).force_delay, "forceDelay")

    def _setMeasureDelay(self, ch: int, delay: float) -> None:
        if not -50e-9 <= delay <= 50e-9:
            raise CallFailed(PARAMETER_OUT_OF_RANGE_ERROR, f"measure delay {delay} outside [-50, 50] ns")
        self._setup(ch).measure_delay = delay

    def _getMeasureDelay(self, ch: int, delay: Any) -> None:
        self._out(delay, self._setup(ch).measure_delay, "measureDelay")

    def _connect(self, ch: int) -> None:
        mf = self._session()
        self._channel(ch)
        mf.wgfmu[ch].connected = True
        self._advance("connect")

    def _disconnect(self, ch: int) -> None:
        mf = self._session()
        self._channel(ch)
        mf.wgfmu[ch].connected = False
        self._advance("connect")
