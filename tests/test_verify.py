"""`egregora db verify` and the diff behind it, on real database files that were tampered with."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import duckdb
from typer.testing import CliRunner

from egregora.backends import DatabaseURL
from egregora.backends.duckdb import diff_duckdb, expected_duckdb
from egregora.cli.app import app
from egregora.migrations import shipped_migrations
from egregora.schema.catalog import CATALOG
from egregora.schema.model import Catalog, Table, col
from egregora.storage.setup import migrate_database, verify
from tests.support import create_schema

runner = CliRunner()
HEAD = shipped_migrations()[-1].id


def _without_rule(table: Table, rule: str) -> Table:
    assert rule in {r.name for r in table.checks}
    return dataclasses.replace(table, checks=tuple(r for r in table.checks if r.name != rule))


def _catalog_with(replacement: Table) -> Catalog:
    return Catalog(tuple(replacement if t.name == replacement.name else t for t in CATALOG))


def tamper(path: Path) -> None:
    """A database built with a missing CHECK, then altered: an index dropped, a column added."""
    with duckdb.connect(str(path)) as con:
        create_schema(
            con, _catalog_with(_without_rule(CATALOG["documents"], "documents_window_order"))
        )
        con.execute('DROP INDEX "documents_filename_idx"')
        con.execute('ALTER TABLE "runs" ADD COLUMN "notes" VARCHAR')


def test_a_fresh_database_verifies_clean(db_path: Path) -> None:
    url = DatabaseURL.parse(str(db_path))
    result = migrate_database(url)
    assert (result.from_id, result.to_id) == (None, HEAD)
    assert result.applied == tuple(m.id for m in shipped_migrations())
    assert verify(url) == []


def test_tampering_is_reported_precisely(db_path: Path) -> None:
    tamper(db_path)
    found = {(d.kind, d.table, d.name) for d in verify(DatabaseURL.parse(str(db_path)))}
    assert found == {
        ("missing_index", "documents", "documents_filename_idx"),
        ("extra_column", "runs", "notes"),
        ("missing_constraint", "documents", "documents_window_order"),
    }


def test_verify_command_lists_every_difference_and_exits_1(db_path: Path) -> None:
    tamper(db_path)
    result = runner.invoke(app, ["db", "verify", "--db", str(db_path), "--json"])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["ok"] is False
    messages = [d["message"] for d in payload["differences"]]
    assert len(messages) == 3
    assert any("documents_window_order" in m and "window_start" in m for m in messages)
    human = runner.invoke(app, ["db", "verify", "--db", str(db_path)])
    assert human.exit_code == 1
    for name in ("documents_filename_idx", "notes", "documents_window_order"):
        assert name in human.stdout


def test_verify_command_exits_0_on_a_clean_database(db_path: Path) -> None:
    assert runner.invoke(app, ["db", "init", "--db", str(db_path)]).exit_code == 0
    result = runner.invoke(app, ["db", "verify", "--db", str(db_path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"ok": True, "differences": []}


def test_type_nullability_tables_and_extra_constraints_are_reported() -> None:
    runs = CATALOG["runs"]
    changed = dataclasses.replace(
        runs,
        columns=tuple(
            col("stage", "string", "now nullable")
            if c.name == "stage"
            else col("rows_in", "string", "now text")
            if c.name == "rows_in"
            else c
            for c in runs.columns
        ),
        checks=(),
    )
    live_catalog = Catalog(tuple(t for t in _catalog_with(changed) if t.name != "asset_cache"))
    with duckdb.connect() as con:
        for table in live_catalog:
            for statement in expected_statements(table):
                con.execute(statement)
        con.execute('CREATE TABLE "scratch" ("x" INTEGER)')
        found = {(d.kind, d.table, d.name) for d in diff_duckdb(CATALOG, con)}
    assert ("column_nullability", "runs", "stage") in found
    assert ("column_type", "runs", "rows_in") in found
    assert ("missing_table", "asset_cache", "") in found
    assert ("extra_table", "scratch", "") in found
    assert ("missing_constraint", "runs", "runs_finished_after_start") in found


def expected_statements(table: Table) -> list[str]:
    from egregora.ddl.render import table_statements

    return table_statements(table, "duckdb")


def test_expected_schema_names_each_check_after_its_rule() -> None:
    for table in CATALOG:
        checks = [c for c in expected_duckdb(CATALOG)[table.name].constraints if c.kind == "CHECK"]
        assert [c.name for c in checks] == [r.name for r in table.rules]
        for constraint, rule in zip(checks, table.rules, strict=True):
            assert set(rule.columns) <= set(constraint.columns), rule.name
