"""`memprog train`'s input checks (review F1): which characterisations a --db training pools
(technologies, chips), the --out weight file checked before the training, and options the
training would ignore. Backend: torch on the CPU, stores of synthetic characterize runs
(tests/dashboard_helpers.py), no bench opened."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from typer.testing import CliRunner

import memprog.hwaware.training as training
from memprog.cli import app
from memprog.core.errors import ConfigError, MemprogError
from memprog.hwaware.mapping import load_weights, save_weights
from memprog.store import open_store
from tests.dashboard_helpers import add_characterize_run

runner = CliRunner()


def _store(tmp_path, chips: dict[str, str]) -> str:
    """A store with one synthetic characterize run per chip, of the technology given."""
    url = f"sqlite:///{tmp_path / 'char.sqlite'}"
    s = open_store(url)
    start = s.start_run
    try:
        for seed, (chip, tech) in enumerate(chips.items()):
            s.start_run = lambda tech=tech, **kw: start(**(kw | {"technology": tech}))
            add_characterize_run(s, chip, seed)
    finally:
        del s.start_run
        s.close()
    return url


def _no_training(monkeypatch):
    """Fail the test if train reaches the training: the refusals must come before it."""

    def boom(*a, **k):
        raise AssertionError("the training ran")

    monkeypatch.setattr(training, "train", boom)


def _refused(args, option):
    res = runner.invoke(app, ["train", "--dataset", "halfmoons", "--epochs", "1", *args])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {option}="), res.stderr
    return lines[0]


# ----------------------------------------------------------------------------- 1: technologies
@pytest.mark.slow
def test_a_store_of_two_technologies_is_refused_without_chip_id(tmp_path, monkeypatch):
    url = _store(tmp_path, {"TIO-A": "tio2_passive", "HFO-B": "hfo2_1t1r"})
    _no_training(monkeypatch)
    line = _refused(["--db", url, "--out", str(tmp_path / "w.pt")], "--db")
    assert "--chip-id" in line and "TIO-A (tio2_passive)" in line and "HFO-B (hfo2_1t1r)" in line
    assert not (tmp_path / "w.pt").exists()


@pytest.mark.slow
def test_a_chip_of_another_technology_than_the_bench_or_preset_is_refused(tmp_path, monkeypatch):
    url = _store(tmp_path, {"TIO-A": "tio2_passive", "HFO-B": "hfo2_1t1r"})
    _no_training(monkeypatch)
    out = str(tmp_path / "w.pt")
    line = _refused(["--db", url, "--chip-id", "HFO-B", "--bench", "sim_tio2_crossbar", "--out", out], "--chip-id")
    assert "tio2_passive" in line and "HFO-B (hfo2_1t1r)" in line
    line = _refused(["--db", url, "--chip-id", "HFO-B", "--preset", "tio2_passive", "--out", out], "--chip-id")
    assert "--preset" in line
    # a preset unlike the bench's chip
    _refused(["--bench", "sim_tio2_crossbar", "--preset", "hfo2_1t1r", "--out", out], "--preset")
    # without --db the preset's figures stand for the bench's chip: another technology is refused
    _refused(["--bench", "sim_onchip", "--out", out], "--bench")


@pytest.mark.slow
def test_one_chip_of_a_mixed_store_trains_and_is_named(tmp_path):
    url = _store(tmp_path, {"TIO-A": "tio2_passive", "HFO-B": "hfo2_1t1r"})
    out = tmp_path / "w.pt"
    res = runner.invoke(app, ["train", "--dataset", "halfmoons", "--epochs", "1", "--db", url,
                              "--chip-id", "TIO-A", "--out", str(out), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["variability_chips"] == ["TIO-A"]
    assert load_weights(out)["variability_chips"] == ["TIO-A"]


@pytest.mark.slow
def test_chips_of_one_technology_pool_and_are_named(tmp_path):
    url = _store(tmp_path, {"TIO-B": "tio2_passive", "TIO-A": "tio2_passive"})
    out = tmp_path / "w.pt"
    res = runner.invoke(app, ["train", "--dataset", "halfmoons", "--epochs", "1", "--db", url,
                              "--bench", "sim_tio2_crossbar", "--out", str(out), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["variability_chips"] == ["TIO-A", "TIO-B"]
    assert doc["variability_source"].startswith("db:")  # the source string is unchanged
    assert load_weights(out)["variability_chips"] == ["TIO-A", "TIO-B"]
    store = open_store(url)
    run = store.get_run(doc["run_id"])
    store.close()
    assert run["params"]["variability_chips"] == ["TIO-A", "TIO-B"]


# ----------------------------------------------------------------------------- 2, 3: --out
def test_an_unwritable_out_is_refused_before_training(tmp_path, monkeypatch):
    """Before: /proc/w.pt trained (as root os.access says yes), then a torch traceback, exit 1."""
    _no_training(monkeypatch)
    line = _refused(["--out", "/proc/w.pt"], "--out")
    assert "/proc/w.pt" in line


@pytest.mark.parametrize("name", ["w.npz", "w", "w.pt.bak"])
def test_out_must_be_a_pt_or_pth_file(tmp_path, monkeypatch, name):
    _no_training(monkeypatch)
    line = _refused(["--out", str(tmp_path / name)], "--out")
    assert ".pt or .pth" in line
    assert not (tmp_path / name).exists()


def test_the_write_probe_leaves_nothing_behind(tmp_path, monkeypatch):
    _no_training(monkeypatch)
    res = runner.invoke(app, ["train", "--dataset", "halfmoons", "--epochs", "1", "--out", str(tmp_path / "w.pth")])
    assert res.exit_code == 1 and isinstance(res.exception, AssertionError)  # the training was reached
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_write_failing_after_training_exits_3_in_one_line(tmp_path, monkeypatch):
    def no_space(*a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:747] . unexpected pos 64 vs 0: No space left")

    monkeypatch.setattr(torch, "save", no_space)
    out = tmp_path / "w.pt"
    res = runner.invoke(app, ["train", "--dataset", "halfmoons", "--epochs", "1", "--out", str(out)])
    assert res.exit_code == 3, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "w.pt" in lines[0] and "No space left" in lines[0], res.stderr
    assert "Traceback" not in res.output and list(tmp_path.iterdir()) == []


def test_save_weights_failure_is_not_an_input_error(tmp_path):
    w = {
        "format": "memprog.weights/1", "dataset": "halfmoons", "sizes": [2, 1], "activation": "sigmoid",
        "output": "sigmoid", "state_dict": {"layers.0.weight": torch.zeros(1, 2), "layers.0.bias": torch.zeros(1)},
        "mapping": {"scheme": "differential", "g_min_us": 100.0, "g_max_us": 400.0}, "hardware_aware": False,
        "seed": 0, "epochs": 1, "variability_source": "test",
    }  # fmt: skip
    if sys.platform != "win32":  # (on Windows the path would be made under C:\\proc)
        with pytest.raises(MemprogError) as info:
            save_weights(w, "/proc/no/w.pt")
        assert not isinstance(info.value, ConfigError) and "/proc/no/w.pt" in str(info.value)
    # a successful write leaves only the file (no temporary beside it)
    save_weights(w, tmp_path / "w.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["w.pt"]


def test_weights_saved_but_not_renamed_are_kept_and_named(tmp_path, monkeypatch):
    """Only the rename failed (a file held open on Windows): the finished weights stay in
    the temporary file, which the message names, instead of being thrown away."""
    import os

    from memprog.hwaware.mapping import load_weights

    w = {
        "format": "memprog.weights/1", "dataset": "halfmoons", "sizes": [2, 1], "activation": "sigmoid",
        "output": "sigmoid", "state_dict": {"layers.0.weight": torch.ones(1, 2), "layers.0.bias": torch.zeros(1)},
        "mapping": {"scheme": "differential", "g_min_us": 100.0, "g_max_us": 400.0}, "hardware_aware": False,
        "seed": 0, "epochs": 1, "variability_source": "test",
    }  # fmt: skip

    def held(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", held)
    with pytest.raises(MemprogError) as info:
        save_weights(w, tmp_path / "w.pt")
    monkeypatch.undo()
    kept = [p for p in tmp_path.iterdir()]
    assert len(kept) == 1 and kept[0].name.endswith(".tmp") and str(kept[0]) in str(info.value)
    assert load_weights(kept[0])["state_dict"]["layers.0.weight"].sum().item() == 2.0


# ----------------------------------------------------------------------------- 4: ignored options
@pytest.mark.parametrize(
    ("args", "option", "needs"),
    [
        (["--regular", "--stuck", "0.4,0.4"], "--stuck", "--hardware-aware"),
        (["--stuck", "0.005,0.005"], "--stuck", "--validate-every"),
        (["--hardware-aware", "--imprecision", "fitted"], "--imprecision", "--db"),
        (["--hardware-aware", "--imprecision", "raw"], "--imprecision", "--db"),
        (["--patience", "3"], "--patience", "--validate-every"),
        (["--chip-id", "TIO-A"], "--chip-id", "--db"),
    ],
    ids=["regular-stuck", "stuck-default-regular", "imprecision-fitted", "imprecision-raw", "patience", "chip-id"],
)
def test_options_the_training_would_ignore_are_refused(tmp_path, monkeypatch, args, option, needs):
    _no_training(monkeypatch)
    line = _refused([*args, "--out", str(tmp_path / "w.pt")], option)
    assert needs in line


@pytest.mark.slow
def test_imprecision_with_db_needs_sampled_transfers(tmp_path, monkeypatch):
    url = _store(tmp_path, {"TIO-A": "tio2_passive"})
    _no_training(monkeypatch)
    line = _refused(["--db", url, "--imprecision", "fitted", "--out", str(tmp_path / "w.pt")], "--imprecision")
    assert "--hardware-aware" in line


@pytest.mark.slow
def test_options_that_are_used_still_pass(tmp_path):
    """--stuck with a regular training that validates, --patience with --validate-every."""
    out = tmp_path / "w.pt"
    res = runner.invoke(app, ["train", "--dataset", "halfmoons", "--epochs", "2", "--stuck", "0.005,0.005",
                              "--validate-every", "1", "--patience", "1", "--out", str(out), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["validations"] >= 1 and "stuck(0.005,0.005)" in doc["variability_source"]
    assert doc["variability_chips"] is None  # a preset: no chips


# ----------------------------------------------------------------------------- evaluate: the same checks
@pytest.mark.slow
def test_evaluate_checks_its_store_and_options_as_train_does(tmp_path):
    w = tmp_path / "w.pt"
    made = runner.invoke(app, ["train", "--dataset", "halfmoons", "--epochs", "2", "--out", str(w)])
    assert made.exit_code == 0, made.output
    url = _store(tmp_path, {"TIO-A": "tio2_passive", "HFO-B": "hfo2_1t1r"})

    def refused(args, option):
        res = runner.invoke(app, ["evaluate", str(w), "--transfers", "10", *args])
        assert res.exit_code == 2, res.output
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {option}="), res.stderr
        return lines[0]

    line = refused(["--db", url], "--db")  # an HfO2 census would land in the TiO2 prediction
    assert "TIO-A (tio2_passive)" in line and "HFO-B (hfo2_1t1r)" in line
    refused(["--chip-id", "TIO-A"], "--chip-id")  # no store: the chip would be recorded, not read
    refused(["--imprecision", "fitted"], "--imprecision")
    ok = runner.invoke(app, ["evaluate", str(w), "--transfers", "10", "--db", url, "--chip-id", "TIO-A", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["variability_chips"] == ["TIO-A"]
