"""The catalog: every table of the data layer, parents before the tables that reference them."""

from egregora.schema.model import Catalog
from egregora.schema.tables.assets import ASSET_CACHE
from egregora.schema.tables.content import ANNOTATIONS, DOCUMENTS, MESSAGES
from egregora.schema.tables.git import (
    GIT_COMMITS,
    GIT_DIRECTORY_CHANGES,
    GIT_FOLLOW_SOURCES,
    GIT_LOOKUP_CACHE,
    GIT_REFS,
    GIT_REPOS,
)
from egregora.schema.tables.keys import PSEUDONYM_KEYS
from egregora.schema.tables.ledger import SCHEMA_MIGRATIONS
from egregora.schema.tables.media import MEDIA_PARTS
from egregora.schema.tables.runs import RUNS, TASKS

CATALOG = Catalog(
    (
        SCHEMA_MIGRATIONS,
        RUNS,
        DOCUMENTS,
        MESSAGES,
        ANNOTATIONS,
        MEDIA_PARTS,
        TASKS,
        GIT_REPOS,
        GIT_COMMITS,
        GIT_REFS,
        GIT_LOOKUP_CACHE,
        GIT_DIRECTORY_CHANGES,
        GIT_FOLLOW_SOURCES,
        ASSET_CACHE,
        PSEUDONYM_KEYS,
    )
)
