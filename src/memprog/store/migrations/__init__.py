"""Alembic migrations of the run store (run programmatically by ``open_store``)."""
