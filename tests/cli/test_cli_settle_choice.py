"""``memprog levels --settle-from-db`` (issue 25): each level's settle from the chip's own
characterised relaxation, the validation levels, and the refusals (backend: the @memprog
on-chip bench)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memprog.cli import app

ONCHIP = str(Path(__file__).resolve().parents[2] / "benches" / "sim_onchip.yaml")


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


def _levels(tmp_path: Path, *extra: str):
    args = ["levels", "--bench", ONCHIP, "--levels", "8", "--start-us", "1000", "--json",
            "--out", str(tmp_path / "l.png"), "--force", "--db", f"sqlite:///{tmp_path / 'runs.db'}", *extra]  # fmt: skip
    return _runner().invoke(app, args)


@pytest.mark.slow
def test_levels_settles_from_the_characterised_relaxation(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(tmp_path / "chips"))
    url = f"sqlite:///{tmp_path / 'char.db'}"
    r = _runner().invoke(
        app,
        [
            "characterize",
            "--bench",
            ONCHIP,
            "--db",
            url,
            "--json",
            "--levels",
            "2",
            "--repeats",
            "1",
            "--response-repeats",
            "0",
        ],
    )
    assert r.exit_code == 0, r.output
    r = _levels(tmp_path, "--settle-from-db", url, "--validate-every", "4", "--final-wait-s", "60")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["levels_within_tolerance"] == 8
    sf = d["settle_from"]
    assert 0.5 < sf["tau_s"] < 2.0 and sf["n_series"] >= 4  # the chip's ~1 s, as measured
    assert sf["budget_us"] == pytest.approx(0.25)
    # the levels settled for what they moved, not the technology's 5 s each
    assert d["settle_rule"] and d["settle_wait_total_s"] < 8 * 5.0
    assert d["validated_levels"] == 3 and d["validate_wait_s"] == 5.0  # levels 0, 4 and the last
    assert d["final_check"]["wait_s"] == 60.0
    assert (
        d["bench_time_s"] >= d["settle_wait_total_s"] + 3 * 5.0 + 60.0
    )  # every wait is bench time


def test_levels_refuses_a_store_without_the_chips_relaxation(tmp_path):
    r = _levels(tmp_path, "--settle-from-db", f"sqlite:///{tmp_path / 'empty.db'}")
    assert r.exit_code == 2
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "relax" in err and "memprog characterize" in err
    assert "Traceback" not in r.output


def test_levels_refuses_a_settle_time_with_a_settle_from_the_store(tmp_path):
    r = _levels(tmp_path, "--settle-s", "1", "--settle-from-db", f"sqlite:///{tmp_path / 'x.db'}")
    assert r.exit_code == 2
    assert "--settle-s" in r.stderr and "--settle-from-db" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_relax_table_of_another_technology_under_the_same_chip_id_is_refused(tmp_path, monkeypatch):
    """A TiO2-x bench file reused with the HfO2 chip's id: its relaxation is not the HfO2
    chip's, and the ladder must not settle by it (exit 2, the technologies named)."""
    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(tmp_path / "chips"))
    import yaml

    from memprog.core.bench_config import resolve_bench_path

    other = yaml.safe_load(resolve_bench_path("sim_onchip_tio2x").read_text())
    other["chip"]["id"] = yaml.safe_load(Path(ONCHIP).read_text())["chip"]["id"]
    fake = tmp_path / "fake.yaml"
    fake.write_text(yaml.safe_dump(other))
    url = f"sqlite:///{tmp_path / 'char.db'}"
    r = _runner().invoke(app, ["characterize", "--bench", str(fake), "--db", url, "--levels", "2", "--repeats", "1",
                               "--devices", "2", "--response-repeats", "0"])  # fmt: skip
    assert r.exit_code == 0, r.output
    r = _levels(tmp_path, "--settle-from-db", url)
    assert r.exit_code == 2
    assert "tio2x_feedforward" in r.stderr and "hfo2_1t1r" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_twin_settles_from_the_chip_it_was_fitted_from(tmp_path, monkeypatch):
    """A twin has no characterisation of its own: its levels take its chip's relax table (the
    settles the job on that chip would choose), named in the output (review: it sent the user
    to characterise the twin, ~1,200 s of bench time)."""
    import yaml

    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(tmp_path / "chips"))
    url = f"sqlite:///{tmp_path / 'char.db'}"
    r = _runner().invoke(app, ["characterize", "--bench", ONCHIP, "--db", url, "--devices", "8", "--json"])
    assert r.exit_code == 0, r.output
    twin = tmp_path / "twin.yaml"
    r = _runner().invoke(app, ["sim", "calibrate", "--db", url, "--chip", "HFO2-1T1R-SIM-01",
                               "--write-bench", str(twin), "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    chip = yaml.safe_load(twin.read_text())["chip"]
    assert chip["id"] == "HFO2-1T1R-SIM-01-twin" and chip["twin_of"] == "HFO2-1T1R-SIM-01"
    args = ["levels", "--bench", str(twin), "--levels", "8", "--start-us", "1000", "--json",
            "--out", str(tmp_path / "l.png"), "--db", url, "--settle-from-db", url]  # fmt: skip
    r = _runner().invoke(app, args)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["settle_from"]["chip_id"] == "HFO2-1T1R-SIM-01" and d["levels_within_tolerance"] == 8
    assert 0.5 < d["settle_from"]["tau_s"] < 2.0
    # a bench without twin_of and without runs of its own is still refused
    plain = tmp_path / "plain.yaml"
    del chip["twin_of"]
    data = yaml.safe_load(twin.read_text())
    data["chip"] = chip
    plain.write_text(yaml.safe_dump(data))
    r = _runner().invoke(app, [*args[:2], str(plain), *args[3:], "--force"])
    assert r.exit_code == 2 and "holds none" in r.stderr
