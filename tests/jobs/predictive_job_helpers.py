"""The predictive program job on a small network, and what the chip holds a settle later
(shared by the tests of the job's first batch and of its settle rounds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import memprog
from memprog.jobs import ProgramParams, load_program_input, run_program
from memprog.protocols.events import MemorySink
from tests.weights_helpers import save_random_net


def predictive_job_held(tmp_path: Path) -> tuple[Any, np.ndarray, list[dict[str, Any]]]:
    """Program a 12-10-4 network with ``predictive`` on a fresh ``sim_onchip`` chip; return
    the job's report, each cell's 16-read mean 5 s after the job, and the job's events."""
    net = load_program_input(save_random_net(tmp_path / "w.pt", (12, 10, 4), 0))
    sink = MemorySink()
    with memprog.open_bench("sim_onchip") as b:
        prog = b.programmer
        rep = run_program(b, net, ProgramParams(protocol="predictive"), sink=sink)
        prog.wait(5.0)
        g = prog.read_burst(rep.result.rows, rep.result.cols, 16).mean(axis=0)
    return rep, g, sink.events
