"""``memprog dashboard``: serve the web dashboard over a run store.

Thin over :mod:`memprog.dashboard.server` (a script can call ``prepare`` and ``serve``).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from memprog.cli import options as O
from memprog.cli.common import JsonOpt, emit, fail
from memprog.core.errors import MemprogError


def register(app: typer.Typer) -> None:
    """Add ``dashboard`` to the ``memprog`` app."""

    @app.command("dashboard")
    def dashboard_cmd(
        db: Annotated[
            str | None,
            typer.Option("--db", help="Store URL (default: $MEMPROG_DB or the user store)."),
        ] = None,
        port: Annotated[int, typer.Option("--port", callback=O.PORT, help="TCP port (0: any free port).")] = 8050,
        host: Annotated[
            str, typer.Option("--host", help="Bind address; anything but loopback needs --token.")
        ] = "127.0.0.1",
        token: Annotated[
            str | None,
            typer.Option(
                "--token", help="Required on every request (or $MEMPROG_DASHBOARD_TOKEN)."
            ),
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Serve a read-only web dashboard of the run store until Ctrl-C.

        Pages: runs (live), a run's heat maps / drill-down / ladder, variability; each with a
        JSON endpoint under /api. Prints the address (one JSON document with --json).
        """
        # deferred: fastapi, uvicorn and pandas
        from memprog.dashboard.security import TOKEN_ENV

        # deferred: fastapi, uvicorn and pandas
        from memprog.dashboard.server import prepare, serve

        try:
            prep = prepare(db, host, port, token)
        except MemprogError as exc:
            raise fail(exc) from exc
        # a token is a secret: never printed (not even one given on the command line; the
        # terminal's scrollback and a CI log outlive it), only where it came from
        where = f"${TOKEN_ENV}" if token is None else "--token"
        shown = prep.url + (f"  (token from {where}: open {prep.url}?token=... once)" if prep.token else "")
        emit(
            {
                "url": prep.url,
                "host": host,
                "port": prep.port,
                "db": prep.db,
                "token_required": bool(prep.token),
            },  # fmt: skip
            as_json,
            f"memprog dashboard: {shown}  (db {prep.db}, read-only; Ctrl-C to stop)",
        )
        sys.stdout.flush()
        serve(prep)
