"""Where migration SQL goes: an engine's connection (``egregora.backends``), or a recorder for
--dry-run that prints what it would run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from egregora.backends import Executor
from egregora.backends.duckdb import DuckDBExecutor
from egregora.backends.postgres import PostgresExecutor
from egregora.ddl.render import Dialect

__all__ = ["DryRunExecutor", "DuckDBExecutor", "Executor", "PostgresExecutor"]


class DryRunExecutor:
    """Reads from the real database, records every change instead of making it, with its
    values written in as literals, so the recorded script runs as it is."""

    dry_run = True

    def __init__(self, reader: Executor) -> None:
        self.reader = reader
        self.backend = reader.backend
        self.dialect: Dialect = reader.dialect
        self.statements: list[str] = []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.statements.append(self.backend.inline(sql, params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.reader.query(sql, params)

    def table_names(self) -> set[str]:
        return self.reader.table_names()

    def column_names(self, table: str) -> list[str]:
        return self.reader.column_names(table)

    def begin(self) -> None:
        self.statements.append("BEGIN")

    def commit(self) -> None:
        self.statements.append("COMMIT")

    def rollback(self) -> None:
        self.statements.append("ROLLBACK")
