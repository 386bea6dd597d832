"""Media files' bytes: kept in the database or in a folder beside it, read back by document.

Where new bytes go is the engine's choice (``keeps_media_in_database``). PostgreSQL keeps them
in ``media_parts``, cut into parts, so every machine sharing the database reaches them through
its URL alone. A DuckDB file keeps them in a content-addressed folder beside it
(``media/ab/<sha256><suffix>``), which a user can back up, browse or serve as it is, and which
large videos do not bloat. A media document records which: ``"stored": "database"``, or the
file's ``"path"`` in its extensions; its ``source_checksum`` is the file's SHA-256 either way.

Layer: a service on storage (imports schema, storage and errors); the ETL writes through it,
the runner reads through it.
"""

from egregora.media.files import MediaFiles
from egregora.media.model import (
    IN_DATABASE,
    MEDIA_FOLDER,
    MediaBytes,
    MissingMediaError,
    part_count,
)
from egregora.schema.tables.media import MEDIA_PART_BYTES

__all__ = [
    "IN_DATABASE",
    "MEDIA_FOLDER",
    "MEDIA_PART_BYTES",
    "MediaBytes",
    "MediaFiles",
    "MissingMediaError",
    "part_count",
]
