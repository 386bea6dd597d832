"""``egregora work``: a worker of the task queue, on any machine that reaches the database."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from types import FrameType
from typing import Annotated

import typer

from egregora.cli.output import DbOption, JsonOption, console, emit_json, reported_errors
from egregora.cli.services import existing
from egregora.constants import LEASE

WriterOption = Annotated[
    str | None,
    typer.Option("--writer", help="extractive (default), or package.module:Writer."),
]
LEASE_SECONDS = LEASE.total_seconds()
LeaseOption = Annotated[
    float,
    typer.Option(
        "--lease",
        min=1.0,
        help="Seconds a task is held without news from its worker; renewed every third of it "
        "while the task runs, so a dead worker's tasks are taken over this soon.",
    ),
]


def work(
    until_empty: Annotated[
        bool,
        typer.Option(
            "--until-empty",
            help="Stop when no window or profile task is left (default: wait for more).",
        ),
    ] = False,
    writer: WriterOption = None,
    lease: LeaseOption = LEASE_SECONDS,
    batch: Annotated[
        int, typer.Option("--batch", min=1, help="At most this many tasks per write.")
    ] = 64,
    after_plan_of: Annotated[
        str | None,
        typer.Option(
            "--after-plan-of",
            metavar="RUN_ID",
            help="With --until-empty: do not stop before the run RUN_ID has queued its plan "
            "(how `egregora run --workers N` starts its workers with it).",
        ),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Work the queue's window and profile tasks, needing nothing but the database.

    Start any number, on any machines that reach one PostgreSQL database. SIGTERM (or Ctrl-C)
    stops a worker cleanly: the tasks it began are finished and written, the others given
    back; a second one stops it at once (its tasks are taken over when its lease lapses).
    """
    from egregora.runner import load_writer
    from egregora.runner.workers import work as work_queue

    with reported_errors(as_json):
        chosen = load_writer(writer)
        with existing(db) as store, _stopping() as stop:
            worked = work_queue(
                store,
                chosen,
                until_empty=until_empty,
                lease=timedelta(seconds=lease),
                batch=batch,
                after_plan_of=after_plan_of,
                stop=stop,
            )
    if as_json:
        emit_json(worked.summary())
        return
    done = worked.done
    console.print(
        f"{worked.worker}: {done.tasks} tasks done ({done.windows} windows, {done.profiles} "
        f"profiles), {done.documents} documents written"
        + (f", {done.released} given back" if done.released else "")
        + ("; stopped on request" if worked.stopped else "")
        + f"; {worked.waiting} tasks left in the queue",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@contextmanager
def _stopping() -> Iterator[threading.Event]:
    """An event set by the first SIGTERM or SIGINT; the second interrupts at once."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
