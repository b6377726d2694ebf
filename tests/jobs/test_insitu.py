"""In-situ training on the simulated on-chip bench (seed 002, Li 2018), and what it needs:
the batched ``VMM?``, the bench file's simulator-only chip overrides, the refusals, Ctrl-C.

Backend: the in-process ``@memprog`` simulator (``benches/sim_onchip.yaml``), except the
driver traffic test, which runs against the exact-traffic fake transport.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

import memprog
from memprog.cli import app
from memprog.core.bench_config import load_bench_config
from memprog.core.errors import ConfigError
from memprog.core.strict_yaml import dump_yaml
from memprog.drivers.onchip import OnChipController
from memprog.drivers.transport import make_block
from memprog.hwaware.datasets import load_dataset
from memprog.jobs.insitu import bench_with_stuck_fraction, run_insitu_job, train_insitu
from memprog.jobs.insitu_calibration import calibrate_gate
from memprog.jobs.insitu_exsitu import exsitu_transfer
from memprog.jobs.insitu_network import require_vmm
from memprog.jobs.insitu_params import InsituParams
from tests.drivers.test_onchip_protocol import CONNECT, connected
from tests.protocol_fake import ExpectedProtocol

BENCHES = Path(__file__).resolve().parents[2] / "benches"
ONCHIP = BENCHES / "sim_onchip.yaml"


# ------------------------------------------------------------------ batched VMM
def test_batched_vmm_is_one_block_each_way():
    v = np.linspace(-0.2, 0.2, 3 * 256).reshape(3, 256)
    currents = np.arange(3 * 256, dtype="<f4") * 1e-6
    with ExpectedProtocol(CONNECT + [("VMM:INP ", None), ("VMM?", make_block(currents))]) as t:
        out = connected(t).vmm(v)
    assert out.shape == (3, 256)
    np.testing.assert_allclose(out.ravel(), currents, rtol=1e-7)
    np.testing.assert_array_equal(t.binary_writes[0], v.astype("<f4").ravel())


def test_batched_vmm_refused_before_sending():
    with ExpectedProtocol(CONNECT) as t:
        ctrl = connected(t)
        with pytest.raises(ConfigError, match="input_v shape"):
            ctrl.vmm(np.zeros((2, 10)))
        with pytest.raises(ConfigError, match="input_v shape"):
            ctrl.vmm(np.zeros((1025, 256)))


def test_batched_vmm_on_the_simulator_is_k_integrations():
    with memprog.open_bench(ONCHIP) as bench:
        chip = bench.sim_chip
        ctrl: OnChipController = bench.programmer.controller
        rng = np.random.default_rng(1)
        v = np.zeros((5, 256))
        v[:, 10:40] = rng.uniform(0, 0.2, (5, 30))
        t0 = chip.clock_s
        i = ctrl.vmm(v)
        dt = chip.clock_s - t0
        expected = v @ (chip.true_conductance_us() * 1e-6)
        np.testing.assert_allclose(i, expected, rtol=2e-2)  # RTN: a few µS on ~40 µS cells
        # five integrations of read_time_s each (plus the link), not one
        assert dt >= 5 * chip.params.read_time_s
        assert np.any(i[0] != ctrl.vmm(v[0]))  # fresh noise per integration


# ------------------------------------------------------------------ bench overrides
def test_sim_params_reach_the_simulated_chip(tmp_path):
    with bench_with_stuck_fraction(ONCHIP, 0.3) as path:
        cfg, _ = load_bench_config(path)
        assert cfg.chip.sim_params["unresponsive_fraction"] == 0.3
        with memprog.open_bench(path) as bench:
            assert bench.sim_chip.working_mask.mean() == pytest.approx(0.7, abs=0.01)
            assert bench.programmer.info.technology == "hfo2_1t1r"
    with bench_with_stuck_fraction(ONCHIP, 0.0) as path, memprog.open_bench(path) as bench:
        assert bench.sim_chip.working_mask.all()


def test_sim_params_refused_when_unknown_out_of_range_or_on_a_lab_bench(tmp_path):
    data = yaml.safe_load(ONCHIP.read_text())
    for bad, match in (
        ({"no_such_field": 1}, "no_such_field"),
        ({"unresponsive_fraction": 2}, "unresponsive"),
    ):
        data["chip"]["sim_params"] = bad
        p = tmp_path / "b.yaml"
        p.write_text(dump_yaml(data))
        with pytest.raises(ConfigError, match=match):
            load_bench_config(p)
    from tests.lab_template_helpers import edited_template

    lab_path = edited_template("lab_onchip", tmp_path)  # its placeholder filled in
    lab = yaml.safe_load(lab_path.read_text())
    lab["chip"]["sim_params"] = {"unresponsive_fraction": 0.2}
    p = tmp_path / "lab.yaml"
    p.write_text(dump_yaml(lab))
    with pytest.raises(ConfigError, match="sim_params"):
        load_bench_config(p)
    with pytest.raises(ConfigError, match="simulated bench"):
        with bench_with_stuck_fraction(lab_path, 0.2):
            pass


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5, float("nan")])
def test_stuck_fraction_outside_0_1_is_refused(fraction):
    with pytest.raises(ConfigError, match=r"stuck_fraction.*\[0, 1\)"):
        run_insitu_job(ONCHIP, InsituParams(epochs=0), stuck_fraction=fraction)
    res = CliRunner().invoke(app, ["insitu", "--stuck-fraction", str(fraction), "--json"])
    assert res.exit_code == 2 and "[0, 1)" in res.stderr and res.stdout == ""


# ------------------------------------------------------------------ refusals
@pytest.fixture(autouse=True)
def _store_in_tmp(tmp_path, monkeypatch):
    """Stored runs go to a throw-away SQLite file, never the user's store."""
    monkeypatch.setenv("MEMPROG_DB", f"sqlite:///{tmp_path / 'runs.sqlite'}")


@pytest.mark.parametrize("bench", ["sim_k4200_707b", "sim_b1500_wgfmu"])
def test_a_bench_without_vmm_is_refused_naming_it(bench):
    with memprog.open_bench(bench) as b:
        with pytest.raises(ConfigError, match="VMM"):
            require_vmm(b)
    res = CliRunner().invoke(app, ["insitu", "--bench", bench, "--json"])
    assert res.exit_code == 2
    assert "VMM" in res.stderr and res.stdout == ""


# ------------------------------------------------------------------ calibration, training
def test_gate_calibration_measures_the_compliance_line():
    with memprog.open_bench(ONCHIP) as bench:
        cal = calibrate_gate(bench.programmer, np.arange(120, 124), InsituParams())
        p = bench.sim_chip.params  # truth, for the test only
    nominal = (p.g_max_us - p.g_min_us) / (p.gate_v_max_v - p.gate_v_min_v)
    assert cal.slope_us_per_v == pytest.approx(nominal, rel=0.1)
    assert cal.responsive_fraction == pytest.approx(1 - p.unresponsive_fraction, abs=0.05)


@pytest.mark.slow
def test_seed002_insitu_adapts_to_stuck_devices_where_exsitu_does_not():
    """Seed 002 Fig. 4b at 50 % stuck: in-situ > 60 % and well above the ex-situ transfer."""
    params = InsituParams(epochs=4, seed=0)
    data = load_dataset("digits", seed=0)
    with bench_with_stuck_fraction(ONCHIP, 0.5) as path:
        with memprog.open_bench(path) as bench:
            insitu = train_insitu(bench, params, data)
        with memprog.open_bench(path) as bench:
            exsitu = exsitu_transfer(bench, params, data, software_epochs=30)
    print(
        f"50 % stuck: in-situ {insitu.test_accuracy:.3f}, ex-situ {exsitu['chip_accuracy']:.3f}"
        f" (software {exsitu['software_accuracy']:.3f})"
    )
    assert insitu.test_accuracy > 0.6
    assert insitu.test_accuracy > exsitu["chip_accuracy"] + 0.1
    assert exsitu["software_accuracy"] > 0.9
    assert insitu.pulses > 0 and insitu.bench_time_s > 0


@pytest.mark.slow
def test_cli_json_and_contract_b_weights(tmp_path):
    out = tmp_path / "w.pt"
    res = CliRunner().invoke(app, ["insitu", "--epochs", "1", "--json", "--out", str(out)])
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.stdout)
    for key in ("test_accuracy", "epochs", "stuck_fraction", "pulses", "wall_s", "bench_time_s"):
        assert key in summary
    assert summary["epochs"] == 1 and summary["test_accuracy"] > 0.3
    w = torch.load(out, weights_only=True)
    assert w["format"] == "memprog.weights/1" and w["sizes"] == [64, 54, 10]
    assert w["state_dict"]["layers.0.weight"].shape == (54, 64)
    assert w["state_dict"]["layers.1.bias"].shape == (10,)


def test_ctrl_c_leaves_the_bench_safe_and_saves_the_partial_weights(tmp_path, monkeypatch):
    aborts = []
    original = OnChipController.safe_state

    def spy(self):
        aborts.append(True)
        original(self)

    monkeypatch.setattr(OnChipController, "safe_state", spy)

    def interrupt(row):
        raise KeyboardInterrupt

    out = tmp_path / "partial.pt"
    with pytest.raises(KeyboardInterrupt):
        run_insitu_job(
            ONCHIP,
            InsituParams(epochs=3, limit_train=64, limit_test=32),
            out=out,
            on_epoch=interrupt,
        )
    assert aborts, "the bench was not put in its safe state"
    w = torch.load(out, weights_only=True)
    assert w["epochs"] == 1
    assert torch.isfinite(w["state_dict"]["layers.0.weight"]).all()


# ------------------------------------------------------------------ the run store
@pytest.mark.slow
def test_cli_stores_the_run(tmp_path):
    from memprog.store import open_store

    res = CliRunner().invoke(
        app,
        [
            "insitu",
            "--epochs",
            "1",
            "--stuck-fraction",
            "0.3",
            "--json",
            "--out",
            str(tmp_path / "w.pt"),
        ],
    )
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert "memprog: run " in res.stderr
    store = open_store()
    try:
        runs = store.list_runs(kind="insitu")
        assert len(runs) == 1 and runs.status.iloc[0] == "complete"
        run = store.get_run(summary["run_id"])
        assert run["params"]["stuck_fraction"] == 0.3
        assert run["summary"]["test_accuracy"] == pytest.approx(summary["test_accuracy"])
        assert [e["epoch"] for e in store.events(summary["run_id"], "epoch")] == [1]
    finally:
        store.close()


def test_cli_ctrl_c_exits_130_run_interrupted_weights_saved(tmp_path, monkeypatch):
    from memprog.jobs import insitu
    from memprog.store import open_store

    calls = []
    step = insitu.ChipNetwork.train_step

    def interrupted_step(self, x, y, lr):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return step(self, x, y, lr)

    monkeypatch.setattr(insitu.ChipNetwork, "train_step", interrupted_step)
    out = tmp_path / "partial.pt"
    res = CliRunner().invoke(app, ["insitu", "--epochs", "2", "--out", str(out)])
    assert res.exit_code == 130, res.stderr
    assert "interrupted" in res.stderr and "made safe" in res.stderr and str(out) in res.stderr
    w = torch.load(out, weights_only=True)
    assert w["epochs"] == 0 and w["format"] == "memprog.weights/1"
    store = open_store()
    try:
        assert store.list_runs(kind="insitu").status.tolist() == ["interrupted"]
    finally:
        store.close()
