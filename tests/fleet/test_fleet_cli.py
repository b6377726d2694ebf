"""``memprog program`` with the fleet options: bad input is one line and exit 2, before any
bench opens; the local engine's fleet job end to end (the README's commands are untouched:
without the options, ``program`` is the single-chip job)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memprog.cli import app
from memprog.store import open_store
from tests.fleet.fleet_helpers import ROOT, small_onchip_bench

CLI = [sys.executable, "-c", "from memprog.cli import main; main()"]


def _run(args: list[str]):
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 keeps stderr apart already
        runner = CliRunner()
    return runner.invoke(app, ["program", *args])


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--chips", "0"], "--chips"),
        (["--chips", "2", "--bench", "LAB"], "a simulated bench"),
        (["--chips", "2", "--resume", "abcdef012345"], "--resume"),
        (["--ray-address", "127.0.0.1:6379"], "only with --engine ray"),
        (["--engine", "spark"], "--engine"),
        (["--chips", "2", "--fleet", "nowhere.yaml"], "--chips or --fleet"),
        (["--fleet", "nowhere.yaml"], "no such file"),
        (["--fleet-mode", "sideways", "--chips", "2"], "--fleet-mode"),
        (["--engine", "ray"], "with --chips N or --fleet F.yaml"),  # not a 1-chip fleet on another chip
        (["--fleet-mode", "tiled"], "with --chips N or --fleet F.yaml"),
    ],
)
def test_bad_fleet_options_are_one_line_and_exit_2(tmp_path: Path, extra: list[str], needle: str) -> None:
    if "LAB" in extra:  # a lab bench, filled in (real instruments: chips are not seeds)
        lab = tmp_path / "lab.yaml"
        lab.write_text((ROOT / "benches" / "lab_onchip.yaml").read_text().replace("<INSTRUMENT-IP>", "127.0.0.1"))
        extra = [str(lab) if a == "LAB" else a for a in extra]
    res = _run(["--example", "digits", "--out", str(tmp_path / "o"), *extra])
    assert res.exit_code == 2, res.stdout
    err = res.stderr.strip()
    assert err.count("\n") == 0 and needle in err
    assert not (tmp_path / "o" / "fleet.json").exists()


def test_a_fleet_file_with_unpinned_or_repeated_benches_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "fleet.yaml"
    f.write_text("benches:\n  - {name: a, bench: sim_onchip}\n  - {name: b, bench: sim_onchip}\n")
    res = _run(["--example", "digits", "--fleet", str(f), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "pinned to its host" in res.stderr and "['a', 'b']" in res.stderr
    f.write_text("benches:\n  - {name: a, bench: sim_onchip, resource: r1}\n  - {name: a, bench: sim_onchip, resource: r2}\n")
    res = _run(["--example", "digits", "--fleet", str(f), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "repeated" in res.stderr


def test_a_conductance_map_is_one_chips_job(tmp_path: Path) -> None:
    m = tmp_path / "map.csv"
    m.write_text("100,200\n300,400\n")
    res = _run([str(m), "--chips", "2", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "a network for a fleet job" in res.stderr


def test_too_few_chips_say_how_many_the_network_needs(tmp_path: Path) -> None:
    bench = small_onchip_bench(tmp_path)
    res = _run(["--example", "digits", "--bench", str(bench), "--chips", "1", "--copies", "1", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and ">= 2 chips of 96x96" in res.stderr


@pytest.mark.slow
def test_a_local_fleet_end_to_end_writes_both_reports_and_one_store(tmp_path: Path) -> None:
    bench = small_onchip_bench(tmp_path)
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    res = _run(["--example", "digits", "--bench", str(bench), "--chips", "2", "--copies", "1", "--db", db,
                "--out", str(tmp_path / "o"), "--json"])  # fmt: skip
    assert res.exit_code in (0, 1), res.stderr
    doc = json.loads(res.stdout)
    assert doc["mode"] == "tiled" and doc["engine"] == {"engine": "local", "address": None}
    assert [c["name"] for c in doc["chips"]] == ["chip0", "chip1"]
    on_disk = json.loads((tmp_path / "o" / "fleet.json").read_text())
    assert on_disk["chip_accuracy"] == doc["chip_accuracy"] and on_disk["fleet_run_id"] == doc["fleet_run_id"]
    # the exit code is the outcome's: the whole network's cells and accuracy
    assert res.exit_code == doc["outcome"]["exit_code"]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_mid_fleet_leaves_every_run_interrupted_and_exits_130(tmp_path: Path) -> None:
    bench = small_onchip_bench(tmp_path)
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    env = {**os.environ, "MEMPROG_SIM_STATE_DIR": str(tmp_path / "chips")}
    proc = subprocess.Popen(
        [*CLI, "program", "--example", "digits", "--bench", str(bench), "--chips", "2", "--copies", "1",
         "--chunk-cells", "256", "--db", db, "--out", str(tmp_path / "o")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    store = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (tmp_path / "s.sqlite").exists():
                store = store or open_store(db)
                runs = store.list_runs(kind="program")
                if len(runs) and any(store.get_run(r)["cells_done"] > 0 for r in runs["run_id"]):
                    break
            time.sleep(0.02)
        assert proc.poll() is None, "the job ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        assert "interrupted by SIGINT" in err and "left safe" in err
        assert store is not None
        fleet = store.list_runs(kind="fleet")
        statuses = {store.get_run(r)["status"] for r in [*fleet["run_id"], *store.list_runs(kind="program")["run_id"]]}
        assert statuses == {"interrupted"}
    finally:
        if proc.poll() is None:
            proc.kill()
        if store is not None:
            store.close()
