"""Shared test set-up: every pulsing command stores its run, so point the default store at a
temporary SQLite file for the whole session (never the user's own data directory).

Simulated chips are non-volatile (``sim_instruments/chip_state``): their state files go to
a fresh folder per test, so every test starts from fresh chips, a test never sees another's
chip, and nothing is written to the user's data directory. Subprocesses inherit the folder
through ``MEMPROG_SIM_STATE_DIR``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


@contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    """``os.environ[name] = value`` for the duration, then what was there before."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@pytest.fixture(autouse=True, scope="session")
def _memprog_db(tmp_path_factory: pytest.TempPathFactory):
    with _env("MEMPROG_DB", f"sqlite:///{tmp_path_factory.mktemp('store') / 'memprog.sqlite'}"):
        yield


@pytest.fixture(autouse=True, scope="session")
def _memprog_sim_state_session(tmp_path_factory: pytest.TempPathFactory):
    """Chips opened by session-scoped fixtures (before any module's or test's own folder)."""
    with _env("MEMPROG_SIM_STATE_DIR", str(tmp_path_factory.mktemp("sim_chips_session"))):
        yield


@pytest.fixture(autouse=True, scope="module")
def _memprog_sim_state_module(tmp_path_factory: pytest.TempPathFactory):
    """Chips opened by a module-scoped fixture: a folder of the module's own, so no module
    starts from a chip that an earlier module's fixture programmed."""
    with _env("MEMPROG_SIM_STATE_DIR", str(tmp_path_factory.mktemp("sim_chips_module"))):
        yield


@pytest.fixture(autouse=True)
def _memprog_sim_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """A fresh chip-state folder for every test (a fresh chip each time a test opens one)."""
    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(tmp_path_factory.mktemp("sim_chips")))
