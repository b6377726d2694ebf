"""``memprog levels`` / ``memprog tune`` (backend: @memprog simulator through the bench files)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("memprog.drivers.onchip_programmer")

from memprog.cli import app  # noqa: E402
from memprog.cli.tune import parse_indices, parse_values  # noqa: E402
from memprog.core.errors import ConfigError  # noqa: E402

BENCHES = Path(__file__).resolve().parents[2] / "benches"
ONCHIP = str(BENCHES / "sim_onchip.yaml")


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


def test_parsers():
    assert parse_indices("0:4,9", "rows").tolist() == [0, 1, 2, 3, 9]
    assert parse_indices("7", "rows").tolist() == [7]
    assert parse_values("100, 200.5", "t").tolist() == [100.0, 200.5]
    with pytest.raises(ConfigError, match="rows"):
        parse_indices("4:2", "rows")
    with pytest.raises(ConfigError, match="t"):
        parse_values("abc", "t")


@pytest.mark.slow
def test_levels_json(tmp_path):
    png = tmp_path / "ladder.png"
    res = _runner().invoke(
        app,
        [
            "levels",
            "--bench",
            ONCHIP,
            "--levels",
            "40",
            "--start-us",
            "1000",
            "--step-us",
            "2",
            "--out",
            str(png),
            "--no-progress",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)  # exactly one JSON document on stdout
    for key in (
        "levels_attempted",
        "levels_within_tolerance",
        "max_error_us",
        "pulses",
        "wall_s",
        "bench_time_s",
    ):
        assert key in data
    assert data["levels_attempted"] == 40 and data["levels_within_tolerance"] >= 39
    assert data["protocol"] == "denoise" and data["technology"] == "hfo2_1t1r"
    assert data["bench_time_s"] > 0 and data["pulses"] > 40
    assert png.exists() and png.stat().st_size > 1000


@pytest.mark.slow
def test_levels_human_and_bad_input(tmp_path):
    r = _runner()
    ok = r.invoke(
        app,
        [
            "levels",
            "--bench",
            ONCHIP,
            "--levels",
            "5",
            "--start-us",
            "500",
            "--protocol",
            "alibart",
            "--out",
            str(tmp_path / "a.png"),
            "--no-progress",
        ],
    )
    # exit 0 only when every level is within tolerance (issue 20: memprog.reporting.outcome's rule)
    assert ok.exit_code == (0 if "5 of 5 levels" in ok.stdout else 1), ok.output
    assert "of 5 levels" in ok.stdout and "alibart" in ok.stdout
    bad = r.invoke(app, ["levels", "--bench", ONCHIP, "--levels", "5", "--step-us", "0", "--json"])
    assert bad.exit_code == 2 and bad.stdout == ""
    assert "--step-us" in bad.stderr  # named as typed (issue 21: the option, not the variable)
    far = r.invoke(app, ["levels", "--bench", ONCHIP, "--levels", "3000", "--json"])
    # named as the option the user typed, with how many levels fit (issue 14)
    assert far.exit_code == 2 and "--levels=3000" in far.stderr and "<= 2376" in far.stderr


@pytest.mark.slow
def test_tune_cells_and_map(tmp_path):
    r = _runner()
    res = r.invoke(
        app,
        [
            "tune",
            "--bench",
            ONCHIP,
            "--rows",
            "0:2",
            "--cols",
            "0:4",
            "--target-us",
            "800",
            "--json",
            "--no-progress",
        ],
    )
    d = json.loads(res.stdout)
    # issue 20: 0 when every working cell is within tolerance, stuck cells reported, not failed
    ok = d["within_tolerance"] + d["flags"].get("stuck", 0) == d["cells"]
    assert res.exit_code == (0 if ok else 1), res.output  # 1: cells failed
    assert d["cells"] == 8 and d["converged"] + d["flags"].get("stuck", 0) == 8
    m = np.full((4, 4), 1500.0)
    m[0, 0] = np.nan
    path = tmp_path / "map.npy"
    np.save(path, m)
    csv = tmp_path / "out.csv"
    res = r.invoke(
        app,
        [
            "tune",
            "--bench",
            ONCHIP,
            "--map",
            str(path),
            "--origin",
            "10,20",
            "--out",
            str(csv),
            "--png",
            str(tmp_path / "map.png"),
            "--json",
            "--no-progress",
        ],
    )
    d = json.loads(res.stdout)
    # issue 20: 0 when every working cell is within tolerance, stuck cells reported, not failed
    ok = d["within_tolerance"] + d["flags"].get("stuck", 0) == d["cells"]
    assert res.exit_code == (0 if ok else 1), res.output  # 1: cells failed
    assert d["cells"] == 15 and d["protocol"] == "array/alibart"
    assert d["png"] == str(tmp_path / "map.png")
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import pandas as pd

    df = pd.read_csv(csv)
    assert df["row"].min() == 10 and df["col"].min() == 20 and len(df) == 15
    bad = r.invoke(
        app, ["tune", "--bench", ONCHIP, "--map", str(path), "--origin", "254,0", "--json"]
    )
    assert bad.exit_code == 2 and "shape" in bad.stderr and bad.stdout == ""
    bad = r.invoke(
        app, ["tune", "--bench", ONCHIP, "--rows", "0", "--cols", "0", "--target-us", "5", "--json"]
    )
    assert bad.exit_code == 2 and "--target-us=5.0" in bad.stderr
