"""Bring a database to the catalog's schema with migrations, and report on it."""

from __future__ import annotations

from contextlib import AbstractContextManager

from egregora.backends import DatabaseURL, Executor, backend_named
from egregora.ddl.diff import Difference, diff_schemas
from egregora.migrations.engine import (
    HistoryEntry,
    MigrateResult,
    Status,
    history,
    migrate,
    status,
)
from egregora.migrations.offline import plan_script
from egregora.schema.catalog import CATALOG
from egregora.schema.model import Catalog


def open_executor(
    url: DatabaseURL, *, write: bool, create: bool = False, wait: float = 0.0
) -> AbstractContextManager[Executor]:
    """A migration executor on ``url`` (DuckDB is opened read-only unless ``write``)."""
    return url.backend.open_executor(url, write=write, create=create, wait=wait)


def migrate_database(
    url: DatabaseURL,
    *,
    target: str | None = None,
    dry_run: bool = False,
    allow_edited: bool = False,
    wait: float = 0.0,
) -> MigrateResult:
    """Apply pending migrations (a missing DuckDB file is created, except for a dry run)."""
    backend = url.backend
    if dry_run:
        opened = backend.open_planner(url, wait=wait)
    else:
        opened = backend.open_executor(url, write=True, create=True, wait=wait)
    with opened as executor:
        return migrate(
            executor, target=target, dry_run=dry_run, allow_edited=allow_edited, wait=wait
        )


def migration_script(
    dialect: str, *, from_id: str | None = None, target: str | None = None
) -> MigrateResult:
    """The SQL that migrates a ``dialect`` database from ``from_id`` (None: an empty one) to
    ``target``, planned without any database (see ``migrations.offline``)."""
    return plan_script(backend_named(dialect), from_id=from_id, target=target)


def database_history(url: DatabaseURL) -> list[HistoryEntry]:
    """Every migration shipped with this egregora or applied to ``url``, in order."""
    with open_executor(url, write=False) as executor:
        return history(executor)


def database_status(url: DatabaseURL) -> Status:
    with open_executor(url, write=False) as executor:
        return status(executor)


def verify(url: DatabaseURL, catalog: Catalog = CATALOG) -> list[Difference]:
    """Every difference between the live schema at ``url`` and the catalog (head)."""
    with open_executor(url, write=False) as executor:
        backend = executor.backend
        expected = backend.expected_schema(catalog, executor)
        return diff_schemas(expected, backend.introspect(executor))
