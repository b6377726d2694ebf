"""``memprog COMMAND --help`` reads like a manual (issue 27): for every command, an example
at the end whose options exist, no internal jargon, no sentence broken mid-phrase at 80,
100 or 120 columns, every numeric option with its unit (or a count, unitless by nature)
and its default. Parsed from the help text a user sees (typer's CliRunner)."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from memprog.cli import app
from memprog.cli.help import EXAMPLES

ROOT_CMD = typer.main.get_command(app)


def _walk(cmd, path=()):
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from _walk(sub, (*path, name))
    else:
        yield " ".join(path), cmd


COMMANDS = dict(_walk(ROOT_CMD))
# a number in these units, named in the option or its help
UNIT_WORDS = ("µS", "(s)", " s ", " s,", " s)", "seconds", "(V", " V)", "%", "fraction", "(µS")
UNIT_SUFFIXES = ("-us", "-s", "-v", "-ms", "-pct")
# numbers that are counts, indices, seeds or ratios: unitless by nature
COUNT_WORDS = (
    "number", "cells", "levels", "pulses", "reads", "repeats", "epochs", "seed", "port",
    "threads", "transfers", "devices", "row", "column", "size", "every n", "after n",
    "at most", "learning rate", "weight decay", "per cell", "per conductance",
)  # fmt: skip


def _help(path: str, columns: int) -> str:
    import typer.rich_utils as ru

    # typer reads the width once, at import (TERMINAL_WIDTH): set it per call
    old_width, ru.MAX_WIDTH = ru.MAX_WIDTH, columns
    try:
        return _invoke_help(path, columns)
    finally:
        ru.MAX_WIDTH = old_width


def _invoke_help(path: str, columns: int) -> str:
    r = CliRunner().invoke(
        app,
        [*path.split(), "--help"],
        env={"COLUMNS": str(columns), "TERMINAL_WIDTH": str(columns)},
    )
    assert r.exit_code == 0, r.output
    return r.output


def test_the_example_table_names_only_real_commands():
    assert set(EXAMPLES) <= set(COMMANDS), set(EXAMPLES) - set(COMMANDS)


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_help_ends_with_a_runnable_example(path):
    out = _help(path, 100)
    assert "Example:" in out, out
    tail = out[out.rindex("Example:") :]
    assert f"memprog {path}" in tail
    assert "╭" not in tail  # the example is the last thing printed
    # on one line, even at 80 columns (the command's own options are on it)
    line80 = _help(path, 80)
    ex = line80[line80.rindex("Example:") :].splitlines()
    assert len([x for x in ex[1:] if x.strip()]) == 1, ex
    # every option the example uses is one of the command's own
    opts = {o for p in COMMANDS[path].params for o in (*p.opts, *getattr(p, "secondary_opts", []))}
    example = tail.split("memprog", 1)[1]
    for used in re.findall(r"(?<!\S)(--[a-z][a-z0-9-]*)", example):
        assert used in opts, (path, used)


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_no_internal_names(path):
    out = _help(path, 100)
    for word in ("Contract", "``", "Issue ", "labready"):
        assert word not in out, (path, word)


@pytest.mark.slow
@pytest.mark.parametrize("columns", [80, 100, 120])
def test_no_sentence_is_broken_mid_phrase(columns):
    """A prose line followed by more of its paragraph is full: the next word would not have
    fitted (before: "... lies within" / "--tolerance-us of the level" at 80 columns)."""
    for path in COMMANDS:
        out = _help(path, columns)
        width = max(len(x) for x in out.splitlines())  # what rich wrapped to
        prose = out.split("╭", 1)[0].splitlines()
        for line, nxt in zip(prose, prose[1:], strict=False):
            if not line.strip() or not nxt.strip() or line.lstrip().startswith("Usage"):
                continue
            room = width - len(line.rstrip())
            assert room < len(nxt.split()[0]) + 3, (path, columns, line, nxt)


def _numeric(p) -> bool:
    try:
        t = p.bare_type()
    except Exception:  # noqa: BLE001 - an option type without a bare type is not a number
        return False
    return getattr(t, "__name__", str(t)) in ("int", "float") and not getattr(p, "is_flag", False)


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_numeric_options_state_unit_and_default(path):
    for p in COMMANDS[path].params:
        if not _numeric(p) or not p.opts[0].startswith("--"):
            continue
        name, text = p.opts[0], (p.help or "")
        low = text.lower()
        has_unit = name.endswith(UNIT_SUFFIXES) or any(
            u in f" {text} " or u in low for u in UNIT_WORDS
        )
        is_count = any(w in low or w in name for w in COUNT_WORDS)
        assert has_unit or is_count, (path, name, text)
        if p.default is None and not p.required:
            # typer prints no [default: ...] for None: the help must say what happens
            assert "default" in low, (path, name, text)


@pytest.mark.slow
def test_settle_default_is_the_technologys_in_readme_help_and_run(tmp_path, monkeypatch):
    """README, --help and the run agree: ``program`` settles for the chip technology's time
    (before: --settle-s 1.0 in program while the README said 5 s per technology)."""
    import json
    from pathlib import Path

    import numpy as np

    from memprog.protocols.settle import SETTLE_DEFAULTS_S

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    m = re.search(
        r"`levels`, `tune` and `program` take `--settle-s`.*?default per technology: (\d+) s",
        readme,
        re.S,
    )
    assert m, "the README states the settle default of levels, tune and program"
    assert set(SETTLE_DEFAULTS_S.values()) == {float(m.group(1))}
    for tech in SETTLE_DEFAULTS_S:
        assert f"`{tech}`" in readme[m.start() : m.end() + 200]
    for path in ("levels", "tune", "program"):
        opt = next(p for p in COMMANDS[path].params if p.opts[0] == "--settle-s")
        assert opt.default is None and "technology" in opt.help, (path, opt.help)
    # the run itself: program on the HfO2 bench waits the technology's 5 s
    monkeypatch.setenv("MEMPROG_DB", f"sqlite:///{tmp_path / 's.sqlite'}")
    np.savetxt(tmp_path / "m.csv", np.array([[300.0, 400.0]]), delimiter=",")
    r = CliRunner().invoke(
        app, ["program", str(tmp_path / "m.csv"), "--out", str(tmp_path / "r"), "--json"]
    )
    assert r.exit_code in (0, 1), r.output
    settle = json.loads(r.stdout)["settle"]
    assert settle.startswith(f"waited {SETTLE_DEFAULTS_S['hfo2_1t1r']:g} s"), settle
