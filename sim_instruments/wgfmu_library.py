"""Simulated Keysight WGFMU instrument library: the functions of ``wgfmu.dll``, on the chip.

:class:`SimWgfmuLibrary` is an object whose attributes are the C functions of
``wgfmu.h`` (``WGFMU_openSession``, ``WGFMU_addVectors``, ``WGFMU_execute``, ...) with the
same arguments and the same return codes. Each attribute *is* a ctypes function pointer
(``CFUNCTYPE`` with the header's argument types) wrapping the simulator, so a call goes
through exactly the argument conversion a call into the real DLL goes through: strings
must be ``bytes``, ``byref``/``pointer``/arrays work as out-arguments, a wrong type raises
``ctypes.ArgumentError``. A driver cannot tell it from the ctypes binding of the real
library.

What the calls do:

* Offline (no session needed): ``clear``, ``createPattern``, ``addVector(s)``,
  ``setVector``, ``setMeasureEvent``, ``getPatternForceValueSize``, ``exportAscii``.
* Online: ``openSession(address)`` finds the simulated B1500A at that VISA address on the
  bench (``WGFMU_COMMUNICATION_ERROR`` if none; ``WGFMU_FW_ERROR`` if the mainframe's
  FLEX error queue is not empty, as public lab reports describe for the real library);
  channel setup (``setOperationMode``, ranges, measure mode) is kept by the library and
  applied to the channels by ``execute``/``update``/the DC functions; ``connect``
  closes a channel's RSU output relay.
* ``execute`` plays every connected channel's sequence together on the chip's pads (the
  bench wiring says which pad each channel's probe touches): the merged waveform is cut
  at every breakpoint; each piece acts on the chip as two flat halves at its start and end
  levels (exact for flat parts; a trapezoidal pulse acts as a rectangle of its full width
  at half maximum, the width convention of the other stacks) through
  :meth:`SimChip.apply_line_voltages`, floating pads solved by Kirchhoff's law; pieces
  whose bias stays below the chip's quiet level only advance the clock. Measure events
  sample the channel's current (positive out of the channel into the chip) or voltage
  while this happens. The sequencer is synchronous: after ``execute`` the status is
  ``COMPLETED`` and every value is ready.
* Measure events: an ``AVERAGED`` event returns one value, the mean of its points
  (time: middle of the event); a ``RAW`` event returns one value per point [the WGFMU
  user's guide's description of the two data modes].
* Errors: every failing call returns its ``wgfmu.h`` code and queues a text
  (``"WGFMU_addVector: pattern 'x' not found"``) for ``getError`` (one at a time, oldest
  first) and ``getErrorSummary`` (all since the last ``clear``).
* Sizes are checked before any memory is touched. A C library must trust the sizes it is
  given; a simulator that does the same can be crashed by one wrong count (a segfault on
  ``addVectors`` with a count beyond its arrays, a heap overflow on ``getErrorSummary``
  with a size beyond its buffer), and ``memprog sim serve`` hands these calls to any
  client. So every size or count argument is checked against the buffer it describes
  (ctypes arrays, ``byref``, ``pointer``, ``cast`` and numpy ``data_as`` pointers carry
  their length; a bare address cannot be checked) and against a cap (:data:`MAX_VECTORS`
  values, :data:`MAX_STRING_BYTES` bytes, ...) before the call runs; a violation returns
  ``WGFMU_PARAMETER_OUT_OF_RANGE_ERROR`` with a text that names the argument, its value
  and the allowed range. A string buffer *smaller* than the text is legal and keeps the
  real library's behaviour: the text is truncated to fit (NUL-terminated) and the size
  argument receives the size the full text needs.

Choices where public sources are silent [choice]: the error queue and the summary keep
the last :data:`ERROR_QUEUE_MAX` texts, each cut to :data:`ERROR_TEXT_MAX` characters (so
neither can grow without bound); the patterns held at once hold at most
:data:`MAX_VECTORS` vectors in all, and one measure event at most :data:`MAX_VECTORS`
points; a current beyond 1.2 x the measurement
range reads as 1.2 x the range (saturation; the driver treats anything beyond the range
as over range); instrument noise of 2e-5 x range per 10 ns sample, averaged down over
the averaging time; voltage measurement noise 50 uV; ``clear`` keeps the channel setup;
``initialize`` returns the channels to 0 V, disconnected, RSU on the SMU path. Timing
charged to the chip clock: 100 ms ``openSession``, 50 ms ``initialize``, 1 ms ``connect``,
2 ms to start an ``execute`` (plus the sequence's own duration), 0.5 ms per data or DC
call (options ``sim_wgfmu_*`` of the b1500 instrument override them).
"""

from __future__ import annotations

import ctypes
from collections import deque
from collections.abc import Callable
from ctypes import CFUNCTYPE, POINTER, c_char, c_char_p, c_double, c_int
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from memprog.core.probe_wiring import parse_pad
from memprog.sim_instruments.b1500 import OP_DC, OP_FASTIV, OP_PG, OP_SMU, SimB1500

if TYPE_CHECKING:  # pragma: no cover
    from memprog.sim_instruments.base import SimBench

# ---------------------------------------------------------------- wgfmu.h constants (copy)
NO_ERROR = 0
PARAMETER_OUT_OF_RANGE_ERROR = -1
ILLEGAL_STRING_ERROR = -2
CONTEXT_ERROR = -3
FUNCTION_NOT_SUPPORTED_ERROR = -4
COMMUNICATION_ERROR = -5
FW_ERROR = -6
LIBRARY_ERROR = -7
ERROR = -8
CHANNEL_NOT_FOUND_ERROR = -9
PATTERN_NOT_FOUND_ERROR = -10
EVENT_NOT_FOUND_ERROR = -11
PATTERN_ALREADY_EXISTS_ERROR = -12
SEQUENCER_NOT_RUNNING_ERROR = -13
RESULT_NOT_READY_ERROR = -14
RESULT_OUT_OF_DATE = -15

OPERATION_MODES = {OP_DC, OP_FASTIV, OP_PG, OP_SMU}
FORCE_RANGES = {
    3000: (-10.0, 10.0),
    3001: (-3.0, 3.0),
    3002: (-5.0, 5.0),
    3003: (-10.0, 0.0),
    3004: (0.0, 10.0),
}
MEASURE_MODES = {4000, 4001}
VOLTAGE_RANGES = {5001, 5002}
CURRENT_RANGES = {6001: 1e-6, 6002: 10e-6, 6003: 100e-6, 6004: 1e-3, 6005: 10e-3}
WARNING_LEVELS = {1000, 1001, 1002, 1003}
STATUS_COMPLETED, STATUS_IDLE = 10000, 10006
DATA_AVERAGED, DATA_RAW = 12000, 12001
GRID_S = 10e-9
V_ABS_MAX = 10.0
DT_MAX_S = 10995.11627775
MAX_VECTORS = 2_000_000  # [choice] simulator limit on one execution's breakpoints
MAX_STRING_BYTES = 1 << 20  # [choice] largest string buffer a call may describe (1 MiB)
MAX_CHANNEL_IDS = 64  # [choice] largest channel-id buffer (a B1500A holds 5 B1530A, 10 channels)
MAX_SEQUENCE_ENTRIES = 100_000  # [choice] largest addSequences count
ERROR_QUEUE_MAX = 1000  # [choice] texts kept by getError / getErrorSummary
ERROR_TEXT_MAX = 256  # [choice] characters kept of one error text

_PI = POINTER(c_int)
_PD = POINTER(c_double)
_PC = POINTER(c_char)

_SATURATION = 1.2  # [choice]
_NOISE_PER_RANGE = 2e-5  # [choice]
_V_NOISE = 50e-6  # [choice]


class _Fail(Exception):
    """A call that returns an error code (and queues its text)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


@dataclass
class _Event:
    name: str
    time_s: float
    points: int
    interval_s: float
    averaging_s: float
    raw: bool


@dataclass
class _Pattern:
    times: list[float]
    volts: list[float]
    events: dict[str, _Event] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.times[-1]


@dataclass
class _Setup:
    mode: int = OP_SMU
    force_range: int = 3000
    measure_mode: int = 4000
    current_range: int = 6004
    voltage_range: int = 5001
    force_delay: float = 0.0
    measure_delay: float = 0.0


def _grid(t: float) -> float:
    return round(t / GRID_S) * GRID_S


# ---------------------------------------------------------------- sizes of pointer arguments
#: pointer arguments that are arrays or string buffers: function -> {argument index:
#: (how its length is given, index of that argument, cap)}. "n": an int argument holds the
#: count; "size": an int pointer holds it (for a string buffer: its size in bytes, NUL
#: included). Shared with the served boundary (:mod:`.wgfmu_remote`).
SIZED: dict[str, dict[int, tuple[str, int, int]]] = {
    "WGFMU_doSelfCalibration": {1: ("size", 2, MAX_STRING_BYTES)},
    "WGFMU_doSelfTest": {1: ("size", 2, MAX_STRING_BYTES)},
    "WGFMU_getChannelIds": {0: ("size", 1, MAX_CHANNEL_IDS)},
    "WGFMU_getError": {0: ("size", 1, MAX_STRING_BYTES)},
    "WGFMU_getErrorSummary": {0: ("size", 1, MAX_STRING_BYTES)},
    "WGFMU_getWarningSummary": {0: ("size", 1, MAX_STRING_BYTES)},
    "WGFMU_addVectors": {1: ("n", 3, MAX_VECTORS), 2: ("n", 3, MAX_VECTORS)},
    "WGFMU_addSequences": {1: ("n", 3, MAX_SEQUENCE_ENTRIES), 2: ("n", 3, MAX_SEQUENCE_ENTRIES)},
    "WGFMU_getMeasureValues": {3: ("size", 2, MAX_VECTORS), 4: ("size", 2, MAX_VECTORS)},
}

#: ``wgfmu.h`` parameter names of the sized functions (for the error texts)
ARG_NAMES: dict[str, tuple[str, ...]] = {
    "WGFMU_doSelfCalibration": ("result", "detail", "size"),
    "WGFMU_doSelfTest": ("result", "detail", "size"),
    "WGFMU_getChannelIds": ("channelIds", "size"),
    "WGFMU_getError": ("error", "size"),
    "WGFMU_getErrorSummary": ("errorSummary", "size"),
    "WGFMU_getWarningSummary": ("warningSummary", "size"),
    "WGFMU_addVectors": ("patternName", "dTime", "voltage", "size"),
    "WGFMU_addSequences": ("chanId", "patternName", "loopCount", "size"),
    "WGFMU_getMeasureValues": ("chanId", "offset", "size", "time", "value"),
}


def arg_name(name: str, i: int) -> str:
    """The ``wgfmu.h`` name of argument ``i`` of ``name`` (``argument i`` if not listed)."""
    names = ARG_NAMES.get(name, ())
    return names[i] if i < len(names) else f"argument {i}"


def _capacity(arg: Any, elem: Any) -> int | None:
    """How many ``elem`` values the memory behind a pointer argument holds (None: unknown).

    ctypes arrays and instances know their size; ``byref``/``pointer``/``cast`` keep the
    object they point into; numpy's ``data_as`` keeps its array as ``_arr``. A pointer made
    from a bare address carries nothing, and only the caps protect it.
    """
    size = ctypes.sizeof(elem)
    if arg is None:
        return 0
    if isinstance(arg, ctypes.Array | ctypes._SimpleCData):  # noqa: SLF001
        return ctypes.sizeof(arg) // size
    if type(arg).__name__ == "CArgObject":  # byref(obj)
        obj = getattr(arg, "_obj", None)
        return ctypes.sizeof(obj) // size if obj is not None else None
    if isinstance(arg, ctypes._Pointer):  # noqa: SLF001
        if not arg:
            return 0
        arr = getattr(arg, "_arr", None)  # numpy ndarray.ctypes.data_as
        if arr is not None and hasattr(arr, "nbytes"):
            return int(arr.nbytes) // size
        objs = getattr(arg, "_objects", None)
        if isinstance(objs, dict) and len(objs) == 1:
            (obj,) = objs.values()
            if isinstance(obj, ctypes.Array) or (
                isinstance(obj, ctypes._SimpleCData) and not isinstance(obj, ctypes.c_void_p)  # noqa: SLF001
            ):
                return ctypes.sizeof(obj) // size
    return None


def _int_at(arg: Any) -> int | None:
    """The int an int-pointer argument points to (None: NULL or not readable here)."""
    if arg is None:
        return None
    if type(arg).__name__ == "CArgObject":
        arg = getattr(arg, "_obj", None)
    if isinstance(arg, ctypes._SimpleCData):  # noqa: SLF001
        return int(arg.value)
    if isinstance(arg, ctypes.Array | ctypes._Pointer) and (len(arg) if isinstance(arg, ctypes.Array) else bool(arg)):  # noqa: SLF001
        return int(arg[0])
    return None


def size_problem(name: str, argtypes: tuple[Any, ...], args: tuple[Any, ...]) -> str | None:
    """Why the sizes of a call are unsafe (None: safe), before anything is read or written.

    Every sized pointer's count must be 0..cap and fit the memory it describes; every
    other pointer must have room for one value.
    """
    if len(args) != len(argtypes):
        return None  # ctypes itself refuses a wrong argument count
    sized = SIZED.get(name, {})
    for i, (t, a) in enumerate(zip(argtypes, args, strict=True)):
        if not (isinstance(t, type) and issubclass(t, ctypes._Pointer)):  # noqa: SLF001
            continue
        spec = sized.get(i)
        cap_known = _capacity(a, t._type_)
        if spec is None:
            if a is not None and cap_known is not None and cap_known < 1:
                return f"{arg_name(name, i)} has room for {cap_known} values (allowed: at least 1)"
            continue
        kind, k, cap = spec
        count = args[k] if kind == "n" else _int_at(args[k])
        if kind == "n" and not isinstance(count, int):
            return None  # ctypes refuses a non-int count itself
        if count is None:
            continue  # a NULL size pointer: the function reports it
        what = ("" if kind == "n" else "*") + arg_name(name, k)
        if not 0 <= count <= cap:
            return f"{what}={count} is not allowed (allowed: 0-{cap})"
        if a is not None and cap_known is not None and count > cap_known:
            return (
                f"{what}={count} is not allowed (allowed: 0-{cap_known}, "
                f"the length of {arg_name(name, i)})"
            )
    return None


def checked_cfunction(
    name: str, argtypes: tuple[Any, ...], call: Callable[..., int], refuse: Callable[[str], int]
) -> Any:
    """A ctypes function pointer to ``call`` that checks its sizes first (:func:`size_problem`).

    Still a ``CFUNCTYPE(c_int, *argtypes)`` pointer (same argument conversion as the real
    DLL), but its Python-side arguments, which still know their buffers' lengths, are
    checked before the call: by the time ``call`` runs they are bare addresses. A call
    with unsafe sizes returns ``refuse(reason)`` and touches no memory.
    """
    proto = CFUNCTYPE(c_int, *argtypes)

    class _Checked(proto):  # type: ignore[valid-type,misc]
        _flags_ = proto._flags_
        _argtypes_ = proto._argtypes_
        _restype_ = proto._restype_

        def __call__(self, *args: Any) -> int:
            try:
                problem = size_problem(name, argtypes, args)
            except Exception:  # noqa: BLE001 - let ctypes report what it cannot convert
                problem = None
            if problem is not None:
                return refuse(problem)
            return super().__call__(*args)

    fn = _Checked(call)
    fn.__name__ = name
    return fn


class SimWgfmuLibrary:
    """The WGFMU instrument library, simulated on a :class:`SimBench` (see module docstring).

    Args:
        bench: the simulated bench (``ResourceManager(...).visalib.ensure_bench()``); the
            library opens its session to the simulated B1500A at the address given to
            ``WGFMU_openSession``, as the real library does over VISA.
    """

    def __init__(self, bench: SimBench) -> None:
        self.bench = bench
        self.mainframe: SimB1500 | None = None
        self.address = ""
        self.patterns: dict[str, _Pattern] = {}
        self._held = 0  # vectors held by all patterns (capped at MAX_VECTORS)
        self.sequences: dict[int, list[tuple[str, int]]] = {}
        self.setups: dict[int, _Setup] = {}
        self.errors: deque[str] = deque(maxlen=ERROR_QUEUE_MAX)
        self.summary: deque[str] = deque(maxlen=ERROR_QUEUE_MAX)
        self.results: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.expected: dict[int, int] = {}
        self.status = STATUS_IDLE
        self.elapsed_s = 0.0
        self.total_s = 0.0
        self.timeout_s = 100.0
        self.warning_level = 1002
        self.log_path: Path | None = None
        self.calls: deque[str] = deque(maxlen=10_000)  # last function names called, in order
        self.executions = 0
        self._rng = np.random.default_rng(bench.config.chip.seed + 1530)
        self._timing = {"open": 0.1, "init": 0.05, "connect": 1e-3, "execute": 2e-3, "io": 0.5e-3}
        for name, (argtypes, impl) in _FUNCTIONS.items():
            setattr(self, name, self._bind(name, argtypes, impl))

    # ------------------------------------------------------------------ ctypes plumbing
    def _bind(self, name: str, argtypes: tuple[Any, ...], impl: Callable[..., int]) -> Any:
        def call(*args: Any) -> int:
            self.calls.append(name)
            try:
                impl(self, *args)
                return NO_ERROR
            except _Fail as f:
                self._record(name, f.text)
                return f.code
            except Exception as exc:  # noqa: BLE001 - a C library never raises
                self._record(name, f"internal simulator error: {type(exc).__name__}: {exc}")
                return LIBRARY_ERROR

        def refuse(problem: str) -> int:
            self.calls.append(name)
            self._record(name, problem)
            return PARAMETER_OUT_OF_RANGE_ERROR

        return checked_cfunction(name, argtypes, call, refuse)

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
            raise _Fail(CONTEXT_ERROR, "no session is open (WGFMU_openSession)")
        return self.mainframe

    def _channel(self, ch: int) -> int:
        mf = self._session()
        if ch not in mf.wgfmu:
            raise _Fail(
                CHANNEL_NOT_FOUND_ERROR,
                f"channel {ch} is not installed (installed: {sorted(mf.wgfmu)})",
            )
        return ch

    def _setup(self, ch: int) -> _Setup:
        self._channel(ch)
        return self.setups.setdefault(ch, _Setup())

    @staticmethod
    def _name(raw: bytes | None, what: str = "pattern") -> str:
        if raw is None or raw == b"":
            raise _Fail(ILLEGAL_STRING_ERROR, f"empty {what} name")
        try:
            name = raw.decode("ascii")
        except UnicodeDecodeError:
            raise _Fail(ILLEGAL_STRING_ERROR, f"{what} name {raw!r} is not ASCII") from None
        if not name.isprintable():
            raise _Fail(ILLEGAL_STRING_ERROR, f"{what} name {raw!r}")
        return name

    def _pattern(self, raw: bytes | None) -> tuple[str, _Pattern]:
        name = self._name(raw)
        p = self.patterns.get(name)
        if p is None:
            raise _Fail(PATTERN_NOT_FOUND_ERROR, f"pattern {name!r} not found")
        return name, p

    @staticmethod
    def _out(ptr: Any, value: Any, what: str = "output") -> None:
        if not ptr:
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, f"{what} pointer is NULL")
        ptr[0] = value

    @staticmethod
    def _volt(v: float) -> float:
        if not np.isfinite(v) or abs(v) > V_ABS_MAX:
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, f"voltage {v} outside [-10, 10] V")
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
            raise _Fail(CONTEXT_ERROR, f"a session to {self.address} is already open")
        inst = self.bench.find(addr)
        if not isinstance(inst, SimB1500):
            raise _Fail(COMMUNICATION_ERROR, f"no B1500A answers at {addr}")
        if not inst.wgfmu:
            raise _Fail(CHANNEL_NOT_FOUND_ERROR, f"the B1500A at {addr} holds no B1530A")
        if inst.errors:
            code, text = inst.errors[0]
            raise _Fail(
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
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, f"timeout {timeout} s < 1 s")
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
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, "size pointer is NULL")
        n = min(int(size[0]), len(chans))
        if n < 0:
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, f"size {n}")
        for i in range(n):
            ids[i] = chans[i]
        size[0] = n

    # ================================================================== errors and warnings
    def _write_string(self, buf: Any, size: Any, text: str) -> None:
        data = text.encode("latin-1")
        if not size:
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, "size pointer is NULL")
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
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, f"warning level {level}")

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
            raise _Fail(ERROR, f"cannot open log file {path}: {exc}") from None
        self.log_path = path

    def _closeLogFile(self) -> None:
        self.log_path = None

    # ================================================================== channel setup
    def _setOperationMode(self, ch: int, mode: int) -> None:
        if mode not in OPERATION_MODES:
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, f"operation mode {mode}")
        self._setup(ch).mode = mode

    def _getOperationMode(self, ch: int, mode: Any) -> None:
        self._out(mode, self._setup(ch).mode, "operationMode")

    def _setForceVoltageRange(self, ch: int, rng: int) -> None:
        if rng not in FORCE_RANGES:
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, f"force voltage range {rng}")
        self._setup(ch).force_range = rng

    def _getForceVoltageRange(self, ch: int, rng: Any) -> None:
        self._out(rng, self._setup(ch).force_range, "forceVoltageRange")

    def _setMeasureMode(self, ch: int, mode: int) -> None:
        if mode not in MEASURE_MODES:
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, f"measure mode {mode}")
        self._setup(ch).measure_mode = mode

    def _getMeasureMode(self, ch: int, mode: Any) -> None:
        self._out(mode, self._setup(ch).measure_mode, "measureMode")

    def _setMeasureVoltageRange(self, ch: int, rng: int) -> None:
        if rng not in VOLTAGE_RANGES:
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, f"measure voltage range {rng}")
        self._setup(ch).voltage_range = rng

    def _getMeasureVoltageRange(self, ch: int, rng: Any) -> None:
        self._out(rng, self._setup(ch).voltage_range, "measureVoltageRange")

    def _setMeasureCurrentRange(self, ch: int, rng: int) -> None:
        if rng not in CURRENT_RANGES:
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, f"measure current range {rng}")
        self._setup(ch).current_range = rng

    def _getMeasureCurrentRange(self, ch: int, rng: Any) -> None:
        self._out(rng, self._setup(ch).current_range, "measureCurrentRange")

    def _setForceDelay(self, ch: int, delay: float) -> None:
        if not -50e-9 <= delay <= 50e-9:
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, f"force delay {delay} outside [-50, 50] ns")
        self._setup(ch).force_delay = delay

    def _getForceDelay(self, ch: int, delay: Any) -> None:
        self._out(delay, self._setup(ch).force_delay, "forceDelay")

    def _setMeasureDelay(self, ch: int, delay: float) -> None:
        if not -50e-9 <= delay <= 50e-9:
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, f"measure delay {delay} outside [-50, 50] ns")
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

    # ================================================================== patterns (offline)
    def _clear(self) -> None:
        self.patterns.clear()
        self._held = 0
        self.sequences.clear()
        self.errors.clear()
        self.summary.clear()
        self.results.clear()
        self.expected.clear()

    def _room(self, n: int) -> None:
        """Refuse ``n`` more vectors when the patterns would hold more than MAX_VECTORS."""
        held = self._held  # kept by every call that adds vectors (a sum would cost O(patterns))
        if held + n > MAX_VECTORS:
            raise _Fail(
                PARAMETER_OUT_OF_RANGE_ERROR,
                f"{n} more vectors: the patterns would hold {held + n}, at most {MAX_VECTORS} "
                "(simulator limit; WGFMU_clear frees them)",
            )

    def _createPattern(self, raw: bytes | None, v0: float) -> None:
        name = self._name(raw)
        if name in self.patterns:
            raise _Fail(PATTERN_ALREADY_EXISTS_ERROR, f"pattern {name!r} already exists")
        self._room(1)
        self.patterns[name] = _Pattern([0.0], [self._volt(v0)])
        self._held += 1

    def _add(self, p: _Pattern, dt: float, v: float) -> None:
        if not np.isfinite(dt) or dt < GRID_S * 0.999 or dt > DT_MAX_S:
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, f"dTime {dt} outside [1e-08, {DT_MAX_S}] s")
        self._room(1)
        v = self._volt(v)  # before anything is appended: times and volts stay the same length
        p.times.append(_grid(p.times[-1] + _grid(dt)))
        p.volts.append(v)
        self._held += 1

    def _addVector(self, raw: bytes | None, dt: float, v: float) -> None:
        _, p = self._pattern(raw)
        self._add(p, dt, v)

    def _addVectors(self, raw: bytes | None, dts: Any, vs: Any, size: int) -> None:
        _, p = self._pattern(raw)
        if not 1 <= size <= MAX_VECTORS or not dts or not vs:
            raise _Fail(
                PARAMETER_OUT_OF_RANGE_ERROR, f"size {size} outside [1, {MAX_VECTORS}] (or a NULL array)"
            )
        self._room(size)
        d = np.ctypeslib.as_array(dts, shape=(size,)).astype(float)
        v = np.ctypeslib.as_array(vs, shape=(size,)).astype(float)
        if not np.all(np.isfinite(d)) or d.min() < GRID_S * 0.999 or d.max() > DT_MAX_S:
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, f"a dTime outside [1e-08, {DT_MAX_S}] s")
        if not np.all(np.isfinite(v)) or np.abs(v).max() > V_ABS_MAX:
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, "a voltage outside [-10, 10] V")
        steps = np.round(d / GRID_S)
        t = p.times[-1] + np.cumsum(steps) * GRID_S
        p.times.extend(np.round(t / GRID_S) * GRID_S)
        p.volts.extend(v.tolist())
        self._held += size

    def _setVector(self, raw: bytes | None, t: float, v: float) -> None:
        _, p = self._pattern(raw)
        if not np.isfinite(t) or t < 0:
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, f"time {t} < 0")
        t = _grid(t)
        v = self._volt(v)
        times = np.asarray(p.times)
        hit = np.flatnonzero(np.abs(times - t) < GRID_S / 2)
        if hit.size:
            p.volts[int(hit[0])] = v
        else:
            k = int(np.searchsorted(times, t))
            self._room(1)
            p.times.insert(k, t)
            p.volts.insert(k, v)
            self._held += 1

    def _setMeasureEvent(
        self,
        raw: bytes | None,
        ev: bytes | None,
        t: float,
        points: int,
        interval: float,
        avg: float,
        rdata: int,
    ) -> None:
        _, p = self._pattern(raw)
        name = self._name(ev, "event")
        if name in p.events:
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, f"event {name!r} already set in this pattern")
        if not np.isfinite(t) or t < 0:
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, f"event time {t} < 0")
        if not 1 <= points <= MAX_VECTORS:
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, f"points {points} outside [1, {MAX_VECTORS}]")
        if not 10e-9 * 0.999 <= interval <= 1.34217728:
            raise _Fail(
                PARAMETER_OUT_OF_RANGE_ERROR, f"interval {interval} outside [10 ns, 1.34217728 s]"
            )
        if avg != 0 and not 10e-9 * 0.999 <= avg <= 0.02097152:
            raise _Fail(
                PARAMETER_OUT_OF_RANGE_ERROR,
                f"averaging time {avg} outside 0 or [10 ns, 20.97152 ms]",
            )
        if points > 1 and avg > interval * 1.0001:
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, f"averaging time {avg} > interval {interval}")
        if rdata not in (DATA_AVERAGED, DATA_RAW):
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, f"rawData {rdata}")
        p.events[name] = _Event(
            name, _grid(t), int(points), _grid(interval), _grid(avg), rdata == DATA_RAW
        )

    def _getPatternForceValueSize(self, raw: bytes | None, size: Any) -> None:
        _, p = self._pattern(raw)
        self._out(size, len(p.times), "size")

    # ================================================================== sequences
    def _addSequence(self, ch: int, raw: bytes | None, loops: float) -> None:
        self._channel(ch)
        name, _ = self._pattern(raw)
        if not np.isfinite(loops) or loops < 1 or loops != int(loops) or loops > 1e12:
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, f"loopCount {loops} (an integer 1 to 1e12)")
        self.sequences.setdefault(ch, []).append((name, int(loops)))
        self.results.pop(ch, None)

    def _addSequences(self, ch: int, names: Any, loops: Any, size: int) -> None:
        if not 1 <= size <= MAX_SEQUENCE_ENTRIES or not names or not loops:
            raise _Fail(
                PARAMETER_OUT_OF_RANGE_ERROR,
                f"size {size} outside [1, {MAX_SEQUENCE_ENTRIES}] (or a NULL array)",
            )
        for i in range(size):
            self._addSequence(ch, names[i], float(loops[i]))

    def _timeline(self, ch: int) -> tuple[np.ndarray, np.ndarray, list[tuple[float, _Event]]]:
        """Absolute breakpoints (t, v) of a channel's sequence and its events (start, event)."""
        ts: list[np.ndarray] = []
        vs: list[np.ndarray] = []
        events: list[tuple[float, _Event]] = []
        t0 = 0.0
        total = points = 0
        for name, loops in self.sequences.get(ch, []):
            p = self.patterns.get(name)
            if p is None:
                raise _Fail(
                    PATTERN_NOT_FOUND_ERROR,
                    f"pattern {name!r} of channel {ch}'s sequence was cleared",
                )
            pt, pv = np.asarray(p.times), np.asarray(p.volts)
            total += loops * pt.size
            if total > MAX_VECTORS:
                raise _Fail(
                    LIBRARY_ERROR,
                    f"more than {MAX_VECTORS} vectors in one execution (simulator limit)",
                )
            points += loops * sum(e.points for e in p.events.values())
            if points > MAX_VECTORS:
                raise _Fail(
                    LIBRARY_ERROR,
                    f"more than {MAX_VECTORS} measured points in one execution (simulator limit)",
                )
            dur = p.duration
            for e in p.events.values():
                if e.time_s + (e.points - 1) * e.interval_s + e.averaging_s > dur + GRID_S / 2:
                    raise _Fail(
                        PARAMETER_OUT_OF_RANGE_ERROR,
                        f"event {e.name!r} ends after pattern {name!r} ({dur:g} s)",
                    )
            offs = t0 + dur * np.arange(loops)
            ts.append((offs[:, None] + pt[None, :]).ravel())
            vs.append(np.tile(pv, loops))
            for e in sorted(p.events.values(), key=lambda x: x.time_s):
                events.extend((float(o), e) for o in offs)
            t0 += loops * dur
        if not ts:
            return np.zeros(0), np.zeros(0), []
        events.sort(key=lambda x: x[0] + x[1].time_s)
        return np.concatenate(ts), np.concatenate(vs), events

    def _getForceValueSize(self, ch: int, size: Any) -> None:
        self._channel(ch)
        t, _, _ = self._timeline(ch)
        self._out(size, float(t.size), "size")

    def _getInterpolatedForceValue(self, ch: int, time: float, value: Any) -> None:
        self._channel(ch)
        t, v, _ = self._timeline(ch)
        if t.size == 0:
            raise _Fail(CONTEXT_ERROR, f"channel {ch} has no sequence")
        if not 0 <= time <= t[-1]:
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, f"time {time} outside [0, {t[-1]:g}] s")
        self._out(value, float(_interp_right(time, t, v)), "forceValue")

    def _getMeasureTimeSize(self, ch: int, size: Any) -> None:
        self._channel(ch)
        _, _, events = self._timeline(ch)
        self._out(size, sum(e.points if e.raw else 1 for _, e in events), "size")

    def _exportAscii(self, raw: bytes | None) -> None:
        path = Path(self._name(raw, "file"))
        if not path.suffix:
            path = path.with_suffix(".csv")
        lines = ["pattern,time_s,voltage_v"]
        for name, p in self.patterns.items():
            lines += [f"{name},{t:.9g},{v:.6g}" for t, v in zip(p.times, p.volts, strict=True)]
        lines.append("pattern,event,time_s,points,interval_s,averaging_s,raw")
        for name, p in self.patterns.items():
            lines += [
                f"{name},{e.name},{e.time_s:.9g},{e.points},{e.interval_s:.9g},{e.averaging_s:.9g},{int(e.raw)}"
                for e in p.events.values()
            ]
        lines.append("channel,pattern,loops")
        for ch, seq in self.sequences.items():
            lines += [f"{ch},{name},{loops}" for name, loops in seq]
        try:
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        except OSError as exc:
            raise _Fail(ERROR, f"cannot write {path}: {exc}") from None

    # ================================================================== execution
    def _apply_setups(self, channels: list[int]) -> None:
        mf = self._session()
        for ch in channels:
            s = self._setup(ch)
            hw = mf.wgfmu[ch]
            hw.mode, hw.force_range = s.mode, s.force_range
            hw.measure_mode, hw.current_range, hw.voltage_range = (
                s.measure_mode,
                s.current_range,
                s.voltage_range,
            )

    def _update(self) -> None:
        mf = self._session()
        self._apply_setups(sorted(set(self.setups) | set(self.sequences)))
        for ch, seq in self.sequences.items():
            if seq and mf.wgfmu[ch].connected:
                mf.wgfmu[ch].level_v = self.patterns[seq[0][0]].volts[0]
        self._advance("io")

    def _execute(self) -> None:
        mf = self._session()
        chans = sorted(self.sequences)
        for ch in chans:
            hw = mf.wgfmu[ch]
            if not hw.connected:
                raise _Fail(
                    CONTEXT_ERROR,
                    f"channel {ch} has a sequence but is not connected (WGFMU_connect)",
                )
        self._apply_setups(sorted(set(self.setups) | set(chans)))
        waves: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        events: dict[int, list[tuple[float, _Event]]] = {}
        for ch in chans:
            hw = mf.wgfmu[ch]
            if hw.mode not in (OP_FASTIV, OP_PG):
                raise _Fail(
                    CONTEXT_ERROR, f"channel {ch} is not in Fast IV or PG mode (setOperationMode)"
                )
            if hw.mode == OP_PG and hw.measure_mode == 4001:
                raise _Fail(CONTEXT_ERROR, f"channel {ch}: PG mode measures voltage only")
            t, v, ev = self._timeline(ch)
            lo, hi = FORCE_RANGES[hw.force_range]
            if t.size and (v.min() < lo - 1e-12 or v.max() > hi + 1e-12):
                raise _Fail(
                    PARAMETER_OUT_OF_RANGE_ERROR,
                    f"channel {ch} outputs {v.min():g}..{v.max():g} V, outside its force range [{lo:g}, {hi:g}] V",
                )
            waves[ch] = (t, v)
            events[ch] = ev
        self._advance("execute")
        self.results.clear()
        self.expected = {
            ch: sum(e.points if e.raw else 1 for _, e in ev) for ch, ev in events.items()
        }
        duration = max((w[0][-1] for w in waves.values() if w[0].size), default=0.0)
        self.results = self._play(mf, waves, events, duration)
        for ch, (t, v) in waves.items():
            if t.size:
                mf.wgfmu[ch].level_v = float(v[-1])
        self.status = STATUS_COMPLETED
        self.elapsed_s = self.total_s = duration
        self.executions += 1

    def _play(
        self,
        mf: SimB1500,
        waves: dict[int, tuple[np.ndarray, np.ndarray]],
        events: dict[int, list[tuple[float, _Event]]],
        duration: float,
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Run the merged waveform on the chip, sampling every measure event on the way."""
        chip = mf.chip
        wiring = mf.wiring
        base_row, base_col = mf.line_voltages()
        # pads driven by a playing channel: (is_row, index, channel)
        played: list[tuple[bool, int, int]] = []
        if wiring is not None:
            for ch, pad in wiring.pads.items():
                if ch in waves:
                    side, idx = parse_pad(pad)
                    played.append((side == "top", idx, ch))
        grid = [np.array([0.0, duration])] + [w[0] for w in waves.values() if w[0].size]
        ticks = np.unique(np.round(np.concatenate(grid) / GRID_S).astype(np.int64))
        ticks = ticks[(ticks >= 0) & (ticks <= round(duration / GRID_S))]
        if ticks.size < 2:
            ticks = np.array([0, max(round(duration / GRID_S), 1)], dtype=np.int64)
        # Each piece between breakpoints is cut in two halves held at its start and end
        # levels: a linear edge then counts half at each end, so a trapezoid acts as a
        # rectangle of its full width at half maximum (the width convention of the other
        # stacks), and a flat part is exact. Times in half-grid units (5 ns).
        h = np.empty(2 * ticks.size - 1, dtype=np.int64)
        h[0::2] = 2 * ticks
        h[1::2] = ticks[:-1] + ticks[1:]
        half = GRID_S / 2
        eps = 1e-3 * half
        t_eval = np.empty(h.size - 1)
        t_eval[0::2] = h[0:-1:2] * half + eps  # start level (just after the breakpoint)
        t_eval[1::2] = h[2::2] * half - eps  # end level (just before the next breakpoint)
        nseg = t_eval.size
        rows = np.repeat(base_row[None, :], nseg, axis=0)
        cols = np.repeat(base_col[None, :], nseg, axis=0)
        for is_row, idx, ch in played:
            t, v = waves[ch]
            (rows if is_row else cols)[:, idx] = np.interp(t_eval, t, v) if t.size else 0.0
        # quiet pieces (bias below the chip's quiet level everywhere) only advance the clock
        allv = np.concatenate([rows, cols, np.zeros((nseg, 1))], axis=1)
        span = np.nanmax(allv, axis=1) - np.nanmin(allv, axis=1)
        active = span >= mf.quiet_v()
        # merge neighbouring pieces with identical biases
        same = np.zeros(nseg, dtype=bool)
        if nseg > 1:
            a = np.concatenate([rows, cols], axis=1)
            eq = (a[1:] == a[:-1]) | (np.isnan(a[1:]) & np.isnan(a[:-1]))
            same[1:] = eq.all(axis=1) & (active[1:] == active[:-1])
        starts = np.flatnonzero(~same)
        ends = np.append(starts[1:], nseg)
        seg_t0 = h[starts] * half
        seg_t1 = h[ends] * half
        # samples: (centre time, channel, index into that channel's values, averaging time)
        samples: list[tuple[float, int, int, float]] = []
        layout: dict[int, list[tuple[bool, list[int], float]]] = {}
        for ch, evs in events.items():
            k = 0
            lay = []
            for start, e in evs:
                idxs = []
                for j in range(e.points):
                    tc = start + e.time_s + j * e.interval_s + 0.5 * e.averaging_s
                    samples.append((tc, ch, k, e.averaging_s))
                    idxs.append(k)
                    k += 1
                lay.append((e.raw, idxs, start + e.time_s))
            layout[ch] = lay
        samples.sort(key=lambda s: s[0])
        values: dict[int, np.ndarray] = {
            ch: np.zeros(sum(len(x[1]) for x in lay)) for ch, lay in layout.items()
        }
        times: dict[int, np.ndarray] = {ch: np.zeros_like(v) for ch, v in values.items()}
        p = chip.params
        clock0 = chip.clock_s
        si = 0
        for k in range(starts.size):
            a, b = float(seg_t0[k]), float(seg_t1[k])
            n_half = int(h[ends[k]] - h[starts[k]])
            seg = int(starts[k])
            now = a
            while si < len(samples) and samples[si][0] < b:
                tc, ch, idx, avg = samples[si]
                if not active[seg] and tc > now:
                    chip.clock_s = clock0 + tc
                    now = tc
                values[ch][idx] = self._sample(mf, waves, played, base_row, base_col, ch, tc, avg)
                times[ch][idx] = tc
                si += 1
            if active[seg]:
                rv, cv = rows[seg], cols[seg]
                chip.clock_s = clock0 + a
                # half-ticks per chip pulse (<= width_max)
                chunk = max(int(p.width_max_s / half), 1)
                while n_half > 0:
                    m = min(n_half, chunk)
                    w = m * half
                    if w >= p.width_min_s * (1 - 1e-9):
                        chip.apply_line_voltages(rv, cv, max(w, p.width_min_s))
                    else:
                        chip.advance(w)
                    n_half -= m
            chip.clock_s = clock0 + b
        chip.clock_s = clock0 + duration
        out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for ch, lay in layout.items():
            tv: list[float] = []
            vv: list[float] = []
            for raw, idxs, _t_start in lay:
                if raw:
                    tv.extend(times[ch][idxs])
                    vv.extend(values[ch][idxs])
                else:
                    tv.append(float(0.5 * (times[ch][idxs[0]] + times[ch][idxs[-1]])))
                    vv.append(float(np.mean(values[ch][idxs])))
            out[ch] = (np.asarray(tv), np.asarray(vv))
        return out

    def _sample(
        self,
        mf: SimB1500,
        waves: dict[int, tuple[np.ndarray, np.ndarray]],
        played: list[tuple[bool, int, int]],
        base_row: np.ndarray,
        base_col: np.ndarray,
        ch: int,
        tc: float,
        avg: float,
    ) -> float:
        """One measured point of channel ``ch`` at time ``tc`` (current or voltage)."""
        hw = mf.wgfmu[ch]
        t, v = waves[ch]
        level = float(_interp_right(tc, t, v)) if t.size else hw.level_v
        if hw.measure_mode == 4000:
            return level + _V_NOISE * float(self._rng.standard_normal())
        rv, cv = base_row.copy(), base_col.copy()
        pad_of_ch: tuple[bool, int] | None = None
        for is_row, idx, c in played:
            tw, vw = waves[c]
            (rv if is_row else cv)[idx] = _interp_right(tc, tw, vw)
            if c == ch:
                pad_of_ch = (is_row, idx)
        rng = CURRENT_RANGES[hw.current_range]
        n_avg = max(avg / GRID_S, 1.0)
        noise = _NOISE_PER_RANGE * rng / np.sqrt(n_avg) * float(self._rng.standard_normal())
        if pad_of_ch is None:  # the probe of this channel touches nothing
            i = noise
        else:
            ir, ic = mf.line_currents(rv, cv)
            is_row, idx = pad_of_ch
            i = (float(ir[idx]) if is_row else -float(ic[idx])) + noise
        lim = _SATURATION * rng
        return float(np.clip(i, -lim, lim))

    def _abort(self) -> None:
        self._session()

    def _getStatus(self, status: Any, elapsed: Any, total: Any) -> None:
        self._session()
        self._out(status, self.status, "status")
        self._out(elapsed, self.elapsed_s, "elapsedTime")
        self._out(total, self.total_s, "totalTime")

    def _getChannelStatus(self, ch: int, status: Any, elapsed: Any, total: Any) -> None:
        self._channel(ch)
        self._getStatus(status, elapsed, total)

    def _waitUntilCompleted(self) -> None:
        self._session()

    # ================================================================== data retrieval
    def _getMeasureValueSize(self, ch: int, measured: Any, total: Any) -> None:
        self._channel(ch)
        n_total = self.expected.get(ch, 0)
        res = self.results.get(ch)
        self._out(measured, 0 if res is None else res[0].size, "measuredSize")
        self._out(total, n_total, "totalSize")
        self._advance("io")

    def _getMeasureValues(self, ch: int, offset: int, size: Any, times: Any, values: Any) -> None:
        self._channel(ch)
        res = self.results.get(ch)
        if res is None:
            raise _Fail(RESULT_NOT_READY_ERROR, f"channel {ch} has no measured values")
        t, v = res
        if not size or not times or not values:
            raise _Fail(PARAMETER_OUT_OF_RANGE_ERROR, "NULL pointer")
        want = int(size[0])
        if offset < 0 or offset > t.size or want < 0:
            raise _Fail(
                PARAMETER_OUT_OF_RANGE_ERROR, f"offset {offset} / size {want} outside [0, {t.size}]"
            )
        n = min(want, t.size - offset)
        if n:
            np.ctypeslib.as_array(times, shape=(n,))[:] = t[offset : offset + n]
            np.ctypeslib.as_array(values, shape=(n,))[:] = v[offset : offset + n]
        size[0] = n
        self._advance("io")

    def _getMeasureValue(self, ch: int, index: int, time: Any, value: Any) -> None:
        self._channel(ch)
        res = self.results.get(ch)
        if res is None:
            raise _Fail(RESULT_NOT_READY_ERROR, f"channel {ch} has no measured values")
        if not 0 <= index < res[0].size:
            raise _Fail(
                PARAMETER_OUT_OF_RANGE_ERROR, f"index {index} outside [0, {res[0].size - 1}]"
            )
        self._out(time, float(res[0][index]), "measureTime")
        self._out(value, float(res[1][index]), "measureValue")
        self._advance("io")

    def _getCompletedMeasureEventSize(self, ch: int, measured: Any, total: Any) -> None:
        self._channel(ch)
        _, _, events = self._timeline(ch)
        done = len(events) if ch in self.results else 0
        self._out(measured, done, "measuredSize")
        self._out(total, len(events), "totalSize")

    # ================================================================== DC mode
    def _dc_ready(self, ch: int) -> None:
        mf = self._session()
        self._channel(ch)
        self._apply_setups([ch])
        if mf.wgfmu[ch].mode != OP_DC:
            raise _Fail(CONTEXT_ERROR, f"channel {ch} is not in DC mode (setOperationMode)")
        if not mf.wgfmu[ch].connected:
            raise _Fail(CONTEXT_ERROR, f"channel {ch} is not connected (WGFMU_connect)")

    def _dcforceVoltage(self, ch: int, v: float) -> None:
        self._dc_ready(ch)
        mf = self._session()
        lo, hi = FORCE_RANGES[mf.wgfmu[ch].force_range]
        v = self._volt(v)
        if not lo <= v <= hi:
            raise _Fail(
                PARAMETER_OUT_OF_RANGE_ERROR,
                f"voltage {v} outside the force range [{lo:g}, {hi:g}] V",
            )
        mf.wgfmu[ch].level_v = v
        self._advance("io")

    def _dc_value(self, ch: int, averaging_s: float) -> float:
        mf = self._session()
        row_v, col_v = mf.line_voltages()
        mf.stress(row_v, col_v, max(averaging_s, 10e-9))
        hw = mf.wgfmu[ch]
        waves = {ch: (np.zeros(0), np.zeros(0))}
        played: list[tuple[bool, int, int]] = []
        if mf.wiring is not None and ch in mf.wiring.pads:
            side, idx = parse_pad(mf.wiring.pads[ch])
            played.append((side == "top", idx, ch))
            waves[ch] = (np.array([0.0]), np.array([hw.level_v]))
        return self._sample(mf, waves, played, row_v, col_v, ch, 0.0, averaging_s)

    def _dcmeasureValue(self, ch: int, value: Any) -> None:
        self._dc_ready(ch)
        self._out(value, self._dc_value(ch, 10e-9), "value")
        self._advance("io")

    def _dcmeasureAveragedValue(self, ch: int, count: int, interval: int, value: Any) -> None:
        self._dc_ready(ch)
        if not 1 <= count <= 65535 or not 1 <= interval <= 65535:
            raise _Fail(
                PARAMETER_OUT_OF_RANGE_ERROR,
                f"count {count} / interval {interval} outside [1, 65535]",
            )
        self._out(value, self._dc_value(ch, count * interval * 5e-9), "value")
        self._advance("io")


def _interp_right(x: float, xp: np.ndarray, fp: np.ndarray) -> float:
    """Piecewise-linear value at ``x``; at a jump (two points at one time) the later value."""
    k = int(np.searchsorted(xp, x, side="right"))
    if k <= 0:
        return float(fp[0])
    if k >= xp.size:
        return float(fp[-1])
    x0, x1 = xp[k - 1], xp[k]
    if x1 <= x0:
        return float(fp[k])
    return float(fp[k - 1] + (fp[k] - fp[k - 1]) * (x - x0) / (x1 - x0))


_L = SimWgfmuLibrary
#: every simulated function: (C argument types, implementation); all return int
_FUNCTIONS: dict[str, tuple[tuple[Any, ...], Callable[..., None]]] = {
    "WGFMU_openSession": ((c_char_p,), _L._openSession),
    "WGFMU_closeSession": ((), _L._closeSession),
    "WGFMU_initialize": ((), _L._initialize),
    "WGFMU_setTimeout": ((c_double,), _L._setTimeout),
    "WGFMU_doSelfCalibration": ((_PI, _PC, _PI), _L._doSelfCalibration),
    "WGFMU_doSelfTest": ((_PI, _PC, _PI), _L._doSelfTest),
    "WGFMU_getChannelIdSize": ((_PI,), _L._getChannelIdSize),
    "WGFMU_getChannelIds": ((_PI, _PI), _L._getChannelIds),
    "WGFMU_getErrorSize": ((_PI,), _L._getErrorSize),
    "WGFMU_getError": ((_PC, _PI), _L._getError),
    "WGFMU_getErrorSummarySize": ((_PI,), _L._getErrorSummarySize),
    "WGFMU_getErrorSummary": ((_PC, _PI), _L._getErrorSummary),
    "WGFMU_treatWarningsAsErrors": ((c_int,), _L._treatWarningsAsErrors),
    "WGFMU_setWarningLevel": ((c_int,), _L._setWarningLevel),
    "WGFMU_getWarningLevel": ((_PI,), _L._getWarningLevel),
    "WGFMU_getWarningSummarySize": ((_PI,), _L._getWarningSummarySize),
    "WGFMU_getWarningSummary": ((_PC, _PI), _L._getWarningSummary),
    "WGFMU_openLogFile": ((c_char_p,), _L._openLogFile),
    "WGFMU_closeLogFile": ((), _L._closeLogFile),
    "WGFMU_setOperationMode": ((c_int, c_int), _L._setOperationMode),
    "WGFMU_getOperationMode": ((c_int, _PI), _L._getOperationMode),
    "WGFMU_setForceVoltageRange": ((c_int, c_int), _L._setForceVoltageRange),
    "WGFMU_getForceVoltageRange": ((c_int, _PI), _L._getForceVoltageRange),
    "WGFMU_setMeasureMode": ((c_int, c_int), _L._setMeasureMode),
    "WGFMU_getMeasureMode": ((c_int, _PI), _L._getMeasureMode),
    "WGFMU_setMeasureVoltageRange": ((c_int, c_int), _L._setMeasureVoltageRange),
    "WGFMU_getMeasureVoltageRange": ((c_int, _PI), _L._getMeasureVoltageRange),
    "WGFMU_setMeasureCurrentRange": ((c_int, c_int), _L._setMeasureCurrentRange),
    "WGFMU_getMeasureCurrentRange": ((c_int, _PI), _L._getMeasureCurrentRange),
    "WGFMU_setForceDelay": ((c_int, c_double), _L._setForceDelay),
    "WGFMU_getForceDelay": ((c_int, _PD), _L._getForceDelay),
    "WGFMU_setMeasureDelay": ((c_int, c_double), _L._setMeasureDelay),
    "WGFMU_getMeasureDelay": ((c_int, _PD), _L._getMeasureDelay),
    "WGFMU_connect": ((c_int,), _L._connect),
    "WGFMU_disconnect": ((c_int,), _L._disconnect),
    "WGFMU_clear": ((), _L._clear),
    "WGFMU_createPattern": ((c_char_p, c_double), _L._createPattern),
    "WGFMU_addVector": ((c_char_p, c_double, c_double), _L._addVector),
    "WGFMU_addVectors": ((c_char_p, _PD, _PD, c_int), _L._addVectors),
    "WGFMU_setVector": ((c_char_p, c_double, c_double), _L._setVector),
    "WGFMU_setMeasureEvent": (
        (c_char_p, c_char_p, c_double, c_int, c_double, c_double, c_int),
        _L._setMeasureEvent,
    ),
    "WGFMU_addSequence": ((c_int, c_char_p, c_double), _L._addSequence),
    "WGFMU_addSequences": ((c_int, POINTER(c_char_p), _PD, c_int), _L._addSequences),
    "WGFMU_getPatternForceValueSize": ((c_char_p, _PI), _L._getPatternForceValueSize),
    "WGFMU_getForceValueSize": ((c_int, _PD), _L._getForceValueSize),
    "WGFMU_getInterpolatedForceValue": ((c_int, c_double, _PD), _L._getInterpolatedForceValue),
    "WGFMU_getMeasureTimeSize": ((c_int, _PI), _L._getMeasureTimeSize),
    "WGFMU_exportAscii": ((c_char_p,), _L._exportAscii),
    "WGFMU_update": ((), _L._update),
    "WGFMU_execute": ((), _L._execute),
    "WGFMU_abort": ((), _L._abort),
    "WGFMU_getStatus": ((_PI, _PD, _PD), _L._getStatus),
    "WGFMU_getChannelStatus": ((c_int, _PI, _PD, _PD), _L._getChannelStatus),
    "WGFMU_waitUntilCompleted": ((), _L._waitUntilCompleted),
    "WGFMU_getMeasureValueSize": ((c_int, _PI, _PI), _L._getMeasureValueSize),
    "WGFMU_getMeasureValues": ((c_int, c_int, _PI, _PD, _PD), _L._getMeasureValues),
    "WGFMU_getMeasureValue": ((c_int, c_int, _PD, _PD), _L._getMeasureValue),
    "WGFMU_getCompletedMeasureEventSize": ((c_int, _PI, _PI), _L._getCompletedMeasureEventSize),
    "WGFMU_dcforceVoltage": ((c_int, c_double), _L._dcforceVoltage),
    "WGFMU_dcmeasureValue": ((c_int, _PD), _L._dcmeasureValue),
    "WGFMU_dcmeasureAveragedValue": ((c_int, c_int, c_int, _PD), _L._dcmeasureAveragedValue),
}


__all__ = ["SimWgfmuLibrary", "checked_cfunction", "size_problem", "arg_name", "SIZED"]
