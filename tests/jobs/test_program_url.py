"""Download-and-program (issue 28): ``memprog program http://127.0.0.1:PORT/net.pt --sha256 HEX``
against a real HTTP server on loopback, on the simulated on-chip bench (backend ``@memprog``).

Checks the product: the chip runs the downloaded network; a wrong hash sends no pulse and
leaves no run; failures are one line naming the URL without its credentials; the cache
answers a second job; ``memprog db chips`` says which weights are on the chip.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from memprog.cli import app
from memprog.store import open_store
from tests.http_fixture import start_server

SECRET = "pw-7f3a9c"


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A 12-10-4 network and its test set on a loopback HTTP server; store and cache in tmp."""
    from memprog.jobs.weights import load_program_input

    g = torch.Generator().manual_seed(3)
    sd = {"fc0.weight": torch.randn(10, 12, generator=g), "fc0.bias": 0.3 * torch.randn(10, generator=g),
          "fc1.weight": torch.randn(4, 10, generator=g), "fc1.bias": 0.3 * torch.randn(4, generator=g)}
    torch.save(sd, tmp_path / "net.pt")
    net = load_program_input(tmp_path / "net.pt")
    x = np.random.default_rng(3).random((400, 12))
    sc = np.sort(net.forward(x), axis=1)
    keep = np.argsort(sc[:, -1] - sc[:, -2])[-60:]  # clear answers: a test of the chip, not of luck
    np.savez(tmp_path / "test.npz", x=x[keep], y=net.predict(x[keep]))
    srv = start_server()
    body = (tmp_path / "net.pt").read_bytes()
    srv.files["/net.pt"] = body
    srv.files["/test.npz"] = (tmp_path / "test.npz").read_bytes()
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    monkeypatch.setenv("MEMPROG_DB", db)
    monkeypatch.setenv("MEMPROG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    yield srv, hashlib.sha256(body).hexdigest(), db
    srv.shutdown()
    srv.server_close()


def _run(args):
    return _runner().invoke(app, args)


def _runs(db):
    """The store's runs; none when no command ever created the store."""
    if not Path(db.removeprefix("sqlite:///")).exists():
        return []
    store = open_store(db, read_only=True)
    try:
        return store.list_runs()
    finally:
        store.close()


@pytest.mark.slow
def test_download_program_run_and_db_chips(served):
    srv, sha, db = served
    url = f"{srv.url}/net.pt"
    out = _run(["program", url, "--sha256", sha, "--test-set", f"{srv.url}/test.npz",
                "--out", "rep", "--json"])
    assert out.exit_code in (0, 1), out.stderr
    s = json.loads(out.stdout)
    assert s["chip_accuracy"] >= s["software_accuracy"] - 0.05  # the chip runs the network
    assert s["weights"] == url and s["weights_sha256"] == sha
    assert s["weights_source"]["pinned"] is True and s["weights_source"]["size_bytes"] > 0
    run = open_store(db, read_only=True).get_run(s["run_id"])
    assert run["params"]["weights_source"]["sha256"] == sha
    assert run["params"]["weights_source"]["format"] == "pt"
    # which weights are on which chip
    chips = _run(["db", "chips", "--json"])
    assert chips.exit_code == 0, chips.stderr
    (entry,) = json.loads(chips.stdout)["chips"]
    assert entry["chip_id"] == run["chip_id"]
    assert entry["weights"]["sha256"] == sha and entry["weights"]["source"] == url
    assert entry["weights"]["run_id"] == s["run_id"] and entry["weights"]["state"] == "complete"
    assert entry["weights"]["chip_accuracy"] == pytest.approx(s["chip_accuracy"])
    human = _run(["db", "chips"])
    assert sha in human.stdout and url in human.stdout
    # the dashboard's run page gets the provenance it shows (run.js: weights, sha256, pinned)
    from starlette.testclient import TestClient

    from memprog.dashboard import create_app

    ro = open_store(db, read_only=True)
    try:
        page = TestClient(create_app(ro), base_url="http://127.0.0.1").get(f"/api/runs/{s['run_id']}").json()
    finally:
        ro.close()
    ws = page["run"]["params"]["weights_source"]
    assert ws["sha256"] == sha and ws["source"] == url and ws["pinned"] is True
    # a later run on the same chip may have pulsed the network's cells: no longer "complete"
    later = _run(["tune", "--bench", "sim_onchip", "--rows", "0", "--cols", "0", "--target-us", "500", "--json"])
    assert later.exit_code in (0, 1), later.stderr
    (entry,) = json.loads(_run(["db", "chips", "--json"]).stdout)["chips"]
    assert entry["weights"]["state"] == "changed" and len(entry["weights"]["later_runs"]) == 1
    assert "CHANGED" in _run(["db", "chips"]).stdout


@pytest.mark.slow
def test_wrong_hash_refused_before_any_pulse_and_no_run(served, tmp_path):
    srv, sha, db = served
    wrong = "0" * 64
    out = _run(["program", f"{srv.url}/net.pt", "--sha256", wrong, "--json"])
    assert out.exit_code == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and sha in lines[0] and "Traceback" not in out.stderr
    assert len(_runs(db)) == 0  # nothing started, nothing stored
    # and nothing touched the chip: no simulated chip was ever opened (its state file is
    # created on first use)
    state = Path(os.environ["MEMPROG_SIM_STATE_DIR"])
    assert not state.exists() or not list(state.iterdir())


@pytest.mark.slow
def test_cache_hit_downloads_once(served):
    srv, sha, _db = served
    for k in range(2):
        out = _run(["program", f"{srv.url}/net.pt", "--sha256", sha, "--out", f"rep{k}", "--json"])
        assert out.exit_code in (0, 1), out.stderr
    assert srv.gets["/net.pt"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/missing.pt", "/truncated/net.pt"])
def test_404_and_truncated_are_one_line_exit_3_without_credentials(served, path):
    srv, sha, db = served
    port = srv.server_address[1]
    url = f"http://lab:{SECRET}@127.0.0.1:{port}{path}?token={SECRET}"
    out = _run(["program", url, "--json"])
    assert out.exit_code == 3, (out.exit_code, out.stderr)
    assert SECRET not in out.stderr + out.stdout
    lines = [ln for ln in out.stderr.strip().splitlines() if ln]
    assert len(lines) == 1 and path in lines[0] and "***" in lines[0]
    assert len(_runs(db)) == 0


@pytest.mark.slow
def test_unpinned_url_warns_and_records_the_hash(served):
    srv, sha, db = served
    out = _run(["program", f"{srv.url}/net.pt", "--json", "--out", "rep"])
    assert out.exit_code in (0, 1), out.stderr
    assert "not pinned" in out.stderr and sha in out.stderr
    s = json.loads(out.stdout)
    assert s["weights_source"]["pinned"] is False and s["weights_source"]["sha256"] == sha


@pytest.mark.slow
def test_job_file_is_the_whole_job(served, tmp_path):
    srv, sha, _db = served
    job = tmp_path / "job.yaml"
    job.write_text(
        f"weights: {srv.url}/net.pt\nsha256: {sha}\nbench: sim_onchip\nprotocol: alibart\n"
        "test_set: test.npz\naccuracy_tolerance: 0.05\n"
    )
    out = _run(["program", "--job", str(job), "--out", "rep", "--json"])
    assert out.exit_code in (0, 1), out.stderr
    s = json.loads(out.stdout)
    assert s["weights_sha256"] == sha and s["chip_accuracy"] is not None
    # the job file decides; the same setting on the command line too is refused
    both = _run(["program", "--job", str(job), "--protocol", "denoise"])
    assert both.exit_code == 2 and "--protocol" in both.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"weights: {srv.url}/net.pt\nsha256: xyz\n")
    refused = _run(["program", "--job", str(bad)])
    assert refused.exit_code == 2 and "sha256" in refused.stderr
    assert srv.gets["/net.pt"] == 1  # the bad job fetched nothing
