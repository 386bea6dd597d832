"""`egregora db` on both engines: drift found for real, a foreign ledger refused, runnable dry runs.

Tests about behaviour take the ``url`` fixture: an empty database on DuckDB and on PostgreSQL (a
fresh schema there). Tests that alter a live schema by hand take ``pg_url``: they use
PostgreSQL's ALTER TABLE ... CONSTRAINT, which DuckDB lacks; DuckDB's drift is covered by
test_verify.py with databases built from altered catalogs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import psycopg
import pytest
from typer.testing import CliRunner

from egregora.cli.app import app
from egregora.cli.output import reported_errors
from egregora.migrations import shipped_migrations
from egregora.schema.catalog import CATALOG
from egregora.storage import DatabaseURL, database_status, migrate_database, verify
from tests.support import run_script

runner = CliRunner()
HEAD = shipped_migrations()[-1].id


def _cli(*args: str) -> Any:
    return runner.invoke(app, list(args))


@contextmanager
def _sql(url: DatabaseURL) -> Iterator[Any]:
    """A plain driver connection to ``url`` that commits what it runs."""
    if url.dsn is not None:
        with psycopg.connect(url.dsn, autocommit=True) as con:
            yield con
    else:
        with duckdb.connect(str(url.path)) as con:
            yield con


def _tables(url: DatabaseURL) -> set[str]:
    with _sql(url) as con:
        rows = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
    return {row[0] for row in rows}


def test_a_fresh_database_reports_no_drift(url: DatabaseURL) -> None:
    assert _cli("db", "init", "--db", str(url.dsn or url.path), "--json").exit_code == 0
    status = _cli("db", "status", "--db", str(url.dsn or url.path), "--json")
    assert status.exit_code == 0, status.output
    payload = json.loads(status.stdout)
    assert (payload["current"], payload["pending"], payload["ok"]) == (HEAD, [], True)
    assert payload["drift"]["schema_differences"] == []
    verified = _cli("db", "verify", "--db", str(url.dsn or url.path), "--json")
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout) == {"ok": True, "differences": []}


def _unreferenced() -> str:
    """A table no foreign key points at, so its primary key can be dropped alone."""
    referenced = {fk.references for table in CATALOG for fk in table.foreign_keys}
    return next(t.name for t in CATALOG if t.name not in referenced and t.primary_key)


def _first_check(table: str) -> str:
    return CATALOG[table].rules[0].name


def _fkey() -> tuple[str, str]:
    table = next(t for t in CATALOG if t.foreign_keys)
    return table.name, table.foreign_keys[0].name


def _index() -> tuple[str, str, str]:
    table = next(t for t in CATALOG if any("postgres" in i.dialects for i in t.indexes))
    index = next(i for i in table.indexes if "postgres" in i.dialects)
    return table.name, index.name, index.columns[0]


def _unique() -> tuple[str, str, str]:
    """A deferrable unique key: its table, name and columns (as SQL)."""
    table = next(t for t in CATALOG if any(u.deferrable for u in t.uniques))
    unique = next(u for u in table.uniques if u.deferrable)
    return table.name, unique.name, ", ".join(f'"{c}"' for c in unique.columns)


def _not_null() -> tuple[str, str]:
    """A NOT NULL column outside every key and rule (a rule's text would change with its type)."""
    for table in CATALOG:
        ruled = {c for rule in table.rules for c in rule.columns}
        ruled |= {c for u in table.uniques for c in u.columns} | set(table.primary_key)
        ruled |= {fk.column for fk in table.foreign_keys}
        for column in table.columns:
            if not column.nullable and column.name not in ruled:
                return table.name, column.name
    raise AssertionError("no NOT NULL column free of keys and rules in the catalog")


def _drifts() -> list[tuple[str, list[str], set[tuple[str, str, str]]]]:
    """(label, statements, the differences verify must report exactly)."""
    check_table = "documents"
    check = _first_check(check_table)
    fk_table, fkey = _fkey()
    index_table, index, index_column = _index()
    unique_table, unique, unique_columns = _unique()
    pk_table = _unreferenced()
    pkey = CATALOG[pk_table].pkey_name
    nn_table, nn_column = _not_null()
    other = next(c.name for c in CATALOG[index_table].columns if c.name != index_column)
    return [
        (
            "check dropped",
            [f'ALTER TABLE "{check_table}" DROP CONSTRAINT "{check}"'],
            {("missing_constraint", check_table, check)},
        ),
        (
            "check changed",
            [
                f'ALTER TABLE "{check_table}" DROP CONSTRAINT "{check}"',
                f'ALTER TABLE "{check_table}" ADD CONSTRAINT "{check}" CHECK (true)',
            ],
            {("missing_constraint", check_table, check), ("extra_constraint", check_table, check)},
        ),
        (
            "foreign key dropped",
            [f'ALTER TABLE "{fk_table}" DROP CONSTRAINT "{fkey}"'],
            {("missing_constraint", fk_table, fkey)},
        ),
        (
            "primary key dropped",
            [f'ALTER TABLE "{pk_table}" DROP CONSTRAINT "{pkey}"'],
            {("missing_constraint", pk_table, pkey)},
        ),
        (
            "unique dropped",
            [f'ALTER TABLE "{unique_table}" DROP CONSTRAINT "{unique}"'],
            {("missing_constraint", unique_table, unique)},
        ),
        (
            "unique no longer deferrable",
            [
                f'ALTER TABLE "{unique_table}" DROP CONSTRAINT "{unique}"',
                f'ALTER TABLE "{unique_table}" ADD CONSTRAINT "{unique}" UNIQUE ({unique_columns})',
            ],
            {
                ("missing_constraint", unique_table, unique),
                ("extra_constraint", unique_table, unique),
            },
        ),
        (
            "index dropped",
            [f'DROP INDEX "{index}"'],
            {("missing_index", index_table, index)},
        ),
        (
            "index changed",
            [f'DROP INDEX "{index}"', f'CREATE INDEX "{index}" ON "{index_table}" ("{other}")'],
            {("index_changed", index_table, index)},
        ),
        (
            "column type changed",
            [f'ALTER TABLE "{nn_table}" ALTER COLUMN "{nn_column}" TYPE varchar(200)'],
            {("column_type", nn_table, nn_column)},
        ),
        (
            "column made nullable",
            [f'ALTER TABLE "{nn_table}" ALTER COLUMN "{nn_column}" DROP NOT NULL'],
            {("column_nullability", nn_table, nn_column)},
        ),
        (
            "column added",
            ['ALTER TABLE "runs" ADD COLUMN "notes" text'],
            {("extra_column", "runs", "notes")},
        ),
    ]


DRIFTS = _drifts()


@pytest.mark.parametrize(("label", "statements", "expected"), DRIFTS, ids=[d[0] for d in DRIFTS])
def test_drift_on_postgres_is_found_exactly(
    pg_url: DatabaseURL, label: str, statements: list[str], expected: set[tuple[str, str, str]]
) -> None:
    url = pg_url
    migrate_database(url)
    with _sql(url) as con:
        for statement in statements:
            con.execute(statement)
    found = {(d.kind, d.table, d.name) for d in verify(url)}
    assert found == expected, label
    status = database_status(url)
    assert {(d.kind, d.table, d.name) for d in status.differences} == expected
    assert status.drift
    cli = _cli("db", "status", "--db", str(url.dsn), "--json")
    assert cli.exit_code == 1, cli.output


def test_a_migrated_and_a_fresh_postgres_database_share_a_fingerprint(
    pg_url: DatabaseURL,
) -> None:
    """ADD COLUMN appends on PostgreSQL: the fingerprint counts columns by name."""
    url = pg_url
    migrate_database(url, target="0001")
    migrate_database(url)
    stepwise = database_status(url)
    with _sql(url) as con:
        con.execute("DROP TABLE " + ", ".join(f'"{t}"' for t in CATALOG.names) + " CASCADE")
    migrate_database(url)
    fresh = database_status(url)
    assert stepwise.fingerprint == fresh.fingerprint
    assert stepwise.differences == fresh.differences == ()


def test_a_ledger_another_tool_made_is_refused_in_one_line(url: DatabaseURL) -> None:
    with _sql(url) as con:
        con.execute('CREATE TABLE "schema_migrations" ("version" varchar PRIMARY KEY)')
        con.execute("INSERT INTO schema_migrations VALUES ('20240101000000')")
    where = str(url.dsn or url.path)
    for command in (["db", "status"], ["db", "init"], ["db", "migrate"]):
        result = _cli(*command, "--db", where)
        assert result.exit_code != 0, command
        assert "Traceback" not in result.output
        assert result.stderr.count("\n") == 1, result.stderr
        assert "schema_migrations" in result.stderr and "not made by egregora" in result.stderr
        assert "search_path" in result.stderr
    assert _tables(url) == {"schema_migrations"}  # nothing was created beside it


def test_a_dry_run_prints_sql_that_runs_as_it_is(url: DatabaseURL) -> None:
    where = str(url.dsn or url.path)
    if url.path is not None:
        duckdb.connect(str(url.path)).close()  # an empty file, as a dry run plans against
    printed = _cli("db", "migrate", "--db", where, "--dry-run")
    assert printed.exit_code == 0, printed.output
    script = printed.stdout
    assert "%s" not in script and "?" not in script.replace("'?'", "")
    assert "parameters" not in script
    run_script(url, "\n".join(line for line in script.splitlines() if not line.startswith("--")))
    status = database_status(url)
    assert (status.current, status.pending, status.differences) == (HEAD, (), ())
    assert [a.id for a in status.applied] == [m.id for m in shipped_migrations()]
    again = migrate_database(url)
    assert again.applied == ()


def test_a_driver_error_is_one_line_naming_the_driver(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Exception) as stopped, reported_errors(as_json=False):
        raise psycopg.errors.UndefinedTable('relation "nowhere" does not exist\nLINE 1: ...')
    assert getattr(stopped.value, "exit_code", None) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "UndefinedTable" in err and 'relation "nowhere" does not exist' in err
