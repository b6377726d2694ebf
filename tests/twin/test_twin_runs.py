"""Which characterisations a twin is fitted from, and what ``sim calibrate`` writes over.

A lab characterises a chip again (or stops one characterisation half way): the twin must
still calibrate, from one session of the chip (the latest complete run) unless ``--run``
names the runs to pool (issue 23, bad input)."""

from __future__ import annotations

import json
import time

import pytest
import yaml
from typer.testing import CliRunner

from memprog.bench.direct import DirectChipProgrammer
from memprog.cli import app
from memprog.core.bench_config import resolve_bench_path
from memprog.core.device_params import DeviceParams
from memprog.core.errors import ConfigError
from memprog.core.presets import get_preset
from memprog.protocols.characterize import CharacterizeParams, characterize
from memprog.sim_instruments import SimChip
from memprog.store import open_store, stored_run
from memprog.twin.calibrate import chosen_runs
from tests.twin.twin_helpers import served_twin

P = get_preset("hfo2_1t1r")


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


def _characterise(url: str, kappa: float, seed: int) -> str:
    chip = SimChip(32, 32, DeviceParams(**{**P.model_dump(), "set_kappa": kappa, "reset_kappa": kappa}), seed=seed)
    s = open_store(url)
    with stored_run(s, kind="characterize", chip_id="AGAIN", technology="hfo2_1t1r", quiet=True) as run:
        characterize(DirectChipProgrammer(chip), CharacterizeParams(devices=12, levels=2, repeats=1, disturb_cells=2), sink=run.sink)
        rid = run.run_id
    s.close()
    time.sleep(0.01)  # distinct start times: "latest" is well defined
    return rid


@pytest.mark.slow
def test_a_second_characterisation_calibrates_from_the_latest_and_run_picks(tmp_path):
    url = f"sqlite:///{tmp_path / 't.sqlite'}"
    first = _characterise(url, 1.5, 3)  # the chip as it was
    latest = _characterise(url, 0.6, 4)  # the chip as it is now (it changed)
    r = _runner()
    out = r.invoke(app, ["sim", "calibrate", "--db", url, "--chip", "AGAIN", "--write-bench", str(tmp_path / "a.yaml"), "--json"])
    assert out.exit_code == 0, out.output  # (both pooled: a traceback or a refused fit)
    doc = json.loads(out.stdout)
    assert doc["runs"] == [latest]
    assert abs(doc["fitted"]["set_kappa"]["value"] / 0.6 - 1) < 0.2, doc["fitted"]["set_kappa"]
    old = r.invoke(app, ["sim", "calibrate", "--db", url, "--chip", "AGAIN", "--run", first,
                         "--write-bench", str(tmp_path / "b.yaml"), "--json"])  # fmt: skip
    assert old.exit_code == 0, old.output
    d2 = json.loads(old.stdout)
    assert d2["runs"] == [first] and abs(d2["fitted"]["set_kappa"]["value"] / 1.5 - 1) < 0.2
    bad = r.invoke(app, ["sim", "calibrate", "--db", url, "--chip", "AGAIN", "--run", "0123456789ab",
                         "--write-bench", str(tmp_path / "c.yaml")])  # fmt: skip
    assert bad.exit_code == 2 and "0123456789ab" in bad.stderr and first in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "c.yaml").exists()


def test_default_runs_skip_a_characterisation_cut_short(tmp_path):
    s = open_store(f"sqlite:///{tmp_path / 't.sqlite'}")
    done = s.start_run(kind="characterize", chip_id="C", technology="hfo2_1t1r")
    s.finish_run(done, "complete")
    time.sleep(0.01)
    cut = s.start_run(kind="characterize", chip_id="C", technology="hfo2_1t1r")
    s.finish_run(cut, "interrupted")  # newer, but partial: not the default
    assert chosen_runs(s, "C", None) == [done]
    assert chosen_runs(s, "C", [cut, done, cut]) == [cut, done]  # on purpose, once each
    with pytest.raises(ConfigError, match="--run"):
        chosen_runs(s, "C", ["nope"])
    only_cut = s.start_run(kind="characterize", chip_id="D", technology="hfo2_1t1r")
    s.finish_run(only_cut, "interrupted")
    assert chosen_runs(s, "D", None) is None  # no complete run: the interrupted ones, as before
    s.close()


def test_write_bench_never_replaces_a_file_without_force(tmp_path, monkeypatch):
    """``--write-bench my_lab.yaml`` used to replace the user's own bench with the twin."""
    lab = tmp_path / "my_lab.yaml"
    lab.write_text("# my lab bench, with notes\nname: mine\n")
    out = _runner().invoke(app, ["sim", "calibrate", "--db", f"sqlite:///{tmp_path / 'none.sqlite'}",
                                 "--chip", "X", "--write-bench", str(lab)])  # fmt: skip
    assert out.exit_code == 2 and "--force" in out.stderr and "my_lab.yaml" in out.stderr
    assert lab.read_text().startswith("# my lab bench")  # untouched


@pytest.mark.slow
def test_force_replaces_and_a_served_twin_above_the_presets_threshold_opens(tmp_path):
    """A twin whose fitted thresholds sit above the preset's: its served lab-style bench must
    open (the unselected-cell limit derived from the fitted thresholds exceeded the client's
    technology default, and the client refused the file)."""
    import memprog

    url = f"sqlite:///{tmp_path / 't.sqlite'}"
    _characterise(url, 1.0, 5)
    twin = tmp_path / "twin.yaml"
    twin.write_text("placeholder\n")
    out = _runner().invoke(app, ["sim", "calibrate", "--db", url, "--chip", "AGAIN", "--write-bench", str(twin), "--force", "--json"])
    assert out.exit_code == 0, out.output
    data = yaml.safe_load(twin.read_text())
    data["chip"]["sim_params"]["v_set_threshold_v"] = 0.95  # as a fit above 0.9 V gives
    data["chip"]["sim_params"]["v_reset_threshold_v"] = 1.05
    hi = tmp_path / "twin_hi.yaml"
    hi.write_text(yaml.safe_dump(data))
    served = tmp_path / "served.yaml"
    with served_twin(hi, served):
        lab = yaml.safe_load(served.read_text())
        assert "unselected_v_max" not in lab["chip"].get("limits", {})
        with memprog.open_bench(served) as b:  # before: refused, unselected_v_max 0.76 > 0.72
            assert b.programmer.read([0], [0]).shape == (1,)


@pytest.mark.slow
def test_pooled_runs_count_each_census_cell_once_and_the_twin_seed_is_its_own(tmp_path):
    """Two runs of one 32x32 chip pooled with --run: the census saw 1,024 cells, not
    2,048 (counted twice, the stuck fractions' errors shrank by sqrt 2). The twin's seed
    is not the template's + 1 (the next chip of a fleet numbered from the bench's seed)."""
    url = f"sqlite:///{tmp_path / 'p.sqlite'}"
    a, b = _characterise(url, 1.0, 5), _characterise(url, 1.0, 5)
    out = _runner().invoke(app, ["sim", "calibrate", "--db", url, "--chip", "AGAIN", "--run", a, "--run", b,
                                 "--write-bench", str(tmp_path / "p.yaml"), "--json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["fitted"]["unresponsive_fraction"]["source"] == "census (1024 cells)"
    seed = yaml.safe_load((tmp_path / "p.yaml").read_text())["chip"]["seed"]
    template_seed = int(yaml.safe_load(resolve_bench_path("sim_onchip").read_text())["chip"]["seed"])
    assert seed != template_seed + 1 and seed >= 1_000_000
