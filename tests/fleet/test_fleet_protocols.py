"""``memprog characterize`` and ``memprog tune --map`` on a fleet of chips (issue 26 item 1):
one run per chip in the one store, exactly what the single command stores for its chip;
a lost worker's chip characterised again in a new run, or its map resumed reading first;
bad input one line and exit 2 before any bench opens.

The Ray tests (a real two-CPU Ray on 127.0.0.1) are in the second half, skipped saying why
where Ray is not installed."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from memprog.cli import app
from memprog.cli.fleet_run import characterize_fleet_text, tune_fleet_text
from memprog.fleet.chips import simulated_chips
from memprog.fleet.engines import LocalEngine, WorkerLost, loopback_environment
from memprog.fleet.protocol_job import (
    characterize_job,
    run_fleet_protocol,
    tune_map_chip,
    tune_map_job,
)
from memprog.fleet.worker import ProtocolTask
from memprog.protocols.characterize import CharacterizeParams
from memprog.store import open_store
from tests.fleet.fleet_helpers import (
    ROOT,
    held_by_chip,
    kill_chip0_worker_mid_run,
    small_onchip_bench,
)

SMALL = ["--devices", "2", "--levels", "2", "--repeats", "1", "--reads", "2", "--response-repeats", "0", "--disturb-cells", "4"]
SMALL_CP = CharacterizeParams(devices=2, levels=2, repeats=1, reads=2, response_repeats=0, disturb_cells=4)
MAP = np.array([[120.0, 200.0, 280.0], [160.0, 240.0, 320.0]])  # µS, in every simulated stack's range


def _cli(args: list[str]):
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 keeps stderr apart already
        runner = CliRunner()
    return runner.invoke(app, args)


def _lab(tmp_path: Path) -> str:
    lab = tmp_path / "lab.yaml"
    lab.write_text((ROOT / "benches" / "lab_onchip.yaml").read_text().replace("<INSTRUMENT-IP>", "127.0.0.1"))
    return str(lab)


@pytest.fixture
def chips_dir(tmp_path: Path, monkeypatch) -> Path:
    """Fresh simulated chips for the test (their state files in the test's folder)."""
    d = tmp_path / "chips"
    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(d))
    return d


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--chips", "0"], "--chips"),
        (["--chips", "2", "--bench", "LAB"], "a simulated bench"),
        (["--ray-address", "127.0.0.1:6379"], "only with --engine ray"),
        (["--engine", "spark"], "--engine"),
        (["--chips", "2", "--fleet", "nowhere.yaml"], "--chips or --fleet"),
        (["--fleet", "nowhere.yaml"], "no such file"),
        (["--chips", "2", "--devices", "0"], "--devices"),
    ],
)
def test_bad_fleet_characterize_is_one_line_and_exit_2_with_no_run(tmp_path: Path, extra: list[str], needle: str) -> None:
    extra = [_lab(tmp_path) if a == "LAB" else a for a in extra]
    db = tmp_path / "s.sqlite"
    res = _cli(["characterize", *SMALL[:-2], *extra, "--db", f"sqlite:///{db}"])
    assert res.exit_code == 2, (res.stdout, res.stderr)
    err = res.stderr.strip()
    assert err.count("\n") == 0 and needle in err, err
    assert not db.exists()  # refused before the store (or any bench) was opened


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--chips", "2", "--rows", "0", "--cols", "0", "--target-us", "100"], "--rows='0'"),
        (["--chips", "2"], "--map"),
        (["--map", "MAP", "--chips", "2", "--resume", "abcdef012345"], "a fleet job resumes a lost chip itself"),
        (["--map", "MAP", "--chips", "2", "--out", "cells.csv"], "--out"),
        (["--map", "MAP", "--chips", "2", "--png", "maps.png"], "--png"),
        (["--map", "MAP", "--chips", "2", "--retention-s", "10"], "--retention-s"),
        (["--map", "MAP", "--chips", "2", "--trace"], "--trace"),
        (["--map", "MAP", "--engine", "spark"], "--engine"),
        (["--map", "MAP", "--ray-address", "127.0.0.1:6379"], "only with --engine ray"),
        (["--map", "MAP", "--chips", "2", "--bench", "LAB"], "a simulated bench"),
        (["--map", "BIG", "--chips", "2", "--bench", "sim_k4200_707b"], "fits the 8x8 array"),
    ],
)
def test_bad_fleet_tune_is_one_line_and_exit_2_with_no_run(tmp_path: Path, extra: list[str], needle: str) -> None:
    np.save(tmp_path / "map.npy", MAP)
    np.save(tmp_path / "big.npy", np.full((9, 9), 200.0))
    subst = {"MAP": str(tmp_path / "map.npy"), "BIG": str(tmp_path / "big.npy"), "LAB": _lab(tmp_path) if "LAB" in extra else ""}
    extra = [subst.get(a, a) for a in extra]
    db = tmp_path / "s.sqlite"
    res = _cli(["tune", *extra, "--db", f"sqlite:///{db}"])
    assert res.exit_code == 2, (res.stdout, res.stderr)
    err = res.stderr.strip()
    assert err.count("\n") == 0 and needle in err, err
    assert not db.exists()


# ---------------------------------------------------------------------- local engine
@pytest.mark.slow
def test_characterize_two_chips_stores_one_run_per_chip_as_the_single_command_does(tmp_path: Path, chips_dir: Path, monkeypatch) -> None:
    bench = small_onchip_bench(tmp_path)
    specs = simulated_chips(bench, 2)
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    res = _cli(["characterize", *SMALL, "--bench", str(bench), "--chips", "2", "--db", db, "--json"])
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    ids = [c["chip_id"] for c in doc["chips"]]
    assert ids == [s.chip_id for s in specs] and ids[0] != ids[1]  # distinct chips, distinct ids
    # the yield view: each chip's stuck fraction and working range side by side
    assert len(doc["yield"]["stuck_fraction"]) == len(doc["yield"]["g_lo_us"]) == 2
    assert doc["yield"]["g_lo_us"] == [c["g_range_us"][0] for c in doc["chips"]]
    store = open_store(db)
    try:
        runs = store.list_runs(kind="characterize")
        assert sorted(runs["chip_id"]) == ids and set(runs["status"]) == {"complete"}
        assert store.get_run(doc["fleet_run_id"])["status"] == "complete"
    finally:
        store.close()
    for c in doc["chips"]:  # the per-chip tables read what that chip's run stored
        v = _cli(["db", "variability", "--chip-id", c["chip_id"], "--db", db, "--json"])
        assert v.exit_code == 0, v.stderr
        vd = json.loads(v.stdout)
        assert vd["runs"]["characterize_runs"] == 1
        assert vd["g_range_us"] == c["g_range_us"] and vd["stuck_fractions"] == c["stuck_fractions"]
    # chip1 characterised alone by the single command, fresh: the same samples and tables
    (tmp_path / "chip1.yaml").write_text(specs[1].bench_text)
    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(tmp_path / "alone"))
    one = _cli(["characterize", *SMALL, "--bench", str(tmp_path / "chip1.yaml"), "--db", f"sqlite:///{tmp_path / 'one.sqlite'}", "--json"])
    assert one.exit_code == 0, one.stderr
    single = json.loads(one.stdout)
    for key in ("counts", "g_range_us", "stuck_fractions", "imprecision", "disturb", "rtn"):
        assert single[key] == doc["chips"][1][key], key


@pytest.mark.slow
def test_tune_map_on_two_chips_each_chip_holds_the_map(tmp_path: Path, chips_dir: Path) -> None:
    bench = small_onchip_bench(tmp_path)
    np.save(tmp_path / "map.npy", MAP)
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    res = _cli(["tune", "--map", str(tmp_path / "map.npy"), "--origin", "3,5", "--bench", str(bench), "--chips", "2", "--db", db, "--json"])
    assert res.exit_code in (0, 1), res.stderr
    doc = json.loads(res.stdout)
    assert doc["total"]["cells"] == 2 * MAP.size and res.exit_code == doc["outcome"]["exit_code"]
    store = open_store(db)
    try:
        specs = simulated_chips(bench, 2)
        for c, spec in zip(doc["chips"], specs, strict=True):
            run = store.get_run(c["run_id"])
            assert run["kind"] == "array" and run["chip_id"] == spec.chip_id and run["status"] == "complete"
            cells = store.cells(c["run_id"])
            assert len(cells) == MAP.size == run["cells_total"]
            assert sorted(zip(cells["row"], cells["col"], strict=True)) == [(3 + r, 5 + k) for r in range(2) for k in range(3)]
            g = held_by_chip(spec.bench_text, tmp_path, cells["row"].to_numpy(), cells["col"].to_numpy())
            within = np.abs(g - cells["target_us"].to_numpy()) <= cells["tolerance_us"].to_numpy()
            assert int(within.sum()) >= c["within_tolerance"] - 1  # what the report counts is on the chip
            assert c["within_tolerance"] >= MAP.size - 1
    finally:
        store.close()


class _LosingEngine(LocalEngine):
    """The local engine, whose chip 0 worker is "lost" once after it ran ``first`` (a partial
    job of its own): what a killed actor leaves in the store, without Ray."""

    def __init__(self, first) -> None:
        super().__init__()
        self.first = first
        self.lost = False

    def call_each(self, method, args, on_result=None):
        if method == "run_protocol" and not self.lost and 0 in args:
            self.lost = True
            task = args[0][0]
            self.workers[0].run_protocol(ProtocolTask(self.first or task.fn, task.db, task.run_id, task.resume))
            rest = super().call_each(method, {i: a for i, a in args.items() if i != 0}, on_result)
            return {0: WorkerLost(0, "killed (test)"), **rest}
        return super().call_each(method, args, on_result)


@pytest.mark.slow
def test_a_lost_characterize_worker_characterises_its_chip_again_in_a_new_run(tmp_path: Path, chips_dir: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    specs = simulated_chips(small_onchip_bench(tmp_path), 2)
    rep = run_fleet_protocol(_LosingEngine(None), specs, characterize_job(SMALL_CP), (96, 96), db=db)
    chip0 = rep.chips[0]
    assert chip0["restarts"] == 1 and len(chip0["runs_interrupted"]) == 1
    old, new = chip0["runs_interrupted"][0], chip0["run_id"]
    store = open_store(db)
    try:
        lost = store.get_run(old)
        assert lost["status"] == "interrupted" and lost["summary"]["replaced_by"] == new
        assert store.get_run(new)["status"] == "complete"
        assert (store.get_run(new)["params"] or {})["replaces_run"] == old
        # the new run holds one session's samples only: exactly as many as one characterisation
        n_old, n_new = (len(store.samples("imprecision", [r])) for r in (old, new))
        assert n_old == n_new == SMALL_CP.devices * SMALL_CP.levels * SMALL_CP.repeats * SMALL_CP.reads
        assert rep.chips[1]["restarts"] == 0 and rep.chips[1]["runs_interrupted"] == []
    finally:
        store.close()
    text = characterize_fleet_text(rep.summary())  # what the user reads says so
    assert f"run {old} marked interrupted" in text and f"in run {new}" in text and "never mixed" in text


@pytest.mark.slow
def test_a_lost_tune_worker_resumes_its_chip_reading_first(tmp_path: Path, chips_dir: Path) -> None:
    bench = small_onchip_bench(tmp_path)
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    specs = simulated_chips(bench, 2)
    half = MAP.copy()
    half[1, :] = np.nan  # the dead worker finished the first row only
    job = tune_map_job(MAP, (0, 0), "alibart", "row-major", None, None, None, {"protocol": "array/alibart"})
    first = functools.partial(tune_map_chip, half, (0, 0), "alibart", "row-major", None, None, None)
    rep = run_fleet_protocol(_LosingEngine(first), specs, job, (96, 96), db=db)
    chip0 = rep.chips[0]
    assert chip0["restarts"] == 1 and chip0["runs_interrupted"] == []  # the same run, continued
    assert chip0["resume"]["cells_kept"] == 3 and chip0["cells_kept_after_restart"] == 3
    store = open_store(db)
    try:
        # the restarted worker read the 3 kept cells, then programmed from there: the map
        # job started at the 4th cell (each session's events are numbered from 0, so the
        # events say what happened, not in which order)
        ev = store.events(chip0["run_id"])
        assert [e["cells_kept"] for e in ev if e.get("event") == "worker"] == [0, 3]
        assert [e["cells_kept"] for e in ev if e.get("event") == "resume_reread"] == [3]
        assert sorted(e["resume_from"] for e in ev if e.get("event") == "array_start") == [0, 3]
        cells = store.cells(chip0["run_id"])
        assert len(cells) == MAP.size  # one row per cell
        g = held_by_chip(specs[0].bench_text, tmp_path, cells["row"].to_numpy(), cells["col"].to_numpy())
        assert int((np.abs(g - cells["target_us"].to_numpy()) <= cells["tolerance_us"].to_numpy()).sum()) >= MAP.size - 1
    finally:
        store.close()
    text = tune_fleet_text(rep.summary())
    assert "3 kept cells re-read" in text and "read again and the run continued" in text


# ---------------------------------------------------------------------- Ray
loopback_environment()  # before Ray is imported: it reads its node-address setting then
try:
    import ray
except ImportError:  # the Ray tests below are skipped, saying why
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="Ray is not installed (pip install -e '.[test]' installs it)")


@needs_ray
@pytest.mark.slow
def test_characterize_on_ray_equals_the_local_engine(cluster, tmp_path: Path, monkeypatch) -> None:
    from memprog.fleet.engines import RayEngine

    specs = simulated_chips(small_onchip_bench(tmp_path), 2)
    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(tmp_path / "local_chips"))
    local = run_fleet_protocol(LocalEngine(), specs, characterize_job(SMALL_CP), (96, 96), db=f"sqlite:///{tmp_path / 'l.sqlite'}")
    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(tmp_path / "ray_chips"))  # the same chips, fresh
    remote = run_fleet_protocol(RayEngine(), specs, characterize_job(SMALL_CP), (96, 96), db=f"sqlite:///{tmp_path / 'r.sqlite'}")
    assert remote.engine["engine"] == "ray" and {c["pid"] for c in remote.chips}.isdisjoint({os.getpid()})
    for a, b in zip(local.chips, remote.chips, strict=True):
        assert a["chip_id"] == b["chip_id"] and a["counts"] == b["counts"]
    store = open_store(f"sqlite:///{tmp_path / 'r.sqlite'}")
    try:
        for c, cl in zip(remote.chips, local.chips, strict=True):
            assert store.get_run(c["run_id"])["chip_id"] == c["chip_id"]
            got = store.samples("imprecision", [c["run_id"]])["g_us"].to_numpy()
            lst = open_store(f"sqlite:///{tmp_path / 'l.sqlite'}")
            try:
                np.testing.assert_array_equal(got, lst.samples("imprecision", [cl["run_id"]])["g_us"].to_numpy())
            finally:
                lst.close()
    finally:
        store.close()


@needs_ray
@pytest.mark.slow
def test_tune_map_on_ray_equals_the_local_engine(cluster, tmp_path: Path, monkeypatch) -> None:
    from memprog.fleet.engines import RayEngine

    bench = small_onchip_bench(tmp_path)
    specs = simulated_chips(bench, 2)
    job = tune_map_job(MAP, (0, 0), "alibart", "row-major", None, None, None, {})
    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(tmp_path / "local_chips"))
    local = run_fleet_protocol(LocalEngine(), specs, job, (96, 96), db=f"sqlite:///{tmp_path / 'l.sqlite'}")
    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(tmp_path / "ray_chips"))
    remote = run_fleet_protocol(RayEngine(), specs, job, (96, 96), db=f"sqlite:///{tmp_path / 'r.sqlite'}")
    for a, b in zip(local.chips, remote.chips, strict=True):
        for key in ("cells", "within_tolerance", "converged", "pulses_total", "max_abs_error_us", "flags"):
            assert a[key] == b[key], key


@needs_ray
@pytest.mark.slow
def test_a_killed_actor_during_tune_map_resumes_its_chip_reading_first(cluster, tmp_path: Path, monkeypatch) -> None:
    from memprog.fleet.engines import RayEngine

    d = yaml.safe_load((ROOT / "benches" / "sim_k4200_707b.yaml").read_text())
    bench = tmp_path / "xbar.yaml"  # a serial 8x8 crossbar: its cells reach the store one by one
    bench.write_text(yaml.safe_dump(d, sort_keys=False))
    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(tmp_path / "chips"))
    m = np.linspace(120.0, 320.0, 32).reshape(4, 8)
    db = f"sqlite:///{tmp_path / 'fleet.sqlite'}"
    store = open_store(db)
    try:
        out, killed = kill_chip0_worker_mid_run(
            lambda: run_fleet_protocol(RayEngine(), simulated_chips(bench, 2), tune_map_job(m, (0, 0), "alibart", "row-major", None, None, None, {}), (8, 8), db=db), store, tmp_path / "fleet.sqlite", "array", timeout_s=180
        )
        assert "error" not in out, out.get("error")
        assert killed is not None, "the chip finished before it could be killed"
        chip0 = out["report"].chips[0]
        assert chip0["restarts"] == 1 and chip0["runs_interrupted"] == []
        assert chip0["resume"]["cells_kept"] >= killed  # every stored cell was read again
        ev = store.events(chip0["run_id"])
        kept = chip0["resume"]["cells_kept"]
        assert [e["cells_kept"] for e in ev if e.get("event") == "worker"] == [0, kept]
        assert [e["cells_kept"] for e in ev if e.get("event") == "resume_reread"] == [kept]
        # the map job of the restarted worker began after the kept cells it had re-read
        assert max(e["resume_from"] for e in ev if e.get("event") == "array_start") > 0
        run = store.get_run(chip0["run_id"])
        assert run["status"] == "complete" and len(store.cells(chip0["run_id"])) == m.size == run["cells_total"]
    finally:
        store.close()
