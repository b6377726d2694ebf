"""Bring a database to the store's newest schema with Alembic, or refuse with the reason.

Why Alembic run from code: a lab keeps its store for months while memprog changes; every
schema change is a migration file shipped inside the package, and ``open_store`` applies
the missing ones itself, so a user never runs a separate tool. A database written by a
newer memprog (a revision this one does not know) is refused rather than misread.

The version table is ``memprog_schema_version`` (not Alembic's default ``alembic_version``)
so the store can share a PostgreSQL database with another application's migrations.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

VERSION_TABLE = "memprog_schema_version"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(connection: Connection | None = None):  # noqa: ANN201 - alembic Config
    """An Alembic ``Config`` pointing at the shipped migrations (no ini file needed)."""
    # deferred: alembic (~0.07 s) loads when a store is opened, not when memprog.store is imported
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("version_table", VERSION_TABLE)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=1)
def known_revisions() -> tuple[str, ...]:
    """Every revision shipped, oldest first."""
    # deferred: alembic, see alembic_config
    from alembic.script import ScriptDirectory

    sd = ScriptDirectory.from_config(alembic_config())
    return tuple(reversed([s.revision for s in sd.walk_revisions()]))


def head_revision() -> str:
    """The newest schema revision this memprog knows."""
    return known_revisions()[-1]


def current_revision(conn: Connection) -> str | None:
    """The database's schema revision, or None for a database without the store."""
    # deferred: alembic, see alembic_config
    from alembic.runtime.migration import MigrationContext

    ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return ctx.get_current_revision()


_LOCK = threading.Lock()  # Alembic's migration context is process-global
_PG_LOCK_KEY = 7_242_019  # advisory lock: two processes opening a new store at once


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the missing migrations up to ``revision`` in one transaction.

    Serialised within the process, and on PostgreSQL across processes (an advisory lock
    taken in the migration's transaction; the revision is read again under it).
    """
    # deferred: alembic, see alembic_config
    from alembic import command

    with _LOCK, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})"))
        target = head_revision() if revision == "head" else revision
        if current_revision(conn) == target:
            return
        command.upgrade(alembic_config(conn), revision)


def schema_state(engine: Engine) -> tuple[str | None, bool]:
    """(revision, has_other_tables): the store's revision and whether foreign tables exist."""
    with engine.connect() as conn:
        rev = current_revision(conn)
        tables = set(inspect(conn).get_table_names())
    return rev, bool(tables - {VERSION_TABLE})


__all__ = [
    "VERSION_TABLE",
    "alembic_config",
    "current_revision",
    "head_revision",
    "known_revisions",
    "schema_state",
    "upgrade",
]
