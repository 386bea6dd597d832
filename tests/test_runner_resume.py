"""A run killed with SIGKILL, run again, ends with exactly what an uninterrupted run makes.

Each test runs tests/_runner_child.py, which kills itself at one point of a run on the sample
export (inside the writer while it holds a batch of tasks, between batches, while drawing
cards, as a stage begins), then runs again in this process and compares every document,
message, cached card, media file and site file with a run that was never interrupted.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from egregora.pseudonyms import ENV
from egregora.runner import run_pipeline
from egregora.runner.demo import sample_export
from egregora.runs import RunStore
from egregora.storage import Storage
from egregora.tasks import TaskStore
from tests._runner_child import options
from tests.conftest import Databases
from tests.support import SHARED_KEY, db_arg

CHILD = Path(__file__).with_name("_runner_child.py")
Snapshot = dict[str, Any]


def snapshot(folder: Path, db: str) -> Snapshot:
    """Everything a run leaves in ``db`` and ``folder`` that must not depend on how the run
    went."""
    with Storage.open(db, read_only=True) as store:
        documents = store.to_pyarrow(store.table("documents").drop("created_by_run").order_by("id"))
        messages = store.table("messages")
        messages = messages.drop("created_by_run", "ingested_at").order_by("seq")
        cache = store.table("asset_cache").select("key", "kind", "content")
        tasks = store.table("tasks")
        active = tasks.filter(tasks.status.isin(["pending", "running"])).count()
        taken = {
            "documents": documents.to_pylist(),
            "messages": store.to_pyarrow(messages).to_pylist(),
            "cards": sorted(store.to_pyarrow(cache).to_pylist(), key=lambda r: r["key"]),
            "active_tasks": store.execute(active),
        }
    for name in ("media", "site"):
        root = folder / name
        taken[name] = {
            str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
        }
    return taken


def run_here(folder: Path, db: str) -> None:
    export = sample_export(folder)
    with Storage.open(db) as store:
        store.ensure_schema()
        run_pipeline(store, export, options(folder / "site"))


@pytest.fixture(scope="module", autouse=True)
def shared_key() -> Iterator[None]:
    """The databases compared here are given one key (the child process too), so that their
    pseudonyms agree."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV, SHARED_KEY)
        yield


# Each database starts empty: migrated under the shared key by the run itself.
@pytest.fixture(scope="module")
def uninterrupted(
    tmp_path_factory: pytest.TempPathFactory, engine: str, databases: Databases
) -> Snapshot:
    folder = tmp_path_factory.mktemp("uninterrupted")
    db = db_arg(databases.new(engine, migrated=False))
    run_here(folder, db)
    taken = snapshot(folder, db)
    assert len(taken["documents"]) == 64 and taken["active_tasks"] == 0
    return taken


POINTS = [
    ("writer", 5),  # inside the writer, holding a batch of leased tasks, two batches written
    ("writer", 1),  # inside the very first window's writer: nothing written yet
    ("execute", 6),  # right after the second batch committed
    ("cards", 12),  # part of the cards drawn and stored
    ("plan", 0),  # after ingest committed, before any task was queued
    ("site", 0),  # every document and card made, the site not yet written
]


@pytest.mark.parametrize(("point", "steps"), POINTS, ids=[f"{p}-{n}" for p, n in POINTS])
def test_a_killed_run_run_again_ends_as_an_uninterrupted_run(
    tmp_path: Path,
    uninterrupted: Snapshot,
    point: str,
    steps: int,
    engine: str,
    databases: Databases,
) -> None:
    export = sample_export(tmp_path)
    db = db_arg(databases.new(engine, migrated=False))
    done = subprocess.run(
        [
            sys.executable,
            str(CHILD),
            db,
            str(export),
            str(tmp_path / "site"),
            point,
            str(steps),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    assert "finished" not in done.stdout

    run_here(tmp_path, db)

    again = snapshot(tmp_path, db)
    for part in ("documents", "messages", "cards", "media", "site"):
        assert again[part] == uninterrupted[part], f"{part} differ after resuming at {point}"
    assert again["active_tasks"] == 0
    with Storage.open(db, read_only=True) as store:
        runs = RunStore(store).list(stage="run")
        assert [r.status for r in runs] == ["succeeded", "failed"]  # newest first
        assert runs[1].error is not None and runs[1].error.startswith("stale")
        queue = TaskStore(store)
        counts = queue.counts()
        errors = [t.last_error or "" for t in queue.list(status="succeeded", limit=None)]
    assert counts["running"] == counts["pending"] == 0
    if point == "writer":
        # The tasks the dead run held went back to the queue at once (its process is gone),
        # not after their leases lapsed, and were done by the next run.
        assert any("ended without finishing it" in e for e in errors), errors
