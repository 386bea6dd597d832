"""Where migration SQL goes: a DuckDB or PostgreSQL connection, or a recorder for --dry-run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import duckdb

from egregora.ddl.render import Dialect


class Executor(Protocol):
    """The little a migration needs from a connection."""

    dialect: Dialect
    dry_run: bool

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def begin(self) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class DuckDBExecutor:
    dialect: Dialect = "duckdb"
    dry_run = False

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.con.execute(sql, list(params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params)).fetchall()

    def begin(self) -> None:
        self.con.execute("BEGIN TRANSACTION")

    def commit(self) -> None:
        self.con.execute("COMMIT")

    def rollback(self) -> None:
        self.con.execute("ROLLBACK")


class PostgresExecutor:
    """Runs on a psycopg connection with autocommit off; BEGIN is implicit in psycopg."""

    dialect: Dialect = "postgres"
    dry_run = False

    def __init__(self, con: Any) -> None:
        self.con = con

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.con.execute(sql, list(params) or None)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self.con.execute(sql, list(params) or None).fetchall()
        return rows

    def begin(self) -> None:
        """psycopg opens a transaction at the first statement."""

    def commit(self) -> None:
        self.con.commit()

    def rollback(self) -> None:
        self.con.rollback()


class DryRunExecutor:
    """Reads from the real database, records every change instead of making it."""

    dry_run = True

    def __init__(self, reader: Executor) -> None:
        self.reader = reader
        self.dialect: Dialect = reader.dialect
        self.statements: list[str] = []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.statements.append(sql if not params else f"{sql} -- with {len(params)} parameters")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.reader.query(sql, params)

    def begin(self) -> None:
        self.statements.append("BEGIN")

    def commit(self) -> None:
        self.statements.append("COMMIT")

    def rollback(self) -> None:
        self.statements.append("ROLLBACK")
