"""Bench time over ``memprog sim serve`` sockets equals bench time in-process (issue 20).

The same small tune runs on a shipped simulated bench in-process (``@memprog``) and through
pyvisa-py's real TCP transport against a fresh ``memprog sim serve`` of the same bench
file (same chip seed, same commands). The bench time each reports must be the clock of
the chip that did the work: before the fix the served bench reported wall time (0.17 s
for a tune whose settles alone take seconds of bench time).
"""

from __future__ import annotations

import numpy as np
import pytest

import memprog
from memprog.protocols.alibart import tune_alibart
from tests.sim_instruments.test_served_bench import _serve, _stop

#: bench -> (rows, cols, targets in µS): a few cells in each chip's range
JOBS = {
    "sim_onchip": ([0, 0, 1, 1], [0, 1, 0, 1], [400.0, 800.0, 1200.0, 1600.0]),
    "sim_k4200_707b": ([0, 1], [0, 1], [150.0, 300.0]),
}


def _tune(bench_file, job) -> tuple[float, float, np.ndarray]:
    """(bench time at the end, bench time the tune took, final conductances)."""
    rows, cols, targets = job
    with memprog.open_bench(bench_file) as b:
        t0 = b.bench_time_s
        res = tune_alibart(b.programmer, rows=rows, cols=cols, targets_us=targets)
        t1 = b.bench_time_s
    return t1, t1 - t0, np.asarray(res.final_us)


@pytest.mark.slow
@pytest.mark.parametrize("bench", sorted(JOBS))
def test_served_bench_time_equals_in_process(bench, tmp_path, monkeypatch):
    end_local, spent_local, g_local = _tune(bench, JOBS[bench])
    # the server's chip: the same chip, fresh (simulated chips are non-volatile: a second
    # state folder keeps the in-process run's state out of it)
    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(tmp_path / "served_chips"))
    served = _serve(bench, tmp_path)
    try:
        end_served, spent_served, g_served = _tune(served.bench_file, JOBS[bench])
    finally:
        _stop(served)
    # the same chip did the same work: the job really ran on both paths
    assert np.allclose(g_local, g_served, rtol=0.05)
    assert spent_local > 0.5  # settles and pulses: the figure is not a rounding error
    assert spent_served == pytest.approx(spent_local, rel=0.05)
    assert end_served == pytest.approx(end_local, rel=0.05)
