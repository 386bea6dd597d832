"""Scripts planned without a database (``egregora db migrate --sql``, Alembic's offline mode).

An empty database at the ``--from`` migration stands in for the real one. DuckDB holds it in
memory whatever engine the script is for: planning reads its ledger, finds its tables and
counts no rows, while every statement is written in the target's dialect. What a plan cannot
know without the rows, the script checks when it runs (a new rule's CHECK, a rebuild's row
count). A step computed in Python from each row (the pseudonyms' rewrite) cannot be written
without them, so a range holding one is refused unless it starts from an empty database.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
import sqlglot

from egregora.backends import Backend
from egregora.backends.duckdb import DuckDBExecutor
from egregora.ddl.render import Dialect
from egregora.errors import MigrationError
from egregora.migrations.engine import MigrateResult, migrate
from egregora.migrations.model import Migration
from egregora.migrations.registry import shipped_migrations


class StandIn:
    """An empty database at some migration, read by a plan written for ``backend``; the
    plan's ``DryRunExecutor`` records every change, so nothing is ever written here."""

    dry_run = True

    def __init__(self, backend: Backend, local: DuckDBExecutor) -> None:
        self.backend = backend
        self.dialect: Dialect = backend.name
        self.local = local

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        text = self.backend.inline(sql, params)
        return self.local.query(sqlglot.transpile(text, read=self.dialect, write="duckdb")[0])

    def table_names(self) -> set[str]:
        return self.local.table_names()

    def column_names(self, table: str) -> list[str]:
        return self.local.column_names(table)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        raise MigrationError(f"a stand-in database is only read; asked to run: {sql}")

    def begin(self) -> None:
        pass  # reads only: there is nothing to keep together

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass


@contextmanager
def stand_in(backend: Backend, at: str | None, chain: tuple[Migration, ...]) -> Iterator[StandIn]:
    """An empty database at migration ``at`` (None: no migration yet), for ``backend``."""
    con = duckdb.connect(":memory:")
    try:
        local = DuckDBExecutor(con)
        if at is not None:
            migrate(local, target=at, migrations=chain)
        yield StandIn(backend, local)
    finally:
        con.close()


def refuse_row_steps(pending: Sequence[Migration]) -> None:
    """Refuse a range holding a step computed in Python from each row it reads."""
    for migration in pending:
        if any(op.computes_rows_in_python for op in migration.operations):
            raise MigrationError(
                f"migration {migration.id} ({migration.description}) computes each row's new "
                "values in Python, so a script written without the database cannot apply it to "
                "one that holds rows; print the script from the database itself with "
                "`egregora db migrate --dry-run --db URL`, or apply it with `egregora db migrate`"
            )


def plan_script(
    backend: Backend,
    *,
    from_id: str | None = None,
    target: str | None = None,
    migrations: tuple[Migration, ...] | None = None,
) -> MigrateResult:
    """The script that migrates a ``backend`` database at ``from_id`` (None: an empty one)
    to ``target`` (None: the last migration), planned without the database."""
    chain = shipped_migrations() if migrations is None else migrations
    ids = [m.id for m in chain]
    for given in (from_id, target):
        if given is not None and given not in ids:
            raise MigrationError(f"no migration {given!r}; known: {', '.join(ids)}")
    if from_id is not None and target is not None and target < from_id:
        raise MigrationError(
            f"--to {target} comes before --from {from_id}; downgrades are not supported"
        )
    if from_id is not None:  # a database past its first migration may hold rows
        refuse_row_steps(
            [m for m in chain if m.id > from_id and (target is None or m.id <= target)]
        )
    with stand_in(backend, from_id, chain) as reader:
        result = migrate(reader, target=target, dry_run=True, migrations=chain)
    return dataclasses.replace(result, offline=True)
