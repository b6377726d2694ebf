"""The first schema: runs, cell batches, events, trace batches, sample batches.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(12), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("bench", sa.String(256)),
        sa.Column("bench_path", sa.Text),
        sa.Column("bench_hash", sa.String(64)),
        sa.Column("chip_id", sa.String(128)),
        sa.Column("technology", sa.String(64)),
        sa.Column("protocol", sa.String(64)),
        sa.Column("params", sa.Text),
        sa.Column("memprog_version", sa.String(32)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("cells_total", sa.Integer),
        sa.Column("cells_done", sa.Integer, nullable=False),
        sa.Column("resumed_from", sa.String(12)),
        sa.Column("summary", sa.Text),
    )
    op.create_index("ix_runs_kind", "runs", ["kind"])
    op.create_index("ix_runs_chip_id", "runs", ["chip_id"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_index("ix_runs_started_at", "runs", ["started_at"])
    fk = sa.ForeignKey("runs.run_id", ondelete="CASCADE")
    op.create_table(
        "cell_batches",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(12), fk, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("n_cells", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_cell_batches_run_seq", "cell_batches", ["run_id", "seq"])
    op.create_table(
        "events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(12), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("t_s", sa.Float, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_index("ix_events_run_kind", "events", ["run_id", "kind"])
    op.create_table(
        "trace_batches",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(12), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_trace_batches_run_seq", "trace_batches", ["run_id", "seq"])
    op.create_table(
        "sample_batches",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(12), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
        sa.Column("table_name", sa.String(32), nullable=False),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_sample_batches_table_run", "sample_batches", ["table_name", "run_id"])


def downgrade() -> None:
    for t in ("sample_batches", "trace_batches", "events", "cell_batches", "runs"):
        op.drop_table(t)
