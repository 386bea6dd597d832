"""MediaFiles: where a database keeps its media bytes, the way in (``stage``) and out (``read``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from egregora.errors import ConfigurationError
from egregora.media import parts
from egregora.media.folder import store_files, sweep
from egregora.media.model import (
    CHUNK,
    IN_DATABASE,
    MEDIA_FOLDER,
    MediaBytes,
    MissingMediaError,
    part_count,
)
from egregora.storage.store import Storage


class MediaFiles:
    """A database's media bytes: in ``media_parts`` when its engine keeps media in the
    database, else in a content-addressed folder. Made by ``MediaFiles.of``."""

    def __init__(self, store: Storage, *, in_database: bool, folder: Path | None) -> None:
        self.store = store
        self.in_database = in_database  # where new bytes go
        self.folder = folder  # where bytes kept in a folder are (None: no folder)

    @classmethod
    def of(
        cls, store: Storage, media_dir: Path | None = None, *, writing: bool = False
    ) -> MediaFiles:
        """Where ``store`` keeps media bytes.

        In the database when its engine keeps media there (``keeps_media_in_database``),
        whatever ``media_dir`` says: several machines share such a database and no folder.
        Otherwise in the folder ``media_dir``, by default ``media/`` in the database's files
        folder (beside a DuckDB file). On a database that keeps media itself the folder is only
        read, for documents stored in a folder before (they record a ``path``).

        A folder that is needed and missing (an in-memory database without ``media_dir``) is
        a ConfigurationError: at once when ``writing`` (an ingest refuses before it writes
        anything), else when a document kept in a folder is read.
        """
        in_database = bool(store.engine.keeps_media_in_database)
        folder = media_dir
        if folder is None and store.url.files_folder is not None:
            folder = store.url.files_folder / MEDIA_FOLDER
        files = cls(store, in_database=in_database, folder=folder)
        if writing and not in_database:
            files._folder()
        return files

    # -- writing ------------------------------------------------------------------------------
    def extensions(self, file: MediaBytes) -> dict[str, str]:
        """What a media document records (in its extensions) of where ``file``'s bytes are:
        ``stored: database`` (found by the document's digest), or the file's ``path`` under
        the media folder's parent, ``media/ab/<sha256><suffix>``."""
        if self.in_database:
            return {"stored": IN_DATABASE}
        return {"path": f"{MEDIA_FOLDER}/{file.relative}"}

    @contextmanager
    def stage(self, files: Sequence[MediaBytes]) -> Iterator[None]:
        """Keep ``files`` for the rows written inside the block, all or nothing with them.

        In the database, the parts not stored yet are written in a transaction that the
        block's writes join (a ``store.transaction()`` inside nests into it), so a failure
        anywhere rolls parts and rows back together. In a folder, the files not there yet are
        written first and removed again when the block fails (its transaction's commit
        included), so no row names a missing file and no new file is left that no row names.
        """
        if self.in_database:
            with self.store.transaction():
                parts.write_parts(self.store, files)
                yield
            return
        stored = store_files(self._folder(), files)
        try:
            yield
        except BaseException:
            stored.undo()
            raise
        stored.done()

    def sweep(self) -> int:
        """Remove from the media folder what an ingest killed half-way left (files no document
        names, drafts); return how many files went. Only where new bytes go to a folder, by a
        caller holding the database for writing (a DuckDB file: no other writer meanwhile)."""
        if self.in_database or self.folder is None:
            return 0
        return len(sweep(self.folder, self._named))

    def _named(self) -> set[str]:
        """Every file a media document names, as ``ab/<name>`` under the media folder."""
        documents = self.store.table("documents")
        rows = self.store.to_pyarrow(
            documents.filter(documents.doc_type == "media").select("extensions")
        )
        named = set()
        for text in rows["extensions"].to_pylist():
            path = self._path(_extensions({"extensions": text}).get("path"), Path())
            if path is not None:
                named.add(path.as_posix())
        return named

    def missing(self, rows: Iterable[Mapping[str, Any]]) -> set[str]:
        """The ids of the media documents among ``rows`` whose bytes are not whole where they
        say and would be written there by ``stage`` (the database's, or this folder's), so
        that ingesting their export again restores them."""
        rows = list(rows)
        if not self.in_database:
            return {
                str(row["id"])
                for row in rows
                if _kept_in_folder(row) and not self._is_file(_extensions(row).get("path"))
            }
        sizes: dict[str, tuple[str, int]] = {}
        for row in rows:
            ext = _extensions(row)
            digest, size = row.get("source_checksum"), ext.get("size_bytes")
            if ext.get("stored") == IN_DATABASE and isinstance(digest, str):
                sizes[str(row["id"])] = (digest, size if isinstance(size, int) else -1)
        stored = parts.stored_parts(self.store, (digest for digest, _ in sizes.values()))
        return {
            doc_id
            for doc_id, (digest, size) in sizes.items()
            if not parts.is_whole(stored.get(digest, {}), size)
        }

    # -- reading ------------------------------------------------------------------------------
    def read(self, row: Mapping[str, Any]) -> bytes:
        """The whole file of the media document ``row``: see ``chunks``."""
        return b"".join(self.chunks(row))

    def chunks(self, row: Mapping[str, Any]) -> Iterator[bytes]:
        """The bytes of the media document ``row`` (with its ``id``, ``filename``,
        ``source_checksum`` and ``extensions``), a chunk at a time, from wherever the document
        says they are: a file is never held whole.

        A missing file or part raises MissingMediaError naming the document and the fix before
        the first chunk; bytes from the database are checked against the document's size and
        SHA-256 as they pass, and a mismatch raises after the last chunk, before a caller that
        writes them somewhere (a draft renamed into place) keeps them.
        """
        ext = _extensions(row)
        named = f"media document {row['id']} ({row.get('filename')})"
        if ext.get("stored") == IN_DATABASE:
            yield from self._part_chunks(row, ext, named)
            return
        path = self._path(ext.get("path"), self._folder())
        if path is None or not path.is_file():
            # Only a folder that new bytes go to is refilled by ingesting again.
            again = "" if self.in_database else ", or ingest the export that holds it again"
            raise MissingMediaError(
                f"the file of {named} is missing from {self.folder}; restore that folder from "
                f"a backup{again}"
            )
        with path.open("rb") as file:
            while chunk := file.read(CHUNK):
                yield chunk

    def _part_chunks(
        self, row: Mapping[str, Any], ext: Mapping[str, Any], named: str
    ) -> Iterator[bytes]:
        digest, size = row.get("source_checksum"), ext.get("size_bytes")
        if not isinstance(digest, str) or not isinstance(size, int):
            raise MissingMediaError(
                f"{named} says its bytes are in the database but names no digest and size "
                "(source_checksum, extensions.size_bytes); ingest its export into a new database"
            )
        count = part_count(size)
        missing = parts.missing_parts(self.store, digest, count)
        if missing:
            shown = ", ".join(map(str, missing[:5])) + (" and more" if len(missing) > 5 else "")
            raise MissingMediaError(
                f"the bytes of {named} are missing from the database: part(s) {shown} of "
                f"{count} of digest {digest} in media_parts; ingest the export that holds the "
                "file again, which stores the missing parts"
            )
        hashed, length = hashlib.sha256(), 0
        for chunk in parts.stream_parts(self.store, digest, count):
            hashed.update(chunk)
            length += len(chunk)
            yield chunk
        if length != size:
            raise MissingMediaError(
                f"the bytes of {named} in the database are {length} bytes, not the "
                f"{size} it records (media_parts, digest {digest}); ingest the export that "
                "holds the file again, which rewrites the parts"
            )
        if hashed.hexdigest() != digest:
            raise MissingMediaError(
                f"the bytes of {named} in the database do not have the SHA-256 it records "
                f"({digest}): media_parts was changed outside egregora; restore the database "
                "from a backup"
            )

    # -- the folder ---------------------------------------------------------------------------
    def _folder(self) -> Path:
        if self.folder is None:
            raise ConfigurationError(
                "this database has no folder to keep media files beside it; pass media_dir"
            )
        return self.folder

    @staticmethod
    def _path(relative: object, folder: Path) -> Path | None:
        """The file a document's ``path`` (``media/ab/<name>``) names in ``folder``, whatever
        the folder is called; None for a path that names no file of a media folder."""
        if not isinstance(relative, str):
            return None
        names = PurePosixPath(relative).parts
        if len(names) != 3 or names[0] != MEDIA_FOLDER or ".." in names:
            return None
        return folder / names[1] / names[2]

    def _is_file(self, relative: object) -> bool:
        path = self._path(relative, self._folder())
        return path is not None and path.is_file()


def _extensions(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """A document's extensions, as stored (JSON text) or as read (a mapping)."""
    value = row.get("extensions")
    if isinstance(value, str):
        value = json.loads(value or "{}")
    return value if isinstance(value, Mapping) else {}


def _kept_in_folder(row: Mapping[str, Any]) -> bool:
    ext = _extensions(row)
    return ext.get("stored") != IN_DATABASE and isinstance(ext.get("path"), str)
