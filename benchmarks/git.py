"""Git time machine cases: sync a generated repository, then ask which commit was current when.

All run on the repository ``git_repo.py`` generates (cached between runs); its size follows
``--rows``. ``git_sync`` times the sync itself. Each lookup case syncs a template database once
(untimed; ``databases.py``), works on a copy of it, and uses the same set of probes:
(path, time) pairs over paths that exist at the tip, paths deleted or renamed away, paths that
never existed, and exact commit dates (the "at or before" boundary), at whole seconds.
"""

from __future__ import annotations

import gc
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from benchmarks.databases import ASOF_SETTING, Databases
from benchmarks.git_repo import BRANCH, Manifest, RepoSpec, git_command, repository, spec_for
from benchmarks.harness import Benchmark, percentile, require, timed
from egregora.git.cache import LookupCache
from egregora.git.command import CHUNK, git_env
from egregora.git.log import log_args, parse_log, read_history
from egregora.git.resolver import ONE_LOOKUP, GitHistoryResolver, Resolution, one_lookup_params
from egregora.git.sync import SyncResult, sync_repository
from egregora.storage.store import Storage

FULL_ROWS = 1_000_000  # the default --rows: full-size samples; fewer rows (--quick): smaller
PROBES = 100_000
SEED = 1_234
# Mix of the probes' paths (the rest: paths at the tip) and of their times.
GONE, NEVER, BOUNDARY = 0.20, 0.15, 0.10
MARGIN = 30 * 86_400  # probe times reach a month before the first and after the last commit


@dataclass(frozen=True)
class GitScale:
    """How much each case does: the repository, the probes and the samples timed per probe."""

    spec: RepoSpec
    probes: int
    git_sample: int  # probes answered by one git process each (git_resolve_many's baseline)
    loop_sample: int  # single resolve calls (git_resolve_loop's baseline)
    latency_probes: int  # single resolve calls timed one by one (git_resolve_latency)
    working_set: int  # distinct lookups the cache holds (git_cache)
    lookups: int  # lookups of the working set, in random order (git_cache)


def scale_for(rows: int) -> GitScale:
    """The repository follows ``rows``; the samples are full-size from 1,000,000 rows on,
    smaller below (``--quick``) so a quick run stays short."""
    full = rows >= FULL_ROWS
    return GitScale(
        spec=spec_for(rows),
        probes=PROBES,
        git_sample=40 if full else 10,
        loop_sample=2_000 if full else 300,
        latency_probes=2_000 if full else 300,
        working_set=1_000 if full else 100,
        lookups=5_000 if full else 500,
    )


def at_seconds(seconds: Sequence[int]) -> pa.Array:
    """Unix seconds as the UTC microsecond timestamps the resolver takes."""
    micros = pa.array([s * 1_000_000 for s in seconds], pa.int64())
    return micros.cast(pa.timestamp("us", tz="UTC"))


@dataclass(frozen=True)
class Probes:
    """(path, at) lookups, as Python values (for single calls and git) and as an Arrow table."""

    paths: list[str]
    seconds: list[int]
    table: pa.Table

    def at(self, i: int) -> datetime:
        return datetime.fromtimestamp(self.seconds[i], UTC)

    def sample(self, size: int, seed: int) -> list[int]:
        return sorted(random.Random(seed).sample(range(len(self.paths)), size))


def make_probes(store: Storage, repo_id: str, manifest: Manifest, count: int) -> Probes:
    """``count`` probes: paths at the tip, gone paths, never-existing paths, commit dates."""
    rng = random.Random(SEED)
    changes = store.query(
        "SELECT path, CAST(epoch(committed_at) AS BIGINT) FROM git_commits "
        "WHERE repo_id = ? ORDER BY chain_seq, path",
        [repo_id],
    )
    low, high = manifest.first_date - MARGIN, manifest.last_date + MARGIN
    paths: list[str] = []
    seconds: list[int] = []
    for i in range(count):
        roll = rng.random()
        when = rng.randint(low, high)
        if roll < BOUNDARY:  # a commit's own second, or the second before it
            path, when = changes[rng.randrange(len(changes))]
            when -= rng.randint(0, 1)
        elif roll < BOUNDARY + GONE:
            path = rng.choice(manifest.gone)
        elif roll < BOUNDARY + GONE + NEVER:
            near = rng.choice(manifest.live)
            path = rng.choice((f"nowhere/missing_{i}.py", near + ".orig", near.upper()))
        else:
            path = rng.choice(manifest.live)
        paths.append(path)
        seconds.append(int(when))
    return Probes(paths, seconds, pa.table({"path": paths, "at": at_seconds(seconds)}))


# -- a synced template per case, copied for its lookups ---------------------------------------
def _synced_template(databases: Databases, manifest: Manifest) -> str:
    """A template holding the repository synced (made once per case)."""

    def sync(store: Storage) -> None:
        print(f"  syncing {manifest.path} once for the lookup case ...", file=sys.stderr)
        _check_sync(sync_repository(store, manifest.path), manifest)

    return databases.template("synced", sync)


def _check_sync(result: SyncResult, manifest: Manifest) -> None:
    require(
        result.commits == result.new_commits == manifest.first_parent_commits
        and result.file_changes > result.commits
        and not result.rewritten,
        f"the sync of {manifest.path} gave {result}; wanted all "
        f"{manifest.first_parent_commits} first-parent commits",
    )


def _git_answer(manifest: Manifest, path: str, seconds: int) -> str | None:
    """What ``git log -1 --first-parent --format=%H --before=@T main -- PATH`` prints."""
    command = git_command(
        manifest.path,
        "log",
        "-1",
        "--first-parent",
        "--format=%H",
        f"--before=@{seconds}",
        BRANCH,
        "--",
        path,
    )
    proc = subprocess.run(command, capture_output=True, env=git_env(), check=False)
    require(proc.returncode == 0, f"git log failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode().strip() or None


def _fields(answer: Resolution) -> tuple[Any, ...]:
    return (answer.commit_sha, answer.change_type, answer.committed_at, answer.found_path)


def _row_fields(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["commit_sha"], row["change_type"], row["committed_at"], row["found_path"])


def _latencies(call: Callable[[int], object], indexes: Sequence[int]) -> list[float]:
    """Seconds of each call, one by one (one garbage collection before, none forced within)."""
    gc.collect()
    out: list[float] = []
    for i in indexes:
        start = time.perf_counter()
        call(i)
        out.append(time.perf_counter() - start)
    return out


# -- the sync ---------------------------------------------------------------------------------
class GitSync(Benchmark):
    """A repository's first sync into a fresh database against the ``git log`` it consumes."""

    name = "git_sync"
    baseline = "git_log_drained"
    base_note = (
        "A generated repository (git_repo.py; cached): {commits:,} first-parent commits "
        "({all:,} in all, topic branches merged --no-ff), {files:,} files at the tip. Case: "
        "sync_repository(store, repo) into a fresh {db} migrated to head (opening and "
        "migrating untimed): git log, parsing, Arrow, the validated writes of git_repos, "
        "git_commits and git_refs in one transaction, rev-list --count, for-each-ref and the "
        "final count. Baseline: the exact git log command it consumes (git -C repo, the "
        "project's -c overrides and environment, log_args(tip)), stdout to a pipe read in "
        "1 MiB chunks and discarded. Extras: read_history (git log and parse_log streaming, as "
        "the sync reads), parse_log (the parse alone over the captured output, no git), "
        "write_commits (store.write('git_commits', rows) alone, into a fresh database holding "
        "the git_repos row). The rows column holds first-parent commits. Goal: ratio <= 1.5."
    )

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        self.scale = scale_for(data.num_rows)
        super().__init__(self.scale.spec.commits)
        self.dbs = databases
        self.engine = databases.engine
        self.note = self.base_note
        self.manifest: Manifest | None = None
        self.command: list[str] = []
        self.tokens: list[bytes] = []
        self.arrow: pa.Table | None = None
        self.repo_id = ""

    def prepare(self) -> None:
        self.manifest = manifest = repository(self.scale.spec)
        self.command = git_command(manifest.path, *log_args(manifest.tip))
        self.time_baseline()  # warms the page cache over the pack for both sides
        output = subprocess.run(self.command, capture_output=True, env=git_env(), check=True).stdout
        self.tokens = output.split(b"\0")
        # Independent of parse_log: one git_commits row per raw diff entry git printed.
        entries = sum(1 for t in self.tokens if t.lstrip(b"\n").startswith(b":"))
        with self.dbs.migrated() as store:
            result = sync_repository(store, manifest.path)
            _check_sync(result, manifest)
            require(
                result.file_changes == entries,
                f"the sync stored {result.file_changes} changes; git log printed {entries}",
            )
            self.repo_id = result.repo_id
        history = parse_log(iter(self.tokens), self.repo_id)
        self.arrow = history.to_arrow(manifest.first_parent_commits)
        self.note = self.base_note.format(
            db=self.dbs.described,
            commits=manifest.first_parent_commits,
            all=manifest.all_commits,
            files=len(manifest.live),
        )
        print(
            f"  {self.name}: {entries:,} file changes; git log prints {len(output) / 1e6:.1f} MB",
            file=sys.stderr,
        )

    def time_case(self) -> float:
        manifest = self.manifest
        assert manifest is not None
        with self.dbs.migrated() as store:
            results: list[SyncResult] = []
            seconds = timed(lambda: results.append(sync_repository(store, manifest.path)))
            _check_sync(results[0], manifest)
        return seconds

    def _drain(self) -> None:
        proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, env=git_env())
        assert proc.stdout is not None
        with proc.stdout:
            while proc.stdout.read(CHUNK):
                pass
        require(proc.wait() == 0, f"git log failed with status {proc.returncode}")

    def time_baseline(self) -> float:
        return timed(self._drain)

    def time_extras(self) -> dict[str, float]:
        manifest = self.manifest
        assert manifest is not None
        repo, tip = Path(manifest.path), manifest.tip
        return {
            "read_history": timed(lambda: read_history(repo, self.repo_id, tip)),
            "parse_log": timed(lambda: parse_log(iter(self.tokens), self.repo_id)),
            "write_commits": self._time_write(),
        }

    def _time_write(self) -> float:
        manifest, arrow = self.manifest, self.arrow
        assert manifest is not None and arrow is not None
        with self.dbs.migrated() as store:
            repo = {
                "repo_id": self.repo_id,
                "root": manifest.path,
                "tracked_ref": f"refs/heads/{BRANCH}",
            }
            store.write("git_repos", [repo])
            seconds = timed(lambda: store.write("git_commits", arrow))
        return seconds

    def close(self) -> None:
        self.arrow = None
        self.tokens = []


# -- lookups ----------------------------------------------------------------------------------
class _Lookups(Benchmark):
    """Shared set-up: a copy of the synced database, a resolver over it, and the probes."""

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        self.scale = scale_for(data.num_rows)
        super().__init__(self.scale.probes)
        self.dbs = databases
        self.engine = databases.engine
        self._open_copy = ExitStack()
        self.manifest: Manifest | None = None
        self.store: Storage | None = None
        self.resolver: GitHistoryResolver | None = None
        self.probes: Probes | None = None
        self.repo_id = ""
        self._answers: pa.Table | None = None  # resolve_many's, from prepare

    def _open(self) -> None:
        self.manifest = repository(self.scale.spec)
        template = _synced_template(self.dbs, self.manifest)
        self.store = self._open_copy.enter_context(self.dbs.copy(template))
        repos = self.store.query("SELECT repo_id FROM git_repos")
        require(len(repos) == 1, f"the synced database holds {len(repos)} repositories")
        self.repo_id = repos[0][0]
        self.resolver = GitHistoryResolver(self.store)
        self.probes = make_probes(self.store, self.repo_id, self.manifest, self.scale.probes)

    def _resolve_many(self) -> pa.Table:
        assert self.resolver is not None and self.probes is not None
        return self.resolver.resolve_many(self.repo_id, self.probes.table)

    def _time_many_per_probe(self) -> float:
        """resolve_many over every probe, in seconds per probe."""
        answers: list[pa.Table] = []
        seconds = timed(lambda: answers.append(self._resolve_many()))
        require(answers[0].num_rows == self.scale.probes, "resolve_many lost probes")
        return seconds / self.scale.probes

    def _resolve_many_default(self, defaults: AbstractContextManager[None]) -> pa.Table:
        """resolve_many under the engine's default ASOF plan (DuckDB: a nested loop for small
        estimates) instead of egregora's session setting."""
        with defaults:
            return self._resolve_many()

    def _asof_extra(self) -> dict[str, float]:
        """The asof_loop_default reference point: what egregora's ASOF setting saves (on an
        engine where egregora sets one)."""
        assert self.store is not None
        defaults = self.dbs.asof_defaults(self.store)
        if defaults is None:
            return {}
        answers: list[pa.Table] = []
        seconds = timed(lambda: answers.append(self._resolve_many_default(defaults)))
        require(
            self._answers is not None and answers[0].equals(self._answers),
            "resolve_many answers differently under DuckDB's default ASOF plan",
        )
        return {"asof_loop_default": seconds / self.scale.probes}

    def _resolve(self, i: int) -> Resolution:
        assert self.resolver is not None and self.probes is not None
        return self.resolver.resolve(self.repo_id, self.probes.paths[i], self.probes.at(i))

    def close(self) -> None:
        self.store = self.resolver = self.probes = self._answers = None
        self._open_copy.close()


class GitResolveMany(_Lookups):
    """``resolve_many`` over all probes against one ``git log`` process per probe."""

    name = "git_resolve_many"
    baseline = "git_log_per_probe"
    unit = "s/probe"

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        super().__init__(data, databases)
        self.sample: list[int] = []
        self.note = (
            f"Seconds per probe. Case: resolver.resolve_many(repo_id, probes) over "
            f"{self.scale.probes:,} probes (one query: an ASOF join where the engine has "
            "one, else egregora's equivalent without it; Arrow in, Arrow out) on a copy of a "
            f"synced {databases.described}, divided by the probes. Baseline: "
            "`git log -1 --first-parent --format=%H --before=@T main "
            f"-- PATH` (one process each, the project's -c overrides) on a fixed sample of "
            f"{self.scale.git_sample} of the probes, divided by the sample. Probes: 55% paths at "
            "the tip, 20% deleted or renamed away, 15% never existed, 10% at a commit's own "
            "second (or the one before), times uniform over the history and a month either "
            "side. prepare checks that resolve_many's commit equals git's on the sample. The "
            "rows column holds the probes. Extra asof_loop_default (DuckDB only): "
            f"resolve_many with DuckDB's default {ASOF_SETTING} (egregora sets 0; same answers). "
            "Goal: ratio <= 0.001 (1,000x faster per probe)."
        )

    def prepare(self) -> None:
        self._open()
        assert self.probes is not None and self.manifest is not None
        self.sample = self.probes.sample(self.scale.git_sample, SEED + 1)
        self._answers = self._resolve_many()
        answers = self._answers["commit_sha"].to_pylist()
        for i in self.sample:
            path, seconds = self.probes.paths[i], self.probes.seconds[i]
            git = _git_answer(self.manifest, path, seconds)
            require(
                answers[i] == git,
                f"resolve_many says {answers[i]} for {path!r} at @{seconds}; git says {git}",
            )

    def time_case(self) -> float:
        return self._time_many_per_probe()

    def time_baseline(self) -> float:
        probes, manifest = self.probes, self.manifest
        assert probes is not None and manifest is not None
        sample = self.sample

        def ask_git() -> None:
            for i in sample:
                _git_answer(manifest, probes.paths[i], probes.seconds[i])

        return timed(ask_git) / len(sample)

    def time_extras(self) -> dict[str, float]:
        return self._asof_extra()

    def sizes(self) -> tuple[int, int]:
        return self.scale.probes, len(self.sample)


class GitResolveLoop(_Lookups):
    """``resolve_many`` over all probes against single ``resolve`` calls, per probe."""

    name = "git_resolve_loop"
    baseline = "resolve_per_probe"
    unit = "s/probe"

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        super().__init__(data, databases)
        self.sample: list[int] = []
        self.note = (
            f"Seconds per probe, the same probes as git_resolve_many. Case: resolve_many over "
            f"{self.scale.probes:,} probes, divided by the probes. Baseline: a loop of "
            f"resolver.resolve(repo_id, path, at) (one parameterized query each, no cache) over "
            f"a fixed sample of {self.scale.loop_sample:,} of them, divided by the sample. "
            "prepare checks both give the same commit, change type, date and path on the "
            "sample. Extra asof_loop_default (DuckDB only): resolve_many with DuckDB's "
            f"default {ASOF_SETTING} (egregora sets 0; same answers). "
            "Goal: ratio <= 0.01 (100x faster per probe)."
        )

    def prepare(self) -> None:
        self._open()
        assert self.probes is not None
        self.sample = self.probes.sample(self.scale.loop_sample, SEED + 2)
        self._answers = self._resolve_many()
        rows = self._answers.to_pylist()
        for i in self.sample:
            one, many = _fields(self._resolve(i)), _row_fields(rows[i])
            require(one == many, f"probe {i}: resolve gives {one}, resolve_many {many}")

    def time_case(self) -> float:
        return self._time_many_per_probe()

    def time_baseline(self) -> float:
        sample = self.sample

        def loop() -> None:
            for i in sample:
                self._resolve(i)

        return timed(loop) / len(sample)

    def time_extras(self) -> dict[str, float]:
        return self._asof_extra()

    def sizes(self) -> tuple[int, int]:
        return self.scale.probes, len(self.sample)


class GitResolveLatency(_Lookups):
    """One ``resolve`` call's latency (p50; p99 and the mean as extras) against its bare SQL
    query. An uncached ``resolve`` defers no work to later calls (no batched write, no flush),
    so the median hides no amortised cost; the mean is reported beside it so one would show."""

    name = "git_resolve_latency"
    baseline = "lookup_query_only"
    extra_pairs = (("p99", "baseline_p99"), ("mean", "baseline_mean"))

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        super().__init__(data, databases)
        self.rows = self.scale.latency_probes
        self.sample: list[int] = []
        self._stats: dict[str, float] = {}  # p99s and means of the latest repetition
        self.note = (
            f"Seconds per call, the 50th percentile of {self.scale.latency_probes:,} calls timed "
            "one by one (random probes of git_resolve_many's set, the same each repetition). "
            "Case: resolver.resolve(repo_id, path, at), no cache. Baseline: the statement "
            "resolve runs (egregora.git.resolver.ONE_LOOKUP) executed with its parameters "
            f"through store.query on the same copy of a synced {databases.described} and "
            "fetched, so the ratio is what the Python around it costs. "
            "Extras: p99 (of resolve) against baseline_p99 (of the bare query), and mean "
            "against baseline_mean. The rows column holds the calls."
        )

    def prepare(self) -> None:
        self._open()
        assert self.probes is not None
        self.sample = self.probes.sample(self.scale.latency_probes, SEED + 3)
        for i in self.sample:
            row = self._query(i)
            answer = _fields(self._resolve(i))
            want = tuple(row[0]) if row else (None, None, None, None)
            require(answer == want, f"probe {i}: resolve gives {answer}, the query {want}")

    def _query(self, i: int) -> list[tuple[Any, ...]]:
        assert self.store is not None and self.probes is not None
        path, at = self.probes.paths[i], self.probes.at(i)
        return self.store.query(ONE_LOOKUP, one_lookup_params(self.repo_id, path, at))

    def _p50(self, calls: list[float], prefix: str) -> float:
        self._stats[f"{prefix}p99"] = percentile(calls, 99)
        self._stats[f"{prefix}mean"] = statistics.fmean(calls)
        return percentile(calls, 50)

    def time_case(self) -> float:
        return self._p50(_latencies(self._resolve, self.sample), "")

    def time_baseline(self) -> float:
        return self._p50(_latencies(self._query, self.sample), "baseline_")

    def time_extras(self) -> dict[str, float]:
        return dict(self._stats)


class GitCache(_Lookups):
    """Repeated single lookups through the lookup cache against the uncached resolver."""

    name = "git_cache"
    baseline = "uncached_resolve"
    extra_pairs = (("distinct_cached", "distinct_uncached"),)

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        super().__init__(data, databases)
        self.rows = self.scale.lookups
        self.cache: LookupCache | None = None
        self.cached: GitHistoryResolver | None = None
        self.working: list[int] = []
        self.lookups: list[int] = []
        self.note = (
            f"Seconds for {self.scale.lookups:,} single lookups drawn at random from a working "
            f"set of {self.scale.working_set:,} distinct probes (each about "
            f"{self.scale.lookups // self.scale.working_set} times). Case: resolve through "
            "GitHistoryResolver(store, cache=LookupCache(store)) (defaults: flush every 1,000 "
            "changes, 100,000 rows, 30 days), warmed up once in prepare (every probe answered, "
            "then flushed), plus the final cache.flush() that writes the hits it counted. "
            "Baseline: the uncached resolver, same lookups. Extras: distinct_cached (each "
            "probe of the working set once, right after a flush, so every hit reads "
            "git_lookup_cache; plus its flush) against distinct_uncached (the same, uncached). "
            "The rows column holds the lookups. prepare checks the cached answers (commit, "
            "change type, date, path) equal the uncached ones."
        )

    def prepare(self) -> None:
        self._open()
        assert self.store is not None and self.probes is not None
        rng = random.Random(SEED + 4)
        self.working = self.probes.sample(self.scale.working_set, SEED + 5)
        self.lookups = [rng.choice(self.working) for _ in range(self.scale.lookups)]
        self.cache = LookupCache(self.store)
        self.cached = GitHistoryResolver(self.store, cache=self.cache)
        for i in self.working:  # warm-up: every answer computed and stored
            self._cached(i)
        self.cache.flush()
        stored = self.store.query("SELECT count(*) FROM git_lookup_cache")[0][0]
        require(stored == len(self.working), f"the cache holds {stored} answers")
        for i in self.working:
            got, want = _fields(self._cached(i)), _fields(self._resolve(i))
            require(got == want, f"probe {i}: the cache answers {got}, the resolver {want}")
        self.cache.flush()

    def _cached(self, i: int) -> Resolution:
        assert self.cached is not None and self.probes is not None
        return self.cached.resolve(self.repo_id, self.probes.paths[i], self.probes.at(i))

    def _time_cached(self, indexes: Sequence[int]) -> float:
        cache = self.cache
        assert cache is not None
        hits = cache.hits

        def lookups() -> None:
            for i in indexes:
                self._cached(i)
            cache.flush()

        seconds = timed(lookups)
        require(cache.hits - hits == len(indexes), "a lookup missed the warmed-up cache")
        return seconds

    def _time_uncached(self, indexes: Sequence[int]) -> float:
        def lookups() -> None:
            for i in indexes:
                self._resolve(i)

        return timed(lookups)

    def time_case(self) -> float:
        return self._time_cached(self.lookups)

    def time_baseline(self) -> float:
        return self._time_uncached(self.lookups)

    def time_extras(self) -> dict[str, float]:
        return {
            "distinct_cached": self._time_cached(self.working),
            "distinct_uncached": self._time_uncached(self.working),
        }

    def close(self) -> None:
        self.cache = self.cached = None
        super().close()
