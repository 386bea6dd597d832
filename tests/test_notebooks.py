"""Every notebook in notebooks/ runs end to end on a fresh kernel.

explore.ipynb reads the database named by $EGREGORA_DB; it runs against the session's demo
database (the kernel inherits the test's environment) and must leave that file unchanged.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from typer.testing import CliRunner

from egregora.cli.app import app
from egregora.storage import DatabaseURL

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPLORE = NOTEBOOK_DIR / "explore.ipynb"
EXPLORE_FIGURES = 4  # messages per day, per author, documents by type, runs


def _read(path: Path) -> Any:
    return nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]


def _client(notebook: Any, cwd: Path) -> NotebookClient:
    """A client running ``notebook`` (in place) on a fresh python3 kernel started in ``cwd``;
    the kernel inherits this process's environment."""
    return NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
    )


def _outputs(notebook: Any) -> list[dict[str, Any]]:
    return [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    ]


def _errors(notebook: Any) -> list[dict[str, Any]]:
    return [output for output in _outputs(notebook) if output.get("output_type") == "error"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "notebooks/ should hold at least one notebook"
    assert EXPLORE in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_end_to_end(
    path: Path, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = None
    if path == EXPLORE:
        demo_folder: Path = request.getfixturevalue("demo_folder")
        database = demo_folder / "egregora.duckdb"
        before = _sha256(database)
        monkeypatch.setenv("EGREGORA_DB", str(database))
    notebook = _read(path)
    _client(notebook, tmp_path).execute()
    assert not _errors(notebook)
    if database is not None:
        assert _sha256(database) == before, "explore.ipynb must not change the database"
        figures = [o for o in _outputs(notebook) if "image/png" in o.get("data", {})]
        assert len(figures) == EXPLORE_FIGURES


def test_explore_notebook_is_saved_without_outputs() -> None:
    notebook = _read(EXPLORE)
    assert notebook.nbformat == 4
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)


def test_explore_notebook_says_to_run_the_demo_when_the_database_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere" / "egregora.duckdb"
    monkeypatch.setenv("EGREGORA_DB", str(missing))
    notebook = _read(EXPLORE)
    with pytest.raises(CellExecutionError):
        _client(notebook, tmp_path).execute()
    errors = _errors(notebook)
    assert len(errors) == 1, errors
    assert errors[0]["ename"] == "FileNotFoundError"
    assert "egregora demo" in errors[0]["evalue"]
    assert str(missing) in errors[0]["evalue"]
    assert not missing.exists()  # nothing was created


def test_explore_notebook_reads_a_postgresql_database(
    pg_url: DatabaseURL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert pg_url.dsn is not None
    made = CliRunner().invoke(app, ["demo", str(tmp_path / "demo"), "--db", pg_url.dsn])
    assert made.exit_code == 0, made.output
    monkeypatch.setenv("EGREGORA_DB", pg_url.dsn)
    notebook = _read(EXPLORE)
    _client(notebook, tmp_path).execute()
    assert not _errors(notebook)
    figures = [o for o in _outputs(notebook) if "image/png" in o.get("data", {})]
    assert len(figures) == EXPLORE_FIGURES
