"""``egregora ingest``: a WhatsApp export (.zip or .txt) into the database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from egregora.cli.output import DbOption, JsonOption, console, emit_json, reported_errors
from egregora.constants import DATE_ORDERS, DateOrder
from egregora.errors import ConfigurationError

# The options saying how to read an export (`egregora ingest` and `egregora run` share them).
ExportArgument = Annotated[
    Path, typer.Argument(help="The exported .zip (chat and media) or the .txt.")
]
TzOption = Annotated[
    str | None,
    typer.Option("--tz", help="IANA zone the export's times are in (default: this machine's)."),
]
ThreadOption = Annotated[
    str | None,
    typer.Option("--thread", help="Name of the chat (default: from the export's file name)."),
]
DateOrderOption = Annotated[
    str | None,
    typer.Option(
        "--date-order",
        help=f"{' or '.join(DATE_ORDERS)}, for an export whose dates read both ways "
        "(it says so when needed).",
    ),
]


def ingest(
    path: ExportArgument,
    tz: TzOption = None,
    thread: ThreadOption = None,
    date_order: DateOrderOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Read a WhatsApp export into `messages` (media into `documents`); new messages only."""
    from egregora.etl import ingest_export
    from egregora.etl.ingest import check_ingest_input
    from egregora.runs import RunStore
    from egregora.storage.store import Storage

    with reported_errors(as_json):
        order = parse_date_order(date_order)
        check_ingest_input(path, tz)  # refused before a database file is made
        with Storage.open(db) as store:
            store.ensure_schema()
            if as_json:
                result = ingest_export(
                    store, path, tz=tz, thread=thread, date_order=order, runs=RunStore(store)
                )
            else:
                with console.status("ingesting") as status:
                    result = ingest_export(
                        store,
                        path,
                        tz=tz,
                        thread=thread,
                        date_order=order,
                        runs=RunStore(store),
                        progress=lambda step: status.update(f"ingesting {path.name}: {step}"),
                    )
    if as_json:
        emit_json(result.summary())
        return
    guessed = " (from the order of the messages)" if result.date_order_guessed else ""
    reread = f", {result.reread} read better than before" if result.reread else ""
    console.print(
        f"{result.thread_id}: {result.messages} messages in the export, {result.new} new"
        f"{reread}, {result.duplicates} already stored; {result.authors} authors, "
        f"{result.media} media, "
        f"{result.system} system notices; {result.media_files_new} of {result.media_files} "
        f"media files stored; dates read {result.date_order}{guessed}, times in {result.timezone}",
        highlight=False,
        markup=False,
    )


def parse_date_order(text: str | None) -> DateOrder | None:
    if text is None:
        return None
    for order in DATE_ORDERS:
        if text.lower() == order:
            return order
    raise ConfigurationError(f"--date-order must be {' or '.join(DATE_ORDERS)}, not {text!r}")
