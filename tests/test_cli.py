"""The command line: --db and --json on every command, one-line errors, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import sqlglot
from typer.testing import CliRunner

from egregora import __version__
from egregora.cli.app import app
from egregora.migrations import shipped_migrations
from egregora.schema.catalog import CATALOG
from egregora.storage import DatabaseURL
from tests.support import db_arg

runner = CliRunner()
MIGRATION_IDS = [m.id for m in shipped_migrations()]
HEAD = MIGRATION_IDS[-1]


def test_python_dash_m_runs_the_application(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "x.duckdb"
    done = subprocess.run(
        [sys.executable, "-m", "egregora", "db", "init", "--db", str(db), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "ok": True,
        "from": None,
        "to": HEAD,
        "applied": MIGRATION_IDS,
    }
    assert done.stderr == ""  # library warnings are not shown to users


def test_init_is_idempotent(db_path: Path) -> None:
    first = runner.invoke(app, ["db", "init", "--db", str(db_path), "--json"])
    second = runner.invoke(app, ["db", "init", "--db", str(db_path), "--json"])
    assert first.exit_code == second.exit_code == 0
    assert json.loads(first.stdout) == {
        "ok": True,
        "from": None,
        "to": HEAD,
        "applied": MIGRATION_IDS,
    }
    assert json.loads(second.stdout) == {"ok": True, "from": HEAD, "to": HEAD, "applied": []}
    assert "nothing to do" in runner.invoke(app, ["db", "init", "--db", str(db_path)]).stdout


def test_init_accepts_the_duckdb_url_form(tmp_path: Path) -> None:
    db = tmp_path / "u.duckdb"
    result = runner.invoke(app, ["db", "init", "--db", f"duckdb:///{db}"])
    assert result.exit_code == 0, result.output
    assert db.exists()


def test_default_database_is_under_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EGREGORA_DB", raising=False)
    assert runner.invoke(app, ["db", "init"]).exit_code == 0
    assert (tmp_path / ".egregora" / "egregora.duckdb").exists()


def test_egregora_db_variable_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "env.duckdb"
    monkeypatch.setenv("EGREGORA_DB", str(target))
    assert runner.invoke(app, ["db", "init"]).exit_code == 0
    assert target.exists()
    assert runner.invoke(app, ["db", "verify"]).exit_code == 0


def _sql(url: DatabaseURL, *statements: str) -> None:
    """Run ``statements`` on the database, committed, as another program would."""
    with url.backend.open_executor(url, write=True, create=True) as con:
        con.begin()
        for statement in statements:
            con.execute(statement)
        con.commit()


def test_init_refuses_a_database_with_different_egregora_tables(url: DatabaseURL) -> None:
    _sql(
        url,
        'CREATE TABLE "documents" ("id" VARCHAR, "body" VARCHAR)',
        "INSERT INTO documents VALUES ('keep', 'me')",
    )
    result = runner.invoke(app, ["db", "init", "--db", db_arg(url)])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "no migration ledger" in result.stderr
    with url.backend.open_executor(url, write=False) as con:
        assert con.query("SELECT * FROM documents") == [("keep", "me")]
        assert url.backend.table_names(con) == {"documents"}


def test_init_keeps_unrelated_tables_and_verify_reports_them(url: DatabaseURL) -> None:
    _sql(url, 'CREATE TABLE "notes" ("x" INTEGER)')
    assert runner.invoke(app, ["db", "init", "--db", db_arg(url)]).exit_code == 0
    result = runner.invoke(app, ["db", "verify", "--db", db_arg(url), "--json"])
    assert result.exit_code == 1
    kinds = [(d["kind"], d["table"]) for d in json.loads(result.stdout)["differences"]]
    assert kinds == [("extra_table", "notes")]


def test_verify_of_a_missing_database_says_how_to_create_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.duckdb"
    result = runner.invoke(app, ["db", "verify", "--db", str(missing)])
    assert result.exit_code == 1
    assert "egregora db init" in result.stderr
    assert result.stderr.count("\n") == 1
    assert not missing.exists()


def test_a_bad_url_is_a_one_line_error_with_exit_2() -> None:
    result = runner.invoke(app, ["db", "verify", "--db", "mysql://x/y", "--json"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: unsupported database scheme 'mysql'")
    assert result.stderr.count("\n") == 1
    assert json.loads(result.stdout)["error"]["type"] == "ConfigurationError"


def test_a_locked_database_names_the_holder(db_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('ready', flush=True);"
            " sys.stdin.read()",  # holds the file until killed
            str(db_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        result = runner.invoke(app, ["db", "init", "--db", str(db_path)])
        assert result.exit_code == 1
        assert f"locked by process {holder.pid}" in result.stderr
        assert "retry" in result.stderr
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("dialect", ["duckdb", "postgres"])
def test_schema_sql_parses_in_its_dialect(dialect: str) -> None:
    result = runner.invoke(app, ["db", "schema", "--format", "sql", "--dialect", dialect])
    assert result.exit_code == 0
    statements = [s for s in sqlglot.parse(result.stdout, read=dialect) if s is not None]
    creates = [s for s in statements if s.key == "create" and s.args.get("kind") == "TABLE"]
    assert len(creates) == len(CATALOG)


def test_schema_dialect_follows_the_db_backend() -> None:
    result = runner.invoke(app, ["db", "schema", "--db", "postgresql://u@h/d", "--json"])
    payload = json.loads(result.stdout)
    assert payload["dialect"] == "postgres"
    assert "TIMESTAMPTZ(6)" in payload["text"]


def test_schema_mermaid_and_json_cover_every_table() -> None:
    diagram = runner.invoke(app, ["db", "schema", "--format", "mermaid"]).stdout
    assert diagram.startswith("erDiagram\n")
    catalog = json.loads(runner.invoke(app, ["db", "schema", "--format", "json"]).stdout)
    assert [t["name"] for t in catalog["tables"]] == list(CATALOG.names)
    for table in CATALOG:
        assert f"    {table.name} {{" in diagram
        for fk in table.foreign_keys:
            assert f"{fk.references} " in diagram and f'{table.name} : "{fk.column}"' in diagram


def test_version_flag() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"{__version__}\n"  # the version alone, one line
    with (Path(__file__).resolve().parents[1] / "pyproject.toml").open("rb") as handle:
        assert __version__ == tomllib.load(handle)["project"]["version"]  # the installed one


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "egregora"
    assert script.exists(), "pip install -e . must install the egregora console script"
    done = subprocess.run(
        [str(script), "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert done.returncode == 0
    assert "db" in done.stdout


def test_a_draft_left_by_a_dead_creator_is_cleared(tmp_path: Path) -> None:
    db = tmp_path / "new.duckdb"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    draft = tmp_path / f".new.duckdb.creating-{dead.stdout.strip()}"
    draft.write_bytes(b"")
    assert runner.invoke(app, ["db", "init", "--db", str(db)]).exit_code == 0
    assert not draft.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.duckdb"]
