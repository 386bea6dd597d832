"""Storage across processes: read-only sharing, the write lock and its PID, SIGKILL mid-write.

Every test runs tests/_storage_child.py as a second process on a real DuckDB file.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
from ibis.backends.duckdb import Backend as DuckDBBackend

from egregora.backends.duckdb import LOCK_RETRY_INTERVAL
from egregora.errors import DatabaseError, DatabaseLockedError, EgregoraError
from egregora.storage import DatabaseURL, Storage, connect_duckdb

CHILD = Path(__file__).with_name("_storage_child.py")
# Bounds on waiting for a child's line: they fail a test only when the line never comes.
START_TIMEOUT = 60.0  # a child imports ibis, pandera and duckdb before it says anything
WRITE_TIMEOUT = 300.0  # the big write of the crash test (a few seconds when nothing is wrong)

# The crash test: committed batches before the big one, and the big one's size: big enough that
# DuckDB writes its row groups to the file before the commit, and that the insert lasts seconds.
BATCHES = 3
BATCH_ROWS = 2_000
BIG_ROWS = 400_000
KILL_ATTEMPTS = 5  # kills that must land while the child runs are tried again up to this often


class Child:
    """A running tests/_storage_child.py whose stdout lines are read as they come."""

    def __init__(self, *args: str, stderr_to: Path) -> None:
        self._stderr_path = stderr_to
        self._stderr = stderr_to.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def stderr(self) -> str:
        self._stderr.flush()
        return self._stderr_path.read_text()

    def expect(self, prefix: str, timeout: float = START_TIMEOUT) -> str:
        """The next output line starting with ``prefix`` (earlier lines are kept in ``lines``)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(left, 0.001))
            except queue.Empty:
                pytest.fail(
                    f"child {self.pid} said no {prefix!r} within {timeout}s; output so far "
                    f"{self.lines}; stderr:\n{self.stderr()}"
                )
            if line is None:
                self.proc.wait(timeout=10)
                pytest.fail(
                    f"child {self.pid} exited ({self.proc.returncode}) before {prefix!r}; "
                    f"output {self.lines}; stderr:\n{self.stderr()}"
                )
            self.lines.append(line)
            if line.startswith(prefix):
                return line

    def release(self) -> None:
        """Let a ``hold`` child close its store and exit."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 30.0) -> int:
        """Wait for the child to end; collect the rest of its output."""
        returncode = self.proc.wait(timeout=timeout)
        while True:
            try:
                line = self._queue.get(timeout=5)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        return returncode

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self._stderr.close()


@pytest.fixture
def children(tmp_path: Path) -> Iterator[list[Child]]:
    """Children started by a test; every one still running at the end is killed."""
    started: list[Child] = []
    yield started
    for child in started:
        child.stop()


def spawn(children: list[Child], tmp_path: Path, *args: str) -> Child:
    child = Child(*args, stderr_to=tmp_path / f"child-{len(children)}.stderr")
    children.append(child)
    return child


def hold(children: list[Child], tmp_path: Path, db: Path, mode: str) -> Child:
    """A child holding ``db`` open (``rw`` or ``ro``), once it says so."""
    child = spawn(children, tmp_path, "hold", str(db), mode)
    assert child.expect("ready") == f"ready {child.pid}"
    return child


@pytest.fixture
def db(db_path: Path) -> Path:
    """A database at the catalog's schema holding a few rows, closed."""
    with Storage.open(str(db_path)) as store:
        store.ensure_schema()
        store.write(
            "git_repos",
            [{"repo_id": "repo-1", "root": "/srv/blog", "tracked_ref": "refs/heads/main"}],
        )
    return db_path


def _repo_ids(store: Storage) -> list[str]:
    t = store.table("git_repos")
    return sorted(store.execute(t.repo_id))


# ---------------------------------------------------------------------------------------------
# Read-only beside a read-only process.


def test_read_only_store_opens_beside_a_read_only_process(
    db: Path, tmp_path: Path, children: list[Child]
) -> None:
    holder = hold(children, tmp_path, db, "ro")
    with Storage.open(str(db), read_only=True) as store:
        assert store.read_only
        assert _repo_ids(store) == ["repo-1"]
        with pytest.raises(DatabaseError, match="read-only") as refused:
            store.write("git_repos", [{"repo_id": "r2", "root": "/r2", "tracked_ref": "main"}])
        assert isinstance(refused.value, EgregoraError)
        assert _repo_ids(store) == ["repo-1"]
    holder.release()
    assert holder.finish() == 0, holder.stderr()
    assert holder.lines[-1] == "closed"


def test_opening_for_writing_beside_a_read_only_process_names_it(
    db: Path, tmp_path: Path, children: list[Child]
) -> None:
    holder = hold(children, tmp_path, db, "ro")
    with pytest.raises(DatabaseLockedError) as locked:
        Storage.open(str(db))
    assert locked.value.pid == holder.pid, str(locked.value)
    holder.release()
    assert holder.finish() == 0, holder.stderr()


# ---------------------------------------------------------------------------------------------
# The write lock.


class FakeTime:
    """The clock and pause of ``connect_duckdb``'s retries: time passes only by pausing."""

    def __init__(self, on_pause: Callable[[], None] = lambda: None) -> None:
        self.now = 0.0
        self.pauses: list[float] = []
        self._on_pause = on_pause

    def clock(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self._on_pause()
        self.now += seconds


def _connect(
    db: Path, fake: FakeTime, *, read_only: bool = False, timeout: float = 0.0
) -> DuckDBBackend:
    return connect_duckdb(
        DatabaseURL.parse(str(db)),
        read_only=read_only,
        timeout=timeout,
        clock=fake.clock,
        pause=fake.pause,
    )


@pytest.mark.parametrize("read_only", [False, True], ids=["write", "read-only"])
def test_second_process_gets_locked_error_naming_the_holder(
    db: Path, tmp_path: Path, children: list[Child], read_only: bool
) -> None:
    holder = hold(children, tmp_path, db, "rw")
    with pytest.raises(DatabaseLockedError) as locked:
        Storage.open(str(db), read_only=read_only)
    error = locked.value
    assert isinstance(error, EgregoraError)
    assert error.pid == holder.pid, f"pid {error.pid} is not the holder's {holder.pid}: {error}"
    assert f"process {holder.pid}" in str(error)
    assert "--wait" in str(error) or "retry" in str(error)
    # Without a timeout the open is tried once: it never pauses to wait for the holder.
    fake = FakeTime()
    with pytest.raises(DatabaseLockedError) as again:
        _connect(db, fake, read_only=read_only)
    assert again.value.pid == holder.pid
    assert fake.pauses == [], "timeout=0 must not wait for the holder"
    holder.release()
    assert holder.finish() == 0, holder.stderr()


def test_a_timeout_shorter_than_the_hold_still_fails(
    db: Path, tmp_path: Path, children: list[Child]
) -> None:
    holder = hold(children, tmp_path, db, "rw")
    with pytest.raises(DatabaseLockedError) as locked:
        Storage.open(str(db), timeout=0.5)
    assert locked.value.pid == holder.pid
    # It retries every LOCK_RETRY_INTERVAL until the timeout has passed, and not beyond.
    fake = FakeTime()
    with pytest.raises(DatabaseLockedError) as again:
        _connect(db, fake, timeout=0.5)
    assert again.value.pid == holder.pid
    assert len(fake.pauses) >= 2 and set(fake.pauses) == {LOCK_RETRY_INTERVAL}
    assert fake.now >= 0.5 > fake.now - LOCK_RETRY_INTERVAL, fake.pauses
    assert holder.proc.poll() is None, "the holder held the file throughout"
    holder.release()
    assert holder.finish() == 0, holder.stderr()


def test_with_a_timeout_opening_succeeds_once_the_holder_exits(
    db: Path, tmp_path: Path, children: list[Child]
) -> None:
    holder = hold(children, tmp_path, db, "rw")

    def holder_exits() -> None:
        """On the first failed attempt: the holder closes the file and exits."""
        if holder.proc.poll() is None:
            holder.release()
            assert holder.finish() == 0, holder.stderr()

    fake = FakeTime(on_pause=holder_exits)
    backend = _connect(db, fake, timeout=30)
    assert fake.pauses == [LOCK_RETRY_INTERVAL], "refused once while held, then opened"
    assert holder.lines[-1] == "closed"
    with Storage(backend, DatabaseURL.parse(str(db)), read_only=False) as store:
        store.write("git_repos", [{"repo_id": "r2", "root": "/r2", "tracked_ref": "main"}])
        assert _repo_ids(store) == ["r2", "repo-1"]


# ---------------------------------------------------------------------------------------------
# Threads writing Ibis expressions over the store's own tables (in a child: it may deadlock).

COPY_THREADS = 8
COPY_ROWS = 100
COPY_ATTEMPTS = 3
# A bound on each attempt (with start-up, a few seconds when nothing hangs): only a child that
# deadlocked fails to report an attempt within it.
COPY_TIMEOUT = 300.0


def test_threads_writing_ibis_expressions_over_the_stores_own_tables(
    db_path: Path, tmp_path: Path, children: list[Child]
) -> None:
    """Each thread copies its rows with ``store.write("messages", <expression on messages>)``.

    The expression is run by write(); it must run under the storage lock like every other use
    of the shared connection. The child is killed if it hangs.
    """
    child = spawn(
        children,
        tmp_path,
        "copy-threads",
        str(db_path),
        str(COPY_THREADS),
        str(COPY_ROWS),
        str(COPY_ATTEMPTS),
    )
    results = []
    for attempt in range(COPY_ATTEMPTS):
        try:
            results.append(child.expect(f"attempt {attempt} ", timeout=COPY_TIMEOUT))
        except pytest.fail.Exception:
            hung = child.proc.poll() is None
            raise AssertionError(
                f"attempt {attempt}: the child "
                + (f"hung (deadlock?) for {COPY_TIMEOUT:.0f}s" if hung else "died")
                + f"; results so far {results}; output {child.lines}"
            ) from None
    failed = [line for line in results if not line.endswith(" ok")]
    assert not failed, "\n".join(failed)
    child.expect("done", timeout=30)
    assert child.finish() == 0, child.stderr()


# ---------------------------------------------------------------------------------------------
# SIGKILL in the middle of a large write.


@dataclass(frozen=True)
class CrashPoint:
    """Where in the big write a trial kills the child.

    The child says ``kill_on`` when it gets there; with ``paused`` it stops on that line, so the
    kill lands there for sure; otherwise it goes on and the kill lands while it runs, which the
    trial checks (the child never said ``unfinished``) and tries again if it came too late.
    """

    name: str
    kill_on: str
    paused: bool
    unfinished: str


CRASH_POINTS = (
    CrashPoint("batch staged in a temporary table", "staged", True, "inserting"),
    CrashPoint("transaction open, before the insert", "inserting", True, "inserted"),
    CrashPoint("during the insert", "inserting", False, "inserted"),
    CrashPoint("inserted, before the commit", "inserted", True, "finished big batch"),
    CrashPoint("during the commit", "inserted", False, "finished big batch"),
)


@dataclass(frozen=True)
class KillTrial:
    name: str
    point: CrashPoint
    returncode: int
    landed: bool  # killed at its point: before the child said point.unfinished
    wal_left: bool
    big_rows: int

    def describe(self) -> str:
        return (
            f"trial {self.name} (kill {self.point.name}, on {self.point.kill_on!r}): "
            f"returncode {self.returncode}, landed before {self.point.unfinished!r}: "
            f"{self.landed}, WAL left: {self.wal_left}, big-batch rows found on reopen: "
            f"{self.big_rows}"
        )


def _thread_counts(store: Storage) -> dict[str, tuple[int, int, int]]:
    """Per thread_id of messages: rows, distinct event ids, sum of seq."""
    t = store.table("messages")
    grouped = t.group_by("thread_id").agg(
        rows=t.count(), ids=t.event_id.nunique(), seq_sum=t.seq.sum()
    )
    frame = store.execute(grouped)
    return {
        str(r.thread_id): (int(r.rows), int(r.ids), int(r.seq_sum))
        for r in frame.itertuples(index=False)
    }


def _complete(rows: int) -> tuple[int, int, int]:
    return rows, rows, rows * (rows - 1) // 2


def _kill_trial(
    db: Path, tmp_path: Path, children: list[Child], name: str, point: CrashPoint
) -> Child:
    """Run a crash child and SIGKILL it once it says ``point.kill_on``; the ended child."""
    pause_at = point.kill_on if point.paused else "none"
    child = spawn(
        children,
        tmp_path,
        *("crash", str(db), name, str(BATCHES), str(BATCH_ROWS), str(BIG_ROWS), pause_at),
    )
    child.expect("started big batch")
    child.expect(point.kill_on, timeout=WRITE_TIMEOUT)
    if child.proc.poll() is None:
        os.kill(child.pid, signal.SIGKILL)
    returncode = child.finish()
    label = f"trial {name} ({point.name}): {child.lines}; stderr:\n{child.stderr()}"
    committed = [line for line in child.lines if line.startswith("committed")]
    assert committed == [f"committed {n} {BATCH_ROWS}" for n in range(BATCHES)], label
    assert returncode in (0, -signal.SIGKILL), f"{label}: exited {returncode}"
    if point.paused:  # stopped on the line: nothing after it can have run
        assert _landed(child, point), f"{label}: the kill did not land where the child stopped"
    return child


def _said(child: Child, line: str) -> bool:
    return any(said.startswith(line) for said in child.lines)


def _landed(child: Child, point: CrashPoint) -> bool:
    """Killed where the trial meant to: before the child said ``point.unfinished``."""
    return child.proc.returncode == -signal.SIGKILL and not _said(child, point.unfinished)


def _big_batch_allowed(child: Child, point: CrashPoint) -> list[tuple[int, int, int]]:
    """What may be left of the big batch, all or nothing, by how far the child got."""
    if _said(child, "finished big batch"):
        return [_complete(BIG_ROWS)]  # the write returned: committed whole
    if _said(child, "inserted") and not point.paused:
        return [(0, 0, 0), _complete(BIG_ROWS)]  # killed during the commit, or just after it
    return [(0, 0, 0)]  # killed before the commit


def test_sigkill_mid_write_keeps_committed_batches_and_nothing_of_the_interrupted_one(
    db_path: Path, tmp_path: Path, children: list[Child]
) -> None:
    with Storage.open(str(db_path)) as store:
        store.ensure_schema()
    inode = db_path.stat().st_ino
    wal = db_path.with_name(db_path.name + ".wal")

    expected: dict[str, tuple[int, int, int]] = {}
    trials: list[KillTrial] = []
    for point in CRASH_POINTS:
        for _ in range(1 if point.paused else KILL_ATTEMPTS):
            name = f"t{len(trials)}"
            child = _kill_trial(db_path, tmp_path, children, name, point)
            returncode, landed = child.proc.returncode, _landed(child, point)
            wal_left = wal.exists()
            label = f"trial {name} ({point.name})"

            assert db_path.exists(), f"{label}: the database file is gone"
            assert db_path.stat().st_ino == inode, f"{label}: the database file was replaced"
            # Reopening for writing works and finds every committed batch whole.
            with Storage.open(str(db_path)) as store:
                counts = _thread_counts(store)
                big = counts.pop(f"{name}-big", (0, 0, 0))
                trial = KillTrial(name, point, returncode, landed, wal_left, big[0])
                for n in range(BATCHES):
                    expected[f"{name}-b{n}"] = _complete(BATCH_ROWS)
                # All or nothing: a write killed before its commit left nothing; one killed
                # during its commit (or that returned first) may be whole; never a part of it.
                allowed = _big_batch_allowed(child, point)
                assert big in allowed, f"{trial.describe()}: (rows, ids, sum of seq) = {big}"
                wrong = {k: (counts.get(k), v) for k, v in expected.items() if counts.get(k) != v}
                extra = sorted(set(counts) - set(expected))
                assert not wrong and not extra, (
                    f"{trial.describe()}: committed batches (found, expected) {wrong}; "
                    f"rows of unexpected threads {extra}"
                )
                if big != (0, 0, 0):
                    expected[f"{name}-big"] = big
                # ...and stays writable.
                written = store.write(
                    "git_repos",
                    [{"repo_id": f"after-{name}", "root": name, "tracked_ref": "main"}],
                )
                assert written == 1, trial.describe()
            trials.append(trial)
            assert db_path.stat().st_ino == inode, f"{trial.describe()}: the file was replaced"
            if landed:
                break
        summary = "\n".join("  " + t.describe() for t in trials)
        assert trials[-1].landed, (
            f"no kill of {KILL_ATTEMPTS} landed {point.name} (before the child said "
            f"{point.unfinished!r}):\n{summary}"
        )

    with Storage.open(str(db_path), read_only=True) as store:
        assert _repo_ids(store) == sorted(f"after-{t.name}" for t in trials)
    summary = "\n".join("  " + t.describe() for t in trials)
    print(f"\nSIGKILL during a {BIG_ROWS}-row write:\n{summary}")
