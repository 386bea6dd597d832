"""TaskStore: a durable work queue in the `tasks` table, with leases, retries and dedupe keys.

A claim is one UPDATE that picks the next task and marks it running under a lease, so two
workers never hold one task. A worker that dies keeps its lease until it lapses; the task is
then claimed again (or fails, once no attempt is left). Completing, failing or extending
names the lease (task, owner, attempt): a worker whose lease lapsed and was taken over gets
LeaseLostError and changes nothing, so a task is completed once. New tasks are validated
against the table's contract like every write; state changes are single statements the
database's CHECKs guard (a running task has a lease, attempts never exceed the maximum).

DuckDB lets one process write a database file; in it, workers are threads sharing one
Storage (its lock makes each statement atomic with respect to the others).
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import ibis
import pyarrow as pa
from sqlglot import exp

from egregora.clock import Clock, utc_now
from egregora.errors import ConfigurationError, LeaseLostError, NotFoundError
from egregora.storage.store import Storage
from egregora.tasks import statements as sql
from egregora.tasks.model import ACTIVE, COLUMNS, FINISHED, STATUSES, Backoff, NewTask, Task

DEFAULT_LEASE = timedelta(minutes=5)
_counter = itertools.count()


@dataclass(frozen=True)
class Enqueued:
    """What ``enqueue_many`` did: ids of the tasks written, in input order, and how many
    were skipped because their dedupe key was already queued (or repeated in the batch)."""

    task_ids: tuple[str, ...]
    skipped: int


class TaskStore:
    """The queue on ``store``. ``clock`` gives the current time (tests pass a fake one)."""

    def __init__(
        self,
        store: Storage,
        *,
        backoff: Backoff | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.backoff = backoff or Backoff()
        self.clock = clock

    # -- enqueueing -------------------------------------------------------------------------------
    def enqueue(self, task: NewTask) -> str | None:
        """Enqueue one task; its id, or None when its dedupe key is already queued."""
        done = self.enqueue_many([task])
        return done.task_ids[0] if done.task_ids else None

    def enqueue_many(self, tasks: Iterable[NewTask]) -> Enqueued:
        """Enqueue ``tasks`` in one validated write, skipping dedupe keys already pending or
        running (and repeats of a key within the batch: the first one is kept)."""
        batch = list(tasks)
        if not all(isinstance(t, NewTask) for t in batch):
            raise ConfigurationError("enqueue_many takes NewTask objects")
        keys = sorted({t.dedupe_key for t in batch if t.dedupe_key is not None})
        # The keys checked are the keys written beside: one transaction, when there are any.
        with self.store.transaction() if keys else nullcontext():
            taken = {r[0] for r in self.store.query(sql.ACTIVE_KEYS, [keys])} if keys else set()
            kept: list[NewTask] = []
            for task in batch:
                if task.dedupe_key is not None:
                    if task.dedupe_key in taken:
                        continue
                    taken.add(task.dedupe_key)
                kept.append(task)
            now = self.clock()
            ids = _new_ids(len(kept), now)
            if kept:
                self.store.write("tasks", _rows(kept, ids, now))
        return Enqueued(tuple(ids), len(batch) - len(kept))

    # -- working ----------------------------------------------------------------------------------
    def claim(
        self,
        worker_id: str,
        task_types: Sequence[str] | None = None,
        lease: timedelta = DEFAULT_LEASE,
    ) -> Task | None:
        """Take the next task (highest priority, then oldest) and hold it for ``lease``.

        A running task whose lease lapsed is taken over. None when nothing can run now.
        """
        taken = self.claim_many(worker_id, 1, task_types, lease)
        return taken[0] if taken else None

    def claim_many(
        self,
        worker_id: str,
        n: int,
        task_types: Sequence[str] | None = None,
        lease: timedelta = DEFAULT_LEASE,
    ) -> list[Task]:
        """Take up to ``n`` next tasks at once, in the order ``claim`` would take them one by
        one, each held for ``lease`` (a worker that runs several tasks side by side). Empty
        when nothing can run now."""
        if not worker_id:
            raise ConfigurationError("claim needs a worker_id naming the worker")
        if lease <= timedelta(0):
            raise ConfigurationError(f"lease must be positive, not {lease}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigurationError(f"claim_many takes a whole number of tasks >= 1, not {n!r}")
        now = self.clock()
        params: list[object] = [worker_id, now + lease, now, now, now]
        skipping = self.store.engine.skips_locked_rows
        statement: str | exp.Expr = sql.CLAIM_SKIPPING if skipping else sql.CLAIM
        if task_types is not None:
            statement = sql.CLAIM_TYPES_SKIPPING if skipping else sql.CLAIM_TYPES
            params.append(list(task_types))
        rows = self.store.change(statement, [*params, n])
        if rows:
            # RETURNING keeps no order: put the tasks back in the order they were picked in.
            tasks = [Task.from_row(row) for row in rows]
            return sorted(tasks, key=lambda t: (-t.priority, t.created_at, t.task_id))
        self.release_lapsed()  # tasks out of attempts whose lease lapsed end as failed
        return []

    def complete(self, task: Task) -> Task:
        """Mark the claimed ``task`` succeeded."""
        now = self.clock()
        self._hold(task, sql.COMPLETE, [now])
        return replace(
            task, status="succeeded", lease_owner=None, lease_expires_at=None, updated_at=now
        )

    def fail(self, task: Task, error: str, *, retry: bool = True) -> Task:
        """Record a failed attempt of the claimed ``task``: it is queued again after the
        backoff while attempts remain (and ``retry``), else it ends failed."""
        if not error:
            raise ConfigurationError("fail() needs the error that made the attempt fail")
        now = self.clock()
        again = now + self.backoff.delay(task.attempts)
        return Task.from_row(self._held(task, sql.FAIL, [retry, again, error, now]))

    def extend(self, task: Task, lease: timedelta = DEFAULT_LEASE) -> Task:
        """Renew the lease on ``task`` for ``lease`` from now (for long work)."""
        if lease <= timedelta(0):
            raise ConfigurationError(f"lease must be positive, not {lease}")
        now = self.clock()
        self._hold(task, sql.EXTEND, [now + lease, now])
        return replace(task, lease_expires_at=now + lease, updated_at=now)

    def release(self, task: Task) -> Task:
        """Give the claimed ``task`` back before working on it (a worker asked to stop): it is
        pending again at once, and the attempt it was claimed for is not counted."""
        now = self.clock()
        self._hold(task, sql.RELEASE, [now, now])
        return replace(
            task,
            status="pending",
            attempts=task.attempts - 1,
            lease_owner=None,
            lease_expires_at=None,
            available_at=now,
            updated_at=now,
        )

    def _held(self, task: Task, statement: str, params: list[object]) -> tuple[object, ...]:
        """Run ``statement`` on the task while this lease holds it; the changed row."""
        rows = self.store.change(
            statement, [*params, task.task_id, task.lease_owner, task.attempts]
        )
        if rows:
            return rows[0]
        raise self._lost(task)

    def _hold(self, task: Task, statement: str, params: list[object]) -> None:
        """``_held`` for a statement without RETURNING (the caller knows the new row)."""
        if not self.store.update(
            statement, [*params, task.task_id, task.lease_owner, task.attempts]
        ):
            raise self._lost(task)

    def _lost(self, task: Task) -> LeaseLostError:
        current = self.get(task.task_id)
        return LeaseLostError(
            f"task {task.task_id} (attempt {task.attempts}) is no longer held by "
            f"{task.lease_owner}: it is now {_state(current)}; drop this attempt's result"
        )

    # -- managing ---------------------------------------------------------------------------------
    def release_lapsed(self) -> int:
        """Return running tasks whose lease lapsed to pending (failed when out of attempts)."""
        now = self.clock()
        return len(self.store.change(sql.RELEASE_LAPSED, [now, now, now]))

    def release_held_by(self, owners: Sequence[str]) -> int:
        """Return the running tasks of workers known to be gone (their process ended) to
        pending now, failed when out of attempts, instead of waiting for their leases to
        lapse. Returns how many changed."""
        if not owners:
            return 0
        now = self.clock()
        return len(self.store.change(sql.RELEASE_OWNERS, [now, now, list(owners)]))

    def supersede(self, task_ids: Sequence[str] = (), *, dedupe_keys: Sequence[str] = ()) -> int:
        """Mark pending or running tasks superseded (their work is no longer wanted); a
        worker holding one gets LeaseLostError when it reports. Returns how many changed."""
        rows = self.store.change(sql.SUPERSEDE, [self.clock(), list(task_ids), list(dedupe_keys)])
        return len(rows)

    def retry(self, status: str = "failed", task_ids: Sequence[str] | None = None) -> int:
        """Queue finished tasks again from their first attempt (all of ``status``, or the
        given ids of it). A task whose dedupe key is queued again meanwhile is left alone,
        as is all but the newest of several tasks sharing a key. Returns how many."""
        if status not in FINISHED:
            raise ConfigurationError(
                f"only finished tasks can be retried ({', '.join(FINISHED)}), not {status!r}"
            )
        with self.store.transaction():
            tasks = self.store.table("tasks")
            chosen = tasks.filter(tasks.status == status)
            if task_ids is not None:
                chosen = chosen.filter(tasks.task_id.isin(list(task_ids)))
            found = self.store.to_pyarrow(
                chosen.select("task_id", "dedupe_key", "created_at").order_by(
                    ibis.desc("created_at"), ibis.desc("task_id")
                )
            ).to_pylist()
            keys = sorted({r["dedupe_key"] for r in found if r["dedupe_key"] is not None})
            taken = {r[0] for r in self.store.query(sql.ACTIVE_KEYS, [keys])} if keys else set()
            picked = []
            for row in found:
                key = row["dedupe_key"]
                if key is not None:
                    if key in taken:
                        continue
                    taken.add(key)
                picked.append(row["task_id"])
            if not picked:
                return 0
            now = self.clock()
            return len(self.store.change(sql.RETRY, [now, now, picked]))

    def purge(self, statuses: Sequence[str] = FINISHED, *, before: datetime | None = None) -> int:
        """Delete tasks in ``statuses`` (default: finished ones), last changed before
        ``before`` if given. Running tasks are held by workers and cannot be purged."""
        wanted = list(dict.fromkeys(statuses))
        unknown = [s for s in wanted if s not in STATUSES]
        if unknown:
            raise ConfigurationError(
                f"unknown task status {unknown[0]!r}; statuses are {', '.join(STATUSES)}"
            )
        if "running" in wanted:
            raise ConfigurationError(
                "running tasks are held by workers and cannot be purged; supersede them, or "
                "wait until they finish or their lease lapses"
            )
        if not wanted:
            return 0

        def doomed(t: ibis.Table) -> ibis.BooleanValue:
            where = t.status.isin(wanted)
            if before is not None:
                where &= ibis.coalesce(t.updated_at, t.created_at) < before
            return where

        return self.store.delete("tasks", doomed)

    # -- reading ----------------------------------------------------------------------------------
    def get(self, task_id: str) -> Task | None:
        rows = self.store.query(sql.GET, [task_id])
        return Task.from_row(rows[0]) if rows else None

    def require(self, task_id: str) -> Task:
        task = self.get(task_id)
        if task is None:
            raise NotFoundError(
                f"no task {task_id!r} in {self.store.url}; see `egregora tasks list`"
            )
        return task

    def active(self, task_types: Sequence[str] | None = None) -> list[Task]:
        """The pending and running tasks (of ``task_types``), in claim order: what is left
        to do, and who holds what."""
        tasks = self.store.table("tasks")
        tasks = tasks.filter(tasks.status.isin(list(ACTIVE)))
        if task_types is not None:
            tasks = tasks.filter(tasks.task_type.isin(list(task_types)))
        tasks = tasks.order_by(ibis.desc("priority"), "created_at", "task_id")
        rows = self.store.to_pyarrow(tasks.select(*COLUMNS)).to_pylist()
        return [Task.from_row(tuple(r.values())) for r in rows]

    def list(
        self,
        status: str | None = None,
        task_type: str | None = None,
        limit: int | None = 100,
    ) -> list[Task]:
        """Tasks in claim order (next to run first), filtered by status and type."""
        if status is not None and status not in STATUSES:
            raise ConfigurationError(
                f"unknown task status {status!r}; statuses are {', '.join(STATUSES)}"
            )
        tasks = self.store.table("tasks")
        if status is not None:
            tasks = tasks.filter(tasks.status == status)
        if task_type is not None:
            tasks = tasks.filter(tasks.task_type == task_type)
        tasks = tasks.order_by(ibis.desc("priority"), "created_at", "task_id")
        if limit is not None:
            tasks = tasks.limit(limit)
        rows = self.store.to_pyarrow(tasks.select(*COLUMNS)).to_pylist()
        return [Task.from_row(tuple(r.values())) for r in rows]

    def counts(self, run_id: str | None = None) -> dict[str, int]:
        """How many tasks (of ``run_id``, if given) are in each status, zeros included."""
        tasks = self.store.table("tasks")
        if run_id is not None:
            tasks = tasks.filter(tasks.run_id == run_id)
        found = self.store.to_pyarrow(tasks.group_by("status").agg(n=tasks.count())).to_pylist()
        by_status = {r["status"]: int(r["n"]) for r in found}
        return {s: by_status.get(s, 0) for s in STATUSES}


def _state(task: Task | None) -> str:
    if task is None:
        return "deleted"
    if task.status == "running":
        return f"held by {task.lease_owner} (attempt {task.attempts})"
    return task.status


def _new_ids(n: int, now: datetime) -> list[str]:
    """Ids that sort in enqueue order within a process (time, then a counter), and do not
    collide across processes (a random tail)."""
    stamp = int(now.timestamp() * 1_000_000)
    tail = secrets.token_hex(4)
    return [f"{stamp:014x}-{next(_counter) & 0xFFFFFFFF:08x}-{tail}" for _ in range(n)]


def _rows(tasks: list[NewTask], ids: list[str], now: datetime) -> pa.Table:
    stamp = pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            "task_id": pa.array(ids, pa.string()),
            "run_id": pa.array([t.run_id for t in tasks], pa.string()),
            "task_type": pa.array([t.task_type for t in tasks], pa.string()),
            "status": pa.array(["pending"] * len(tasks), pa.string()),
            "dedupe_key": pa.array([t.dedupe_key for t in tasks], pa.string()),
            "payload": pa.array([_payload(t) for t in tasks], pa.string()),
            "priority": pa.array([t.priority for t in tasks], pa.int64()),
            "attempts": pa.array([0] * len(tasks), pa.int64()),
            "max_attempts": pa.array([t.max_attempts for t in tasks], pa.int64()),
            "created_at": pa.array([now] * len(tasks), stamp),
            "updated_at": pa.array([now] * len(tasks), stamp),
            "available_at": pa.array([now + t.delay for t in tasks], stamp),
        }
    )


def _payload(task: NewTask) -> str:
    try:
        return json.dumps(dict(task.payload), sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"the payload of a {task.task_type} task is not JSON: {exc}; pass plain values"
        ) from exc
