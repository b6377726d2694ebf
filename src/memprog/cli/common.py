"""What every ``memprog`` command shares: the ``--json``/``--bench``/``--progress`` options,
one way to print a summary, one way to fail, one rule for showing a progress bar.

Why: scripts parse ``--json`` output, so every command must print exactly one JSON document
and nothing else on stdout, with numpy values as plain numbers; errors go to stderr as one
line and exit with status 2.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated, Any

import typer

from memprog.core.errors import MemprogError
from memprog.core.jsonout import dumps

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON summary and nothing else.")]
BenchOpt = Annotated[str, typer.Option("--bench", "-b", help="Bench file or shipped bench name.")]
ProgressOpt = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress", help="Progress bar on stderr (default: only when stderr is a terminal; --progress shows it when the output is piped or logged)."
    ),
]


def show_progress(flag: bool | None) -> bool:
    """Whether to draw a progress bar on stderr: ``--progress``/``--no-progress`` when given,
    else only when stderr is a terminal.

    Why one rule: a bar written into a log file or a pipe is noise (hundreds of carriage
    returns), while a person at a terminal wants to see a long job move; every command that
    draws a bar asks here, so they all agree."""
    return sys.stderr.isatty() if flag is None else bool(flag)


def emit(summary: dict[str, Any], as_json: bool, human: str) -> None:
    """Print ``summary`` as one strict JSON document (null for NaN), or the ``human`` text."""
    if as_json:
        typer.echo(dumps(summary))
    else:
        typer.echo(human)


def fail(exc: MemprogError) -> typer.Exit:
    """Report ``exc`` on stderr as one line; raise the returned Exit (status 2)."""
    if debug_enabled():  # labready: --debug shows the traceback behind the one line
        typer.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


# labready: --debug (root option) and MEMPROG_DEBUG=1 show tracebacks behind errors
_DEBUG = {"on": False}


def set_debug(on: bool) -> None:
    """Turn traceback printing on for :func:`fail` (the root ``--debug`` option)."""
    _DEBUG["on"] = bool(on)


def debug_enabled() -> bool:
    """Whether errors show their traceback (``--debug`` or ``MEMPROG_DEBUG=1``)."""
    return _DEBUG["on"] or os.environ.get("MEMPROG_DEBUG", "") not in ("", "0")
