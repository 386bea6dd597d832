"""``egregora site``: the site of a thread, written from the database alone."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from egregora.cli.output import DbOption, JsonOption, console, emit_json, fail, reported_errors
from egregora.cli.services import existing
from egregora.errors import ConfigurationError

app = typer.Typer(help="The site: pages, cards and media, from the database alone.")

# What the written site builds with (the `site` extra): MkDocs, its theme and its feed.
SITE_MODULES = ("mkdocs", "material", "mkdocs_rss_plugin")
SiteOption = Annotated[
    Path, typer.Option("--site", help="Write the site (MkDocs layout) into DIR.")
]
ThreadOption = Annotated[
    str | None, typer.Option("--thread", help="The thread to publish (default: the only one).")
]
SiteNameOption = Annotated[
    str | None,
    typer.Option("--site-name", help="The site's name (default: the one its run chose)."),
]
SiteUrlOption = Annotated[
    str | None,
    typer.Option(
        "--site-url",
        help="Where the site is published, e.g. https://example.org/family/: the feed and "
        "the pages' og:image point there (default: http://127.0.0.1:8000/, a preview's).",
    ),
]


@app.command()
def build(
    site: SiteOption,
    thread: ThreadOption = None,
    site_name: SiteNameOption = None,
    site_url: SiteUrlOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Draw the missing cards and write the whole site, media included, on any machine that
    reaches the database: nothing of the export or of the machine that ran it is needed."""
    from egregora.runner.publish import build_site
    from egregora.runner.site import site_address

    with reported_errors(as_json):
        if site_url is not None:
            site_address(site_url)  # refused before the database is opened
        with existing(db) as store:
            planned, published = build_site(
                store, site, thread=thread, site_name=site_name, site_url=site_url
            )
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


@app.command()
def serve(
    site: SiteOption,
    thread: ThreadOption = None,
    site_name: SiteNameOption = None,
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="The port to serve on.")
    ] = 8000,
    host: Annotated[
        str, typer.Option("--host", help="The address to serve on (default: this machine only).")
    ] = "127.0.0.1",
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write the site from the database, as `site build` does, then preview it in a browser
    with MkDocs (its pages rebuilt as they change) until stopped with Ctrl-C."""
    from egregora.runner.publish import build_site

    with reported_errors(as_json):
        missing = [m for m in SITE_MODULES if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigurationError(
                "egregora site serve previews with MkDocs, Material for MkDocs and the feed "
                f"plugin; {', '.join(missing)} is not installed here: install them with "
                "`pip install 'egregora[site]'`"
            )
        url = f"http://{host}:{port}/"  # the preview's address: its feed and links work there
        with existing(db) as store:
            planned, published = build_site(
                store, site, thread=thread, site_name=site_name, site_url=url
            )
    if as_json:
        emit_json({"thread_id": planned.thread_id, "url": url, **published.summary()})
    else:
        console.print(
            f"site: {site} ({published.written} files written now); serving it at {url} "
            "(Ctrl-C to stop)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    sys.stdout.flush()
    command = [sys.executable, "-m", "mkdocs", "serve", "-f", str(site / "mkdocs.yml")]
    try:
        done = subprocess.run([*command, "--dev-addr", f"{host}:{port}"], check=False)
    except KeyboardInterrupt:
        return  # stopped by the user, as asked
    if done.returncode not in (0, -2, 130):  # MkDocs' own error is above, on stderr
        fail(f"mkdocs serve ended with exit code {done.returncode}", code=1)
