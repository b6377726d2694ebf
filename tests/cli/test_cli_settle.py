"""``--settle-s``, ``--criterion`` and ``--retention-s`` (backend: @memprog on-chip bench)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from memprog.cli import app

BENCHES = Path(__file__).resolve().parents[2] / "benches"
ONCHIP = str(BENCHES / "sim_onchip.yaml")


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


def test_tune_map_reports_retention_after_each_delay(tmp_path):
    m = np.full((4, 8), 1500.0)
    m[1] = 3000.0
    path = tmp_path / "map.npy"
    np.save(path, m)
    r = _runner().invoke(
        app, ["tune", "--bench", ONCHIP, "--map", str(path), "--retention-s", "10,3600", "--json"]
    )
    assert r.exit_code in (0, 1), r.output
    d = json.loads(r.stdout)
    assert d["settle_s"] == 5.0  # the HfO2 default, from the bench's chip
    ret = d["retention"]
    assert [x["delay_s"] for x in ret] == [10.0, 3600.0]
    assert all(x["cells"] == 32 for x in ret)
    assert ret[-1]["fraction_within_converged"] >= 0.95
    assert d["bench_time_s"] > 3600  # the delays are bench time, reported honestly


@pytest.mark.slow
def test_levels_settle_and_criterion(tmp_path):
    args = ["levels", "--bench", ONCHIP, "--levels", "4", "--start-us", "1000", "--json"]
    r = _runner().invoke(app, [*args, "--settle-s", "2", "--out", str(tmp_path / "a.png")])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["settle_s"] == 2.0 and d["criterion"] == "every-read"
    assert d["bench_time_s"] >= 4 * 2.0
    r = _runner().invoke(
        app, [*args, "--settle-s", "0", "--criterion", "mean", "--out", str(tmp_path / "b.png")]
    )
    d = json.loads(r.stdout)
    assert d["settle_s"] == 0.0 and d["criterion"] == "mean" and d["bench_time_s"] < 1.0
    r = _runner().invoke(app, [*args, "--criterion", "median", "--out", str(tmp_path / "c.png")])
    assert r.exit_code != 0
