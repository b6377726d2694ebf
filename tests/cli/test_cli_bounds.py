"""Every number, choice and output path of the command line is checked as the options are
parsed (issue 21, defects 7, 8, 9): one stderr line naming the option, the value and the
allowed range, exit 2, nothing on stdout — and no run in the store, no bench opened.

The "no run" check is the store file itself: each case points ``--db`` at a fresh path and
asserts that nothing was created there (opening the store is the first thing a command does
after its options, before any bench)."""

from __future__ import annotations

import types
import typing

import pytest
import typer
from typer.testing import CliRunner

from memprog.cli import app
from memprog.cli import options as cli_options

DB_COMMANDS = ("levels", "tune", "program", "characterize", "insitu")


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


TUNE = ["tune", "--rows", "0", "--cols", "0", "--target-us", "200"]
# (arguments, the option the one line must name, the value it must quote)
CASES = [
    # the red team's reproductions
    (["tune", "--rows", "99999999999999999999", "--cols", "0", "--target-us", "200"], "--rows", "99999999999999999999"),
    ([*TUNE, "--settle-s", "1e300"], "--settle-s", "1e+300"),
    ([*TUNE, "--settle-s", "1e9"], "--settle-s", "1000000000"),
    ([*TUNE, "--retention-s", "1e300"], "--retention-s", "1e300"),
    (["levels", "--levels", "1000000000"], "--levels", "1000000000"),
    (["sim", "serve", "sim_onchip", "--fault-rate", "nan"], "--fault-rate", "nan"),
    (["sim", "serve", "sim_onchip", "--fault-kinds", "drop,bogus"], "--fault-kinds", "bogus"),
    # and their variants
    ([*TUNE, "--settle-s", "inf"], "--settle-s", "inf"),
    ([*TUNE, "--settle-s", "-1"], "--settle-s", "-1"),
    ([*TUNE, "--retention-s", "10,nan"], "--retention-s", "nan"),
    ([*TUNE, "--retention-s", ",".join(["1"] * 65)], "--retention-s", "1,1"),
    (["tune", "--rows", "0:60000", "--cols", "0:60000", "--target-us", "200"], "--cols", "60000"),
    (["tune", "--rows", "0", "--cols", "-1", "--target-us", "200"], "--cols", "-1"),
    (["tune", "--rows", "0", "--cols", "0", "--target-us", "nan"], "--target-us", "nan"),
    (["tune", "--rows", "0", "--cols", "0", "--target-us", "1e300"], "--target-us", "1e300"),
    ([*TUNE, "--tolerance-rel", "0"], "--tolerance-rel", "0"),
    ([*TUNE, "--max-pulses", "0"], "--max-pulses", "0"),
    ([*TUNE, "--protocol", "bogus"], "--protocol", "bogus"),
    ([*TUNE, "--order", "random"], "--order", "random"),
    (["levels", "--levels", "0"], "--levels", "0"),
    (["levels", "--start-us", "nan"], "--start-us", "nan"),
    (["levels", "--step-us", "-2"], "--step-us", "-2"),
    (["levels", "--tolerance-us", "inf"], "--tolerance-us", "inf"),
    (["levels", "--verify-reads", "10000000"], "--verify-reads", "10000000"),
    (["levels", "--row", "99999999999999999999"], "--row", "99999999999999999999"),
    (["levels", "--settle-s", "nan"], "--settle-s", "nan"),
    (["levels", "--criterion", "median"], "--criterion", "median"),
    (["program", "--example", "digits", "--settle-s", "1e300"], "--settle-s", "1e+300"),
    (["program", "--example", "digits", "--g-max-us", "inf"], "--g-max-us", "inf"),
    (["program", "--example", "digits", "--chunk-cells", "99999999999"], "--chunk-cells", "99999999999"),
    (["program", "--example", "digits", "--max-accuracy-drop", "nan"], "--max-accuracy-drop", "nan"),
    (["characterize", "--seed", "-1"], "--seed", "-1"),
    (["characterize", "--devices", "100000000"], "--devices", "100000000"),
    (["insitu", "--learning-rate", "nan"], "--learning-rate", "nan"),
    (["insitu", "--stuck-fraction", "1"], "--stuck-fraction", "1"),
    (["train", "--dataset", "digits", "--out", "w.pt", "--lr", "inf"], "--lr", "inf"),
    (["train", "--dataset", "digits", "--out", "w.pt", "--preset", "nope"], "--preset", "nope"),
    (["evaluate", "w.pt", "--transfers", "1000000000"], "--transfers", "1000000000"),
    (["sim", "demo", "--width-s", "1e300"], "--width-s", "1e+300"),
    (["sim", "demo", "--set-v", "nan"], "--set-v", "nan"),
    (["sim", "serve", "sim_onchip", "--port", "70000"], "--port", "70000"),
    (["sim", "serve", "sim_onchip", "--late-s", "1e300"], "--late-s", "1e+300"),
    (["sim", "serve", "sim_onchip", "--fault-seed", "-1"], "--fault-seed", "-1"),
    (["db", "runs", "--limit", "0"], "--limit", "0"),
    (["db", "runs", "--status", "done"], "--status", "done"),
    (["dashboard", "--port", "-1"], "--port", "-1"),
]


@pytest.mark.parametrize(("args", "option", "value"), CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_number_or_choice_is_one_line_exit_2_and_no_run(args, option, value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "store" / "memprog.sqlite"
    extra = ["--db", f"sqlite:///{db}"] if args[0] in DB_COMMANDS else []
    res = _runner().invoke(app, [*args, *extra])
    assert res.exit_code == 2, res.output
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"error: {option}=") and value in lines[0] and "allowed" in lines[0]
    assert not db.parent.exists()  # no store opened: no run created, no bench opened


OUT_CASES = [
    (["levels", "--out", "/nonexistent/x.png"], "--out", "no such folder"),
    ([*TUNE, "--out", "DIR"], "--out", "it is a folder"),
    ([*TUNE, "--png", "/nonexistent/m.png"], "--png", "no such folder"),
    (["program", "--example", "digits", "--out", "FILE"], "--out", "it is a file"),
    (["program", "--example", "digits", "--out", "/nonexistent/a/b"], "--out", "no such folder"),
    (["db", "export", "--run", "x", "--out", "/nonexistent/c.csv"], "--out", "no such folder"),
    (["db", "export", "--run", "x", "--out", "c.txt"], "--out", ".parquet or .csv"),
    (["train", "--dataset", "digits", "--out", "DIR"], "--out", "it is a folder"),
    (["evaluate", "w.pt", "--png", "/nonexistent/e.png"], "--png", "no such folder"),
    (["insitu", "--out", "/nonexistent/w.pt"], "--out", "no such folder"),
    (["sim", "demo", "--out", "DIR"], "--out", "it is a folder"),
    (["sim", "serve", "sim_onchip", "--write-bench", "/nonexistent/x.yaml"], "--write-bench", "/nonexistent"),
]


@pytest.mark.parametrize(("args", "option", "why"), OUT_CASES, ids=[" ".join(c[0])[:60] for c in OUT_CASES])
def test_output_path_is_checked_before_the_work(args, option, why, tmp_path, monkeypatch):
    """Before: ``tune --out DIR`` tuned every cell, then a traceback and a failed run;
    ``program --out FILE`` stored a complete run and wrote no report."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "DIR").mkdir()
    (tmp_path / "FILE").write_text("not a folder")
    db = tmp_path / "store" / "memprog.sqlite"
    extra = ["--db", f"sqlite:///{db}"] if args[0] in DB_COMMANDS else []
    res = _runner().invoke(app, [*args, *extra])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {option}=") and why in lines[0], res.stderr
    assert not db.parent.exists()
    assert (tmp_path / "FILE").read_text() == "not a folder"


def test_values_at_the_bounds_pass_through_unchanged():
    """The callbacks check, they never clip or convert."""
    import click

    ctx = click.Context(click.Command("x"))
    param = click.Option(["--settle-s"])
    assert cli_options.SETTLE_S(ctx, param, 86_400.0) == 86_400.0
    assert cli_options.SETTLE_S(ctx, param, None) is None
    assert cli_options.RETENTION_S(ctx, param, "10,3600") == "10,3600"
    assert cli_options.index_list()(ctx, param, "0:65536") == "0:65536"  # counted, not expanded
    with pytest.raises(typer.Exit):
        cli_options.SETTLE_S(ctx, param, 86_400.001)


def test_fault_kinds_match_the_simulator():
    from memprog.sim_instruments.faults import FAULT_KINDS

    assert cli_options.FAULT_KINDS == tuple(FAULT_KINDS)


def _commands(cmd, path=()):
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield " ".join(path), cmd


def test_every_numeric_option_of_every_command_is_bounded():
    """A new int/float option without a bound (callback) fails here, naming it."""
    missing = []
    for name, cmd in _commands(typer.main.get_command(app)):
        hints = typing.get_type_hints(cmd.callback)
        for p in cmd.params:
            ann = hints.get(p.name)
            union = typing.get_origin(ann) in (typing.Union, types.UnionType)
            kinds = set(typing.get_args(ann)) - {type(None)} if union else {ann}
            if kinds & {int, float} and p.callback is None:
                missing.append(f"{name} {p.opts[0]}")
    assert not missing, missing


def test_every_output_path_option_is_checked():
    outputs = {("levels", "--out"), ("tune", "--out"), ("tune", "--png"), ("program", "--out"),
               ("train", "--out"), ("evaluate", "--png"), ("insitu", "--out"), ("sim demo", "--out"),
               ("sim serve", "--write-bench"), ("db export", "--out"),
               ("db export-variability", "--out")}  # fmt: skip
    found = set()
    for name, cmd in _commands(typer.main.get_command(app)):
        for p in cmd.params:
            if (name, p.opts[0]) in outputs:
                assert p.callback is not None, (name, p.opts)
                found.add((name, p.opts[0]))
    assert found == outputs
