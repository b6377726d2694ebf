"""Open the store read-only, check it, bind the socket, serve with uvicorn.

Everything that can be wrong is found before the first request: a bind that would need a
token, a missing database file, a database that is not a memprog store, a port in use —
each is one ``ConfigError`` line from the command, not a traceback or a half-started server.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

from memprog.core.errors import ConfigError, MemprogError
from memprog.dashboard.app import create_app
from memprog.dashboard.security import TOKEN_ENV, check_bind, is_local
from memprog.store import default_db_url, mask_url, open_store

DEFAULT_PORT = 8050


@dataclass
class Prepared:
    """A checked store and a bound socket, ready to serve."""

    store: Any
    sock: socket.socket
    url: str  # the address to open in a browser
    db: str  # the masked database URL
    token: str | None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])


def open_checked_store(db_url: str | None) -> Any:
    """The store at ``db_url`` (default: ``default_db_url()``), read-only, or a ConfigError."""
    url = db_url or default_db_url()
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        path = url[len("sqlite:///") :].split("?", 1)[0]
        if path and not os.path.exists(path):
            raise ConfigError("--db", mask_url(url), "an existing memprog store",
                              "no such database file (runs create it)")  # fmt: skip
    try:
        store = open_store(url, read_only=True)
        store.list_runs(limit=1)
    except MemprogError:
        raise
    except Exception as exc:  # not a database, no memprog tables, server unreachable
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ConfigError("--db", mask_url(url), "a memprog run store",
                          f"not a memprog store ({first})") from exc  # fmt: skip
    return store


def prepare(db_url: str | None, host: str, port: int, token: str | None) -> Prepared:
    """Check the bind rules and the store, bind the socket (``port`` 0: any free port)."""
    token = token or os.environ.get(TOKEN_ENV) or None
    check_bind(host, token)
    if not 0 <= port <= 65535:
        raise ConfigError("--port", port, "0 to 65535")
    store = open_checked_store(db_url)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto
    # says TCP, and accepted sockets copy the listener's. With proto 0 every response, a
    # 401 included, sent as headers + body waited ~40 ms on the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        store.close()
        raise ConfigError(
            "--port", port, "a free port on " + host, exc.strerror or str(exc)
        ) from exc
    sock.listen(128)
    shown = "127.0.0.1" if host in ("0.0.0.0", "localhost") else host
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"http://{shown}:{int(sock.getsockname()[1])}/"
    return Prepared(store=store, sock=sock, url=url, db=mask_url(store.url), token=token)


def serve(prep: Prepared, *, log_level: str = "warning") -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM), then close the socket and the store."""
    import uvicorn  # deferred: uvicorn (~0.05 s) loads only when the server starts serving

    host = prep.sock.getsockname()[0]
    app = create_app(prep.store, token=prep.token, local=is_local(str(host)) or host == "::1")
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[prep.sock])
    finally:
        prep.sock.close()
        prep.store.close()


__all__ = ["DEFAULT_PORT", "Prepared", "open_checked_store", "prepare", "serve"]
