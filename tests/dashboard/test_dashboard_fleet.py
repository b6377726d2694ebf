"""The dashboard shows a fleet job per chip (issue 26, items 4 and 5): a fleet run's page
lists its chips with links to their program runs and the totals; a chip's run links back;
a yield study (replicated fleet) shows the histogram of chip accuracies beside the software
accuracy and the Monte Carlo 5-95 % band; the runs table shows a fleet's cells as its
chips'. Fleets are written through the store API (as ``memprog.fleet.job`` writes them),
so no chip is needed; one slow test runs a real 2-chip job with the local engine."""

from __future__ import annotations

import numpy as np
import pytest
from starlette.testclient import TestClient

from memprog.dashboard import create_app
from memprog.fleet.chips import simulated_chips
from memprog.fleet.engines import LocalEngine
from memprog.fleet.job import run_fleet_program
from memprog.jobs.program import ProgramParams
from memprog.protocols.results import TuneResult
from memprog.store import open_store
from tests.dashboard_helpers import NO_BROWSER, Browser, ThreadServer, artifacts_dir, have_browser
from tests.fleet.fleet_helpers import digits, small_onchip_bench

LOCAL = "http://127.0.0.1"
REPLICATED_ACC = [0.91, 0.935, 0.94, 0.945, 0.95, 0.952, 0.96, 0.88]
PREDICTED = {
    "source": "mc",
    "mc_transfers": 200,
    "mean": 0.93,
    "std": 0.02,
    "p05": 0.90,
    "p50": 0.932,
    "p95": 0.955,
}


def _cells(store, rid: str, n: int, seed: int) -> None:
    """``n`` stored cells of a chip's program run (a few off target)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.divmod(np.arange(n), 16)
    t = 100.0 + 5.0 * rng.integers(0, 20, n)
    one = np.ones(n)
    sink = store.sink(rid, batch_cells=1 << 20)
    sink.record_results(TuneResult(protocol="alibart", rows=rows, cols=cols, target_us=t,
                                   final_us=t + rng.normal(0, 0.5, n), pulses=7 * one, reads=20 * one,
                                   converged=one > 0, flags=np.full(n, "", object), tolerance_us=2.0))  # fmt: skip
    sink.flush()


def _chip_summary(k: int, cells: int, acc: float | None) -> dict:
    return {"cells_total": cells, "cells_within_tolerance": cells - 3 - k, "cells_stuck": 2 + k,
            "cells_failed": 1, "pulses_total": 7 * cells + k, "bench_time_s": 10.0 + k, "wall_s": 0.5,
            "chip_accuracy": acc, "outcome": {"exit_code": 1, "failed": 1}}  # fmt: skip


def add_fleet(store, mode: str, cells: list[int], *, acc: list[float] | None = None, finish: bool = True,
              predicted: dict | None = None, lost: tuple[int, ...] = (), chip_done: tuple[int, ...] | None = None) -> dict:  # fmt: skip
    """A fleet run and one program run per chip, as ``run_fleet_program`` records them.

    ``finish``: the fleet completes with its summary (else it stays running); ``chip_done``:
    which chips' runs are complete (default all); ``lost``: chips whose worker was lost once.
    """
    n = len(cells)
    specs = [{"index": k, "name": f"chip{k}", "chip_id": f"SIM-{mode}-seed{100 + k}", "bench": "sim_onchip",
              "seed": 100 + k} for k in range(n)]  # fmt: skip
    params = {"mode": mode, "engine": {"engine": "local", "address": None}, "program_params": {"copies": 1},
              "chips": specs}  # fmt: skip
    fid = store.start_run(kind="fleet", protocol="alibart", params=params)
    kids = []
    for k in range(n):
        kids.append(store.start_run(kind="program", bench="sim_onchip", chip_id=specs[k]["chip_id"],
                                    protocol="alibart", cells_total=cells[k],
                                    params={**params, "fleet_run_id": fid, "chip_index": k, "chip_name": f"chip{k}"}))  # fmt: skip
    sink = store.sink(fid)
    for k in lost:
        sink.record_event({"event": "worker_lost", "chip": k, "reason": "killed", "restart": 1})
    sink.close()
    done = range(n) if chip_done is None else chip_done
    for k in range(n):
        a = acc[k] if acc else None
        if k in done:
            _cells(store, kids[k], cells[k], k)
            store.finish_run(kids[k], "complete", _chip_summary(k, cells[k], a))
        else:
            _cells(store, kids[k], cells[k] // 2, k)  # half way
    if finish:
        chips = [{"index": k, "name": f"chip{k}", "chip_id": specs[k]["chip_id"], "run_id": kids[k], "seed": 100 + k,
                  **_chip_summary(k, cells[k], acc[k] if acc else None), "restarts": int(k in lost)}
                 for k in range(n)]  # fmt: skip
        summary = {"fleet_run_id": fid, "mode": mode, "engine": params["engine"], "n_chips": n,
                   "software_accuracy": 0.97, "chip_accuracy": 0.93 if acc is None else float(np.mean(acc)),
                   "readout_accuracy": 0.93 if mode == "tiled" else None, "inference": "vmm" if mode == "tiled" else "per chip",
                   "chips": chips, "wall_s": 3.0, "outcome": {"exit_code": 1, "failed": n}}  # fmt: skip
        if mode == "tiled":
            summary["total"] = {"cells_total": sum(cells), "cells_within_tolerance": sum(cells) - 9,
                                "cells_stuck": 5, "cells_failed": 2, "pairs_within_tolerance": sum(cells) - 9,
                                "layers": [{"layer": 0, "shape": [65, 54], "cells": sum(cells) - 20},
                                           {"layer": 1, "shape": [55, 10], "cells": 20}]}  # fmt: skip
        else:
            a = np.asarray(acc)
            summary["yield"] = {"chip_accuracies": list(acc), "mean": float(a.mean()), "std": float(a.std()),
                                "min": float(a.min()), "max": float(a.max())}  # fmt: skip
            if predicted:
                summary["predicted"] = predicted
        store.finish_run(fid, "complete", summary)
    return {"fleet": fid, "chips": kids}


@pytest.fixture(scope="module")
def fleets(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('fleet') / 'store.sqlite'}"
    w = open_store(url)
    ids = {
        "tiled": add_fleet(w, "tiled", [48, 32], lost=(1,)),
        "yield": add_fleet(
            w, "replicated", [40] * len(REPLICATED_ACC), acc=REPLICATED_ACC, predicted=PREDICTED
        ),
        "yield_nomc": add_fleet(w, "replicated", [16, 16, 16], acc=[0.9, 0.9, 0.9]),
        "running": add_fleet(w, "tiled", [48, 32, 64], finish=False, lost=(2,), chip_done=(0,)),
    }
    w.close()
    ro = open_store(url, read_only=True)
    yield url, ids, TestClient(create_app(ro), base_url=LOCAL)
    ro.close()


def test_tiled_fleet_shows_one_row_per_chip_linking_its_run_and_the_totals(fleets):
    _, ids, client = fleets
    f = client.get(f"/api/runs/{ids['tiled']['fleet']}/fleet").json()
    assert f["mode"] == "tiled" and f["n_chips"] == 2 and f["engine"]["engine"] == "local"
    rows = f["chips"]
    assert [c["run_id"] for c in rows] == ids["tiled"]["chips"]
    assert [c["name"] for c in rows] == ["chip0", "chip1"]
    assert [c["chip_id"] for c in rows] == ["SIM-tiled-seed100", "SIM-tiled-seed101"]
    assert [(c["cells_within_tolerance"], c["cells_total"]) for c in rows] == [(45, 48), (28, 32)]
    assert [c["cells_stuck"] for c in rows] == [2, 3]
    assert [c["pulses_total"] for c in rows] == [336, 225]
    assert [c["bench_time_s"] for c in rows] == [10.0, 11.0]
    assert [c["restarts"] for c in rows] == [0, 1]
    assert all(c["run_status"] == "complete" and c["progress"]["fraction"] == 1.0 for c in rows)
    t = f["total"]
    # the network's own total (the job's report) and the sums over chips
    assert t["cells_total"] == 80 and t["cells_within_tolerance"] == 71 and t["pulses_total"] == 561
    assert t["bench_time_s_sum"] == 21.0 and t["bench_time_s_max"] == 11.0 and t["restarts"] == 1
    assert [layer["layer"] for layer in t["layers"]] == [0, 1]
    assert t["chip_accuracy"] == 0.93 and t["software_accuracy"] == 0.97
    assert f["accuracy_histogram"] is None  # a tiled fleet is one network, not a yield study


def test_fleet_page_and_chip_pages_link_both_ways(fleets):
    _, ids, client = fleets
    fid, kids = ids["tiled"]["fleet"], ids["tiled"]["chips"]
    page = client.get(f"/runs/{fid}")
    assert page.status_code == 200 and "/static/fleet.js" in page.text and 'id="chips"' in page.text
    assert "/static/run.js" in client.get(f"/runs/{kids[0]}").text  # a chip's run: the run page
    for k, kid in enumerate(kids):
        back = client.get(f"/api/runs/{kid}").json()["fleet"]
        assert back == {"fleet_run_id": fid, "chip_index": k, "chip_name": f"chip{k}"}
    assert client.get(f"/api/runs/{fid}").json()["is_fleet"] is True
    # the page's script builds both links from these fields, through the same URL form
    js = client.get("/static/fleet.js").text
    assert "runLink(c.run_id)" in js and 'href="/runs/${encodeURIComponent(id)}"' in js
    assert "fleet_run_id" in client.get("/static/run.js").text


def test_a_run_outside_any_fleet_has_no_fleet_link_and_no_fleet_view(fleets):
    url, ids, client = fleets
    w = open_store(url)
    plain = w.start_run(kind="program", params={"fleet_run_id": "../../etc", "chip_index": 0})
    w.finish_run(plain, "complete", {})
    w.close()
    assert client.get(f"/api/runs/{plain}").json()["fleet"] is None  # a malformed id never links
    r = client.get(f"/api/runs/{plain}/fleet")
    assert r.status_code == 404 and "not a fleet run" in r.json()["detail"]
    assert client.get("/api/runs/NOT-A-RUN/fleet").status_code == 404


def test_yield_study_histogram_with_software_accuracy_and_monte_carlo_band(fleets):
    _, ids, client = fleets
    f = client.get(f"/api/runs/{ids['yield']['fleet']}/fleet").json()
    assert f["mode"] == "replicated" and len(f["chips"]) == len(REPLICATED_ACC)
    assert [c["chip_accuracy"] for c in f["chips"]] == REPLICATED_ACC
    h = f["accuracy_histogram"]
    pct = 100 * np.asarray(REPLICATED_ACC)
    assert sum(h["counts"]) == len(REPLICATED_ACC)
    counts, _ = np.histogram(pct, bins=np.asarray(h["edges_pct"]))
    assert h["counts"] == counts.tolist()  # each chip in the bin its accuracy falls in
    assert h["software_pct"] == pytest.approx(97.0)
    assert h["predicted"]["p05_pct"] == pytest.approx(90.0)
    assert h["predicted"]["p95_pct"] == pytest.approx(95.5)
    assert h["predicted"]["mc_transfers"] == 200
    lo, hi = h["edges_pct"][0], h["edges_pct"][-1]
    assert lo <= 88.0 and hi >= 97.0  # the chips, the software line and the band all on the axis
    assert h["mean_pct"] == pytest.approx(pct.mean()) and h["std_pct"] == pytest.approx(pct.std())
    assert h["mean_in_predicted_5_95"] is True
    # a yield study without a Monte Carlo prediction, every chip alike: still a histogram
    h2 = client.get(f"/api/runs/{ids['yield_nomc']['fleet']}/fleet").json()["accuracy_histogram"]
    assert (
        h2["predicted"] is None
        and sum(h2["counts"]) == 3
        and h2["edges_pct"][-1] > h2["edges_pct"][0]
    )


def test_running_fleet_fills_its_rows_from_the_chips_runs(fleets):
    _, ids, client = fleets
    fid, kids = ids["running"]["fleet"], ids["running"]["chips"]
    f = client.get(f"/api/runs/{fid}/fleet").json()
    assert f["status"] == "running" and [c["run_id"] for c in f["chips"]] == kids
    c0, c1, c2 = f["chips"]
    assert (
        c0["run_status"] == "complete"
        and c0["cells_total"] == 48
        and c0["cells_within_tolerance"] == 45
    )
    assert (
        c1["run_status"] == "running"
        and c1["progress"]["cells_done"] == 16
        and c1["progress"]["cells_total"] == 32
    )
    assert c1.get("cells_within_tolerance") is None  # no figures before the chip's run ends
    assert c2["restarts"] == 1 and f["workers_lost"] == 1  # from the fleet's worker_lost events
    assert f["total"]["cells_done"] == 48 + 16 + 32 and f["total"]["cells_planned"] == 144


def test_runs_table_shows_a_fleets_cells_as_its_chips(fleets):
    _, ids, client = fleets
    runs = {r["run_id"]: r for r in client.get("/api/runs").json()["runs"]}
    tiled = runs[ids["tiled"]["fleet"]]
    assert tiled["kind"] == "fleet" and tiled["fleet_chips"] == 2
    assert tiled["progress"]["cells_done"] == 80 and tiled["progress"]["fraction"] == 1.0
    live = runs[ids["running"]["fleet"]]
    assert live["progress"]["cells_done"] == 96 and live["progress"]["cells_total"] == 144
    assert live["progress"]["fraction"] == pytest.approx(96 / 144)
    only = client.get("/api/runs", params={"kind": "fleet"}).json()["runs"]  # its chips not listed
    assert {r["run_id"]: r["progress"]["cells_done"] for r in only}[ids["running"]["fleet"]] == 96


@pytest.mark.slow
def test_a_real_fleet_job_is_shown_per_chip(tmp_path):
    """A tiled 2-chip job through ``run_fleet_program`` (local engine, 96x96 chips): the
    fleet page's rows are the job's chips, each row's cells are the cells its run stored."""
    bench = small_onchip_bench(tmp_path)
    net, data = digits()
    db = f"sqlite:///{tmp_path / 'fleet.sqlite'}"
    rep = run_fleet_program(LocalEngine(), simulated_chips(bench, 2), net, ProgramParams(copies=1),
                            (96, 96), test_set=data, db=db)  # fmt: skip
    s = rep.summary()
    ro = open_store(db, read_only=True)
    try:
        client = TestClient(create_app(ro), base_url=LOCAL)
        f = client.get(f"/api/runs/{s['fleet_run_id']}/fleet").json()
        assert [c["run_id"] for c in f["chips"]] == [c["run_id"] for c in s["chips"]]
        assert f["mode"] == "tiled" and f["total"]["chip_accuracy"] == s["chip_accuracy"]
        stored = 0
        for c in f["chips"]:
            chip = client.get(f"/api/runs/{c['run_id']}").json()
            assert chip["fleet"]["fleet_run_id"] == s["fleet_run_id"]
            assert chip["fleet"]["chip_name"] == c["name"]
            assert (
                c["cells_total"] == chip["cells_stored"] > 0
            )  # the row counts what the chip's run holds
            assert c["cells_within_tolerance"] == chip["within_tolerance"]
            stored += chip["cells_stored"]
        assert f["total"]["cells_total"] == stored == s["total"]["cells_total"]
        row = next(
            r for r in client.get("/api/runs").json()["runs"] if r["run_id"] == s["fleet_run_id"]
        )
        assert row["progress"]["cells_done"] == stored and row["fleet_chips"] == 2
    finally:
        ro.close()


@pytest.mark.slow
@pytest.mark.skipif(not have_browser(), reason=NO_BROWSER)
def test_fleet_pages_in_a_browser(fleets):
    url, ids, _ = fleets
    srv, b = ThreadServer(url), Browser()
    try:
        fid = ids["yield"]["fleet"]
        b.driver.get(srv.base + f"/runs/{fid}")
        b.drawn_ms()
        links = b.wait(
            "Array.from(document.querySelectorAll('#chips-body td.chip-run a')).map(a => a.getAttribute('href'))"
        )
        assert links == [f"/runs/{k}" for k in ids["yield"]["chips"]]
        bars = b.wait("document.getElementById('yield').data?.[0].y")
        assert sum(bars) == len(REPLICATED_ACC)  # one bar count per chip, drawn
        shapes = b.driver.execute_script("return document.getElementById('yield').layout.shapes")
        assert {s["type"] for s in shapes} == {"rect", "line"}  # the MC band and the software line
        assert "total (8 chips)" in b.driver.find_element("id", "chips-total").text
        b.shot(artifacts_dir() / "dashboard_fleet_yield.png")
        b.driver.find_element("css selector", "#chips-body tr[data-chip='1'] td.chip-run a").click()
        href = b.wait("document.getElementById('fleet-link')?.getAttribute('href')")
        assert href == f"/runs/{fid}"
        b.driver.get(srv.base + f"/runs/{ids['tiled']['fleet']}")
        b.drawn_ms()
        assert b.wait("document.querySelectorAll('#layers-body tr').length") == 2
        assert b.driver.find_element("id", "yield-section").get_attribute("class") == "hidden"
        b.shot(artifacts_dir() / "dashboard_fleet_tiled.png")
        assert b.errors() == []
    finally:
        b.close()
        srv.close()
