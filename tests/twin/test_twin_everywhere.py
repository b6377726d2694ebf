"""Issue 23 item 4: a calibrated twin is a bench like any other — ``program``,
``evaluate --on-bench`` and ``sim serve`` run on it (``tune`` is in test_twin.py).

The twin is fitted from a hidden chip's stored characterisation (the chip's parameters are
known only to this test) and written by ``memprog sim calibrate --write-bench``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import memprog
from memprog.bench.direct import DirectChipProgrammer
from memprog.cli import app
from memprog.core.device_params import DeviceParams
from memprog.core.presets import get_preset
from memprog.protocols.alibart import tune_alibart
from memprog.protocols.characterize import CharacterizeParams, characterize
from memprog.sim_instruments import SimChip
from memprog.store import open_store, stored_run
from tests.twin.twin_helpers import served_twin
from tests.weights_helpers import save_moons_weights

pytestmark = pytest.mark.slow
P = get_preset("hfo2_1t1r")
HIDDEN = dict(set_kappa=1.4, reset_kappa=0.7, unresponsive_fraction=0.03)


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    """(twin bench file, its sim_params, a working dir): hidden chip -> characterise -> calibrate."""
    tmp = tmp_path_factory.mktemp("twin_everywhere")
    url = f"sqlite:///{tmp / 't.sqlite'}"
    chip = SimChip(32, 32, DeviceParams(**{**P.model_dump(), **HIDDEN}), seed=5)
    s = open_store(url)
    with stored_run(s, kind="characterize", chip_id="HIDDEN-E", technology="hfo2_1t1r", quiet=True) as run:
        characterize(DirectChipProgrammer(chip), CharacterizeParams(devices=12, levels=2, repeats=1, disturb_cells=2), sink=run.sink)
    s.close()
    out = tmp / "twin.yaml"
    r = _runner().invoke(app, ["sim", "calibrate", "--db", url, "--chip", "HIDDEN-E", "--write-bench", str(out), "--json"])
    assert r.exit_code == 0, r.output
    bench = yaml.safe_load(out.read_text())
    assert bench["chip"]["id"] == "HIDDEN-E-twin"
    return out, bench["chip"]["sim_params"], tmp, url


def test_program_job_runs_on_the_twin(twin, tmp_path, monkeypatch):
    bench = twin[0]
    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    r = _runner().invoke(app, ["program", "--example", "digits", "--bench", str(bench), "--db",
                               f"sqlite:///{tmp_path / 'p.sqlite'}", "--json", "--no-progress"])  # fmt: skip
    assert r.exit_code in (0, 1), r.output
    doc = json.loads(r.stdout)
    assert doc["chip_id"] == "HIDDEN-E-twin" and doc["cells_total"] == 16240
    # the twin holds the network: its VMM classifies like the software (within 3 points)
    assert doc["chip_accuracy"] >= doc["software_accuracy"] - 0.03, doc


def test_evaluate_on_bench_programs_fresh_twins(twin, tmp_path, monkeypatch):
    bench, url = twin[0], twin[3]
    save_moons_weights(tmp_path / "moons.pt")
    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    r = _runner().invoke(app, ["evaluate", str(tmp_path / "moons.pt"), "--on-bench", str(bench), "--transfers", "2",
                               "--db", url, "--json"])  # fmt: skip  (the prediction from the chip's own samples)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    acc = doc["measured_accuracies"]
    assert len(acc) == 2 and all(0.5 <= a <= 1.0 for a in acc), doc
    assert {c["seed"] for c in doc["chips"]} == {1, 2}


def test_sim_serve_serves_the_twin_over_tcp(twin):
    bench, params, tmp = twin[:3]
    served = tmp / "served_twin.yaml"
    with served_twin(bench, served) as doc:
        assert all("127.0.0.1" in r for r in doc["resources"].values()), doc
        # the served bench reaches the twin over a real socket; its physics stay in the
        # server (a lab-style bench refuses sim_params: before, this file could not be opened)
        lab = yaml.safe_load(served.read_text())
        assert lab["chip"]["id"] == "HIDDEN-E-twin" and "sim_params" not in lab["chip"] and params
        with memprog.open_bench(served) as b:
            targets = np.array([600.0, 1200.0, 2400.0])
            res = tune_alibart(b.programmer, rows=[0, 0, 0], cols=[3, 4, 5], targets_us=targets)
            g = b.programmer.read([0, 0, 0], [3, 4, 5])
        ok = res.converged
        assert ok.sum() >= 2 and np.all(np.abs(g[ok] - targets[ok]) <= 0.05 * targets[ok]), res.to_frame()
