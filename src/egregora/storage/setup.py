"""Create a database at the catalog's schema and check a live one against it."""

from __future__ import annotations

from dataclasses import dataclass

from egregora.ddl.diff import Difference, diff_duckdb
from egregora.ddl.render import catalog_statements
from egregora.errors import SchemaError, UnsupportedBackendError
from egregora.schema.catalog import CATALOG
from egregora.schema.model import Catalog
from egregora.storage.connection import connect_duckdb, connect_postgres
from egregora.storage.url import DatabaseURL

_PG_TABLES = (
    "SELECT table_name FROM information_schema.tables "
    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
)


@dataclass(frozen=True)
class InitResult:
    url: str
    created: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.created)


def _refuse_partial(url: DatabaseURL, existing: set[str], catalog: Catalog) -> None:
    known = existing & set(catalog.names)
    if known:
        raise SchemaError(
            f"{url} already holds egregora tables ({', '.join(sorted(known))}) that do not match "
            f"the catalog; run `egregora db verify --db {url}` to see the differences"
        )


def initialize(url: DatabaseURL, catalog: Catalog = CATALOG) -> InitResult:
    """Create every catalog table in one transaction; a database at the schema is left alone.

    Tables that are not egregora's are left untouched. A database holding some egregora tables
    that differ from the catalog is refused, never dropped or recreated.
    """
    if url.backend == "postgres":
        return _initialize_postgres(url, catalog)
    backend = connect_duckdb(url)
    try:
        con = backend.con
        # Tables that are not egregora's are the user's business, not a difference here.
        if not [d for d in diff_duckdb(catalog, con) if d.kind != "extra_table"]:
            return InitResult(str(url), ())
        tables = con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        existing = {row[0] for row in tables}
        _refuse_partial(url, existing, catalog)
        con.execute("BEGIN TRANSACTION")
        try:
            for statement in catalog_statements(catalog, "duckdb"):
                con.execute(statement)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        return InitResult(str(url), catalog.names)
    finally:
        backend.disconnect()


def _initialize_postgres(url: DatabaseURL, catalog: Catalog) -> InitResult:
    with connect_postgres(url) as con:
        existing = {row[0] for row in con.execute(_PG_TABLES).fetchall()}
        if set(catalog.names) <= existing:
            return InitResult(str(url), ())
        _refuse_partial(url, existing, catalog)
        with con.transaction():
            for statement in catalog_statements(catalog, "postgres"):
                con.execute(statement)
    return InitResult(str(url), catalog.names)


def verify(url: DatabaseURL, catalog: Catalog = CATALOG) -> list[Difference]:
    """Every difference between the live schema at ``url`` and the catalog."""
    if url.backend != "duckdb":
        raise UnsupportedBackendError(
            "verify reads DuckDB's catalog only; PostgreSQL schema introspection is not "
            "available yet: check a DuckDB copy, or compare `egregora db schema --dialect postgres`"
        )
    backend = connect_duckdb(url, read_only=not url.is_memory)
    try:
        return diff_duckdb(catalog, backend.con)
    finally:
        backend.disconnect()
