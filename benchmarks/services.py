"""Service cases: the task queue (enqueueing, claiming) and the asset cache (hits, eviction).

Everything runs through ``Storage`` on databases migrated to head (``databases.py``: DuckDB
files, or databases on the PostgreSQL server ``--db`` names). Filling a database (a backlog of
tasks, a cache of entries) is never timed: each case builds a template once and copies it for
every repetition that changes it, as ``git.py`` copies its synced database. Sizes follow
``--rows``: a tenth of it, at least 10,000 and at most 100,000 (the full size, reached from
1,000,000 rows on); the samples timed one by one are smaller below 1,000,000 rows (``--quick``)
so a quick run stays short.
"""

from __future__ import annotations

import gc
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import sqlglot
from sqlglot import exp

from benchmarks.databases import Databases
from benchmarks.harness import Benchmark, percentile, require, timed
from egregora.assets import AssetCache, key_for
from egregora.assets import statements as asset_sql
from egregora.storage.store import Storage
from egregora.tasks import DEFAULT_LEASE, NewTask, Task, TaskStore
from egregora.tasks import statements as task_sql

FULL_ROWS = 1_000_000  # the default --rows: full-size samples; fewer rows (--quick): smaller
SEED = 4_321
WORKER = "bench-worker"
TASK_TYPES = ("render_card", "fetch_media", "summarize_thread", "publish_post")
KINDS = ("social_card", "thumbnail", "font_subset")
STAMP = pa.timestamp("us", tz="UTC")
# Cache entries were stored at EPOCH and last read from it on, one second apart (each has its
# own place in LRU order); a quarter expire at FAR_FUTURE, the rest never, so none has expired.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
HIT_BYTES = 2_048  # the warm cache's entries (cache_hit)
CHECKED_HITS = 200  # hits prepare checks both ways (bytes read back, hits written)
SMALL_BYTES = (64, 512)  # the evicted cache's entries, uniform in this range (cache_evict)


def _build(text: str) -> str:
    return sqlglot.parse_one(text, read="duckdb").sql("duckdb")


# The claim statement with its pick (the subquery choosing the next task) replaced by a known
# primary key: the same SET and RETURNING, so what no claim can avoid. Parameters: owner,
# lease_expires_at, now, task_id.
_TAKE = sqlglot.parse_one(task_sql.CLAIM, read="duckdb")
_TAKE.set("where", exp.Where(this=exp.column("task_id", quoted=True).eq(exp.Placeholder())))
TAKE_ONE = _TAKE.sql("duckdb")
# limit: the ids of the next pending tasks in claim order (priority, then oldest, then id).
NEXT_IDS = _build(
    "SELECT task_id FROM tasks WHERE status = 'pending' "
    "ORDER BY priority DESC, created_at, task_id LIMIT ?"
)
# status: how many tasks are in it.
COUNT_STATUS = _build("SELECT count(*) FROM tasks WHERE status = ?")
COUNT_ENTRIES = _build("SELECT count(*), COALESCE(SUM(hits), 0) FROM asset_cache")
# What a naive LRU cache does to make room: find the least recently used entry, delete it.
OLDEST_KEY = _build("SELECT key FROM asset_cache ORDER BY last_accessed_at, key LIMIT 1")
DELETE_KEY = _build("DELETE FROM asset_cache WHERE key = ?")
# budget: evict's byte-budget delete written by hand in one statement (newest first, a running
# sum of sizes; what lies beyond the budget goes).
DELETE_OVER_BUDGET = _build(
    """
DELETE FROM asset_cache WHERE key IN (
    SELECT key FROM (
        SELECT key, SUM(size_bytes) OVER (
            ORDER BY last_accessed_at DESC, key DESC
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS kept
        FROM asset_cache
    ) AS ranked
    WHERE kept > ?
)
"""
)
OLDEST_LEFT = _build("SELECT min(last_accessed_at), count(*) FROM asset_cache")
# key, now: the hit's SELECT (egregora.assets.statements.GET, by key alone) with the expiry
# condition in SQL, as it first was: DuckDB 1.5 then scans the table instead of probing the key.
GET_WITH_EXPIRY = (
    sqlglot.parse_one(asset_sql.GET, read="duckdb")
    .where("expires_at IS NULL OR expires_at > ?", dialect="duckdb")  # type: ignore[attr-defined]
    .sql("duckdb")
)


@dataclass(frozen=True)
class ServiceScale:
    """How much each case does."""

    tasks: int  # enqueued by one enqueue_many (tasks_enqueue_many)
    enqueue_sample: int  # enqueue() calls, one task each (its baseline)
    backlog: int  # pending tasks when a worker starts claiming (tasks_claim)
    claims: int  # claims timed per repetition, off the top of the backlog
    entries: int  # entries of the warm cache (cache_hit)
    hits: int  # get() calls timed one by one
    evicted: int  # entries evict() drops; the cache holds twice as many (cache_evict)
    delete_sample: int  # entries the naive baseline deletes one at a time


def scale_for(rows: int) -> ServiceScale:
    """Sizes: a tenth of ``rows`` within [10,000, 100,000]; samples full from 1,000,000 rows."""
    full = rows >= FULL_ROWS
    size = min(max(rows // 10, 10_000), 100_000)
    return ServiceScale(
        tasks=size,
        enqueue_sample=300 if full else 30,
        backlog=size,
        claims=1_000 if full else 100,
        entries=10_000,
        hits=3_000 if full else 500,
        evicted=size,
        delete_sample=500 if full else 100,
    )


# -- templates ----------------------------------------------------------------------------------
def new_tasks(count: int, prefix: str) -> list[NewTask]:
    """``count`` tasks with distinct dedupe keys and small JSON payloads, 1 in 10 urgent."""
    rng = random.Random(f"{SEED}-{prefix}")
    tasks = []
    for i in range(count):
        task_type = TASK_TYPES[i % len(TASK_TYPES)]
        payload = {
            "document_id": f"doc-{rng.randrange(1_000_000):06d}",
            "size": rng.choice(("small", "medium", "large")),
            "tags": [f"t{rng.randrange(50)}" for _ in range(rng.randrange(3))],
        }
        tasks.append(
            NewTask(
                task_type,
                payload,
                dedupe_key=f"{prefix}:{task_type}:{i}",
                priority=1 if i % 10 == 0 else 0,
            )
        )
    return tasks


def _backlog_template(databases: Databases, size: int) -> str:
    """A template holding ``size`` pending tasks (keys "backlog:..."), enqueued in one batch."""

    def enqueue(store: Storage) -> None:
        print(f"  enqueueing a backlog of {size:,} tasks once ...", file=sys.stderr)
        done = TaskStore(store).enqueue_many(new_tasks(size, "backlog"))
        require(len(done.task_ids) == size, f"the backlog holds {len(done.task_ids)} tasks")

    return databases.template(f"backlog-{size}", enqueue)


def _count(store: Storage, status: str) -> int:
    return int(store.query(COUNT_STATUS, [status])[0][0])


def _latencies(call: Callable[[str], object], keys: Sequence[str]) -> list[float]:
    """Seconds of each call, one by one (one garbage collection before, none forced within)."""
    gc.collect()
    out: list[float] = []
    for key in keys:
        start = time.perf_counter()
        call(key)
        out.append(time.perf_counter() - start)
    return out


# -- the task queue ---------------------------------------------------------------------------
class TasksEnqueueMany(Benchmark):
    """``enqueue_many`` of N tasks into a fresh database against ``enqueue`` once per task."""

    name = "tasks_enqueue_many"
    baseline = "enqueue_one_by_one"
    unit = "s/task"

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        self.scale = scale_for(data.num_rows)
        super().__init__(self.scale.tasks)
        self.dbs = databases
        self.engine = databases.engine
        self.tasks: list[NewTask] = []
        self.note = (
            f"Seconds per task. Case: TaskStore(store).enqueue_many(tasks) of {self.scale.tasks:,} "
            "new tasks (four types, 1 in 10 with priority 1, a distinct dedupe key each, a JSON "
            f"payload of about 80 bytes) into a fresh {databases.described} migrated to head (a "
            "copy of an empty template, untimed): one transaction that looks the keys up among "
            "active tasks, then one validated store.write('tasks', rows); divided by the tasks. "
            f"Baseline: enqueue(task) once per task for the first {self.scale.enqueue_sample} "
            "of the same tasks, into another fresh database (each a validated write of its "
            "own), divided by them. Extra enqueue_many_into_backlog: the same enqueue_many into "
            f"a copy of a database already holding {self.scale.tasks:,} pending tasks (other "
            "keys), per task. The rows column holds the tasks."
        )

    def prepare(self) -> None:
        self.tasks = new_tasks(self.scale.tasks, "new")
        _backlog_template(self.dbs, self.scale.tasks)  # for the extra: built now, untimed
        with self.dbs.copy(self.dbs.empty()) as store:
            queue = TaskStore(store)
            done = queue.enqueue_many(self.tasks)
            require(
                len(done.task_ids) == self.scale.tasks and done.skipped == 0,
                f"enqueue_many wrote {len(done.task_ids)} tasks and skipped {done.skipped}",
            )
            require(_count(store, "pending") == self.scale.tasks, "tasks went missing")
            first = queue.get(done.task_ids[0])
            require(
                first is not None and first.payload == self.tasks[0].payload,
                f"the first task reads back as {first}",
            )
        with self.dbs.copy(self.dbs.empty()) as store:
            queue = TaskStore(store)
            require(queue.enqueue(self.tasks[0]) is not None, "enqueue wrote nothing")
            require(queue.enqueue(self.tasks[0]) is None, "enqueue did not skip a queued key")

    def _time_many(self, template: str) -> float:
        with self.dbs.copy(template) as store:
            queue = TaskStore(store)
            before = _count(store, "pending")
            seconds = timed(lambda: queue.enqueue_many(self.tasks))
            added = _count(store, "pending") - before
        require(added == len(self.tasks), f"enqueue_many added {added} tasks")
        return seconds / len(self.tasks)

    def time_case(self) -> float:
        return self._time_many(self.dbs.empty())

    def time_baseline(self) -> float:
        sample = self.tasks[: self.scale.enqueue_sample]
        with self.dbs.copy(self.dbs.empty()) as store:
            queue = TaskStore(store)

            def one_by_one() -> None:
                for task in sample:
                    queue.enqueue(task)

            seconds = timed(one_by_one)
            added = _count(store, "pending")
        require(added == len(sample), f"enqueue added {added} tasks, wanted {len(sample)}")
        return seconds / len(sample)

    def time_extras(self) -> dict[str, float]:
        template = _backlog_template(self.dbs, self.scale.tasks)
        return {"enqueue_many_into_backlog": self._time_many(template)}

    def sizes(self) -> tuple[int, int]:
        return self.scale.tasks, self.scale.enqueue_sample

    def close(self) -> None:
        self.tasks = []


class TasksClaim(Benchmark):
    """One worker claiming and completing tasks off a backlog, against an UPDATE by key."""

    name = "tasks_claim"
    baseline = "update_by_key"
    unit = "s/task"

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        self.scale = scale_for(data.num_rows)
        super().__init__(self.scale.backlog)
        self.dbs = databases
        self.engine = databases.engine
        self.template: str | None = None
        self._case: list[float] = []
        self._claim_only: list[float] = []
        self.base_note = (
            f"Seconds per task. A copy (untimed) of a {databases.described} holding a backlog of "
            f"{self.scale.backlog:,} pending tasks (enqueued in one enqueue_many; four types, "
            "1 in 10 with priority 1) per repetition; one warm-up round on the copy, untimed. "
            f"Case: one worker (one thread) doing {self.scale.claims:,} rounds of "
            "task = queue.claim(worker); queue.complete(task), divided by the rounds (1 / it "
            "is the worker's tasks per second). Baseline: the floor a claim cannot beat: the "
            "claim statement (egregora.tasks.statements.CLAIM) with its pick of the next task "
            "replaced by task_id = ? (same SET and RETURNING), run through store.change on the "
            "ids the claims would take, in claim order (looked up untimed), per task; no "
            "complete. Extra claim_only: the claims without complete, per task. The rows "
            "column holds the backlog."
        )
        self.note = self.base_note

    def prepare(self) -> None:
        self.template = _backlog_template(self.dbs, self.scale.backlog)
        require(self.scale.claims < self.scale.backlog, "more claims than tasks in the backlog")
        # The claims take the tasks the baseline updates, in the same order.
        with self.dbs.copy(self.template) as store:
            require(_count(store, "pending") == self.scale.backlog, "the backlog is not whole")
            queue = TaskStore(store)
            wanted = [r[0] for r in store.query(NEXT_IDS, [20])]
            taken: list[Task] = []
            for _ in wanted:
                task = queue.claim(WORKER)
                require(task is not None, "a claim found nothing to do")
                assert task is not None
                taken.append(queue.complete(task))
            got = [t.task_id for t in taken]
            require(got == wanted, f"the claims took {got[:3]}..., the lookup says {wanted[:3]}")
            require(all(t.priority == 1 for t in taken), "a claim skipped an urgent task")
            require(_count(store, "succeeded") == len(wanted), "completed tasks went missing")
        with self.dbs.copy(self.template) as store:
            task_id = store.query(NEXT_IDS, [1])[0][0]
            rows = self._take(store, [task_id])
            require(
                len(rows) == 1 and rows[0][0] == task_id and rows[0][2] == "running",
                f"the baseline's UPDATE returned {rows}",
            )

    @staticmethod
    def _take(store: Storage, ids: Sequence[str]) -> list[tuple[object, ...]]:
        now = datetime.now(UTC)
        params: list[object] = [WORKER, now + DEFAULT_LEASE, now, ""]
        rows: list[tuple[object, ...]] = []
        for task_id in ids:
            params[3] = task_id
            rows += store.change(TAKE_ONE, params)
        return rows

    def _time_claims(self, *, complete: bool) -> float:
        assert self.template is not None
        claims = self.scale.claims
        with self.dbs.copy(self.template) as store:
            queue = TaskStore(store)

            def work(rounds: int) -> None:
                for _ in range(rounds):
                    task = queue.claim(WORKER)
                    if task is None:
                        raise RuntimeError("the backlog ran dry")
                    if complete:
                        queue.complete(task)

            work(1)  # warm-up: the copy's blocks read into the engine's buffers
            seconds = timed(lambda: work(claims))
            done = _count(store, "succeeded" if complete else "running")
        require(done == claims + 1, f"{done} tasks claimed, wanted {claims + 1}")
        return seconds / claims

    def _throughput(self) -> None:
        """The note, with the tasks per second of the repetitions so far."""
        rates = [f"{1 / statistics.median(self._case):,.0f} tasks/s (claim + complete)"]
        if self._claim_only:
            rates.append(f"{1 / statistics.median(self._claim_only):,.0f} claims/s (claim_only)")
        self.note = f"{self.base_note} Medians in this run: {', '.join(rates)}."

    def time_case(self) -> float:
        seconds = self._time_claims(complete=True)
        self._case.append(seconds)
        self._throughput()
        return seconds

    def time_baseline(self) -> float:
        assert self.template is not None
        claims = self.scale.claims
        with self.dbs.copy(self.template) as store:
            ids = [r[0] for r in store.query(NEXT_IDS, [claims + 1])]
            self._take(store, ids[:1])  # warm-up, as the case's first round
            rows: list[list[tuple[object, ...]]] = []
            seconds = timed(lambda: rows.append(self._take(store, ids[1:])))
            done = _count(store, "running")
        require(len(rows[0]) == claims and done == claims + 1, f"{done} tasks taken")
        return seconds / claims

    def time_extras(self) -> dict[str, float]:
        seconds = self._time_claims(complete=False)
        self._claim_only.append(seconds)
        self._throughput()
        return {"claim_only": seconds}

    def sizes(self) -> tuple[int, int]:
        """Rounds on both sides (the rows column holds the backlog they come off)."""
        return self.scale.claims, self.scale.claims

    def close(self) -> None:
        self.template = None


# -- the asset cache --------------------------------------------------------------------------
def cache_rows(keys: Sequence[str], sizes: Sequence[int], seed: int) -> pa.Table:
    """``asset_cache`` rows: random bytes of ``sizes``, the i-th last read at EPOCH + i seconds
    (keys are hashes, so LRU order is unrelated to key order), a quarter expiring in 2100."""
    rng = random.Random(seed)
    n = len(keys)
    kinds = [key.partition(":")[0] for key in keys]
    return pa.table(
        {
            "key": pa.array(keys, pa.string()),
            "kind": pa.array(kinds, pa.string()),
            "content_type": pa.array(["image/webp"] * n, pa.string()),
            "content": pa.array([rng.randbytes(s) for s in sizes], pa.binary()),
            "size_bytes": pa.array(sizes, pa.int64()),
            "created_at": pa.array([EPOCH] * n, STAMP),
            "expires_at": pa.array([FAR_FUTURE if i % 4 == 0 else None for i in range(n)], STAMP),
            "last_accessed_at": pa.array([EPOCH + timedelta(seconds=i) for i in range(n)], STAMP),
            "hits": pa.array([rng.randrange(5) for _ in range(n)], pa.int64()),
            "source_url": pa.array([None] * n, pa.string()),
            "etag": pa.array([None] * n, pa.string()),
            "metadata": pa.array([None] * n, pa.string()),
        }
    )


def cache_keys(count: int) -> list[str]:
    """``count`` content addresses made with key_for, over the three kinds."""
    return [key_for(KINDS[i % len(KINDS)], 1, item=i) for i in range(count)]


class CacheHit(Benchmark):
    """One ``get`` hit's mean latency, the batched hit writes included, hits written in batches
    against hits written at once (p50 and p99 as extras)."""

    name = "cache_hit"
    baseline = "hit_written_each_read"
    extra_pairs = (("p50", "baseline_p50"), ("p99", "baseline_p99"))

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        self.scale = scale_for(data.num_rows)
        super().__init__(self.scale.hits)
        self.dbs = databases
        self.engine = databases.engine
        self._open = ExitStack()
        self.store: Storage | None = None
        self.keys: list[str] = []
        self.contents: dict[str, bytes] = {}
        self.sample: list[str] = []
        self._stats: dict[str, float] = {}
        self.note = (
            f"Seconds per call, the mean of {self.scale.hits:,} get() hits timed one by one "
            "plus the flush() that writes the hits still pending after them, so every hit the "
            "cache counts is written inside the timing and the mean carries the batched "
            "writes (one call in 256, beyond the 99th percentile). Keys drawn at random (with "
            "repeats; the same each repetition) from a warm cache of "
            f"{self.scale.entries:,} entries of {HIT_BYTES:,} bytes in a {databases.described} "
            "(filled once with one store.write, untimed; a quarter of the entries expire in "
            "2100). Case: AssetCache(store).get(key) with the default flush_every=256: one "
            "SELECT by key; the hit is counted in memory and written with the others in one "
            "UPDATE every 256 hits (inside the call that makes it due). Baseline: "
            "AssetCache(store, flush_every=1): every hit also runs that UPDATE for its own "
            "entry (its final flush finds nothing pending). A new AssetCache per repetition; "
            "each repetition checks that every read was a hit and every hit reached the "
            "table. Extras: p50 against baseline_p50 and p99 against baseline_p99 (of the "
            "get() calls alone), select_mean: the bare SELECT the hit runs "
            "(egregora.assets.statements.GET, WHERE key = ?) through store.query, and "
            "with_expiry_mean: that SELECT with the expiry test in SQL (AND (expires_at IS "
            "NULL OR expires_at > ?)), which DuckDB 1.5 answers with a scan instead of the "
            "key's index; get() tests expiry in Python. The rows column holds the hits."
        )

    def prepare(self) -> None:
        self.store = store = self._open.enter_context(self.dbs.migrated())
        self.keys = cache_keys(self.scale.entries)
        rows = cache_rows(self.keys, [HIT_BYTES] * len(self.keys), SEED)
        require(store.write("asset_cache", rows) == len(self.keys), "the cache is not full")
        self.contents = dict(zip(self.keys, rows.column("content").to_pylist(), strict=True))
        rng = random.Random(SEED + 1)
        self.sample = rng.choices(self.keys, k=self.scale.hits)
        # Every get is a hit returning the stored bytes, and the counted hits reach the table.
        checked = self.sample[:CHECKED_HITS]
        for flush_every in (256, 1):
            before = store.query(COUNT_ENTRIES)[0]
            cache = AssetCache(store, flush_every=flush_every)
            for key in checked:
                asset = cache.get(key)
                require(
                    asset is not None and asset.content == self.contents[key],
                    f"get({key!r}) gave {asset and asset.size_bytes} bytes",
                )
            cache.flush()
            after = store.query(COUNT_ENTRIES)[0]
            require(
                cache.hits == len(checked)
                and cache.misses == 0
                and after[1] - before[1] == len(checked),
                f"{cache.hits} hits, {cache.misses} misses, {after[1] - before[1]} written",
            )
        now = datetime.now(UTC)
        for key in checked:  # none has expired: both SELECTs find the same row
            got, want = store.query(GET_WITH_EXPIRY, [key, now]), store.query(asset_sql.GET, [key])
            require(len(want) == 1 and got == want, f"{key!r}: {len(got)} and {len(want)} rows")

    def _time_hits(self, flush_every: int, prefix: str) -> float:
        """The mean seconds per hit, the final flush included; p50 and p99 kept for extras."""
        store = self.store
        assert store is not None
        written = int(store.query(COUNT_ENTRIES)[0][1])
        cache = AssetCache(store, flush_every=flush_every)
        calls = _latencies(cache.get, self.sample)
        start = time.perf_counter()
        cache.flush()
        flushed = time.perf_counter() - start
        written = int(store.query(COUNT_ENTRIES)[0][1]) - written
        require(
            cache.hits == len(self.sample) and cache.misses == 0 and written == cache.hits,
            f"{cache.misses} of {len(self.sample)} reads missed the warm cache; "
            f"{written} of {cache.hits} hits were written",
        )
        self._stats[f"{prefix}p50"] = percentile(calls, 50)
        self._stats[f"{prefix}p99"] = percentile(calls, 99)
        return (math.fsum(calls) + flushed) / len(calls)

    def time_case(self) -> float:
        return self._time_hits(256, "")

    def time_baseline(self) -> float:
        return self._time_hits(1, "baseline_")

    def time_extras(self) -> dict[str, float]:
        store = self.store
        assert store is not None
        now = datetime.now(UTC)
        calls = _latencies(lambda key: store.query(asset_sql.GET, [key]), self.sample)
        with_expiry = _latencies(lambda key: store.query(GET_WITH_EXPIRY, [key, now]), self.sample)
        return {
            **{name: self._stats[name] for name in ("p50", "baseline_p50", "p99", "baseline_p99")},
            "select_mean": statistics.fmean(calls),
            "with_expiry_mean": statistics.fmean(with_expiry),
        }

    def close(self) -> None:
        self.store = None
        self._open.close()


class CacheEvict(Benchmark):
    """``evict(budget)`` dropping the least recently used N of 2N entries, against deleting
    the LRU entry one at a time."""

    name = "cache_evict"
    baseline = "delete_lru_one_by_one"
    unit = "s/entry"

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        self.scale = scale_for(data.num_rows)
        super().__init__(self.scale.evicted)
        self.dbs = databases
        self.engine = databases.engine
        self.template: str | None = None
        self.budget = 0
        self.cutoff = EPOCH
        stored = 2 * self.scale.evicted
        self.note = (
            f"Seconds per entry evicted. A copy (untimed) per repetition of a "
            f"{databases.described} whose cache holds {stored:,} entries of {SMALL_BYTES[0]} to "
            f"{SMALL_BYTES[1]} bytes, each last read at its own second (filled once with one "
            "store.write, untimed; none expired). Case: AssetCache(store).evict(budget) with "
            f"the budget set to the bytes of the {self.scale.evicted:,} most recently used "
            "entries, so it drops the other "
            f"{self.scale.evicted:,}: one transaction with the expiry sweep, the total before "
            "and after, and one DELETE of the keys beyond the budget in a running sum of sizes "
            "newest first (built with Ibis); divided by the entries dropped. Baseline: what a "
            "naive cache does, SELECT the least recently used key (ORDER BY last_accessed_at "
            "LIMIT 1) then DELETE it by key, through store.query and store.change, for "
            f"{self.scale.delete_sample} entries, divided by them. Extra budget_delete_sql: "
            "evict's budget DELETE written by hand as one statement (window sum, no expiry "
            "sweep, no totals), run on the driver's connection, per entry. The rows column "
            "holds the "
            "entries evicted."
        )

    def prepare(self) -> None:
        stored = 2 * self.scale.evicted
        print(f"  filling a cache of {stored:,} entries once ...", file=sys.stderr)
        rng = random.Random(SEED + 2)
        sizes = [rng.randint(*SMALL_BYTES) for _ in range(stored)]
        # The i-th entry is the i-th least recently used; the newest half fits the budget.
        self.budget = sum(sizes[self.scale.evicted :])
        self.cutoff = EPOCH + timedelta(seconds=self.scale.evicted)

        def fill(store: Storage) -> None:
            rows = cache_rows(cache_keys(stored), sizes, SEED + 3)
            require(store.write("asset_cache", rows) == stored, "the cache is not full")

        self.template = self.dbs.template("evict", fill)
        with self.dbs.copy(self.template) as store:
            result = AssetCache(store).evict(self.budget)
            oldest, left = store.query(OLDEST_LEFT)[0]
            require(
                result.evicted == self.scale.evicted
                and result.expired == 0
                and result.bytes_left == self.budget
                and left == self.scale.evicted
                and oldest == self.cutoff,
                f"evict gave {result}; {left} entries left, the oldest read at {oldest}",
            )
        with self.dbs.copy(self.template) as store:
            self._delete_oldest(store, 3)
            oldest, left = store.query(OLDEST_LEFT)[0]
            require(
                left == stored - 3 and oldest == EPOCH + timedelta(seconds=3),
                f"the naive deletes left {left} entries, the oldest read at {oldest}",
            )

    @staticmethod
    def _delete_oldest(store: Storage, count: int) -> None:
        for _ in range(count):
            key = store.query(OLDEST_KEY)[0][0]
            store.change(DELETE_KEY, [key])

    def _left(self, store: Storage) -> int:
        return int(store.query(OLDEST_LEFT)[0][1])

    def time_case(self) -> float:
        assert self.template is not None
        with self.dbs.copy(self.template) as store:
            cache = AssetCache(store)
            seconds = timed(lambda: cache.evict(self.budget))
            left = self._left(store)
        require(left == self.scale.evicted, f"evict left {left} entries")
        return seconds / self.scale.evicted

    def time_baseline(self) -> float:
        assert self.template is not None
        sample = self.scale.delete_sample
        with self.dbs.copy(self.template) as store:
            seconds = timed(lambda: self._delete_oldest(store, sample))
            left = self._left(store)
        require(left == 2 * self.scale.evicted - sample, f"the deletes left {left} entries")
        return seconds / sample

    def time_extras(self) -> dict[str, float]:
        assert self.template is not None
        with self.dbs.copy(self.template) as store:
            engine, con = store.engine, store.con
            delete = engine.translate(DELETE_OVER_BUDGET)
            seconds = timed(lambda: engine.run(con, delete, [self.budget]))
            left = self._left(store)
        require(left == self.scale.evicted, f"the hand-written delete left {left} entries")
        return {"budget_delete_sql": seconds / self.scale.evicted}

    def sizes(self) -> tuple[int, int]:
        return self.scale.evicted, self.scale.delete_sample

    def close(self) -> None:
        self.template = None
