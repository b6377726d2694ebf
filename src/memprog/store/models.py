"""The run store's tables, as SQLAlchemy 2 typed declarative models.

Why per-cell results are stored column-wise in batches (``cell_batches``) rather than as one
SQL row per cell: a 256x256 map job finishes 65,536 cells in well under a second, and
inserting 65,536 rows costs about a third of that on SQLite, while one Arrow batch of the
same cells costs a few milliseconds; so a batch of finished cells is one row holding an
Arrow IPC stream of its columns (row, col, target_us, ..., flags, the protocol's extra
columns). :meth:`memprog.store.Store.cells` gives them back as one pandas row per cell (the
latest record of a cell wins: an array job's final, re-verified result replaces the result
streamed when the cell first finished). Pulse/read traces and characterisation samples are
stored the same way. Runs and events, few and queried by SQL, are plain rows.

Every schema change is an Alembic migration under ``migrations/versions``; these models
describe the newest schema (the migrations are the truth for older ones).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# BIGINT keys on PostgreSQL, INTEGER (the rowid alias, auto-increment) on SQLite
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of the store's models."""


class Run(Base):
    """One command that pulsed (or characterised) a chip: who, what, when, how it ended."""

    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    bench: Mapped[str | None] = mapped_column(String(256))
    bench_path: Mapped[str | None] = mapped_column(Text)
    bench_hash: Mapped[str | None] = mapped_column(String(64))
    chip_id: Mapped[str | None] = mapped_column(String(128), index=True)
    technology: Mapped[str | None] = mapped_column(String(64))
    protocol: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[str | None] = mapped_column(Text)  # JSON
    memprog_version: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cells_total: Mapped[int | None] = mapped_column(Integer)
    cells_done: Mapped[int] = mapped_column(Integer, default=0)
    resumed_from: Mapped[str | None] = mapped_column(String(12))
    summary: Mapped[str | None] = mapped_column(Text)  # JSON
    # revision 0002
    operator: Mapped[str | None] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(128))
    # revision 0003: the process running it (a dead one on this host leaves it reapable)
    pid: Mapped[int | None] = mapped_column(Integer)


class CellBatch(Base):
    """Finished cells of a run, one Arrow IPC stream of columns per batch."""

    __tablename__ = "cell_batches"
    __table_args__ = (Index("ix_cell_batches_run_seq", "run_id", "seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)  # arrival index of the batch's first cell
    n_cells: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Event(Base):
    """A notable moment of a run (start, end, flagged cell, checkpoint...), JSON payload."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_run_kind", "run_id", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(64))
    t_s: Mapped[float] = mapped_column(Float)  # wall seconds since the sink opened
    data: Mapped[str] = mapped_column(Text)  # JSON


class TraceBatch(Base):
    """Pulse/read trace records of a run (one row per pulsed or read cell), Arrow IPC."""

    __tablename__ = "trace_batches"
    __table_args__ = (Index("ix_trace_batches_run_seq", "run_id", "seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)  # index of the batch's first trace record
    n_rows: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class SampleBatch(Base):
    """Raw characterisation samples (imprecision, disturb, stuck, rtn), Arrow IPC."""

    __tablename__ = "sample_batches"
    __table_args__ = (Index("ix_sample_batches_table_run", "table_name", "run_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    table_name: Mapped[str] = mapped_column(String(32))
    n_rows: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


__all__ = ["Base", "CellBatch", "Event", "Run", "SampleBatch", "TraceBatch"]
