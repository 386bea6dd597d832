"""Storage: opening databases, migrating them to the catalog's schema, and checking them."""

from egregora.backends import DatabaseURL, connect_duckdb, connect_postgres
from egregora.storage.documents import Documents
from egregora.storage.setup import (
    database_status,
    migrate_database,
    migration_script,
    open_executor,
    verify,
)
from egregora.storage.store import Storage

__all__ = [
    "DatabaseURL",
    "Documents",
    "Storage",
    "connect_duckdb",
    "connect_postgres",
    "database_status",
    "migrate_database",
    "migration_script",
    "open_executor",
    "verify",
]
