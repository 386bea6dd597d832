"""A media file's bytes and address, and the error a reader gets when bytes are missing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from egregora.errors import EgregoraError
from egregora.schema.tables.media import MEDIA_PART_BYTES

MEDIA_FOLDER = "media"  # the folder's name beside a database, and the first part of a path
IN_DATABASE = "database"  # ``extensions["stored"]`` of a document whose bytes are media_parts


class MissingMediaError(EgregoraError):
    """A media document's bytes are not where the document says, or are not the bytes it names."""


@dataclass(frozen=True)
class MediaBytes:
    """One media file: its bytes, the suffix its name ends in, and its SHA-256 (hex)."""

    content: bytes
    suffix: str
    digest: str

    @classmethod
    def of(cls, content: bytes, name: str) -> MediaBytes:
        """``content`` of a file named ``name`` (the suffix only is kept, in lower case)."""
        digest = hashlib.sha256(content).hexdigest()
        return cls(content, PurePosixPath(name).suffix.lower(), digest)

    @property
    def relative(self) -> str:
        """Where the file goes in a media folder: content-addressed, two digits a folder."""
        return f"{self.digest[:2]}/{self.digest}{self.suffix}"

    @property
    def part_count(self) -> int:
        return part_count(len(self.content))

    def parts(self) -> Iterator[tuple[int, bytes]]:
        """(position, bytes) of each part; an empty file is one empty part, so that a stored
        file always has a row that says so."""
        for part in range(self.part_count):
            start = part * MEDIA_PART_BYTES
            yield part, self.content[start : start + MEDIA_PART_BYTES]


def part_count(size: int) -> int:
    """How many parts a file of ``size`` bytes is cut into (at least one)."""
    return max(1, -(-size // MEDIA_PART_BYTES))
