"""The notebooks in notebooks/ run top to bottom, and are stored without outputs."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from conftest import REPO
from nbclient import NotebookClient

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
LIMIT = '"++trainer.limit_train_batches=8", "++trainer.limit_val_batches=2", "++trainer.limit_test_batches=2"'
# Run after a notebook's parameter cell (its first), as papermill injects parameters: every cell still runs,
# on fewer batches (what training itself does is tested in test_train.py).
SMALLER = {
    "02_train_and_inspect.ipynb": f"MAX_EPOCHS = 2\nOVERRIDES = [{LIMIT}]",
    "03_compare_runs.ipynb": f'SWEEP = ["optimizer.lr=3e-4,3e-3"]\nBASE = [*BASE, {LIMIT}]',
}


def test_there_are_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01_explore_data.ipynb",
        "02_train_and_inspect.ipynb",
        "03_compare_runs.ipynb",
        "04_explain.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    assert not [c for c in notebook.cells if c.get("outputs") or c.get("execution_count")]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    first = next(i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code")
    if path.name in SMALLER:
        notebook.cells.insert(first + 1, nbformat.v4.new_code_cell(SMALLER[path.name]))
    client = NotebookClient(
        notebook, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError with the failing cell and its traceback
