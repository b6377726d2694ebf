"""The dashboard's JSON endpoints, guard and start-up checks, on a real SQLite run store
(no browser: Starlette's test client, and the CLI through typer's runner)."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading

import numpy as np
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from memprog.cli import app as cli_app
from memprog.dashboard import create_app
from memprog.store import open_store
from tests.dashboard_helpers import (
    add_array_run,
    add_characterize_run,
    add_ladder_run,
    array_result,
)
from tests.store_helpers import store_url

LOCAL = "http://127.0.0.1"


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A store with a 32×32 array run (one traced cell), a ladder, two characterised chips."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'store.sqlite'}"
    w = open_store(url)
    ids = {
        "array": add_array_run(w, 32, trace_cell=(3, 4)),
        "ladder": add_ladder_run(w, 120),
        "charA": add_characterize_run(w, "chip-A", 0),
        "charB": add_characterize_run(w, "chip-B", 1, 1.5),
    }
    w.close()
    ro = open_store(url, read_only=True)
    yield url, ids, TestClient(create_app(ro), base_url=LOCAL)
    ro.close()


def test_runs_endpoint_lists_filters_and_reports_progress(filled):
    url, ids, client = filled
    data = client.get("/api/runs").json()
    assert {r["run_id"] for r in data["runs"]} >= set(ids.values())
    arr = next(r for r in data["runs"] if r["run_id"] == ids["array"])
    assert arr["progress"]["cells_done"] == 1024 and arr["progress"]["fraction"] == 1.0
    assert set(data["choices"]["chip_id"]) >= {"chip-A", "chip-B"}
    only_b = client.get("/api/runs", params={"chip_id": "chip-B"}).json()["runs"]
    assert [r["run_id"] for r in only_b] == [ids["charB"]]
    assert client.get("/api/runs", params={"kind": "levels"}).json()["count"] == 1
    bad = client.get("/api/runs", params={"status": "done"})
    assert bad.status_code == 400 and "running, complete" in bad.json()["detail"]


def test_run_maps_and_cell_drill_down(filled):
    url, ids, client = filled
    rid = ids["array"]
    d = client.get(f"/api/runs/{rid}").json()
    res = array_result(32, 0)
    assert d["cells_stored"] == 1024 and d["converged"] == int(res.converged.sum())
    assert d["flag_counts"]["stuck"] == int(res.has_flag("stuck").sum())
    h = d["error_histogram"]
    assert sum(h["counts"]) + h["below"] + h["above"] == 1024
    m = client.get(f"/api/runs/{rid}/maps").json()
    assert m["rows"] == list(range(32)) and m["cols"] == list(range(32))
    final = np.array(m["final_us"], dtype=float)
    assert final.shape == (32, 32)
    np.testing.assert_allclose(final[res.rows, res.cols], res.final_us, atol=5e-4)
    f32 = client.get(f"/api/runs/{rid}/maps", params={"encoding": "f32"}).json()
    assert f32["grid_encoding"] == "f32-base64" and f32["shape"] == [32, 32]
    packed = np.frombuffer(base64.b64decode(f32["final_us"]), "<f4").reshape(32, 32)
    np.testing.assert_allclose(packed, final, rtol=1e-6)
    assert client.get(f"/api/runs/{rid}/maps", params={"encoding": "png"}).status_code == 400
    r_st, c_st = m["flags"]["stuck"]
    assert set(zip(r_st, c_st, strict=False)) == set(zip(res.rows[res.has_flag("stuck")].tolist(),
                                           res.cols[res.has_flag("stuck")].tolist(), strict=False))  # fmt: skip
    cell = client.get(f"/api/runs/{rid}/cells/3/4").json()
    assert cell["results"][0]["row"] == 3 and cell["trace_points"] == 24
    assert cell["trace"]["kind"][:2] == ["pulse", "read"]
    assert client.get(f"/api/runs/{rid}/cells/99/99").status_code == 404
    ev = client.get(f"/api/runs/{rid}/events").json()
    assert any(e["event"] == "array_end" for e in ev["events"])


def test_ladder_endpoint(filled):
    url, ids, client = filled
    d = client.get(f"/api/runs/{ids['ladder']}").json()
    assert d["is_ladder"] and d["cells_stored"] == 120
    lad = client.get(f"/api/runs/{ids['ladder']}/ladder").json()
    assert lad["levels"] == list(range(120)) and lad["tolerance_us"][0] == 1.0
    assert lad["levels_within_tolerance"] == sum(lad["within"]) == d["within_tolerance"]
    assert lad["target_us"][:2] == [50.0, 52.0]


def test_variability_endpoint_compares_chips(filled):
    url, ids, client = filled
    v = client.get("/api/variability").json()
    assert v["chips"] == ["chip-A", "chip-B"]
    a, b = v["per_chip"]["chip-A"], v["per_chip"]["chip-B"]
    assert a["missing"] == {} and len(a["imprecision"]["level_us"]) == 8
    assert b["imprecision_fit"]["intercept_pct"] > a["imprecision_fit"]["intercept_pct"]
    assert a["disturb_by_writes"]["later_writes"] == [1, 5, 13, 29]
    assert set(a["stuck_fractions"]) == {"hrs", "lrs", "cells"} and a["g_range_us"] == [
        100.0,
        400.0,
    ]
    one = client.get("/api/variability", params={"chip_id": "chip-B"}).json()
    assert list(one["per_chip"]) == ["chip-B"]
    assert client.get("/api/variability", params={"chip_id": "nope"}).status_code == 404


def test_variability_names_the_missing_characterisation(tmp_path):
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    w = open_store(url)
    add_array_run(w, 4, trace_cell=None)
    w.close()
    client = TestClient(create_app(open_store(url, read_only=True)), base_url=LOCAL)
    v = client.get("/api/variability").json()
    assert v["chips"] == [] and "memprog characterize" in json.dumps(v["per_chip"])


def test_unknown_and_malformed_run_ids_are_404_pages_with_a_link_back(filled):
    url, ids, client = filled
    for bad in ("0123456789ab", "ABCDEF012345", "xyz", "0123456789abc", "..%2F..%2Fetc"):
        page = client.get(f"/runs/{bad}")
        assert page.status_code == 404 and 'href="/"' in page.text, bad
        assert client.get(f"/api/runs/{bad}").status_code == 404
    assert "<script" not in client.get("/runs/<script>alert(1)</script>").text


def test_no_request_path_reaches_the_file_system(filled):
    url, ids, client = filled
    assert client.get("/static/plotly.min.js").status_code == 200
    for p in ("/static/../pyproject.toml", "/static/%2e%2e/%2e%2e/pyproject.toml",
              "/static/run.html", "/static/__init__.py", "/pyproject.toml"):  # fmt: skip
        assert client.get(p).status_code == 404, p


def test_token_guard_and_host_check(filled):
    url, ids, client = filled
    ro = open_store(url, read_only=True)
    app = create_app(ro, token="s3cret-token", local=False)
    remote = TestClient(app, base_url="http://192.0.2.10")
    for path in ("/", "/api/runs", f"/runs/{ids['array']}", "/static/plotly.min.js", "/nope"):
        assert remote.get(path).status_code == 401, path
    assert (
        remote.get("/api/runs", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    )
    assert (
        remote.get("/api/runs", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    )
    first = remote.get("/?token=s3cret-token")
    assert first.status_code == 200 and "memprog_token" in first.headers["set-cookie"]
    assert remote.get("/api/runs").status_code == 200  # the cookie now carries it
    # loopback without a token: local Host names only (no DNS rebinding)
    assert client.get("/api/runs").status_code == 200
    assert (
        TestClient(client.app, base_url="http://attacker.example").get("/api/runs").status_code
        == 400
    )
    ro.close()


def test_a_run_read_while_written_is_a_consistent_snapshot(tmp_path):
    url = f"sqlite:///{tmp_path / 'live.sqlite'}"
    w = open_store(url)
    rid = w.start_run(kind="array", bench="sim_onchip", cells_total=64 * 64)
    client = TestClient(create_app(open_store(url, read_only=True)), base_url=LOCAL)
    res = array_result(64, 2)
    done = threading.Event()

    def writer() -> None:
        sink = w.sink(rid, batch_cells=1 << 20)
        for k in range(0, 64 * 64, 256):
            mask = np.zeros(len(res), dtype=bool)
            mask[k : k + 256] = True
            sink.record_results(res.subset(mask))
            sink.flush()
        w.finish_run(rid, "complete")
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    seen = []
    while not done.is_set() or len(seen) < 3:
        for path in (f"/api/runs/{rid}", f"/api/runs/{rid}/maps", "/api/runs"):
            r = client.get(path)
            assert r.status_code == 200, (path, r.text[:200])
        d = client.get(f"/api/runs/{rid}").json()
        h = d["error_histogram"]
        assert sum(h["counts"]) + h["below"] + h["above"] == d["cells_stored"]
        m = client.get(f"/api/runs/{rid}/maps").json()
        if m["cells"]:
            assert sum(v is not None for row in m["final_us"] for v in row) == m["cells"]
        seen.append(d["cells_stored"])
        if done.is_set() and len(seen) >= 3:
            break
    t.join()
    assert seen == sorted(seen) and seen[-1] == 64 * 64
    w.close()


# ---------------------------------------------------------------------------- the command
def test_command_refuses_a_non_local_bind_without_token(filled, monkeypatch):
    url, ids, client = filled
    monkeypatch.delenv("MEMPROG_DASHBOARD_TOKEN", raising=False)
    r = CliRunner().invoke(cli_app, ["dashboard", "--db", url, "--host", "0.0.0.0", "--port", "0"])
    assert r.exit_code == 2
    assert r.output.count("\n") == 1 and "--token" in r.output and "0.0.0.0" in r.output


def test_command_refuses_what_is_not_a_memprog_store(tmp_path):
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE measurements (x REAL)")
    con.commit()
    con.close()
    not_db = tmp_path / "notes.sqlite"
    not_db.write_text("just some text, not a database\n" * 50)
    for path in (other, not_db, tmp_path / "missing.sqlite"):
        r = CliRunner().invoke(cli_app, ["dashboard", "--db", f"sqlite:///{path}", "--port", "0"])
        assert r.exit_code == 2, (path, r.output)
        assert r.output.count("\n") == 1 and r.output.startswith("error:"), r.output
    assert not (tmp_path / "missing.sqlite").exists()  # read-only: never created


@pytest.mark.parametrize("backend", ["sqlite", "pg"])
def test_views_on_each_store_backend(backend, tmp_path):
    url = store_url(backend, tmp_path)
    w = open_store(url)
    rid = add_array_run(w, 16, trace_cell=(1, 2))
    lad = add_ladder_run(w, 20)
    w.close()
    ro = open_store(url, read_only=True)
    client = TestClient(create_app(ro), base_url=LOCAL)
    assert {r["run_id"] for r in client.get("/api/runs").json()["runs"]} == {rid, lad}
    assert client.get(f"/api/runs/{rid}").json()["cells_stored"] == 256
    assert len(client.get(f"/api/runs/{rid}/maps").json()["final_us"]) == 16
    assert client.get(f"/api/runs/{rid}/cells/1/2").json()["trace_points"] == 24
    assert client.get(f"/api/runs/{lad}/ladder").json()["levels"] == list(range(20))
    ro.close()
