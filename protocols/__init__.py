"""Write-verify algorithms on batches of cells, through the CellProgrammer interface.

* :mod:`.alibart` — Alibart adaptive write-verify (``tune_alibart``, ``AlibartParams``)
* :mod:`.feedforward` — Diao's feedforward linear potentiation (``FeedforwardTuner``)
* :mod:`.denoise` — Rao's RTN-denoising high-resolution write-verify (``DenoiseTuner``)
* :mod:`.registry` — every protocol by name: settings, tuner, re-tune rule, capabilities (``get``)
* :mod:`.array` — whole-array programming: order, batches, re-verify, resume (``ArrayJob``)
* :mod:`.ladder` — the level ladder of the precision papers (``run_ladder``)
* :mod:`.predictive` — learns each cell's response from its own pulses (``tune_predictive``)
* :mod:`.settle` — relaxation: wait, re-verify, re-tune (``reverify``)
* :mod:`.characterize` / :mod:`.characterize_twin` — what ``memprog characterize`` measures
* :mod:`.programmer` — the ``CellProgrammer`` interface the drivers implement
* :mod:`.common` — checks and helpers every protocol shares (cells, targets, progress)
* :mod:`.results` / :mod:`.events` — per-cell results (``TuneResult``) and event sinks

Floor 1: imports only :mod:`memprog.core`; never a driver or the simulator, so the same
algorithm drives one device on a 4200A and 65,536 cells on the on-chip controller.
"""

from memprog.protocols.alibart import AlibartParams, tune_alibart
from memprog.protocols.array import ArrayJob, ArrayParams, program_array
from memprog.protocols.denoise import DenoiseTuner, tune_denoise
from memprog.protocols.denoise_params import DenoiseParams
from memprog.protocols.events import EventSink, MemorySink, NullSink
from memprog.protocols.feedforward import FeedforwardParams, FeedforwardTuner, tune_feedforward
from memprog.protocols.ladder import LadderResult, run_ladder
from memprog.protocols.programmer import CellProgrammer, ProgrammerInfo
from memprog.protocols.results import TuneResult

__all__ = [
    "CellProgrammer",
    "ProgrammerInfo",
    "AlibartParams",
    "tune_alibart",
    "FeedforwardParams",
    "FeedforwardTuner",
    "tune_feedforward",
    "DenoiseParams",
    "DenoiseTuner",
    "tune_denoise",
    "ArrayParams",
    "ArrayJob",
    "program_array",
    "LadderResult",
    "run_ladder",
    "TuneResult",
    "EventSink",
    "MemorySink",
    "NullSink",
]
