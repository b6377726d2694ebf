"""The Jupyter notebooks in notebooks/ execute top to bottom (nbclient, a real kernel) on
small settings (``MEMPROG_NOTEBOOK_SMALL=1``), on the simulated benches (backend
``@memprog``, in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("MEMPROG_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("MEMPROG_DB", f"sqlite:///{tmp_path / 'db.sqlite'}")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors


def test_the_three_notebooks_are_there():
    names = {p.name for p in NOTEBOOKS}
    assert {"10_tour_bench_and_stacks.ipynb", "11_ladder_2048_levels.ipynb", "12_characterise_train_program.ipynb"} <= names
