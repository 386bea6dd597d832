"""``egregora site``: the site of a thread, written from the database alone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from egregora.cli.output import DbOption, JsonOption, console, emit_json, reported_errors
from egregora.cli.services import existing

app = typer.Typer(help="The site: pages, cards and media, from the database alone.")


@app.command()
def build(
    site: Annotated[Path, typer.Option("--site", help="Write the site (MkDocs layout) into DIR.")],
    thread: Annotated[
        str | None,
        typer.Option("--thread", help="The thread to publish (default: the only one)."),
    ] = None,
    site_name: Annotated[
        str | None,
        typer.Option("--site-name", help="The site's name (default: the one its run chose)."),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Draw the missing cards and write the whole site, media included, on any machine that
    reaches the database: nothing of the export or of the machine that ran it is needed."""
    from egregora.runner.publish import build_site

    with reported_errors(as_json), existing(db) as store:
        planned, published = build_site(store, site, thread=thread, site_name=site_name)
    if as_json:
        emit_json({"thread_id": planned.thread_id, **published.summary()})
        return
    console.print(
        f"site: {site} ({published.files} files, {published.written} written now; "
        f"{published.cards_rendered} cards drawn); browse it with "
        f"`mkdocs serve -f {site / 'mkdocs.yml'}`",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
