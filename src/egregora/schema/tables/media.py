"""Media bytes kept in the database: each file cut into parts, addressed by its SHA-256.

Databases that several machines share keep media here instead of in a folder beside them
(``keeps_media_in_database``). A file is cut into parts of ``MEDIA_PART_BYTES`` so that no
single value nears PostgreSQL's 1 GB bytea limit or is fetched in one piece. Parts are keyed by
the file's digest, not by a document: the same bytes sent twice are stored once.
"""

from egregora.schema.model import Table, col
from egregora.schema.rules import Matches

MEDIA_PART_BYTES = 4 * 1024 * 1024  # 4 MiB: every part but a file's last holds exactly this

MEDIA_PARTS = Table(
    name="media_parts",
    description=(
        "A part of a media file's bytes, where the engine keeps media in the database; a "
        "file is its parts in order."
    ),
    columns=(
        col(
            "digest",
            "!string",
            "SHA-256 of the whole file as 64 lowercase hexadecimal digits (the media "
            "document's source_checksum).",
        ),
        col("part", "!int32", "Position of the part in the file, from 0.", min_value=0),
        col("content", "!binary", "The part's bytes: 4 MiB, or less for a file's last part."),
    ),
    primary_key=("digest", "part"),
    checks=(
        Matches(
            "media_parts_digest_sha256",
            "digest is a SHA-256: 64 lowercase hexadecimal digits",
            "digest",
            "[0-9a-f]{64}",
        ),
    ),
)
