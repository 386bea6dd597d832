"""A media file's bytes and address, and the error a reader gets when bytes are missing.

A file is never held whole: ``MediaBytes`` knows its size and SHA-256 (read once, in chunks)
and reads its bytes again, chunk by chunk, where they are stored, checking on the way that they
are still the bytes it hashed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from egregora.errors import EgregoraError
from egregora.schema.tables.media import MEDIA_PART_BYTES

MEDIA_FOLDER = "media"  # the folder's name beside a database, and the first part of a path
IN_DATABASE = "database"  # ``extensions["stored"]`` of a document whose bytes are media_parts
Chunks = Callable[[], Iterator[bytes]]  # reads a file's bytes from the start, in chunks
CHUNK = 1 << 20  # bytes read at a time from a file in a media folder
# A suffix kept in a stored file's name: short, plain letters and digits. Anything else (a
# 300-character "suffix", a newline, a slash) would make a name some filesystem refuses.
_SAFE_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")


class MissingMediaError(EgregoraError):
    """A media document's bytes are not where the document says, or are not the bytes it names."""


class ChangedMediaError(EgregoraError):
    """A file's bytes changed between hashing them and storing them (its archive was replaced)."""

    exit_code = 2


@dataclass(frozen=True)
class MediaBytes:
    """One media file: its size, the suffix its name ends in, its SHA-256 (hex), and how to read
    its bytes again (``chunks``)."""

    size: int
    suffix: str
    digest: str
    source: Chunks = field(repr=False, compare=False)
    name: str = ""  # where the bytes come from, for errors

    @classmethod
    def of(cls, content: bytes, name: str) -> MediaBytes:
        """``content`` (in memory) of a file named ``name``."""
        return cls.streamed(lambda: iter((content,)), name)

    @classmethod
    def streamed(cls, source: Chunks, name: str) -> MediaBytes:
        """The file ``source`` reads, hashed in one pass of its chunks (never held whole)."""
        hashed = hashlib.sha256()
        size = 0
        for chunk in source():
            hashed.update(chunk)
            size += len(chunk)
        return cls(size, safe_suffix(name), hashed.hexdigest(), source, name)

    def chunks(self) -> Iterator[bytes]:
        """The bytes again, in chunks; raises ChangedMediaError at the end (before a caller
        keeps them) when they are not the bytes that were hashed."""
        hashed = hashlib.sha256()
        size = 0
        for chunk in self.source():
            hashed.update(chunk)
            size += len(chunk)
            yield chunk
        if size != self.size or hashed.hexdigest() != self.digest:
            raise ChangedMediaError(
                f"{self.name or 'a media file'} changed while it was being stored (its bytes "
                "are not the ones hashed a moment before): was the export replaced meanwhile? "
                "Ingest it again; nothing of that file was kept"
            )

    @property
    def content(self) -> bytes:
        """The whole file in memory: for small files and tests only."""
        return b"".join(self.chunks())

    @property
    def relative(self) -> str:
        """Where the file goes in a media folder: content-addressed, two digits a folder."""
        return f"{self.digest[:2]}/{self.digest}{self.suffix}"

    @property
    def part_count(self) -> int:
        return part_count(self.size)

    def parts(self) -> Iterator[tuple[int, bytes]]:
        """(position, bytes) of each ``MEDIA_PART_BYTES`` part, read as they are needed; an
        empty file is one empty part, so that a stored file always has a row that says so."""
        pending = bytearray()
        part = 0
        for chunk in self.chunks():
            pending += chunk
            while len(pending) >= MEDIA_PART_BYTES:
                yield part, bytes(pending[:MEDIA_PART_BYTES])
                del pending[:MEDIA_PART_BYTES]
                part += 1
        if pending or part == 0:
            yield part, bytes(pending)


def safe_suffix(name: str) -> str:
    """The suffix of ``name`` in lower case when it is plain (``.jpg``), else none."""
    suffix = PurePosixPath(name).suffix.lower() if name else ""
    return suffix if _SAFE_SUFFIX.fullmatch(suffix) else ""


def part_count(size: int) -> int:
    """How many parts a file of ``size`` bytes is cut into (at least one)."""
    return max(1, -(-size // MEDIA_PART_BYTES))
