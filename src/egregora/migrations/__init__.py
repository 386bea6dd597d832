"""Versioned, idempotent migrations: the engine, the ledger, and the shipped versions."""

from egregora.migrations.engine import MigrateResult, Status, migrate, migration_lock, status
from egregora.migrations.executor import DryRunExecutor, DuckDBExecutor, Executor, PostgresExecutor
from egregora.migrations.model import AddColumns, AddRule, CreateCatalog, Migration, Operation
from egregora.migrations.registry import catalog_at, shipped_migrations

__all__ = [
    "AddColumns",
    "AddRule",
    "CreateCatalog",
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
