"""A full disk under the database is named as such, in one line, and never reported as success;
once space is freed, running again ends as a run on a roomy disk.

The end-to-end tests mount a small file system of their own (tmpfs, root only; skipped with the
reason elsewhere) and fill it with a file they write; the unit tests inject DuckDB's own errors.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
import typer

from egregora.backends import DUCKDB
from egregora.backends.duckdb import DuckDB
from egregora.cli.output import reported_errors
from egregora.errors import DiskFullError, disk_full
from egregora.pseudonyms import ENV
from egregora.runner import RunOptions, run_pipeline
from egregora.runner.demo import TIMEZONE, sample_export
from egregora.runs import RunStore
from egregora.runs.model import Run
from egregora.storage import Storage
from tests.conftest import Place
from tests.support import SHARED_KEY, copy_database, mounted_tmpfs

KiB, MiB = 1024, 1024 * 1024
NO_SPACE = os.strerror(errno.ENOSPC)
WAL_FULL = (
    "TransactionContext Error: Failed to commit: "
    f'Could not write file "/d/x.duckdb.wal": {NO_SPACE}'
)
Rows = dict[str, list[dict[str, Any]]]


# -- a small disk of the test's own --------------------------------------------------------------
@dataclass
class Disk:
    root: Path
    filler: Path

    def fill(self, leave: int) -> None:
        """Write a file that leaves ``leave`` bytes free on the disk."""
        stat = os.statvfs(self.root)
        with self.filler.open("wb") as out:
            out.truncate(0)
            out.write(b"\0" * max(stat.f_bavail * stat.f_frsize - leave, 0))

    def free_space(self) -> None:
        self.filler.unlink()


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    """A 32 MiB tmpfs mounted for the test, unmounted afterwards."""
    with mounted_tmpfs(tmp_path / "disk", "size=32m") as root:
        yield Disk(root, root / "filler")


def egregora(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "egregora", *args, "--json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, ENV: SHARED_KEY},  # pseudonyms agree between databases
    )


def says_the_disk_is_full(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # no traceback
    assert "disk" in lines[0] and "is full" in lines[0] and "free some space" in lines[0], lines
    assert json.loads(done.stdout)["ok"] is False
    return lines[0]


def rows(db: Path) -> Rows:
    """What a run stores, but for when and by which run it stored it."""
    with Storage.open(str(db), read_only=True) as store:
        documents = store.table("documents").drop("created_by_run").order_by("id")
        messages = store.table("messages").drop("created_by_run", "ingested_at").order_by("seq")
        return {
            "documents": store.to_pyarrow(documents).to_pylist(),
            "messages": store.to_pyarrow(messages).to_pylist(),
        }


def run_records(db: Path) -> list[Run]:
    with Storage.open(str(db), read_only=True) as store:
        return RunStore(store).list(stage="run")  # newest first


@pytest.fixture(scope="module")
def roomy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Rows, Rows]:
    """The sample export, and what `egregora ingest` and `egregora run` store on a roomy disk."""
    folder = tmp_path_factory.mktemp("roomy")
    export = sample_export(folder / "export")
    for name in ("ingest", "run"):
        done = egregora(folder, name, str(export), "--tz", TIMEZONE, "--db", f"{name}.duckdb")
        assert done.returncode == 0, done.stderr
    return export, rows(folder / "ingest.duckdb"), rows(folder / "run.duckdb")


# -- end to end, on a full disk ------------------------------------------------------------------
@pytest.mark.parametrize(
    "leave",
    [1 * MiB, 5 * MiB],
    # 1 MiB runs out while the run writes; with 5 MiB every write commits and folding the
    # write-ahead log into the file at the end fails (a run that said it succeeded before).
    ids=["while-writing", "at-the-checkpoint"],
)
def test_a_run_on_a_full_disk_fails_in_one_line_and_the_next_one_finishes_it(
    disk: Disk, roomy: tuple[Path, Rows, Rows], leave: int
) -> None:
    export, _, expected = roomy
    db = disk.root / "x.duckdb"
    disk.fill(leave)
    says_the_disk_is_full(
        egregora(disk.root, "run", str(export), "--tz", TIMEZONE, "--db", str(db))
    )
    disk.free_space()
    done = egregora(disk.root, "run", str(export), "--tz", TIMEZONE, "--db", str(db))
    assert done.returncode == 0, done.stderr
    assert rows(db) == expected
    failed, finished = run_records(db)[1], run_records(db)[0]
    assert finished.status == "succeeded"
    # Recorded as failed where the database could still record it; else marked stale by the
    # next run (DuckDB refuses every statement after a checkpoint that failed).
    assert failed.status == "failed", failed
    assert "is full" in (failed.error or "") or (failed.error or "").startswith("stale"), failed


def test_the_failed_run_names_the_full_disk_in_its_record(
    disk: Disk, roomy: tuple[Path, Rows, Rows]
) -> None:
    export, _, _ = roomy
    db = disk.root / "x.duckdb"
    disk.fill(1 * MiB)
    says_the_disk_is_full(
        egregora(disk.root, "run", str(export), "--tz", TIMEZONE, "--db", str(db))
    )
    disk.free_space()
    # Read where it was written: the first open replays the write-ahead log.
    (record,) = run_records(db)
    assert record.status == "failed"
    assert record.error is not None and record.error.startswith("DiskFullError: the disk holding")


@pytest.mark.parametrize("leave", [64 * KiB, 1 * MiB], ids=["media", "rows"])
def test_an_ingest_on_a_full_disk_fails_in_one_line_and_the_next_one_finishes_it(
    disk: Disk, roomy: tuple[Path, Rows, Rows], leave: int
) -> None:
    export, expected, _ = roomy
    db = disk.root / "x.duckdb"
    disk.fill(leave)
    says_the_disk_is_full(
        egregora(disk.root, "ingest", str(export), "--tz", TIMEZONE, "--db", str(db))
    )
    disk.free_space()
    done = egregora(disk.root, "ingest", str(export), "--tz", TIMEZONE, "--db", str(db))
    assert done.returncode == 0, done.stderr
    assert rows(db) == expected


@pytest.mark.parametrize("leave", [32 * KiB, 160 * KiB])
def test_a_migration_on_a_full_disk_fails_in_one_line(disk: Disk, leave: int) -> None:
    db = disk.root / "x.duckdb"
    disk.fill(leave)
    line = says_the_disk_is_full(egregora(disk.root, "db", "migrate", "--db", str(db)))
    assert str(db) in line
    assert not list(disk.root.glob(".x.duckdb.creating-*"))  # no draft left
    disk.free_space()
    assert egregora(disk.root, "db", "migrate", "--db", str(db)).returncode == 0
    assert egregora(disk.root, "db", "verify", "--db", str(db)).returncode == 0


# -- DuckDB's errors, injected -------------------------------------------------------------------
@pytest.mark.parametrize(
    "error",
    [
        duckdb.IOException(f'IO Error: Could not write file "/d/x.duckdb": {NO_SPACE}'),
        duckdb.TransactionException(WAL_FULL),
        duckdb.IOException(
            f'IO Error: Could not write file "/d/x.duckdb": {os.strerror(errno.EDQUOT)}'
        ),
        duckdb.FatalException(
            "FATAL Error: Failed: database has been invalidated because of a previous fatal "
            'error.\nOriginal error: "Failed to create checkpoint because of error: Could not '
            f'write file "/d/x.duckdb": {NO_SPACE}"'
        ),
    ],
    ids=["write", "commit", "quota", "invalidated"],
)
def test_a_duckdb_error_caused_by_a_full_disk_becomes_disk_full_error(error: duckdb.Error) -> None:
    full = DUCKDB.disk_full(error, where="/d/x.duckdb")
    assert isinstance(full, DiskFullError)
    assert str(full).startswith("the disk holding /d/x.duckdb is full (")
    assert "\n" not in str(full)
    named = DUCKDB.disk_full(error)  # no database given: the file DuckDB names
    assert named is not None and "the disk holding /d/x.duckdb" in str(named)


@pytest.mark.parametrize(
    "error",
    [
        duckdb.IOException('IO Error: Cannot open file "/d/x.duckdb": Permission denied'),
        duckdb.ConstraintException("Constraint Error: Duplicate key"),
        OSError(errno.ENOSPC, NO_SPACE),  # not the driver's: the command line names it
    ],
)
def test_other_errors_are_not_a_full_disk(error: BaseException) -> None:
    assert DUCKDB.disk_full(error) is None


def test_the_errors_after_a_full_disk_on_a_connection_are_that_full_disk() -> None:
    engine, con, other = DuckDB(), duckdb.connect(), duckdb.connect()
    aborted = duckdb.TransactionException(
        "TransactionContext Error: Current transaction is aborted (please ROLLBACK)"
    )
    assert engine.disk_full(aborted, con) is None  # aborted by something else
    assert engine.disk_full(duckdb.TransactionException(WAL_FULL), con) is not None
    assert isinstance(engine.disk_full(aborted, con), DiskFullError)
    assert engine.disk_full(aborted, other) is None  # another connection met no full disk
    con.close()
    other.close()


def test_a_write_meeting_a_full_disk_raises_disk_full_error(
    empty_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = copy_database(empty_db, tmp_path / "x.duckdb")

    def failing(method: Any) -> Any:
        def call(self: DuckDB, con: Any, sql: str, params: Any = ()) -> Any:
            if sql.lstrip().upper().startswith("INSERT"):
                raise duckdb.IOException(f'IO Error: Could not write file "{db}.wal": {NO_SPACE}')
            return method(self, con, sql, params)

        return call

    with Storage.open(str(db)) as store:
        for name in ("run", "affected"):  # every INSERT, direct or staged
            monkeypatch.setattr(DuckDB, name, failing(getattr(DuckDB, name)))
        with pytest.raises(DiskFullError, match=f"the disk holding {db} is full"):
            RunStore(store).start("ingest")
        monkeypatch.undo()
    assert run_records(db) == []


def test_closing_a_store_whose_checkpoint_meets_a_full_disk_raises_and_closes(
    empty_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = copy_database(empty_db, tmp_path / "x.duckdb")
    store = Storage.open(str(db))

    def no_room(self: DuckDB, con: Any, where: object = None) -> None:
        raise duckdb.FatalException(
            "FATAL Error: Failed to create checkpoint because of error: "
            f'Could not write file "{db}": {NO_SPACE}'
        )

    monkeypatch.setattr(DuckDB, "checkpoint", no_room)
    with pytest.raises(DiskFullError, match=f"the disk holding {db} is full"):
        store.close()
    with pytest.raises(duckdb.ConnectionException):
        store.con.execute("SELECT 1")  # closed all the same


def test_a_run_whose_writes_cannot_be_made_durable_fails_and_says_so(
    place: Place, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export = sample_export(tmp_path / "export")

    def no_room(self: Any, con: Any, where: object = None) -> None:
        raise disk_full(where, OSError(errno.ENOSPC, NO_SPACE))

    with Storage.open(str(place)) as store:
        engine = type(store.engine)
        monkeypatch.setattr(engine, "checkpoint", no_room)
        with pytest.raises(DiskFullError):
            run_pipeline(store, export, RunOptions(tz=TIMEZONE, media_dir=place.files / "media"))
        monkeypatch.undo()
        (record,) = RunStore(store).list(stage="run")
    assert record.status == "failed"
    assert record.error is not None and "is full" in record.error


# -- the command line ----------------------------------------------------------------------------
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_reaching_the_command_line_is_one_line_naming_the_file(
    code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(typer.Exit) as ended, reported_errors(as_json=False):
        raise OSError(code, os.strerror(code), "/d/site/index.html")
    assert ended.value.exit_code == DiskFullError.exit_code
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: the disk holding /d/site/index.html is full"), err


def test_a_driver_error_for_a_full_disk_reaching_the_command_line_is_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(typer.Exit), reported_errors(as_json=True):
        raise duckdb.TransactionException(WAL_FULL)
    captured = capsys.readouterr()
    assert json.loads(captured.out)["error"]["type"] == "DiskFullError"
    assert captured.err.startswith("error: the disk holding /d/x.duckdb.wal is full"), captured.err


def test_other_os_errors_reach_the_command_line_as_before() -> None:
    with pytest.raises(PermissionError), reported_errors(as_json=False):
        raise PermissionError(errno.EACCES, "Permission denied", "/d/x")
