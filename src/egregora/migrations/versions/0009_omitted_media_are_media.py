"""A media message whose file the export left out is still a media message: it is stored as
``kind = 'media'`` with ``media_omitted`` true and no file name, instead of a text message
without text (which counted every omitted photo as a message and no media). The omission moves
from ``attrs`` (``{"media_omitted": true}``, the only attribute ingest wrote) to its own column,
which the rule that a media message names its file can read.
"""

from egregora.migrations.model import AddColumns, ReplaceRule, UpdateRows
from egregora.schema.rules import RequiredWhen

ID = "0009"
DESCRIPTION = "omitted media are media messages, with media_omitted"
_BEFORE = RequiredWhen(
    "messages_media_has_filename",
    "a media message names its file",
    "kind",
    "media",
    ("media_filename",),
)
OPERATIONS = (
    AddColumns(
        "messages",
        ("media_omitted",),
        backfill={
            "media_omitted": "kind = 'text' AND text IS NULL AND media_filename IS NULL"
            " AND attrs IS NOT NULL"
        },
    ),
    ReplaceRule("messages", _BEFORE),
    UpdateRows(
        "messages",
        (("kind", "'media'"), ("attrs", "NULL")),
        where="media_omitted",
        why="omitted media become media messages",
    ),
)
