"""Bring a database to the catalog's schema with migrations, and report on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from egregora.ddl.diff import Difference, diff_duckdb
from egregora.errors import UnsupportedBackendError
from egregora.migrations.engine import MigrateResult, Status, migrate, status
from egregora.migrations.executor import DuckDBExecutor, Executor, PostgresExecutor
from egregora.schema.catalog import CATALOG
from egregora.schema.model import Catalog
from egregora.storage.connection import connect_duckdb, connect_postgres
from egregora.storage.url import DatabaseURL


@contextmanager
def open_executor(
    url: DatabaseURL, *, write: bool, create: bool = False, wait: float = 0.0
) -> Iterator[Executor]:
    """A migration executor on ``url``; DuckDB is opened read-only unless ``write``."""
    if url.backend == "postgres":
        con = connect_postgres(url)
        try:
            yield PostgresExecutor(con)
        finally:
            con.close()
        return
    if not write and not url.is_memory and url.path is not None and not url.path.exists():
        connect_duckdb(url, read_only=True)  # raises the "create it with db init" error
    backend = connect_duckdb(
        url, read_only=not write and not url.is_memory, create=create, timeout=wait
    )
    try:
        yield DuckDBExecutor(backend.con)
    finally:
        backend.disconnect()


def migrate_database(
    url: DatabaseURL,
    *,
    target: str | None = None,
    dry_run: bool = False,
    allow_edited: bool = False,
    wait: float = 0.0,
) -> MigrateResult:
    """Apply pending migrations (a missing DuckDB file is created, except for a dry run)."""
    if dry_run and url.backend == "duckdb" and url.path is not None and not url.path.exists():
        url = DatabaseURL("duckdb")  # plan against an empty database without creating a file
    with open_executor(url, write=not dry_run, create=True, wait=wait) as executor:
        return migrate(
            executor, target=target, dry_run=dry_run, allow_edited=allow_edited, wait=wait
        )


def database_status(url: DatabaseURL) -> Status:
    with open_executor(url, write=False) as executor:
        return status(executor)


def verify(url: DatabaseURL, catalog: Catalog = CATALOG) -> list[Difference]:
    """Every difference between the live schema at ``url`` and the catalog (head)."""
    if url.backend != "duckdb":
        raise UnsupportedBackendError(
            "verify reads DuckDB's catalog only; PostgreSQL schema introspection is not "
            "available yet: check a DuckDB copy, or compare `egregora db schema --dialect postgres`"
        )
    backend = connect_duckdb(url, read_only=not url.is_memory, create=False)
    try:
        return diff_duckdb(catalog, backend.con)
    finally:
        backend.disconnect()
