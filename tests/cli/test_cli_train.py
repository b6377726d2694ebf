"""`memprog train` / `memprog evaluate` end to end (preset variability; the DB path is in
test_hwaware_db.py). Backend: torch on the CPU, no bench."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from memprog.cli import app
from memprog.hwaware.mapping import load_weights
from memprog.hwaware.training import train
from memprog.hwaware.variability import VariabilityModel

runner = CliRunner()


def _json(res):
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.mark.slow
def test_train_then_evaluate_json_and_png(tmp_path):
    out = tmp_path / "w.pt"
    s = _json(runner.invoke(app, ["train", "--dataset", "halfmoons", "--hardware-aware", "--epochs", "3",
                                  "--seed", "2", "--out", str(out), "--json"]))
    assert s["hardware_aware"] is True and s["epochs"] == 3 and s["variability_source"] == "preset:tio2_passive"
    w = load_weights(out)
    assert w["sizes"] == [2, 8, 1] and w["mapping"] == {"scheme": "differential", "g_min_us": 100.0, "g_max_us": 400.0, "bias_scale": "own"}
    png = tmp_path / "eval.png"
    e = _json(runner.invoke(app, ["evaluate", str(out), "--transfers", "200", "--png", str(png), "--json"]))
    assert e["n_transfers"] == 200 and e["n_test_points"] == 200
    assert {"test_accuracy_mean", "fraction_correct_in_at_least_95pct", "table"} <= set(e)
    assert [r["bin"] for r in e["table"]] == ["100", "95-100", "90-95", "80-90", "70-80", "60-70", "50-60", "<50"]
    assert png.stat().st_size > 10_000
    human = runner.invoke(app, ["evaluate", str(out), "--transfers", "50"])
    assert human.exit_code == 0 and "95-100" in human.stdout


def test_same_seed_same_weights():
    v = VariabilityModel.from_preset("tio2_passive")
    a = train("halfmoons", v, hardware_aware=True, epochs=2, seed=7).weights["state_dict"]
    b = train("halfmoons", v, hardware_aware=True, epochs=2, seed=7).weights["state_dict"]
    c = train("halfmoons", v, hardware_aware=True, epochs=2, seed=8).weights["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_digits_network_shapes():
    v = VariabilityModel.from_preset("tio2_passive")
    r = train("digits", v, hardware_aware=True, epochs=1, seed=0)
    sd = r.weights["state_dict"]
    assert sd["layers.0.weight"].shape == (54, 64) and sd["layers.1.weight"].shape == (10, 54)
    assert r.weights["output"] == "softmax"
    assert np.isfinite(r.losses).all()


def test_bad_input_exits_2(tmp_path):
    res = runner.invoke(app, ["train", "--dataset", "mnist", "--out", str(tmp_path / "w.pt")])
    assert res.exit_code == 2 and "--dataset" in res.output
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x04junk")
    res = runner.invoke(app, ["evaluate", str(bad), "--transfers", "10"])
    assert res.exit_code == 2 and "weights" in res.output
    res = runner.invoke(app, ["train", "--dataset", "halfmoons", "--preset", "hfo2_1t1r", "--out", str(tmp_path / "w.pt")])
    assert res.exit_code == 2 and "characterize" in res.output
