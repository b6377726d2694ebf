"""Constants and C prototypes of Keysight's B1530A WGFMU instrument library (``wgfmu.h``).

The numbers are those of the library header (``wgfmu.h``, "Agilent, 10-30-2008", as
distributed with the B1530A software and copied in public repositories such as
3it-inpaqt/B1530A_control). They are facts of the C API, so they are written out here once
and used by the ctypes binding (:mod:`memprog.drivers.wgfmu`), by the pattern builders and
by the tests. The simulated library (``memprog.sim_instruments.wgfmu_codes``) keeps its
own copy, because the simulator never imports drivers.

Every function of the library returns an ``int`` error code (0 = no error, negative =
error); values come back through pointer arguments. :data:`PROTOTYPES` lists the argument
types of each function memprog calls, so ctypes converts (and refuses) arguments exactly
as the C compiler would.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, c_char_p, c_double, c_int

# ---------------------------------------------------------------- error codes (return values)
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

ERROR_NAMES: dict[int, str] = {
    NO_ERROR: "WGFMU_NO_ERROR",
    PARAMETER_OUT_OF_RANGE_ERROR: "WGFMU_PARAMETER_OUT_OF_RANGE_ERROR",
    ILLEGAL_STRING_ERROR: "WGFMU_ILLEGAL_STRING_ERROR",
    CONTEXT_ERROR: "WGFMU_CONTEXT_ERROR",
    FUNCTION_NOT_SUPPORTED_ERROR: "WGFMU_FUNCTION_NOT_SUPPORTED_ERROR",
    COMMUNICATION_ERROR: "WGFMU_COMMUNICATION_ERROR",
    FW_ERROR: "WGFMU_FW_ERROR",
    LIBRARY_ERROR: "WGFMU_LIBRARY_ERROR",
    ERROR: "WGFMU_ERROR",
    CHANNEL_NOT_FOUND_ERROR: "WGFMU_CHANNEL_NOT_FOUND_ERROR",
    PATTERN_NOT_FOUND_ERROR: "WGFMU_PATTERN_NOT_FOUND_ERROR",
    EVENT_NOT_FOUND_ERROR: "WGFMU_EVENT_NOT_FOUND_ERROR",
    PATTERN_ALREADY_EXISTS_ERROR: "WGFMU_PATTERN_ALREADY_EXISTS_ERROR",
    SEQUENCER_NOT_RUNNING_ERROR: "WGFMU_SEQUENCER_NOT_RUNNING_ERROR",
    RESULT_NOT_READY_ERROR: "WGFMU_RESULT_NOT_READY_ERROR",
    RESULT_OUT_OF_DATE: "WGFMU_RESULT_OUT_OF_DATE",
}

# ---------------------------------------------------------------- self-test / calibration
PASS = 0
FAIL = 1

# ---------------------------------------------------------------- warning levels
WARNING_LEVEL_OFF = 1000
WARNING_LEVEL_SEVERE = 1001
WARNING_LEVEL_NORMAL = 1002
WARNING_LEVEL_INFORMATION = 1003

# ---------------------------------------------------------------- operation modes
OPERATION_MODE_DC = 2000
OPERATION_MODE_FASTIV = 2001
OPERATION_MODE_PG = 2002
OPERATION_MODE_SMU = 2003
OPERATION_MODES = {
    "dc": OPERATION_MODE_DC,
    "fastiv": OPERATION_MODE_FASTIV,
    "pg": OPERATION_MODE_PG,
    "smu": OPERATION_MODE_SMU,
}

# ---------------------------------------------------------------- force voltage ranges
FORCE_VOLTAGE_RANGE_AUTO = 3000
FORCE_VOLTAGE_RANGE_3V = 3001
FORCE_VOLTAGE_RANGE_5V = 3002
FORCE_VOLTAGE_RANGE_10V_NEGATIVE = 3003
FORCE_VOLTAGE_RANGE_10V_POSITIVE = 3004
FORCE_VOLTAGE_RANGES = {
    "auto": FORCE_VOLTAGE_RANGE_AUTO,
    "3V": FORCE_VOLTAGE_RANGE_3V,
    "5V": FORCE_VOLTAGE_RANGE_5V,
    "10V_negative": FORCE_VOLTAGE_RANGE_10V_NEGATIVE,
    "10V_positive": FORCE_VOLTAGE_RANGE_10V_POSITIVE,
}
# output span of each force range (V); auto chooses among the others
FORCE_VOLTAGE_SPAN_V: dict[int, tuple[float, float]] = {
    FORCE_VOLTAGE_RANGE_AUTO: (-10.0, 10.0),
    FORCE_VOLTAGE_RANGE_3V: (-3.0, 3.0),
    FORCE_VOLTAGE_RANGE_5V: (-5.0, 5.0),
    FORCE_VOLTAGE_RANGE_10V_NEGATIVE: (-10.0, 0.0),
    FORCE_VOLTAGE_RANGE_10V_POSITIVE: (0.0, 10.0),
}

# ---------------------------------------------------------------- measure modes and ranges
MEASURE_MODE_VOLTAGE = 4000
MEASURE_MODE_CURRENT = 4001

MEASURE_VOLTAGE_RANGE_5V = 5001
MEASURE_VOLTAGE_RANGE_10V = 5002
MEASURE_VOLTAGE_RANGES = {"5V": MEASURE_VOLTAGE_RANGE_5V, "10V": MEASURE_VOLTAGE_RANGE_10V}

MEASURE_CURRENT_RANGE_1UA = 6001
MEASURE_CURRENT_RANGE_10UA = 6002
MEASURE_CURRENT_RANGE_100UA = 6003
MEASURE_CURRENT_RANGE_1MA = 6004
MEASURE_CURRENT_RANGE_10MA = 6005
MEASURE_CURRENT_RANGES = {
    "1uA": MEASURE_CURRENT_RANGE_1UA,
    "10uA": MEASURE_CURRENT_RANGE_10UA,
    "100uA": MEASURE_CURRENT_RANGE_100UA,
    "1mA": MEASURE_CURRENT_RANGE_1MA,
    "10mA": MEASURE_CURRENT_RANGE_10MA,
}
# full scale of each current range (A)
CURRENT_RANGE_A: dict[int, float] = {
    MEASURE_CURRENT_RANGE_1UA: 1e-6,
    MEASURE_CURRENT_RANGE_10UA: 10e-6,
    MEASURE_CURRENT_RANGE_100UA: 100e-6,
    MEASURE_CURRENT_RANGE_1MA: 1e-3,
    MEASURE_CURRENT_RANGE_10MA: 10e-3,
}

MEASURE_ENABLED_DISABLE = 7000
MEASURE_ENABLED_ENABLE = 7001

TRIGGER_OUT_MODE_DISABLE = 8000
TRIGGER_OUT_MODE_START_EXECUTION = 8001
TRIGGER_OUT_MODE_START_SEQUENCE = 8002
TRIGGER_OUT_MODE_START_PATTERN = 8003
TRIGGER_OUT_MODE_EVENT = 8004
TRIGGER_OUT_POLARITY_POSITIVE = 8100
TRIGGER_OUT_POLARITY_NEGATIVE = 8101

AXIS_TIME = 9000
AXIS_VOLTAGE = 9001

# ---------------------------------------------------------------- sequencer status
STATUS_COMPLETED = 10000
STATUS_DONE = 10001
STATUS_RUNNING = 10002
STATUS_ABORT_COMPLETED = 10003
STATUS_ABORTED = 10004
STATUS_RUNNING_ILLEGAL = 10005
STATUS_IDLE = 10006
STATUS_NAMES = {
    STATUS_COMPLETED: "COMPLETED",
    STATUS_DONE: "DONE",
    STATUS_RUNNING: "RUNNING",
    STATUS_ABORT_COMPLETED: "ABORT_COMPLETED",
    STATUS_ABORTED: "ABORTED",
    STATUS_RUNNING_ILLEGAL: "RUNNING_ILLEGAL",
    STATUS_IDLE: "IDLE",
}

MEASURE_EVENT_NOT_COMPLETED = 11000
MEASURE_EVENT_COMPLETED = 11001

MEASURE_EVENT_DATA_AVERAGED = 12000
MEASURE_EVENT_DATA_RAW = 12001

# ---------------------------------------------------------------- timing grid of the sequencer
TIME_RESOLUTION_S = 10e-9  # vector times and event times are multiples of 10 ns
VECTOR_DT_MAX_S = 10995.11627775  # longest single vector
MEASURE_INTERVAL_MIN_S = 10e-9
MEASURE_INTERVAL_MAX_S = 1.34217728
AVERAGING_TIME_MAX_S = 0.020971520

# ---------------------------------------------------------------- C prototypes
_PI = POINTER(c_int)
_PD = POINTER(c_double)

#: argument types of every library function memprog binds (all return ``int``)
PROTOTYPES: dict[str, tuple[type, ...]] = {
    "WGFMU_openSession": (c_char_p,),
    "WGFMU_closeSession": (),
    "WGFMU_initialize": (),
    "WGFMU_setTimeout": (c_double,),
    "WGFMU_getChannelIdSize": (_PI,),
    "WGFMU_getChannelIds": (_PI, _PI),
    "WGFMU_getErrorSize": (_PI,),
    "WGFMU_getError": (c_char_p, _PI),
    "WGFMU_getErrorSummarySize": (_PI,),
    "WGFMU_getErrorSummary": (c_char_p, _PI),
    "WGFMU_setWarningLevel": (c_int,),
    "WGFMU_openLogFile": (c_char_p,),
    "WGFMU_closeLogFile": (),
    "WGFMU_setOperationMode": (c_int, c_int),
    "WGFMU_getOperationMode": (c_int, _PI),
    "WGFMU_setForceVoltageRange": (c_int, c_int),
    "WGFMU_getForceVoltageRange": (c_int, _PI),
    "WGFMU_setMeasureMode": (c_int, c_int),
    "WGFMU_getMeasureMode": (c_int, _PI),
    "WGFMU_setMeasureVoltageRange": (c_int, c_int),
    "WGFMU_setMeasureCurrentRange": (c_int, c_int),
    "WGFMU_getMeasureCurrentRange": (c_int, _PI),
    "WGFMU_setForceDelay": (c_int, c_double),
    "WGFMU_setMeasureDelay": (c_int, c_double),
    "WGFMU_connect": (c_int,),
    "WGFMU_disconnect": (c_int,),
    "WGFMU_clear": (),
    "WGFMU_createPattern": (c_char_p, c_double),
    "WGFMU_addVector": (c_char_p, c_double, c_double),
    "WGFMU_addVectors": (c_char_p, _PD, _PD, c_int),
    "WGFMU_setVector": (c_char_p, c_double, c_double),
    "WGFMU_setMeasureEvent": (c_char_p, c_char_p, c_double, c_int, c_double, c_double, c_int),
    "WGFMU_addSequence": (c_int, c_char_p, c_double),
    "WGFMU_addSequences": (c_int, POINTER(c_char_p), _PD, c_int),
    "WGFMU_getPatternForceValueSize": (c_char_p, _PI),
    "WGFMU_getInterpolatedForceValue": (c_int, c_double, _PD),
    "WGFMU_getMeasureTimeSize": (c_int, _PI),
    "WGFMU_exportAscii": (c_char_p,),
    "WGFMU_update": (),
    "WGFMU_execute": (),
    "WGFMU_abort": (),
    "WGFMU_getStatus": (_PI, _PD, _PD),
    "WGFMU_getChannelStatus": (c_int, _PI, _PD, _PD),
    "WGFMU_waitUntilCompleted": (),
    "WGFMU_getMeasureValueSize": (c_int, _PI, _PI),
    "WGFMU_getMeasureValues": (c_int, c_int, _PI, _PD, _PD),
    "WGFMU_getMeasureValue": (c_int, c_int, _PD, _PD),
    "WGFMU_dcforceVoltage": (c_int, c_double),
    "WGFMU_dcmeasureValue": (c_int, _PD),
    "WGFMU_dcmeasureAveragedValue": (c_int, c_int, c_int, _PD),
}


def bind_prototypes(lib: ctypes.CDLL) -> list[str]:
    """Set ``argtypes``/``restype`` of every function of :data:`PROTOTYPES` present in ``lib``.

    Returns the names the library does not export (older library versions lack a few).
    """
    missing = []
    for name, argtypes in PROTOTYPES.items():
        fn = getattr(lib, name, None)
        if fn is None:
            missing.append(name)
            continue
        fn.argtypes = list(argtypes)
        fn.restype = c_int
    return missing
