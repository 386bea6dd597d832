"""Work the queue: claim window and profile tasks, make their documents, write and complete.

A worker needs nothing but the database. Each task names its thread and the zone of its local
times; the thread's messages and media documents are read from the database once per thread
(see ``threads.ThreadWork``), and read again when a task was planned from messages this copy
does not hold yet.

Tasks are claimed a batch at a time. A batch's tasks are completed and their documents written
in one transaction, so a worker killed at any point leaves each task either done with its
documents stored, or not done with nothing of it stored; a task whose lease was lost meanwhile
(another worker took it over) is dropped whole. A task whose work raises is failed (and
retried after the queue's backoff); one out of attempts is reported.

Leases are short and renewed while the writer works (the writer runs on a pool thread, the
database is used on the worker's own), so a dead worker's tasks are taken over within one
lease. Batches grow while tasks are quick (the extractive writer: up to ``batch`` windows per
write) and stay at one task per writer thread when the writer is slow (a language model), so
several workers share even a short queue.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from egregora.constants import LEASE as LEASE
from egregora.errors import EgregoraError, LeaseLostError
from egregora.runner.documents import (
    AuthorInput,
    journal_id,
    journal_row,
    post_id,
    post_row,
    profile_row,
)
from egregora.runner.model import Message, Window, signature
from egregora.runner.threads import Threads, ThreadWork, task_zone
from egregora.runner.writer import WindowInput, Writer
from egregora.runs import RunStore
from egregora.storage.store import Storage
from egregora.tasks import Task, TaskStore

WINDOW, PROFILE = "window", "profile"
TASK_TYPES = (WINDOW, PROFILE)
BATCH_SECONDS = 1.0  # a batch's work grows or shrinks towards this
# An idle worker looks at the queue again this often while other workers hold the last tasks
# (to stop as soon as they are done), and at the longest MAX_WAIT otherwise.
POLL = timedelta(seconds=0.5)
MAX_WAIT = timedelta(seconds=5)


class TaskFailedError(EgregoraError):
    """Some tasks failed on every attempt; their documents were not made."""


@dataclass
class Executed:
    tasks: int = 0
    windows: int = 0
    profiles: int = 0
    documents: int = 0  # rows written (new or changed)
    released: int = 0  # tasks given back unstarted when asked to stop
    lost: int = 0  # tasks whose lease another worker took over: their results were dropped
    failed: list[str] = field(default_factory=list)

    COUNTS = ("tasks", "windows", "profiles", "documents", "released", "lost")

    def counts(self) -> dict[str, int]:
        """What a worker's run records, for the run it worked for to add up."""
        return {name: getattr(self, name) for name in self.COUNTS}

    def add(self, counts: Mapping[str, Any]) -> None:
        """Add another worker's recorded ``counts``."""
        for name in self.COUNTS:
            setattr(self, name, getattr(self, name) + int(counts.get(name) or 0))


Rows = list[dict[str, Any]]


@dataclass
class _Job:
    """One claimed task on its way: the writer's part runs on a pool thread."""

    task: Task
    future: Future[Rows] | None = None
    rows: Rows = field(default_factory=list)
    error: BaseException | None = None


class Worker:
    """Claims window and profile tasks of any thread and does them, until the queue holds no
    more of them (``until_empty``) or ``stop`` is set."""

    def __init__(
        self,
        *,
        store: Storage,
        queue: TaskStore,
        writer: Writer,
        worker: str,
        runs: RunStore | None = None,
        run_id: str | None = None,
        batch: int = 64,
        lease: timedelta = LEASE,
        threads: int = 1,
        until_empty: bool = True,
        ready: Callable[[], bool] = lambda: True,
        stop: threading.Event | None = None,
        advance: Callable[[int], None] = lambda _: None,
    ) -> None:
        self.store = store
        self.queue = queue
        self.writer = writer
        self.worker = worker
        self.runs = runs
        self.run_id = run_id
        self.batch = max(batch, threads)
        self.lease = lease
        self.threads = threads
        self.until_empty = until_empty
        self.ready = ready  # with until_empty: whether all the awaited tasks are queued
        self.stop = stop or threading.Event()
        self.advance = advance
        self.work = Threads(store)
        self._next_sweep = 0.0  # when to look for workers that are gone next
        self._next_beat = 0.0  # when to renew the heartbeat of the worker's run next

    def run(self) -> Executed:
        done = Executed()
        size = self.threads
        with ThreadPoolExecutor(self.threads, thread_name_prefix="writer") as pool:
            while not self.stop.is_set():
                claimed = self.queue.claim_many(self.worker, size, TASK_TYPES, self.lease)
                if claimed:
                    started = time.monotonic()
                    self._do(claimed, done, pool)
                    size = self._next_size(len(claimed), time.monotonic() - started)
                    continue
                if not self._idle():
                    break
        if done.failed:
            shown = "; ".join(done.failed[:3]) + (" ..." if len(done.failed) > 3 else "")
            raise TaskFailedError(
                f"{len(done.failed)} tasks failed on every attempt ({shown}); see `egregora "
                "tasks list --status failed`, then run again (or `egregora tasks retry`)"
            )
        return done

    def _next_size(self, claimed: int, seconds: float) -> int:
        """Tasks to claim next: as many as take about ``BATCH_SECONDS``, at least one per
        writer thread (a slow writer keeps the rest of the queue for other workers)."""
        fitting = int(claimed * BATCH_SECONDS / max(seconds, 1e-3))
        return max(self.threads, min(self.batch, fitting, claimed * 4))

    # -- one batch --------------------------------------------------------------------------------
    def _do(self, claimed: list[Task], done: Executed, pool: ThreadPoolExecutor) -> None:
        jobs = [_Job(task) for task in claimed]
        for job in jobs:
            try:
                job.future = pool.submit(self._prepare(job.task))
            except Exception as exc:  # reading the task's thread or payload failed
                job.error = exc
        self._await(jobs)
        finished: list[_Job] = []
        for job in jobs:
            try:
                if job.future is not None and job.future.cancelled():
                    self.queue.release(job.task)  # asked to stop before it began
                    done.released += 1
                elif job.error is not None:
                    error = f"{type(job.error).__name__}: {job.error}"
                    if self.queue.fail(job.task, error).status == "failed":
                        done.failed.append(f"{job.task.task_type} {_name(job.task)}: {job.error}")
                    self.advance(1)
                else:
                    finished.append(job)
            except LeaseLostError:
                done.lost += 1  # another worker took it over meanwhile: it is theirs now
        self._write(finished, done)

    def _await(self, jobs: list[_Job]) -> None:
        """Wait for the writer, renewing the leases every third of one; when asked to stop,
        tasks not begun are cancelled (and released), those begun are finished."""
        renew = self.lease.total_seconds() / 3
        pending = {j.future for j in jobs if j.future is not None}
        next_renewal = time.monotonic() + renew
        while pending:
            if self.stop.is_set():
                for future in pending:
                    future.cancel()
            _, pending = wait(pending, timeout=min(renew, 0.5), return_when=FIRST_COMPLETED)
            if pending and time.monotonic() >= next_renewal:
                self._renew([j for j in jobs if j.future in pending])
                next_renewal = time.monotonic() + renew
        for job in jobs:
            if job.future is None or job.future.cancelled():
                continue
            try:
                job.rows = job.future.result()
            except Exception as exc:  # the writer's or the task's own failure: retried
                job.error = exc

    def _renew(self, jobs: list[_Job]) -> None:
        for job in jobs:
            # A task taken over meanwhile keeps its old lease here: its result is dropped
            # when it is written (complete finds the lease gone).
            with contextlib.suppress(LeaseLostError):
                job.task = self.queue.extend(job.task, self.lease)
        self._beat()

    def _beat(self) -> None:
        """Tell the worker's run record it is alive, every third of a lease at most."""
        if self.runs is None or self.run_id is None or time.monotonic() < self._next_beat:
            return
        self.runs.heartbeat(self.run_id)
        self._next_beat = time.monotonic() + self.lease.total_seconds() / 3

    def _write(self, finished: list[_Job], done: Executed) -> None:
        """Complete the tasks still held and write their documents, in one transaction."""
        if not finished:
            return
        held: list[_Job] = []
        with self.store.transaction():
            for job in finished:
                try:
                    self.queue.complete(job.task)
                except LeaseLostError:
                    done.lost += 1  # another worker holds it now and writes it
                    continue
                held.append(job)
            rows = [row for job in held for row in job.rows]
            if rows:
                done.documents += self.store.write("documents", rows, mode="upsert")
        for job in held:
            done.tasks += 1
            if job.task.task_type == WINDOW:
                done.windows += 1
            else:
                done.profiles += 1
        self.advance(len(finished))
        self._beat()

    # -- one task ---------------------------------------------------------------------------------
    def _prepare(self, task: Task) -> Callable[[], Rows]:
        """Read what the task needs here (the database is used on this thread only); the
        returned call makes its rows on a pool thread."""
        tz = task_zone(task.payload)
        if task.task_type == WINDOW:
            planned = Window.from_payload(task.payload)
            work = self.work.of(task.payload, last_seq=planned.last_seq)
            messages = work.source.window(planned)
            linked = work.linked_media(messages)
            return lambda: self._window_rows(work, tz, planned, messages, linked)
        author = AuthorInput.from_payload(task.payload)
        work = self.work.of(task.payload, last_seen=author.last_seen)
        messages = work.source.author(author.author_uuid)
        return lambda: _profile_rows(work, tz, author, messages)

    def _window_rows(
        self,
        work: ThreadWork,
        tz: tzinfo,
        planned: Window,
        messages: list[Message],
        linked: Rows,
    ) -> Rows:
        if not messages:
            return []  # the messages are gone (another thread name?): nothing to write
        window = _as_read(planned, messages)
        label = work.source.label
        rows = [journal_row(label, window, messages, work.media_ids, tz)]
        if window.people:  # a day of system notices only has a journal and no post
            draft = self.writer.write(
                WindowInput(window=window, messages=messages, tz=tz, names=work.source.names)
            )
            rows.append(post_row(label, window, messages, draft, self.writer, work.media_ids, tz))
        return rows + [_linked(row, label, window) for row in linked]

    # -- between batches --------------------------------------------------------------------------
    def _idle(self) -> bool:
        """Nothing could be claimed: wait for what may still come (a retry's backoff, a task
        held by another worker, whose lease lapses if that worker died); False when the queue
        holds none of these tasks and the worker stops when it is empty."""
        pause = MAX_WAIT
        if time.monotonic() >= self._next_sweep:
            self._release_gone_workers()
            self._next_sweep = time.monotonic() + MAX_WAIT.total_seconds()
        if self.until_empty:
            left = self.queue.active(TASK_TYPES)
            if not left and self.ready():
                return False
            if not left:
                pause = POLL  # the tasks are about to be queued
            elif any(t.status == "running" for t in left):
                pause = POLL  # held by others: see them finish
            else:  # a retry's backoff: sleep until it is due
                soonest = min(t.available_at for t in left)
                pause = min(MAX_WAIT, max(soonest - _now(soonest), timedelta(0)))
        self._beat()
        self.stop.wait(pause.total_seconds() + 0.01)
        return True

    def _release_gone_workers(self) -> None:
        """Give back at once the tasks of workers whose run is known to have ended (its
        process is gone from this machine, or its heartbeat stopped) instead of waiting for
        their leases to lapse."""
        if self.runs is None:
            return
        self.runs.mark_stale()
        held = {t.lease_owner for t in self.queue.active(TASK_TYPES) if t.lease_owner}
        gone = []
        for owner in held:
            run_id = run_of_worker(owner)
            run = self.runs.get(run_id) if run_id else None
            if run is not None and run.status != "running":
                gone.append(owner)
        self.queue.release_held_by(gone)


def worker_id(host: str, pid: int, run_id: str) -> str:
    """A worker's name in leases: where it runs, and the run that records its work."""
    return f"{host}:{pid}:{run_id}"


def run_of_worker(owner: str) -> str | None:
    """The run id in a lease owner named by ``worker_id`` (None for another naming)."""
    parts = owner.split(":")
    return parts[2] if len(parts) == 3 and parts[2] else None


def _profile_rows(
    work: ThreadWork, tz: tzinfo, author: AuthorInput, messages: list[Message]
) -> Rows:
    if not messages:
        return []
    current = AuthorInput(
        thread_id=author.thread_id,
        author_uuid=author.author_uuid,
        signature=signature(m.event_id for m in messages),
        messages=len(messages),
        first_seen=messages[0].ts,
        last_seen=messages[-1].ts,
    )
    return [profile_row(work.source.label, current, messages, tz)]


def _linked(row: dict[str, Any], label: str, window: Window) -> dict[str, Any]:
    """A media document first sent in ``window``, linked to its journal and post."""
    extensions = json.loads(row["extensions"] or "{}")
    extensions.update(
        journal_id=journal_id(label, window), post_id=post_id(label, window), window=window.label
    )
    return {**row, "extensions": json.dumps(extensions, sort_keys=True, ensure_ascii=False)}


def _as_read(planned: Window, messages: list[Message]) -> Window:
    """The planned window with what it holds now (new messages may have come since)."""
    return Window(
        thread_id=planned.thread_id,
        spec=planned.spec,
        label=planned.label,
        start=planned.start,
        end=planned.end,
        first_seq=min(m.seq for m in messages),
        last_seq=max(m.seq for m in messages),
        messages=len(messages),
        signature=signature(m.event_id for m in messages),
        people=len({m.author_uuid for m in messages if m.author_uuid}),
    )


def _now(like: datetime) -> datetime:
    return datetime.now(like.tzinfo)


def _name(task: Task) -> str:
    payload = task.payload
    return str(payload.get("label") or payload.get("author_uuid") or task.task_id)
