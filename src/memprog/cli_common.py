"""What every ``memprog`` command shares: the ``--json``/``--bench``/``--progress`` options,
one way to print a summary, one way to fail.

Why: scripts parse ``--json`` output, so every command must print exactly one JSON document
and nothing else on stdout, with numpy values as plain numbers; errors go to stderr as one
line and exit with status 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from memprog.errors import MemprogError

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON summary and nothing else.")]
BenchOpt = Annotated[str, typer.Option("--bench", "-b", help="Bench file or shipped bench name.")]
ProgressOpt = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress", help="Progress bar on stderr (default: when it is a terminal)."
    ),
]


def jsonable(x: object) -> object:
    """``json.dumps`` default: numpy scalars and arrays, paths."""
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(type(x).__name__)


def emit(summary: dict[str, Any], as_json: bool, human: str) -> None:
    """Print ``summary`` as one JSON document, or the ``human`` text."""
    if as_json:
        typer.echo(json.dumps(summary, default=jsonable))
    else:
        typer.echo(human)


def fail(exc: MemprogError) -> typer.Exit:
    """Report ``exc`` on stderr as one line; raise the returned Exit (status 2)."""
    if debug_enabled():  # labready: --debug shows the traceback behind the one line
        import traceback

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
    import os

    return _DEBUG["on"] or os.environ.get("MEMPROG_DEBUG", "") not in ("", "0")
