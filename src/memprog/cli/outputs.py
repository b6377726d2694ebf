"""One rule for what commands write: an output that is already there is never replaced
behind the user's back.

The rule (README, "Command line"): every file a command writes — a default one
(``memprog_levels.png``, ``memprog_demo.png``, the ``memprog_program/`` report) or one named
with ``--out``/``--png`` — must not exist yet. If it does, the command stops before any
work (before a run is stored, before a bench opens) with exit 2 and one line naming the
file; ``--force`` replaces it. Each command then prints where it wrote.

Why refuse rather than pick a fresh name: a lab compares a run with the one before; a
second run that silently replaced the first run's maps (as it did before issue 27) destroys
exactly the evidence being compared, and a renamed file is one the user does not know to
look for. Why in each command after its input checks (:func:`refuse_existing`) and not in
the option's callback: a bad input must still be reported as itself (not as "the report
is already there"), and the refusal must still come before a run is stored or a pulse sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memprog.core.errors import ConfigError

#: what a ``program`` report folder holds (the files a second run would replace)
REPORT_FILES = ("report.json", "cells.csv")
REPORT_GLOBS = ("layer*.png",)

ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Replace output files that already exist (default: refuse with exit 2, so a "
        "second run never overwrites the first's files).",
    ),
]


def existing_outputs(path: Path, report_dir: bool = False) -> list[Path]:
    """The files at ``path`` a run would replace: the file itself, or for a report folder
    the report files in it (an empty or unrelated folder is fine to write into)."""
    p = Path(path)
    if report_dir:
        if not p.is_dir():
            return []
        found = [p / f for f in REPORT_FILES if (p / f).exists()]
        for g in REPORT_GLOBS:
            found += sorted(p.glob(g))
        return found
    return [p] if p.exists() and not p.is_dir() else []


def refuse_existing(
    path: Path | None, force: bool, option: str = "--out", report_dir: bool = False
) -> None:
    """The rule above: a ConfigError (exit 2, one line) when ``path`` already holds an output
    and ``force`` is not set. Called by each command after its own input checks and before
    its run is stored (so a bad input is still reported as such, and nothing is recorded)."""
    if path is None or force:
        return
    there = existing_outputs(Path(path), report_dir)
    if there:
        more = f" (and {len(there) - 1} more)" if len(there) > 1 else ""
        raise ConfigError(
            option,
            str(path),
            "a path with no earlier output, or --force to replace it",
            f"{there[0]}{more} is already there",
        )


__all__ = ["ForceOpt", "refuse_existing", "existing_outputs"]
