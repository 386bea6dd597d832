"""The storage gateway, the services and the commands on both engines.

Each behaviour test takes ``url``: an empty database on DuckDB and on PostgreSQL (a fresh schema
there). The cross-engine tests run one input on both and compare what the commands say; the
claim test runs real worker processes against one PostgreSQL queue.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest
from sqlglot import exp
from typer.testing import CliRunner

from egregora.assets import AssetCache
from egregora.assets.keys import key_for
from egregora.cli.app import app
from egregora.errors import ContractViolation, EgregoraError
from egregora.git import GitHistoryResolver, sync_repository
from egregora.runs import RunStore
from egregora.storage import DatabaseURL, Storage
from egregora.tasks import NewTask, TaskStore
from tests.gitrepo import GitRepo

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "whatsapp"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
runner = CliRunner()


def _where(url: DatabaseURL) -> str:
    return str(url.dsn or url.path)


@pytest.fixture
def store(url: DatabaseURL) -> Iterator[Storage]:
    with Storage.open(_where(url)) as opened:
        opened.ensure_schema()
        yield opened


def _run(run_id: str, parent: str | None = None, **extra: Any) -> dict[str, Any]:
    row = {"run_id": run_id, "parent_run_id": parent, "stage": "s", "status": "running"}
    return {**row, "started_at": T0, **extra}


def _runs(store: Storage) -> dict[str, dict[str, Any]]:
    rows = store.to_pyarrow(store.table("runs")).to_pylist()
    return {r["run_id"]: r for r in rows}


# -- the gateway ---------------------------------------------------------------------------------
def test_an_uploaded_table_joins_stored_rows_and_is_gone_afterwards(store: Storage) -> None:
    store.write("runs", [_run("r1"), _run("r2", "r1")])
    probes = pa.table(
        {
            "run_id": ["r2", "r1", "nope"],
            "at": pa.array([T0, T0 + timedelta(days=1), T0], pa.timestamp("us", tz="UTC")),
        }
    )
    with store.uploaded(probes) as uploaded:
        runs = store.table("runs")
        joined = uploaded.left_join(runs, "run_id").select(
            uploaded.run_id, uploaded.at, runs.parent_run_id
        )
        rows = sorted(store.to_pyarrow(joined).to_pylist(), key=lambda r: r["run_id"])
        name = uploaded.get_name()
    assert rows == [
        {"run_id": "nope", "at": T0, "parent_run_id": None},
        {"run_id": "r1", "at": T0 + timedelta(days=1), "parent_run_id": None},
        {"run_id": "r2", "at": T0, "parent_run_id": "r1"},
    ]
    if store.engine.scans_arrow:
        return  # read where it lay: nothing was copied into the database
    # Copied in: the temporary table is dropped when the block ends.
    assert name.startswith("_egregora_upload_")
    gone = exp.select("count(*)").from_(exp.to_table(name, quoted=True))
    with pytest.raises(psycopg.errors.UndefinedTable):
        store.run(gone)


def test_writes_upserts_and_deletes_alike(store: Storage) -> None:
    # A batch holding a parent and its child (a same-table reference) lands whole.
    assert store.write("runs", [_run("r1"), _run("r2", "r1"), _run("r3", "r2")]) == 3
    assert _runs(store)["r3"]["parent_run_id"] == "r2"
    finished = _run("r1", status="succeeded", finished_at=T0 + timedelta(seconds=5))
    assert store.write("runs", [finished, _run("r4", attrs={"k": [1, 2]})], mode="upsert") == 2
    assert store.write("runs", [finished], mode="upsert") == 0  # identical: not rewritten
    stored = _runs(store)
    assert (stored["r1"]["status"], stored["r2"]["parent_run_id"]) == ("succeeded", "r1")
    assert json.loads(stored["r4"]["attrs"]) == {"k": [1, 2]}
    assert store.delete("runs", lambda t: t.run_id == "r4") == 1
    with store.transaction():
        store.write("runs", [_run("r5")])
        store.write("runs", [_run("r6", "r5")])
    assert set(_runs(store)) == {"r1", "r2", "r3", "r5", "r6"}
    assert store.query("SELECT count(*) FROM runs WHERE status = ?", ["running"]) == [(4,)]


def test_a_refused_batch_writes_nothing(store: Storage) -> None:
    store.write("runs", [_run("r1")])
    with pytest.raises(ContractViolation, match="runs_status_values"):
        store.write("runs", [_run("r2"), _run("r3", status="bogus")])
    with pytest.raises(ContractViolation, match="runs_parent_run_id_fkey"):
        store.write("runs", [_run("r4", "nobody")])
    with pytest.raises(ContractViolation, match="already held"):
        store.write("runs", [_run("r1")])
    with pytest.raises(ContractViolation), store.transaction():
        store.write("runs", [_run("r5")])
        store.write("runs", [_run("r6", status="bogus")])
    assert set(_runs(store)) == {"r1"}
    # The store is still usable after each refusal.
    assert store.write("runs", [_run("r7")]) == 1


# -- the services --------------------------------------------------------------------------------
def test_the_queue_claims_by_priority_then_age(store: Storage) -> None:
    clock = iter(T0 + timedelta(seconds=i) for i in range(100))
    queue = TaskStore(store, clock=lambda: next(clock))
    ids = [queue.enqueue(NewTask("t", {"n": n}, priority=n % 2)) for n in range(4)]
    assert queue.enqueue(NewTask("t", dedupe_key="k")) is not None
    assert queue.enqueue(NewTask("t", dedupe_key="k")) is None  # queued already
    order = []
    while (task := queue.claim("w1")) is not None:
        order.append(task.task_id)
        queue.complete(task)
    assert order[:2] == [ids[1], ids[3]]  # priority 1 first, oldest first
    assert set(order) == {*ids, order[-1]} and len(order) == 5
    assert queue.counts()["succeeded"] == 5


def test_runs_start_finish_and_refuse_to_end_twice(store: Storage) -> None:
    runs = RunStore(store)
    run_id = runs.start("ingest", {"tz": "UTC"})
    child = runs.start("write", parent=run_id)
    assert runs.finish(child, rows_in=3, rows_out=2).status == "succeeded"
    assert runs.fail(run_id, "it broke").status == "failed"
    with pytest.raises(EgregoraError, match="failed already"):
        runs.finish(run_id)


def test_the_asset_cache_keeps_and_finds_bytes(store: Storage) -> None:
    cache = AssetCache(store)
    key = key_for("social_card", 1, title="hello")
    made = cache.get_or_create(key, lambda: b"\x89PNG card", content_type="image/png")
    assert made.content == b"\x89PNG card"
    again = cache.get_or_create(key, lambda: b"other")
    assert (again.content, again.content_type) == (b"\x89PNG card", "image/png")
    assert cache.stats().entries == 1


def test_git_answers_equal_git_log(store: Storage, tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    base = int(T0.timestamp())
    for i, (path, text) in enumerate([("a.md", "1"), ("b.md", "1"), ("a.md", "2")]):
        repo.write(path, text)
        repo.git("add", path)
        repo.commit(f"c{i}", base + 100 * i)
    repo.remove("b.md")
    repo.git("add", "-A")
    repo.commit("gone", base + 400)
    synced = sync_repository(store, repo.root)
    resolver = GitHistoryResolver(store)
    probes = [(p, base + s) for p in ("a.md", "b.md", "c.md") for s in (-1, 0, 150, 250, 500)]
    for path, at in probes:
        answer = resolver.resolve(synced.repo_id, path, datetime.fromtimestamp(at, UTC))
        assert answer.commit_sha == repo.last_change("HEAD", path, at), (path, at)
    table = pa.table(
        {
            "path": [p for p, _ in probes],
            "at": pa.array(
                [datetime.fromtimestamp(a, UTC) for _, a in probes], pa.timestamp("us", "UTC")
            ),
        }
    )
    many = resolver.resolve_many(synced.repo_id, table).to_pylist()
    assert [r["commit_sha"] for r in many] == [repo.last_change("HEAD", p, a) for p, a in probes]


# -- the commands, the same on both engines ------------------------------------------------------
def _json(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def _history(root: Path) -> tuple[GitRepo, list[tuple[str, int]]]:
    """A small history, and probes over its paths and times (before, between, after)."""
    repo = GitRepo(root)
    base = int(T0.timestamp())
    steps = [("a.md", "1"), ("docs/b.md", "1"), ("a.md", "2"), ("docs/b.md", None)]
    for i, (path, text) in enumerate(steps):
        if text is None:
            repo.remove(path)
        else:
            repo.write(path, text)
        repo.git("add", "-A")
        repo.commit(f"c{i}", base + 100 * i)
    probes = [(p, base + s) for p in ("a.md", "docs/b.md", "c.md") for s in (-1, 0, 150, 350)]
    return repo, probes


def test_the_commands_say_the_same_on_both_engines(pg_url: DatabaseURL, tmp_path: Path) -> None:
    """ingest, demo (run on the sample chat), git sync and git resolve --batch."""
    repo, probes = _history(tmp_path / "repo")
    batch = tmp_path / "probes.csv"
    rows = [f"{p},{datetime.fromtimestamp(a, UTC).isoformat()}" for p, a in probes]
    batch.write_text("path,at\n" + "\n".join(rows) + "\n", encoding="utf-8")
    expected = [repo.last_change("HEAD", p, a) or "" for p, a in probes]
    said = []
    for name, where in (("duckdb", str(tmp_path / "e.duckdb")), ("postgres", _where(pg_url))):
        folder = tmp_path / name
        assert runner.invoke(app, ["db", "init", "--db", where]).exit_code == 0
        ingested = _json("ingest", str(FIXTURES / "family_short.txt"), "--tz", "UTC", "--db", where)
        ran = _json("demo", str(folder), "--db", where)
        del ran["run_id"], ran["site"]
        synced = _json("git", "sync", str(repo.root), "--db", where)
        answers = runner.invoke(
            app, ["git", "resolve", str(repo.root), "--batch", str(batch), "--db", where]
        )
        assert answers.exit_code == 0, answers.output
        shas = [line.split(",")[2] for line in answers.stdout.splitlines()[1:]]
        assert shas == expected, name
        said.append((ingested, ran, synced))
        assert (folder / "site" / "mkdocs.yml").is_file()
    assert said[0] == said[1]
    assert said[0][1]["new_messages"] > 0


def test_four_workers_share_one_postgres_queue(pg_url: DatabaseURL) -> None:
    """Each of 2,000 tasks is completed exactly once, and more than one worker gets work."""
    where = _where(pg_url)
    with Storage.open(where) as store:
        store.ensure_schema()
        queue = TaskStore(store)
        enqueued = queue.enqueue_many(NewTask("t", {"n": n}) for n in range(2000))
        assert len(enqueued.task_ids) == 2000
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests._queue_child", where, f"w{i}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    done: Counter[str] = Counter()
    per_worker = []
    for worker in workers:
        out, _ = worker.communicate(timeout=600)
        assert worker.returncode == 0
        lines = out.splitlines()
        assert lines[-1] == "idle"
        ids = [line.split(" ", 1)[1] for line in lines[:-1]]
        per_worker.append(len(ids))
        done.update(ids)
    assert set(done) == set(enqueued.task_ids)
    assert max(done.values()) == 1, [t for t, n in done.items() if n > 1][:5]
    assert sum(1 for n in per_worker if n) > 1, per_worker
    with Storage.open(where) as store:
        assert TaskStore(store).counts()["succeeded"] == 2000
