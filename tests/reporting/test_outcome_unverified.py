"""A cell the protocol gave up on is not "within tolerance" on the strength of its last read
(review: ``tune --max-pulses 2`` exited 0 with no cell converged). Its last read came
before the settle, so the record would claim what the chip may no longer hold. Backends:
none for the unit tests; the @memprog on-chip simulated bench for the CLI one."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from memprog.cli import app
from memprog.reporting.outcome import cell_outcome, describe, program_outcome


def test_a_given_up_cell_read_in_band_counts_by_why_it_stopped():
    flags = ["pulse_budget", "", "stuck", "noisy"]
    conv = [False, True, False, False]
    within = [True, True, True, False]
    o = cell_outcome(flags, conv, within)
    assert o["unverified_in_band"] == 1  # the stuck cell is the chip's, not counted
    assert o["categories"]["pulse_budget"] == 1 and o["categories"]["noisy"] == 1
    assert o["working_within_tolerance"] == 1 and o["failed"] == 2 and not o["ok"]
    assert o["within_tolerance"] == 3  # the raw reads are still reported as read
    assert "not verified after the settle" in describe(o)
    # accepted cells and stuck ones are unchanged
    ok = cell_outcome(["", "stuck"], [True, False], [True, False])
    assert ok["ok"] and ok["unverified_in_band"] == 0


def test_reads_taken_after_the_settle_keep_counting():
    # the program job reads every cell after its settle: an unaccepted cell in band is in band
    flags, conv, within = ["pulse_budget", ""], [False, True], [True, True]
    assert cell_outcome(flags, conv, within, reads_verified=True)["ok"]
    m = program_outcome(flags, conv, within, pairs=None)
    assert m["ok"] and m["pairs_failed"] == 0 and m["unverified_in_band"] == 0
    # a ladder's levels are judged by their own verification after the settle
    assert cell_outcome(None, [False], [True], kind="levels")["ok"]


@pytest.mark.slow
def test_tune_with_a_two_pulse_budget_does_not_claim_unverified_cells(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(tmp_path / "sim"))
    monkeypatch.setenv("MEMPROG_DB", f"sqlite:///{tmp_path / 'runs.db'}")
    try:
        r = CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        r = CliRunner()
    args = ["tune", "--bench", "sim_onchip", "--protocol", "predictive", "--rows", "0",
            "--cols", "0:2", "--target-us", "500", "--max-pulses", "2", "--json", "--no-progress"]  # fmt: skip
    res = r.invoke(app, args)
    d = json.loads(res.stdout)
    o = d["outcome"]
    assert o["converged"] == 0  # two pulses cannot accept a cell from its fresh state
    assert o["working_within_tolerance"] == 0 and res.exit_code == 1
    # (seeded chip: one of the two reads in band after its second pulse, never verified)
    assert o["unverified_in_band"] >= 1 and o["categories"]["pulse_budget"] == 2


def test_the_dashboard_trusts_a_program_runs_rows_only_once_it_finished():
    """A running or interrupted program run's rows are the protocols' (not yet settled and
    verified by the job): the dashboard counts them as the CLI counts a tune."""
    import pandas as pd

    from memprog.dashboard.cell_figures import cell_stats

    cells = pd.DataFrame({
        "row": [0, 0], "col": [0, 1], "target_us": [100.0, 100.0], "final_us": [100.5, 100.2],
        "tolerance_us": [1.0, 1.0], "converged": [False, True], "flags": ["pulse_budget", ""],
    })  # fmt: skip
    done = cell_stats(cells, kind="program", complete=True)["outcome"]
    running = cell_stats(cells, kind="program", complete=False)["outcome"]
    assert done["unverified_in_band"] == 0 and done["working_within_tolerance"] == 2
    assert running["unverified_in_band"] == 1 and running["working_within_tolerance"] == 1
