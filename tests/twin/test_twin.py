"""``memprog sim calibrate``: a twin fitted from a hidden chip's stored characterisation.

The hidden chips' physics (bench ``chip.sim_params`` / DeviceParams) are known only to the
test: the fit reads the characterize run stored from the chip. Expected values come from
the hidden parameters, never from the twin code.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from memprog.bench.direct import DirectChipProgrammer
from memprog.cli import app, sim_app
from memprog.core.device_params import DeviceParams
from memprog.core.presets import get_preset
from memprog.protocols.array import program_array
from memprog.protocols.characterize import CharacterizeParams, characterize
from memprog.sim_instruments import SimChip
from memprog.store import VariabilityDB, open_store, stored_run
from memprog.twin.calibrate import calibrate

P = get_preset("hfo2_1t1r")
HIDDEN = dict(set_kappa=1.5, reset_kappa=0.6, read_noise_abs_us=0.2, unresponsive_fraction=0.04, c2c_rel_std=0.3)


def test_calibrate_is_a_memprog_sim_command():
    assert any(c.name == "calibrate" for c in sim_app.registered_commands)


def _characterise(url: str, params: DeviceParams, chip_id: str, **kw: object) -> None:
    chip = SimChip(32, 32, params, seed=21)
    s = open_store(url)
    with stored_run(s, kind="characterize", chip_id=chip_id, technology="hfo2_1t1r", quiet=True) as run:
        characterize(DirectChipProgrammer(chip), CharacterizeParams(devices=12, levels=2, repeats=1, disturb_cells=2, **kw), sink=run.sink)
    s.close()


@pytest.fixture(scope="module")
def hidden(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('twin') / 't.sqlite'}"
    true = DeviceParams(**{**P.model_dump(), **HIDDEN})
    _characterise(url, true, "HIDDEN-1")
    return url, true


@pytest.mark.slow
def test_fit_recovers_the_hidden_chip_and_beats_the_preset(hidden):
    url, true = hidden
    res = calibrate(VariabilityDB(url, chip_id="HIDDEN-1"), "HIDDEN-1")
    f = {k: v.value for k, v in res.fitted.items()}
    for name, tol in (("set_kappa", 0.2), ("reset_kappa", 0.2), ("c2c_rel_std", 0.2), ("read_noise_abs_us", 0.35)):
        truth = getattr(true, name)
        assert abs(f[name] / truth - 1) < tol, (name, f[name], truth)
        assert abs(f[name] - truth) < abs(getattr(P, name) - truth)  # closer than the preset
    assert abs(f["unresponsive_fraction"] - true.unresponsive_fraction) < 0.02
    assert abs(f["v_set_threshold_v"] - true.v_set_threshold_v) < 0.05
    assert abs(f["relax_tau_s"] / true.relax_tau_s - 1) < 0.2
    # every fitted field carries its uncertainty's measurement; unmeasurable ones are listed
    assert all(v.source for v in res.fitted.values())
    assert "v_breakdown_v" in res.kept and "v_breakdown_v" not in res.fitted


def test_twin_predicts_the_held_out_block(hidden):
    """The job the fit never saw: a 32x32 block at two targets, on the hidden chip, the
    twin (another seed) and the preset: the twin's not-converged fraction and pulses per
    cell are the hidden chip's, the preset's are not (it has 11 % dead cells, not 4 %)."""
    url, true = hidden
    res = calibrate(VariabilityDB(url, chip_id="HIDDEN-1"), "HIDDEN-1")
    twin = DeviceParams(**{**P.model_dump(), **res.sim_params()})
    target = np.full((32, 32), 1000.0)
    target[:, 16:] = 3000.0

    def run(p: DeviceParams, seed: int) -> tuple[float, float]:
        r = program_array(DirectChipProgrammer(SimChip(32, 32, p, seed=seed)), target)
        return float(r.pulses.mean()), float(1 - r.converged.mean())

    (ph, nh), (pt, nt), (pp, np_) = run(true, 3), run(twin, 4), run(P, 4)
    assert abs(nt - nh) <= 0.03 < abs(np_ - nh)
    assert abs(pt / ph - 1) <= 0.15 and abs(pt - ph) < abs(pp - ph)  # closer than the preset


def test_missing_measurement_keeps_the_preset_and_says_what_to_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    _characterise(url, P, "NORESP", response_repeats=0, noise_reads=0, telegraph_reads=0, relax_delays_s=[])
    res = calibrate(VariabilityDB(url, chip_id="NORESP"), "NORESP")
    assert "set_kappa" not in res.fitted and "response" in res.kept["set_kappa"]
    assert "read_noise_abs_us" in res.kept and "unresponsive_fraction" in res.fitted  # the census still fits


@pytest.mark.slow
def test_cli_calibrate_writes_a_bench_that_tunes(hidden, tmp_path, monkeypatch):
    url, true = hidden
    out = tmp_path / "twin.yaml"
    runner = CliRunner()
    r = runner.invoke(app, ["sim", "calibrate", "--db", url, "--chip", "HIDDEN-1", "--write-bench", str(out), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert abs(doc["fitted"]["set_kappa"]["value"] / true.set_kappa - 1) < 0.2
    assert doc["fitted"]["set_kappa"]["std"] > 0 and doc["fitted"]["set_kappa"]["source"].startswith("response")
    bench = yaml.safe_load(out.read_text())
    assert bench["chip"]["sim_params"]["set_kappa"] == pytest.approx(doc["fitted"]["set_kappa"]["value"], rel=1e-6)
    assert all(i["visa_library"] == "@memprog" for i in bench["instruments"].values())
    # the twin bench is a normal bench: open it and tune a few cells
    from memprog.bench.assembly import open_bench
    from memprog.protocols.alibart import alibart_defaults, tune_alibart

    with open_bench(out) as b:
        prog = b.programmer
        res = tune_alibart(prog, [0, 0, 0], [0, 1, 2], [800.0, 1500.0, 2500.0], params=alibart_defaults(prog.info))
        g = prog.read([0, 0, 0], [0, 1, 2])
    ok = res.converged
    assert ok.sum() >= 2 and np.all(np.abs(g[ok] - np.array([800.0, 1500.0, 2500.0])[ok]) < 0.03 * np.array([800.0, 1500.0, 2500.0])[ok])
    t = runner.invoke(app, ["tune", "--bench", str(out), "--rows", "1", "--cols", "0:4", "--target-us", "1200", "--json"])
    assert t.exit_code in (0, 1), t.output
    assert json.loads(t.stdout)


def test_cli_unknown_chip_names_the_known_ones(hidden, tmp_path):
    url, _ = hidden
    r = CliRunner().invoke(app, ["sim", "calibrate", "--db", url, "--chip", "NOPE", "--write-bench", str(tmp_path / "x.yaml")])
    assert r.exit_code == 2 and "HIDDEN-1" in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "x.yaml").exists()


def test_cli_refuses_a_fit_that_does_not_converge(tmp_path):
    """Response samples no pulse law explains (after-reads unrelated to the pulse): refused
    with the residual, nothing written."""
    url = f"sqlite:///{tmp_path / 'bad.sqlite'}"
    rng = np.random.default_rng(0)
    s = open_store(url)
    with stored_run(s, kind="characterize", chip_id="BAD", technology="hfo2_1t1r", quiet=True) as run:
        n = 400
        run.sink.record_event({"event": "samples", "table": "response", "columns": {
            "row": rng.integers(0, 4, n), "col": rng.integers(0, 4, n), "repeat": np.zeros(n, int),
            "point": np.arange(n), "polarity": np.array(["set", "reset"] * (n // 2), dtype=object),
            "amplitude_v": rng.uniform(0.8, 1.6, n), "width_s": np.full(n, 1e-7), "gate_v": np.full(n, 2.0),
            "g_before_us": rng.uniform(30, 4000, n), "g_after_us": rng.uniform(30, 4000, n), "reads": np.full(n, 4),
        }})  # fmt: skip
    s.close()
    out = tmp_path / "bad.yaml"
    r = CliRunner().invoke(app, ["sim", "calibrate", "--db", url, "--chip", "BAD", "--write-bench", str(out)])
    assert r.exit_code == 2 and "residual" in r.stderr, r.output
    assert not out.exists()


@pytest.mark.slow
def test_characterize_stores_the_twin_tables_on_a_passive_array(tmp_path):
    """The serial (passive TiO2) stack gets the same procedures: every response pulse of
    each sampled cell is stored raw, from the state the procedure prepared (a SET pulse
    from the off state moves the cell up, a RESET pulse from the on state down)."""
    url = f"sqlite:///{tmp_path / 'p.sqlite'}"
    chip = SimChip(8, 8, "tio2_passive", seed=4)
    s = open_store(url)
    with stored_run(s, kind="characterize", chip_id="P8", technology="tio2_passive", quiet=True) as run:
        counts = characterize(
            DirectChipProgrammer(chip),
            CharacterizeParams(devices=2, levels=2, repeats=1, disturb_cells=2, response_devices=3, response_repeats=2),
            sink=run.sink,
        )
    s.close()
    v = VariabilityDB(url, chip_id="P8")
    resp = v.raw("response")
    cells = resp[["row", "col"]].drop_duplicates()
    # 7 amplitudes x 3 widths per polarity, and (no gate: passive) 8 fine amplitudes per
    # polarity at the ramp's width, from its start up: at least 4 SET pulses per cell there
    assert len(cells) == 3 and counts["response"] == len(resp) == 3 * 2 * (7 * 3 + 7 * 3 + 8 + 8)
    fine = resp[(resp["polarity"] == "set") & (resp["width_s"] == resp["width_s"].min())]
    assert fine["amplitude_v"].between(0.8, 1.0).groupby([fine["row"], fine["col"], fine["repeat"]]).sum().min() >= 4
    up, down = (
        d[d["amplitude_v"].abs() >= d["amplitude_v"].abs().max() - 1e-9]
        for d in (resp[resp["polarity"] == "set"], resp[resp["polarity"] == "reset"])
    )
    assert (up["g_after_us"] > up["g_before_us"] + 5).mean() > 0.8
    assert (down["g_after_us"] < down["g_before_us"] - 5).mean() > 0.8
    assert set(v.raw("noise")["state"]) == {"off", "on"} and len(v.raw("relax")) == 3 * 2 * 8
