"""Jobs: whole tasks built on the protocols — programming a trained network onto a chip
(:mod:`memprog.jobs.program` and its ``program_*`` parts: load, place, program, settle,
verify, run, report), training a network in the array itself (:mod:`memprog.jobs.insitu`
and its ``insitu_*`` parts, seed 002), evaluating a network on simulated chips
(``evaluate``), fetching weights by URL (``fetch``), job files (``jobfile``) and reading
back what a resumed run kept (``resume_reads``).

Floor 3, above the store, reporting, hwaware (placement, pair mapping and programming order
live there, shared with training) and the twin; below the dashboard and the CLI.

Why a sub-package: a job composes several subsystems (weight files, placement, write-verify
protocols, the run store, inference on the chip) that the lower layers must not know about.
"""

from memprog.jobs.program import ProgramParams, ProgramReport, run_program, write_report
from memprog.jobs.weights import ConductanceMap, Network, load_program_input, load_test_set

__all__ = [
    "ConductanceMap",
    "Network",
    "ProgramParams",
    "ProgramReport",
    "load_program_input",
    "load_test_set",
    "run_program",
    "write_report",
]
