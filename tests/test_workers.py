"""Workers of the task queue: ``run --workers N``, ``egregora work`` and ``egregora site build``.

The PostgreSQL tests run the CLI as real processes on the sample export (20 day windows, 6
authors, 18 media files) and compare what they leave with one-worker runs made under one
pseudonym key: every document, the site's files byte for byte, the cached cards and the media
bytes. Worker processes write with tests/_slow_writer.py, the extractive writer made slow, whose
log tells which process is inside the writer, so that a test can kill or stop one there. They
are marked ``postgres`` and skipped without a server (EGREGORA_TEST_POSTGRES_URL); the DuckDB
run, the errors of ``site build`` and the queue's release methods run on the engines at hand.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from typer.testing import CliRunner, Result

from egregora.backends.postgres import LOCK_CLASS as PG_LOCK_CLASS
from egregora.backends.url import ENV_VAR as DB_ENV
from egregora.cli.app import app
from egregora.errors import LeaseLostError
from egregora.pseudonyms import ENV as KEY_ENV
from egregora.runner.demo import TIMEZONE, sample_export
from egregora.runner.execute import TASK_TYPES, worker_id
from egregora.runs import Run, RunStore
from egregora.storage import DatabaseURL, Storage
from egregora.tasks import ACTIVE, NewTask, Task, TaskStore
from tests._slow_writer import DONE, LOG_ENV, QUICK_ENV, SLEEP_ENV, STARTED
from tests.conftest import Databases
from tests.support import SHARED_KEY, FakeClock, db_arg

ROOT = Path(__file__).resolve().parents[1]  # on the children's PYTHONPATH: tests._slow_writer
SLOW = "tests._slow_writer:SlowWriter"
WINDOWS, AUTHORS, MEDIA = 20, 6, 18
TASKS = WINDOWS + AUTHORS
DOCUMENTS = {"post": WINDOWS, "journal": WINDOWS, "profile": AUTHORS, "media": MEDIA}
HOST = socket.gethostname()
T0 = datetime(2024, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
Snapshot = dict[str, Any]
T = TypeVar("T")


@pytest.fixture(scope="module", autouse=True)
def shared_key() -> Iterator[None]:
    """Every database here is given one key (the worker processes too), so that their
    pseudonyms, and so their documents, can be compared."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_ENV, SHARED_KEY)
        yield


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_export(tmp_path_factory.mktemp("export"))


# ---------------------------------------------------------------------------------------------
# Processes, the slow writer's log, and what a run leaves behind.
# ---------------------------------------------------------------------------------------------


def child_env(**writer: str) -> dict[str, str]:
    """The environment of a CLI process: this one's, the shared key, the repository on the
    path (for the slow writer), no default database, and the slow writer's settings
    (``SLEEP``, ``QUICK``, ``LOG``)."""
    unset = {DB_ENV, SLEEP_ENV, QUICK_ENV, LOG_ENV}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env[KEY_ENV] = SHARED_KEY
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    names = {"SLEEP": SLEEP_ENV, "QUICK": QUICK_ENV, "LOG": LOG_ENV}
    env.update({names[k]: v for k, v in writer.items()})
    return env


def egregora(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "egregora", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


class Spawned:
    """CLI processes started in the background; those still running at the test's end are
    killed."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[str]] = []

    def start(self, *args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "egregora", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.processes.append(process)
        return process

    def end(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.communicate()


@pytest.fixture
def spawned() -> Iterator[Spawned]:
    made = Spawned()
    yield made
    made.end()


def finished(process: subprocess.Popen[str], timeout: float = 180) -> dict[str, Any]:
    """A process's JSON once it ended, which it must have done with exit 0."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    parsed: dict[str, Any] = json.loads(out)
    return parsed


def work_args(db: str, *extra: str) -> list[str]:
    return ["work", "--until-empty", "--writer", SLOW, "--db", db, "--json", *extra]


@dataclass(frozen=True)
class Call:
    """One call of the slow writer, from its log."""

    pid: int
    label: str
    started: int  # the started marker's time (ns)
    done: int | None  # the done marker's time, None while the call is inside the writer


def calls(log: Path) -> list[Call]:
    """The slow writer's calls, in the order they began."""
    found = []
    for marker in log.glob(f"*{STARTED}"):
        stem = marker.name.removesuffix(STARTED)
        pid, label = stem.rsplit("-", 1)[0].split("-", 1)
        done = log / f"{stem}{DONE}"
        ended = done.stat().st_mtime_ns if done.exists() else None
        found.append(Call(int(pid), label, marker.stat().st_mtime_ns, ended))
    return sorted(found, key=lambda c: c.started)


def inside_writer(log: Path) -> Iterator[Call]:
    """The calls of the slow writer in progress: their processes are inside the writer."""
    return (c for c in calls(log) if c.done is None)


def wait_until(
    found: Callable[[], T | None],
    what: str,
    processes: Sequence[subprocess.Popen[str]] = (),
    timeout: float = 90.0,
) -> T:
    """Poll ``found`` until it gives something; fail when a process ends first or time is up."""
    deadline = time.monotonic() + timeout
    while (value := found()) is None:
        for process in processes:
            if process.poll() is not None:
                _, err = process.communicate()
                raise AssertionError(f"{what}: a worker ended first ({process.returncode}): {err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.02)
    return value


def tree(root: Path | None) -> dict[str, bytes]:
    if root is None or not root.exists():
        return {}
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def snapshot(db: str, site: Path | None = None, media_folder: Path | None = None) -> Snapshot:
    """What a run leaves that must not depend on how many workers made it: every document
    (all but the run that wrote it), the cached cards, the media bytes by SHA-256 (from
    media_parts, or from the folder a DuckDB file keeps them in) and the site's files."""
    with Storage.open(db, read_only=True) as store:
        documents = store.table("documents").drop("created_by_run").order_by("id")
        cache = store.table("asset_cache").select("key", "kind", "content").order_by("key")
        parts = store.table("media_parts").order_by("digest", "part")
        taken: Snapshot = {
            "documents": store.to_pyarrow(documents).to_pylist(),
            "cards": store.to_pyarrow(cache).to_pylist(),
        }
        part_rows = store.to_pyarrow(parts).to_pylist()
    media: dict[str, bytes] = {}
    for row in part_rows:
        media[row["digest"]] = media.get(row["digest"], b"") + row["content"]
    for name, content in tree(media_folder).items():
        media[Path(name).name.split(".")[0]] = content  # media/ab/<sha256><suffix>
    taken["media"] = media
    taken["site"] = tree(site)
    return taken


def engine_neutral(documents: list[dict[str, Any]], engine: str) -> list[dict[str, Any]]:
    """The documents with their extensions parsed and the one field that differs by engine
    taken out, once checked: where a media document's bytes are kept (``path`` in the folder
    beside a DuckDB file, ``"stored": "database"`` in PostgreSQL's media_parts)."""
    out = []
    for doc in documents:
        extensions = json.loads(doc["extensions"] or "{}")
        if doc["doc_type"] == "media":
            if engine == "duckdb":
                assert extensions.pop("path").startswith("media/") and "stored" not in extensions
            else:
                assert extensions.pop("stored") == "database" and "path" not in extensions
        out.append({**doc, "extensions": extensions})
    return out


def tasks_and_work_runs(db: str) -> tuple[list[Task], list[Run]]:
    with Storage.open(db, read_only=True) as store:
        return TaskStore(store).list(limit=None), RunStore(store).list(stage="work", limit=None)


def plan_here(export: Path, db: str, *extra: str) -> Result:
    """``egregora run EXPORT --workers 0`` in this process: ingest and plan only."""
    args = ["run", str(export), "--workers", "0", "--tz", TIMEZONE, "--db", db, *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


@dataclass(frozen=True)
class Finished:
    """A whole ``egregora run`` (its JSON summary) and what it left."""

    summary: dict[str, Any]
    taken: Snapshot
    calls: list[Call]


def run_export(
    export: Path,
    folder: Path,
    db: str,
    workers: int,
    *,
    writer: str | None = None,
    sleep: str = "1",
) -> Finished:
    """``egregora run EXPORT --workers N --site`` as a process in ``folder``."""
    log = folder / "log"
    log.mkdir()
    site = folder / "site"
    args = ["run", str(export), "--workers", str(workers), "--tz", TIMEZONE, "--site", str(site)]
    args += ["--db", db, "--json", *(["--writer", writer] if writer else [])]
    done = egregora(*args, cwd=folder, env=child_env(SLEEP=sleep, LOG=str(log)))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["documents"] == DOCUMENTS and summary["tasks_waiting"] == 0
    return Finished(summary, snapshot(db, site), calls(log))


# ---------------------------------------------------------------------------------------------
# One-worker runs everything is compared with.
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def duck_one(export: Path, tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """``run --workers 1`` on a DuckDB file, with the default writer (in this process)."""
    folder = tmp_path_factory.mktemp("duck-one")
    db, site = folder / "egregora.duckdb", folder / "site"
    args = ["run", str(export), "--workers", "1", "--tz", TIMEZONE, "--site", str(site)]
    result = CliRunner().invoke(app, [*args, "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    taken = snapshot(str(db), site, folder / "media")
    assert len(taken["documents"]) == sum(DOCUMENTS.values()) and len(taken["media"]) == MEDIA
    return taken


@pytest.fixture(scope="module")
def pg_one(
    export: Path, databases: Databases, tmp_path_factory: pytest.TempPathFactory
) -> Finished:
    """``run --workers 1`` on PostgreSQL with the slow writer (1 s a window): the reference of
    the PostgreSQL tests."""
    db = db_arg(databases.new("postgres", migrated=False))
    return run_export(export, tmp_path_factory.mktemp("pg-one"), db, 1, writer=SLOW)


@pytest.fixture(scope="module")
def pg_four(
    export: Path, databases: Databases, tmp_path_factory: pytest.TempPathFactory
) -> Finished:
    """``run --workers 4`` on PostgreSQL with the slow writer (1 s a window)."""
    db = db_arg(databases.new("postgres", migrated=False))
    return run_export(export, tmp_path_factory.mktemp("pg-four"), db, 4, writer=SLOW)


# ---------------------------------------------------------------------------------------------
# run --workers N.
# ---------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_four_worker_processes_on_postgres_make_what_one_duckdb_worker_makes(
    tmp_path: Path, export: Path, duck_one: Snapshot, databases: Databases
) -> None:
    db = db_arg(databases.new("postgres", migrated=False))
    made = run_export(export, tmp_path, db, 4)  # the default writer
    assert made.summary["workers"] == "4 processes (this one and 3 `egregora work`)"
    taken = made.taken
    neutral = engine_neutral(taken["documents"], "postgres")
    assert neutral == engine_neutral(duck_one["documents"], "duckdb")
    for part in ("site", "cards", "media"):
        assert taken[part] == duck_one[part], f"{part} differ"
    tasks, work_runs = tasks_and_work_runs(db)
    assert [r.status for r in work_runs] == ["succeeded"] * 3  # the three `egregora work`
    assert len(tasks) == TASKS and {t.status for t in tasks} == {"succeeded"}


@pytest.mark.postgres
def test_four_slow_worker_processes_make_what_one_makes_each_window_once(
    pg_one: Finished, pg_four: Finished, duck_one: Snapshot
) -> None:
    neutral = engine_neutral(pg_one.taken["documents"], "postgres")
    assert neutral == engine_neutral(duck_one["documents"], "duckdb")  # slow: same posts
    assert len({c.pid for c in pg_one.calls}) == 1
    assert pg_four.summary["workers"] == "4 processes (this one and 3 `egregora work`)"
    assert pg_four.taken == pg_one.taken
    written = sorted(c.label for c in pg_four.calls)
    assert written == sorted(c.label for c in pg_one.calls) and len(set(written)) == WINDOWS
    assert len({c.pid for c in pg_four.calls}) == 4  # every process wrote posts


def most_at_once(made: Sequence[Call]) -> int:
    """The most calls that were inside the writer at one time (a call ending at the instant
    another begins does not overlap it)."""
    ends = [(c.done, -1) for c in made if c.done is not None]
    inside = most = 0
    for _, step in sorted([(c.started, 1) for c in made] + ends):
        inside += step
        most = max(most, inside)
    return most


@pytest.mark.postgres
def test_four_worker_processes_write_four_windows_at_once(
    pg_one: Finished, pg_four: Finished
) -> None:
    """What makes four workers faster: their writers' seconds overlap. (How much faster the
    whole command is, start-up included, is measured by the ``run_workers`` benchmark: a wall
    clock on a shared machine is no test.)"""
    assert most_at_once(pg_one.calls) == 1
    assert most_at_once(pg_four.calls) == 4


@pytest.mark.postgres
def test_the_summary_of_four_workers_counts_what_every_worker_wrote(
    pg_one: Finished, pg_four: Finished
) -> None:
    four = pg_four
    assert len({c.pid for c in four.calls}) > 1  # the children wrote some windows
    assert four.summary["new_documents"] == pg_one.summary["new_documents"]


def test_duckdb_workers_are_writer_threads_of_one_process(
    tmp_path: Path, export: Path, duck_one: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "log"
    log.mkdir()
    monkeypatch.setenv(SLEEP_ENV, "0.1")
    monkeypatch.setenv(LOG_ENV, str(log))
    db, site = tmp_path / "egregora.duckdb", tmp_path / "site"
    args = ["run", str(export), "--workers", "3", "--writer", SLOW, "--tz", TIMEZONE]
    result = CliRunner().invoke(app, [*args, "--site", str(site), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "workers: 3 writer threads in this process" in result.stdout
    made = calls(log)
    assert {c.pid for c in made} == {os.getpid()}  # no other process wrote
    assert len({c.label for c in made}) == len(made) == WINDOWS
    overlapping = [
        (a, b)
        for a in made
        for b in made
        if a is not b and a.done is not None and b.done is not None
        if a.started < b.done and b.started < a.done
    ]
    assert overlapping, "the writer never ran on two threads at once"
    assert snapshot(str(db), site, tmp_path / "media") == duck_one


# ---------------------------------------------------------------------------------------------
# egregora work: from the database alone; killed; stopped.
# ---------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_workers_and_site_build_in_empty_folders_make_what_one_run_makes(
    tmp_path: Path, export: Path, pg_one: Finished, databases: Databases, spawned: Spawned
) -> None:
    db = db_arg(databases.new("postgres", migrated=False))
    planner = tmp_path / "planner"
    planner.mkdir()
    planned = egregora(
        "run", str(export), "--workers", "0", "--tz", TIMEZONE, "--db", db, "--json",
        cwd=planner, env=child_env(),
    )  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    summary = json.loads(planned.stdout)
    assert summary["tasks_waiting"] == TASKS
    assert summary["documents"] == {**DOCUMENTS, "post": 0, "journal": 0, "profile": 0}
    assert summary["site"] is None and summary["cards_rendered"] == 0
    assert summary["workers"].startswith("none")

    empty = [tmp_path / f"machine-{n}" for n in range(4)]
    for folder in empty:
        folder.mkdir()
    env = child_env(SLEEP="0.3")  # slow enough that the three share the windows
    workers = [spawned.start(*work_args(db), cwd=folder, env=env) for folder in empty[:3]]
    outputs = [finished(worker) for worker in workers]
    assert sum(o["tasks"] for o in outputs) == TASKS  # each task done by exactly one
    assert len([o for o in outputs if o["tasks"]]) >= 2
    assert not any(o["stopped"] for o in outputs)

    site = tmp_path / "site"
    built = egregora(
        "site", "build", "--site", str(site), "--db", db, "--json", cwd=empty[3], env=env
    )
    assert built.returncode == 0, built.stderr
    published = json.loads(built.stdout)
    assert published["site"] == str(site) and published["written"] > 0
    # A card per post and journal, and the site's own (its home page's and feed's picture).
    assert published["cards_rendered"] == DOCUMENTS["post"] + DOCUMENTS["journal"] + 1

    # Nothing is left out of the comparison: documents, cards, media bytes and every file of
    # the site (pages, cards as PNG, media files) equal the one-worker run's byte for byte.
    assert snapshot(db, site) == pg_one.taken
    for folder in empty:
        assert list(folder.iterdir()) == [], f"{folder.name} was written in"


@pytest.mark.postgres
def test_a_worker_starts_while_another_process_checks_the_schema(databases: Databases) -> None:
    """Workers started at once each open the database: one holding the migration lock for a
    moment must not make another fail (here the lock is held throughout, deterministically)."""
    db = db_arg(databases.new("postgres"))
    with psycopg.connect(db, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, hashtext(current_schema()))", [PG_LOCK_CLASS])
        result = CliRunner().invoke(app, ["work", "--until-empty", "--db", db, "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["tasks"] == 0


@pytest.mark.postgres
def test_a_worker_killed_inside_the_writer_leaves_its_task_to_the_others(
    tmp_path: Path, export: Path, pg_one: Finished, databases: Databases, spawned: Spawned
) -> None:
    db = db_arg(databases.new("postgres", migrated=False))
    plan_here(export, db)
    log = tmp_path / "log"
    log.mkdir()
    env = child_env(SLEEP="1", LOG=str(log))  # a second a window: one task per claim
    started = [spawned.start(*work_args(db, "--lease", "3"), cwd=tmp_path, env=env) for _ in "abc"]
    workers = {p.pid: p for p in started}

    inside = wait_until(lambda: next(inside_writer(log), None), "a worker in the writer", started)
    victim = workers.pop(inside.pid)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()  # reaped: its run is known to have ended
    outputs = [finished(worker) for worker in workers.values()]

    # It died inside that window's writer, having written only the windows before it.
    written = [c for c in calls(log) if c.pid == victim.pid]
    assert written[-1] == inside and all(c.done is not None for c in written[:-1])
    assert sum(o["tasks"] for o in outputs) == TASKS - (len(written) - 1)
    tasks, work_runs = tasks_and_work_runs(db)
    assert len(tasks) == TASKS
    assert Counter(t.status for t in tasks) == {"succeeded": TASKS}  # none pending or running
    assert set(Counter(t.dedupe_key for t in tasks).values()) == {1}
    [taken_over] = [t for t in tasks if t.payload.get("label") == inside.label]
    assert taken_over.task_type == "window" and taken_over.attempts == 2
    [dead] = [r for r in work_runs if r.pid == victim.pid]
    assert dead.status == "failed" and (dead.error or "").startswith("stale")
    owner = worker_id(HOST, victim.pid, dead.run_id)
    assert taken_over.last_error is not None and owner in taken_over.last_error
    assert all(t.attempts == 1 for t in tasks if t is not taken_over)
    assert sorted(r.status for r in work_runs) == ["failed", "succeeded", "succeeded"]
    assert snapshot(db)["documents"] == pg_one.taken["documents"]


@pytest.mark.postgres
def test_sigterm_finishes_the_window_being_written_and_gives_back_the_rest(
    tmp_path: Path, export: Path, databases: Databases, spawned: Spawned
) -> None:
    db = db_arg(databases.new("postgres", migrated=False))
    shown = plan_here(export, db).stdout
    assert f"{TASKS} tasks wait in the queue" in shown and "workers: none" in shown
    log = tmp_path / "log"
    log.mkdir()
    sleep, quick = 2.0, 8  # quick windows first: the worker's batches grow
    env = child_env(SLEEP=str(sleep), QUICK=str(quick), LOG=str(log))
    worker = spawned.start(*work_args(db), cwd=tmp_path, env=env)
    mine = f"{HOST}:{worker.pid}:"

    with Storage.open(db, read_only=True) as store:
        queue = TaskStore(store)

        def holding_one_not_begun() -> tuple[list[Task], str] | None:
            """The tasks the worker holds and the window it is writing, once it is inside a
            slow window (one past the quick ones) while it holds a window not begun."""
            made = calls(log)
            writing = [c.label for c in made if c.done is None]  # one writer thread
            if len(made) <= quick or not writing:
                return None
            held = [t for t in queue.active(TASK_TYPES) if (t.lease_owner or "").startswith(mine)]
            begun = {c.label for c in made}
            waiting = [
                t for t in held if t.task_type == "window" and t.payload["label"] not in begun
            ]
            return (held, writing[0]) if waiting else None

        held, writing = wait_until(holding_one_not_begun, "a slow window, more held", [worker])
        asked = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        summary = finished(worker, timeout=60)
        took = time.monotonic() - asked

    assert took < sleep + 5, f"took {took:.1f} s to stop"
    assert summary["stopped"] is True
    made = calls(log)
    assert all(c.done is not None for c in made)  # what it began, it finished
    begun = {c.label for c in made}
    tasks, work_runs = tasks_and_work_runs(db)
    now = {t.task_id: t for t in tasks}
    [was_writing] = [t for t in held if t.payload.get("label") == writing]
    assert now[was_writing.task_id].status == "succeeded"
    with Storage.open(db, read_only=True) as store:
        posts = store.table("documents").filter(lambda d: d.doc_type == "post").select("id")
        post_ids = {r["id"] for r in store.to_pyarrow(posts).to_pylist()}
    assert {label for label in begun if any(i.endswith(f"-{label}") for i in post_ids)} == begun
    assert len(post_ids) == len(begun)  # a post for each window begun, none for the others

    given_back = []
    for task in held:
        after = now[task.task_id]
        if task.task_type == "window" and task.payload["label"] in begun:
            assert after.status == "succeeded", task.payload
        else:
            assert after.status in ("succeeded", "pending")  # a profile may have begun
        if after.status == "pending":
            assert (after.attempts, after.lease_owner) == (0, None)  # the claim not counted
            given_back.append(after)
    assert given_back and summary["released"] == len(given_back)
    assert [r.status for r in work_runs] == ["cancelled"]
    assert work_runs[0].run_id == summary["run_id"]
    assert not [t for t in tasks if t.status == "running"]
    assert summary["tasks"] == sum(t.status == "succeeded" for t in tasks)
    assert summary["tasks_waiting"] == sum(t.status == "pending" for t in tasks) > 0


@pytest.mark.postgres
def test_tasks_list_and_runs_show_name_the_worker_holding_each_task(
    tmp_path: Path, export: Path, databases: Databases, spawned: Spawned
) -> None:
    db = db_arg(databases.new("postgres", migrated=False))
    plan_run = json.loads(plan_here(export, db, "--json").stdout)["run_id"]
    log = tmp_path / "log"
    log.mkdir()
    worker = spawned.start(*work_args(db), cwd=tmp_path, env=child_env(SLEEP="30", LOG=str(log)))
    call = wait_until(lambda: next(inside_writer(log), None), "a worker in the writer", [worker])

    tasks, work_runs = tasks_and_work_runs(db)
    [work_run] = work_runs
    assert (work_run.status, work_run.pid) == ("running", worker.pid)
    owner = worker_id(HOST, worker.pid, work_run.run_id)
    [held] = [t for t in tasks if t.status == "running"]
    assert (held.lease_owner, held.payload["label"]) == (owner, call.label)
    line = f"worker {owner}: window {call.label} (lease until "

    runner = CliRunner()
    for command in (["tasks", "list"], ["runs", "show", work_run.run_id]):
        shown = runner.invoke(app, [*command, "--db", db, "--json"])
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.stdout)["workers"] == {owner: [held.task_id]}, command
        shown = runner.invoke(app, [*command, "--db", db])
        assert shown.exit_code == 0, shown.output
        assert line in shown.stdout, command
    shown = runner.invoke(app, ["runs", "show", plan_run, "--db", db])  # the run of its tasks
    assert shown.exit_code == 0 and line in shown.stdout
    assert worker.poll() is None and calls(log) == [call]  # all this while inside the writer


# ---------------------------------------------------------------------------------------------
# egregora site build: errors.
# ---------------------------------------------------------------------------------------------


def test_site_build_of_a_database_no_run_planned_names_egregora_run(
    tmp_path: Path, new_url: Callable[[], DatabaseURL]
) -> None:
    site = tmp_path / "site"
    result = CliRunner().invoke(
        app, ["site", "build", "--site", str(site), "--db", db_arg(new_url())]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "`egregora run EXPORT`" in result.stderr
    assert not site.exists()


def test_site_build_without_a_site_is_a_usage_error(tmp_path: Path) -> None:
    db = tmp_path / "egregora.duckdb"
    result = CliRunner().invoke(app, ["site", "build", "--db", str(db)])
    assert result.exit_code == 2
    assert "--site" in result.stderr
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# TaskStore.release, release_held_by, active (each engine).
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def queue(any_store: Storage, clock: FakeClock) -> TaskStore:
    return TaskStore(any_store, clock=clock)


def test_release_gives_a_task_back_at_once_without_counting_its_attempt(
    queue: TaskStore, clock: FakeClock
) -> None:
    task_id = queue.enqueue(NewTask("window", {"label": "a"}, max_attempts=1))
    held = queue.claim("worker-a", lease=MINUTE)
    assert held is not None and held.attempts == 1
    clock.advance(timedelta(seconds=5))
    released = queue.release(held)
    assert (released.status, released.attempts, released.lease_owner) == ("pending", 0, None)
    assert released.lease_expires_at is None and released.available_at == clock.now
    assert queue.require(task_id or "") == released  # what it returns is what it stored
    again = queue.claim("worker-b", lease=MINUTE)  # at once, and its one attempt is still left
    assert again is not None and (again.task_id, again.attempts) == (task_id, 1)
    queue.complete(again)
    assert queue.require(task_id or "").status == "succeeded"


def test_release_of_a_task_not_held_raises_lease_lost_and_changes_nothing(
    queue: TaskStore, clock: FakeClock
) -> None:
    queue.enqueue_many([NewTask("window"), NewTask("window")])
    first = queue.claim("worker-a", lease=MINUTE)
    assert first is not None
    queue.release(first)
    before = queue.list(limit=None)
    with pytest.raises(LeaseLostError, match="pending"):
        queue.release(first)  # released already
    assert queue.list(limit=None) == before

    lapsed = queue.claim("worker-a", lease=MINUTE)
    assert lapsed is not None
    clock.advance(2 * MINUTE)
    taken = queue.claim("worker-b", lease=MINUTE)
    assert taken is not None and taken.task_id == lapsed.task_id
    with pytest.raises(LeaseLostError, match="held by worker-b"):
        queue.release(lapsed)  # taken over
    assert queue.require(taken.task_id) == taken

    queue.complete(taken)
    with pytest.raises(LeaseLostError, match="succeeded"):
        queue.release(taken)  # done
    assert queue.require(taken.task_id).status == "succeeded"


def test_release_held_by_returns_only_the_gone_workers_tasks(
    queue: TaskStore, clock: FakeClock
) -> None:
    ids = queue.enqueue_many(
        [NewTask("window", max_attempts=1), NewTask("window"), NewTask("window"), NewTask("p")]
    ).task_ids
    gone = queue.claim_many("worker-a", 2, lease=MINUTE)
    alive = queue.claim_many("worker-b", 2, lease=MINUTE)
    assert [t.task_id for t in gone + alive] == list(ids)
    assert queue.release_held_by([]) == 0
    clock.advance(timedelta(seconds=5))  # the leases have not lapsed
    assert queue.release_held_by(["worker-a", "worker-never-seen"]) == 2

    out_of_attempts, again = (queue.require(t.task_id) for t in gone)
    assert (out_of_attempts.status, out_of_attempts.lease_owner) == ("failed", None)
    assert (again.status, again.attempts, again.lease_owner) == ("pending", 1, None)
    assert again.available_at == clock.now  # at once, the attempt counted
    for task in (out_of_attempts, again):
        assert task.last_error == "the worker worker-a ended without finishing it"
    assert [queue.require(t.task_id) for t in alive] == alive
    with pytest.raises(LeaseLostError):
        queue.complete(gone[1])
    retaken = queue.claim("worker-c", lease=MINUTE)
    assert retaken is not None and (retaken.task_id, retaken.attempts) == (again.task_id, 2)


def test_active_gives_pending_and_running_tasks_in_claim_order(queue: TaskStore) -> None:
    ids = queue.enqueue_many(
        [
            NewTask("window", {"n": 0}),
            NewTask("profile", {"n": 1}, priority=5),
            NewTask("window", {"n": 2}),
            NewTask("other", {"n": 3}, priority=9),
            NewTask("window", {"n": 4}),
            NewTask("window", {"n": 5}),
            NewTask("profile", {"n": 6}),
        ]
    ).task_ids
    other = queue.claim("worker-a", lease=MINUTE)  # the highest priority: "other"
    profile = queue.claim("worker-a", lease=MINUTE)
    done, failed, superseded = (queue.claim("worker-b", lease=MINUTE) for _ in range(3))
    assert other is not None and profile is not None and done is not None and failed is not None
    assert superseded is not None
    queue.complete(done)
    queue.fail(failed, "broken", retry=False)
    queue.supersede([superseded.task_id])

    active = queue.active()
    assert [t.payload["n"] for t in active] == [3, 1, 5, 6]
    assert [t.status for t in active] == ["running", "running", "pending", "pending"]
    assert active == [queue.require(t.task_id) for t in active]  # every column as stored
    expected = [t for t in queue.list(limit=None) if t.status in ACTIVE]
    assert active == expected
    assert [t.payload["n"] for t in queue.active(TASK_TYPES)] == [1, 5, 6]
    assert [t.task_id for t in queue.active(["window"])] == [ids[5]]
