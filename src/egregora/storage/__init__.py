"""Storage: opening databases, creating them at the catalog's schema, and checking them."""

from egregora.storage.connection import connect_duckdb, connect_postgres
from egregora.storage.setup import InitResult, initialize, verify
from egregora.storage.url import DatabaseURL

__all__ = [
    "DatabaseURL",
    "InitResult",
    "connect_duckdb",
    "connect_postgres",
    "initialize",
    "verify",
]
