"""Helpers for the run-store tests: store URLs on SQLite and, when CI provides one, PostgreSQL."""

from __future__ import annotations

import os
import secrets

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_ENV = "MEMPROG_TEST_PG_URL"
PG_SKIP = (
    f"{PG_ENV} is not set: no PostgreSQL server for this run "
    "(.ci/run starts one from the distribution's packages and sets it)"
)


def pg_url() -> str | None:
    """The PostgreSQL URL CI provides, or None."""
    return os.environ.get(PG_ENV) or None


def fresh_pg_schema_url(base: str) -> str:
    """A URL on ``base`` whose search_path is a new, empty schema (an empty store)."""
    name = f"t_{secrets.token_hex(5)}"
    eng = create_engine(base)
    with eng.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{name}"'))
    eng.dispose()
    u = make_url(base)
    return u.update_query_dict({"options": f"-csearch_path={name}"}).render_as_string(
        hide_password=False
    )


def store_url(kind: str, tmp_path) -> str:
    """An empty store URL of ``kind`` (``sqlite`` or ``pg``; pg skips without a server)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    base = pg_url()
    if base is None:
        pytest.skip(PG_SKIP)
    return fresh_pg_schema_url(base)
