"""Migrations: idempotent, all-or-nothing, aware of edited history, and faithful to the catalog."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from egregora import __version__
from egregora.backends.duckdb import introspect_duckdb
from egregora.cli.app import app
from egregora.ddl import statements as sql
from egregora.ddl.fingerprint import fingerprint
from egregora.ddl.render import table_statements
from egregora.errors import EditedMigrationError, MigrationError, UnknownMigrationError
from egregora.migrations import (
    AddRule,
    DuckDBExecutor,
    Migration,
    Operation,
    catalog_at,
    migrate,
    shipped_migrations,
    status,
)
from egregora.migrations.context import MigrationContext
from egregora.migrations.keyed import read_key
from egregora.schema.catalog import CATALOG
from egregora.schema.model import Catalog
from egregora.storage import DatabaseURL, migrate_database, verify
from egregora.storage.setup import open_executor
from tests.samples import valid_rows, valid_rows_at
from tests.support import insert_rows, insert_sql

runner = CliRunner()
CHAIN = shipped_migrations()
HEAD = CHAIN[-1].id


def data_tables() -> list[str]:
    return [t.name for t in CATALOG if t.name != "schema_migrations"]


def fill(con: duckdb.DuckDBPyConnection, catalog: Catalog = CATALOG) -> None:
    """The sample rows, with the columns ``catalog`` (an earlier schema) declares; rows that
    schema did not allow yet are left out."""
    for name in data_tables():
        if name not in catalog.names:
            continue  # created by a later migration
        insert_rows(con, name, valid_rows_at(catalog[name]))


def snapshot(
    con: duckdb.DuckDBPyConnection, catalog: Catalog = CATALOG
) -> dict[str, list[tuple[Any, ...]]]:
    """Every data row of every table (the columns ``catalog`` declares), in primary-key order."""
    out = {}
    for name in data_tables():
        if name not in catalog.names:
            continue
        table = catalog[name]
        query = sql.select_rows(name, table.column_names, "duckdb", order_by=table.primary_key)
        out[name] = con.execute(query).fetchall()
    return out


def head_fingerprint() -> str:
    with duckdb.connect() as con:
        migrate(DuckDBExecutor(con))
        return fingerprint(introspect_duckdb(con))


def test_migrations_are_numbered_and_checksummed() -> None:
    assert [m.id for m in CHAIN] == [f"{i:04d}" for i in range(1, len(CHAIN) + 1)]
    assert all(len(m.checksum) == 64 for m in CHAIN)
    assert catalog_at(HEAD) == CATALOG
    assert len(catalog_at(None)) == 0


def test_migrating_twice_changes_nothing(db_path: Path) -> None:
    url = DatabaseURL.parse(str(db_path))
    first = migrate_database(url)
    assert (first.from_id, first.to_id, first.applied) == (None, HEAD, tuple(m.id for m in CHAIN))
    with duckdb.connect(str(db_path)) as con:
        fill(con)
        before = (fingerprint(introspect_duckdb(con)), snapshot(con))
        ledger = con.execute("SELECT * FROM schema_migrations ORDER BY id").fetchall()
    second = migrate_database(url)
    assert (second.from_id, second.to_id, second.applied) == (HEAD, HEAD, ())
    with duckdb.connect(str(db_path)) as con:
        assert (fingerprint(introspect_duckdb(con)), snapshot(con)) == before
        assert con.execute("SELECT * FROM schema_migrations ORDER BY id").fetchall() == ledger
    assert before[0] == head_fingerprint()


@pytest.mark.parametrize("start", [m.id for m in CHAIN[:-1]])
def test_each_earlier_version_with_data_upgrades_to_head(db_path: Path, start: str) -> None:
    url = DatabaseURL.parse(str(db_path))
    assert migrate_database(url, target=start).to_id == start
    earlier = catalog_at(start)
    with duckdb.connect(str(db_path)) as con:
        fill(con, earlier)
        rows = snapshot(con, earlier)
    result = migrate_database(url)
    assert result.from_id == start and result.to_id == HEAD
    with duckdb.connect(str(db_path)) as con:
        assert fingerprint(introspect_duckdb(con)) == head_fingerprint()
        # Every row is kept; authors' pseudonyms are made again under the new key.
        key = read_key(DuckDBExecutor(con))
        assert key is not None and key.origin == "generated"
        columns = earlier["messages"].column_names
        at = {name: columns.index(name) for name in ("source", "thread_id", "author_raw")}
        keyed = [
            tuple(
                key.pseudonyms.author(*(row[at[n]] for n in at))
                if c == "author_uuid" and row[at["author_raw"]] is not None
                else value
                for c, value in zip(columns, row, strict=True)
            )
            for row in rows["messages"]
        ]
        if start < "0008":
            assert keyed != rows["messages"]
        else:  # keyed already
            keyed = rows["messages"]
        assert snapshot(con, earlier) == {**rows, "messages": keyed}
        # Columns added since then were backfilled: history order estimated from dates.
        seqs = con.execute("SELECT commit_sha, chain_seq FROM git_commits ORDER BY path").fetchall()
        assert seqs == [("b" * 40, 2), ("a" * 40, 1), ("b" * 40, 2)]
        # Tasks are available from their creation; a finished task's key may be queued again.
        if start < "0006":
            late = con.execute("SELECT count(*) FROM tasks WHERE available_at <> created_at")
            assert late.fetchone() == (0,)
        con.execute(
            "INSERT INTO tasks SELECT * REPLACE ('task-again' AS task_id, 'succeeded' AS status,"
            " NULL AS lease_owner, NULL AS lease_expires_at) FROM tasks WHERE task_id = 'task-1'"
        )
    assert verify(url) == []


def test_a_rebuilt_table_keeps_its_keys_references_and_indexes(db_path: Path) -> None:
    url = DatabaseURL.parse(str(db_path))
    migrate_database(url, target="0001")
    with duckdb.connect(str(db_path)) as con:
        fill(con, catalog_at("0001"))
    migrate_database(url)
    with duckdb.connect(str(db_path)) as con:
        indexes = {r[0] for r in con.execute("SELECT index_name FROM duckdb_indexes()").fetchall()}
        assert {"documents_subject_uuid_idx", "documents_filename_idx"} <= indexes
        row = {
            "annotation_id": "an-x",
            "document_id": "no-such-doc",
            "author": "a",
            "content": "c",
            "created_at": valid_rows()["annotations"][0]["created_at"],
        }
        with pytest.raises(duckdb.ConstraintException, match="foreign key"):
            insert_rows(con, "annotations", [row])
        with pytest.raises(duckdb.ConstraintException, match=r"PRIMARY KEY|primary key"):
            insert_rows(con, "documents", [valid_rows()["documents"][1]])
        published_without_date = dict(valid_rows()["documents"][0], id="d2", slug="d2", date=None)
        with pytest.raises(duckdb.ConstraintException, match="CHECK"):
            insert_rows(con, "documents", [published_without_date])


def test_rebuild_of_a_self_referencing_parent_keeps_every_family_row() -> None:
    with duckdb.connect() as con:
        executor = DuckDBExecutor(con)
        migrate(executor)
        fill(con)
        extra = [
            {
                "run_id": f"chain-{i}",
                "parent_run_id": f"chain-{i - 1}" if i else "run-1",
                "stage": "s",
                "status": "succeeded",
                "started_at": valid_rows()["runs"][0]["started_at"],
            }
            for i in range(6)
        ]
        insert_rows(con, "runs", extra)
        before = snapshot(con)
        ctx = MigrationContext(executor, "test", CATALOG, CATALOG)
        executor.begin()
        ctx.rebuild("runs")
        executor.commit()
        assert snapshot(con) == before
        assert fingerprint(introspect_duckdb(con)) == head_fingerprint()


@dataclass(frozen=True)
class Explode(Operation):
    """Creates a table, then fails: the half-done work must vanish with the rollback."""

    def revert(self, catalog: Any) -> Any:
        return catalog

    def apply(self, ctx: MigrationContext) -> None:
        ctx.executor.execute('CREATE TABLE "half_done" ("x" INTEGER)')
        ctx.executor.execute('INSERT INTO "documents" ("id") VALUES (NULL)')

    def describe(self) -> str:
        return "explode"


def test_a_migration_failing_half_way_leaves_no_trace(db_path: Path) -> None:
    broken = Migration(
        id="0099", description="explodes half way", operations=(Explode(),), source=b"boom"
    )
    with duckdb.connect(str(db_path)) as con:
        executor = DuckDBExecutor(con)
        migrate(executor)
        fill(con)
        before = (fingerprint(introspect_duckdb(con)), snapshot(con))
        ledger = con.execute("SELECT id FROM schema_migrations").fetchall()
        with pytest.raises(
            MigrationError,
            match=r"migration 0099 \(explodes half way\) failed "
            r"and was rolled back.*ConstraintException",
        ):
            migrate(executor, migrations=(*CHAIN, broken))
        assert (fingerprint(introspect_duckdb(con)), snapshot(con)) == before
        assert con.execute("SELECT id FROM schema_migrations").fetchall() == ledger
        assert migrate(executor).applied == ()


def test_the_new_rule_refuses_rows_that_break_it_and_names_them(db_path: Path) -> None:
    url = DatabaseURL.parse(str(db_path))
    migrate_database(url, target="0001")
    earlier = catalog_at("0001")
    with duckdb.connect(str(db_path)) as con:
        fill(con, earlier)
        undated = dict(valid_rows()["documents"][0], id="doc-undated", slug="undated", date=None)
        insert_rows(con, "documents", [undated])
        before = (fingerprint(introspect_duckdb(con)), snapshot(con, earlier))
    result = runner.invoke(app, ["db", "migrate", "--db", str(db_path)])
    assert result.exit_code == 1
    assert "documents_published_has_date" in result.stderr
    assert "id='doc-undated'" in result.stderr
    assert result.stderr.count("\n") == 1
    with duckdb.connect(str(db_path)) as con:
        assert (fingerprint(introspect_duckdb(con)), snapshot(con, earlier)) == before
    assert (
        json.loads(runner.invoke(app, ["db", "status", "--db", str(db_path), "--json"]).stdout)[
            "current"
        ]
        == "0001"
    )


def _edited(migration: Migration) -> Migration:
    return Migration(
        migration.id,
        migration.description,
        migration.operations,
        migration.source + b"\n# edited\n",
        migration.path,
    )


def test_an_edited_applied_migration_stops_migrate_unless_allowed() -> None:
    with duckdb.connect() as con:
        executor = DuckDBExecutor(con)
        migrate(executor, target="0001")
        chain = (_edited(CHAIN[0]), *CHAIN[1:])
        with pytest.raises(EditedMigrationError, match=r"0001_initial\.py"):
            migrate(executor, migrations=chain)
        assert status(executor).current == "0001"
        assert status(executor, migrations=chain).edited == ("0001",)
        assert migrate(executor, migrations=chain, allow_edited=True).to_id == HEAD


def test_line_endings_do_not_change_a_checksum() -> None:
    original = CHAIN[0]
    crlf = Migration(
        original.id,
        original.description,
        original.operations,
        original.source.replace(b"\n", b"\r\n"),
        original.path,
    )
    assert crlf.checksum == original.checksum


def test_status_reports_an_edited_migration_and_a_dropped_index(db_path: Path) -> None:
    assert runner.invoke(app, ["db", "migrate", "--db", str(db_path)]).exit_code == 0
    clean = runner.invoke(app, ["db", "status", "--db", str(db_path), "--json"])
    assert clean.exit_code == 0
    payload = json.loads(clean.stdout)
    assert payload["ok"] is True and payload["pending"] == [] and payload["current"] == HEAD
    assert payload["fingerprint"] == head_fingerprint()
    with duckdb.connect(str(db_path)) as con:
        con.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE id = '0001'")
        con.execute('DROP INDEX "documents_filename_idx"')
    drifted = runner.invoke(app, ["db", "status", "--db", str(db_path), "--json"])
    assert drifted.exit_code == 1
    drift = json.loads(drifted.stdout)["drift"]
    assert drift["edited_migrations"] == ["0001"]
    assert [(d["kind"], d["name"]) for d in drift["schema_differences"]] == [
        ("missing_index", "documents_filename_idx")
    ]
    human = runner.invoke(app, ["db", "status", "--db", str(db_path)])
    assert "0001 was edited" in human.stdout and "documents_filename_idx" in human.stdout
    refused = runner.invoke(app, ["db", "migrate", "--db", str(db_path)])
    assert refused.exit_code == 1 and "--allow-edited" in refused.stderr


def test_a_ledger_from_a_newer_egregora_is_refused() -> None:
    with duckdb.connect() as con:
        executor = DuckDBExecutor(con)
        migrate(executor)
        with pytest.raises(UnknownMigrationError, match="upgrade egregora"):
            migrate(executor, migrations=CHAIN[:1])


def test_ledger_rows_record_who_applied_what_and_when(db_path: Path) -> None:
    before = datetime.now(UTC)
    migrate_database(DatabaseURL.parse(str(db_path)))
    after = datetime.now(UTC)
    with duckdb.connect(str(db_path)) as con:
        rows = con.execute(
            "SELECT id, description, checksum, duration_ms, applied_by_host, applied_by_pid, "
            "egregora_version, applied_at FROM schema_migrations ORDER BY id"
        ).fetchall()
    assert [r[0] for r in rows] == [m.id for m in CHAIN]
    for row, migration in zip(rows, CHAIN, strict=True):
        assert row[1] == migration.description and row[2] == migration.checksum
        assert row[4:7] == (socket.gethostname(), os.getpid(), __version__)
        assert before <= row[7] <= after
    # Each duration is that migration's own time, in whole milliseconds: together no longer
    # than the migrate call they were measured in, and not all zero (tables take time to make).
    durations = [row[3] for row in rows]
    assert all(isinstance(d, int) and d >= 0 for d in durations)
    assert 0 < sum(durations) <= (after - before) / timedelta(milliseconds=1)
    applied = [row[7] for row in rows]
    assert applied == sorted(applied)  # applied one after another, in order


def test_dry_run_prints_sql_and_changes_nothing(tmp_path: Path, db_path: Path) -> None:
    missing = tmp_path / "never.duckdb"
    result = runner.invoke(app, ["db", "migrate", "--db", str(missing), "--dry-run"])
    assert result.exit_code == 0
    assert 'CREATE TABLE "documents"' in result.stdout and "would apply 0001, 0002" in result.stdout
    assert not missing.exists()
    migrate_database(DatabaseURL.parse(str(db_path)), target="0001")
    with duckdb.connect(str(db_path)) as con:
        before = fingerprint(introspect_duckdb(con))
    planned = runner.invoke(app, ["db", "migrate", "--db", str(db_path), "--dry-run", "--json"])
    payload = json.loads(planned.stdout)
    assert payload["applied"] == [m.id for m in CHAIN[1:]] and payload["dry_run"] is True
    assert any('DROP TABLE "annotations"' in s for s in payload["sql"])
    with duckdb.connect(str(db_path)) as con:
        assert fingerprint(introspect_duckdb(con)) == before


def test_targets_and_downgrades(db_path: Path) -> None:
    url = ["--db", str(db_path)]
    assert runner.invoke(app, ["db", "migrate", *url, "--to", "0001"]).exit_code == 0
    unknown = runner.invoke(app, ["db", "migrate", *url, "--to", "0042"])
    assert unknown.exit_code == 1 and "no migration '0042'" in unknown.stderr
    assert runner.invoke(app, ["db", "migrate", *url]).exit_code == 0
    down = runner.invoke(app, ["db", "migrate", *url, "--to", "0001"])
    assert down.exit_code == 1 and "downgrades are not supported" in down.stderr


def test_fingerprint_ignores_creation_order_but_not_content() -> None:
    def build(order: Callable[[list[str]], list[str]]) -> str:
        with duckdb.connect() as con:
            for table in CATALOG:
                statements = table_statements(table, "duckdb")
                con.execute(statements[0])
                for statement in order(statements[1:]):
                    con.execute(statement)
            return fingerprint(introspect_duckdb(con))

    forward = build(lambda s: s)
    assert forward == build(lambda s: list(reversed(s)))
    assert forward == head_fingerprint()
    with duckdb.connect() as con:
        migrate(DuckDBExecutor(con))
        con.execute('DROP INDEX "documents_filename_idx"')
        assert fingerprint(introspect_duckdb(con)) != forward


def test_add_rule_names_a_rule_the_catalog_declares() -> None:
    with pytest.raises(ValueError, match="declares no rule"):
        AddRule("documents", "no_such_rule").revert(CATALOG)


def test_copying_a_database_file_copies_its_history(tmp_path: Path, db_path: Path) -> None:
    migrate_database(DatabaseURL.parse(str(db_path)), target="0001")
    copy = tmp_path / "copy.duckdb"
    shutil.copy(db_path, copy)
    assert migrate_database(DatabaseURL.parse(str(copy))).applied == tuple(m.id for m in CHAIN[1:])


def test_migration_0009_makes_omitted_media_media_messages(url: DatabaseURL) -> None:
    """Before 0009 a media message the export left out was a text message without text, its
    omission in ``attrs``; after it, a media message with ``media_omitted``, kept in place
    (an annotation on it stays attached)."""
    migrate_database(url, target="0008")
    at = datetime(2024, 3, 14, 10, tzinfo=UTC)
    base = {"source": "whatsapp", "thread_id": "family", "ts": at, "author_uuid": "u1"}
    rows = [
        dict(base, event_id="e1", seq=0, kind="text", author_raw="Ana", text="oi"),
        dict(base, event_id="e2", seq=1, kind="text", author_raw="Ana", text=None,
             attrs='{"media_omitted": true}'),
        dict(base, event_id="e3", seq=2, kind="media", author_raw="Ana", media_filename="a.jpg",
             media_type="image"),
        dict(base, event_id="e4", seq=3, kind="system", author_raw=None, author_uuid=None,
             text="Ana added Bia"),
    ]  # fmt: skip
    note = {
        "annotation_id": "n1",
        "message_id": "e2",
        "author": "editor",
        "content": "which photo?",
        "created_at": at,
    }
    with open_executor(url, write=True) as executor:
        executor.begin()
        for table, row in [*(("messages", r) for r in rows), ("annotations", note)]:
            executor.execute(insert_sql(table, row, executor.dialect), list(row.values()))
        executor.commit()
    assert migrate_database(url, target="0009").applied == ("0009",)
    columns = ["event_id", "kind", "text", "media_filename", "media_omitted", "attrs"]
    with open_executor(url, write=False) as executor:
        found = executor.query(
            sql.select_rows("messages", columns, executor.dialect, None, ["seq"])
        )
        annotated = executor.query(sql.select_rows("annotations", ["message_id"], executor.dialect))
    assert [tuple(r) for r in found] == [
        ("e1", "text", "oi", None, False, None),
        ("e2", "media", None, None, True, None),
        ("e3", "media", None, "a.jpg", False, None),
        ("e4", "system", "Ana added Bia", None, False, None),
    ]
    assert [tuple(r) for r in annotated] == [("e2",)]
