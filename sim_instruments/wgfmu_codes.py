"""The numbers of ``wgfmu.h`` as the simulated WGFMU library uses them, and its caps.

Why a module of its own: every layer of :class:`.wgfmu_library.SimWgfmuLibrary` and the
served boundary (:mod:`.wgfmu_remote`) return the same ``wgfmu.h`` error codes, check the
same enums and respect the same caps; the simulator keeps its own copy of these numbers
(``memprog.drivers.wgfmu_constants`` is the driver's) so that a typo on one side is caught
by the other side's tests. :class:`CallFailed` is how an implementation says "return this code
and queue this text": the binding in :mod:`.wgfmu_library` turns it into the return value.

Choices where public sources are silent [choice]: the error queue and the summary keep
the last :data:`ERROR_QUEUE_MAX` texts, each cut to :data:`ERROR_TEXT_MAX` characters (so
neither can grow without bound); the patterns held at once hold at most
:data:`MAX_VECTORS` vectors in all, and one measure event at most :data:`MAX_VECTORS`
points.
"""

from __future__ import annotations

from memprog.sim_instruments.b1500_state import OP_DC, OP_FASTIV, OP_PG, OP_SMU

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


class CallFailed(Exception):
    """A call that returns an error code (and queues its text)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
