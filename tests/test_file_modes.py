"""Files egregora writes for people to read get the user's umask, as any file they write:
0644 under 022, so a web server running as another user can serve the site; 0640 under 027.

Drafts were made by ``tempfile.mkstemp`` (always 0600) and renamed into place, so every page,
card, media file and export was readable by its owner alone.
"""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from tests.conftest import Demo
from tests.support import egregora_process


def modes(folder: Path) -> dict[str, set[str]]:
    """The permission bits (octal) of the files and of the folders under ``folder``."""
    found: dict[str, set[str]] = {"files": set(), "folders": set()}
    for path in folder.rglob("*"):
        kind = "folders" if path.is_dir() else "files"
        found[kind].add(oct(stat.S_IMODE(path.stat().st_mode)))
    return found


@pytest.mark.parametrize(
    ("umask", "file", "folder"), [(0o022, "0o644", "0o755"), (0o027, "0o640", "0o750")]
)
def test_a_site_is_written_with_the_users_umask(
    demo_copy: Demo, tmp_path: Path, umask: int, file: str, folder: str
) -> None:
    site = tmp_path / "site"
    done = egregora_process("site", "build", "--db", demo_copy.db, "--site", str(site), umask=umask)
    assert done.returncode == 0, done.stderr
    found = modes(site)
    assert len(list(site.rglob("*.png"))) > 1 and list(site.rglob("*.md"))
    assert found == {"files": {file}, "folders": {folder}}


@pytest.mark.parametrize("demo", ["duckdb"], indirect=True)  # the engine that keeps media files
def test_a_runs_media_files_are_written_with_the_users_umask(demo: Demo, tmp_path: Path) -> None:
    export = next(demo.folder.glob("*.zip"))
    folder = tmp_path / "demo"
    folder.mkdir()
    shutil.copy(export, folder / export.name)
    done = egregora_process("demo", str(folder), "--json", umask=0o022, timeout=600)
    assert done.returncode == 0, done.stderr
    media = [p for p in folder.rglob("*") if p.is_file() and "media" in p.relative_to(folder).parts]
    assert media, sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in media} == {"0o644"}


def test_an_export_is_written_with_the_users_umask(demo_copy: Demo, tmp_path: Path) -> None:
    out = tmp_path / "documents.parquet"
    done = egregora_process(
        "export", "documents", "--db", demo_copy.db, "--out", str(out), umask=0o022
    )
    assert done.returncode == 0, done.stderr
    assert oct(stat.S_IMODE(out.stat().st_mode)) == "0o644"
