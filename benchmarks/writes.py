"""One-row cases: the fixed cost of a small validated operation (a one-row write, a run
started, a task enqueued, a task claimed and completed), each against a one-row prepared
INSERT of the same kind of row into the same table, on the same kind of database, in the same
run.

The baseline is the floor a one-row operation cannot go below on the engine: ``INSERT INTO
<table> (<every column>) VALUES (?, ...)`` with one row of bound parameters, autocommitted, run
by the store's engine on its connection (``store.engine.affected``, the text translated from
DuckDB's dialect once, untimed), with a fresh key each time; the table's keys, CHECKs and
foreign keys still judge the row. Its rows are built before the timing.

Every side of every repetition works on its own fresh copy of a template database (an empty
one at head, or one holding a backlog of tasks: ``databases.py``), opened untimed, and does
one untimed operation of its kind first, so what a store pays once (checking the table's
columns, rendering a statement, opening its scratch DuckDB) stays out of the numbers. Each
operation is timed on its own and the sum divided by the operations: a few hundred per
repetition at the default size, fewer with ``--quick``.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import sys
import time
import uuid
from abc import abstractmethod
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import pyarrow as pa
from sqlglot import exp

from benchmarks.databases import Databases
from benchmarks.harness import Benchmark, require
from benchmarks.services import COUNT_STATUS, NEXT_IDS, WORKER, new_tasks
from egregora.ddl.render import ident, table_ref
from egregora.digest import canonical_json, config_hash
from egregora.errors import ContractViolation
from egregora.runs import RunStore
from egregora.runs.version import code_version
from egregora.schema.catalog import CATALOG
from egregora.schema.model import Table
from egregora.storage.store import Storage
from egregora.tasks import NewTask, Task, TaskStore

FULL_ROWS = 1_000_000  # the default --rows: full-size repetitions; fewer rows (--quick): smaller
FULL_OPS, QUICK_OPS = 300, 30  # operations timed per side and repetition
BACKLOG = 1_000  # pending tasks in the database claim_complete works on
CLAIM_BATCH = 10  # tasks claim_many takes at once (claim_complete's extra)
STAGE = "write"  # the stage the runs are of
# The configuration run_start records (hashed, and kept in the run's attrs).
CONFIG = {"model": "extractive", "window": "1d", "max_posts": 3}
TASK_TYPE = "render_card"

RUNS = CATALOG["runs"]
TASKS = CATALOG["tasks"]

T = TypeVar("T")
R = TypeVar("R")


def ops_for(rows: int) -> int:
    """Operations per side and repetition: a few hundred at the default size, fewer below."""
    return FULL_OPS if rows >= FULL_ROWS else QUICK_OPS


def insert_sql(table: Table) -> str:
    """``INSERT INTO table (every column) VALUES (?, ...)``, one row, in DuckDB's dialect."""
    row = exp.Tuple(expressions=[exp.Placeholder() for _ in table.columns])
    tree = exp.insert(
        exp.Values(expressions=[row]),
        table_ref(table.name),
        columns=[ident(c) for c in table.column_names],
    )
    return tree.sql(dialect="duckdb")


def _count(store: Storage, table: str) -> int:
    statement = exp.select(exp.Count(this=exp.Star())).from_(table_ref(table))
    return int(store.query(statement)[0][0])


def _count_status(store: Storage, status: str) -> int:
    return int(store.query(COUNT_STATUS, [status])[0][0])


def _each(
    items: Iterable[T], op: Callable[[T], R], after: Callable[[R], object] | None = None
) -> tuple[float, list[R]]:
    """Seconds ``op`` takes over ``items``, each call timed on its own (``after`` runs between
    calls, untimed), and what the calls returned; one garbage collection first."""
    gc.collect()
    total = 0.0
    out: list[R] = []
    for item in items:
        start = time.perf_counter()
        result = op(item)
        total += time.perf_counter() - start
        out.append(result)
        if after is not None:
            after(result)
    return total, out


# -- rows ---------------------------------------------------------------------------------------
def run_row() -> dict[str, Any]:
    """A run as ``RunStore.start`` writes it, every column named, with a fresh run id."""
    now = datetime.now(UTC)
    return {
        "run_id": str(uuid.uuid4()),
        "parent_run_id": None,
        "stage": STAGE,
        "status": "running",
        "config_hash": config_hash(CONFIG),
        "code_version": code_version(),
        "input_checksum": None,
        "started_at": now,
        "finished_at": None,
        "rows_in": None,
        "rows_out": None,
        "error": None,
        "attrs": canonical_json({"config": CONFIG}),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "heartbeat_at": now,
    }


def task_row(n: int) -> dict[str, Any]:
    """A pending task as ``TaskStore.enqueue`` writes ``NewTask(TASK_TYPE, {"n": n})``, every
    column named, with a fresh task id."""
    now = datetime.now(UTC)
    return {
        "task_id": f"bench-{uuid.uuid4().hex}",
        "run_id": None,
        "task_type": TASK_TYPE,
        "status": "pending",
        "dedupe_key": None,
        "payload": json.dumps({"n": n}),
        "priority": 0,
        "attempts": 0,
        "max_attempts": 3,
        "lease_owner": None,
        "lease_expires_at": None,
        "created_at": now,
        "updated_at": now,
        "last_error": None,
        "available_at": now,
    }


class OneRowCase(Benchmark):
    """A one-row operation against the one-row INSERT into ``table``, per operation.

    Subclasses say what the case does (``prepare``, ``time_case``), what row the baseline
    inserts (``_row``) and which template both sides start from (``_template``, an empty
    database at head unless they override it)."""

    table: ClassVar[Table]

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        self.ops = ops_for(data.num_rows)
        super().__init__(self.ops)
        self.dbs = databases
        self.engine = databases.engine
        self.insert = insert_sql(self.table)
        # The database each side starts from, as the note names it.
        self.where = f"an empty {databases.described} migrated to head"

    # -- what each case says ------------------------------------------------------------------
    def _template(self) -> str:
        return self.dbs.empty()

    @abstractmethod
    def _row(self, n: int) -> dict[str, Any]:
        """A row of ``table`` as the case writes it, every column named, with a fresh key."""

    def _key(self, row: dict[str, Any]) -> Any:
        return row[self.table.primary_key[0]]

    def baseline_note(self, what: str) -> str:
        return (
            f"Baseline: the one-row prepared INSERT naming all {len(self.table.columns)} "
            f"columns of {self.table.name}, one placeholder each, bound to {what}, a fresh key "
            "each time, autocommitted, through "
            "store.engine.affected on the store's connection (the text translated once, "
            "untimed; the rows built before the timing); the table's keys, CHECKs and foreign "
            f"keys judge it. Each side works on its own copy of {self.where}, made and "
            "opened untimed, and does one untimed operation first; each operation is timed on "
            f"its own, {self.ops} per repetition, and the sum divided by them."
        )

    # -- the baseline -------------------------------------------------------------------------
    def _inserted(self, store: Storage, rows: Sequence[dict[str, Any]]) -> tuple[float, list[int]]:
        """The baseline's INSERT of each of ``rows`` on ``store``: its seconds and counts."""
        engine, con = store.engine, store.con
        statement = engine.translate(self.insert)
        columns = self.table.column_names
        params = [[row[c] for c in columns] for row in rows]
        return _each(params, lambda values: engine.affected(con, statement, values))

    def time_baseline(self) -> float:
        rows = [self._row(n) for n in range(self.ops + 1)]
        with self.dbs.copy(self._template()) as store:
            before = _count(store, self.table.name)
            self._inserted(store, rows[:1])  # warm-up, untimed
            seconds, counts = self._inserted(store, rows[1:])
            added = _count(store, self.table.name) - before
            last = self._key(rows[-1])
            found = self._exists(store, last)
        require(counts == [1] * self.ops, f"the INSERTs changed {sum(counts)} rows")
        require(added == self.ops + 1, f"the INSERTs added {added} rows, wanted {self.ops + 1}")
        require(found, f"the baseline's last row ({last}) is not in {self.table.name}")
        return seconds / self.ops

    def _exists(self, store: Storage, key: Any) -> bool:
        key_column = exp.column(self.table.primary_key[0], quoted=True)
        statement = (
            exp.select(exp.Count(this=exp.Star()))
            .from_(table_ref(self.table.name))
            .where(key_column.eq(exp.Placeholder()))
        )
        return int(store.query(statement, [key])[0][0]) == 1

    def _baseline_checked(self, store: Storage) -> None:
        """The baseline's row lands, and the table refuses it a second time (its key)."""
        row = self._row(0)
        _, counts = self._inserted(store, [row])
        require(counts == [1] and self._exists(store, self._key(row)), "the INSERT wrote nothing")
        try:
            self._inserted(store, [row])
        except Exception as exc:
            require(
                store.engine.is_constraint_error(exc),
                f"the INSERT of a stored key failed otherwise: {exc!r}",
            )
        else:
            require(False, f"{self.table.name} took a second row with one key")

    def close(self) -> None:
        """Nothing held: every database is the ``Databases``' to drop."""


class WriteOneRow(OneRowCase):
    """``store.write("runs", [row])`` of one run row (a dict) against the one-row INSERT."""

    name = "write_one_row"
    baseline = "insert_one_row"
    unit = "s/row"
    table = RUNS

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        super().__init__(data, databases)
        self.note = (
            "Seconds per row. Case: store.write('runs', [row]) of one run row given as a dict "
            "naming every column (a run as RunStore.start writes it: running, a config hash, "
            "the code version, JSON attrs, host and pid; a fresh run id), the validated write "
            "(types, NOT NULL columns, rules and keys judged as the row lies, its JSON read by "
            "DuckDB, one INSERT whose own key and foreign key judge the stored rows). "
            + self.baseline_note("the same row")
        )

    def _row(self, n: int) -> dict[str, Any]:
        return run_row()

    def prepare(self) -> None:
        with self.dbs.copy(self._template()) as store:
            row = run_row()
            require(store.write("runs", [row]) == 1, "the write wrote nothing")
            stored = RunStore(store).get(row["run_id"])
            require(
                stored is not None
                and stored.stage == STAGE
                and stored.status == "running"
                and stored.attrs == {"config": CONFIG}
                and stored.pid == os.getpid(),
                f"the run reads back as {stored}",
            )
            try:
                store.write("runs", [row])
            except ContractViolation:
                pass
            else:
                require(False, "the write took a run id already stored")
            require(_count(store, "runs") == 1, "the refused write left rows")
            self._baseline_checked(store)

    def time_case(self) -> float:
        rows = [run_row() for _ in range(self.ops + 1)]
        with self.dbs.copy(self._template()) as store:
            store.write("runs", rows[:1])  # warm-up, untimed
            seconds, written = _each(rows[1:], lambda row: store.write("runs", [row]))
            count = _count(store, "runs")
            last = RunStore(store).get(rows[-1]["run_id"])
        require(written == [1] * self.ops, f"the writes wrote {sum(written)} rows")
        require(count == self.ops + 1, f"runs holds {count} rows, wanted {self.ops + 1}")
        require(last is not None and last.status == "running", f"the last run reads {last}")
        return seconds / self.ops


class RunStart(OneRowCase):
    """``RunStore(store).start(stage, config=...)`` against the one-row INSERT of a run."""

    name = "run_start"
    baseline = "insert_one_run"
    unit = "s/run"
    table = RUNS

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        super().__init__(data, databases)
        self.note = (
            f"Seconds per run. Case: RunStore(store).start({STAGE!r}, config={CONFIG}) (one "
            "RunStore per side): the look for stale runs (the running runs read and judged), "
            "the config hashed and kept in attrs, the code version, a new run id, then one "
            "validated store.write('runs', [row]). Each run is finished right after (untimed), "
            "so every start finds no other run running, as in a pipeline whose stages run one "
            "after another. " + self.baseline_note("a run row like the one start writes")
        )

    def _row(self, n: int) -> dict[str, Any]:
        return run_row()

    def prepare(self) -> None:
        with self.dbs.copy(self._template()) as store:
            runs = RunStore(store)
            run_id = runs.start(STAGE, config=CONFIG)
            run = runs.get(run_id)
            require(
                run is not None
                and run.stage == STAGE
                and run.status == "running"
                and run.config_hash == config_hash(CONFIG)
                and run.attrs == {"config": CONFIG}
                and run.pid == os.getpid(),
                f"the started run reads back as {run}",
            )
            finished = runs.finish(run_id)
            require(finished.status == "succeeded", f"the run finished as {finished.status}")
            self._baseline_checked(store)

    def time_case(self) -> float:
        with self.dbs.copy(self._template()) as store:
            runs = RunStore(store)

            def start(_: int) -> str:
                return runs.start(STAGE, config=CONFIG)

            runs.finish(start(0))  # warm-up, untimed
            seconds, ids = _each(range(self.ops), start, runs.finish)
            done = self._status_count(store, "succeeded")
            running = self._status_count(store, "running")
        require(len(set(ids)) == self.ops, f"start returned {len(set(ids))} distinct ids")
        require(done == self.ops + 1 and running == 0, f"{done} runs finished, {running} running")
        return seconds / self.ops

    @staticmethod
    def _status_count(store: Storage, status: str) -> int:
        statement = (
            exp.select(exp.Count(this=exp.Star()))
            .from_(table_ref("runs"))
            .where(exp.column("status", quoted=True).eq(exp.Placeholder()))
        )
        return int(store.query(statement, [status])[0][0])


class EnqueueOne(OneRowCase):
    """``TaskStore(store).enqueue(NewTask(...))`` against the one-row INSERT of a task."""

    name = "enqueue_one"
    baseline = "insert_one_task"
    unit = "s/task"
    table = TASKS

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        super().__init__(data, databases)
        self.note = (
            f"Seconds per task. Case: TaskStore(store).enqueue(NewTask({TASK_TYPE!r}, "
            "{'n': i})) (one TaskStore per side; the NewTask objects made before the timing; "
            "no dedupe key, so no look for queued keys and no transaction): a new task id and "
            "one validated store.write('tasks', rows) of one row. "
            + self.baseline_note("a pending task row like the one enqueue writes")
        )

    def _row(self, n: int) -> dict[str, Any]:
        return task_row(n)

    def prepare(self) -> None:
        with self.dbs.copy(self._template()) as store:
            queue = TaskStore(store)
            task_id = queue.enqueue(NewTask(TASK_TYPE, {"n": 7}))
            require(task_id is not None, "enqueue wrote nothing")
            assert task_id is not None
            task = queue.get(task_id)
            require(
                task is not None
                and task.status == "pending"
                and task.task_type == TASK_TYPE
                and task.payload == {"n": 7},
                f"the task reads back as {task}",
            )
            self._baseline_checked(store)

    def time_case(self) -> float:
        tasks = [NewTask(TASK_TYPE, {"n": n}) for n in range(self.ops + 1)]
        with self.dbs.copy(self._template()) as store:
            queue = TaskStore(store)
            queue.enqueue(tasks[0])  # warm-up, untimed
            seconds, ids = _each(tasks[1:], queue.enqueue)
            pending = _count_status(store, "pending")
            last = queue.get(ids[-1]) if ids[-1] is not None else None
        require(None not in ids and len(set(ids)) == self.ops, "enqueue skipped a task")
        require(pending == self.ops + 1, f"{pending} tasks pending, wanted {self.ops + 1}")
        require(last is not None and last.payload == {"n": self.ops}, f"the last task reads {last}")
        return seconds / self.ops


class ClaimComplete(OneRowCase):
    """One worker's ``claim`` + ``complete`` off a 1,000-task backlog, against the one-row
    INSERT of a task into the same backlog; ``claim_many`` 10 at a time as an extra."""

    name = "claim_complete"
    baseline = "insert_one_task"
    unit = "s/task"
    table = TASKS

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        super().__init__(data, databases)
        self.rows = BACKLOG
        self.where = f"that backlog ({BACKLOG:,} pending tasks)"
        self.note = (
            f"Seconds per task. Every side works on a copy of a {databases.described} holding "
            f"a backlog of {BACKLOG:,} pending tasks (enqueued once with enqueue_many, untimed; "
            "four types, 1 in 10 with priority 1), so every repetition starts from the same "
            "backlog. Case: task = queue.claim(worker); queue.complete(task) (one TaskStore per "
            "side), each round timed on its own, per task: the claim's UPDATE picking the next "
            "task (RETURNING it) and the complete's UPDATE by the lease. Extra claim_many: "
            f"queue.claim_many(worker, {CLAIM_BATCH}) then complete each task, per task. "
            + self.baseline_note("a pending task row like the one enqueue writes")
            + " The rows column holds the backlog."
        )

    def _template(self) -> str:
        def enqueue(store: Storage) -> None:
            print(f"  enqueueing a backlog of {BACKLOG:,} tasks once ...", file=sys.stderr)
            done = TaskStore(store).enqueue_many(new_tasks(BACKLOG, "backlog"))
            require(len(done.task_ids) == BACKLOG, f"the backlog holds {len(done.task_ids)}")

        return self.dbs.template(f"claim-backlog-{BACKLOG}", enqueue)

    def _row(self, n: int) -> dict[str, Any]:
        return task_row(n)

    def prepare(self) -> None:
        require(self.ops + CLAIM_BATCH < BACKLOG, "more claims than tasks in the backlog")
        with self.dbs.copy(self._template()) as store:
            require(_count_status(store, "pending") == BACKLOG, "the backlog is not whole")
            queue = TaskStore(store)
            wanted = [r[0] for r in store.query(NEXT_IDS, [5 + CLAIM_BATCH])]
            one_by_one = [self._claim_complete(queue) for _ in range(5)]
            batch = queue.claim_many(WORKER, CLAIM_BATCH)
            require(all(t.status == "running" for t in batch), "claim_many took idle tasks")
            done = [*one_by_one, *(queue.complete(t) for t in batch)]
            got = [t.task_id for t in done]
            require(got == wanted, f"the claims took {got[:3]}..., the lookup says {wanted[:3]}")
            succeeded = _count_status(store, "succeeded")
            require(succeeded == len(wanted), f"{succeeded} tasks succeeded, wanted {len(wanted)}")
        with self.dbs.copy(self._template()) as store:
            self._baseline_checked(store)

    @staticmethod
    def _claim_complete(queue: TaskStore) -> Task:
        task = queue.claim(WORKER)
        if task is None:
            raise RuntimeError("the backlog ran dry")
        return queue.complete(task)

    def time_case(self) -> float:
        with self.dbs.copy(self._template()) as store:
            queue = TaskStore(store)
            self._claim_complete(queue)  # warm-up, untimed
            seconds, done = _each(range(self.ops), lambda _: self._claim_complete(queue))
            succeeded = _count_status(store, "succeeded")
            pending = _count_status(store, "pending")
        self._check(done, succeeded, pending, self.ops + 1)
        return seconds / self.ops

    def time_extras(self) -> dict[str, float]:
        """``claim_many`` 10 at a time, each task then completed, per task."""
        rounds = self.ops // CLAIM_BATCH
        with self.dbs.copy(self._template()) as store:
            queue = TaskStore(store)

            def claim_many(_: int) -> list[Task]:
                tasks = queue.claim_many(WORKER, CLAIM_BATCH)
                if len(tasks) != CLAIM_BATCH:
                    raise RuntimeError(f"claim_many took {len(tasks)} tasks")
                return [queue.complete(task) for task in tasks]

            claim_many(0)  # warm-up, untimed
            seconds, batches = _each(range(rounds), claim_many)
            succeeded = _count_status(store, "succeeded")
            pending = _count_status(store, "pending")
        done = [task for batch in batches for task in batch]
        self._check(done, succeeded, pending, (rounds + 1) * CLAIM_BATCH)
        return {"claim_many": seconds / (rounds * CLAIM_BATCH)}

    def _check(self, done: Sequence[Task], succeeded: int, pending: int, taken: int) -> None:
        ids = {task.task_id for task in done}
        require(len(ids) == len(done), "a task was claimed twice")
        require(all(task.status == "succeeded" for task in done), "a task did not succeed")
        require(
            succeeded == taken and pending == BACKLOG - taken,
            f"{succeeded} tasks succeeded and {pending} pending, wanted {taken} and "
            f"{BACKLOG - taken}",
        )

    def sizes(self) -> tuple[int, int]:
        """Operations on both sides (the rows column holds the backlog they come off)."""
        return self.ops, self.ops
