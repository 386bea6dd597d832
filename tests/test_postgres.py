"""The PostgreSQL DDL on a real server (skipped, with the reason shown, without one)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from egregora.backends.postgres import LOCK_CLASS as PG_LOCK_CLASS
from egregora.cli.app import app
from egregora.ddl.render import catalog_statements
from egregora.errors import DatabaseLockedError, MigrationError
from egregora.migrations import catalog_at, shipped_migrations
from egregora.schema.catalog import CATALOG
from egregora.storage import DatabaseURL, database_status, migrate_database
from tests.samples import valid_rows, valid_rows_at
from tests.support import insert_sql


@pytest.fixture
def pg_schema(postgres_url: str) -> Iterator[tuple[psycopg.Connection[Any], str]]:
    """A connection whose search_path is a fresh schema, dropped afterwards."""
    name = f"egregora_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        con.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(name)))
        try:
            yield con, name
        finally:
            con.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def _create(con: psycopg.Connection[Any]) -> None:
    with con.transaction():
        for statement in catalog_statements(CATALOG, "postgres"):
            con.execute(statement)


def _insert(con: psycopg.Connection[Any], table: str, row: dict[str, Any]) -> None:
    con.execute(insert_sql(table, row.keys(), "postgres"), list(row.values()))


def test_catalog_ddl_executes_with_every_named_constraint(pg_schema: tuple[Any, str]) -> None:
    con, schema = pg_schema
    _create(con)
    names = {
        row[0]
        for row in con.execute(
            "SELECT conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
            "WHERE n.nspname = %s AND c.contype IN ('p', 'u', 'c', 'f')",
            [schema],
        ).fetchall()
    }
    expected = set()
    for table in CATALOG:
        expected |= {table.pkey_name, *(u.name for u in table.uniques)}
        expected |= {r.name for r in table.rules} | {fk.name for fk in table.foreign_keys}
    assert names == expected
    indexes = {
        row[0]
        for row in con.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s", [schema])
    }
    declared = {i.name for t in CATALOG for i in t.indexes if "postgres" in i.dialects}
    assert declared <= indexes


def test_sample_rows_insert_and_rules_reject_by_name(pg_schema: tuple[Any, str]) -> None:
    con, _ = pg_schema
    _create(con)
    for table in CATALOG:
        for row in valid_rows()[table.name]:
            _insert(con, table.name, row)
    post = dict(valid_rows()["documents"][0], id="doc-2", slug="other", title=None)
    with pytest.raises(psycopg.errors.CheckViolation) as check:
        _insert(con, "documents", post)
    assert check.value.diag.constraint_name == "documents_post_required"
    with pytest.raises(psycopg.errors.ForeignKeyViolation) as fk:
        _insert(
            con,
            "documents",
            dict(valid_rows()["documents"][0], id="d3", slug="s3", created_by_run="no-such-run"),
        )
    assert fk.value.diag.constraint_name == "documents_created_by_run_fkey"
    with pytest.raises(psycopg.errors.UniqueViolation) as dup:
        _insert(con, "documents", dict(valid_rows()["documents"][0], id="d4"))
    assert dup.value.diag.constraint_name == "documents_doc_type_slug_key"


def test_db_init_creates_the_schema_on_postgres(
    postgres_url: str, pg_schema: tuple[Any, str]
) -> None:
    con, schema = pg_schema
    separator = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{separator}options={quote(f'-csearch_path={schema}')}"
    runner = CliRunner()
    first = runner.invoke(app, ["db", "init", "--db", url, "--json"])
    assert first.exit_code == 0, first.output
    head = shipped_migrations()[-1].id
    assert json.loads(first.stdout)["to"] == head
    second = runner.invoke(app, ["db", "init", "--db", url, "--json"])
    assert json.loads(second.stdout) == {"ok": True, "from": head, "to": head, "applied": []}
    tables = {
        row[0]
        for row in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema]
        )
    }
    assert tables == set(CATALOG.names)


def _schema_url(postgres_url: str, schema: str) -> str:
    separator = "&" if "?" in postgres_url else "?"
    return f"{postgres_url}{separator}options={quote(f'-csearch_path={schema}')}"


def test_migrations_on_postgres_add_the_new_rule_with_alter_table(
    postgres_url: str, pg_schema: tuple[Any, str]
) -> None:
    con, schema = pg_schema
    url = DatabaseURL.parse(_schema_url(postgres_url, schema))
    assert migrate_database(url, target="0001").to_id == "0001"
    earlier = catalog_at("0001")
    for table in earlier:
        if table.name != "schema_migrations":
            for row in valid_rows_at(table):
                _insert(con, table.name, row)
    undated = dict(valid_rows()["documents"][0], id="undated", slug="undated", date=None)
    _insert(con, "documents", undated)
    with pytest.raises(MigrationError, match="id='undated'"):
        migrate_database(url)
    assert database_status(url).current == "0001"
    con.execute("DELETE FROM documents WHERE id = 'undated'")
    result = migrate_database(url)
    head = shipped_migrations()[-1].id
    assert result.applied == tuple(m.id for m in shipped_migrations()[1:])
    report = database_status(url)
    # Migrated step by step, the schema is the catalog's, whatever order ADD COLUMN left.
    assert (report.current, report.pending, report.differences) == (head, (), ())
    with pytest.raises(psycopg.errors.CheckViolation):
        _insert(con, "documents", undated)
    # Columns added later were added with ALTER TABLE and filled: history order from dates.
    seqs = con.execute("SELECT path, chain_seq FROM git_commits ORDER BY path").fetchall()
    assert seqs == [("posts/copy.md", 2), ("posts/hello.md", 1), ("posts/hi.md", 2)]
    with pytest.raises(psycopg.errors.NotNullViolation):
        bad = dict(valid_rows()["git_commits"][0], commit_sha="d" * 40, chain_seq=None)
        _insert(con, "git_commits", bad)
    with pytest.raises(psycopg.errors.CheckViolation):
        bad = dict(valid_rows()["git_lookup_cache"][0], path="other.md", change_type="Z")
        _insert(con, "git_lookup_cache", bad)
    # 0005 dropped the dedupe key's UNIQUE (a finished task's key may be queued again) and
    # indexed it; 0006 made existing tasks available from their creation.
    late = con.execute("SELECT count(*) FROM tasks WHERE available_at <> created_at").fetchone()
    assert late == (0,)
    again = dict(valid_rows()["tasks"][0], task_id="task-again", status="succeeded")
    _insert(con, "tasks", again)
    indexes = con.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = 'tasks'",
        (schema,),
    ).fetchall()
    assert ("tasks_dedupe_key_idx",) in indexes
    assert ("tasks_dedupe_key_key",) not in indexes
    with pytest.raises(psycopg.errors.CheckViolation):
        _insert(con, "runs", dict(valid_rows()["runs"][0], run_id="run-pid", pid=0))


def test_a_held_migration_lock_is_reported_then_waited_for(
    postgres_url: str, pg_schema: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, schema = pg_schema
    url = DatabaseURL.parse(_schema_url(postgres_url, schema))
    with psycopg.connect(postgres_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", [PG_LOCK_CLASS, schema])
        holder_pid = holder.execute("SELECT pg_backend_pid()").fetchone()
        assert holder_pid is not None
        with pytest.raises(DatabaseLockedError, match=f"backend process {holder_pid[0]}"):
            migrate_database(url)
        # A run with --wait keeps trying while the lock is held (seen from here by its session's
        # last statement, under an application name of its own), and migrates once it is let go.
        waiter_name = f"egregora-waiter-{schema}"
        monkeypatch.setenv("PGAPPNAME", waiter_name)
        results: list[Any] = []
        waiter = threading.Thread(
            target=lambda: results.append(_outcome(lambda: migrate_database(url, wait=600)))
        )
        waiter.start()
        try:
            deadline = time.monotonic() + 120  # fails only a run that never tries the lock
            while not _tried_the_lock(holder, waiter_name):
                assert time.monotonic() < deadline, "the waiting run never tried the held lock"
                time.sleep(0.01)
            assert waiter.is_alive(), f"the waiting run ended while the lock was held: {results}"
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", [PG_LOCK_CLASS, schema])
            waiter.join(timeout=120)
    assert not waiter.is_alive(), "the waiting run did not finish once the lock was let go"
    [result] = results
    assert not isinstance(result, BaseException), result
    assert result.to_id == shipped_migrations()[-1].id


def test_a_database_at_head_needs_no_migration_lock(
    postgres_url: str, pg_schema: tuple[Any, str]
) -> None:
    """Workers starting at once each check the schema; at head there is nothing to migrate,
    so a lock held elsewhere (another starting worker) must not refuse them."""
    _, schema = pg_schema
    url = DatabaseURL.parse(_schema_url(postgres_url, schema))
    migrate_database(url)
    with psycopg.connect(postgres_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", [PG_LOCK_CLASS, schema])
        try:
            result = migrate_database(url)
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", [PG_LOCK_CLASS, schema])
    assert result.applied == ()
    assert result.to_id == shipped_migrations()[-1].id


def test_a_migration_in_another_schema_does_not_hold_this_one_up(
    postgres_url: str, pg_schema: tuple[Any, str]
) -> None:
    _, schema = pg_schema
    url = DatabaseURL.parse(_schema_url(postgres_url, schema))
    other = f"{schema}_other"
    with psycopg.connect(postgres_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", [PG_LOCK_CLASS, other])
        try:
            assert migrate_database(url).to_id == shipped_migrations()[-1].id
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", [PG_LOCK_CLASS, other])


def _tried_the_lock(con: psycopg.Connection[Any], application_name: str) -> bool:
    """Whether the session named ``application_name`` last tried the migration lock."""
    row = con.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND query LIKE %s",
        [application_name, "%pg_try_advisory_lock%"],
    ).fetchone()
    return row == (1,)


def _outcome(call: Callable[[], Any]) -> Any:
    """What ``call`` returned, or the exception it raised (a thread's error is otherwise lost)."""
    try:
        return call()
    except BaseException as exc:
        return exc
