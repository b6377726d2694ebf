"""Shared test set-up: every pulsing command stores its run, so point the default store at a
temporary SQLite file for the whole session (never the user's own data directory)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _memprog_db(tmp_path_factory: pytest.TempPathFactory):
    old = os.environ.get("MEMPROG_DB")
    os.environ["MEMPROG_DB"] = f"sqlite:///{tmp_path_factory.mktemp('store') / 'memprog.sqlite'}"
    yield
    if old is None:
        os.environ.pop("MEMPROG_DB", None)
    else:
        os.environ["MEMPROG_DB"] = old
