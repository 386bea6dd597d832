"""Versioned, idempotent migrations: the engine, the ledger, and the shipped versions."""

from egregora.migrations.engine import MigrateResult, Status, migrate, migration_lock, status
from egregora.migrations.executor import DryRunExecutor, DuckDBExecutor, Executor, PostgresExecutor
from egregora.migrations.model import (
    AddColumns,
    AddIndex,
    AddRule,
    CreateCatalog,
    DropUnique,
    Migration,
    Operation,
)
from egregora.migrations.registry import catalog_at, shipped_migrations

__all__ = [
    "AddColumns",
    "AddIndex",
    "AddRule",
    "CreateCatalog",
    "DropUnique",
    "DryRunExecutor",
    "DuckDBExecutor",
    "Executor",
    "MigrateResult",
    "Migration",
    "Operation",
    "PostgresExecutor",
    "Status",
    "catalog_at",
    "migrate",
    "migration_lock",
    "shipped_migrations",
    "status",
]
