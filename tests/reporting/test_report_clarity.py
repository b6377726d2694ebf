"""Reports whose numbers read as they add up (review F4): the pair counts of ``program`` as
a partition beside the overlapping ``pairs_dead``, the settle as numbers beside its
sentence, a ladder's outcome and settle named for what they are (backend: the @memprog
on-chip simulated bench for the end-to-end tests, none for the others)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from memprog.cli import app
from memprog.jobs.program_settle import JobSettle
from memprog.reporting.outcome import cell_outcome, describe, pair_outcome, program_outcome

ONCHIP = str(Path(__file__).resolve().parents[2] / "benches" / "sim_onchip.yaml")


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


def _pairs(final, nominal=200.0, tol=3.0):
    # one weight (+ and − conductances), two copies each: cells (+,0), (+,1), (−,0), (−,1)
    return dict(
        layer=np.zeros(4, int), i=np.zeros(4, int), j=np.zeros(4, int),
        sign=np.array([1, 1, -1, -1]), nominal_us=np.full(4, nominal),
        final_us=np.asarray(final, float), tolerance_us=np.full(4, tol),
    )  # fmt: skip


def test_a_dead_weights_pair_in_band_is_counted_once_in_the_partition():
    # both copies of + stuck (the weight is dead); the − pair holds its 200 µS: within
    p = _pairs([10.0, 12.0, 200.0, 200.5])
    o = program_outcome(["stuck", "stuck", "", ""], [False, False, True, True], [False, False, True, True], pairs=p)
    assert o["pairs"] == 2 and o["pairs_dead"] == 2 and o["pairs_within_tolerance"] == 1  # overlap kept
    assert o["pairs_by_outcome"] == {
        "within_tolerance": 1, "failed": 0, "stuck_limited": 0, "dead_not_within_tolerance": 1,
    }  # fmt: skip
    assert sum(o["pairs_by_outcome"].values()) == o["pairs"]
    text = describe(o)
    assert "overlaps the counts before it: 1 of these pairs are within tolerance" in text
    assert "pairs (the copies of one conductance)" in text


def test_the_partition_adds_up_for_every_mix_and_for_a_map():
    rng = np.random.default_rng(5)
    n_w = 300  # weights of a 3-layer network, two copies of each conductance
    layer = np.repeat(rng.integers(0, 3, n_w), 4)
    i = np.repeat(np.arange(n_w), 4)
    j = np.zeros(4 * n_w, int)
    sign = np.tile([1, 1, -1, -1], n_w)
    nominal = np.repeat(rng.uniform(50, 300, 2 * n_w), 2)
    final = nominal + rng.normal(0, 3, nominal.size)
    stuck = rng.random(nominal.size) < 0.2
    p = pair_outcome(layer, i, j, sign, nominal, final, np.full(nominal.size, 3.0), stuck)
    assert sum(p["pairs_by_outcome"].values()) == p["pairs"] == 2 * n_w
    assert p["pairs_dead"] == 2 * p["weights_dead"] > p["pairs_by_outcome"]["dead_not_within_tolerance"] > 0
    # a map with one copy: each cell its own pair, stuck ones dead
    m = program_outcome(["stuck", "", "", ""], [False, True, True, False], [False, True, False, False], pairs=None)
    assert sum(m["pairs_by_outcome"].values()) == m["pairs"] == 4
    assert m["pairs_by_outcome"]["dead_not_within_tolerance"] == 1
    assert pair_outcome(*[np.zeros(0)] * 8)["pairs_by_outcome"] == {
        "within_tolerance": 0, "failed": 0, "stuck_limited": 0, "dead_not_within_tolerance": 0,
    }  # fmt: skip


def test_the_settle_gives_its_numbers_and_reads_to_the_hundredth():
    full = JobSettle(8.40772, 2, 5.0, 3, 1605)
    assert full.numbers() == {
        "settle_waited_s": 8.40772, "settle_rounds": 2, "settle_cells_retuned": 3, "settle_pair_reaims": 1605,
    }  # fmt: skip
    assert full.text().startswith("waited 8.41 s in 2 settle(s) of up to 5 s")
    assert full.text().endswith("1605 re-tuned for a pair whose twin is stuck or failed")
    assert JobSettle(5.0, 1, 5.0, 0, 0, "waited {waited} s").text() == "waited 5 s"  # (test_help reads it)
    no_pairs = JobSettle(9.99956, 2, 5.0, 0, 0)
    assert no_pairs.text().startswith("waited 10 s in") and "pair" not in no_pairs.text()
    skipped = JobSettle(0.0, 0, 0.0, 0, 0, "skipped")
    assert skipped.text() == "skipped" and set(skipped.numbers().values()) == {0}


def test_a_ladders_outcome_counts_levels_by_name():
    o = cell_outcome(None, [True] * 64, [True] * 63 + [False], kind="levels")
    assert o["levels"] == o["cells"] == 64 and o["failed"] == 1
    assert "levels" not in cell_outcome(None, [True] * 4, [True] * 4)  # a tune counts cells only


def test_levels_text_counts_read_as_english():
    from memprog.cli.levels import _count

    assert _count(1, "level") == "1 level" and _count(0, "level") == "0 levels"
    assert _count(87, "level") == "87 levels"


@pytest.mark.slow
def test_program_json_partitions_pairs_and_states_the_settle_as_numbers(tmp_path, monkeypatch):
    import torch

    from memprog.cli.program import human_summary
    from memprog.jobs import load_program_input

    monkeypatch.setenv("MEMPROG_DB", f"sqlite:///{tmp_path / 'db.sqlite'}")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    g = torch.Generator().manual_seed(3)
    torch.save({"fc0.weight": torch.randn(10, 12, generator=g), "fc0.bias": torch.randn(10, generator=g),
                "fc1.weight": torch.randn(4, 10, generator=g), "fc1.bias": torch.randn(4, generator=g)},
               tmp_path / "w.pt")  # fmt: skip
    net = load_program_input(tmp_path / "w.pt")
    x = np.random.default_rng(3).random((40, 12))
    np.savez(tmp_path / "test.npz", x=x, y=net.predict(x))
    r = _runner().invoke(app, ["program", str(tmp_path / "w.pt"), "--test-set", str(tmp_path / "test.npz"),
                               "--protocol", "predictive", "--json", "--out", str(tmp_path / "rep")])  # fmt: skip
    assert r.exit_code in (0, 1), r.stderr
    d = json.loads(r.stdout)
    o = d["outcome"]
    assert sum(o["pairs_by_outcome"].values()) == o["pairs"]
    assert d["pairs_by_outcome"] == o["pairs_by_outcome"]
    assert o["pairs_by_outcome"]["within_tolerance"] == o["pairs_within_tolerance"]
    # the settle: numbers beside the sentence, the sentence's seconds to 0.01 s
    assert isinstance(d["settle_waited_s"], float) and d["settle_rounds"] >= 1
    assert isinstance(d["settle_cells_retuned"], int) and isinstance(d["settle_pair_reaims"], int)
    m = re.match(r"waited ([0-9.]+) s", d["settle"])
    assert m and float(m[1]) == pytest.approx(round(d["settle_waited_s"], 2))
    assert len(m[1].partition(".")[2]) <= 2
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["settle_rounds"] == d["settle_rounds"]
    text = human_summary(d)
    assert "weight (differential pair G+/G-) error" in text and "weight (pair)" not in text


@pytest.mark.slow
def test_levels_settled_from_the_store_has_no_single_settle_s(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(tmp_path / "chips"))
    url = f"sqlite:///{tmp_path / 'char.db'}"
    r = _runner().invoke(app, ["characterize", "--bench", ONCHIP, "--db", url, "--json", "--levels", "2",
                               "--repeats", "1", "--response-repeats", "0"])  # fmt: skip
    assert r.exit_code == 0, r.output
    args = ["levels", "--bench", ONCHIP, "--levels", "8", "--start-us", "1000", "--out", str(tmp_path / "l.png"),
            "--force", "--db", f"sqlite:///{tmp_path / 'runs.db'}", "--settle-from-db", url]  # fmt: skip
    r = _runner().invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["settle_s"] is None and d["settle_wait_mean_s"] > 0
    assert d["outcome"]["levels"] == d["outcome"]["cells"] == 8
    r = _runner().invoke(app, args)
    assert r.exit_code == 0, r.output
    n, noun = re.search(r"\((\d+) (levels?) re-tuned after it\)", r.stdout).groups()
    assert noun == ("level" if n == "1" else "levels")
