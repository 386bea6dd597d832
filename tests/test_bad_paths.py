"""Database paths: what ``--db`` names, and paths that cannot be made (one line naming the path
and the fix, nothing written)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from egregora.backends import DatabaseURL
from egregora.errors import ConfigurationError
from egregora.runner.demo import TIMEZONE, sample_export
from tests.support import mounted_tmpfs

# Every command that opens (and creates) a DuckDB file for writing, as it is typed.
OPENING = {
    "db migrate": ["db", "migrate"],
    "ingest": ["ingest", "EXPORT", "--tz", TIMEZONE],
    "run": ["run", "EXPORT", "--tz", TIMEZONE],
}


def egregora(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "egregora", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line a refusal prints (no traceback), after checking the exit."""
    assert done.returncode != 0, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def command(name: str, export: Path, db: str) -> list[str]:
    return [str(export) if a == "EXPORT" else a for a in OPENING[name]] + ["--db", db]


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- what --db names ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("duckdb:///srv/chat.duckdb", "/srv/chat.duckdb"),
        ("duckdb:////srv/chat.duckdb", "/srv/chat.duckdb"),
        ("duckdb:chats/chat.duckdb", "chats/chat.duckdb"),
        ("chats/chat.duckdb", "chats/chat.duckdb"),
        ("/srv/chat.duckdb", "/srv/chat.duckdb"),
    ],
)
def test_duckdb_urls_name_absolute_paths_as_file_urls_do(value: str, path: str) -> None:
    assert DatabaseURL.parse(value).path == Path(path)


@pytest.mark.parametrize("value", ["duckdb://host/chat.duckdb", "duckdb://chat.duckdb"])
def test_a_duckdb_url_with_a_host_is_refused_naming_both_spellings(value: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        DatabaseURL.parse(value)
    message = str(refused.value)
    assert "duckdb:///ABSOLUTE/PATH" in message and "duckdb:RELATIVE/PATH" in message
    assert "\n" not in message


def test_three_slashes_reach_the_absolute_path_from_any_folder(tmp_path: Path) -> None:
    here, target = tmp_path / "here", tmp_path / "elsewhere" / "chat.duckdb"
    here.mkdir()
    done = egregora(here, "db", "init", "--db", f"duckdb://{target}")  # duckdb:///tmp/...
    assert done.returncode == 0, done.stderr
    assert target.exists()
    assert listing(here) == []  # nothing under the current folder


@pytest.fixture
def unused_root_folder() -> Iterator[str]:
    """A folder name free at the root of the file system (and under the test's folder)."""
    name = f"egregora-test-{uuid.uuid4().hex[:12]}"
    assert not Path("/", name).exists()
    yield name
    shutil.rmtree(Path("/", name), ignore_errors=True)  # only if the refusal failed


def test_the_old_relative_reading_of_three_slashes_is_refused_not_emptied(
    tmp_path: Path, unused_root_folder: str
) -> None:
    relative = Path(unused_root_folder) / "chat.duckdb"
    assert egregora(tmp_path, "db", "init", "--db", str(relative)).returncode == 0
    before = listing(tmp_path)
    for args in (["db", "init"], ["db", "status"], ["runs", "list"]):
        line = one_line(egregora(tmp_path, *args, "--db", f"duckdb:///{relative}"))
        assert f"/{relative}" in line and f"duckdb:{relative}" in line, line
        assert f"duckdb:////{relative}" in line, line
    assert not Path("/", unused_root_folder).exists()  # no empty database was made there
    assert listing(tmp_path) == before
    # Spelled either way the message offers, the user's database opens.
    assert egregora(tmp_path, "db", "status", "--db", f"duckdb:{relative}").returncode == 0


# -- folders a database cannot be made in -----------------------------------------------------
@pytest.fixture
def export(tmp_path: Path) -> Path:
    return sample_export(tmp_path / "export")


def test_a_database_under_a_file_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes").write_text("a file, not a folder\n")
    line = one_line(egregora(tmp_path, "db", "init", "--db", "notes/sub/x.duckdb"))
    assert "cannot create the database notes/sub/x.duckdb" in line, line
    assert "Not a directory" in line and "--db" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]  # nothing else was made


@pytest.mark.parametrize("name", OPENING)
@pytest.mark.parametrize("db", ["notes/sub/x.duckdb", "notes/x.duckdb"])
def test_every_command_refuses_a_file_for_a_folder_in_one_line(
    tmp_path: Path, export: Path, name: str, db: str
) -> None:
    (tmp_path / "notes").write_text("a file, not a folder\n")
    before = listing(tmp_path)
    line = one_line(egregora(tmp_path, *command(name, export, db)))
    assert f"cannot create the database {db}: Not a directory (notes)" in line, line
    assert listing(tmp_path) == before


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody may write in: mode 0o555, or for root (whom modes do not stop) a
    read-only file system mounted there."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    with mounted_tmpfs(folder, "ro,size=1m"):
        yield folder


@pytest.mark.parametrize("name", OPENING)
@pytest.mark.parametrize("inside", ["x.duckdb", "sub/x.duckdb"])
def test_every_command_refuses_a_read_only_folder_in_one_line(
    tmp_path: Path, export: Path, read_only_folder: Path, name: str, inside: str
) -> None:
    db = f"{read_only_folder.name}/{inside}"
    before = listing(tmp_path)
    line = one_line(egregora(tmp_path, *command(name, export, db)))
    assert f"cannot create the database {db}: " in line, line
    assert "Read-only file system" in line or "Permission denied" in line, line
    assert "choose a --db path in a folder you can write" in line, line
    assert listing(tmp_path) == before  # no draft, no folder, no media
