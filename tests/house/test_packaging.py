"""memprog imports correctly from outside the checkout, installed editable or not (DESIGN.md §2)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECK = """
import importlib.resources, pathlib, sys
import memprog, memprog.drivers, memprog.protocols, memprog.sim_instruments, memprog.benches
import pyvisa_memprog
from memprog.sim_instruments import SimChip
from memprog.protocols import CellProgrammer
here = pathlib.Path.cwd().resolve()
for mod in (memprog, memprog.drivers, memprog.protocols, memprog.sim_instruments):
    assert not pathlib.Path(mod.__file__).resolve().is_relative_to(here), mod.__file__
benches = [p.name for p in importlib.resources.files("memprog.benches").iterdir()]
assert any(n.endswith(".yaml") for n in benches), benches
import memprog.store, memprog.store.migrations.versions, memprog.hwaware, memprog.jobs
import memprog.dashboard, memprog.examples
data = {
    "memprog.store.migrations.versions": ".py",  # Alembic revisions
    "memprog.dashboard.static": ".js",  # the dashboard's front end
    "memprog.examples": ".pt",  # README command 1's shipped network
}
for pkg, ext in data.items():
    names = [p.name for p in importlib.resources.files(pkg).iterdir()]
    assert any(n.endswith(ext) for n in names), (pkg, names)
print(pathlib.Path(memprog.__file__).resolve())
"""


def _run(cwd: Path, env_extra: dict[str, str] | None = None) -> str:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update(env_extra or {})
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.slow
def test_installed_package_imports_from_outside_the_checkout(tmp_path):
    where = _run(tmp_path)
    assert where.endswith("memprog/__init__.py")


def _source_copy(dest: Path) -> Path:
    """The checkout's tracked and new (not ignored) files, copied: a build from it cannot pick
    up a stale ``build/`` folder (modules that no longer exist in the source)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout: cannot tell the source from build leftovers")
    for name in filter(None, listed.stdout.decode().split("\0")):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def _expected_modules() -> set[str]:
    """Every module the source holds, as installed paths under ``memprog/``."""
    rooms = {"src/memprog": "", "drivers": "drivers/", "protocols": "protocols/",
             "sim_instruments": "sim_instruments/", "benches": "benches/"}
    out = set()
    for folder, prefix in rooms.items():
        for path in (REPO / folder).rglob("*.py"):
            rel = path.relative_to(REPO / folder).as_posix()
            if folder == "src/memprog" or "/" not in rel:
                out.add(prefix + rel)
    return out


@pytest.mark.slow
def test_regular_install_imports_every_subpackage(tmp_path):
    target = tmp_path / "site"
    source = _source_copy(tmp_path / "source")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(source)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    installed = {p.relative_to(target / "memprog").as_posix() for p in (target / "memprog").rglob("*.py")}
    assert installed == _expected_modules(), (
        f"installed but not in the source: {sorted(installed - _expected_modules())}; "
        f"in the source but not installed (add its package to pyproject): {sorted(_expected_modules() - installed)}"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run(elsewhere, {"PYTHONPATH": str(target)})
    assert Path(where).is_relative_to(target.resolve())
    yamls = {p.name for p in (target / "memprog" / "sim_instruments").glob("*.yaml")}
    assert yamls, "simulator YAML files must be installed as package data"
    assert (target / "memprog" / "examples" / "digits_64_54_10.pt").exists(), "the shipped example is package data"
