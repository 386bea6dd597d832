"""SQL from the catalog: DDL rendering per dialect, live-schema introspection and diffing."""

from egregora.ddl.render import (
    DIALECTS,
    Dialect,
    catalog_script,
    catalog_statements,
    create_indexes,
    create_table,
    table_statements,
)

__all__ = [
    "DIALECTS",
    "Dialect",
    "catalog_script",
    "catalog_statements",
    "create_indexes",
    "create_table",
    "table_statements",
]
