"""The fleet on a real Ray cluster (Ray 2.60, two CPUs, on 127.0.0.1 only): the same answer
as the local engine, a killed ``ray::BenchActor`` survived, bad fleets refused.

Skipped, saying why, where Ray is not installed (it is in the test extras)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from memprog.fleet.engines import loopback_environment  # noqa: E402

loopback_environment()  # before Ray is imported: Ray reads its node-address setting then
ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[test]' installs it)")

from memprog.core.errors import ClusterError, ConfigError  # noqa: E402
from memprog.fleet.chips import load_fleet, simulated_chips  # noqa: E402
from memprog.fleet.engines import LocalEngine, RayEngine  # noqa: E402
from memprog.fleet.job import run_fleet_program  # noqa: E402
from memprog.jobs.program import ProgramParams  # noqa: E402
from memprog.store import open_store  # noqa: E402
from tests.fleet.fleet_helpers import (  # noqa: E402
    digits,
    held_by_chip,
    kill_chip0_worker_mid_run,
    small_onchip_bench,
)
from tests.store_helpers import PG_ENV  # noqa: E402

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-c", "from memprog.cli import main; main()"]


def _job(engine, bench, db=None, chunk_cells=16384):
    net, data = digits()
    params = ProgramParams(copies=1, chunk_cells=chunk_cells)
    return run_fleet_program(engine, simulated_chips(bench, 2), net, params, (96, 96), test_set=data, db=db)


def test_the_cluster_listens_on_loopback_only(cluster) -> None:
    nodes = [n for n in ray.nodes() if n["Alive"]]
    assert nodes and all(n["NodeManagerAddress"] == "127.0.0.1" for n in nodes)


def test_two_chips_on_ray_give_exactly_the_local_engines_result(cluster, tmp_path: Path, monkeypatch) -> None:
    bench = small_onchip_bench(tmp_path)
    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(tmp_path / "local_chips"))
    local = _job(LocalEngine(), bench)
    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(tmp_path / "ray_chips"))  # the same chips, fresh
    remote = _job(RayEngine(), bench)
    assert remote.summary()["engine"]["engine"] == "ray"
    # the actors ran elsewhere (their own processes), on the same chips, bit for bit
    assert {c["pid"] for c in remote.chips}.isdisjoint({os.getpid()})
    np.testing.assert_array_equal(remote.total.result.final_us, local.total.result.final_us)
    np.testing.assert_array_equal(remote.total.result.pulses, local.total.result.pulses)
    assert remote.chip_accuracy == local.chip_accuracy
    assert remote.readout_accuracy == local.readout_accuracy


def test_a_killed_bench_actor_is_restarted_and_its_chip_resumed_reading_first(cluster, tmp_path: Path, monkeypatch) -> None:
    bench = small_onchip_bench(tmp_path)
    state = tmp_path / "chips"
    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(state))
    db = f"sqlite:///{tmp_path / 'fleet.sqlite'}"
    store = open_store(db)
    try:
        out, killed = kill_chip0_worker_mid_run(
            lambda: _job(RayEngine(), bench, db, chunk_cells=256), store, tmp_path / "fleet.sqlite", "program"
        )
        assert "error" not in out, out.get("error")
        assert killed is not None, "the chip finished before it could be killed"
        s = out["report"].summary()
        chip0 = s["chips"][0]
        assert chip0["restarts"] == 1 and chip0["cells_kept_after_restart"] >= killed
        # one row per cell, the run complete, what the report counts is on the chip
        for c in s["chips"]:
            run = store.get_run(c["run_id"])
            assert run["status"] == "complete"
            assert len(store.cells(c["run_id"])) == c["cells_total"] == run["cells_total"]
        assert [e for e in store.events(s["fleet_run_id"]) if e.get("event") == "worker_lost"]
        cells = store.cells(chip0["run_id"])
        spec = simulated_chips(bench, 2)[0]
        g = held_by_chip(spec.bench_text, tmp_path, cells["row"].to_numpy(), cells["col"].to_numpy())
        within = np.abs(g - cells["target_us"].to_numpy()) <= cells["tolerance_us"].to_numpy()
        # what the report counts is on the chip (give or take relaxation after the verify:
        # 1-3 % of the cells measured here, killed or not)
        assert abs(int(within.sum()) - chip0["cells_within_tolerance"]) <= 0.04 * chip0["cells_total"]
    finally:
        store.close()
    # the network still runs as well as on chips nobody killed (same seeds, fresh)
    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(tmp_path / "unkilled"))
    calm = _job(LocalEngine(), bench)
    assert abs(s["chip_accuracy"] - calm.chip_accuracy) <= 0.03


def test_a_fleet_naming_a_resource_no_node_has_is_refused_listing_the_resources(cluster, tmp_path: Path) -> None:
    f = tmp_path / "fleet.yaml"
    f.write_text("benches:\n  - {name: a, bench: sim_onchip, resource: probe_nowhere}\n  - {name: b, bench: sim_onchip, resource: probe_b}\n")
    _, specs = load_fleet(f)
    with pytest.raises(ConfigError, match="probe_nowhere") as e:
        RayEngine().start(specs, 256, 256)
    assert "resources the cluster's nodes advertise" in str(e.value)


def test_more_chips_than_the_cluster_holds_are_refused_saying_how_many_fit(cluster) -> None:
    specs = simulated_chips("sim_onchip", 1000)
    eng = RayEngine()
    with pytest.raises(ConfigError, match=r"chips=1000 .*<= \d+") as e:
        eng.start(specs, 256, 256)
    assert "per 256x256 chip's actor" in str(e.value)
    assert eng.actors == []


def test_an_unreachable_ray_address_is_one_line_and_exit_3(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="127.0.0.1:9: cannot be reached"):
        RayEngine("127.0.0.1:9")._init()
    p = subprocess.run(
        [*CLI, "program", "--example", "digits", "--engine", "ray",
         "--ray-address", "127.0.0.1:9", "--chips", "2", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 3, p.stderr
    assert p.stderr.strip().count("\n") == 0 and "127.0.0.1:9" in p.stderr


def test_an_address_where_something_else_answers_is_refused_not_waited_on(tmp_path: Path) -> None:
    import http.server

    srv = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    addr = f"127.0.0.1:{srv.server_address[1]}"
    try:
        t0 = time.monotonic()
        with pytest.raises(ClusterError, match="answers, but not as a Ray cluster"):
            RayEngine(addr)._init()
        assert time.monotonic() - t0 < 30  # ray.init itself would wait for ever
    finally:
        srv.shutdown()


def test_the_cli_runs_a_tiled_fleet_on_ray_and_reports_per_chip(tmp_path: Path) -> None:
    bench = small_onchip_bench(tmp_path)
    env = {**os.environ, "MEMPROG_SIM_STATE_DIR": str(tmp_path / "chips")}
    p = subprocess.run(
        [*CLI, "program", "--example", "digits", "--bench", str(bench),
         "--chips", "2", "--copies", "1", "--engine", "ray", "--db", f"sqlite:///{tmp_path / 's.sqlite'}",
         "--out", str(tmp_path / "o"), "--json"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert p.returncode in (0, 1), p.stderr
    doc = json.loads(p.stdout)
    assert doc["mode"] == "tiled" and doc["engine"]["engine"] == "ray"
    assert doc["engine"]["nodes"] == ["127.0.0.1"]
    assert len(doc["chips"]) == 2 and doc["inference"] == "vmm"
    assert Path(doc["report"]["png"]).stat().st_size > 0
    # each chip's cells, as a single job writes them
    for c in doc["chips"]:
        assert sum(1 for _ in open(doc["report"][f"{c['name']}_cells"])) == c["cells_total"] + 1


@pytest.mark.skipif(not os.environ.get(PG_ENV), reason=f"no PostgreSQL server ({PG_ENV} unset; .ci/run starts one)")
def test_every_actor_writes_its_chip_to_postgresql(cluster, tmp_path: Path, monkeypatch) -> None:
    bench = small_onchip_bench(tmp_path)
    url = os.environ[PG_ENV]
    rep = _job(RayEngine(), bench, db=url)
    store = open_store(url)
    try:
        for c in rep.summary()["chips"]:
            assert len(store.cells(c["run_id"])) == c["cells_total"]
        assert store.get_run(rep.fleet_run_id)["status"] == "complete"
    finally:
        store.close()


def test_evaluate_on_bench_programs_the_same_fresh_chips_in_parallel(cluster, tmp_path: Path) -> None:

    from memprog.fleet.job import fleet_chip_programmer
    from memprog.hwaware.variability import VariabilityModel
    from memprog.jobs.evaluate import compare_with_prediction
    from tests.weights_helpers import save_moons_weights

    save_moons_weights(tmp_path / "moons.pt")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 2, (100, 2))
    y = (x[:, 1] > 0.5).astype(int)
    var = VariabilityModel.from_preset("tio2_passive")
    kw = {"mc_transfers": 100, "first_seed": 1}
    here = compare_with_prediction(tmp_path / "moons.pt", "sim_onchip", 3, var, (x, y), **kw)
    db = f"sqlite:///{tmp_path / 'yield.sqlite'}"
    there = compare_with_prediction(
        tmp_path / "moons.pt", "sim_onchip", 3, var, (x, y), program_chips=fleet_chip_programmer(RayEngine, db), **kw
    )
    assert [c["seed"] for c in there["chips"]] == [1, 2, 3]
    assert there["measured_accuracies"] == here["measured_accuracies"]
    assert [c["cells_stuck"] for c in there["chips"]] == [c["cells_stuck"] for c in here["chips"]]
    # the yield study is a fleet run: the chips' accuracies beside the Monte Carlo prediction
    store = open_store(db)
    try:
        (fid,) = store.list_runs(kind="fleet")["run_id"]
        s = store.get_run(fid)["summary"]
    finally:
        store.close()
    assert s["mode"] == "replicated" and s["yield"]["chip_accuracies"] == there["measured_accuracies"]
    assert s["predicted"]["p05"] == there["predicted"]["p5"] and s["predicted"]["mean"] == there["predicted"]["mean"]
