"""``egregora export``: one table as a Parquet or CSV file, for analysts and other tools."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from egregora.cli.output import DbOption, JsonOption, console, emit_json, reported_errors
from egregora.constants import EXPORT_FORMATS

# The formats, as --format choices (declared once, beside the other shared values).
FormatName = StrEnum("FormatName", {name: name for name in EXPORT_FORMATS})  # type: ignore[misc]


def export(
    table: Annotated[str, typer.Argument(help="A table of the catalog (egregora db schema).")],
    fmt: Annotated[
        FormatName, typer.Option("--format", help="The file's format.")
    ] = FormatName.parquet,  # type: ignore[attr-defined]
    out: Annotated[
        Path | None,
        typer.Option("--out", help="The file to write (default: TABLE.FORMAT in this folder)."),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace the file when it exists.")
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write every row of TABLE to a Parquet or CSV file, a batch at a time."""
    from egregora.storage.export import export_table
    from egregora.storage.store import Storage

    chosen = next(f for f in EXPORT_FORMATS if f == fmt.value)  # typed as the formats are
    target = out if out is not None else Path(f"{table}.{chosen}")
    with reported_errors(as_json), Storage.open(db, read_only=True) as store:
        done = export_table(store, table, target, chosen, replace=replace)
    if as_json:
        emit_json(done.to_dict())
        return
    console.print(
        f"{done.table}: {done.rows:,} rows written to {done.path} ({done.format}, "
        f"{done.bytes:,} bytes)",
        highlight=False,
        markup=False,
    )
