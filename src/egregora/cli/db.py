"""``egregora db``: create a database, check it against the catalog, print the schema."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

from egregora.cli.output import DbOption, JsonOption, console, emit_json, reported_errors
from egregora.ddl.render import catalog_script
from egregora.schema.catalog import CATALOG
from egregora.schema.reference import catalog_json, markdown, mermaid
from egregora.storage.setup import initialize, verify
from egregora.storage.url import DatabaseURL

app = typer.Typer(help="Create, check and describe the database.", no_args_is_help=True)


class SchemaFormat(StrEnum):
    sql = "sql"
    mermaid = "mermaid"
    json = "json"
    markdown = "markdown"


class DialectName(StrEnum):
    duckdb = "duckdb"
    postgres = "postgres"


@app.command()
def init(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Create a database at the latest schema (a database already there is left unchanged)."""
    with reported_errors(as_json):
        url = DatabaseURL.parse(db)
        result = initialize(url)
    if as_json:
        emit_json({"ok": True, "db": result.url, "created": list(result.created)})
    elif result.changed:
        console.print(f"Created {len(result.created)} tables in [bold]{result.url}[/bold].")
    else:
        console.print(
            f"[bold]{result.url}[/bold] is already at the catalog's schema; nothing to do."
        )


@app.command("verify")
def verify_command(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Exit 0 when the live schema equals the catalog; otherwise list every difference, exit 1."""
    with reported_errors(as_json):
        url = DatabaseURL.parse(db)
        differences = verify(url)
    if as_json:
        emit_json({"ok": not differences, "differences": [d.to_dict() for d in differences]})
    elif not differences:
        console.print(f"[green]ok[/green]: {url} matches the catalog ({len(CATALOG)} tables).")
    else:
        console.print(
            f"[red]{len(differences)} difference(s)[/red] between {url} and the catalog:",
            soft_wrap=True,
        )
        for d in differences:
            console.print(f"  - {d.message}", markup=False, highlight=False, soft_wrap=True)
    if differences:
        raise typer.Exit(1)


@app.command()
def schema(
    fmt: Annotated[
        SchemaFormat, typer.Option("--format", help="DDL, ER diagram, catalog data or reference.")
    ] = SchemaFormat.sql,
    dialect: Annotated[
        DialectName | None,
        typer.Option(help="SQL dialect for --format sql [default: the --db backend's]."),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the catalog as DDL, a Mermaid ER diagram, JSON, or the Markdown reference."""
    with reported_errors(as_json):
        chosen = dialect.value if dialect else DatabaseURL.parse(db).backend
    if fmt is SchemaFormat.json:
        text = json.dumps(catalog_json(CATALOG), indent=2) + "\n"
    elif fmt is SchemaFormat.mermaid:
        text = mermaid(CATALOG)
    elif fmt is SchemaFormat.markdown:
        text = markdown(CATALOG)
    else:
        text = catalog_script(CATALOG, "postgres" if chosen == "postgres" else "duckdb")
    if as_json:
        payload = catalog_json(CATALOG) if fmt is SchemaFormat.json else {"text": text}
        emit_json({"format": fmt.value, "dialect": chosen, **payload})
    else:
        typer.echo(text, nl=False)
