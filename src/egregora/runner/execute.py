"""Work the queue: claim window and profile tasks, make their documents, write and complete.

Tasks are claimed a batch at a time; the batch's documents are written in one validated
upsert and the tasks completed in the same transaction, so a run killed at any point leaves
each task either done with its documents stored, or not done with nothing of it stored. A
task whose work raises is failed (and retried after the queue's backoff); one that runs out
of attempts is reported, and the run fails naming it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from egregora.errors import EgregoraError
from egregora.runner.documents import (
    AuthorInput,
    journal_id,
    journal_row,
    post_id,
    post_row,
    profile_row,
)
from egregora.runner.model import Message, Window, signature
from egregora.runner.source import ThreadMessages
from egregora.runner.writer import WindowInput, Writer
from egregora.storage.store import Storage
from egregora.tasks import Task, TaskStore

WINDOW, PROFILE = "window", "profile"
TASK_TYPES = (WINDOW, PROFILE)
MAX_WAIT = timedelta(minutes=5)  # the longest the run waits for a retry to come due


class TaskFailedError(EgregoraError):
    """Some tasks failed on every attempt; their documents were not made."""


@dataclass
class Executed:
    tasks: int = 0
    windows: int = 0
    profiles: int = 0
    documents: int = 0  # rows written (new or changed)
    failed: list[str] = field(default_factory=list)


class Executor:
    """Claims and does the run's tasks for one thread, ``batch`` tasks per write."""

    def __init__(
        self,
        *,
        store: Storage,
        queue: TaskStore,
        source: ThreadMessages,
        writer: Writer,
        tz: tzinfo,
        media: Mapping[str, dict[str, Any]],
        worker: str,
        batch: int = 64,
        lease: timedelta = timedelta(minutes=5),
        advance: Callable[[int], None] = lambda _: None,
    ) -> None:
        self.store = store
        self.queue = queue
        self.source = source
        self.writer = writer
        self.tz = tz
        self.media = {name: dict(row) for name, row in media.items()}
        self.worker = worker
        self.batch = batch
        self.lease = lease
        self.advance = advance

    def run(self) -> Executed:
        done = Executed()
        while True:
            claimed = self.queue.claim_many(self.worker, self.batch, TASK_TYPES, self.lease)
            if claimed:
                self._do(claimed, done)
                continue
            if not self._wait_for_retries():
                break
        if done.failed:
            shown = "; ".join(done.failed[:3]) + (" ..." if len(done.failed) > 3 else "")
            raise TaskFailedError(
                f"{len(done.failed)} tasks failed on every attempt ({shown}); see `egregora "
                "tasks list --status failed`, then run again (or `egregora tasks retry`)"
            )
        return done

    def _do(self, claimed: list[Task], done: Executed) -> None:
        rows: list[dict[str, Any]] = []
        finished: list[Task] = []
        for task in claimed:
            try:
                rows += self._rows(task)
            except Exception as exc:  # the writer's or a task's own failure: retried
                failed = self.queue.fail(task, f"{type(exc).__name__}: {exc}")
                if failed.status == "failed":
                    done.failed.append(f"{task.task_type} {_name(task)}: {exc}")
                self.advance(1)
                continue
            finished.append(task)
        with self.store.transaction():
            if rows:
                done.documents += self.store.write("documents", rows, mode="upsert")
            for task in finished:
                self.queue.complete(task)
        for task in finished:
            done.tasks += 1
            if task.task_type == WINDOW:
                done.windows += 1
            else:
                done.profiles += 1
        self.advance(len(finished))

    def _rows(self, task: Task) -> list[dict[str, Any]]:
        if task.task_type == WINDOW:
            return self._window_rows(Window.from_payload(task.payload))
        return self._profile_rows(AuthorInput.from_payload(task.payload))

    def _window_rows(self, planned: Window) -> list[dict[str, Any]]:
        messages = self.source.window(planned)
        if not messages:
            return []  # the messages are gone (another thread name?): nothing to write
        window = _as_read(planned, messages)
        label = self.source.label
        ids = {self.source.shown(name): str(row["id"]) for name, row in self.media.items()}
        draft = self.writer.write(
            WindowInput(window=window, messages=messages, tz=self.tz, names=self.source.names)
        )
        rows = [
            journal_row(label, window, messages, ids, self.tz),
            post_row(label, window, messages, draft, self.writer, ids, self.tz),
        ]
        return rows + self._linked_media(window, messages)

    def _linked_media(self, window: Window, messages: list[Message]) -> list[dict[str, Any]]:
        """Media documents first sent in this window, linked to its journal and post."""
        seqs = {m.seq for m in messages}
        linked = []
        for name, first_seq in self.source.first_window_of_file.items():
            row = self.media.get(name)
            if row is None or first_seq not in seqs:
                continue
            extensions = json.loads(row["extensions"] or "{}")
            label = self.source.label
            extensions.update(
                journal_id=journal_id(label, window),
                post_id=post_id(label, window),
                window=window.label,
            )
            row["extensions"] = json.dumps(extensions, sort_keys=True, ensure_ascii=False)
            linked.append(dict(row))
        return linked

    def _profile_rows(self, author: AuthorInput) -> list[dict[str, Any]]:
        messages = self.source.author(author.author_uuid)
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
        return [profile_row(self.source.label, current, messages, self.tz)]

    def _wait_for_retries(self) -> bool:
        """Sleep until the next failed attempt may run again; False when none is waiting."""
        waiting = [
            t for t in self.queue.list(status="pending", limit=None) if t.task_type in TASK_TYPES
        ]
        if not waiting:
            return False
        due = min(t.available_at for t in waiting)
        pause = (due - datetime.now(due.tzinfo)).total_seconds()
        time.sleep(min(max(pause, 0.0), MAX_WAIT.total_seconds()) + 0.01)
        return True


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
    )


def _name(task: Task) -> str:
    payload = task.payload
    return str(payload.get("label") or payload.get("author_uuid") or task.task_id)
