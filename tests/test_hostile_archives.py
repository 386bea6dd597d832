"""Hostile and unlucky archives: odd entry names, many entries, huge lines, files that change
while read, and what an ingest killed half-way leaves behind. Each case is stored safely or
refused in one line; nothing is half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from egregora.drafts import PREFIX
from egregora.etl import archive as archive_module
from egregora.etl import ingest_export
from egregora.etl.formats import MAX_MESSAGE_BYTES
from egregora.etl.parse import ExportFormatError
from egregora.media import MEDIA_FOLDER, MediaBytes, MediaFiles
from egregora.media.folder import JOURNAL
from egregora.media.model import ChangedMediaError, safe_suffix
from egregora.storage import Storage
from tests.conftest import Databases, Place

TZ = "UTC"
LINE = "13/01/2024, 10:{minute:02d} - Ana: {name} (file attached)"


def media_zip(folder: Path, files: dict[str, bytes], *, chat: str | None = None) -> Path:
    """A zip whose chat sends each file (by its base name) and holds it."""
    path = folder / "WhatsApp Chat with Odd Names.zip"
    lines = [
        LINE.format(minute=i % 60, name=Path(name.replace("\\", "/")).name or "x")
        for i, name in enumerate(files)
    ]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("WhatsApp Chat with Odd Names.txt", chat or "\n".join(lines) + "\n")
        for name, content in files.items():
            archive.writestr(zipfile.ZipInfo(name), content)
    return path


def media_rows(store: Storage) -> list[dict[str, object]]:
    documents = store.table("documents")
    query = documents.filter(documents.doc_type == "media").select(
        "id", "filename", "source_checksum", "extensions"
    )
    return sorted(store.to_pyarrow(query).to_pylist(), key=lambda r: str(r["filename"]))


@pytest.fixture
def duck(databases: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Place:
    """A fresh DuckDB database: its media are files in a folder beside it, which a killed
    ingest can leave behind (PostgreSQL writes parts and rows in one transaction)."""
    monkeypatch.chdir(tmp_path)
    url = databases.new("duckdb")
    assert url.files_folder is not None
    return Place(url, url.files_folder.resolve())


def folder_files(place: Place) -> set[str]:
    media = place.files / MEDIA_FOLDER
    return {p.relative_to(media).as_posix() for p in media.rglob("*") if p.is_file()}


# -- names --------------------------------------------------------------------------------------
def test_odd_entry_names_are_stored_under_safe_names_keeping_the_original(
    place: Place, tmp_path: Path
) -> None:
    long_name = "a" * 150 + "." + "b" * 150  # a 300-character "suffix"
    files = {
        ".": b"dot",
        "folder/": b"",
        long_name: b"long",
        "line\nbreak.jpg": b"newline",
        "index.md": b"# a member's page",
        "notes.MD": b"# another",
    }
    path = media_zip(tmp_path, files)
    with Storage.open(str(place)) as store:
        result = ingest_export(store, path, tz=TZ)
        rows = media_rows(store)
        media = MediaFiles.of(store)
        read_back = {str(row["filename"]): media.read(row) for row in rows}
    # "." and "folder/" name no file: not media. The others are kept, names as given.
    assert result.media_files == 4
    assert read_back == {
        long_name: b"long",
        "line\nbreak.jpg": b"newline",
        "index.md": b"# a member's page",
        "notes.MD": b"# another",
    }
    for row in rows:
        ext = json.loads(str(row["extensions"]))
        stored_as = ext.get("path", "")
        # A stored file's name is its digest and a plain suffix, whatever the export said.
        assert "\n" not in stored_as and len(Path(stored_as).name) <= 64 + 9
    if place.url.dialect == "duckdb":
        names = folder_files(place)
        assert all(len(Path(n).name) <= 64 + 9 for n in names), names
        assert {Path(n).suffix for n in names} == {"", ".jpg", ".md"}


def test_safe_suffixes_are_short_and_plain() -> None:
    assert safe_suffix("photo.JPG") == ".jpg"
    assert safe_suffix("a." + "b" * 300) == ""
    assert safe_suffix("clip.mp4\n") == ""
    assert safe_suffix("no suffix") == ""
    assert safe_suffix("") == ""


def test_two_entries_with_the_same_name_in_different_folders_are_both_kept(
    place: Place, tmp_path: Path
) -> None:
    files = {"a/IMG-1.jpg": b"first", "b/IMG-1.jpg": b"second"}
    path = media_zip(tmp_path, files)
    with Storage.open(str(place)) as store:
        ingest_export(store, path, tz=TZ)
        again = ingest_export(store, path, tz=TZ)  # ingesting again adds nothing
        rows = media_rows(store)
        media = MediaFiles.of(store)
        assert sorted(media.read(row) for row in rows) == [b"first", b"second"]
    assert again.media_files_new == 0
    assert [row["filename"] for row in rows] == ["IMG-1.jpg", "IMG-1.jpg"]
    members = sorted(json.loads(str(row["extensions"])).get("member", "") for row in rows)
    assert members == ["a/IMG-1.jpg", "b/IMG-1.jpg"]


# -- many entries -------------------------------------------------------------------------------
def test_the_archive_list_is_read_once_whatever_the_number_of_media(
    place: Place, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[object] = []

    class Counting(zipfile.ZipFile):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            opened.append(args[0])
            super().__init__(*args, **kwargs)

    path = media_zip(tmp_path, {f"IMG-{i:04d}.jpg": bytes([i % 256]) * 10 for i in range(60)})
    monkeypatch.setattr(zipfile, "ZipFile", Counting)
    with Storage.open(str(place)) as store:
        result = ingest_export(store, path, tz=TZ)
    assert result.media_files_new == 60
    # Once to check the archive, once to read its media: not once per media file.
    assert len(opened) <= 2, len(opened)


# -- streaming ----------------------------------------------------------------------------------
def test_media_are_read_in_chunks_never_whole(tmp_path: Path) -> None:
    big = os.urandom(3 * archive_module.CHUNK + 5)
    path = media_zip(tmp_path, {"VID-1.mp4": big})
    with archive_module.open_export(path) as export:
        (item,) = export.media
        sizes = [len(chunk) for chunk in item.chunks()]
        file = MediaBytes.streamed(item.chunks, item.where)
    assert max(sizes) <= archive_module.CHUNK and sum(sizes) == len(big)
    assert file.size == len(big)
    parts = list(file.parts())
    assert b"".join(part for _, part in parts) == big


def test_a_file_that_changes_while_it_is_stored_is_refused_and_not_kept(place: Place) -> None:
    reads = iter([b"first bytes", b"other bytes"])
    file = MediaBytes.streamed(lambda: iter((next(reads),)), "clip.mp4")
    with Storage.open(str(place)) as store:
        media = MediaFiles.of(store, writing=True)
        changed = pytest.raises(ChangedMediaError, match="changed while it was being stored")
        with changed, media.stage([file]):
            pass
        assert media.missing([]) == set()
    if place.url.dialect == "duckdb":
        assert folder_files(place) == set()


# -- bounds -------------------------------------------------------------------------------------
def test_a_line_longer_than_any_message_is_refused_in_one_line_writing_nothing(
    place: Place, tmp_path: Path
) -> None:
    chat = tmp_path / "WhatsApp Chat with Long.txt"
    chat.write_text(
        "13/01/2024, 10:00 - Ana: hi\n13/01/2024, 10:01 - Bo: " + "x" * (MAX_MESSAGE_BYTES + 1)
    )
    done = subprocess.run(
        [sys.executable, "-m", "egregora", "ingest", str(chat), "--db", str(place), "--tz", TZ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "line 2" in lines[0] and "export the chat again" in lines[0]
    with Storage.open(str(place)) as store:
        assert store.table("messages").count().execute() == 0


def test_a_message_whose_lines_together_are_too_long_is_refused() -> None:
    from egregora.etl.parse import parse_export

    line = "y" * 1000 + "\n"
    text = "13/01/2024, 10:00 - Ana: a\n" + line * (MAX_MESSAGE_BYTES // 1000 + 10)
    with pytest.raises(ExportFormatError, match="message 1 is"):
        parse_export(text, name="chat.txt")
    assert len(parse_export("13/01/2024, 10:00 - Ana: a\n" + line * 100, name="c")) == 1


# -- leftovers ----------------------------------------------------------------------------------
def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_what_a_killed_ingest_left_is_removed_by_the_next_one(duck: Place, tmp_path: Path) -> None:
    place = duck
    path = media_zip(tmp_path, {"IMG-1.jpg": b"kept"})
    media = place.files / MEDIA_FOLDER
    with Storage.open(str(place)) as store:
        ingest_export(store, path, tz=TZ)
    kept = folder_files(place)
    # A dead ingest's journal, its file no row names, and its draft; a live writer's draft;
    # a file of the folder's own user.
    orphan = media / "ab" / ("ab" + "0" * 62 + ".jpg")
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"orphan")
    pid = dead_pid()
    (media / f"{JOURNAL}{pid}-abcdefg1.json").write_text(
        json.dumps({"files": ["ab/" + orphan.name]})
    )
    os.utime(orphan, (1, 1))  # before the journal: nobody took it up since
    dead_draft = media / "ab" / f"{PREFIX}{pid}-abcdefgh"
    dead_draft.write_bytes(b"half")
    live_draft = media / "ab" / f"{PREFIX}{os.getpid()}-abcdefgh"
    live_draft.write_bytes(b"being written")
    users = media / "notes.txt"
    users.write_text("mine")
    again = media_zip(tmp_path, {"IMG-2.jpg": b"second"})
    with Storage.open(str(place)) as store:
        ingest_export(store, again, tz=TZ)
    assert not orphan.exists() and not dead_draft.exists()
    assert live_draft.exists() and users.exists()
    assert kept <= folder_files(place)
    assert not list(media.glob(f"{JOURNAL}*"))


def test_a_file_another_database_took_up_is_not_swept(duck: Place, tmp_path: Path) -> None:
    """Two DuckDB files in one folder share its media folder: a file the other one found there
    and named (touching it) after a writer of this one died is not this one's to remove."""
    place = duck
    media = place.files / MEDIA_FOLDER
    shared = media / "cd" / ("cd" + "1" * 62 + ".jpg")
    shared.parent.mkdir(parents=True)
    shared.write_bytes(b"named by the other database")
    journal = media / f"{JOURNAL}{dead_pid()}-abcdefg2.json"
    journal.write_text(json.dumps({"files": ["cd/" + shared.name]}))
    os.utime(journal, (100, 100))  # the dead writer's journal, long before the file was taken up
    with Storage.open(str(place)) as store:
        assert MediaFiles.of(store).sweep() == 1  # the journal only
    assert shared.exists() and not journal.exists()


def test_an_ingest_killed_before_its_rows_leaves_nothing_after_the_next(
    duck: Place, tmp_path: Path
) -> None:
    """A real SIGKILL between the files and the rows that name them."""
    place = duck
    path = media_zip(tmp_path, {"IMG-1.jpg": b"first", "IMG-2.jpg": b"second"})
    child = f"""
import os, signal
from pathlib import Path
from egregora.storage import Storage
from egregora.etl import ingest_export
real = Storage.write
def write(self, name, *args, **kwargs):
    if name == "documents":
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, name, *args, **kwargs)
Storage.write = write
with Storage.open({str(place)!r}) as store:
    ingest_export(store, Path({str(path)!r}), tz="UTC")
"""
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr
    assert len(folder_files(place)) == 3  # two files and the journal
    with Storage.open(str(place)) as store:
        assert MediaFiles.of(store).sweep() == 3
    assert folder_files(place) == set()
