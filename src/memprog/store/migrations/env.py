"""Alembic environment: always given a live connection by :mod:`memprog.store.migrate`.

``alembic -c ...`` from the command line also works: it then builds an engine from the
``sqlalchemy.url`` option (``alembic -x url=...`` is not needed for memprog's own use).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from memprog.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        version_table=config.get_main_option("version_table") or "memprog_schema_version",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # pragma: no cover - command-line use
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as conn:
        _run(conn)
