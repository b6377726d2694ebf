"""The Jupyter notebooks in notebooks/ execute top to bottom at their shipped settings
(nbclient, a real kernel) on the simulated benches (backend ``@memprog``, in-process), and
they are committed as a reader should find them: with their outputs, and with the sources
that ``notebooks/_make_ipynb.py`` writes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(HERE.glob("*.ipynb"))


def _maker():
    spec = importlib.util.spec_from_file_location("_make_ipynb", HERE / "_make_ipynb.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes_at_shipped_settings(path, tmp_path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # run what a user opens, not its stored outputs
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    _maker().execute(nb, tmp_path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors[0].get("evalue") if errors else None
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_with_outputs(path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count for c in code), "run: python notebooks/_make_ipynb.py --execute"
    assert any(c.outputs for c in code), "a notebook shows what it computed"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, "a notebook committed with an error in its outputs"


def test_notebooks_match_their_sources():
    """Every notebook is written by _make_ipynb.py, and every source there has its notebook."""
    maker = _maker()
    assert {p.name for p in NOTEBOOKS} == set(maker.NOTEBOOKS)
    import nbformat

    for name, cells in maker.NOTEBOOKS.items():
        nb = nbformat.read(HERE / name, as_version=4)
        assert [(("md" if c.cell_type == "markdown" else "code"), c.source) for c in nb.cells] == list(cells), name


def test_no_script_copies_beside_the_notebooks():
    """One form per walk-through: the .ipynb (its source lives in _make_ipynb.py)."""
    assert not [p.name for p in HERE.glob("*.py") if not p.name.startswith("_")]
