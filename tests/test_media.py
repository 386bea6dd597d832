"""Media bytes (``egregora.media``): in the database on PostgreSQL, beside the file on DuckDB.

Several machines share a PostgreSQL database and no folder, so there an export's media files go
into ``media_parts`` (cut into 4 MiB parts) and a site is written from the database alone; a
DuckDB file keeps its media in a content-addressed folder beside it, as it always has. Every
test runs on both engines; the bytes read back are compared with the bytes of the export.
"""

from __future__ import annotations

import hashlib
import json
import random
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from egregora.backends import DUCKDB, POSTGRES
from egregora.errors import ContractViolation
from egregora.etl import ingest_export
from egregora.media import (
    IN_DATABASE,
    MEDIA_PART_BYTES,
    MediaBytes,
    MediaFiles,
    MissingMediaError,
)
from egregora.runner import RunOptions, run_pipeline
from egregora.runner.publish import build_site
from egregora.runner.site import media_file
from egregora.storage import Storage
from tests.conftest import Place

FIXTURES = Path(__file__).parent / "fixtures" / "whatsapp"
TZ = "America/Sao_Paulo"
PHOTO = b"\xff\xd8\xff\xe0 a small photo"
VIDEO = random.Random(13).randbytes(9 * 1024 * 1024)  # three parts: 4, 4 and 1 MiB
PDF = b"%PDF-1.4 a recipe"
FILES = {"IMG-20240314-WA0001.jpg": PHOTO, "VID-20240314-WA0002.mp4": VIDEO, "Recipe.pdf": PDF}
Row = dict[str, Any]


def export_with_media(folder: Path) -> Path:
    """A WhatsApp zip whose chat sends a photo, a 9 MiB video and a PDF."""
    path = folder / "WhatsApp Chat with Family.zip"
    with zipfile.ZipFile(path, "w") as archive:
        chat = (FIXTURES / "attachments_android_en.txt").read_bytes()
        archive.writestr("WhatsApp Chat with Family.txt", chat)
        for name, content in FILES.items():
            archive.writestr(name, content)
    return path


@pytest.fixture
def store(place: Place) -> Iterator[Storage]:
    with Storage.open(str(place)) as opened:
        yield opened


def media_documents(store: Storage) -> list[Row]:
    documents = store.table("documents")
    query = documents.filter(documents.doc_type == "media").order_by("filename")
    found: list[Row] = store.to_pyarrow(query).to_pylist()
    return found


def parts(store: Storage) -> list[tuple[str, int, int]]:
    """(digest, part, length) of every stored part."""
    table = store.table("media_parts")
    rows = store.to_pyarrow(table.order_by(["digest", "part"])).to_pylist()
    return [(r["digest"], r["part"], len(r["content"])) for r in rows]


def files_in(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()}


def keeps_in_database(place: Place) -> bool:
    """What this test expects of the engine: PostgreSQL keeps media in the database."""
    return place.url.dialect == "postgres"


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


# -- where the bytes go -------------------------------------------------------------------------
def test_postgres_keeps_media_in_the_database_and_duckdb_beside_its_file() -> None:
    postgres, duckdb = POSTGRES.keeps_media_in_database, DUCKDB.keeps_media_in_database
    assert postgres and "no folder" in postgres.reason
    assert not duckdb and "large videos" in duckdb.reason


def test_an_ingest_keeps_media_where_the_engine_does_and_reads_them_back_whole(
    tmp_path: Path, place: Place, store: Storage
) -> None:
    result = ingest_export(store, export_with_media(tmp_path), tz=TZ)
    assert result.media_files_new == 3
    documents = media_documents(store)
    media = MediaFiles.of(store)
    assert {d["filename"]: media.read(d) for d in documents} == FILES
    extensions = {d["filename"]: json.loads(d["extensions"]) for d in documents}
    for doc in documents:
        content = FILES[doc["filename"]]
        assert doc["source_checksum"] == sha256(content)
        assert extensions[doc["filename"]]["size_bytes"] == len(content)
    if keeps_in_database(place):
        # No file anywhere: no files folder, nothing in the folder the test runs in but the
        # export itself.
        assert not place.files.exists()
        assert files_in(Path.cwd()) == {Path("WhatsApp Chat with Family.zip")}
        assert all(e["stored"] == IN_DATABASE and "path" not in e for e in extensions.values())
        video = sha256(VIDEO)
        assert parts(store) == sorted(
            [
                (sha256(PHOTO), 0, len(PHOTO)),
                (sha256(PDF), 0, len(PDF)),
                (video, 0, MEDIA_PART_BYTES),
                (video, 1, MEDIA_PART_BYTES),
                (video, 2, len(VIDEO) - 2 * MEDIA_PART_BYTES),
            ]
        )
    else:
        assert parts(store) == []
        for name, content in FILES.items():
            digest, suffix = sha256(content), Path(name).suffix
            assert extensions[name]["path"] == f"media/{digest[:2]}/{digest}{suffix}"
            assert "stored" not in extensions[name]
            assert (place.files / extensions[name]["path"]).read_bytes() == content
        assert len(files_in(place.files / "media")) == 3  # no drafts left behind


def test_ingesting_again_writes_no_part_and_no_file(
    tmp_path: Path, place: Place, store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    export = export_with_media(tmp_path)
    ingest_export(store, export, tz=TZ)
    stored, folder = parts(store), files_in(tmp_path)
    written: list[str] = []
    write = store.write

    def spying(name: str, data: Any, **kwargs: Any) -> int:
        written.append(name)
        return write(name, data, **kwargs)

    monkeypatch.setattr(store, "write", spying)
    again = ingest_export(store, export, tz=TZ)
    assert (again.new, again.media_files_new) == (0, 0)
    assert "media_parts" not in written
    assert parts(store) == stored and files_in(tmp_path) == folder
    assert {d["filename"]: MediaFiles.of(store).read(d) for d in media_documents(store)} == FILES


def test_the_same_bytes_under_two_names_are_stored_once(tmp_path: Path, store: Storage) -> None:
    path = tmp_path / "twice.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("chat.txt", (FIXTURES / "attachments_android_en.txt").read_bytes())
        archive.writestr("IMG-20240314-WA0001.jpg", VIDEO)
        archive.writestr("VID-20240314-WA0002.mp4", VIDEO)
    ingest_export(store, path, tz=TZ, thread="Family")
    documents = media_documents(store)
    assert len(documents) == 2 and {d["source_checksum"] for d in documents} == {sha256(VIDEO)}
    assert [MediaFiles.of(store).read(d) for d in documents] == [VIDEO, VIDEO]
    if store.engine.keeps_media_in_database:
        assert [p for _, p, _ in parts(store)] == [0, 1, 2]


# -- all or nothing ----------------------------------------------------------------------------
def test_a_failed_ingest_leaves_no_part_and_no_file(
    tmp_path: Path, place: Place, store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = store.write

    def refusing_documents(name: str, data: Any, **kwargs: Any) -> int:
        if name == "documents":
            raise RuntimeError("the documents could not be written")
        return write(name, data, **kwargs)

    monkeypatch.setattr(store, "write", refusing_documents)
    with pytest.raises(RuntimeError, match="could not be written"):
        ingest_export(store, export_with_media(tmp_path), tz=TZ)
    monkeypatch.undo()
    assert parts(store) == []
    assert not (place.files / "media").exists() or files_in(place.files / "media") == set()
    assert store.to_pyarrow(store.table("messages")).num_rows == 0


def test_staged_bytes_are_undone_with_the_block_that_fails(store: Storage) -> None:
    media = MediaFiles.of(store)
    file = MediaBytes.of(VIDEO, "clip.mp4")
    with pytest.raises(RuntimeError), media.stage([file]):
        raise RuntimeError("the rows naming the file failed")
    assert parts(store) == []
    assert media.folder is None or not (media.folder / file.relative).exists()
    with media.stage([file]):
        pass
    row: Row = {"id": "media-x", "filename": "clip.mp4", "source_checksum": file.digest}
    row["extensions"] = {"size_bytes": len(VIDEO), **media.extensions(file)}
    assert media.read(row) == VIDEO


def test_parts_work_on_both_engines_when_asked_for(store: Storage) -> None:
    """The table is in every engine's catalog; DuckDB just does not choose it by default."""
    media = MediaFiles(store, in_database=True, folder=None)
    files = [MediaBytes.of(VIDEO, "a.mp4"), MediaBytes.of(b"", "empty.txt")]
    with media.stage(files):
        pass
    with media.stage(files):  # whole already: nothing more
        pass
    assert parts(store) == sorted(
        [
            (files[0].digest, 0, MEDIA_PART_BYTES),
            (files[0].digest, 1, MEDIA_PART_BYTES),
            (files[0].digest, 2, len(VIDEO) - 2 * MEDIA_PART_BYTES),
            (files[1].digest, 0, 0),  # an empty file is one empty part
        ]
    )
    for file in files:
        row: Row = {"id": f"media-{file.suffix}", "source_checksum": file.digest}
        row["extensions"] = json.dumps({"stored": IN_DATABASE, "size_bytes": len(file.content)})
        assert media.read(row) == file.content


def test_a_digest_that_is_not_a_sha256_is_refused(store: Storage) -> None:
    for digest in ("A" * 64, "a" * 63, "a" * 64 + "\n", "g" * 64):
        with pytest.raises(ContractViolation, match="media_parts_digest_sha256"):
            store.write("media_parts", [{"digest": digest, "part": 0, "content": b"x"}])
    with pytest.raises(ContractViolation, match="media_parts_part_min"):
        store.write("media_parts", [{"digest": "a" * 64, "part": -1, "content": b"x"}])
    assert parts(store) == []


# -- bytes gone missing ------------------------------------------------------------------------
def video_document(store: Storage) -> Row:
    (row,) = [d for d in media_documents(store) if d["filename"].endswith(".mp4")]
    return row


def test_missing_bytes_are_a_clear_error_and_ingesting_again_restores_them(
    tmp_path: Path, place: Place, store: Storage
) -> None:
    export = export_with_media(tmp_path)
    ingest_export(store, export, tz=TZ)
    video = video_document(store)
    digest = video["source_checksum"]
    if keeps_in_database(place):
        store.update("DELETE FROM media_parts WHERE digest = ? AND part = ?", [digest, 1])
        expected = ("part(s) 1 of 3", digest, "ingest the export that holds the file again")
    else:
        path = json.loads(video["extensions"])["path"]
        (place.files / path).unlink()
        expected = ("is missing from", "restore that folder from a backup", "ingest the export")
    with pytest.raises(MissingMediaError) as caught:
        MediaFiles.of(store).read(video)
    message = str(caught.value)
    assert video["id"] in message and "VID-20240314-WA0002.mp4" in message
    assert all(words in message for words in expected) and "\n" not in message
    again = ingest_export(store, export, tz=TZ)
    assert again.media_files_new == 0  # no document is new; the lost bytes are back
    assert MediaFiles.of(store).read(video_document(store)) == VIDEO


def test_damaged_parts_are_refused_not_published(store: Storage) -> None:
    media = MediaFiles(store, in_database=True, folder=None)  # on either engine
    file = MediaBytes.of(VIDEO, "clip.mp4")
    with media.stage([file]):
        pass
    digest = file.digest
    video: Row = {"id": "media-clip", "filename": "clip.mp4", "source_checksum": digest}
    video["extensions"] = {"stored": IN_DATABASE, "size_bytes": len(VIDEO)}
    same_length = b"\x00" * MEDIA_PART_BYTES
    store.update(
        "UPDATE media_parts SET content = ? WHERE digest = ? AND part = ?",
        [same_length, digest, 0],
    )
    with pytest.raises(MissingMediaError, match="do not have the SHA-256 it records"):
        media.read(video)
    store.update(
        "UPDATE media_parts SET content = ? WHERE digest = ? AND part = ?", [b"short", digest, 0]
    )
    with pytest.raises(MissingMediaError, match=r"not the \d+ it records"):
        media.read(video)


# -- the site ------------------------------------------------------------------------------------
def test_the_site_holds_every_media_file_byte_for_byte(
    tmp_path: Path, place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    export = export_with_media(tmp_path)
    with Storage.open(str(place)) as store:
        run_pipeline(store, export, RunOptions(tz=TZ, site=tmp_path / "site"))
        documents = media_documents(store)
    assert len(documents) == 3

    def published(site: Path) -> dict[str, bytes]:
        return {
            d["filename"]: (site / "docs" / "media" / media_file(d)).read_bytes() for d in documents
        }

    assert published(tmp_path / "site") == FILES
    if keeps_in_database(place):
        # Another machine, in another folder: no media folder anywhere, the site comes from
        # the database alone.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        with Storage.open(str(place)) as store:
            run_pipeline(store, export, RunOptions(tz=TZ, site=elsewhere / "site"))
        assert published(elsewhere / "site") == FILES
        assert not (elsewhere / ".egregora").exists() and not place.files.exists()


def test_the_site_streams_media_and_reads_none_that_are_in_place(
    tmp_path: Path, place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A site's videos are copied a chunk at a time, and a site written again reads no media
    file whose bytes are already there (a chat's gigabytes of video are not read each run)."""
    export = export_with_media(tmp_path)
    site = tmp_path / "site"
    sizes: list[int] = []
    real = MediaFiles.chunks

    def counted(self: MediaFiles, row: Row) -> Iterator[bytes]:
        for chunk in real(self, row):
            sizes.append(len(chunk))
            yield chunk

    monkeypatch.setattr(MediaFiles, "chunks", counted)
    with Storage.open(str(place)) as store:
        run_pipeline(store, export, RunOptions(tz=TZ, site=site))
        assert sum(sizes) == sum(map(len, FILES.values()))
        assert max(sizes) <= MEDIA_PART_BYTES  # the 9 MiB video never in one piece
        sizes.clear()
        run_pipeline(store, export, RunOptions(tz=TZ, site=site))
    assert sizes == []


def test_damaged_bytes_never_reach_the_site(tmp_path: Path, place: Place) -> None:
    """Bytes that are not the ones a document records stop the site's write of that file
    before it is renamed into place: no damaged video is published, no draft is left."""
    export = export_with_media(tmp_path)
    site = tmp_path / "site"
    with Storage.open(str(place)) as store:
        run_pipeline(store, export, RunOptions(tz=TZ))  # planned, no site yet
        video = video_document(store)
        # (A run would restore them from its export: the site is built from the database.)
        if keeps_in_database(place):
            store.update(
                "UPDATE media_parts SET content = ? WHERE digest = ? AND part = ?",
                [b"\x01" * (1 << 20), video["source_checksum"], 2],  # same length, other bytes
            )
            expected = "do not have the SHA-256"
        else:
            (place.files / json.loads(video["extensions"])["path"]).unlink()
            expected = "is missing from"
        with pytest.raises(MissingMediaError, match=expected):
            build_site(store, site)
    published = site / "docs" / "media" / media_file(video)
    assert not published.exists()
    assert not [p for p in site.rglob(".draft-*")]
