"""The task queue (``egregora.tasks``) and its CLI (``egregora tasks``).

Most tests drive a ``TaskStore`` with a fake clock, so backoff, lease lapses and claim order are
exact. Two acceptance tests use real threads: four of them draining 10,000 tasks exactly once on
the real clock (about a minute or more), and a worker that dies mid-task losing it to the next
one once its lease lapses on the fake clock.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from egregora.cli.app import app
from egregora.errors import ConfigurationError, ContractViolation, LeaseLostError, NotFoundError
from egregora.storage import Storage
from egregora.tasks import (
    ACTIVE,
    FINISHED,
    STATUSES,
    Backoff,
    Enqueued,
    NewTask,
    Task,
    TaskStore,
)
from tests.support import FakeClock

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
BACKOFF = Backoff(base=timedelta(seconds=10), factor=2, cap=timedelta(hours=1), jitter=0.0)
runner = CliRunner()


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers.
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def store(any_store: Storage) -> Storage:
    return any_store  # on each engine


@pytest.fixture
def queue(store: Storage, clock: FakeClock) -> TaskStore:
    return TaskStore(store, backoff=BACKOFF, clock=clock)


def _all(queue: TaskStore) -> list[Task]:
    """Every stored task, every column: equal lists mean an unchanged table."""
    return queue.list(limit=None)


def _claim(queue: TaskStore, worker: str = "worker-1", lease: timedelta = MINUTE) -> Task:
    task = queue.claim(worker, lease=lease)
    assert task is not None, "expected a claimable task"
    return task


def _finish(queue: TaskStore, task: Task, how: str) -> None:
    """End the claimed ``task`` as ``how`` (one of FINISHED)."""
    if how == "succeeded":
        queue.complete(task)
    elif how == "failed":
        queue.fail(task, "boom", retry=False)
    else:
        assert queue.supersede([task.task_id]) == 1
    assert queue.require(task.task_id).status == how


def _add_run(store: Storage, run_id: str) -> None:
    store.write(
        "runs", [{"run_id": run_id, "stage": "write", "status": "running", "started_at": T0}]
    )


# ---------------------------------------------------------------------------------------------
# Enqueueing.
# ---------------------------------------------------------------------------------------------
def test_enqueue_many_writes_pending_tasks_in_input_order(
    queue: TaskStore, clock: FakeClock
) -> None:
    payload = {"window": 3, "title": "ação", "tags": ["a", {"nested": None}]}
    done: Enqueued = queue.enqueue_many(
        [
            NewTask("write", payload, dedupe_key="w3", priority=2, max_attempts=5),
            NewTask("index", delay=timedelta(minutes=10)),
            NewTask("write", {"window": 4}),
        ]
    )
    assert done.skipped == 0 and len(done.task_ids) == 3 and len(set(done.task_ids)) == 3
    assert list(done.task_ids) == sorted(done.task_ids)  # ids sort in enqueue order
    first, second, third = (queue.require(i) for i in done.task_ids)
    assert (first.task_type, second.task_type, third.task_type) == ("write", "index", "write")
    assert first.payload == payload and second.payload == {} and third.payload == {"window": 4}
    assert (first.dedupe_key, first.priority, first.max_attempts) == ("w3", 2, 5)
    assert (second.dedupe_key, second.priority, second.max_attempts) == (None, 0, 3)
    for task in (first, second, third):
        assert task.status == "pending" and task.attempts == 0
        assert task.lease_owner is None and task.lease_expires_at is None
        assert task.last_error is None and task.run_id is None
        assert task.created_at == task.updated_at == T0
    assert first.available_at == third.available_at == T0
    assert second.available_at == T0 + timedelta(minutes=10)
    clock.advance(SECOND)
    later = queue.enqueue(NewTask("write"))
    assert later is not None and later > done.task_ids[-1]
    assert queue.require(later).created_at == T0 + SECOND
    assert queue.counts() == dict.fromkeys(STATUSES, 0) | {"pending": 4}


def test_enqueue_of_nothing_writes_nothing(queue: TaskStore) -> None:
    assert queue.enqueue_many([]) == Enqueued((), 0)
    assert _all(queue) == []


def test_a_bad_batch_writes_nothing(queue: TaskStore) -> None:
    queue.enqueue(NewTask("write", {"window": 1}, dedupe_key="w1"))
    before = _all(queue)
    with pytest.raises(ConfigurationError, match="not JSON"):
        queue.enqueue_many([NewTask("write", {"ok": 1}), NewTask("write", {"bad": object()})])
    assert _all(queue) == before
    with pytest.raises(ConfigurationError, match="not JSON"):  # NaN is not JSON either
        queue.enqueue_many([NewTask("write", {"ok": 1}), NewTask("write", {"x": math.nan})])
    assert _all(queue) == before
    with pytest.raises(ConfigurationError, match="NewTask"):
        queue.enqueue_many([NewTask("write"), {"task_type": "write"}])  # type: ignore[list-item]
    assert _all(queue) == before
    with pytest.raises(ContractViolation, match="run_id"):  # the batch is validated as a whole
        queue.enqueue_many([NewTask("write", dedupe_key="w2"), NewTask("write", run_id="nope")])
    assert _all(queue) == before
    with pytest.raises(ConfigurationError, match="max_attempts"):
        queue.enqueue_many([NewTask("write"), NewTask("write", max_attempts=0)])
    with pytest.raises(ConfigurationError, match="task_type"):
        queue.enqueue_many([NewTask("write"), NewTask("")])
    with pytest.raises(ConfigurationError, match="delay"):
        queue.enqueue_many([NewTask("write"), NewTask("write", delay=-SECOND)])
    assert _all(queue) == before
    assert queue.enqueue(NewTask("write", dedupe_key="w2")) is not None  # w2 was never queued


def test_a_run_id_that_exists_is_kept_and_counted(store: Storage, queue: TaskStore) -> None:
    _add_run(store, "run-1")
    ids = queue.enqueue_many([NewTask("write", run_id="run-1"), NewTask("write")]).task_ids
    assert queue.require(ids[0]).run_id == "run-1"
    _finish(queue, _claim(queue), "succeeded")
    assert queue.counts(run_id="run-1") == dict.fromkeys(STATUSES, 0) | {"succeeded": 1}
    assert queue.counts() == dict.fromkeys(STATUSES, 0) | {"succeeded": 1, "pending": 1}
    assert queue.counts(run_id="other") == dict.fromkeys(STATUSES, 0)


def test_an_active_dedupe_key_is_skipped_and_a_batch_keeps_the_first(queue: TaskStore) -> None:
    first = queue.enqueue(NewTask("write", {"v": 0}, dedupe_key="k1"))
    assert first is not None
    done = queue.enqueue_many(
        [
            NewTask("write", {"v": 1}, dedupe_key="k1"),  # pending already
            NewTask("write", {"v": 2}, dedupe_key="k2"),
            NewTask("write", {"v": 3}, dedupe_key="k2"),  # repeat within the batch
            NewTask("write", {"v": 4}),
            NewTask("write", {"v": 5}),  # no key: never deduplicated
        ]
    )
    assert done.skipped == 2 and len(done.task_ids) == 3
    assert [queue.require(i).payload for i in done.task_ids] == [{"v": 2}, {"v": 4}, {"v": 5}]
    assert queue.enqueue(NewTask("write", dedupe_key="k1")) is None
    _claim(queue)  # k1 runs now: still active
    assert queue.require(first).status == "running"
    assert queue.enqueue(NewTask("write", dedupe_key="k1")) is None
    assert queue.enqueue_many([NewTask("write", dedupe_key="k1")]) == Enqueued((), 1)
    assert queue.counts()["pending"] + queue.counts()["running"] == 4


@pytest.mark.parametrize("how", FINISHED)
def test_a_finished_key_can_be_queued_again(queue: TaskStore, how: str) -> None:
    first = queue.enqueue(NewTask("write", dedupe_key="k"))
    _finish(queue, _claim(queue), how)
    again = queue.enqueue(NewTask("write", {"again": True}, dedupe_key="k"))
    assert again is not None and again != first
    assert queue.require(again).status == "pending"
    assert queue.enqueue(NewTask("write", dedupe_key="k")) is None  # active once more


def test_threads_enqueuing_one_key_queue_it_once(store: Storage) -> None:
    queue = TaskStore(store)
    written: list[str] = []
    errors: list[BaseException] = []

    def enqueue() -> None:
        try:
            for _ in range(25):
                task_id = queue.enqueue(NewTask("write", dedupe_key="shared"))
                if task_id is not None:
                    written.append(task_id)
        except BaseException as exc:  # reported below: a thread's error is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=enqueue) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(written) == 1 and [t.task_id for t in _all(queue)] == written


# ---------------------------------------------------------------------------------------------
# Claiming.
# ---------------------------------------------------------------------------------------------
def test_claim_marks_the_task_running_under_a_lease(queue: TaskStore, clock: FakeClock) -> None:
    task_id = queue.enqueue(NewTask("write", {"w": 1}))
    clock.advance(SECOND)
    task = queue.claim("worker-1", lease=timedelta(minutes=5))
    assert task is not None and task.task_id == task_id
    assert (task.status, task.attempts, task.lease_owner) == ("running", 1, "worker-1")
    assert task.lease_expires_at == T0 + SECOND + timedelta(minutes=5)
    assert task.updated_at == T0 + SECOND and task.created_at == T0
    assert task.payload == {"w": 1} and task.last_error is None
    assert queue.require(task.task_id) == task
    assert queue.claim("worker-2") is None  # nothing else to do


def test_claim_takes_highest_priority_then_oldest_then_first_enqueued(
    queue: TaskStore, clock: FakeClock
) -> None:
    low_old = queue.enqueue(NewTask("t", {"n": "low_old"}, priority=0))
    clock.advance(SECOND)
    batch = queue.enqueue_many(
        [
            NewTask("t", {"n": "low_new"}, priority=0),
            NewTask("t", {"n": "high_1"}, priority=5),
            NewTask("t", {"n": "high_2"}, priority=5),
        ]
    ).task_ids
    same_time = queue.enqueue(NewTask("t", {"n": "high_3"}, priority=5))  # same created_at
    clock.advance(SECOND)
    queue.enqueue(NewTask("t", {"n": "high_newest"}, priority=5))
    queue.enqueue(NewTask("t", {"n": "urgent"}, priority=9))
    assert same_time is not None and same_time > batch[-1]
    assert queue.require(same_time).created_at == queue.require(batch[-1]).created_at
    expected = ["urgent", "high_1", "high_2", "high_3", "high_newest", "low_old", "low_new"]
    assert [t.payload["n"] for t in queue.list()] == expected  # list shows claim order
    claimed = []
    while (task := queue.claim("worker-1")) is not None:
        claimed.append(task.payload["n"])
    assert claimed == expected
    assert queue.require(low_old or "").attempts == 1


def test_ties_go_to_the_smaller_task_id_not_the_row_stored_first(
    store: Storage, queue: TaskStore
) -> None:
    same = {"task_type": "t", "status": "pending", "priority": 0, "attempts": 0}
    times = {"max_attempts": 3, "created_at": T0, "updated_at": T0, "available_at": T0}
    store.write("tasks", [{"task_id": "task-b", **same, **times}])
    store.write("tasks", [{"task_id": "task-a", **same, **times}])
    assert [t.task_id for t in queue.list()] == ["task-a", "task-b"]
    assert [_claim(queue).task_id, _claim(queue).task_id] == ["task-a", "task-b"]


def test_claim_only_takes_the_named_task_types(queue: TaskStore) -> None:
    queue.enqueue(NewTask("write", priority=9))
    index_id = queue.enqueue(NewTask("index"))
    assert queue.claim("worker-1", task_types=["nope"]) is None
    assert queue.claim("worker-1", task_types=[]) is None
    task = queue.claim("worker-1", task_types=["index", "other"])
    assert task is not None and task.task_id == index_id
    assert queue.claim("worker-1", task_types=["index"]) is None
    other = queue.claim("worker-1", task_types=None)
    assert other is not None and other.task_type == "write"


def test_a_delayed_task_is_not_claimed_before_its_time(queue: TaskStore, clock: FakeClock) -> None:
    later = queue.enqueue(NewTask("write", delay=timedelta(seconds=30), priority=9))
    now = queue.enqueue(NewTask("write"))
    task = queue.claim("worker-1")
    assert task is not None and task.task_id == now  # the delayed one outranks it, but waits
    clock.advance(timedelta(seconds=29))
    assert queue.claim("worker-1") is None
    clock.advance(SECOND)
    task = queue.claim("worker-1")
    assert task is not None and task.task_id == later


def test_claim_refuses_a_nameless_worker_or_an_empty_lease(queue: TaskStore) -> None:
    queue.enqueue(NewTask("write"))
    before = _all(queue)
    with pytest.raises(ConfigurationError, match="worker_id"):
        queue.claim("")
    with pytest.raises(ConfigurationError, match="lease"):
        queue.claim("worker-1", lease=timedelta(0))
    with pytest.raises(ConfigurationError, match="lease"):
        queue.claim("worker-1", lease=-MINUTE)
    assert _all(queue) == before


def test_claim_many_takes_the_next_tasks_in_claim_order_each_under_its_lease(
    queue: TaskStore, clock: FakeClock
) -> None:
    for n, priority in enumerate([0, 5, 5, 9, 0]):
        queue.enqueue(NewTask("t", {"n": n}, priority=priority))
        clock.advance(SECOND)
    expected = [t.task_id for t in queue.list()]
    taken = queue.claim_many("worker-1", 3, lease=MINUTE)
    assert [t.task_id for t in taken] == expected[:3]
    assert [t.payload["n"] for t in taken] == [3, 1, 2]
    for task in taken:
        assert (task.status, task.attempts, task.lease_owner) == ("running", 1, "worker-1")
        assert task.lease_expires_at == clock() + MINUTE
        assert queue.require(task.task_id) == task
    rest = queue.claim_many("worker-2", 10)  # fewer left than asked for
    assert [t.task_id for t in rest] == expected[3:]
    assert queue.claim_many("worker-3", 10) == []
    for task in [*taken, *rest]:
        queue.complete(task)
    assert queue.counts()["succeeded"] == 5


def test_claim_many_refuses_a_count_that_is_not_a_whole_number_of_tasks(
    queue: TaskStore,
) -> None:
    queue.enqueue(NewTask("write"))
    before = _all(queue)
    for n in (0, -1, 1.5, True):
        with pytest.raises(ConfigurationError, match="claim_many"):
            queue.claim_many("worker-1", n)  # type: ignore[arg-type]
    assert _all(queue) == before


# ---------------------------------------------------------------------------------------------
# Completing, failing and extending under a lease.
# ---------------------------------------------------------------------------------------------
def test_complete_marks_the_task_succeeded_once(queue: TaskStore, clock: FakeClock) -> None:
    queue.enqueue(NewTask("write"))
    task = _claim(queue)
    clock.advance(SECOND)
    done = queue.complete(task)
    stored = queue.require(task.task_id)
    assert done == stored
    assert (stored.status, stored.attempts, stored.lease_owner) == ("succeeded", 1, None)
    assert stored.lease_expires_at is None and stored.updated_at == T0 + SECOND
    with pytest.raises(LeaseLostError, match="succeeded"):
        queue.complete(task)
    assert queue.require(task.task_id) == stored


STALE: dict[str, Callable[[Task], Task]] = {
    "other owner": lambda t: replace(t, lease_owner="worker-2"),
    "earlier attempt": lambda t: replace(t, attempts=t.attempts - 1),
    "unknown task": lambda t: replace(t, task_id="no-such-task"),
}
ACTIONS: dict[str, Callable[[TaskStore, Task], object]] = {
    "complete": lambda q, t: q.complete(t),
    "fail": lambda q, t: q.fail(t, "boom"),
    "fail without retry": lambda q, t: q.fail(t, "boom", retry=False),
    "extend": lambda q, t: q.extend(t, timedelta(hours=1)),
}


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("stale", STALE)
def test_a_handle_that_is_not_the_lease_changes_nothing(
    queue: TaskStore, stale: str, action: str
) -> None:
    queue.enqueue(NewTask("write"))
    task = _claim(queue)
    before = _all(queue)
    with pytest.raises(LeaseLostError, match="no longer held"):
        ACTIONS[action](queue, STALE[stale](task))
    assert _all(queue) == before
    ACTIONS[action](queue, task)  # the real lease still works


def test_extend_renews_the_lease_from_now(queue: TaskStore, clock: FakeClock) -> None:
    queue.enqueue(NewTask("write"))
    task = _claim(queue, lease=MINUTE)
    clock.advance(timedelta(seconds=50))
    extended = queue.extend(task, timedelta(minutes=2))
    assert extended.lease_expires_at == T0 + timedelta(seconds=170)
    assert extended.updated_at == T0 + timedelta(seconds=50)
    assert (extended.status, extended.attempts, extended.lease_owner) == ("running", 1, "worker-1")
    assert queue.require(task.task_id) == extended
    clock.advance(timedelta(seconds=119))  # well past the first lease, before the new one
    assert queue.claim("worker-2") is None
    assert queue.release_lapsed() == 0
    assert queue.complete(task).status == "succeeded"  # the old handle names the same lease
    with pytest.raises(ConfigurationError, match="lease"):
        queue.extend(task, timedelta(0))


def test_a_lapsed_lease_is_taken_over_by_the_next_claim(queue: TaskStore, clock: FakeClock) -> None:
    queue.enqueue(NewTask("write", max_attempts=3))
    held = _claim(queue, "worker-a", lease=MINUTE)
    clock.advance(timedelta(seconds=59))
    assert queue.claim("worker-b") is None
    assert queue.require(held.task_id).lease_owner == "worker-a"
    clock.advance(SECOND)  # the lease lapses at its expiry
    taken = _claim(queue, "worker-b", lease=MINUTE)
    assert taken.task_id == held.task_id
    assert (taken.attempts, taken.lease_owner, taken.status) == (2, "worker-b", "running")
    assert taken.lease_expires_at == T0 + 2 * MINUTE
    assert taken.last_error is not None and "lease of worker-a lapsed" in taken.last_error
    for action in ACTIONS.values():
        with pytest.raises(LeaseLostError, match="held by worker-b"):
            action(queue, held)
        assert queue.require(held.task_id) == taken
    done = queue.complete(taken)
    assert (done.status, done.attempts) == ("succeeded", 2)
    assert queue.require(held.task_id).status == "succeeded"


def test_a_lapsed_task_out_of_attempts_ends_failed(queue: TaskStore, clock: FakeClock) -> None:
    task_id = queue.enqueue(NewTask("write", max_attempts=1))
    held = _claim(queue, "worker-a", lease=MINUTE)
    clock.advance(2 * MINUTE)
    assert queue.claim("worker-b") is None  # no attempt left: not taken over, failed instead
    failed = queue.require(task_id or "")
    assert (failed.status, failed.attempts, failed.lease_owner) == ("failed", 1, None)
    assert failed.lease_expires_at is None and failed.updated_at == T0 + 2 * MINUTE
    assert failed.last_error is not None and "lease of worker-a lapsed" in failed.last_error
    with pytest.raises(LeaseLostError, match="failed"):
        queue.complete(held)


def test_release_lapsed_returns_lapsed_tasks_to_the_queue(
    queue: TaskStore, clock: FakeClock
) -> None:
    queue.enqueue_many([NewTask("a", max_attempts=2), NewTask("b", max_attempts=1), NewTask("c")])
    first, second = _claim(queue, lease=MINUTE), _claim(queue, lease=5 * MINUTE)
    third = _claim(queue, lease=MINUTE)
    queue.complete(third)
    assert queue.release_lapsed() == 0
    clock.advance(2 * MINUTE)
    assert queue.release_lapsed() == 1  # only the first lease lapsed; completed ones don't
    released = queue.require(first.task_id)
    assert (released.status, released.attempts, released.lease_owner) == ("pending", 1, None)
    assert released.available_at == T0 + 2 * MINUTE
    assert released.last_error is not None and "lease of worker-1 lapsed" in released.last_error
    assert queue.require(second.task_id).status == "running"
    clock.advance(5 * MINUTE)
    assert queue.release_lapsed() == 1
    assert queue.require(second.task_id).status == "failed"  # b had one attempt
    assert queue.release_lapsed() == 0
    again = _claim(queue)
    assert (again.task_id, again.attempts) == (first.task_id, 2)


# ---------------------------------------------------------------------------------------------
# Failing: backoff, retries, giving up.
# ---------------------------------------------------------------------------------------------
def test_a_failed_attempt_waits_out_the_backoff_until_no_attempt_is_left(
    queue: TaskStore, clock: FakeClock
) -> None:
    task_id = queue.enqueue(NewTask("write", max_attempts=4))
    waits = []
    for attempt in range(1, 4):
        task = _claim(queue)
        assert (task.task_id, task.attempts) == (task_id, attempt)
        failed = queue.fail(task, f"error {attempt}")
        assert failed == queue.require(task.task_id)
        assert (failed.status, failed.last_error) == ("pending", f"error {attempt}")
        assert failed.lease_owner is None and failed.lease_expires_at is None
        wait = failed.available_at - clock.now
        waits.append(wait)
        clock.advance(wait - timedelta(microseconds=1))
        assert queue.claim("worker-1") is None  # still backing off
        clock.advance(timedelta(microseconds=1))
    assert waits == [timedelta(seconds=s) for s in (10, 20, 40)]
    last = _claim(queue)
    assert last.attempts == 4
    failed = queue.fail(last, "error 4")
    assert (failed.status, failed.attempts, failed.last_error) == ("failed", 4, "error 4")
    assert queue.require(last.task_id) == failed
    clock.advance(timedelta(days=1))
    assert queue.claim("worker-1") is None


def test_a_task_in_backoff_lets_other_work_through(queue: TaskStore, clock: FakeClock) -> None:
    flaky = queue.enqueue(NewTask("write", priority=9))
    other = queue.enqueue(NewTask("write"))
    queue.fail(_claim(queue), "flaky")
    task = _claim(queue)
    assert task.task_id == other
    clock.advance(timedelta(seconds=10))
    task = _claim(queue)
    assert (task.task_id, task.attempts) == (flaky, 2)


def test_fail_without_retry_fails_at_once(queue: TaskStore) -> None:
    queue.enqueue(NewTask("write", max_attempts=5))
    failed = queue.fail(_claim(queue), "not worth retrying", retry=False)
    assert (failed.status, failed.attempts, failed.last_error) == (
        "failed",
        1,
        "not worth retrying",
    )
    assert queue.claim("worker-1") is None


def test_fail_needs_the_error(queue: TaskStore) -> None:
    queue.enqueue(NewTask("write"))
    task = _claim(queue)
    with pytest.raises(ConfigurationError, match="error"):
        queue.fail(task, "")
    assert queue.require(task.task_id) == task


def test_backoff_grows_by_the_factor_up_to_the_cap() -> None:
    backoff = Backoff(base=timedelta(seconds=3), factor=3, cap=timedelta(minutes=1), jitter=0.0)
    assert [backoff.delay(n).total_seconds() for n in range(1, 6)] == [3, 9, 27, 60, 60]
    assert backoff.delay(0) == timedelta(seconds=3)  # never less than the base
    flat = Backoff(base=timedelta(seconds=5), factor=1, jitter=0.0)
    assert flat.delay(1) == flat.delay(7) == timedelta(seconds=5)


def test_backoff_jitter_spreads_delays_within_its_bounds() -> None:
    backoff = Backoff(base=timedelta(seconds=100), factor=2, jitter=0.25)
    delays = [backoff.delay(1).total_seconds() for _ in range(200)]
    assert all(75 <= d <= 125 for d in delays)
    assert len(set(delays)) > 100  # spread, not one value


@pytest.mark.parametrize(
    "settings",
    [
        {"base": timedelta(seconds=-1)},
        {"factor": 0.5},
        {"jitter": -0.1},
        {"jitter": 1.0},
    ],
)
def test_backoff_refuses_settings_that_make_no_sense(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="Backoff needs"):
        Backoff(**settings)


def test_backoff_is_capped_however_many_attempts_failed() -> None:
    assert BACKOFF.delay(1025) == timedelta(hours=1)
    assert Backoff(factor=1e200, jitter=0.0).delay(5) == timedelta(hours=1)


# ---------------------------------------------------------------------------------------------
# Superseding, retrying, purging.
# ---------------------------------------------------------------------------------------------
def test_supersede_ends_active_tasks_and_the_holder_loses_its_lease(
    queue: TaskStore, clock: FakeClock
) -> None:
    ids = queue.enqueue_many(
        [
            NewTask("write", dedupe_key="running", priority=9),
            NewTask("write", dedupe_key="pending"),
            NewTask("write", dedupe_key="done", priority=5),
            NewTask("write", dedupe_key="kept"),
        ]
    ).task_ids
    held = _claim(queue)
    queue.complete(_claim(queue))
    assert queue.require(ids[2]).status == "succeeded"
    clock.advance(SECOND)
    changed = queue.supersede([ids[1], ids[2]], dedupe_keys=["running", "no-such-key"])
    assert changed == 2  # the finished task is left alone
    statuses = [queue.require(i).status for i in ids]
    assert statuses == ["superseded", "superseded", "succeeded", "pending"]
    stopped = queue.require(held.task_id)
    assert stopped.lease_owner is None and stopped.lease_expires_at is None
    assert stopped.updated_at == T0 + SECOND
    with pytest.raises(LeaseLostError, match="superseded"):
        queue.complete(held)
    with pytest.raises(LeaseLostError, match="superseded"):
        queue.extend(held)
    assert queue.require(held.task_id) == stopped
    assert queue.supersede([ids[0]]) == 0 and queue.supersede() == 0
    queue.purge(["superseded"])
    with pytest.raises(LeaseLostError, match="deleted"):
        queue.fail(held, "late")


def test_retry_queues_finished_tasks_from_their_first_attempt(
    queue: TaskStore, clock: FakeClock
) -> None:
    ids = queue.enqueue_many(
        [NewTask("write", {"n": n}, max_attempts=2, priority=9 - n) for n in range(4)]
    ).task_ids
    for n in range(2):  # the first two fail for good
        queue.fail(_claim(queue), f"error {n}", retry=False)
    queue.complete(_claim(queue))
    clock.advance(MINUTE)
    with pytest.raises(ConfigurationError, match="only finished tasks"):
        queue.retry("pending")
    assert queue.retry(status="failed", task_ids=[ids[1], ids[2], ids[3]]) == 1
    again = queue.require(ids[1])
    assert (again.status, again.attempts, again.lease_owner) == ("pending", 0, None)
    assert again.available_at == again.updated_at == T0 + MINUTE
    assert queue.require(ids[0]).status == "failed"
    assert queue.retry() == 1  # every failed task: only ids[0] is left
    assert queue.retry() == 0
    assert queue.retry("succeeded") == 1
    assert [queue.require(i).status for i in ids] == ["pending"] * 4
    task = _claim(queue)
    assert (task.task_id, task.attempts) == (ids[0], 1)  # a fresh set of attempts
    queue.fail(task, "again")
    assert queue.require(ids[0]).status == "pending"  # attempt 1 of 2: retried again


def test_retry_skips_keys_queued_again_and_keeps_the_newest(
    queue: TaskStore, clock: FakeClock
) -> None:
    old = queue.enqueue(NewTask("write", {"v": "old"}, dedupe_key="k", max_attempts=1))
    queue.fail(_claim(queue), "boom")
    clock.advance(SECOND)
    new = queue.enqueue(NewTask("write", {"v": "new"}, dedupe_key="k", max_attempts=1))
    queue.fail(_claim(queue), "boom")
    busy = queue.enqueue(NewTask("write", dedupe_key="busy", max_attempts=1))
    queue.fail(_claim(queue), "boom")
    clock.advance(SECOND)
    queue.enqueue(NewTask("write", dedupe_key="busy"))  # the key is queued again meanwhile
    assert queue.retry() == 1
    assert queue.require(new or "").status == "pending"
    assert queue.require(old or "").status == "failed"
    assert queue.require(busy or "").status == "failed"
    assert queue.retry(task_ids=[old or ""]) == 0  # its key is active again now


def test_purge_deletes_finished_tasks_and_never_running_ones(
    queue: TaskStore, clock: FakeClock
) -> None:
    ids = queue.enqueue_many([NewTask("write", {"n": n}, priority=9 - n) for n in range(5)])
    first, second, third, fourth, _ = ids.task_ids
    queue.complete(_claim(queue))
    clock.advance(MINUTE)
    queue.fail(_claim(queue), "boom", retry=False)
    queue.supersede([third])
    running = _claim(queue)
    assert running.task_id == fourth
    before = _all(queue)
    for statuses in (["running"], ["failed", "running"], ["pending", "nope"], ["done"]):
        with pytest.raises(ConfigurationError):
            queue.purge(statuses)
        assert _all(queue) == before
    with pytest.raises(ConfigurationError, match="running tasks are held"):
        queue.purge(["running"])
    assert queue.purge([]) == 0
    assert queue.purge(before=T0 + SECOND) == 1  # only the first finished before then
    assert queue.get(first) is None and queue.get(second) is not None
    assert queue.purge(FINISHED) == 2
    assert [t.status for t in _all(queue)] == ["running", "pending"]
    assert queue.purge(["pending"]) == 1
    assert [t.task_id for t in _all(queue)] == [fourth]
    assert queue.complete(running).status == "succeeded"


# ---------------------------------------------------------------------------------------------
# Reading.
# ---------------------------------------------------------------------------------------------
def test_get_require_list_and_counts(queue: TaskStore) -> None:
    ids = queue.enqueue_many(
        [NewTask("write", priority=3), NewTask("index", priority=2), NewTask("write")]
    ).task_ids
    assert queue.get("no-such-task") is None
    with pytest.raises(NotFoundError, match="no-such-task"):
        queue.require("no-such-task")
    queue.complete(_claim(queue))
    assert [t.task_id for t in queue.list()] == list(ids)
    assert [t.task_id for t in queue.list(status="pending")] == [ids[1], ids[2]]
    assert [t.task_id for t in queue.list(task_type="write")] == [ids[0], ids[2]]
    assert [t.task_id for t in queue.list(status="pending", task_type="write")] == [ids[2]]
    assert [t.task_id for t in queue.list(limit=2)] == [ids[0], ids[1]]
    assert queue.list(status="failed") == [] and queue.list(task_type="nope") == []
    assert queue.list() == [queue.require(i) for i in ids]
    with pytest.raises(ConfigurationError, match="unknown task status"):
        queue.list(status="done")
    counts = queue.counts()
    assert list(counts) == list(STATUSES)
    assert counts == {"pending": 2, "running": 0, "succeeded": 1, "failed": 0, "superseded": 0}
    assert set(ACTIVE) | set(FINISHED) == set(STATUSES)


# ---------------------------------------------------------------------------------------------
# Acceptance: real threads.
# ---------------------------------------------------------------------------------------------
def test_four_workers_drain_ten_thousand_tasks_exactly_once(store: Storage) -> None:
    """Two take one task at a time, two several at once; none is taken twice."""
    queue = TaskStore(store)  # the real clock
    enqueued = queue.enqueue_many(NewTask("work", {"n": n}) for n in range(10_000))
    assert enqueued.skipped == 0 and len(set(enqueued.task_ids)) == 10_000
    done: list[list[str]] = [[] for _ in range(4)]
    errors: list[BaseException] = []
    first_claims = threading.Barrier(4)  # every worker holds a task before any goes on

    def work(worker: int) -> None:
        # Workers 0 and 1 take one task at a time, 2 and 3 several (claim_many).
        take = 1 if worker < 2 else 3 + worker

        def claim() -> list[Task]:
            return queue.claim_many(f"worker-{worker}", take)

        try:
            tasks = claim()
            first_claims.wait(timeout=60)
            while tasks:
                for task in tasks:
                    done[worker].append(task.task_id)
                    queue.complete(task)
                tasks = claim()
        except BaseException as exc:  # reported below: a thread's error is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    completed = [task_id for ids in done for task_id in ids]
    assert len(completed) == len(set(completed)) == 10_000  # none twice
    assert set(completed) == set(enqueued.task_ids)  # none missing
    assert all(done), [len(ids) for ids in done]  # each worker took a share
    stored = queue.list(limit=None)
    assert len(stored) == 10_000
    assert all(t.status == "succeeded" and t.attempts == 1 for t in stored)
    assert all(t.lease_owner is None for t in stored)
    assert queue.counts() == dict.fromkeys(STATUSES, 0) | {"succeeded": 10_000}


def test_a_worker_that_dies_mid_task_loses_it_to_the_next(
    queue: TaskStore, clock: FakeClock
) -> None:
    lease = timedelta(seconds=30)
    task_id = queue.enqueue(NewTask("work", max_attempts=3))
    held: list[Task] = []
    worker_a = threading.Thread(target=lambda: held.append(_claim(queue, "worker-a", lease)))
    worker_a.start()
    worker_a.join()  # worker A took the task and died without a word
    assert [t.task_id for t in held] == [task_id]
    assert queue.claim("worker-b", lease=lease) is None  # held while the lease runs
    clock.advance(lease - timedelta(microseconds=1))
    assert queue.claim("worker-b", lease=lease) is None  # ...to its last moment
    clock.advance(timedelta(microseconds=1))  # the lease lapses at its expiry
    taken = _claim(queue, "worker-b", lease=timedelta(minutes=5))
    assert (taken.task_id, taken.attempts, taken.lease_owner) == (task_id, 2, "worker-b")
    assert taken.last_error is not None and "lease of worker-a lapsed" in taken.last_error
    assert queue.complete(taken).status == "succeeded"
    with pytest.raises(LeaseLostError):
        queue.complete(held[0])  # A comes back too late
    final = queue.require(task_id or "")
    assert (final.status, final.attempts, final.lease_owner) == ("succeeded", 2, None)


# ---------------------------------------------------------------------------------------------
# The CLI: egregora tasks list | retry | purge.
# ---------------------------------------------------------------------------------------------
def _cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["tasks", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def filled_db(db_path: Path) -> dict[str, str]:
    """A database file holding one task in each state but superseded; the ids by state."""
    with Storage.open(str(db_path)) as store:
        store.ensure_schema()
        queue = TaskStore(store, backoff=BACKOFF)
        ids = queue.enqueue_many(
            [
                NewTask("write", {"n": 0}, priority=9),
                NewTask("write", {"n": 1}, priority=8),
                NewTask("index", {"n": 2}, priority=7),
                NewTask("write", {"n": 3}),
            ]
        ).task_ids
        queue.complete(_claim(queue))
        queue.fail(_claim(queue), "broken", retry=False)
        _claim(queue, "worker-9", lease=timedelta(hours=1))
    return dict(zip(("succeeded", "failed", "running", "pending"), ids, strict=True))


def _stored(db_path: Path) -> list[Task]:
    with Storage.open(str(db_path), read_only=True) as store:
        return TaskStore(store).list(limit=None)


def test_cli_list_prints_tasks_in_claim_order_and_counts(
    db_path: Path, filled_db: dict[str, str]
) -> None:
    code, out, err = _cli("list", "--db", str(db_path), "--json")
    assert (code, err) == (0, "")
    answer = json.loads(out)
    assert set(answer) == {"ok", "tasks", "counts", "workers"}
    running = next(t for t in _stored(db_path) if t.status == "running")
    assert answer["workers"] == {running.lease_owner: [filled_db["running"]]}
    assert answer["counts"] == dict.fromkeys(STATUSES, 1) | {"superseded": 0}
    tasks = answer["tasks"]
    assert [t["task_id"] for t in tasks] == list(filled_db.values())
    assert [t["status"] for t in tasks] == list(filled_db)
    assert all(set(t) == set(_stored(db_path)[0].as_json()) for t in tasks)
    failed, running = tasks[1], tasks[2]
    assert (failed["last_error"], failed["attempts"], failed["max_attempts"]) == ("broken", 1, 3)
    assert running["lease_owner"] == "worker-9" and running["payload"] == {"n": 2}
    assert datetime.fromisoformat(running["lease_expires_at"]).tzinfo is not None
    code, out, _ = _cli("list", "--db", str(db_path), "--json", "--status", "pending")
    assert [t["task_id"] for t in json.loads(out)["tasks"]] == [filled_db["pending"]]
    assert json.loads(out)["counts"]["succeeded"] == 1  # counts are not filtered
    code, out, _ = _cli("list", "--db", str(db_path), "--json", "--type", "index")
    assert [t["task_id"] for t in json.loads(out)["tasks"]] == [filled_db["running"]]
    code, out, _ = _cli("list", "--db", str(db_path), "--json", "--limit", "2")
    assert [t["status"] for t in json.loads(out)["tasks"]] == ["succeeded", "failed"]
    code, out, _ = _cli("list", "--db", str(db_path))
    assert code == 0
    assert all(task_id in out for task_id in filled_db.values())
    assert "1 pending, 1 running, 1 succeeded, 1 failed, 0 superseded" in out
    code, _, err = _cli("list", "--db", str(db_path), "--status", "done")
    assert code == 2 and "unknown task status 'done'" in err and err.count("\n") == 1


def test_cli_list_of_a_missing_database_fails_without_creating_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "egregora.duckdb"
    for extra in ((), ("--json",)):
        code, out, err = _cli("list", "--db", str(missing), *extra)
        assert code != 0
        assert err.startswith("error: no database at") and err.count("\n") == 1
        assert "egregora db init" in err
        if extra:
            assert json.loads(out)["ok"] is False
        else:
            assert out == ""
    assert not missing.exists() and not missing.parent.exists()


def test_cli_retry_queues_finished_tasks_again(db_path: Path, filled_db: dict[str, str]) -> None:
    code, out, err = _cli("retry", "--db", str(db_path), "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {"ok": True, "retried": 1, "status": "failed"}
    assert {t.task_id: (t.status, t.attempts) for t in _stored(db_path)}[filled_db["failed"]] == (
        "pending",
        0,
    )
    code, out, _ = _cli("retry", "--db", str(db_path), "--json", "--status", "succeeded", "nope")
    assert (code, json.loads(out)) == (0, {"ok": True, "retried": 0, "status": "succeeded"})
    code, out, _ = _cli(
        "retry", filled_db["succeeded"], "--db", str(db_path), "--json", "--status", "succeeded"
    )
    assert (code, json.loads(out)) == (0, {"ok": True, "retried": 1, "status": "succeeded"})
    code, out, _ = _cli("retry", "--db", str(db_path))
    assert code == 0 and "queued 0 failed task(s) again" in out
    before = _stored(db_path)
    code, _, err = _cli("retry", "--db", str(db_path), "--status", "running")
    assert code == 2 and "only finished tasks can be retried" in err
    assert _stored(db_path) == before


def test_cli_purge_deletes_finished_tasks(db_path: Path, filled_db: dict[str, str]) -> None:
    code, out, err = _cli("purge", "--db", str(db_path), "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {"ok": True, "purged": 2, "statuses": list(FINISHED)}
    assert {t.task_id for t in _stored(db_path)} == {filled_db["running"], filled_db["pending"]}
    code, out, _ = _cli(
        "purge", "--db", str(db_path), "--json", "--status", "pending", "--status", "failed"
    )
    assert (code, json.loads(out)) == (
        0,
        {"ok": True, "purged": 1, "statuses": ["pending", "failed"]},
    )
    assert [t.task_id for t in _stored(db_path)] == [filled_db["running"]]


def test_cli_purge_of_running_tasks_is_refused_and_changes_nothing(
    db_path: Path, filled_db: dict[str, str]
) -> None:
    before = _stored(db_path)
    code, out, err = _cli("purge", "--status", "running", "--db", str(db_path))
    assert code == 2 and out == ""
    assert err.startswith("error: running tasks are held by workers") and err.count("\n") == 1
    assert _stored(db_path) == before
    code, out, err = _cli(
        "purge", "--status", "failed", "--status", "running", "--db", str(db_path), "--json"
    )
    assert code == 2 and "cannot be purged" in err
    assert json.loads(out)["error"]["type"] == "ConfigurationError"
    assert _stored(db_path) == before
    code, _, err = _cli("purge", "--status", "done", "--db", str(db_path))
    assert code == 2 and "unknown task status 'done'" in err
    assert _stored(db_path) == before
