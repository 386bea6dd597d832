"""The ``schema_migrations`` ledger: reading what was applied and recording a new migration."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

from egregora import __version__
from egregora.ddl import statements as sql
from egregora.errors import MigrationError
from egregora.migrations.executor import Executor
from egregora.schema.tables.ledger import SCHEMA_MIGRATIONS

LEDGER = SCHEMA_MIGRATIONS.name


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
    return executor.table_names()


def read_ledger(executor: Executor) -> list[AppliedMigration]:
    """Applied migrations in id order; empty when the ledger does not exist yet.

    A ``schema_migrations`` table another tool made (Rails, dbmate and golang-migrate use the
    name) is refused before it is read or written.
    """
    if LEDGER not in existing_tables(executor):
        return []
    columns = list(SCHEMA_MIGRATIONS.column_names)
    found = executor.column_names(LEDGER)
    if set(found) != set(columns):
        raise MigrationError(
            f"the table {LEDGER} in this database was not made by egregora (its columns are "
            f"{', '.join(found)}); another tool keeps its migrations there. Give egregora a "
            "schema of its own (for PostgreSQL: ?options=-csearch_path%3Degregora in the URL, "
            "after CREATE SCHEMA egregora) or another database"
        )
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
