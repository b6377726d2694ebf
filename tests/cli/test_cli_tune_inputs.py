"""``memprog tune``: input refused before a run exists, each option named as typed; the
summary's means over the cells that have a value; the tolerance the cells were judged
against, in the JSON and the text (review F2). Backend: @memprog simulator through the
bench files (sim_onchip), in-process (typer's runner); refusals open no bench.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from memprog.cli import app
from memprog.protocols.results import TuneResult
from memprog.store import open_store


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


@pytest.fixture
def db(tmp_path):
    (tmp_path / "store").mkdir()
    return f"sqlite:///{tmp_path / 'store' / 'memprog.sqlite'}"


def _runs(url: str) -> list[str]:
    store = open_store(url)
    try:
        return [f"{r.kind}:{r.status}" for r in store.list_runs().itertuples()]
    finally:
        store.close()


def _refused(db: str, args: list[str]) -> str:
    """Run ``tune ARGS`` that must be refused: exit 2, one line on stderr, no stdout, no run."""
    r = _runner().invoke(app, ["tune", *args, "--db", db, "--json", "--no-progress"])
    assert r.exit_code == 2, r.output
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "run " not in lines[0]  # no "run ... started" / "marked failed"
    assert _runs(db) == []
    return lines[0]


# ---------------------------------------------------------------- 1: before a run opens
def test_target_count_not_matching_the_grid_opens_no_run(db):
    line = _refused(db, ["--rows", "0", "--cols", "0:2", "--target-us", "100,200,300"])
    assert "--target-us='3 values'" in line and "one per cell: 2" in line


def test_a_cell_named_twice_opens_no_run(db):
    line = _refused(db, ["--rows", "0,0", "--cols", "0:2", "--target-us", "500"])
    assert line.startswith("error: --rows=0 ") and "each index once" in line


# ---------------------------------------------------------------- 2: --map or the grid
def test_map_with_grid_options_is_refused(db, tmp_path):
    path = tmp_path / "M.npy"
    np.save(path, np.full((2, 2), 500.0))
    line = _refused(db, ["--map", str(path), "--rows", "5", "--cols", "5", "--target-us", "999"])
    assert "--map cannot be combined with --rows/--cols/--target-us" in line
    assert "--rows 5" in line and "--target-us 999" in line


@pytest.mark.parametrize(
    ("args", "missing"),
    [
        (["--rows", "5"], "--cols and --target-us are missing"),
        (["--rows", "5", "--cols", "3"], "--target-us is missing"),
        (["--target-us", "500"], "--rows and --cols are missing"),
        ([], "--rows and --cols and --target-us are missing"),
    ],
)
def test_missing_grid_options_are_named(db, args, missing):
    line = _refused(db, args)
    assert missing in line and "=None" not in line and "--map" in line


# ---------------------------------------------------------------- 4: the protocol's bound
def test_max_pulses_below_the_protocols_bound_names_the_option(db):
    line = _refused(db, ["--rows", "0", "--cols", "0", "--target-us", "500",
                         "--protocol", "predictive", "--max-pulses", "1"])  # fmt: skip
    assert "--max-pulses=1 is not allowed for --protocol predictive (allowed: >= 2)" in line
    assert "PredictiveParams" not in line
    line = _refused(db, ["--rows", "0", "--cols", "0", "--target-us", "500",
                         "--protocol", "predictive", "--max-pulses", "20000"])  # fmt: skip
    assert "--max-pulses=20000" in line and "<= 10000" in line


# ---------------------------------------------------------------- 5: targets named as typed
def test_target_outside_the_chip_names_the_option(db):
    line = _refused(db, ["--rows", "0", "--cols", "0", "--target-us", "10"])
    assert "--target-us=10.0 is not allowed" in line and "targets_us" not in line


def test_map_entry_outside_the_chip_names_file_and_index(db, tmp_path):
    m = np.full((2, 3), 500.0)
    m[1, 2] = 9000.0
    path = tmp_path / "hot.npy"
    np.save(path, m)
    line = _refused(db, ["--map", str(path)])
    assert "hot.npy[1,2]=9000.0 is not allowed" in line and "target_map_us" not in line


# ---------------------------------------------------------------- 3 and 6: the summary
def _result(settled: list[float], tol: list[float]) -> TuneResult:
    n = len(settled)
    return TuneResult(
        protocol="alibart", rows=np.zeros(n), cols=np.arange(n), target_us=np.full(n, 800.0),
        final_us=np.full(n, 799.0), pulses=np.ones(n), reads=np.ones(n), converged=np.ones(n),
        flags=np.full(n, ""), tolerance_us=tol, extra={"settled_us": np.array(settled)},
    )  # fmt: skip


def test_summary_means_skip_cells_without_a_value():
    s = _result([800.0, np.nan, 802.0], [4.8, 4.8, 4.8]).summary()
    assert s["settled_us_mean"] == pytest.approx(801.0) and s["settled_us_n"] == 2
    none = _result([np.nan, np.nan], [4.8, 4.8]).summary()
    assert none["settled_us_mean"] is None and none["settled_us_n"] == 0


def test_summary_says_which_tolerance_the_cells_were_judged_against():
    s = _result([800.0, 801.0], [4.8, 4.8]).summary()
    assert s["tolerance_us"] == s["tolerance_us_min"] == s["tolerance_us_max"] == 4.8
    s = _result([800.0, 801.0], [3.0, 9.6]).summary()
    assert s["tolerance_us"] is None and (s["tolerance_us_min"], s["tolerance_us_max"]) == (3.0, 9.6)


@pytest.mark.slow
def test_tune_reports_its_band_and_means_over_stuck_cells(db):
    # rows 0-1, columns 4-7 of sim_onchip hold stuck devices: the settled means were null
    args = ["tune", "--rows", "0:2", "--cols", "4:8", "--target-us", "800", "--db", db, "--no-progress"]
    r = _runner().invoke(app, [*args, "--json"])
    assert r.exit_code in (0, 1), r.output
    d = json.loads(r.stdout)
    assert d["flags"].get("stuck", 0) >= 1
    assert d["settled_us_n"] == d["cells"] - d["flags"]["stuck"] >= 1
    assert d["settled_us_mean"] == pytest.approx(800.0, abs=10.0)
    # Alibart's fine gated ramp on the 1T1R stack: 0.6 % of the target, one band for all
    assert d["tolerance_rel"] == pytest.approx(0.006)
    assert d["tolerance_us"] == pytest.approx(4.8) == d["tolerance_us_min"]
    r = _runner().invoke(app, [*args, "--protocol", "denoise"])
    assert r.exit_code in (0, 1), r.output
    assert "within tolerance (±0.4 µS)" in r.stdout  # denoise's band is absolute


# ---------------------------------------------------------------- flags a protocol would drop
def test_a_flag_the_protocol_does_not_take_is_refused(db):
    # denoise and feedforward judge against an absolute band: --tolerance-rel was dropped
    for proto in ("denoise", "feedforward"):
        line = _refused(db, ["--protocol", proto, "--rows", "0", "--cols", "0", "--target-us", "500",
                             "--tolerance-rel", "0.02"])  # fmt: skip
        assert f"--tolerance-rel=0.02 is not taken by --protocol {proto}" in line and "absolute" in line


def test_max_pulses_reaches_denoise_and_feedforward():
    # their budget is per cell like the others' (--max-pulses' help quotes it): it is passed on
    from memprog.protocols import registry
    from memprog.cli.tune import check_user_settings

    for proto in ("denoise", "feedforward"):
        spec = registry.get(proto)
        assert spec.with_user(spec.settings(), max_pulses=7).max_pulses == 7
        check_user_settings(spec, proto, max_pulses=7, tolerance_rel=None, settle_s=None)
    # a map job takes --tolerance-rel as its own band, whatever the protocol
    check_user_settings(registry.get("denoise"), "denoise", for_map=True, tolerance_rel=0.02,
                        max_pulses=None, settle_s=None)  # fmt: skip
