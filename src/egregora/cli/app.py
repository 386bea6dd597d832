"""The ``egregora`` application.

Every command imports the storage, the engines and the pipeline it uses inside its own body,
so help, ``--version`` and shell completion start without loading any of them.
"""

from __future__ import annotations

import typer

from egregora import __version__
from egregora.cli import cache, db, git, runs, site, tasks
from egregora.cli.ingest import ingest
from egregora.cli.output import quiet_library_warnings
from egregora.cli.run import demo, run
from egregora.cli.work import work

app = typer.Typer(
    name="egregora",
    help="The egregora data layer: turn group-chat exports into a blog, on a database you own.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(git.app, name="git")
app.add_typer(cache.app, name="cache")
app.add_typer(runs.app, name="runs")
app.add_typer(tasks.app, name="tasks")
app.add_typer(site.app, name="site")
app.command("ingest")(ingest)
app.command("run")(run)
app.command("demo")(demo)
app.command("work")(work)


def _version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """egregora command line."""


def main() -> None:
    quiet_library_warnings()
    app()
