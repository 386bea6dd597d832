"""The ``egregora`` application.

Every command imports the storage, the engines and the pipeline it uses inside its own body,
so help, ``--version`` and shell completion start without loading any of them.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import typer

from egregora import __version__
from egregora.cli import cache, db, git, runs, site, tasks
from egregora.cli.config import SKIPPED_COMMANDS, Config, find_config
from egregora.cli.export import export
from egregora.cli.ingest import ingest
from egregora.cli.output import Verbosity, fail, quiet_library_warnings, reported_errors
from egregora.cli.root import ARGS, HELP_OPTION_NAMES, RootGroup
from egregora.cli.run import demo, run
from egregora.cli.work import work

app = typer.Typer(
    name="egregora",
    help="The egregora data layer: turn group-chat exports into a blog, on a database you own.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=RootGroup,
    context_settings={"help_option_names": HELP_OPTION_NAMES},
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
app.command("export")(export)


def _version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Print nothing but errors (--json still prints its object)."
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Print each step of a run, and the traceback of an error."
    ),
) -> None:
    """egregora command line."""
    as_json = "--json" in ctx.meta.get(ARGS, ())
    if quiet and verbose:
        fail("give --quiet or --verbose, not both", code=2, as_json=as_json, kind="UsageError")
    Verbosity.set(quiet=quiet, verbose=verbose)
    with reported_errors(as_json):
        config = find_config(Path.cwd())
    if config.path is not None:
        ctx.default_map = _defaults(ctx.command, config)


def _defaults(command: Any, config: Config) -> dict[str, Any]:
    """The default map of ``command``'s tree: each command's options that ``config`` sets."""
    found: dict[str, Any] = {}
    for name, sub in getattr(command, "commands", {}).items():
        if name in SKIPPED_COMMANDS:
            continue
        if hasattr(sub, "commands"):
            found[name] = _defaults(sub, config)
            continue
        values = config.defaults_for({p.name for p in sub.params if p.name})
        if values:
            found[name] = values
    return found


def main() -> None:
    quiet_library_warnings()
    try:
        app()
    finally:
        # The command has ended and closed its databases. The interpreter's last collections
        # walk every object the engines' libraries made (Ibis, Arrow, pandas): a quarter of a
        # second on each small command. Frozen objects are still freed as their modules are
        # cleared; only reference cycles among them are left for the process's end to reclaim.
        gc.freeze()
