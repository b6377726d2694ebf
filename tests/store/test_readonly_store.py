"""Read-only stays read-only (issue 21, defect 4): the dashboard and every ``db`` reader open
SQLite with a ``mode=ro`` URI, never migrate, never switch the journal mode, so a store's
bytes do not change and no ``-wal``/``-shm`` appears beside it; a store in a directory the
reader cannot write still opens (``immutable=1``)."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from memprog.cli import app
from memprog.dashboard import create_app
from memprog.store import open_store
from tests.dashboard_helpers import add_array_run, add_characterize_run, add_ladder_run


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _files(d: Path) -> set[str]:
    return {p.name for p in d.iterdir()}


def _journal_mode(p: Path) -> str:
    c = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
    try:
        return str(c.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    finally:
        c.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A store with an array run, a ladder and a characterised chip, in DELETE-journal mode
    (a store copied from another machine, or written by a tool that does not use WAL)."""
    d = tmp_path_factory.mktemp("ro_template")
    url = f"sqlite:///{d / 'store.sqlite'}"
    w = open_store(url)
    ids = {
        "array": add_array_run(w, 16, trace_cell=(3, 4)),
        "ladder": add_ladder_run(w, 40),
        "char": add_characterize_run(w, "chip-A", 0),
    }
    w.close()
    c = sqlite3.connect(d / "store.sqlite")
    assert c.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
    c.close()
    (d / "ids.json").write_text(json.dumps(ids))
    return d


@pytest.fixture()
def store_copy(template, tmp_path) -> tuple[Path, dict]:
    """A fresh copy of the template store alone in its own folder."""
    d = tmp_path / "db"
    d.mkdir()
    (d / "store.sqlite").write_bytes((template / "store.sqlite").read_bytes())
    return d / "store.sqlite", json.loads((template / "ids.json").read_text())


def test_dashboard_serving_pages_leaves_the_store_byte_identical(store_copy):
    path, ids = store_copy
    before, files = _sha(path), _files(path.parent)
    ro = open_store(f"sqlite:///{path}", read_only=True)
    client = TestClient(create_app(ro), base_url="http://127.0.0.1")
    pages = ["/", f"/runs/{ids['array']}", f"/runs/{ids['ladder']}", "/variability", "/api/runs",
             f"/api/runs/{ids['array']}", f"/api/runs/{ids['array']}/maps",
             f"/api/runs/{ids['array']}/cells/3/4", f"/api/runs/{ids['ladder']}/ladder",
             "/api/variability", "/api/health"]  # fmt: skip
    for page in pages:
        assert client.get(page).status_code == 200, page
    ro.close()
    assert _sha(path) == before  # the red team saw the hash change (switched to WAL)
    assert _files(path.parent) == files  # no -wal, -shm or .lock left beside it
    assert _journal_mode(path) == "delete"


@pytest.mark.parametrize(
    "args",
    [
        ["db", "summary"],
        ["db", "runs"],
        ["db", "variability", "--chip-id", "chip-A"],
        ["db", "export", "--run", "ARRAY"],
        ["db", "export-variability"],
    ],
    ids=["summary", "runs", "variability", "export", "export-variability"],
)
def test_db_readers_leave_the_store_byte_identical(store_copy, tmp_path, args):
    path, ids = store_copy
    before, files = _sha(path), _files(path.parent)
    args = [ids["array"] if a == "ARRAY" else a for a in args]
    if args[1] == "export":
        args += ["--out", str(tmp_path / "cells.csv")]
    if args[1] == "export-variability":
        args += ["--out", str(tmp_path / "var.parquet")]
    r = _runner().invoke(app, [*args, "--db", f"sqlite:///{path}", "--json"])
    assert r.exit_code == 0, r.output
    json.loads(r.stdout)  # it did read the store
    assert _sha(path) == before
    assert _files(path.parent) == files


def test_evaluate_reading_the_variability_db_leaves_it_unchanged(store_copy):
    """``memprog evaluate --db`` (and ``train --db``) build their model through this reader."""
    from memprog.cli.train import load_variability

    path, _ids = store_copy
    before, files = _sha(path), _files(path.parent)
    model = load_variability(f"sqlite:///{path}", "tio2_passive", chip_id="chip-A")
    assert model is not None
    assert _sha(path) == before and _files(path.parent) == files


def test_a_reader_refuses_an_old_schema_instead_of_migrating_it(store_copy):
    path, _ids = store_copy
    c = sqlite3.connect(path)
    c.execute("UPDATE memprog_schema_version SET version_num = '0001'")
    c.commit()
    c.close()
    before = _sha(path)
    r = _runner().invoke(app, ["db", "summary", "--db", f"sqlite:///{path}"])
    assert r.exit_code == 2 and "memprog db upgrade" in r.stderr
    assert _sha(path) == before


def _wal_store(tmp_path: Path) -> Path:
    """A WAL-mode store closed cleanly (no -wal/-shm left), as memprog's writers leave it."""
    d = tmp_path / "wal"
    d.mkdir()
    w = open_store(f"sqlite:///{d / 'store.sqlite'}")
    add_ladder_run(w, 12)
    w.close()
    for extra in ("store.sqlite.lock", "store.sqlite-wal", "store.sqlite-shm"):
        (d / extra).unlink(missing_ok=True)
    assert _journal_mode(d / "store.sqlite") == "wal"
    return d / "store.sqlite"


def test_store_in_a_directory_the_reader_cannot_write_opens_immutable(tmp_path, monkeypatch):
    """A WAL store needs a -shm beside it; where none can be created the reader opens the
    file immutable. Root ignores chmod, so the unwritable directory is what ``os.access``
    answers here; the real chmod case is the next test."""
    import memprog.store.engine as engine

    path = _wal_store(tmp_path)
    before, files = _sha(path), _files(path.parent)
    real = os.access
    monkeypatch.setattr(engine.os, "access", lambda p, m, *a, **k: False if Path(p) in (path, path.parent) else real(p, m, *a, **k))
    ro = open_store(f"sqlite:///{path}", read_only=True)
    try:
        assert "immutable=1" in str(ro.engine.url) and "mode=ro" in str(ro.engine.url)
        assert len(ro.list_runs()) == 1
    finally:
        ro.close()
    assert _sha(path) == before and _files(path.parent) == files


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root ignores directory permissions (CI runs as root); the "
                    "immutable open is tested through os.access above")  # fmt: skip
@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_store_in_a_chmod_555_directory_can_be_read(tmp_path):
    path = _wal_store(tmp_path)
    before = _sha(path)
    path.parent.chmod(0o555)
    try:
        r = _runner().invoke(app, ["db", "runs", "--db", f"sqlite:///{path}", "--json"])
        assert r.exit_code == 0, r.output
        assert len(json.loads(r.stdout)["runs"]) == 1
        assert _sha(path) == before
    finally:
        path.parent.chmod(0o755)
