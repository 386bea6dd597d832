"""Indexes that serve the queries on PostgreSQL: the task claim's pick, foreign-key columns and
the single git lookup.

The plans are PostgreSQL's own answer (EXPLAIN) on a table large enough, and analysed, that a
sequential scan would be chosen if the index did not serve the query.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from egregora.backends import BACKENDS
from egregora.git import resolver
from egregora.schema.catalog import CATALOG
from egregora.schema.model import Index
from egregora.storage import DatabaseURL, migrate_database
from egregora.tasks import statements

TASKS = 20_000


def _leading(index_columns: tuple[str, ...]) -> str | None:
    return index_columns[0] if index_columns else None


def test_every_foreign_key_column_leads_a_key_or_an_index_on_postgres() -> None:
    for table in CATALOG:
        led = {_leading(table.primary_key)} | {_leading(u.columns) for u in table.uniques}
        led |= {_leading(i.columns) for i in table.indexes if "postgres" in i.dialects}
        for fk in table.foreign_keys:
            assert fk.column in led, f"{table.name}.{fk.column} ({fk.name}) has no index"


def test_partial_indexes_are_declared_only_for_engines_that_build_them() -> None:
    partial = [(t.name, i) for t in CATALOG for i in t.indexes if i.where is not None]
    assert partial, "the catalog declares the task claim's partial index"
    for table, index in partial:
        for dialect in index.dialects:
            assert BACKENDS[dialect].partial_indexes, (table, index.name, dialect)


def test_an_index_keeps_only_its_own_columns_descending() -> None:
    with pytest.raises(ValueError, match="descending names no column"):
        Index("x_idx", ("a",), "nothing", descending=("b",))


@pytest.fixture
def queue(pg_url: DatabaseURL) -> Iterator[Any]:
    """A migrated schema whose tasks are mostly finished, a few claimable, analysed."""
    migrate_database(pg_url)
    assert pg_url.dsn is not None
    with psycopg.connect(pg_url.dsn, autocommit=True) as con:
        con.execute(
            "INSERT INTO runs (run_id, stage, status, started_at) "
            "VALUES ('run-1', 'run', 'running', now())"
        )
        con.execute(
            "INSERT INTO tasks (task_id, run_id, task_type, status, priority, attempts, "
            "max_attempts, created_at, available_at) "
            "SELECT 'task-' || n, CASE WHEN n %% 1000 = 0 THEN 'run-1' END, 'write', "
            "CASE WHEN n %% 500 = 0 THEN 'pending' ELSE 'succeeded' END, n %% 3, 1, 3, "
            "now() - make_interval(secs => %s - n), now() - make_interval(secs => %s - n) "
            "FROM generate_series(1, %s) AS n",
            [TASKS, TASKS, TASKS],
        )
        con.execute("ANALYZE tasks")
        yield con


def _plan(con: Any, query: str, params: list[Any]) -> str:
    rows = con.execute(f"EXPLAIN {query}", params).fetchall()
    return "\n".join(row[0] for row in rows)


def test_the_claim_reads_its_partial_index_in_order(queue: Any) -> None:
    pick = statements.PICK.sql("postgres")  # the claim's pick, as PostgreSQL receives it
    now = queue.execute("SELECT now()").fetchone()[0]
    plan = _plan(queue, pick, [now, now, 1])
    assert "tasks_claim_idx" in plan, plan
    assert "Seq Scan" not in plan and "Sort" not in plan, plan
    first = queue.execute(pick, [now, now, 1]).fetchone()
    expected = queue.execute(
        "SELECT task_id FROM tasks WHERE status = 'pending' "
        "ORDER BY priority DESC, created_at, task_id LIMIT 1"
    ).fetchone()
    assert first == expected


def test_a_foreign_key_lookup_uses_its_index(queue: Any) -> None:
    plan = _plan(queue, "SELECT task_id FROM tasks WHERE run_id = %s", ["run-1"])
    assert "tasks_run_id_idx" in plan, plan
    assert "Seq Scan" not in plan, plan


def test_a_single_git_lookup_reads_every_side_through_indexes(pg_url: DatabaseURL) -> None:
    """Every part of the one-path lookup (the path's changes, the renames away from it, the
    directory of that name) is an index scan on a repository of 20,000 changes, a few hundred
    of them renames, and as many directory rows."""
    migrate_database(pg_url)
    assert pg_url.dsn is not None
    with psycopg.connect(pg_url.dsn, autocommit=True) as con:
        con.execute("INSERT INTO git_repos (repo_id, root, tracked_ref) VALUES ('r', '/r', 'main')")
        con.execute(
            "INSERT INTO git_commits (repo_id, commit_sha, chain_seq, path, old_path, "
            "change_type, committed_at, authored_at, author_name, author_email) "
            "SELECT 'r', 'c' || (n / 10), n / 10 + 1, 'f' || (n %% 2000) || '.md', "
            "CASE WHEN n %% 50 = 0 THEN 'old' || (n %% 2000) || '.md' END, "
            "CASE WHEN n %% 50 = 0 THEN 'R' ELSE 'M' END, "
            "now() - make_interval(secs => %s - n), now() - make_interval(secs => %s - n), "
            "'a', 'a@x' FROM generate_series(1, %s) AS n",
            [TASKS, TASKS, TASKS],
        )
        con.execute(
            "INSERT INTO git_directory_changes (repo_id, commit_sha, chain_seq, path, "
            "change_type, committed_at, files) "
            "SELECT repo_id, commit_sha, chain_seq, 'd' || (chain_seq % 200), 'M', "
            "committed_at, 3 FROM git_commits ON CONFLICT DO NOTHING"
        )
        con.execute("ANALYZE git_commits")
        con.execute("ANALYZE git_directory_changes")
        lookup = BACKENDS["postgres"].translate(resolver.ONE_LOOKUP)  # as the resolver runs it
        row = con.execute("SELECT now()").fetchone()
        assert row is not None
        plan = _plan(con, lookup, resolver.one_lookup_params("r", "f7.md", row[0]))
    assert "git_commits_path_time_idx" in plan, plan
    assert "git_commits_old_path_time_idx" in plan, plan
    assert "git_directory_changes_path_time_idx" in plan, plan
    assert "Seq Scan" not in plan, plan
