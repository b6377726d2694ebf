"""Shared test set-up: every pulsing command stores its run, so point the default store at a
temporary SQLite file for the whole session (never the user's own data directory).

Simulated chips are non-volatile (``sim_instruments/chip_state``): their state files go to
a fresh folder per test, so every test starts from fresh chips, a test never sees another's
chip, and nothing is written to the user's data directory. Subprocesses inherit the folder
through ``MEMPROG_SIM_STATE_DIR``."""

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


@pytest.fixture(autouse=True, scope="session")
def _memprog_sim_state_session(tmp_path_factory: pytest.TempPathFactory):
    """Chips opened by module- or session-scoped fixtures (before any test's own folder)."""
    old = os.environ.get("MEMPROG_SIM_STATE_DIR")
    os.environ["MEMPROG_SIM_STATE_DIR"] = str(tmp_path_factory.mktemp("sim_chips_session"))
    yield
    if old is None:
        os.environ.pop("MEMPROG_SIM_STATE_DIR", None)
    else:
        os.environ["MEMPROG_SIM_STATE_DIR"] = old


@pytest.fixture(autouse=True, scope="module")
def _memprog_sim_state_module(tmp_path_factory: pytest.TempPathFactory):
    """Chips opened by a module-scoped fixture: a folder of the module's own, so no module
    starts from a chip that an earlier module's fixture programmed."""
    old = os.environ.get("MEMPROG_SIM_STATE_DIR")
    os.environ["MEMPROG_SIM_STATE_DIR"] = str(tmp_path_factory.mktemp("sim_chips_module"))
    yield
    if old is None:
        os.environ.pop("MEMPROG_SIM_STATE_DIR", None)
    else:
        os.environ["MEMPROG_SIM_STATE_DIR"] = old


@pytest.fixture(autouse=True)
def _memprog_sim_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """A fresh chip-state folder for every test (a fresh chip each time a test opens one)."""
    monkeypatch.setenv("MEMPROG_SIM_STATE_DIR", str(tmp_path_factory.mktemp("sim_chips")))
