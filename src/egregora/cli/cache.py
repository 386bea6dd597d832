"""``egregora cache``: what the asset cache holds, and making room in it."""

from __future__ import annotations

from typing import Annotated

import typer

from egregora.cli.output import DbOption, JsonOption, console, emit_json, reported_errors
from egregora.cli.services import existing, human_size, parse_size

app = typer.Typer(help="The asset cache: social cards and other generated or fetched files.")

KindOption = Annotated[
    str | None, typer.Option("--kind", help="Only assets of this kind (for example social_card).")
]


@app.command()
def stats(kind: KindOption = None, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Entries, bytes, hits and expired entries, per kind."""
    from rich.table import Table

    from egregora.assets import AssetCache

    with reported_errors(as_json), existing(db) as store:
        result = AssetCache(store).stats(kind)
    if as_json:
        emit_json(result.as_json())
        return
    table = Table("kind", "entries", "bytes", "hits", "expired")
    for name, k in result.by_kind.items():
        table.add_row(name, str(k.entries), human_size(k.bytes), str(k.hits), str(k.expired))
    table.add_row(
        "total",
        str(result.entries),
        human_size(result.bytes),
        str(result.hits),
        str(result.expired),
        style="bold",
    )
    console.print(table)


@app.command()
def evict(
    budget: Annotated[
        str | None,
        typer.Option(
            "--budget",
            help="Then drop least recently used entries until this size is left (500MB, 2GiB).",
        ),
    ] = None,
    kind: KindOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Drop expired entries, then (with --budget) the least recently used beyond the budget."""
    from egregora.assets import AssetCache

    with reported_errors(as_json), existing(db) as store:
        limit = None if budget is None else parse_size(budget)
        result = AssetCache(store).evict(limit, kind=kind)
    if as_json:
        emit_json(
            {
                "expired": result.expired,
                "evicted": result.evicted,
                "bytes_freed": result.bytes_freed,
                "bytes_left": result.bytes_left,
            }
        )
        return
    console.print(
        f"dropped {result.expired} expired and {result.evicted} least recently used "
        f"entries, {human_size(result.bytes_freed)} freed; {human_size(result.bytes_left)} left",
        highlight=False,
    )


@app.command()
def clear(kind: KindOption = None, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Delete every cached asset (or every one of --kind); they are made again when needed."""
    from egregora.assets import AssetCache

    with reported_errors(as_json), existing(db) as store:
        removed = AssetCache(store).clear(kind)
    if as_json:
        emit_json({"removed": removed, "kind": kind})
        return
    console.print(f"removed {removed} cached asset(s)", highlight=False)
