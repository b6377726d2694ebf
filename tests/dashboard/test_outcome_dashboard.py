"""The same numbers everywhere, colours that never lie (issue 20): one program run and one
tune run on the simulated on-chip bench (in-process CLI), then their counts compared across
the CLI's ``--json``, ``report.json``, the stored run summary and the dashboard's API
(Starlette's test client over the read-only store); the colour table the dashboard serves
and the PNGs draw with."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from starlette.testclient import TestClient
from typer.testing import CliRunner

from memprog.cli import app
from memprog.dashboard import create_app
from memprog.protocols.results import FLAG_WORDS, TuneResult
from memprog.reporting.outcome import (
    BENIGN_FLAGS,
    CATEGORY_COLOURS,
    ERROR_CMAP,
    ERROR_COLOURSCALE,
    FLAG_COLOURS,
    WITHIN,
    flag_colour,
    palette,
)
from memprog.store import open_store

LOCAL = "http://127.0.0.1"
COUNTS = ("cells", "categories", "converged", "within_tolerance", "stuck", "working",
          "working_within_tolerance", "failed", "flags", "ok", "exit_code")  # fmt: skip
PAIRS = ("pairs", "pairs_within_tolerance", "pairs_failed", "pairs_dead", "weights", "weights_dead")


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A program run (a 12-10-4 network, two copies, a test set) and a tune run with stuck
    cells, in one store; the CLI documents and the program's report.json."""
    tmp = tmp_path_factory.mktemp("outcome")
    mp = pytest.MonkeyPatch()
    mp.setenv("MEMPROG_DB", f"sqlite:///{tmp / 'db.sqlite'}")
    mp.setenv("MEMPROG_SIM_STATE_DIR", str(tmp / "chips"))
    mp.setenv("MPLBACKEND", "Agg")
    g = torch.Generator().manual_seed(3)
    torch.save({"fc0.weight": torch.randn(10, 12, generator=g), "fc0.bias": torch.randn(10, generator=g),
                "fc1.weight": torch.randn(4, 10, generator=g), "fc1.bias": torch.randn(4, generator=g)},
               tmp / "w.pt")  # fmt: skip
    from memprog.jobs import load_program_input

    net = load_program_input(tmp / "w.pt")
    x = np.random.default_rng(3).random((80, 12))
    np.savez(tmp / "test.npz", x=x, y=net.predict(x))
    r = _runner()
    prog = r.invoke(app, ["program", str(tmp / "w.pt"), "--test-set", str(tmp / "test.npz"),
                          "--json", "--out", str(tmp / "rep")])  # fmt: skip
    assert prog.exit_code in (0, 1), prog.stderr
    tune = r.invoke(app, ["tune", "--bench", "sim_onchip", "--rows", "0:8", "--cols", "0:8",
                          "--target-us", "800", "--json", "--no-progress"])  # fmt: skip
    assert tune.exit_code in (0, 1), tune.stderr
    out = {
        "program": json.loads(prog.stdout),
        "program_code": prog.exit_code,
        "report": json.loads((tmp / "rep" / "report.json").read_text()),
        "tune": json.loads(tune.stdout),
        "tune_code": tune.exit_code,
        "url": f"sqlite:///{tmp / 'db.sqlite'}",
    }
    mp.undo()
    ro = open_store(out["url"], read_only=True)
    out["store"] = ro
    out["client"] = TestClient(create_app(ro), base_url=LOCAL)
    yield out
    ro.close()


@pytest.mark.slow
def test_program_counts_agree_everywhere(runs):
    cli, rep = runs["program"], runs["report"]
    stored = runs["store"].get_run(cli["run_id"])["summary"]
    api = runs["client"].get(f"/api/runs/{cli['run_id']}").json()
    docs = {"cli": cli["outcome"], "report.json": rep["outcome"], "store": stored["outcome"],
            "dashboard": api["outcome"]}  # fmt: skip
    for key in COUNTS + PAIRS:
        values = {name: d[key] for name, d in docs.items()}
        assert len({json.dumps(v, sort_keys=True) for v in values.values()}) == 1, (key, values)
    assert sum(cli["outcome"]["categories"].values()) == cli["cells_total"]
    # the headline numbers of each place are the outcome's
    assert cli["cells_within_tolerance"] == rep["cells_within_tolerance"] == api["within_tolerance"]
    assert cli["cells_converged"] == api["converged"] == rep["cells_converged"]
    assert runs["program_code"] == cli["outcome"]["exit_code"]
    # the accuracy rule: the dashboard judges with the job's figures
    assert api["outcome"]["accuracy"] == cli["outcome"]["accuracy"]
    # report.json and the console state the same wall times under the same names
    assert rep["wall_s"] == cli["wall_s"] and rep["job_wall_s"] == cli["job_wall_s"]
    assert rep["job_wall_s"] <= rep["wall_s"]


def test_tune_counts_agree_everywhere(runs):
    cli = runs["tune"]
    stored = runs["store"].get_run(cli["run_id"])["summary"]
    api = runs["client"].get(f"/api/runs/{cli['run_id']}").json()
    assert cli["outcome"]["stuck"] >= 1  # the run has stuck cells
    for key in COUNTS:
        assert cli["outcome"][key] == stored["outcome"][key] == api["outcome"][key], key
    assert cli["within_tolerance"] == api["within_tolerance"] and cli["converged"] == api["converged"]
    assert api["flag_counts"] == cli["flags"]
    assert runs["tune_code"] == cli["outcome"]["exit_code"]


def test_each_flag_has_its_own_colour_never_a_benign_one():
    assert set(FLAG_WORDS) <= set(FLAG_COLOURS)
    colours = [FLAG_COLOURS[w] for w in FLAG_WORDS]
    assert len(set(colours)) == len(colours), "two flags share a colour"
    benign = {FLAG_COLOURS[w] for w in BENIGN_FLAGS} | {CATEGORY_COLOURS[WITHIN]}
    for w in FLAG_WORDS:
        if w not in BENIGN_FLAGS:
            assert FLAG_COLOURS[w] not in benign, w
    # the cases: drifted_out is not painted as relaxed; drifted_out != at_voltage_cap
    assert flag_colour("drifted_out") != flag_colour("relaxed")
    assert flag_colour("drifted_out") != flag_colour("at_voltage_cap")
    # a flag word from a newer protocol gets a failure colour, not a benign one
    assert flag_colour("some_new_failure") not in benign


def test_error_scale_is_the_pngs_colormap():
    import matplotlib

    cmap = matplotlib.colormaps[ERROR_CMAP]
    for t, hexc in ERROR_COLOURSCALE:
        want = np.array(cmap(float(t))[:3]) * 255
        got = np.array([int(hexc[k : k + 2], 16) for k in (1, 3, 5)])
        assert np.abs(want - got).max() <= 1, (t, hexc)
    # orientation: negative errors blue, positive red (as the PNGs' "coolwarm")
    lo, hi = ERROR_COLOURSCALE[0][1], ERROR_COLOURSCALE[-1][1]
    assert int(lo[5:7], 16) > int(lo[1:3], 16) and int(hi[1:3], 16) > int(hi[5:7], 16)


def test_dashboard_serves_the_one_colour_table(runs):
    cli = runs["tune"]
    c = runs["client"]
    maps = c.get(f"/api/runs/{cli['run_id']}/maps").json()
    run = c.get(f"/api/runs/{cli['run_id']}").json()
    assert maps["palette"] == run["palette"] == json.loads(json.dumps(palette()))
    # the page takes its colours from that table: no colour table of its own in the JS
    js = c.get("/static/common.js").text + c.get("/static/run.js").text
    assert "setPalette(m.palette)" in js and "MP.ERROR_SCALE" in js
    for w, col in FLAG_COLOURS.items():
        assert col not in js, (w, col)


@pytest.mark.slow
def test_the_tune_png_paints_a_drifted_cell_in_its_own_colour(tmp_path):
    """The PNG marks a drifted_out cell in drifted_out's colour (before: a black x for every
    non-converged cell, whatever its reason)."""
    import matplotlib.image as mpimg

    from memprog.cli.tune import _plot_tune

    n = 16
    flags = np.array([""] * n, dtype=object)
    flags[5] = "relaxed,drifted_out"
    res = TuneResult("alibart", np.arange(n) // 4, np.arange(n) % 4, np.full(n, 300.0),
                     np.full(n, 300.5), np.ones(n), np.ones(n), np.arange(n) != 5, flags, 3.0)  # fmt: skip
    png = tmp_path / "t.png"
    _plot_tune(res, "hfo2_1t1r", png)
    img = (mpimg.imread(png)[..., :3] * 255).round()
    want = np.array([int(FLAG_COLOURS["drifted_out"][k : k + 2], 16) for k in (1, 3, 5)])
    assert (np.abs(img - want).max(axis=-1) <= 2).sum() > 10
