"""``egregora db``: create a database, check it against the catalog, print the schema."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from egregora.cli.output import DbOption, JsonOption, console, emit_json, reported_errors
from egregora.constants import DIALECTS
from egregora.errors import SchemaError

if TYPE_CHECKING:
    from egregora.ddl.diff import Difference
    from egregora.migrations.engine import MigrateResult
    from egregora.storage.integrity import RowsReport

app = typer.Typer(help="Create, check and describe the database.", no_args_is_help=True)


class SchemaFormat(StrEnum):
    sql = "sql"
    mermaid = "mermaid"
    json = "json"
    markdown = "markdown"


# The engines egregora speaks, as --dialect choices (declared once, with the DDL's dialects).
DialectName = StrEnum("DialectName", {name: name for name in DIALECTS})  # type: ignore[misc]


WaitOption = Annotated[
    float,
    typer.Option(
        "--wait", min=0, help="Retry for up to SECONDS while another process holds the database."
    ),
]


@app.command()
def init(db: DbOption = None, as_json: JsonOption = False, wait: WaitOption = 0.0) -> None:
    """Create a database at the latest schema (migrate to head; an existing one is left as is)."""
    from egregora.backends import DatabaseURL
    from egregora.storage.setup import migrate_database

    with reported_errors(as_json, waits=True):
        url = DatabaseURL.parse(db)
        result = migrate_database(url, wait=wait)
    _print_migration(str(url), result, as_json)


@app.command("migrate")
def migrate_command(
    db: DbOption = None,
    as_json: JsonOption = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the SQL the database needs; change nothing."),
    ] = False,
    sql: Annotated[
        bool,
        typer.Option(
            "--sql",
            help="Print the SQL from --from to --to without reading any database "
            "(an offline script, for a database you cannot reach from here).",
        ),
    ] = False,
    from_id: Annotated[
        str | None,
        typer.Option(
            "--from", help="With --sql: the migration the database is at (default: empty)."
        ),
    ] = None,
    dialect: Annotated[
        DialectName | None,
        typer.Option(
            "--dialect", help="With --sql: the engine to write for (default: the engine of --db)."
        ),
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="Stop after this migration id.")] = None,
    allow_edited: Annotated[
        bool,
        typer.Option("--allow-edited", help="Migrate even though an applied migration changed."),
    ] = False,
    wait: WaitOption = 0.0,
) -> None:
    """Apply pending migrations in order, each in its own transaction with its ledger row."""
    from egregora.backends import DatabaseURL
    from egregora.storage.setup import migrate_database, migration_script

    _refuse_mixed_modes(sql, from_id, dialect, dry_run, allow_edited, wait)
    with reported_errors(as_json, waits=not sql):
        if sql:  # the URL only names the engine: it is never opened
            engine = dialect.value if dialect is not None else DatabaseURL.parse(db).dialect
            result = migration_script(engine, from_id=from_id, target=to)
            _print_migration("", result, as_json)
            return
        url = DatabaseURL.parse(db)
        result = migrate_database(
            url, target=to, dry_run=dry_run, allow_edited=allow_edited, wait=wait
        )
    _print_migration(str(url), result, as_json)


def _refuse_mixed_modes(
    sql: bool,
    from_id: str | None,
    dialect: DialectName | None,
    dry_run: bool,
    allow_edited: bool,
    wait: float,
) -> None:
    """--from and --dialect belong to --sql; the options that read a database do not."""
    if not sql:
        planned = {"--from": from_id is not None, "--dialect": dialect is not None}
        for option, used in planned.items():
            if used:
                raise typer.BadParameter(
                    f"{option} plans a script without a database: add --sql", param_hint=option
                )
        return
    mixed = {"--dry-run": dry_run, "--allow-edited": allow_edited, "--wait": bool(wait)}
    for option, used in mixed.items():
        if used:
            raise typer.BadParameter(
                f"{option} is about a database, and --sql reads none: drop one of them",
                param_hint=option,
            )


def _print_migration(url: str, result: MigrateResult, as_json: bool) -> None:
    if as_json:
        emit_json(result.to_dict())
        return
    if result.offline:
        typer.echo(
            f"-- egregora db migrate --sql: {result.dialect}, from "
            f"{result.from_id or 'an empty database'} to {result.to_id or 'nothing'}, "
            "planned without a database"
        )
    if result.dry_run:
        for statement in result.statements:
            typer.echo(f"{statement};")
        pending = ", ".join(result.applied) or "nothing"
        if result.offline:
            typer.echo(
                f"-- applies {pending}; run it in one session: each migration is one transaction"
            )
        else:
            typer.echo(f"-- dry run: would apply {pending}; nothing was changed")
    elif result.applied:
        console.print(
            f"Migrated {url} from {result.from_id or 'empty'} to {result.to_id}: "
            f"applied {', '.join(result.applied)}.",
            markup=False,
        )
    else:
        console.print(
            f"{url} is at {result.to_id}, the latest schema; nothing to do.", markup=False
        )


@app.command("status")
def status_command(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Current migration, applied and pending ones, schema fingerprint, and any drift."""
    from egregora.backends import DatabaseURL
    from egregora.storage.setup import database_status

    with reported_errors(as_json):
        url = DatabaseURL.parse(db)
        report = database_status(url)
    if as_json:
        emit_json(report.to_dict())
    else:
        console.print(f"database:    {url}", markup=False)
        console.print(f"current:     {report.current or 'none (empty database)'}", markup=False)
        console.print(f"head:        {report.head}", markup=False)
        console.print(
            f"applied:     {', '.join(a.id for a in report.applied) or 'none'}", markup=False
        )
        console.print(f"pending:     {', '.join(report.pending) or 'none'}", markup=False)
        console.print(f"fingerprint: {report.fingerprint}", markup=False)
        for name in report.edited:
            console.print(
                f"drift: applied migration {name} was edited since it was applied", markup=False
            )
        for name in report.unknown:
            console.print(
                f"drift: applied migration {name} is unknown to this egregora", markup=False
            )
        for d in report.differences:
            console.print(f"drift: {d.message}", markup=False)
        if not report.drift:
            console.print("drift:       none", markup=False)
    if report.drift:
        raise typer.Exit(1)


@app.command("history")
def history_command(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every migration, oldest first: applied (when, by which egregora), pending, edited since
    it was applied, or unknown to this egregora."""
    from egregora.backends import DatabaseURL
    from egregora.storage.setup import database_history

    with reported_errors(as_json):
        url = DatabaseURL.parse(db)
        entries = database_history(url)
    if as_json:
        emit_json({"database": str(url), "migrations": [e.to_dict() for e in entries]})
        return
    for entry in entries:
        done = entry.applied
        when = (
            f"applied {done.applied_at:%Y-%m-%d %H:%M:%S %Z} by egregora {done.egregora_version}"
            if done is not None
            else "not applied"
        )
        console.print(
            f"{entry.id}  {entry.state:<8} {when}  {entry.description}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@app.command("verify")
def verify_command(
    db: DbOption = None,
    as_json: JsonOption = False,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Also read every row of every table (slower: the whole database is read), "
            "to find damaged data the schema check cannot see; exit 1 when a table is damaged.",
        ),
    ] = False,
) -> None:
    """Exit 0 when the live schema equals the catalog; otherwise list every difference, exit 1."""
    from egregora.backends import DatabaseURL
    from egregora.storage.integrity import read_every_row
    from egregora.storage.setup import verify

    with reported_errors(as_json):
        url = DatabaseURL.parse(db)
        differences = verify(url)
        rows = read_every_row(url) if deep else None
    damaged = bool(rows and rows.damaged)
    if as_json:
        payload: dict[str, object] = {
            "ok": not differences and not damaged,
            "differences": [d.to_dict() for d in differences],
        }
        emit_json(payload | (rows.to_dict() if rows else {}))
    else:
        _print_differences(str(url), differences)
        if rows is not None:
            _print_rows(str(url), rows)
    if differences or damaged:
        raise typer.Exit(1)


def _print_differences(url: str, differences: list[Difference]) -> None:
    from egregora.schema.catalog import CATALOG

    if not differences:
        console.print(
            f"[green]ok[/green]: {escape(url)} matches the catalog ({len(CATALOG)} tables).",
            soft_wrap=True,
        )
        return
    console.print(
        f"[red]{len(differences)} difference(s)[/red] between {escape(url)} and the catalog:",
        soft_wrap=True,
    )
    for d in differences:
        console.print(f"  - {d.message}", markup=False, highlight=False, soft_wrap=True)


def _print_rows(url: str, rows: RowsReport) -> None:
    counts = ", ".join(f"{t.table} {t.rows}" for t in rows.healthy) or "none"
    if not rows.damaged:
        console.print(
            f"[green]ok[/green]: read every row of {len(rows.tables)} tables ({counts}).",
            soft_wrap=True,
            highlight=False,
        )
        return
    console.print(
        f"[red]{len(rows.damaged)} table(s) could not be read whole[/red] in {escape(url)}, "
        "for the engine's reason below (damaged data: restore it from a backup):",
        soft_wrap=True,
    )
    for t in rows.damaged:
        console.print(f"  - {t.table}: {t.error}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"read whole: {counts}.", markup=False, highlight=False, soft_wrap=True)


@app.command()
def schema(
    fmt: Annotated[
        SchemaFormat, typer.Option("--format", help="DDL, ER diagram, catalog data or reference.")
    ] = SchemaFormat.sql,
    dialect: Annotated[
        DialectName | None,
        typer.Option(help="SQL dialect for --format sql (default: the --db backend's)."),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the catalog as DDL, a Mermaid ER diagram, JSON, or the Markdown reference."""
    from egregora.backends import DatabaseURL, backend_named
    from egregora.ddl.render import catalog_script
    from egregora.schema.catalog import CATALOG
    from egregora.schema.reference import catalog_json, markdown, mermaid

    with reported_errors(as_json):
        chosen = dialect.value if dialect else DatabaseURL.parse(db).dialect
    if fmt is SchemaFormat.json:
        text = json.dumps(catalog_json(CATALOG), indent=2) + "\n"
    elif fmt is SchemaFormat.mermaid:
        text = mermaid(CATALOG)
    elif fmt is SchemaFormat.markdown:
        text = markdown(CATALOG)
    else:
        text = catalog_script(CATALOG, backend_named(chosen).name)
    if as_json:
        payload = catalog_json(CATALOG) if fmt is SchemaFormat.json else {"text": text}
        emit_json({"format": fmt.value, "dialect": chosen, **payload})
    else:
        typer.echo(text, nl=False)


@app.command("key")
def key_command(
    db: DbOption = None,
    as_json: JsonOption = False,
    reveal: Annotated[
        bool,
        typer.Option(
            "--reveal",
            help="Print the secret too, to give another database the same key "
            "(whoever holds it can test guessed names against pseudonyms).",
        ),
    ] = False,
) -> None:
    """Show the database's pseudonym key: its id, where it came from, and since when."""
    from egregora.backends import DatabaseURL
    from egregora.migrations.keyed import read_key
    from egregora.storage.setup import open_executor

    with reported_errors(as_json):
        url = DatabaseURL.parse(db)
        with open_executor(url, write=False) as executor:
            stored = read_key(executor)
        if stored is None:
            raise SchemaError(f"{url} has no pseudonym key yet; run `egregora db migrate`")
    shown: dict[str, object] = {
        "key_id": stored.key_id,
        "origin": stored.origin,
        "created_at": stored.created_at.isoformat(),
    }
    if reveal:
        shown["secret"] = stored.secret.hex()
    if as_json:
        emit_json(shown)
        return
    for name, value in shown.items():
        console.print(f"{name + ':':<12}{value}", markup=False)


@app.command("rekey")
def rekey_command(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Give the database a new pseudonym key and rewrite every pseudonym it stores.

    The key is EGREGORA_PSEUDONYM_KEY when set (so databases given the same key agree),
    else a new random one. Write the site again afterwards: its pages change names.
    """
    from egregora.backends import DatabaseURL
    from egregora.runner.rekey import rekey_database  # the runner knows where names hide

    with reported_errors(as_json):
        url = DatabaseURL.parse(db)
        result = rekey_database(url)
    if as_json:
        emit_json(result.to_dict())
        return
    console.print(
        f"Re-keyed {url}: key {result.old_key_id} -> {result.key_id} ({result.origin}); "
        f"{result.members} pseudonyms in {result.threads} threads rewritten. Run "
        "`egregora run` with --site again to rewrite the site's pages.",
        markup=False,
    )
