"""``egregora run`` (an export into documents, cards and a site) and ``egregora demo``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from egregora.cli.ingest import (
    DateOrderOption,
    ExportArgument,
    ThreadOption,
    TzOption,
    parse_date_order,
)
from egregora.cli.output import (
    DbOption,
    JsonOption,
    Verbosity,
    console,
    emit_json,
    err_console,
    reported_errors,
)
from egregora.cli.site import SiteUrlOption
from egregora.cli.work import LEASE_SECONDS, LeaseOption

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from egregora.runner import RunOptions, RunSummary
    from egregora.storage.store import Storage

DEMO_FOLDER = Path(".egregora") / "demo"


class Bars:
    """Progress bars on stderr, one per stage: a bar where the stage has a size."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.current: TaskID | None = None
        self.name = ""

    def stage(self, name: str, total: int | None = None) -> None:
        self._close()
        self.name = name
        self.current = self.progress.add_task(name, total=total)

    def advance(self, steps: int = 1) -> None:
        if self.current is not None:
            self.progress.advance(self.current, steps)

    def step(self, text: str) -> None:
        if Verbosity.verbose:
            self.progress.console.print(f"{self.name}: {text}", markup=False, highlight=False)
        if self.current is not None:
            self.progress.update(self.current, description=f"{self.name}: {text}")

    def _close(self) -> None:
        if self.current is not None:
            task = self.progress.tasks[-1]
            self.progress.update(
                self.current,
                description=self.name,
                total=task.total if task.total is not None else 1,
                completed=task.total if task.total is not None else 1,
            )

    def close(self) -> None:
        self._close()


def execute(store: Storage, export: Path, options: RunOptions, as_json: bool) -> RunSummary:
    """Run the pipeline, with progress bars unless the output is JSON."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from egregora.runner import run_pipeline

    if as_json or Verbosity.quiet():
        return run_pipeline(store, export, options)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<36}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    ) as progress:
        bars = Bars(progress)
        try:
            return run_pipeline(store, export, options, bars)
        finally:
            bars.close()


def say(text: str) -> None:
    """One line of the human view, never wrapped (paths and ids stay whole)."""
    console.print(text, highlight=False, markup=False, soft_wrap=True)


def open_and_run(
    db: str | None, export: Path, options: RunOptions, as_json: bool
) -> tuple[RunSummary, str]:
    """Check the input, open (and migrate) the database, run, and say where the database is."""
    from egregora.runner.pipeline import check_input
    from egregora.storage.store import Storage

    check_input(export, options)  # refused before a database file is made

    with Storage.open(db) as store:
        store.ensure_schema()
        return execute(store, export, options, as_json), str(store.url)


def report(summary: RunSummary, db: str) -> None:
    from egregora.runner.documents import plural

    docs = summary.documents
    say(
        f"{summary.thread_id}: {summary.messages} messages in the export, "
        f"{summary.new_messages} new; {summary.windows} windows, {summary.windows_written} "
        f"written now; {summary.profiles_written} profiles written",
    )
    say(
        f"documents: {docs['post']} posts, {docs['journal']} journals, {docs['profile']} "
        f"profiles, {docs['media']} media ({summary.new_documents} new or changed); "
        f"{summary.cards_rendered} cards drawn",
    )
    say(f"database: {db}")
    say(f"workers: {summary.workers}")
    if summary.tasks_waiting:
        say(
            f"{plural(summary.tasks_waiting, 'task')} wait in the queue: start `egregora work "
            f"--until-empty` (with PostgreSQL, on any machines that reach the database), then "
            f"`egregora site build --site DIR`"
        )
    if summary.site is not None:
        written = plural(summary.site_files_written, "file")
        say(
            f"site: {summary.site} ({written} written); browse it with "
            f"`mkdocs serve -f {Path(summary.site) / 'mkdocs.yml'}`"
        )
    say(f"run: {summary.run_id} (`egregora runs show {summary.run_id}`)")


def run(
    export: ExportArgument,
    site: Annotated[
        Path | None, typer.Option("--site", help="Write the site (MkDocs layout) into DIR.")
    ] = None,
    window: Annotated[
        str, typer.Option("--window", help="day, week, or a number of messages per window.")
    ] = "day",
    tz: TzOption = None,
    thread: ThreadOption = None,
    date_order: DateOrderOption = None,
    site_name: Annotated[
        str | None, typer.Option("--site-name", help="The site's name (default: the chat's).")
    ] = None,
    site_url: SiteUrlOption = None,
    writer: Annotated[
        str | None,
        typer.Option("--writer", help="extractive (default), or package.module:Writer."),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=0,
            help="Workers for the tasks: on PostgreSQL N processes; on DuckDB N writer threads "
            "in this process (one process writes a DuckDB file). 0: ingest and plan only; the "
            "tasks wait for `egregora work`.",
        ),
    ] = 1,
    lease: LeaseOption = LEASE_SECONDS,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Turn an export into journals, posts, profiles, social cards and (with --site) a site.

    Only what is new is made; a run stopped half-way is finished by the next one.
    """
    from egregora.runner import RunOptions, WindowSpec, load_writer

    with reported_errors(as_json):
        options = RunOptions(
            window=WindowSpec.parse(window),
            tz=tz,
            thread=thread,
            date_order=parse_date_order(date_order),
            site=site,
            site_name=site_name,
            site_url=site_url,
            writer=load_writer(writer),
            workers=workers,
            lease=timedelta(seconds=lease),
        )
        summary, where = open_and_run(db, export, options, as_json)
    if as_json:
        emit_json(summary.summary())
    else:
        report(summary, where)


def demo(
    folder: Annotated[
        Path, typer.Argument(help="Where the demo's export, database and site go.")
    ] = DEMO_FOLDER,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the whole job on the sample chat shipped with egregora, and say what it made."""
    from egregora.runner import RunOptions
    from egregora.runner.demo import TIMEZONE, sample_export

    with reported_errors(as_json):
        export = sample_export(folder)
        target = db or str(folder / "egregora.duckdb")
        # Media go in the demo's folder whatever the database (a server's has no folder).
        options = RunOptions(tz=TIMEZONE, site=folder / "site", media_dir=folder / "media")
        summary, where = open_and_run(target, export, options, as_json)
    if as_json:
        emit_json(summary.summary())
        return
    say(f"sample export: {export}")
    report(summary, where)
    say(
        f"explore it: open notebooks/explore.ipynb with EGREGORA_DB={where}",
    )
