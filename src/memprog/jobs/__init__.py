"""Jobs: whole tasks built on the protocols — programming a trained network onto a chip
(:mod:`memprog.jobs.program`: load, place, program, settle, verify, run, report) and
training a network in the array itself (:mod:`memprog.jobs.insitu`, seed 002).

Why a sub-package: a job composes several subsystems (weight files, placement, write-verify
protocols, the run store, inference on the chip) that the lower layers must not know about.
"""

from memprog.hwaware.mapping import weights_to_pairs
from memprog.hwaware.placement import Placement, Tile, place_network
from memprog.jobs.program import ProgramParams, ProgramReport, run_program, write_report
from memprog.jobs.weights import ConductanceMap, Network, load_program_input, load_test_set

__all__ = [
    "ConductanceMap",
    "Network",
    "Placement",
    "ProgramParams",
    "ProgramReport",
    "Tile",
    "load_program_input",
    "load_test_set",
    "place_network",
    "run_program",
    "weights_to_pairs",
    "write_report",
]
