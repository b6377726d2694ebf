"""The ``memprog`` command line: one module per command group, assembled here.

Every command prints a human summary by default and exactly one JSON document with
``--json`` (nothing else on stdout; progress bars go to stderr), so lab scripts can call it.
The CLI is the top floor: it may import every room below and nothing imports it. A module
is named after the command it holds (``tune``, ``sim_serve``, ``sim_calibrate``, ...);
``db`` also holds ``characterize`` and ``train`` also holds ``evaluate``, the commands that
share their reports, since command modules never import each other.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Annotated


def _interrupted_while_starting(signum: int, frame: object) -> None:
    """Ctrl-C while the command modules load: one line and exit 130, not a traceback from
    deep inside an import. Nothing has been sent to an instrument yet, and nothing stored."""
    sys.stderr.write("memprog: interrupted while starting; nothing was sent or stored\n")
    sys.stderr.flush()
    os._exit(130)


# the handler stands only while this package imports its commands, only on the main thread
# (a handler cannot be set elsewhere) and only over Python's own default: a SIGINT a parent
# chose to ignore (a job started with `&` from a script) stays ignored
_STARTING = (
    threading.current_thread() is threading.main_thread()
    and signal.getsignal(signal.SIGINT) is signal.default_int_handler
)
if _STARTING:
    signal.signal(signal.SIGINT, _interrupted_while_starting)
try:
    import typer

    from memprog import __version__
    from memprog.cli import (
        bench,
        common,
        dashboard,
        db,
        help,
        insitu,
        levels,
        program,
        sim_calibrate,
        sim_chips,
        sim_demo,
        sim_serve,
        train,
        tune,
    )
    from memprog.cli.common import JsonOpt, emit
    from memprog.core.errors import MemprogError
finally:  # loaded, or failed to: Ctrl-C is Python's again either way
    if _STARTING:
        signal.signal(signal.SIGINT, signal.default_int_handler)

app = typer.Typer(help="Program memristor chips to precise conductances.", no_args_is_help=True)
sim_app = typer.Typer(help="The simulated bench.", no_args_is_help=True)
app.add_typer(sim_app, name="sim")


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback behind an error (also MEMPROG_DEBUG=1).")
    ] = False,
) -> None:
    """Program memristor chips to precise conductances."""
    common.set_debug(debug)


@app.command()
def version(as_json: JsonOpt = False) -> None:
    """Show the memprog version."""
    emit({"version": __version__}, as_json, f"memprog {__version__}")


# the order of registration is the order of ``memprog --help``
levels.register(app)
tune.register(app)
sim_demo.register(sim_app)
sim_chips.register(sim_app)  # sim chips, sim reset: the stored simulated chips
sim_serve.register(sim_app)
sim_calibrate.register(sim_app)
db.register(app)  # db …, and characterize (it shares db's variability reports)
insitu.register(app)
train.register(app)  # train, evaluate
program.register(app)
dashboard.register(app)
bench.register(app)  # bench check
help.tidy(app)  # whole-sentence help, an example per command


def main() -> None:
    """Entry point of the ``memprog`` script."""
    try:
        app()
    except MemprogError as exc:  # pragma: no cover - typer handles most
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
