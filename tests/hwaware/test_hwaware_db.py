"""Hardware-aware training from our own variability database: a small `characterize` run of
the simulated tio2_passive chip (backend: DirectChipProgrammer on SimChip), then
VariabilityModel.from_db, `memprog train/evaluate --db`, and the empty-database message."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from memprog.bench.direct import DirectChipProgrammer
from memprog.cli import app
from memprog.hwaware.mapping import load_weights
from memprog.hwaware.variability import VariabilityModel
from memprog.protocols.characterize import CharacterizeParams, characterize
from memprog.sim_instruments import SimChip
from memprog.store import VariabilityDB, open_store, stored_run

runner = CliRunner()


@pytest.fixture(scope="module")
def db_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('hwdb') / 'v.sqlite'}"
    s = open_store(url)
    with stored_run(s, kind="characterize", chip_id="SIM-8", technology="tio2_passive", quiet=True) as run:
        characterize(
            DirectChipProgrammer(SimChip(8, 8, "tio2_passive", seed=3)),
            CharacterizeParams(devices=2, levels=2, repeats=1, disturb_cells=64),
            sink=run.sink,
        )
    s.close()
    return url


@pytest.mark.slow
def test_from_db_uses_the_measured_tables(db_url):
    db = VariabilityDB(db_url)
    m = VariabilityModel.from_db(db)
    assert m.source == f"db:{db_url}"
    assert (m.g_min_us, m.g_max_us) == pytest.approx(db.g_range_us())
    fit = db.imprecision_fit()
    assert m.slope_pct_per_us == pytest.approx(fit["slope_pct_per_us"])
    assert m.offset_std_pct == pytest.approx(fit["offset_std_pct"])
    table = db.disturb_table().set_index("later_writes")
    assert m.max_later_writes == int(table.index.max())
    # keys with enough samples sample exactly their own (sparser ones pool their neighbours')
    k = int(table.index[table["n"] >= 32].max())
    row = m.disturb_us[k, : int(m.disturb_counts[k])]
    assert row.mean().item() == pytest.approx(table.loc[k, "mean_us"], abs=1e-4)
    fr = db.stuck_fractions()
    assert (m.stuck_hrs_fraction, m.stuck_lrs_fraction) == (fr["hrs"], fr["lrs"])
    # imprecision: the recorded reads per characterised level (issue 24), not the fit
    assert m.imprecision == "raw"
    assert m.imp_levels_us.tolist() == pytest.approx(sorted(db.imprecision()["level_us"]), rel=1e-6)


@pytest.mark.slow
def test_train_and_evaluate_from_the_db(db_url, tmp_path):
    out = tmp_path / "w.pt"
    res = runner.invoke(app, ["train", "--dataset", "halfmoons", "--db", db_url, "--hardware-aware",
                              "--epochs", "2", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    w = load_weights(out)
    assert w["variability_source"] == f"db:{db_url}"
    run_id = json.loads(res.stdout)["run_id"]
    store = open_store(db_url)
    run = store.get_run(run_id)
    store.close()
    assert run["kind"] == "train" and run["status"] == "complete" and run["summary"]["epochs"] == 2
    lo, hi = VariabilityDB(db_url).g_range_us()
    assert (w["mapping"]["g_min_us"], w["mapping"]["g_max_us"]) == pytest.approx((lo, hi))
    ev = runner.invoke(app, ["evaluate", str(out), "--db", db_url, "--transfers", "100", "--json"])
    assert ev.exit_code == 0, ev.output
    doc = json.loads(ev.stdout)
    assert doc["variability_source"] == f"db:{db_url}" and doc["n_transfers"] == 100


def test_empty_db_names_the_characterize_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    res = runner.invoke(app, ["train", "--dataset", "halfmoons", "--db", url, "--out", str(tmp_path / "w.pt")])
    assert res.exit_code == 2
    assert "memprog characterize" in res.output
    assert not (tmp_path / "w.pt").exists()


@pytest.mark.slow
def test_small_run_hardware_aware_survives_transfers_the_regular_one_does_not(db_url):
    """Seed 001's comparison on a small run: both networks trained 300 epochs at the authors'
    code's lr 0.1 (the regular one is then past its near-linear plateau), evaluated on the
    same 500 transfers. Measured here: 57 % vs 0 % of test points correct in >= 95 % of
    transfers (the full run, 10,000 epochs at lr 0.01, is in the README)."""
    from memprog.hwaware.training import held_out_set, train
    from memprog.hwaware.transfer import simulator_from_weights

    db = VariabilityDB(db_url)
    var = VariabilityModel.from_db(db)
    frac = {}
    for hw in (True, False):
        w = train("halfmoons", var, hardware_aware=hw, epochs=300, seed=0, lr=0.1).weights
        x, y = held_out_set(w)
        frac[hw] = simulator_from_weights(w, var).evaluate(x, y, 500, seed=1).fraction_at_least(95)
    assert frac[True] >= 0.35
    assert frac[True] - frac[False] >= 0.30
