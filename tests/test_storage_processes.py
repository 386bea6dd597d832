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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from egregora.errors import DatabaseError, DatabaseLockedError, EgregoraError
from egregora.storage import Storage
from tests._storage_child import messages as child_messages

CHILD = Path(__file__).with_name("_storage_child.py")
START_TIMEOUT = 60.0  # a child imports ibis, pandera and duckdb before it says anything

# The crash test: committed batches before the big one, and the big one's size. The big write
# is timed once in this process (about 1.5 s for 400,000 rows on the reference machine); each
# trial kills the child at a fraction of that time after it says it started the big write.
BATCHES = 3
BATCH_ROWS = 2_000
BIG_ROWS = 400_000
KILL_FRACTIONS = (0.0, 0.2, 0.45, 0.7)
MIN_MID_WRITE_KILLS = 3


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


@pytest.mark.parametrize("read_only", [False, True], ids=["write", "read-only"])
def test_second_process_gets_locked_error_naming_the_holder(
    db: Path, tmp_path: Path, children: list[Child], read_only: bool
) -> None:
    holder = hold(children, tmp_path, db, "rw")
    started = time.monotonic()
    with pytest.raises(DatabaseLockedError) as locked:
        Storage.open(str(db), read_only=read_only)
    assert time.monotonic() - started < 5, "timeout=0 must not wait for the holder"
    error = locked.value
    assert isinstance(error, EgregoraError)
    assert error.pid == holder.pid, f"pid {error.pid} is not the holder's {holder.pid}: {error}"
    assert f"process {holder.pid}" in str(error)
    assert "--wait" in str(error) or "retry" in str(error)
    holder.release()
    assert holder.finish() == 0, holder.stderr()


def test_a_timeout_shorter_than_the_hold_still_fails(
    db: Path, tmp_path: Path, children: list[Child]
) -> None:
    holder = hold(children, tmp_path, db, "rw")
    started = time.monotonic()
    with pytest.raises(DatabaseLockedError) as locked:
        Storage.open(str(db), timeout=0.5)
    waited = time.monotonic() - started
    assert 0.5 <= waited < 5, f"waited {waited:.2f}s for a 0.5s timeout"
    assert locked.value.pid == holder.pid
    holder.release()
    assert holder.finish() == 0, holder.stderr()


def test_with_a_timeout_opening_succeeds_once_the_holder_exits(
    db: Path, tmp_path: Path, children: list[Child]
) -> None:
    holder = hold(children, tmp_path, db, "rw")
    hold_for = 1.0
    releaser = threading.Timer(hold_for, holder.release)
    started = time.monotonic()
    releaser.start()
    try:
        with Storage.open(str(db), timeout=30) as store:
            waited = time.monotonic() - started
            assert holder.proc.wait(timeout=10) == 0, holder.stderr()
            assert waited >= hold_for, f"opened after {waited:.2f}s while the holder held it"
            store.write("git_repos", [{"repo_id": "r2", "root": "/r2", "tracked_ref": "main"}])
            assert _repo_ids(store) == ["r2", "repo-1"]
    finally:
        releaser.cancel()


# ---------------------------------------------------------------------------------------------
# Threads writing Ibis expressions over the store's own tables (in a child: it may deadlock).

COPY_THREADS = 8
COPY_ROWS = 100
COPY_ATTEMPTS = 3
COPY_TIMEOUT = 20.0  # the child needs about 5 s when nothing hangs


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
    started = time.monotonic()
    deadline = started + COPY_TIMEOUT
    results = []
    for attempt in range(COPY_ATTEMPTS):
        left = deadline - time.monotonic()
        try:
            results.append(child.expect(f"attempt {attempt} ", timeout=max(left, 0.1)))
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
class KillTrial:
    name: str
    delay: float
    returncode: int
    finished: bool  # the big write returned before the kill
    wal_left: bool
    big_rows: int

    def describe(self) -> str:
        return (
            f"trial {self.name} (kill {self.delay:.2f}s after 'started big batch'): "
            f"returncode {self.returncode}, big write finished first: {self.finished}, "
            f"WAL left: {self.wal_left}, big-batch rows found on reopen: {self.big_rows}"
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


def _kill_trial(db: Path, tmp_path: Path, children: list[Child], name: str, delay: float) -> int:
    child = spawn(
        children, tmp_path, "crash", str(db), name, str(BATCHES), str(BATCH_ROWS), str(BIG_ROWS)
    )
    child.expect("started big batch")
    time.sleep(delay)
    if child.proc.poll() is None:
        os.kill(child.pid, signal.SIGKILL)
    returncode = child.finish()
    committed = [line for line in child.lines if line.startswith("committed")]
    assert committed == [f"committed {n} {BATCH_ROWS}" for n in range(BATCHES)], (
        f"trial {name}: {child.lines}; stderr:\n{child.stderr()}"
    )
    assert returncode in (0, -signal.SIGKILL), (
        f"trial {name}: child exited {returncode}: {child.stderr()}"
    )
    return returncode


def _time_big_write(folder: Path) -> float:
    """Seconds this machine takes to write the big batch (after the same committed batches)."""
    with Storage.open(str(folder / "timing.duckdb")) as store:
        store.ensure_schema()
        for n in range(BATCHES):
            store.write("messages", child_messages(f"b{n}", BATCH_ROWS))
        batch = child_messages("big", BIG_ROWS)
        started = time.monotonic()
        assert store.write("messages", batch) == BIG_ROWS
        return time.monotonic() - started


def test_sigkill_mid_write_keeps_committed_batches_and_nothing_of_the_interrupted_one(
    db_path: Path, tmp_path: Path, children: list[Child]
) -> None:
    big_write = _time_big_write(tmp_path)
    delays = [fraction * big_write for fraction in KILL_FRACTIONS]
    with Storage.open(str(db_path)) as store:
        store.ensure_schema()
    inode = db_path.stat().st_ino
    wal = db_path.with_name(db_path.name + ".wal")

    expected: dict[str, tuple[int, int, int]] = {}
    trials: list[KillTrial] = []
    for index, delay in enumerate(delays):
        name = f"t{index}"
        returncode = _kill_trial(db_path, tmp_path, children, name, delay)
        finished = any(line.startswith("finished big batch") for line in children[-1].lines)
        wal_left = wal.exists()
        label = f"trial {name} (kill {delay:.2f}s after the big batch started)"

        assert db_path.exists(), f"{label}: the database file is gone"
        assert db_path.stat().st_ino == inode, f"{label}: the database file was replaced"
        # Reopening for writing works and finds every committed batch whole.
        with Storage.open(str(db_path)) as store:
            counts = _thread_counts(store)
            big = counts.pop(f"{name}-big", (0, 0, 0))
            trial = KillTrial(name, delay, returncode, finished, wal_left, big[0])
            for n in range(BATCHES):
                expected[f"{name}-b{n}"] = _complete(BATCH_ROWS)
            # All or nothing: a write that returned before the kill committed whole; one killed
            # between its commit and its print may be whole too; never a part of it.
            allowed = [_complete(BIG_ROWS)] if finished else [(0, 0, 0), _complete(BIG_ROWS)]
            assert big in allowed, f"{trial.describe()}: (rows, ids, sum of seq) = {big}"
            wrong = {k: (counts.get(k), v) for k, v in expected.items() if counts.get(k) != v}
            extra = sorted(set(counts) - set(expected))
            assert not wrong and not extra, (
                f"{trial.describe()}: committed batches (found, expected) {wrong}; "
                f"rows of unexpected threads {extra}"
            )
            # ...and stays writable.
            written = store.write(
                "git_repos", [{"repo_id": f"after-{name}", "root": name, "tracked_ref": "main"}]
            )
            assert written == 1, trial.describe()
        trials.append(trial)
        assert db_path.stat().st_ino == inode, f"{trial.describe()}: the file was replaced"

    with Storage.open(str(db_path), read_only=True) as store:
        assert _repo_ids(store) == sorted(f"after-t{i}" for i in range(len(delays)))
    mid_write = [t for t in trials if t.returncode == -signal.SIGKILL and t.big_rows == 0]
    summary = "\n".join("  " + t.describe() for t in trials)
    print(f"\nSIGKILL during a {BIG_ROWS}-row write ({big_write:.2f}s uninterrupted):\n{summary}")
    assert len(mid_write) >= MIN_MID_WRITE_KILLS, (
        f"only {len(mid_write)} of {len(trials)} kills landed during the big write; the write "
        f"({big_write:.2f}s uninterrupted) is too fast for the delays {delays}:\n{summary}"
    )
