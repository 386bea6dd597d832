"""Reading every row of every table, to find the damage a schema check cannot see.

``verify`` compares the engine's catalog with ours and never reads a row: a data block whose
bytes changed on disk (a failing disk, a copy cut short) passes it and fails only when that
table is read, perhaps in the middle of a run. ``read_every_row`` reads each catalog table
whole, all columns, in batches (memory holds one batch, not a table), catches the engine's
error per table, and reports each damaged table with the engine's own message beside the row
counts of the healthy ones. It opens the database read-only and changes nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from egregora.backends import DatabaseURL
from egregora.schema.catalog import CATALOG
from egregora.schema.model import Catalog, Table
from egregora.storage.store import Storage

# Rows per batch: enough that a batch costs little beside its rows, few enough that memory
# holds tens of megabytes whatever the table.
ROWS_PER_BATCH = 10_000
# Rows per batch of a table with a binary column, whose values may be a 4 MiB media part
# each (``MEDIA_PART_BYTES``), which the driver holds several times over while it converts
# them (measured on PostgreSQL: about 30 MiB a row, as hexadecimal text, bytes, then Arrow;
# 16 rows took 730 MiB): two at a time keep reading within about 60 MiB of that.
BINARY_ROWS_PER_BATCH = 2

_PASSED_ON = (OSError, pa.ArrowException)


@dataclass(frozen=True)
class TableRead:
    """One table read whole (``error`` None), or how far its reading got and why it stopped."""

    table: str
    rows: int
    error: str | None = None

    @property
    def damaged(self) -> bool:
        return self.error is not None


@dataclass(frozen=True)
class RowsReport:
    """Every catalog table the database holds, read whole or not."""

    tables: tuple[TableRead, ...]

    @property
    def damaged(self) -> list[TableRead]:
        return [t for t in self.tables if t.damaged]

    @property
    def healthy(self) -> list[TableRead]:
        return [t for t in self.tables if not t.damaged]

    def to_dict(self) -> dict[str, Any]:
        return {
            "damaged": [
                {"table": t.table, "error": t.error, "rows_read": t.rows} for t in self.damaged
            ],
            "rows": {t.table: t.rows for t in self.healthy},
        }


def read_every_row(url: DatabaseURL, catalog: Catalog = CATALOG) -> RowsReport:
    """Read every row of every table of ``catalog`` that the database at ``url`` holds (a
    missing one is ``verify``'s to report). An error that is not the engine's (a lost server,
    a statement past its timeout) ends the reading as it would any command."""
    with Storage.open(_location(url), read_only=True, create=False) as store:
        present = store.engine.table_names(store.executor())
        return RowsReport(tuple(_read(store, t) for t in catalog if t.name in present))


def _location(url: DatabaseURL) -> str:
    """The ``--db`` value that opens ``url`` again (``str(url)`` hides a password)."""
    if url.dsn is not None:
        return url.dsn
    return os.fspath(url.path) if url.path is not None else ":memory:"


def _read(store: Storage, table: Table) -> TableRead:
    """Count ``table``'s rows by reading all of them; the engine's error stops the count."""
    rows = 0
    try:
        expr = store.ibis.table(table.name)  # as stored, whatever verify says of its columns
        reader = store.ibis.to_pyarrow_batches(expr, chunk_size=rows_per_batch(table))
        try:
            for batch in reader:
                rows += batch.num_rows
        finally:
            reader.close()
    except Exception as exc:
        # The engine's error, raised by its driver, or passed on by Arrow's stream reader as
        # an OSError or an Arrow error carrying the engine's message.
        if not (store.engine.is_driver_error(exc) or isinstance(exc, _PASSED_ON)):
            raise
        return TableRead(table.name, rows, " ".join(str(exc).split()) or type(exc).__name__)
    return TableRead(table.name, rows)


def rows_per_batch(table: Table) -> int:
    binary = any(column.dtype.is_binary() for column in table.columns)
    return BINARY_ROWS_PER_BATCH if binary else ROWS_PER_BATCH
