"""``egregora tasks``: the work queue: what is queued, running, done or failed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated

import typer

from egregora.cli.output import DbOption, JsonOption, console, emit_json, reported_errors
from egregora.cli.services import existing, when
from egregora.constants import FINISHED

if TYPE_CHECKING:
    from egregora.tasks import Task

app = typer.Typer(help="The task queue: work the pipeline has queued, running and done.")


@app.command("list")
def list_tasks(
    status: Annotated[
        str | None, typer.Option("--status", help="Only tasks in this state.")
    ] = None,
    task_type: Annotated[
        str | None, typer.Option("--type", help="Only tasks of this type.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="At most this many, next to run first.")
    ] = 50,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Tasks in the order they would be claimed, and how many are in each state. Tasks whose
    lease lapsed are returned to pending first (or failed, when out of attempts)."""
    from rich.table import Table

    from egregora.tasks import TaskStore

    with reported_errors(as_json), existing(db) as store:
        queue = TaskStore(store)
        queue.release_lapsed()
        found = queue.list(status=status, task_type=task_type, limit=limit)
        counts = queue.counts()
        holding = held(queue.active())
    if as_json:
        emit_json(
            {
                "tasks": [t.as_json() for t in found],
                "counts": counts,
                "workers": {owner: [t.task_id for t in ts] for owner, ts in holding.items()},
            }
        )
        return
    table = Table("type", "status", "priority", "attempts", "lease", "last error")
    table.add_column("task_id", no_wrap=True, overflow="fold")  # whole: `tasks retry` takes it
    for task in found:
        lease = (
            f"{task.lease_owner} until {when(task.lease_expires_at)}" if task.lease_owner else ""
        )
        table.add_row(
            task.task_type,
            task.status,
            str(task.priority),
            f"{task.attempts}/{task.max_attempts}",
            lease,
            (task.last_error or "")[:60],
            task.task_id,
        )
    console.print(table)
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()), markup=False)
    print_workers(holding)


def held(tasks: Iterable[Task]) -> dict[str, list[Task]]:
    """The running tasks by the worker holding them."""
    found: dict[str, list[Task]] = {}
    for task in tasks:
        if task.status == "running" and task.lease_owner:
            found.setdefault(task.lease_owner, []).append(task)
    return found


def print_workers(holding: dict[str, list[Task]]) -> None:
    """What each worker is doing now: the tasks it holds and until when."""
    for owner, tasks in sorted(holding.items()):
        doing = ", ".join(f"{t.task_type} {describe(t)}" for t in tasks[:5])
        more = f" and {len(tasks) - 5} more" if len(tasks) > 5 else ""
        until = max(t.lease_expires_at for t in tasks if t.lease_expires_at is not None)
        console.print(
            f"worker {owner}: {doing}{more} (lease until {when(until)})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def describe(task: Task) -> str:
    """A task in a few words: the window's label or the author's pseudonym."""
    payload = task.payload
    return str(payload.get("label") or payload.get("author_uuid") or task.task_id)


@app.command()
def retry(
    task_ids: Annotated[
        list[str] | None, typer.Argument(help="Only these tasks (default: all of --status).")
    ] = None,
    status: Annotated[
        str, typer.Option("--status", help="Queue again the tasks in this finished state.")
    ] = "failed",
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Queue finished tasks again from their first attempt (failed ones by default)."""
    from egregora.tasks import TaskStore

    with reported_errors(as_json), existing(db) as store:
        queued = TaskStore(store).retry(status, task_ids or None)
    if as_json:
        emit_json({"retried": queued, "status": status})
        return
    console.print(f"queued {queued} {status} task(s) again", highlight=False)


@app.command()
def purge(
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            help="Delete tasks in this state; repeat for several (default: "
            + ", ".join(FINISHED)
            + ").",
        ),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete finished tasks (or those in --status); running tasks are never purged."""
    from egregora.tasks import TaskStore

    statuses = tuple(status) if status else FINISHED
    with reported_errors(as_json), existing(db) as store:
        removed = TaskStore(store).purge(statuses)
    if as_json:
        emit_json({"purged": removed, "statuses": list(statuses)})
        return
    console.print(f"deleted {removed} task(s) ({', '.join(statuses)})", highlight=False)
