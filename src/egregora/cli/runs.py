"""``egregora runs``: what the pipeline ran, when, on what, and how it ended."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from egregora.cli.output import DbOption, JsonOption, console, emit_json, reported_errors
from egregora.cli.services import existing, when
from egregora.cli.tasks import held, print_workers

if TYPE_CHECKING:
    from egregora.runs import Run

app = typer.Typer(help="Run records: each pipeline stage run and how it ended.")


@app.command("list")
def list_runs(
    status: Annotated[str | None, typer.Option("--status", help="Only runs in this state.")] = None,
    stage: Annotated[str | None, typer.Option("--stage", help="Only runs of this stage.")] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="At most this many, newest first.")
    ] = 50,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Runs, newest first. Runs whose process died are marked failed (stale) first."""
    from rich.table import Table

    from egregora.runs import RunStore

    with reported_errors(as_json), existing(db) as store:
        runs = RunStore(store)
        stale = runs.mark_stale()
        found = runs.list(status=status, stage=stage, limit=limit)
    if as_json:
        emit_json({"runs": [r.as_json() for r in found], "marked_stale": stale})
        return
    table = Table("stage", "status", "started", "duration", "rows in", "rows out")
    table.add_column("run_id", no_wrap=True, overflow="fold")  # whole: `runs show` takes it
    for run in found:
        duration = run.duration
        table.add_row(
            run.stage,
            run.status,
            when(run.started_at),
            "" if duration is None else f"{duration.total_seconds():.1f} s",
            _count(run.rows_in),
            _count(run.rows_out),
            run.run_id,
        )
    console.print(table)
    if stale:
        console.print(f"marked {len(stale)} stale run(s) failed: {', '.join(stale)}", markup=False)


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="The run's id (see `egregora runs list`).")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """One run: its record, the runs it started, and its tasks by state."""
    from egregora.runner.execute import run_of_worker
    from egregora.runs import RunStore
    from egregora.tasks import TaskStore

    with reported_errors(as_json), existing(db) as store:
        runs = RunStore(store)
        runs.mark_stale()
        run = runs.require(run_id)
        children = runs.list(parent=run_id, limit=None)
        queue = TaskStore(store)
        tasks = queue.counts(run_id)
        holding = {
            owner: held_tasks
            for owner, held_tasks in held(queue.active()).items()
            if run_of_worker(owner) == run_id or any(t.run_id == run_id for t in held_tasks)
        }
    if as_json:
        emit_json(
            {
                "run": run.as_json(),
                "children": [c.as_json() for c in children],
                "tasks": tasks,
                "workers": {owner: [t.task_id for t in ts] for owner, ts in holding.items()},
            }
        )
        return
    _print_run(run)
    for child in children:
        console.print(f"  child {child.run_id} {child.stage} {child.status}", markup=False)
    if any(tasks.values()):
        summary = ", ".join(f"{n} {status}" for status, n in tasks.items() if n)
        console.print(f"tasks: {summary}", markup=False)
    print_workers(holding)


def _print_run(run: Run) -> None:
    for name, value in run.as_json().items():
        if value not in (None, {}, ""):
            console.print(f"{name + ':':16}{value}", markup=False, highlight=False)


def _count(value: int | None) -> str:
    return "" if value is None else str(value)
