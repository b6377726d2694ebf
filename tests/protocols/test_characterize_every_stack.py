"""``memprog characterize`` on every stack and technology (issue 23, item 1).

Two stacks the census used to refuse:

* the on-chip controller driving the gradual TiO2-x array (``sim_onchip_tio2x``): three
  pulses at the caps move a cell 15 µS up and 3 µS down on a 95 µS window, so the census
  called every cell stuck; it now drives a gradual chip to its rails in rounds;
* the B1500A + WGFMU probe station (``sim_b1500_wgfmu``): one device under the probes, so
  the census addressed a second device the stack cannot reach; it now works on the
  devices under the probes and says which procedure it had to skip.

Backends: the simulated chip directly (census) and the @memprog simulator through
``open_bench`` and the CLI (the real drivers). Truth (which cells are stuck, what the
chip holds) is read from the simulator, which only tests may do.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from memprog.bench.assembly import open_bench
from memprog.bench.direct import DirectChipProgrammer
from memprog.cli import app
from memprog.protocols.alibart import alibart_defaults
from memprog.protocols.characterize import CharacterizeParams, characterize
from memprog.protocols.characterize_census import run_census
from memprog.protocols.events import MemorySink
from memprog.sim_instruments import SimChip
from memprog.store import VariabilityDB, open_store, stored_run


class _NoBar:
    def update(self, n: int) -> None:
        pass


def _census(chip: SimChip, **kw):
    prog = DirectChipProgrammer(chip)
    p = CharacterizeParams(**kw)
    f = np.arange(chip.rows * chip.cols)
    r, c = f // chip.cols, f % chip.cols
    return prog, run_census(prog, r, c, p, alibart_defaults(prog.info), _NoBar()), r, c


def _characterize_cli(runner: CliRunner, monkeypatch, tmp_path, bench: str, url: str, *extra: str):
    """``memprog characterize`` on a fresh simulated chip, small (2 levels, 1 repeat); exit 0."""
    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(tmp_path / "state"))
    res = runner.invoke(app, ["characterize", "--bench", bench, "--levels", "2", "--repeats", "1", "--db", url, *extra])
    assert res.exit_code == 0, res.output
    return res


def test_census_drives_a_gradual_chip_to_both_rails():
    """TiO2-x: the census finds the chip's stuck cells (none, here: the truth), and the
    states it stores are the rails, not three pulses' worth of travel."""
    chip = SimChip(16, 16, "tio2x_feedforward", seed=2025)
    prog, cen, r, c = _census(chip)
    truth_stuck = chip.kind_grid.ravel() != 0
    assert (cen.stuck == truth_stuck).all()
    lo, hi = prog.info.g_range_us
    window = hi - lo
    ok = ~cen.stuck
    # the old census's three pulses left the SET states ~15 µS above the start (16 % of
    # the window); at the rail they sit in the top fifth and the RESET ones in the bottom
    assert np.median(cen.g_set_us[ok]) > hi - 0.2 * window
    assert np.median(cen.g_reset_us[ok]) < lo + 0.2 * window
    assert cen.set_pulses > 3 and cen.reset_pulses > 3
    assert max(cen.set_pulses, cen.reset_pulses) <= CharacterizeParams().census_max_pulses
    # every cell ends RESET, as the census promises (what the chip holds, not the record)
    held = chip.true_conductance_us()[r, c]
    assert np.median(held[ok]) < lo + 0.2 * window


def test_census_gives_an_abrupt_chip_one_round():
    """HfO2: one round per rail, as before (the later procedures' data do not change),
    and the stuck cells found are the chip's."""
    chip = SimChip(12, 12, "hfo2_1t1r", seed=3)
    _, cen, _, _ = _census(chip)
    assert cen.set_pulses == cen.reset_pulses == CharacterizeParams().census_pulses
    assert (cen.stuck == (chip.kind_grid.ravel() != 0)).all()


def test_census_stops_at_its_pulse_bound():
    """A gradual chip is pulsed no more than census_max_pulses per rail."""
    chip = SimChip(4, 4, "tio2x_feedforward", seed=1)
    _, cen, _, _ = _census(chip, census_max_pulses=9)
    assert cen.set_pulses <= 9 and cen.reset_pulses <= 9


@pytest.mark.slow
def test_characterize_and_calibrate_on_the_tio2x_bench(tmp_path, monkeypatch):
    """The whole command on the on-chip TiO2-x bench, then the twin's fit from it."""
    runner, url = CliRunner(), f"sqlite:///{tmp_path / 'tx.sqlite'}"
    res = _characterize_cli(runner, monkeypatch, tmp_path, "sim_onchip_tio2x", url, "--devices", "3", "--disturb-cells", "4", "--json")
    doc = json.loads(res.stdout)
    lo, hi = doc["g_range_us"]
    assert 415 - 5 < lo < hi < 510 + 5 and hi - lo > 0.5 * 95  # most of the 415-510 µS window
    assert doc["stuck_fractions"]["cells"] == 256 and doc["skipped"] == {}
    out = tmp_path / "twin.yaml"
    res = runner.invoke(app, ["sim", "calibrate", "--db", url, "--chip", "TIO2X-SIM-01", "--bench",
                              "sim_onchip_tio2x", "--write-bench", str(out), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert out.exists()
    fitted = json.loads(res.stdout)["fitted"]
    assert "g_max_us" in fitted and "v_set_threshold_v" in fitted


@pytest.mark.slow
def test_characterize_on_the_probe_station_uses_the_probed_device_only():
    """B1500A + WGFMU, one device under the probes: the procedures that need one device
    run on it, the disturb (it needs two) is skipped and said so, and the devices whose
    pads carry no probe are never touched."""
    sink = MemorySink()
    with open_bench("sim_b1500_wgfmu") as bench:
        chip = bench.sim_chip
        others = chip.true_conductance_us()[0, 1:].copy()
        counts = characterize(bench.programmer, CharacterizeParams(devices=1, levels=2, repeats=1), sink=sink)
        np.testing.assert_allclose(chip.true_conductance_us()[0, 1:], others, atol=1e-9)
    assert counts["skipped"] == {"disturb": "needs 2 working cells the stack reaches; it reaches 1"}
    assert "disturb" not in counts and counts["stuck"] == 1 and counts["response"] > 0
    cells = set()
    for ev in sink.events:
        if ev.get("event") == "samples" and "row" in ev["columns"]:
            cells |= set(zip(np.atleast_1d(ev["columns"]["row"]).tolist(), np.atleast_1d(ev["columns"]["col"]).tolist()))
    assert cells == {(0, 0)}
    # the widths of the response grid are on the WGFMU's 10 ns grid (632.5 ns was refused)
    widths = {w for ev in sink.events if ev.get("table") == "response" for w in np.atleast_1d(ev["columns"]["width_s"])}
    assert all(abs(w / 10e-9 - round(w / 10e-9)) < 1e-6 for w in widths) and len(widths) == 3


@pytest.mark.slow
def test_probe_station_command_reports_the_skip_and_calibrates(tmp_path, monkeypatch):
    runner, url = CliRunner(), f"sqlite:///{tmp_path / 'b.sqlite'}"
    res = _characterize_cli(runner, monkeypatch, tmp_path, "sim_b1500_wgfmu", url, "--devices", "1")
    assert "skipped: disturb (needs 2 working cells the stack reaches; it reaches 1)" in res.output
    out = tmp_path / "twin.yaml"
    res = runner.invoke(app, ["sim", "calibrate", "--db", url, "--chip", "SIM-TIO2-PROBES-1x4", "--bench",
                              "sim_b1500_wgfmu", "--write-bench", str(out), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert "set_kappa" in doc["fitted"]
    # one device cannot give a device-to-device spread: kept, and the advice fits a probe station
    assert "--run" in doc["kept_preset"]["kappa_d2d"]["why"]
    assert len(VariabilityDB(url, chip_id="SIM-TIO2-PROBES-1x4").raw("stuck")) == 1


def test_calibrate_names_a_chip_whose_runs_stored_nothing(tmp_path):
    """A chip known to the store whose every characterize run failed before its first
    sample: the message says so, instead of refusing the chip while listing it."""
    url = f"sqlite:///{tmp_path / 'f.sqlite'}"
    s = open_store(url)

    with pytest.raises(RuntimeError), stored_run(s, kind="characterize", chip_id="C1", technology="tio2_passive", quiet=True):
        raise RuntimeError("cut before the census")
    s.close()
    res = CliRunner().invoke(app, ["sim", "calibrate", "--db", url, "--chip", "C1", "--write-bench", str(tmp_path / "t.yaml")])
    assert res.exit_code == 2
    assert "stored none" in res.output and "Traceback" not in res.output
