"""The ``schema_migrations`` ledger: reading what was applied and recording a new migration."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

from egregora import __version__
from egregora.ddl import statements as sql
from egregora.migrations.executor import Executor
from egregora.schema.tables.ledger import SCHEMA_MIGRATIONS

LEDGER = SCHEMA_MIGRATIONS.name

_TABLES = {
    "duckdb": "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
    "AND schema_name = current_schema()",
    "postgres": "SELECT table_name FROM information_schema.tables "
    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
}


@dataclass(frozen=True)
class AppliedMigration:
    id: str
    description: str
    checksum: str
    applied_at: datetime
    duration_ms: int
    applied_by_host: str
    applied_by_pid: int
    egregora_version: str


def existing_tables(executor: Executor) -> set[str]:
    return {row[0] for row in executor.query(_TABLES[executor.dialect])}


def read_ledger(executor: Executor) -> list[AppliedMigration]:
    """Applied migrations in id order; empty when the ledger does not exist yet."""
    if LEDGER not in existing_tables(executor):
        return []
    columns = list(SCHEMA_MIGRATIONS.column_names)
    rows = executor.query(sql.select_rows(LEDGER, columns, executor.dialect, order_by=["id"]))
    return [AppliedMigration(*row) for row in rows]


def record(
    executor: Executor, migration_id: str, description: str, checksum: str, duration_ms: int
) -> None:
    row = {
        "id": migration_id,
        "description": description,
        "checksum": checksum,
        "applied_at": datetime.now(UTC),
        "duration_ms": duration_ms,
        "applied_by_host": socket.gethostname(),
        "applied_by_pid": os.getpid(),
        "egregora_version": __version__,
    }
    executor.execute(sql.insert_values(LEDGER, list(row), executor.dialect), list(row.values()))
