"""One table of the database as a Parquet or CSV file, for analysts and other tools.

The table is read a batch at a time (as ``db verify --deep`` reads it), so memory holds one
batch whatever the table's size, and written under a draft name renamed into place at the
end: the file is there whole or not at all. An existing file is never replaced unless asked.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from egregora.constants import EXPORT_FORMATS, ExportFormat
from egregora.drafts import new_draft
from egregora.errors import ConfigurationError
from egregora.schema.catalog import CATALOG
from egregora.storage.integrity import rows_per_batch
from egregora.storage.store import Storage


@dataclass(frozen=True)
class Exported:
    """What ``export_table`` wrote."""

    table: str
    path: Path
    format: ExportFormat
    rows: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "path": str(self.path),
            "format": self.format,
            "rows": self.rows,
            "bytes": self.bytes,
        }


def export_table(
    store: Storage, name: str, out: Path, fmt: ExportFormat = "parquet", *, replace: bool = False
) -> Exported:
    """Write every row of the catalog table ``name`` to ``out`` as ``fmt``.

    Refused before anything is read: a table the catalog does not hold, a format not in
    ``EXPORT_FORMATS``, CSV for a table with binary columns (CSV has no bytes), and an existing
    ``out`` unless ``replace``."""
    try:
        table = CATALOG[name]
    except KeyError as exc:
        raise ConfigurationError(str(exc.args[0])) from None
    if fmt not in EXPORT_FORMATS:
        raise ConfigurationError(f"unknown format {fmt!r}; give one of {', '.join(EXPORT_FORMATS)}")
    binary = [c.name for c in table.columns if c.dtype.is_binary()]
    if fmt == "csv" and binary:
        raise ConfigurationError(
            f"{name} has binary columns ({', '.join(binary)}), which CSV cannot hold; "
            "export it with --format parquet"
        )
    if out.exists() and not replace:
        raise _taken(out)
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigurationError(f"no folder {folder} to write {out.name} in; create it first")
    expr = store.table(name)
    handle, draft = new_draft(folder)  # with the user's umask, as the export will be
    os.close(handle)
    rows = 0
    try:
        reader = store.ibis.to_pyarrow_batches(expr, chunk_size=rows_per_batch(table))
        try:
            with _Writer(draft, reader.schema, fmt) as write:
                for batch in reader:
                    write(batch.cast(reader.schema))  # the engine's list names, nullability
                    rows += batch.num_rows
        finally:
            reader.close()
        _put(draft, out, replace=replace)
    finally:
        draft.unlink(missing_ok=True)
    return Exported(name, out, fmt, rows, out.stat().st_size)


def _taken(out: Path) -> ConfigurationError:
    return ConfigurationError(f"{out} exists; choose another --out, or pass --replace")


def _put(draft: Path, out: Path, *, replace: bool) -> None:
    """Give the finished draft its name: over ``out`` only when asked, else linked under a
    name nobody has taken meanwhile (a link never replaces a file)."""
    if replace:
        os.replace(draft, out)
        return
    try:
        os.link(draft, out)
    except FileExistsError:
        raise _taken(out) from None


class _Writer:
    """A Parquet or CSV writer of record batches, closed (its footer written) on exit. CSV
    has no lists: a list column (a document's authors, tags) is written as JSON text."""

    def __init__(self, path: Path, schema: pa.Schema, fmt: ExportFormat) -> None:
        self.lists = [i for i, f in enumerate(schema) if pa.types.is_list(f.type)]
        self.csv = fmt == "csv"
        if not self.csv:
            self.out: Any = pq.ParquetWriter(path, schema)
            return
        for i in self.lists:
            schema = schema.set(i, pa.field(schema.field(i).name, pa.string()))
        self.schema = schema
        self.out = pacsv.CSVWriter(path, schema)

    def write(self, batch: pa.RecordBatch) -> None:
        if self.csv and self.lists:
            columns = list(batch.columns)
            for i in self.lists:
                values = columns[i].to_pylist()
                columns[i] = pa.array([None if v is None else json.dumps(v) for v in values])
            batch = pa.RecordBatch.from_arrays(columns, schema=self.schema)
        self.out.write_batch(batch)

    def __enter__(self) -> Any:
        return self.write

    def __exit__(self, *exc: object) -> None:
        self.out.close()
