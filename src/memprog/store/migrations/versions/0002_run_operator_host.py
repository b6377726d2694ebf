"""Runs record who ran them and where: ``operator`` (login name) and ``host``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("operator", sa.String(64)))
        batch.add_column(sa.Column("host", sa.String(128)))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("host")
        batch.drop_column("operator")
