"""Opening a store: from a URL to a checked, migrated connection.

Why a module of its own: everything that can go wrong before the first run is stored is
found here, once, as one ``ConfigError`` line with the password masked: a malformed URL, a
driver that is not installed, a directory that cannot be created, a database written by a
newer memprog, a database that holds someone else's tables. Any SQLAlchemy URL works: an
SQLite file by default (:func:`default_db_url`), PostgreSQL
(``postgresql+psycopg://user:pw@host/db``) when a lab shares one server. The schema is
created and migrated by Alembic when the store is opened (:mod:`memprog.store.migrate`);
a reader (``read_only=True``) changes nothing, not even the SQLite file's journal mode.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import platformdirs
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from memprog.core.errors import ConfigError
from memprog.store import migrate
from memprog.store.errors import one_line
from memprog.store.runs import Store
from memprog.store.schema_lock import exclusive_beside
from memprog.store.urls import check_url, mask_url, scrub


def default_db_url() -> str:
    """``$MEMPROG_DB``, else an SQLite file in the user's data directory (platformdirs)."""
    env = os.environ.get("MEMPROG_DB", "").strip()
    if env:
        return env
    return f"sqlite:///{Path(platformdirs.user_data_dir('memprog')) / 'memprog.sqlite'}"


def _sqlite_pragmas_ro(dbapi_conn: Any, _record: Any) -> None:
    """A reader's connection: wait for a writer's lock, change nothing in the file (no
    journal-mode switch: that rewrites the header and leaves -wal/-shm behind)."""
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA busy_timeout=30000")
    finally:
        cur.close()


def _sqlite_read_only_url(u: Any, p: Path) -> Any:
    """``file:<p>?mode=ro`` (a URI SQLite opens read-only: nothing in the file can change).

    A directory the reader cannot write also gets ``immutable=1``: SQLite then needs no
    ``-shm``/``-wal`` beside the file (it could not create them), so a store on a read-only
    share opens. The price: a WAL store's ``-wal`` is ignored, so commits not yet
    checkpointed into the file are not seen (a WAL store closed by its last writer has
    none). A writable directory keeps plain ``mode=ro``: a live WAL store is read fully.
    """
    q = {k: v for k, v in u.query.items() if k not in ("mode", "immutable", "uri")}
    q["mode"] = "ro"
    if not os.access(p.parent, os.W_OK) or not os.access(p, os.W_OK):
        q["immutable"] = "1"
    q["uri"] = "true"
    return u.set(database=p.resolve().as_uri(), query=q)  # file:///C:/... on Windows too


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        mode = cur.execute("PRAGMA journal_mode").fetchone()
        if mode and str(mode[0]).lower() != "wal":
            try:
                cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            except Exception:  # noqa: BLE001 - read-only files keep their journal mode
                pass
        cur.execute("PRAGMA synchronous=NORMAL")  # commits survive a killed process
    finally:
        cur.close()


def _make_engine(url: str, read_only: bool) -> Engine:
    masked = mask_url(url)
    check_url(url)  # an unescaped @ or / in the password: refused before a driver sees it
    try:
        u = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(
            "db",
            masked,
            "an SQLAlchemy URL (sqlite:///path/memprog.sqlite, postgresql+psycopg://user@host/db)",
            scrub(one_line(exc), url),
        ) from None
    kwargs: dict[str, Any] = {}
    if u.get_backend_name() == "sqlite":
        db = u.database or ""
        if db and db != ":memory:" and not db.startswith("file:"):
            p = Path(db).expanduser()
            if read_only and not p.exists():
                raise ConfigError("db", masked, "an existing store (read-only access)", "no such file")
            if read_only:
                u = _sqlite_read_only_url(u, p)
            if not read_only:
                try:
                    p.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise ConfigError("db", masked, "", f"cannot create {p.parent}: {exc.strerror}") from None
    elif u.get_backend_name().startswith("postgresql"):
        if "connect_timeout" not in u.query:
            kwargs["connect_args"] = {"connect_timeout": 10}
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(u, **kwargs)
    except (NoSuchModuleError, ArgumentError, ImportError) as exc:
        raise ConfigError(
            "db",
            masked,
            "a database driver that is installed (sqlite, postgresql+psycopg)",
            scrub(one_line(exc), url),
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas_ro if read_only else _sqlite_pragmas)
    return engine


def open_store(url: str | None = None, *, read_only: bool = False) -> Store:
    """Open (and create or migrate, unless ``read_only``) the store at ``url``.

    Args:
        url: any SQLAlchemy URL; None: :func:`default_db_url`.
        read_only: never create or change the schema (an older schema is refused with the
            command that migrates it).

    Raises:
        ConfigError: a malformed or unreachable URL (one line: the masked URL and the
            cause), a database whose schema is newer than this memprog (both revisions
            named), a database that holds other tables but no memprog store.
    """
    url = url or default_db_url()
    masked = mask_url(url)
    engine = _make_engine(url, read_only)
    if read_only:
        return _check_and_migrate(engine, url, masked, read_only)
    with _sqlite_schema_lock(engine):
        return _check_and_migrate(engine, url, masked, read_only)


@contextmanager
def _sqlite_schema_lock(engine: Any) -> Iterator[None]:
    """Serialise the schema check and migration of an SQLite file across processes.

    Why: SQLite runs Alembic's DDL outside one transaction, so a second process opening
    a new store at the same moment could see half the tables and take the file for a
    foreign database. A lock file beside the database (``<file>.lock``, removed again when
    the block ends: :mod:`.schema_lock`) orders them; on PostgreSQL the migration takes an
    advisory lock instead.
    """
    path = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if not path or path == ":memory:":
        yield
        return
    with exclusive_beside(path):
        yield


def _check_and_migrate(engine: Any, url: str, masked: str, read_only: bool) -> Store:
    try:
        rev, other_tables = migrate.schema_state(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise ConfigError("db", masked, "", f"cannot connect: {scrub(one_line(exc), url)}") from None
    known = migrate.known_revisions()
    head = known[-1]
    if rev is not None and rev not in known:
        engine.dispose()
        raise ConfigError(
            "db schema revision",
            rev,
            f"<= {head} (this memprog understands revisions {', '.join(known)})",
            f"{masked} was written by a newer memprog; upgrade memprog to use it",
        )
    if rev is None and other_tables:
        engine.dispose()
        raise ConfigError("db", masked, "an empty database or a memprog store", "it holds other tables")
    if rev != head:
        if read_only:
            engine.dispose()
            what = "has no memprog store" if rev is None else f"has schema revision {rev}"
            raise ConfigError(
                "db schema revision",
                rev,
                head,
                f"{masked} {what}; run `memprog db upgrade --db URL` to migrate it",
            )
        try:
            migrate.upgrade(engine)
        except SQLAlchemyError as exc:
            # another process may have created the schema at the same moment (SQLite)
            try:
                now = migrate.schema_state(engine)[0]
            except SQLAlchemyError:
                now = None
            if now != head:
                engine.dispose()
                raise ConfigError(
                    "db", masked, "", f"schema migration {rev} -> {head} failed: {scrub(one_line(exc), url)}"
                ) from None
    return Store(engine, url, read_only=read_only)


__all__ = ["default_db_url", "open_store"]
