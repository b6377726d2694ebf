"""Strict output (issue 20): every command's ``--json`` parses with a strict parser (no
``NaN``/``Infinity``: a strict parser — ``jq``, ``JSON.parse`` — refuses them), and so do the
files and stored summaries memprog writes. Backend: the simulated benches, in-process
(typer's runner), small inputs, stuck cells included (sim_onchip row 0 has stuck devices)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from memprog.cli import app
from memprog.core.jsonout import dumps, sanitize, strict_loads
from memprog.store import open_store


def _refuse(name: str):
    raise ValueError(f"non-standard JSON constant {name}")


def _strict(text: str):
    return json.loads(text, parse_constant=_refuse)


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


def _run(args: list[str], codes=(0, 1)):
    out = _runner().invoke(app, args)
    assert out.exit_code in codes, (args, out.exit_code, out.stderr, out.exception)
    assert out.stdout.strip(), (args, out.stderr)
    return _strict(out.stdout), out


def test_the_encoder_maps_non_finite_to_null_and_numpy_to_python():
    doc = {
        "nan": float("nan"), "inf": float("inf"), "np_nan": np.float64("nan"),
        "arr": np.array([1.0, np.nan, -np.inf]), "i": np.int64(3), "b": np.bool_(True),
        "nested": [{"x": np.float32(0.5)}, (float("-inf"),)],
    }  # fmt: skip
    text = dumps(doc)
    back = _strict(text)
    assert back == {
        "nan": None, "inf": None, "np_nan": None, "arr": [1.0, None, None], "i": 3, "b": True,
        "nested": [{"x": 0.5}, [None]],
    }  # fmt: skip
    with pytest.raises(ValueError):
        strict_loads('{"a": NaN}')
    assert sanitize(float("nan")) is None and not math.isnan(sanitize(1.5))


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEMPROG_DB", f"sqlite:///{tmp_path / 'db.sqlite'}")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return tmp_path


def test_tune_on_stuck_cells_prints_strict_json(workdir):
    # rows 0-1, columns 4-7 of sim_onchip hold stuck devices: settled_us_mean was NaN
    d, _ = _run(["tune", "--bench", "sim_onchip", "--rows", "0:2", "--cols", "4:8",
                 "--target-us", "800", "--json", "--no-progress"])  # fmt: skip
    assert d["flags"].get("stuck", 0) >= 1
    # the mean is over the cells that have a settled read (the stuck ones have none)
    assert d["settled_us_mean"] is not None and 1 <= d["settled_us_n"] < d["cells"]
    # the stored summary is strict too (the dashboard and scripts read it back)
    store = open_store(None, read_only=True)
    summary = store.get_run(d["run_id"])["summary"]
    store.close()
    assert summary["settled_us_mean"] == d["settled_us_mean"]
    _strict(json.dumps(summary, allow_nan=False))


@pytest.mark.slow
def test_every_json_command_prints_strict_json(workdir):
    """One small run of each command that takes --json; each stdout parses strictly."""
    seen = {}
    seen["sim demo"], _ = _run(["sim", "demo", "--cells", "2", "--pulses", "4", "--json",
                                "--out", str(workdir / "demo.png")])  # fmt: skip
    seen["tune"], _ = _run(["tune", "--bench", "sim_onchip", "--rows", "0", "--cols", "4:8",
                            "--target-us", "800", "--json", "--no-progress"])  # fmt: skip
    seen["levels"], _ = _run(["levels", "--bench", "sim_onchip", "--levels", "3", "--start-us", "500",
                              "--protocol", "alibart", "--json", "--no-progress",
                              "--out", str(workdir / "lv.png")])  # fmt: skip
    m = np.full((2, 4), 800.0)
    np.savetxt(workdir / "map.csv", m, delimiter=",")
    seen["tune --map"], _ = _run(["tune", "--bench", "sim_onchip", "--map", str(workdir / "map.csv"),
                                  "--json", "--no-progress"])  # fmt: skip
    seen["program"], _ = _run(["program", str(workdir / "map.csv"), "--bench", "sim_onchip",
                               "--json", "--out", str(workdir / "rep")])  # fmt: skip
    # report.json, as written, parses strictly too
    _strict((workdir / "rep" / "report.json").read_text())
    seen["characterize"], _ = _run(["characterize", "--devices", "2", "--levels", "2", "--repeats", "1",
                                    "--reads", "2", "--disturb-cells", "4", "--json", "--no-progress"])  # fmt: skip
    for sub in (["summary"], ["runs"], ["variability"], ["reap"]):
        seen["db " + sub[0]], _ = _run(["db", *sub, "--json"])
    chips = _runner().invoke(app, ["sim", "chips", "--json"])
    if chips.exit_code == 0:  # `memprog sim chips` (issue 20, deliverable 1) where present
        seen["sim chips"] = _strict(chips.stdout)
    assert all(isinstance(v, dict) for v in seen.values()), seen.keys()
    assert seen["program"]["outcome"]["cells"] == 8


@pytest.mark.slow
def test_train_evaluate_and_insitu_print_strict_json(workdir):
    """The torch commands, with tiny options (a two-epoch half-moons network, 20 transfers,
    one in-situ epoch): ~30 s on a shared machine, hence slow."""
    w = workdir / "hm.pt"
    d, _ = _run(["train", "--dataset", "halfmoons", "--out", str(w), "--epochs", "2", "--json"])
    assert d["epochs"] == 2
    d, _ = _run(["evaluate", str(w), "--transfers", "20", "--json"])
    assert d["n_transfers"] == 20
    d, _ = _run(["insitu", "--epochs", "1", "--json", "--no-progress"])
    assert d["epochs"] == 1
