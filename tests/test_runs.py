"""Run records (``egregora.runs``) and ``egregora runs``: what ran, on what, and how it ended.

Stale runs are checked against real processes: a child that records a run and is killed, a
live process that started after the run did (its pid was reused), and a killed child that
was not reaped yet (a zombie).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
from typer.testing import CliRunner

import egregora
from egregora.cli.app import app
from egregora.digest import content_hash
from egregora.errors import ConfigurationError, ContractViolation, EgregoraError, NotFoundError
from egregora.runs import DEFAULT_STALE_AFTER, RunStore, code_version
from egregora.runs import version as version_module
from egregora.storage import Storage
from egregora.tasks import NewTask, TaskStore
from tests.gitrepo import T0 as GIT_T0
from tests.gitrepo import GitRepo
from tests.support import FakeClock, copy_database

runner = CliRunner()
T0 = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
HOUR = timedelta(hours=1)
HOST = socket.gethostname()

# A child that records a run through Storage, closes the file, says the run id and waits.
# The children wait on stdin, which stays open until they are killed.
CHILD_RUN = """
import sys
from egregora.runs import RunStore
from egregora.storage import Storage
with Storage.open(sys.argv[1]) as store:
    run_id = RunStore(store).start("ingest", config={"child": True})
print(run_id, flush=True)
sys.stdin.read()
"""
SLEEPER = "import sys; sys.stdin.read()"


def _explode() -> None:
    raise ValueError("boom")


def _interrupt() -> None:
    raise KeyboardInterrupt("stop")


EXPLODE_LINE = _explode.__code__.co_firstlineno + 1
INTERRUPT_LINE = _interrupt.__code__.co_firstlineno + 1


@pytest.fixture
def fresh_db(tmp_path: Path, empty_db: Path) -> Path:
    """This test's own copy of the empty database (closed: open it with Storage)."""
    return copy_database(empty_db, tmp_path / "egregora.duckdb")


@pytest.fixture
def store(any_store: Storage) -> Storage:
    return any_store  # on each engine


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def runs(store: Storage, clock: FakeClock) -> RunStore:
    return RunStore(store, stale_after=HOUR, clock=clock)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _count(store: Storage) -> int:
    return int(store.query("SELECT count(*) FROM runs")[0][0])


def _row(run_id: str, **values: Any) -> dict[str, Any]:
    """A `running` runs row as another process (or an older egregora) would have written it."""
    row: dict[str, Any] = {
        "run_id": run_id,
        "parent_run_id": None,
        "stage": "ingest",
        "status": "running",
        "config_hash": None,
        "code_version": None,
        "input_checksum": None,
        "started_at": T0,
        "finished_at": None,
        "rows_in": None,
        "rows_out": None,
        "error": None,
        "attrs": None,
        "host": "elsewhere",
        "pid": 4242,
        "heartbeat_at": T0,
    }
    row.update(values)
    return row


def _status(runs: RunStore, run_id: str) -> str:
    return runs.require(run_id).status


@contextmanager
def _spawn(code: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """A child ``python -c code args``; killed and reaped on the way out whatever happens."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=30)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def _read_line(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"the child said nothing within {timeout} s"
    line = proc.stdout.readline().strip()
    assert line, f"the child ended without a line (exit code {proc.poll()})"
    return line


def _wait_until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


# -- starting a run -------------------------------------------------------------------------------
def test_start_records_what_runs_on_what_by_which_code_and_process(
    runs: RunStore, tmp_path: Path
) -> None:
    export = tmp_path / "export.zip"
    export.write_bytes(b"PK\x03\x04 chat export")
    run_id = runs.start("ingest", config={"b": 1, "a": [1, 2]}, inputs=[export, b"bytes"])
    run = runs.require(run_id)
    assert (run.run_id, run.stage, run.status, run.parent_run_id) == (
        run_id,
        "ingest",
        "running",
        None,
    )
    assert run.config_hash == _sha256('{"a":[1,2],"b":1}')
    assert run.attrs == {"config": {"a": [1, 2], "b": 1}}
    assert run.code_version == code_version()
    # The content hash of the inputs, the file counted by its bytes (not its name).
    assert run.input_checksum == content_hash([b"PK\x03\x04 chat export", b"bytes"])
    assert (run.host, run.pid) == (socket.gethostname(), os.getpid())
    assert run.started_at == run.heartbeat_at == T0
    assert (run.finished_at, run.rows_in, run.rows_out, run.error, run.duration) == (
        None,
        None,
        None,
        None,
        None,
    )


def _git_out(folder: Path, *args: str) -> str | None:
    done = subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else None


@pytest.fixture
def fresh_code_version() -> Iterator[None]:
    """``code_version`` is computed once per process: compute it afresh here, and after."""
    code_version.cache_clear()
    yield
    code_version.cache_clear()


@pytest.mark.usefixtures("fresh_code_version")
def test_code_version_is_the_package_version_and_the_checkout_commit() -> None:
    root = Path(egregora.__file__).resolve().parents[2]
    if _git_out(root, "rev-parse", "--show-toplevel") != str(root):
        pytest.skip(f"{root} is not a git checkout of egregora")
    commit = _git_out(root, "rev-parse", "--short=12", "HEAD")
    assert commit is not None and re.fullmatch(r"[0-9a-f]{12}", commit)
    # Dirty: a tracked file of the package differs from HEAD (untracked files do not count).
    changed = _git_out(root, "status", "--porcelain", "--untracked-files=no", "--", "src/egregora")
    dirty = ".dirty" if changed else ""
    assert code_version() == f"{egregora.__version__}+g{commit}{dirty}"


@pytest.mark.usefixtures("fresh_code_version")
def test_code_version_names_a_checkouts_commit_and_its_uncommitted_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = GitRepo(tmp_path.resolve() / "checkout")
    repo.write("src/egregora/__init__.py", "")
    repo.write("README.md", "readme\n")
    head = repo.commit("egregora", GIT_T0)
    monkeypatch.setattr(version_module, "PACKAGE", repo.root / "src" / "egregora")
    clean = f"{egregora.__version__}+g{head[:12]}"
    assert code_version() == clean
    (repo.root / "src" / "egregora" / "new.py").write_text("untracked\n", encoding="utf-8")
    (repo.root / "README.md").write_text("edited outside the package\n", encoding="utf-8")
    code_version.cache_clear()
    assert code_version() == clean
    (repo.root / "src" / "egregora" / "__init__.py").write_text("x = 1\n", encoding="utf-8")
    code_version.cache_clear()
    assert code_version() == f"{clean}.dirty"


@pytest.mark.usefixtures("fresh_code_version")
def test_code_version_outside_a_checkout_is_the_package_version_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.resolve()))
    installed = tmp_path.resolve() / "site-packages" / "egregora"
    installed.mkdir(parents=True)
    monkeypatch.setattr(version_module, "PACKAGE", installed)
    assert code_version() == egregora.__version__
    # Installed into another project's repository: that repository's commit is not egregora's.
    project = GitRepo(tmp_path.resolve() / "project")
    project.write(".venv/lib/egregora/__init__.py", "")
    project.commit("a project that installs egregora", GIT_T0)
    monkeypatch.setattr(version_module, "PACKAGE", project.root / ".venv" / "lib" / "egregora")
    code_version.cache_clear()
    assert code_version() == egregora.__version__


def test_config_hash_ignores_key_order_and_spacing_but_not_values(runs: RunStore) -> None:
    def hash_of(config: dict[str, Any]) -> str | None:
        return runs.require(runs.start("write", config=config)).config_hash

    spaced = json.loads('{ "b" : 2 ,\n  "a" : { "y" : [1, 2], "x" : null } }')
    compact = json.loads('{"a":{"x":null,"y":[1,2]},"b":2}')
    assert hash_of(spaced) == hash_of(compact) == _sha256('{"a":{"x":null,"y":[1,2]},"b":2}')
    assert hash_of({"a": 1, "b": 2}) == hash_of({"b": 2, "a": 1})
    assert hash_of({"a": 1, "b": 3}) != hash_of({"a": 1, "b": 2})
    assert hash_of({"a": "1", "b": 2}) != hash_of({"a": 1, "b": 2})


def test_a_run_without_config_or_inputs_records_neither(runs: RunStore) -> None:
    run = runs.require(runs.start("publish"))
    assert (run.config_hash, run.input_checksum, run.attrs) == (None, None, {})


def test_attrs_are_kept_beside_the_config(runs: RunStore) -> None:
    run = runs.require(runs.start("write", config={"k": 1}, attrs={"note": "first"}))
    assert run.attrs == {"note": "first", "config": {"k": 1}}


def test_input_checksum_is_by_content_not_by_name(runs: RunStore, tmp_path: Path) -> None:
    data = bytes(range(256)) * 8
    first, copy, changed = (
        tmp_path / "a" / "export.zip",
        tmp_path / "b" / "other.zip",
        tmp_path / "c",
    )
    for path, content in ((first, data), (copy, data), (changed, data[:100] + b"!" + data[101:])):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)

    def checksum(path: Path) -> str | None:
        return runs.require(runs.start("ingest", inputs=[path, b"bytes"])).input_checksum

    assert checksum(first) == checksum(copy)
    assert checksum(first) != checksum(changed)
    assert checksum(first) != runs.require(runs.start("ingest", inputs=[first])).input_checksum


def test_an_unreadable_input_writes_no_run(runs: RunStore, store: Storage, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no such file"):
        runs.start("ingest", inputs=[tmp_path / "missing.zip"])
    assert _count(store) == 0


def test_a_run_needs_a_stage(runs: RunStore, store: Storage) -> None:
    with pytest.raises(ConfigurationError, match="stage"):
        runs.start("")
    assert _count(store) == 0


def test_a_parent_must_exist_and_children_are_listed_under_it(
    runs: RunStore, store: Storage
) -> None:
    with pytest.raises(ContractViolation, match="parent_run_id"):
        runs.start("write", parent="no-such-run")
    assert _count(store) == 0
    parent = runs.start("pipeline")
    children = [runs.start("ingest", parent=parent), runs.start("write", parent=parent)]
    runs.start("unrelated")
    assert {r.run_id for r in runs.list(parent=parent)} == set(children)
    assert all(r.parent_run_id == parent for r in runs.list(parent=parent))
    assert runs.list(parent=children[0]) == []


# -- ending a run ---------------------------------------------------------------------------------
def test_finish_records_the_counts_and_when_it_ended(runs: RunStore, clock: FakeClock) -> None:
    run_id = runs.start("ingest")
    ended = clock.advance(timedelta(seconds=90))
    run = runs.finish(run_id, rows_in=10, rows_out=9)
    assert run == runs.require(run_id)
    assert (run.status, run.rows_in, run.rows_out, run.error) == ("succeeded", 10, 9, None)
    assert run.finished_at == run.heartbeat_at == ended
    assert run.duration == timedelta(seconds=90)
    assert run.as_json()["duration_s"] == 90.0


def test_cancel_records_the_reason(runs: RunStore) -> None:
    run = runs.cancel(runs.start("write"), "the operator stopped it")
    assert (run.status, run.error) == ("cancelled", "the operator stopped it")
    assert run.finished_at == T0


def test_fail_with_an_exception_names_its_type_message_and_where_it_was_raised(
    runs: RunStore,
) -> None:
    run_id = runs.start("write")
    try:
        _explode()
    except ValueError as exc:
        run = runs.fail(run_id, exc)
    assert run.status == "failed"
    assert run.error == f"ValueError: boom at {__file__}:{EXPLODE_LINE}"


def test_fail_with_text_keeps_it_and_empty_text_is_refused(runs: RunStore) -> None:
    run_id = runs.start("write")
    with pytest.raises(ConfigurationError, match="error"):
        runs.fail(run_id, "  ")
    assert _status(runs, run_id) == "running"
    assert runs.fail(run_id, "the model timed out").error == "the model timed out"


END: dict[str, Callable[[RunStore, str], object]] = {
    "finish": lambda runs, run_id: runs.finish(run_id, rows_in=1, rows_out=1),
    "fail": lambda runs, run_id: runs.fail(run_id, "broke"),
    "cancel": lambda runs, run_id: runs.cancel(run_id, "stopped"),
    "heartbeat": lambda runs, run_id: runs.heartbeat(run_id),
}
ENDED = {"finish": "succeeded", "fail": "failed", "cancel": "cancelled"}


@pytest.mark.parametrize("first", sorted(ENDED))
def test_an_ended_run_is_history(runs: RunStore, clock: FakeClock, first: str) -> None:
    for then in sorted(END):
        run_id = runs.start("write")
        clock.advance(timedelta(seconds=5))
        END[first](runs, run_id)
        before = runs.require(run_id)
        clock.advance(timedelta(seconds=5))
        with pytest.raises(EgregoraError, match=f"it is {ENDED[first]} already") as raised:
            END[then](runs, run_id)
        assert run_id in str(raised.value), then
        assert runs.require(run_id) == before, then


def test_ending_an_unknown_run_is_not_found(runs: RunStore) -> None:
    for end in sorted(END):
        with pytest.raises(NotFoundError, match="no-such-run"):
            END[end](runs, "no-such-run")


@pytest.mark.parametrize("end", sorted(END))
def test_a_run_that_tasks_and_child_runs_reference_can_still_change(
    runs: RunStore, store: Storage, clock: FakeClock, end: str
) -> None:
    # DuckDB refuses UPDATE ... RETURNING on a row another row references.
    run_id = runs.start("pipeline")
    TaskStore(store, clock=clock).enqueue(NewTask("summarize", {"n": 1}, run_id=run_id))
    runs.start("write", parent=run_id)
    clock.advance(timedelta(seconds=1))
    END[end](runs, run_id)
    run = runs.require(run_id)
    assert run.status == ENDED.get(end, "running")
    assert run.heartbeat_at == T0 + timedelta(seconds=1)
    assert TaskStore(store).counts(run_id)["pending"] == 1


def test_heartbeat_moves_only_the_heartbeat(runs: RunStore, clock: FakeClock) -> None:
    run_id = runs.start("write")
    before = runs.require(run_id)
    beat = clock.advance(timedelta(minutes=7))
    runs.heartbeat(run_id)
    after = runs.require(run_id)
    assert after.heartbeat_at == beat
    assert after == replace(before, heartbeat_at=beat)


def test_track_finishes_the_run_with_the_counts_set_in_the_block(
    runs: RunStore, clock: FakeClock, tmp_path: Path
) -> None:
    parent = runs.start("pipeline")
    source = tmp_path / "in.txt"
    source.write_text("hello", encoding="utf-8")
    with runs.track("write", {"model": "m"}, [source], parent) as counts:
        assert _status(runs, counts.run_id) == "running"
        counts.rows_in = 3
        counts.rows_out = 2
        clock.advance(timedelta(seconds=4))
    run = runs.require(counts.run_id)
    assert (run.status, run.rows_in, run.rows_out, run.parent_run_id) == ("succeeded", 3, 2, parent)
    assert run.config_hash == _sha256('{"model":"m"}')
    assert run.input_checksum == runs.require(runs.start("x", inputs=[source])).input_checksum
    assert run.duration == timedelta(seconds=4)


def test_track_keeps_the_attrs_the_block_sets_beside_the_config(runs: RunStore) -> None:
    with runs.track("write", {"model": "m"}) as counts:
        counts.attrs["windows"] = 3
    assert runs.require(counts.run_id).attrs == {"config": {"model": "m"}, "windows": 3}


def test_an_exception_without_a_message_is_named_alone(runs: RunStore) -> None:
    run_id = runs.start("x")
    try:
        raise RuntimeError()
    except RuntimeError as exc:
        error = runs.fail(run_id, exc).error
    assert error is not None and error.startswith("RuntimeError at ")


def test_a_clock_stepped_back_still_ends_runs_after_they_started(
    runs: RunStore, store: Storage, clock: FakeClock
) -> None:
    """A run ended by a clock earlier than its start ends at its start, not in a CHECK error."""
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    store.write("runs", [_row("far", host=runs.host, pid=ended.pid, started_at=clock.now)])
    clock.advance(-timedelta(days=1))
    assert runs.mark_stale() == ["far"]
    far = runs.require("far")
    assert far.status == "failed" and far.finished_at == far.started_at


@pytest.mark.parametrize(
    ("kind", "raiser", "expected"),
    [
        (ValueError, _explode, f"ValueError: boom at {__file__}:{EXPLODE_LINE}"),
        (KeyboardInterrupt, _interrupt, f"KeyboardInterrupt: stop at {__file__}:{INTERRUPT_LINE}"),
    ],
    ids=["exception", "interrupt"],
)
def test_track_fails_the_run_and_raises_on(
    runs: RunStore, kind: type[BaseException], raiser: Callable[[], None], expected: str
) -> None:
    with pytest.raises(kind), runs.track("write") as counts:
        counts.rows_in = 3
        raiser()
    run = runs.require(counts.run_id)
    assert run.status == "failed"
    assert run.error == expected


# -- listing --------------------------------------------------------------------------------------
def test_list_is_newest_first_and_filters_by_status_stage_and_limit(
    runs: RunStore, clock: FakeClock
) -> None:
    ids = []
    for stage in ("ingest", "write", "ingest", "publish"):
        ids.append(runs.start(stage))
        clock.advance(timedelta(seconds=1))
    runs.finish(ids[0])
    runs.fail(ids[1], "broke")

    def listed(**filters: Any) -> list[str]:
        return [r.run_id for r in runs.list(**filters)]

    assert listed() == ids[::-1]
    assert listed(limit=2) == [ids[3], ids[2]]
    assert listed(limit=None) == ids[::-1]
    assert listed(status="running") == [ids[3], ids[2]]
    assert listed(status="failed") == [ids[1]]
    assert listed(stage="ingest") == [ids[2], ids[0]]
    assert listed(stage="ingest", status="succeeded") == [ids[0]]
    assert listed(status="cancelled") == []
    assert runs.list()[-1] == runs.require(ids[0])
    assert runs.get("no-such-run") is None
    with pytest.raises(ConfigurationError, match="unknown run status 'done'"):
        runs.list(status="done")


# -- stale runs -----------------------------------------------------------------------------------
def test_a_run_left_running_by_a_killed_process_is_marked_failed_stale(fresh_db: Path) -> None:
    with _spawn(CHILD_RUN, str(fresh_db)) as child:
        run_id = _read_line(child)  # the child closed the file before saying so
        with Storage.open(str(fresh_db)) as store:
            runs = RunStore(store)
            assert runs.mark_stale() == []  # alive: still at work
            alive = runs.require(run_id)
        assert (alive.status, alive.host, alive.pid) == ("running", HOST, child.pid)
        child.kill()
        child.wait(timeout=30)
    with Storage.open(str(fresh_db)) as store:
        runs = RunStore(store)
        marking = datetime.now(UTC)
        assert runs.mark_stale() == [run_id]
        marked = datetime.now(UTC)
        run = runs.require(run_id)
        assert runs.mark_stale() == []
    assert run.status == "failed"
    assert run.error is not None and run.error.startswith("stale:")
    assert f"process {child.pid} on {HOST}" in run.error
    # It ends when it is found dead, not when it started or last beat.
    assert run.finished_at is not None and marking <= run.finished_at <= marked
    assert run.started_at < marking


def test_a_run_of_this_process_is_never_stale(runs: RunStore, clock: FakeClock) -> None:
    run_id = runs.start("write")
    clock.advance(timedelta(days=365))
    assert runs.mark_stale() == []
    assert _status(runs, run_id) == "running"


def test_a_live_process_that_started_after_the_run_is_not_its_process(store: Storage) -> None:
    runs = RunStore(store)  # the real clock: the runs are judged against real process starts
    with _spawn(SLEEPER) as later:
        now = datetime.now(UTC)
        reused = _row("reused", host=HOST, pid=later.pid, started_at=now - HOUR, heartbeat_at=now)
        own = _row("own", host=HOST, pid=later.pid, started_at=now, heartbeat_at=now)
        store.write("runs", [reused, own])
        assert runs.mark_stale() == ["reused"]
        assert _status(runs, "own") == "running"
        error = runs.require("reused").error
        assert error == f"stale: process {later.pid} on {HOST} ended without finishing the run"


def test_a_killed_child_not_yet_reaped_counts_as_dead(store: Storage) -> None:
    runs = RunStore(store)
    with _spawn(SLEEPER) as child:
        now = datetime.now(UTC)
        store.write("runs", [_row("zombie", host=HOST, pid=child.pid, started_at=now)])
        assert runs.mark_stale() == []
        child.kill()  # not waited for: the child stays a zombie until the parent reaps it
        process = psutil.Process(child.pid)
        _wait_until(lambda: process.status() == psutil.STATUS_ZOMBIE)
        assert runs.mark_stale() == ["zombie"]
    assert _status(runs, "zombie") == "failed"


def test_a_run_on_another_host_is_stale_once_its_heartbeat_is_older_than_stale_after(
    runs: RunStore, store: Storage, clock: FakeClock
) -> None:
    # Its pid is this very process's: on another host a pid says nothing about this machine.
    store.write("runs", [_row("remote", pid=os.getpid())])
    clock.advance(HOUR)
    assert runs.mark_stale() == []  # exactly stale_after old is not older than it
    clock.now = T0 + timedelta(minutes=30)
    runs.heartbeat("remote")
    clock.now = T0 + HOUR + timedelta(minutes=29)
    assert runs.mark_stale() == []
    clock.now = T0 + HOUR + timedelta(minutes=30, microseconds=1)
    assert runs.mark_stale() == ["remote"]
    run = runs.require("remote")
    assert (run.status, run.finished_at) == ("failed", clock.now)
    assert run.error is not None
    assert run.error.startswith("stale: no heartbeat on elsewhere since 2030-01-02T03:34:05")


def test_a_run_recorded_without_host_or_heartbeat_ages_from_its_start(
    runs: RunStore, store: Storage, clock: FakeClock
) -> None:
    store.write("runs", [_row("old", host=None, pid=None, heartbeat_at=None)])
    clock.advance(HOUR)
    assert runs.mark_stale() == []
    clock.advance(timedelta(seconds=1))
    assert runs.mark_stale() == ["old"]
    error = runs.require("old").error
    assert error is not None and error.startswith("stale: no heartbeat since 2030-01-02T03:04:05")


def test_start_marks_stale_runs_first(runs: RunStore, store: Storage, clock: FakeClock) -> None:
    store.write("runs", [_row("remote")])
    clock.advance(2 * HOUR)
    fresh = runs.start("ingest")
    assert _status(runs, "remote") == "failed"
    assert _status(runs, fresh) == "running"


def test_a_read_only_store_marks_nothing(fresh_db: Path) -> None:
    with Storage.open(str(fresh_db)) as store:
        store.ensure_schema()
        store.write("runs", [_row("remote")])
    with Storage.open(str(fresh_db), read_only=True) as store:
        runs = RunStore(store, clock=FakeClock(T0 + 10 * HOUR))
        assert runs.mark_stale() == []
        assert _status(runs, "remote") == "running"


def test_the_default_stale_after_is_an_hour(store: Storage) -> None:
    assert DEFAULT_STALE_AFTER == HOUR
    assert RunStore(store).stale_after == DEFAULT_STALE_AFTER


# -- the CLI --------------------------------------------------------------------------------------
def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@dataclass(frozen=True)
class Seeded:
    path: Path
    ids: dict[str, str]


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory: pytest.TempPathFactory, empty_db: Path) -> Seeded:
    path = copy_database(empty_db, tmp_path_factory.mktemp("runs-seeded") / "seeded.duckdb")
    return Seeded(path, _seed(path))


@pytest.fixture
def seeded(tmp_path: Path, seeded_template: Seeded) -> Seeded:
    """This test's own copy of the seeded database (the CLI marks runs stale in it)."""
    return Seeded(
        copy_database(seeded_template.path, tmp_path / "seeded.duckdb"), seeded_template.ids
    )


def _seed(db_path: Path) -> dict[str, str]:
    """A pipeline run with two children and three tasks, a failed child, and a remote run
    whose heartbeat is older than the default stale_after. The file is closed afterwards."""
    now = datetime.now(UTC)
    clock = FakeClock(now - timedelta(minutes=10))
    with Storage.open(str(db_path)) as store:
        store.ensure_schema()
        runs = RunStore(store, clock=clock)
        ids = {"pipeline": runs.start("pipeline", config={"k": 1})}
        clock.advance(timedelta(seconds=1))
        ids["ingest"] = runs.start("ingest", parent=ids["pipeline"])
        clock.advance(timedelta(seconds=1))
        runs.finish(ids["ingest"], rows_in=5, rows_out=4)
        ids["write"] = runs.start("write", parent=ids["pipeline"])
        clock.advance(timedelta(seconds=1))
        runs.fail(ids["write"], "the model timed out")
        tasks = TaskStore(store)
        for n in range(3):
            tasks.enqueue(NewTask("summarize", {"n": n}, run_id=ids["pipeline"]))
        tasks.complete(tasks.claim("worker") or pytest.fail("no task to claim"))
        old = now - DEFAULT_STALE_AFTER - timedelta(minutes=1)
        ids["remote"] = "remote-run"
        store.write("runs", [_row("remote-run", stage="export", started_at=old, heartbeat_at=old)])
    return ids


def test_cli_list_json_marks_stale_runs_then_lists_newest_first(seeded: Seeded) -> None:
    ids, db_path = seeded.ids, seeded.path
    code, out, _ = _invoke("runs", "list", "--db", str(db_path), "--json")
    assert code == 0
    listed = json.loads(out)
    assert listed["marked_stale"] == [ids["remote"]]
    order = [ids["write"], ids["ingest"], ids["pipeline"], ids["remote"]]
    assert [r["run_id"] for r in listed["runs"]] == order
    by_id = {r["run_id"]: r for r in listed["runs"]}
    assert by_id[ids["remote"]]["status"] == "failed"
    assert by_id[ids["remote"]]["error"].startswith("stale:")
    assert by_id[ids["ingest"]]["rows_in"] == 5
    assert by_id[ids["ingest"]]["duration_s"] == 1.0
    assert by_id[ids["pipeline"]]["status"] == "running"  # this process: alive
    assert by_id[ids["pipeline"]]["attrs"] == {"config": {"k": 1}}
    code, out, _ = _invoke("runs", "list", "--db", str(db_path), "--json")
    assert json.loads(out)["marked_stale"] == []


def test_cli_list_filters_by_status_stage_and_limit(seeded: Seeded) -> None:
    ids, db_path = seeded.ids, seeded.path
    db = ("--db", str(db_path), "--json")

    def listed(*args: str) -> list[str]:
        code, out, err = _invoke("runs", "list", *args, *db)
        assert code == 0, err
        return [r["run_id"] for r in json.loads(out)["runs"]]

    assert listed("--status", "failed") == [ids["write"], ids["remote"]]
    assert listed("--stage", "ingest") == [ids["ingest"]]
    assert listed("--stage", "ingest", "--status", "failed") == []
    assert listed("--limit", "2") == [ids["write"], ids["ingest"]]
    code, _, _ = _invoke("runs", "list", "--limit", "0", *db)
    assert code == 2
    code, _, err = _invoke("runs", "list", "--status", "done", "--db", str(db_path))
    assert code == 2
    assert err.startswith("error: unknown run status 'done'") and err.count("\n") == 1


def test_cli_list_shows_every_run_id_whole_and_says_what_it_marked_stale(seeded: Seeded) -> None:
    ids, db_path = seeded.ids, seeded.path
    code, out, _ = _invoke("runs", "list", "--db", str(db_path))
    assert code == 0
    for run_id in ids.values():
        assert run_id in out
    assert f"marked 1 stale run(s) failed: {ids['remote']}" in out


def test_cli_show_json_has_the_run_its_children_and_its_tasks(seeded: Seeded) -> None:
    ids, db_path = seeded.ids, seeded.path
    code, out, _ = _invoke("runs", "show", ids["pipeline"], "--db", str(db_path), "--json")
    assert code == 0
    shown = json.loads(out)
    assert set(shown) == {"ok", "run", "children", "tasks", "workers"}
    assert shown["run"]["run_id"] == ids["pipeline"]
    assert shown["run"]["config_hash"] == _sha256('{"k":1}')
    assert {c["run_id"]: c["status"] for c in shown["children"]} == {
        ids["ingest"]: "succeeded",
        ids["write"]: "failed",
    }
    assert shown["tasks"] == {
        "pending": 2,
        "running": 0,
        "succeeded": 1,
        "failed": 0,
        "superseded": 0,
    }
    code, out, _ = _invoke("runs", "show", ids["ingest"], "--db", str(db_path), "--json")
    assert json.loads(out)["children"] == []
    assert sum(json.loads(out)["tasks"].values()) == 0


def test_cli_show_prints_the_record_children_and_tasks(seeded: Seeded) -> None:
    ids, db_path = seeded.ids, seeded.path
    code, out, _ = _invoke("runs", "show", ids["pipeline"], "--db", str(db_path))
    assert code == 0
    lines = out.splitlines()
    assert f"run_id:         {ids['pipeline']}" in lines
    assert "stage:          pipeline" in lines
    assert f"  child {ids['write']} write failed" in lines
    assert "tasks: 2 pending, 1 succeeded" in lines
    assert not any(line.startswith("finished_at:") for line in lines)  # still running


@pytest.mark.parametrize("as_json", [False, True])
def test_cli_show_of_an_unknown_run_is_a_one_line_error(seeded: Seeded, as_json: bool) -> None:
    db_path = seeded.path
    args = ["runs", "show", "no-such-run", "--db", str(db_path)] + (["--json"] if as_json else [])
    code, out, err = _invoke(*args)
    assert code != 0
    assert err.startswith("error: no run 'no-such-run'") and err.count("\n") == 1
    if as_json:
        assert json.loads(out)["error"]["type"] == "NotFoundError"
    else:
        assert out == ""


@pytest.mark.parametrize("command", [["list"], ["show", "some-run"]], ids=["list", "show"])
def test_cli_a_missing_database_is_an_error_and_is_not_created(
    tmp_path: Path, command: list[str]
) -> None:
    missing = tmp_path / "missing.duckdb"
    code, _, err = _invoke("runs", *command, "--db", str(missing))
    assert code != 0
    assert err.startswith("error: ") and err.count("\n") == 1
    assert str(missing) in err
    assert not missing.exists()
    assert list(tmp_path.iterdir()) == []
