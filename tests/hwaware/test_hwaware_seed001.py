"""Issue 24: hardware-aware training that samples the chip as measured and keys the disturb
as the program job will write it.

Fast unit tests (sampling from raw samples, the shared programming order against the
program job, stuck weights frozen under Adam, the paper's recipe) plus one slow end-to-end
check: the Monte Carlo prediction against 8 programmed fresh `sim_tio2_crossbar` chips.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from memprog.core.errors import ConfigError
from memprog.hwaware.layers import MLP, convert
from memprog.hwaware.order import network_later_writes
from memprog.hwaware.variability import VariabilityModel

FIT = {"slope_pct_per_us": -6e-4, "intercept_pct": 0.7, "offset_mean_pct": -0.5, "offset_std_pct": 0.3}


def _model(disturb=None, imprecision_raw=None, fractions=None, stuck=None, g_range=(100.0, 400.0), **kw):
    if disturb is None:
        disturb = pd.DataFrame({"later_writes": [0], "delta_us": [0.0]})
    return VariabilityModel.from_tables(
        g_range_us=g_range,
        imprecision_fit=FIT,
        disturb=disturb,
        stuck_fractions=fractions or {"hrs": 0.0, "lrs": 0.0},
        stuck=stuck if stuck is not None else pd.DataFrame({"kind": [], "g_us": []}),
        imprecision_raw=imprecision_raw,
        **kw,
    )


# ----------------------------------------------------------------------------- sampling
def _raw_reads():
    """Two levels with different recorded ratios; level 300 has a 2 % tail at 0.80 that no
    fitted normal of this spread would ever produce."""
    lo = np.full(100, 1.01)  # every read at level 100 landed 1 % high
    hi = np.r_[np.full(98, 0.995), np.full(2, 0.80)]
    return pd.DataFrame({
        "level_us": np.r_[np.full(100, 100.0), np.full(100, 300.0)],
        "g_us": np.r_[100.0 * lo, 300.0 * hi],
        "converged": np.ones(200, bool),
    })


def test_raw_imprecision_samples_the_recorded_reads_of_the_nearest_level_tails_included():
    m = _model(imprecision_raw=_raw_reads())
    assert m.imprecision == "raw"
    g = torch.tensor([110.0, 290.0])  # nearest levels: 100 and 300
    out = m.sample(g, torch.zeros(2, dtype=torch.int64), 20000, torch.Generator().manual_seed(0))
    ratio = (out / g).numpy()
    # level 100: exactly the recorded ratio, nothing else
    np.testing.assert_allclose(ratio[:, 0], 1.01, rtol=1e-6)
    # level 300: only the two recorded ratios, the tail at its recorded share (2 % +- 0.4 %)
    np.testing.assert_allclose(np.unique(np.round(ratio[:, 1].astype(float), 4)), [0.8, 0.995], atol=1e-6)
    assert abs(np.mean(np.isclose(ratio[:, 1], 0.8)) - 0.02) < 0.004
    # the fitted mode on the same model never reaches the tail (it samples the line)
    fitted = _model()
    out_f = fitted.sample(g, torch.zeros(2, dtype=torch.int64), 20000, torch.Generator().manual_seed(0))
    assert (out_f[:, 1] / 290.0).min() > 0.95


def test_raw_disturb_tails_as_recorded_per_number_of_later_writes():
    # k = 3: a +60 µS outlier in 1 of 50 samples (Drolet's clipped tail), k = 1: -2 µS
    d = pd.DataFrame({
        "later_writes": np.r_[np.full(10, 1), np.full(50, 3)],
        "delta_us": np.r_[np.full(10, -2.0), np.full(49, 1.0), 60.0],
    })
    m = _model(disturb=d, imprecision_raw=_raw_reads(), disturb_min_samples=1)
    g = torch.full((3,), 300.0)
    lw = torch.tensor([0, 1, 3])
    out = m.sample(g, lw, 20000, torch.Generator().manual_seed(1)) - 300.0 * 0.995
    # 0 later writes: no disturb (Drolet: the last device programmed); 1: exactly -2
    def only(v, allowed):
        return np.isclose(v.numpy()[:, None].astype(float), np.asarray(allowed)[None, :], atol=1e-3).any(1).all()

    assert only(out[:, 0], [0.0, 300 * (0.8 - 0.995)])
    assert only(out[:, 1], [-2.0, -2.0 + 300 * (0.8 - 0.995)])
    # 3: the outlier appears as recorded (60 µS, not clipped), at its share
    hit = np.isclose(out[:, 2].numpy(), 60.0, atol=1e-3)
    assert 0.01 < hit.mean() < 0.03


def test_a_key_with_few_samples_pools_its_nearest_keys_raw_samples():
    """One array of 64 cells records a single sample after 63 later writes: sampling it
    alone would give that device no spread. It pools its nearest keys' recorded samples."""
    d = pd.DataFrame({
        "later_writes": np.r_[np.full(40, 10), np.full(40, 20), [21]],
        "delta_us": np.r_[np.full(40, -1.0), np.linspace(-30, 30, 40), [5.0]],
    })
    alone = _model(disturb=d, disturb_min_samples=1)
    pooled = _model(disturb=d)
    row = lambda m, k: m.disturb_us[k, : int(m.disturb_counts[k])].numpy()  # noqa: E731
    np.testing.assert_array_equal(row(alone, 21), [5.0])
    got = np.sort(row(pooled, 21))
    np.testing.assert_allclose(got, np.sort(np.r_[np.linspace(-30, 30, 40), 5.0]))  # key 20 is nearest
    np.testing.assert_array_equal(row(pooled, 10), np.full(40, -1.0))  # enough samples: its own
    assert any("pool" in n for n in pooled.notes)


def test_from_db_samples_raw_reads_by_default_and_the_fit_on_request():
    class DB:
        url = "sqlite:///x.sqlite"

        def g_range_us(self):
            return (100.0, 400.0)

        def imprecision_fit(self):
            return FIT

        def imprecision_raw(self):
            return _raw_reads()

        def disturb(self):
            return pd.DataFrame({"later_writes": [1], "delta_us": [0.0]})

        def stuck_fractions(self):
            return {"hrs": 0.0, "lrs": 0.0, "cells": 64}

        def stuck(self):
            return pd.DataFrame({"kind": [], "g_us": []})

    assert VariabilityModel.from_db(DB()).imprecision == "raw"
    assert VariabilityModel.from_db(DB(), imprecision="fitted").imprecision == "fitted"
    with pytest.raises(ConfigError, match="imprecision"):
        VariabilityModel.from_db(DB(), imprecision="normal")


def test_stated_stuck_fractions_replace_a_census_that_found_none():
    m = _model(imprecision_raw=_raw_reads()).with_stuck(0.005, 0.005)
    assert (m.stuck_hrs_fraction, m.stuck_lrs_fraction) == (0.005, 0.005)
    g = torch.full((1000,), 250.0)
    d = m.draw(200, torch.zeros(1000, dtype=torch.int64), torch.Generator().manual_seed(2))
    out = m.apply(g, d)
    frac = d.stuck.float().mean().item()
    assert 0.008 < frac < 0.012
    # a stuck device holds its stuck value whatever its target (preset's HRS 10-100 µS / LRS)
    assert torch.equal(out[d.stuck], d.disturb_us[d.stuck])


# ----------------------------------------------------------------------------- order
def _plan_cells(sizes, shape, copies):
    from memprog.hwaware.placement import place_network

    shapes = [(a + 1, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    pl = place_network(shapes, shape, copies)
    return pl, pl.cells()


@pytest.mark.parametrize(("copies", "chunk"), [(1, 16384), (2, 16384), (2, 6)])
def test_programming_sequence_is_the_order_the_program_job_tunes(monkeypatch, copies, chunk):
    """program_plan with a recording tune: the cells reach the protocol exactly in the
    order programming_sequence gives (chunks and last copies included)."""
    from memprog.hwaware.order import programming_sequence
    from memprog.jobs import program as job
    from memprog.protocols.programmer import ProgrammerInfo
    from memprog.protocols.results import TuneResult

    pl, cells = _plan_cells([2, 3, 1], (12, 24), copies)
    cells["g_us"] = np.linspace(120.0, 380.0, cells["row"].size)
    plan = job.Plan(pl, cells, [1.0, 1.0], {"g_min_us": 100.0, "g_max_us": 400.0},
                    np.zeros(cells["row"].size, bool), np.full(cells["row"].size, np.nan))
    seen: list[tuple[int, int]] = []

    def tune(self, r, c, t, sink):
        seen.extend(zip(r.tolist(), c.tolist(), strict=True))
        n = r.size
        return TuneResult("fake", r, c, t, t.copy(), np.ones(n), np.ones(n), np.ones(n, bool),
                          np.full(n, "", dtype=object), np.full(n, 3.0))

    class Prog:
        info = ProgrammerInfo(12, 24, "cell", False, (50.0, 500.0), 0.2, "tio2_passive")

    def init(self, prog, params):
        self.params, self.protocol_settles = params, True  # no re-verify read: only the tune order

    monkeypatch.setattr(job._Programmer, "__init__", init)
    monkeypatch.setattr(job._Programmer, "tune", tune)
    monkeypatch.setattr("memprog.jobs.program_cells.target_range_us", lambda prog: (50.0, 500.0))
    params = job.ProgramParams(copies=copies, chunk_cells=chunk)
    job.program_plan(Prog(), plan, params)
    seq = programming_sequence(cells, copies, params.order, chunk)
    expected = list(zip(cells["row"][seq].tolist(), cells["col"][seq].tolist(), strict=True))
    assert seen == expected and len(seen) == cells["row"].size


def test_network_later_writes_follow_the_job_order_on_the_chip():
    """2-8-1 on the 12x24 crossbar: every device's key is the cells written after it on
    the array (both layers together), each device of a pair its own; unlike the
    layer-alone count, the output layer's first row sees the whole first layer's writes."""
    from memprog.hwaware.order import later_writes_of, programming_sequence

    keys = network_later_writes([2, 8, 1], (12, 24))
    assert [k.shape for k in keys] == [(2, 8, 3), (2, 1, 9)]
    allk = np.sort(np.concatenate([k.ravel() for k in keys]))
    np.testing.assert_array_equal(allk, np.arange(66))  # 66 cells, one position each
    pl, cells = _plan_cells([2, 8, 1], (12, 24), 1)
    lw = later_writes_of(programming_sequence(cells, 1, "row-major"), cells["row"].size)
    for k in range(2):
        sel = cells["layer"] == k
        s = np.where(cells["sign"][sel] > 0, 0, 1)
        np.testing.assert_array_equal(keys[k][s, cells["j"][sel], cells["i"][sel]], lw[sel])
    assert keys[1].max() == 65  # layer-alone row-major: at most 17
    with pytest.raises(ConfigError, match="order"):
        network_later_writes([2, 8, 1], (12, 24), "high-first")


# ----------------------------------------------------------------------------- training
def test_stuck_weights_do_not_move_under_adam_even_with_momentum():
    """A weight whose device is stuck in a batch keeps its value through that step, though
    Adam's moments (from earlier batches) and weight decay would move it."""
    from memprog.hwaware.training import _StuckFreezer

    stuck = pd.DataFrame({"kind": ["hrs", "lrs"], "g_us": [50.0, 600.0]})
    m = _model(fractions={"hrs": 0.1, "lrs": 0.1}, stuck=stuck, imprecision_raw=_raw_reads())
    torch.manual_seed(0)
    net = convert(MLP([4, 6, 2]), m, generator=torch.Generator().manual_seed(5))
    opt = torch.optim.Adam(net.parameters(), lr=0.1, weight_decay=1e-3)
    freezer = _StuckFreezer(net)
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    net.train()
    checked = 0
    for _ in range(12):  # moments build up over the first steps
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        before = [(lay.weight.detach().clone(), lay.bias.detach().clone(), lay.current_keep) for lay in net.layers]
        freezer.step(opt)
        for lay, (w0, b0, keep) in zip(net.layers, before, strict=True):
            if keep is None:  # no stuck device in this batch's transfer
                continue
            frozen_w, frozen_b = keep[0] == 0, keep[1] == 0
            assert torch.equal(lay.weight[frozen_w], w0[frozen_w])
            assert torch.equal(lay.bias[frozen_b], b0[frozen_b])
            assert not torch.equal(lay.weight[~frozen_w], w0[~frozen_w])  # the others train
            checked += int(frozen_w.sum() + frozen_b.sum())
    assert checked > 0
    # without the freezer Adam's momentum moves a weight with a zero gradient
    p = torch.nn.Parameter(torch.ones(1))
    o = torch.optim.Adam([p], lr=0.1)
    for g in (1.0, 1.0, 0.0):
        o.zero_grad()
        p.grad = torch.tensor([g])
        before = p.detach().clone()
        o.step()
    assert not torch.equal(p.detach(), before)


def test_paper_recipe_options_reach_the_optimiser_and_the_weight_file():
    from memprog.hwaware.datasets import halfmoons
    from memprog.hwaware.training import PAPER_RECIPE, train

    assert PAPER_RECIPE == {"lr": 0.1, "weight_decay": 1e-4, "init": "xavier", "epochs": 3000}
    m = _model(imprecision_raw=_raw_reads(), disturb=pd.DataFrame({"later_writes": [1, 40], "delta_us": [-1.0, 5.0]}))
    ds = halfmoons(0)
    r = train(ds, m, epochs=4, seed=3, lr=0.1, weight_decay=1e-4, init="xavier",
              array_shape=(12, 24), validate_every=2, validation_transfers=20)
    w = r.weights
    assert w["recipe"]["init"] == "xavier" and w["recipe"]["weight_decay"] == 1e-4
    assert w["recipe"]["best_epoch"] in (2, 4) and len(r.validations) == 2
    assert w["disturb_layout"] == {"array_shape": [12, 24], "order": "row-major", "copies": 1}
    # Xavier: zero initial biases would stay equal across seeds' first epoch only if untrained;
    # the state differs from torch's default init for the same seed
    r2 = train(ds, m, hardware_aware=False, epochs=1, seed=3, init="torch")
    r3 = train(ds, m, hardware_aware=False, epochs=1, seed=3, init="xavier")
    assert not torch.equal(r2.weights["state_dict"]["layers.0.weight"], r3.weights["state_dict"]["layers.0.weight"])
    with pytest.raises(ConfigError, match="init"):
        train(ds, m, epochs=1, init="he")


def test_cli_train_paper_recipe_for_a_bench_and_bad_input(tmp_path):
    import json

    from typer.testing import CliRunner

    from memprog.cli import app
    from memprog.hwaware.mapping import load_weights

    out = tmp_path / "hw.pt"
    r = CliRunner().invoke(app, [
        "train", "--dataset", "halfmoons", "--hardware-aware", "--recipe", "paper", "--epochs", "2",
        "--bench", "sim_tio2_crossbar", "--stuck", "0.005,0.005", "--out", str(out), "--json",
    ])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["lr"] == 0.1 and doc["recipe"]["weight_decay"] == 1e-4 and doc["recipe"]["init"] == "xavier"
    w = load_weights(out)
    assert w["disturb_layout"]["array_shape"] == [12, 24] and w["epochs"] == 2
    assert "stuck(0.005,0.005)" in w["variability_source"]
    for bad in (["--stuck", "0.1"], ["--bench", "no_such_bench"], ["--recipe", "fast"]):
        r = CliRunner().invoke(app, ["train", "--dataset", "halfmoons", "--out", str(out), *bad])
        assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, (bad, r.output)


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_prediction_holds_on_eight_programmed_tio2_chips(tmp_path):
    """The loop closed on the chip it came from: a characterisation of the simulated TiO2
    crossbar fills a database, a hardware-aware 2-8-1 network is trained from it for the
    12x24 sim_tio2_crossbar, and `compare_with_prediction` programs 8 fresh chips of that
    bench. Their mean accuracy must lie within 5 points of the Monte Carlo prediction, which
    keys the disturb as the job programs the array (same order, one pair per weight, the
    stated 0.5 % + 0.5 % stuck devices on both sides). Fails when the prediction and the
    chips disagree: a prediction keyed by another order, chips that are not fresh, a model
    that misses the disturb."""
    from memprog.bench.direct import DirectChipProgrammer
    from memprog.hwaware.mapping import save_weights
    from memprog.hwaware.training import PAPER_RECIPE, held_out_set, train
    from memprog.jobs.evaluate import compare_with_prediction
    from memprog.jobs.program import ProgramParams
    from memprog.protocols.characterize import CharacterizeParams, characterize
    from memprog.sim_instruments import SimChip
    from memprog.store import VariabilityDB, open_store, stored_run

    url = f"sqlite:///{tmp_path / 'char.sqlite'}"
    s = open_store(url)
    with stored_run(s, kind="characterize", chip_id="SIM-8", technology="tio2_passive", quiet=True) as run:
        characterize(  # the shipped sim_k4200_707b chip (seed 8), as `memprog characterize` runs it
            DirectChipProgrammer(SimChip(8, 8, "tio2_passive", seed=8)),
            CharacterizeParams(devices=4, levels=4, repeats=2, disturb_cells=64),
            sink=run.sink,
        )
    s.close()
    db = VariabilityDB(url)
    var = VariabilityModel.from_db(db).with_stuck(0.005, 0.005)
    db.close()
    recipe = dict(PAPER_RECIPE) | {"epochs": 1000}
    res = train("halfmoons", var, seed=0, array_shape=(12, 24), **recipe)
    path = save_weights(res.weights, tmp_path / "hw.pt")
    # the 8 chips on the fleet's Ray engine: one actor per chip, both cores busy (the same
    # chips as one after another: tests/fleet/test_fleet_ray.py), half the wall time
    from memprog.fleet.engines import make_engine
    from memprog.fleet.job import fleet_chip_programmer

    out = compare_with_prediction(
        path, "sim_tio2_crossbar", 8, var, held_out_set(res.weights),
        mc_transfers=1000, params=ProgramParams(copies=1),
        program_chips=fleet_chip_programmer(lambda: make_engine("ray", None), url),
    )
    assert out["disturb_keys"] == "program job order on the bench's array"
    assert len(out["measured_accuracies"]) == 8 and len({c["seed"] for c in out["chips"]}) == 8
    assert abs(out["measured_mean"] - out["predicted"]["mean"]) <= 0.05, out
    # the network is robust where the chips are: most of its software accuracy survives
    assert out["measured_mean"] >= out["software_accuracy"] - 0.05
