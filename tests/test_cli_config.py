"""The configuration file: ``egregora.toml`` or ``[tool.egregora]`` in ``pyproject.toml``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from egregora.cli.app import app
from egregora.runner.demo import TIMEZONE, sample_export
from egregora.runs import RunStore
from egregora.storage import Storage


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current folder, with no database named by the environment."""
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("EGREGORA_DB", raising=False)
    return folder


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def _run_config(db: Path) -> dict[str, object]:
    with Storage.open(str(db), read_only=True) as store:
        (run,) = RunStore(store).list(stage="run")
    config: dict[str, object] = run.attrs["config"]
    return config


def test_egregora_toml_sets_the_database_zone_and_site(here: Path, tmp_path: Path) -> None:
    export = sample_export(tmp_path / "export")
    (here / "egregora.toml").write_text(
        f'db = "data/group.duckdb"\ntz = "{TIMEZONE}"\nsite = "public"\n', encoding="utf-8"
    )
    done = _invoke("run", str(export), "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["site"] == str(here / "public")
    assert (here / "public" / "mkdocs.yml").is_file()
    assert _run_config(here / "data" / "group.duckdb")["tz"] == TIMEZONE
    assert not (here / ".egregora").exists()  # not the built-in default database


def test_pyproject_tool_egregora_is_read_and_a_typed_option_wins(
    here: Path, tmp_path: Path
) -> None:
    (here / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.egregora]\ndb = "from-config.duckdb"\n', encoding="utf-8"
    )
    assert _invoke("db", "init").exit_code == 0
    assert (here / "from-config.duckdb").is_file()
    typed = tmp_path / "typed.duckdb"
    assert _invoke("db", "init", "--db", str(typed)).exit_code == 0
    assert typed.is_file()


def test_the_environment_database_wins_over_the_file(
    here: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (here / "egregora.toml").write_text('db = "from-config.duckdb"\n', encoding="utf-8")
    from_env = tmp_path / "env.duckdb"
    monkeypatch.setenv("EGREGORA_DB", str(from_env))
    assert _invoke("db", "init").exit_code == 0
    assert from_env.is_file() and not (here / "from-config.duckdb").exists()


def test_the_demo_never_goes_into_the_configured_database(here: Path) -> None:
    (here / "egregora.toml").write_text('db = "precious.duckdb"\n', encoding="utf-8")
    done = _invoke("demo", str(here / "demo"), "--json")
    assert done.exit_code == 0, done.output
    assert not (here / "precious.duckdb").exists()
    assert (here / "demo" / "egregora.duckdb").is_file()


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('dbx = "a.duckdb"\n', "sets dbx, which egregora does not read"),
        ("db = 3\n", "db must be a non-empty string"),
        ("db = \n", "is not valid TOML"),
    ],
    ids=["unknown-key", "not-a-string", "not-toml"],
)
def test_a_bad_file_is_refused_naming_it(here: Path, text: str, said: str) -> None:
    (here / "egregora.toml").write_text(text, encoding="utf-8")
    done = _invoke("db", "init", "--json")
    assert done.exit_code == 2
    error = json.loads(done.stdout)["error"]
    assert said in error["message"] and str(here / "egregora.toml") in error["message"]
    assert sorted(p.name for p in here.iterdir()) == ["egregora.toml"]  # nothing made
