"""Traces are complete: every pulse a protocol sends and every read it takes is in the trace
(a burst or an averaged read is one record carrying ``n_reads``), checked against the
simulated chip's own counters (backend: in-process ``@memprog``), and ``--trace`` stores
them through the CLI (``memprog db export --traces``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from memprog import open_bench
from memprog.cli import app
from memprog.protocols.alibart import tune_alibart
from memprog.protocols.array import program_array
from memprog.protocols.denoise import tune_denoise
from memprog.protocols.events import MemorySink
from memprog.protocols.feedforward import tune_feedforward
from memprog.protocols.ladder import run_ladder


def _traced(sink: MemorySink) -> tuple[int, int]:
    pulses = sum(np.size(e["rows"]) for e in sink.events_of("pulse"))
    reads = sum(
        int(np.sum(np.broadcast_to(e.get("n_reads", 1), (np.size(e["rows"]),))))
        for e in sink.events_of("read")
    )
    return pulses, reads


@pytest.mark.parametrize(
    "job",
    [
        lambda p, s: tune_alibart(p, [0, 0, 1], [0, 1, 2], [1500.0, 2500.0, 900.0], sink=s),
        lambda p, s: tune_denoise(p, [0, 0, 1], [0, 1, 2], [1500.0, 2500.0, 900.0], sink=s),
        lambda p, s: program_array(p, np.full((3, 3), 1500.0), sink=s),
        lambda p, s: run_ladder(p, 0, 0, [1000.0, 1002.0, 1004.0], sink=s),
    ],
    ids=["alibart", "denoise", "array", "ladder"],
)
def test_trace_holds_every_pulse_and_read_the_chip_saw(job):
    with open_bench("sim_onchip") as b:
        chip = b.sim_chip
        p0, r0 = chip.pulse_count, chip.read_count
        sink = MemorySink(trace=True)
        job(b.programmer, sink)
        assert _traced(sink) == (chip.pulse_count - p0, chip.read_count - r0)
        assert chip.pulse_count > p0


def test_feedforward_trace_includes_its_characterisation():
    with open_bench("sim_onchip_tio2x") as b:
        sink = MemorySink(trace=True)
        res = tune_feedforward(b.programmer, [0, 0], [0, 1], [450.0, 460.0], sink=sink)
        char_pulses = int(res.extra["characterisation_pulses"].sum())
        pulses, reads = _traced(sink)
        assert pulses == int(res.pulses.sum()) + char_pulses
        # every characterisation pulse is followed by a read, and each run starts with one
        assert reads == int(res.reads.sum()) + char_pulses + 5 * res.rows.size


@pytest.mark.slow
def test_cli_trace_is_stored_and_exported(tmp_path):
    url = f"sqlite:///{tmp_path / 't.sqlite'}"
    r = CliRunner()
    t = r.invoke(app, ["tune", "--bench", "sim_k4200_707b", "--rows", "0", "--cols", "0:2",
                       "--target-us", "250", "--trace", "--db", url, "--json", "--no-progress"])  # fmt: skip
    assert t.exit_code in (0, 1), t.output
    rid = json.loads(t.stdout[t.stdout.index("{"):])["run_id"]
    out = tmp_path / "trace.csv"
    ex = r.invoke(app, ["db", "export", "--run", rid, "--traces", "--out", str(out), "--db", url, "--json"])
    assert ex.exit_code == 0, ex.output
    tr = pd.read_csv(out)
    cells = r.invoke(app, ["db", "export", "--run", rid, "--out", str(tmp_path / "c.csv"), "--db", url])
    assert cells.exit_code == 0
    c = pd.read_csv(tmp_path / "c.csv")
    for (row, col), g in tr.groupby(["row", "col"]):
        cell = c[(c.row == row) & (c.col == col)].iloc[0]
        assert (g.kind == "pulse").sum() == cell.pulses
        assert g.loc[g.kind == "read", "n_reads"].sum() == cell.reads
    assert set(tr.columns) >= {"record", "kind", "amplitude_v", "width_s", "g_us", "n_reads"}
    # a run stored without --trace has none: one line saying so
    t2 = r.invoke(app, ["tune", "--bench", "sim_k4200_707b", "--rows", "1", "--cols", "0",
                        "--target-us", "250", "--db", url, "--json", "--no-progress"])  # fmt: skip
    rid2 = json.loads(t2.stdout[t2.stdout.index("{"):])["run_id"]
    none = r.invoke(app, ["db", "export", "--run", rid2, "--traces", "--out", str(out), "--db", url])
    assert none.exit_code == 2 and "--trace" in (none.stderr if hasattr(none, "stderr") else none.output)
