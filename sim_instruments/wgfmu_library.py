"""Simulated Keysight WGFMU instrument library: the functions of ``wgfmu.dll``, on the chip.

:class:`SimWgfmuLibrary` is an object whose attributes are the C functions of
``wgfmu.h`` (``WGFMU_openSession``, ``WGFMU_addVectors``, ``WGFMU_execute``, ...) with the
same arguments and the same return codes. Each attribute *is* a ctypes function pointer
(``CFUNCTYPE`` with the header's argument types) wrapping the simulator, so a call goes
through exactly the argument conversion a call into the real DLL goes through: strings
must be ``bytes``, ``byref``/``pointer``/arrays work as out-arguments, a wrong type raises
``ctypes.ArgumentError``. A driver cannot tell it from the ctypes binding of the real
library.

This module binds the functions; what they do lives in layers, each a module (bottom up):

* :mod:`.wgfmu_codes` -- ``wgfmu.h``'s return codes and enums, the simulator's caps;
* :mod:`.wgfmu_call_checks` -- sizes and counts of pointer arguments checked against the
  buffers they describe before any memory is touched;
* :mod:`.wgfmu_session` -- ``openSession``/``initialize``, the error queue and warnings,
  channel setup (kept by the library, applied to the channels by
  ``execute``/``update``/the DC functions), ``connect`` (closes a channel's RSU output
  relay);
* :mod:`.wgfmu_patterns` -- the offline calls (no session needed): ``clear``,
  ``createPattern``, ``addVector(s)``, ``setVector``, ``setMeasureEvent``, sequences,
  ``exportAscii``;
* :mod:`.wgfmu_execution` -- ``execute`` plays every connected channel's sequence on the
  chip's pads and samples the measure events;
* :mod:`.wgfmu_readout` -- the measured values and the DC-mode functions.

Every failing call returns its ``wgfmu.h`` code and queues a text for ``getError``. Timing
charged to the chip clock [choice]: 100 ms ``openSession``, 50 ms ``initialize``, 1 ms
``connect``, 2 ms to start an ``execute`` (plus the sequence's own duration), 0.5 ms per
data or DC call (options ``sim_wgfmu_*`` of the b1500 instrument override them).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from ctypes import POINTER, c_char, c_char_p, c_double, c_int
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from memprog.sim_instruments.b1500 import SimB1500
from memprog.sim_instruments.wgfmu_call_checks import checked_cfunction
from memprog.sim_instruments.wgfmu_codes import (
    ERROR_QUEUE_MAX,
    LIBRARY_ERROR,
    NO_ERROR,
    PARAMETER_OUT_OF_RANGE_ERROR,
    STATUS_IDLE,
    CallFailed,
)
from memprog.sim_instruments.wgfmu_patterns import HeldPattern
from memprog.sim_instruments.wgfmu_readout import WgfmuReadout
from memprog.sim_instruments.wgfmu_session import KeptSetup

if TYPE_CHECKING:  # pragma: no cover
    from memprog.sim_instruments.sim_bench import SimBench

_PI = POINTER(c_int)
_PD = POINTER(c_double)
_PC = POINTER(c_char)


class SimWgfmuLibrary(WgfmuReadout):
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
        self.patterns: dict[str, HeldPattern] = {}
        self._held = 0  # vectors held by all patterns (capped at MAX_VECTORS)
        self.sequences: dict[int, list[tuple[str, int]]] = {}
        self.setups: dict[int, KeptSetup] = {}
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
            except CallFailed as f:
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


__all__ = ["SimWgfmuLibrary"]
