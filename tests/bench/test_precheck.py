"""Bad input is refused before a run exists; no lock file beside a store; an empty
variability table set names the command that fills it (issue 20, deliverable 10).

Before: ``memprog tune --target-us 5000`` opened the store, created a run, opened the
bench, and only then refused the target, leaving a ``failed`` run; every store open left a
``<store>.lock`` file; ``db variability`` on an empty store printed "no characterisation
data" with exit 0.
"""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from memprog.cli import app
from memprog.store import open_store


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


def _runs(url: str) -> list[str]:
    store = open_store(url)
    try:
        return [f"{r.kind}:{r.status}" for r in store.list_runs().itertuples()]
    finally:
        store.close()


@pytest.fixture
def db(tmp_path):
    return f"sqlite:///{tmp_path / 'store' / 'memprog.sqlite'}"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["tune", "--rows", "0", "--cols", "0", "--target-us", "5000"], "--target-us=5000.0"),
        (["tune", "--rows", "300", "--cols", "0", "--target-us", "500"], "rows=300"),
        (["tune", "--rows", "0", "--cols", "0", "--target-us", "20", "--bench", "sim_k4200_707b"], "--target-us=20.0"),
        (["levels", "--row", "999", "--levels", "4"], "--row=999"),
        (["levels", "--levels", "3000"], "--levels=3000"),
    ],
)
@pytest.mark.slow
def test_bad_input_creates_no_run(db, tmp_path, args, named):
    (tmp_path / "store").mkdir()
    r = _runner().invoke(app, [*args, "--db", db, "--json"])
    assert r.exit_code == 2, r.output
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], r.stderr
    assert "run " not in lines[0]  # no "run ... started" / "marked failed": none was created
    assert _runs(db) == []
    assert not list((tmp_path / "store").glob("*.lock"))


def test_map_that_does_not_fit_creates_no_run(db, tmp_path):
    (tmp_path / "store").mkdir()
    path = tmp_path / "m.npy"
    np.save(path, np.full((4, 4), 800.0))
    r = _runner().invoke(app, ["tune", "--map", str(path), "--origin", "254,0", "--db", db, "--json"])
    assert r.exit_code == 2 and "shape" in r.stderr and r.stdout == ""
    hot = tmp_path / "hot.npy"
    np.save(hot, np.array([[800.0, 9000.0]]))
    r = _runner().invoke(app, ["tune", "--map", str(hot), "--db", db, "--json"])
    assert r.exit_code == 2 and "hot.npy[0,1]=9000.0" in r.stderr
    assert _runs(db) == []


def test_valid_tune_is_stored_and_leaves_no_lock_file(db, tmp_path):
    """The check turns nothing valid away; the store directory holds no lock file after."""
    (tmp_path / "store").mkdir()
    r = _runner().invoke(app, ["tune", "--rows", "0", "--cols", "0:2", "--target-us", "800", "--db", db, "--json"])
    assert r.exit_code in (0, 1), r.output
    assert _runs(db) == ["tune:complete"]
    assert not list((tmp_path / "store").glob("*.lock"))


def test_store_open_removes_its_lock_file_even_a_stale_one(tmp_path):
    """A lock file left by a killed process is taken over and removed, not kept forever."""
    path = tmp_path / "s.sqlite"
    (tmp_path / "s.sqlite.lock").write_text("")  # as a process killed mid-migration leaves it
    open_store(f"sqlite:///{path}").close()
    open_store(f"sqlite:///{path}").close()
    assert sorted(p.name for p in tmp_path.glob("*.lock")) == []
    assert path.exists()


def test_schema_lock_is_exclusive_and_leaves_nothing(tmp_path):
    from memprog.store.schema_lock import exclusive_beside

    target = str(tmp_path / "x.sqlite")
    with exclusive_beside(target):
        assert (tmp_path / "x.sqlite.lock").exists()
        fcntl = pytest.importorskip("fcntl")
        with open(tmp_path / "x.sqlite.lock") as other:  # another holder cannot take it now
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert not (tmp_path / "x.sqlite.lock").exists()
    with exclusive_beside(target):  # and it can be taken again
        pass
    assert not list(tmp_path.glob("*.lock"))


def test_db_variability_on_an_empty_store_names_characterize(db, tmp_path):
    (tmp_path / "store").mkdir()
    open_store(db).close()  # an existing store without characterize runs
    for extra in ([], ["--json"], ["--chip-id", "NOPE"]):
        r = _runner().invoke(app, ["db", "variability", "--db", db, *extra])
        assert r.exit_code == 2, r.output
        assert r.stdout == ""
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "memprog characterize" in lines[0], r.stderr
        assert f"--db {db}" in lines[0]  # the same store, ready to paste
