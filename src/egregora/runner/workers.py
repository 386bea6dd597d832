"""Who works the queue during ``egregora run --workers N``: processes or threads.

Where several processes may write the database at once (the backend's ``concurrent_writers``:
PostgreSQL), N workers are N processes: the run's own and N - 1 ``egregora work --until-empty``
started beside it, which need nothing but the database URL (passed in ``EGREGORA_DB``, so a
password never shows in the process list). A DuckDB file is written by one process, so there
N workers are N writer threads of the run's process: the writer (a language model's seconds
per window) runs N at a time, while reads and writes take turns on the one connection.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from egregora.errors import EgregoraError
from egregora.runner.execute import LEASE, TASK_TYPES, Executed, Worker, worker_id
from egregora.runner.progress import Reporter
from egregora.runner.writer import Writer, writer_spec
from egregora.runs import RunStore
from egregora.storage.store import Storage
from egregora.tasks import TaskStore

if TYPE_CHECKING:
    from egregora.runner.pipeline import RunOptions


class WorkerProcessError(EgregoraError):
    """A worker process started by the run ended with an error."""


def describe_workers(store: Storage, workers: int) -> str:
    """What ``--workers`` means on this database, in words."""
    if workers == 0:
        return "none: the tasks wait in the queue for `egregora work`"
    if workers == 1:
        return "1 (this process)"
    if store.engine.concurrent_writers:
        return f"{workers} processes (this one and {workers - 1} `egregora work`)"
    return (
        f"{workers} writer threads in this process (one process writes a DuckDB file; "
        "worker processes on several machines need PostgreSQL)"
    )


def execute(
    store: Storage,
    queue: TaskStore,
    runs: RunStore,
    run_id: str,
    options: RunOptions,
    say: Reporter,
    children: Children,
) -> Executed:
    """Work the queue until it holds no window or profile task, with the worker processes
    ``children`` (see ``worker_processes``; the run waits for them to exit after publishing,
    which overlaps their shutting down with the cards and the site)."""
    threads = 1 if store.engine.concurrent_writers else options.workers
    waiting = len(queue.active(TASK_TYPES))
    shown = 0

    def advance(_: int) -> None:  # counts every worker's tasks, not only this one's
        nonlocal shown
        done = waiting - len(queue.active(TASK_TYPES))
        if done > shown:
            say.advance(done - shown)
            shown = done

    worker = Worker(
        store=store,
        queue=queue,
        writer=options.writer,
        worker=worker_id(socket.gethostname(), os.getpid(), run_id),
        runs=runs,
        run_id=run_id,
        batch=options.batch,
        lease=options.lease,
        threads=threads,
        advance=advance,
    )
    done = worker.run()
    if not waiting:
        children.stop()  # nothing was queued: no need to wait for them to start up
    return done


class Children:
    """The worker processes started beside the run."""

    def __init__(self, processes: list[tuple[subprocess.Popen[bytes], IO[bytes]]]) -> None:
        self.processes = processes

    def wait(self) -> None:
        """Wait for every process to finish; a failed one is reported with its last words."""
        failures = []
        for process, errors in self.processes:
            code = process.wait()
            if code != 0:
                errors.seek(0)
                lines = errors.read().decode(errors="replace").strip().splitlines()
                failures.append(f"exit {code}: {lines[-1] if lines else 'no message'}")
        if failures:
            raise WorkerProcessError(
                f"{len(failures)} worker process(es) failed ({'; '.join(failures)}); what "
                "they finished is stored: see `egregora tasks list`, then run again"
            )

    def stop(self) -> None:
        """Ask every process still running to stop (SIGTERM: each finishes or gives back
        what it holds), and wait for them."""
        for process, _ in self.processes:
            if process.poll() is None:
                process.terminate()
        for process, _ in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def worker_processes(store: Storage, options: RunOptions, run_id: str) -> Iterator[Children]:
    """Start the ``egregora work --until-empty`` processes the run ``run_id`` works with (none
    where one process writes the database). They start with the run, so that their start-up
    overlaps its ingest, and stop once its plan is queued and the queue is empty. Should the
    run fail, they are stopped (SIGTERM: each finishes or gives back what it holds)."""
    count = options.workers - 1 if store.engine.concurrent_writers else 0
    if count <= 0:
        yield Children([])
        return
    env = {**os.environ, **store.url.environment()}
    command = [
        sys.executable,
        "-m",
        "egregora",
        "work",
        "--until-empty",
        "--writer",
        writer_spec(options.writer),
        "--lease",
        str(options.lease.total_seconds()),
        "--batch",
        str(options.batch),
        "--after-plan-of",
        run_id,
        "--json",
    ]
    started: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
    with tempfile.TemporaryDirectory(prefix="egregora-workers-") as logs:
        children = Children(started)
        try:
            for n in range(count):
                errors: IO[bytes] = Path(logs, f"worker-{n}.err").open("w+b")  # noqa: SIM115
                process = subprocess.Popen(
                    command, env=env, stdout=subprocess.DEVNULL, stderr=errors
                )
                started.append((process, errors))
            yield children
        except BaseException:
            children.stop()
            raise
        finally:
            for _, errors in started:
                errors.close()


@dataclass(frozen=True)
class Worked:
    """What one ``egregora work`` did."""

    run_id: str
    worker: str
    done: Executed
    stopped: bool  # asked to stop (SIGTERM) before the queue was empty
    waiting: int  # window and profile tasks left in the queue

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "worker": self.worker,
            "tasks": self.done.tasks,
            "windows": self.done.windows,
            "profiles": self.done.profiles,
            "documents": self.done.documents,
            "released": self.done.released,
            "lost": self.done.lost,
            "stopped": self.stopped,
            "tasks_waiting": self.waiting,
        }


def work(
    store: Storage,
    writer: Writer,
    *,
    until_empty: bool = False,
    lease: timedelta = LEASE,
    batch: int = 64,
    after_plan_of: str | None = None,
    stop: threading.Event | None = None,
) -> Worked:
    """Work the queue's window and profile tasks, from the database alone, recorded as a run
    of stage ``work`` (``egregora runs list`` shows the workers; ``tasks list`` what each
    holds). Stops when ``stop`` is set (finishing the tasks begun, giving back the others),
    or with ``until_empty`` when no such task is left, pending or held by another worker (and,
    with ``after_plan_of``, once that run has queued its plan or ended)."""
    stop = stop or threading.Event()
    runs = RunStore(store)
    queue = TaskStore(store)
    config = {"writer": f"{writer.name}@{writer.version}", "until_empty": until_empty}
    run_id = runs.start("work", config, parent=after_plan_of)
    name = worker_id(socket.gethostname(), os.getpid(), run_id)
    try:
        done = Worker(
            store=store,
            queue=queue,
            writer=writer,
            worker=name,
            runs=runs,
            run_id=run_id,
            batch=batch,
            lease=lease,
            until_empty=until_empty,
            ready=(lambda: has_planned(runs, after_plan_of)) if after_plan_of else lambda: True,
            stop=stop,
        ).run()
    except BaseException as exc:
        runs.fail(run_id, exc)
        raise
    worked = Worked(run_id, name, done, stop.is_set(), len(queue.active(TASK_TYPES)))
    if worked.stopped:
        runs.cancel(run_id, f"stopped: {done.tasks} tasks done, {done.released} given back")
    else:
        runs.finish(
            run_id, rows_in=done.tasks, rows_out=done.documents, attrs={"done": done.counts()}
        )
    return worked


def has_planned(runs: RunStore, run_id: str) -> bool:
    """Whether the run ``run_id`` has queued its plan's tasks (or ended, or is unknown)."""
    run = runs.get(run_id)
    if run is None or run.status != "running":
        return True
    return any(r.status != "running" for r in runs.list(stage="plan", parent=run_id))


def children_done(runs: RunStore, run_id: str) -> Executed:
    """What the worker processes started for the run ``run_id`` did, added up from their
    runs' records (each a child of that run)."""
    total = Executed()
    for child in runs.list(parent=run_id, stage="work", limit=None):
        total.add(child.attrs.get("done") or {})
    return total
