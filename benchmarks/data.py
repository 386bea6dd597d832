"""Valid ``documents`` rows, generated vectorised by one DuckDB query over ``range()``.

The query text is a constant; the row count and every value list it draws from (doc types,
statuses, media types, run ids) are bound parameters taken from the catalog's declarations.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pyarrow as pa
from sqlglot import exp

from egregora.ddl.render import ident, table_ref
from egregora.schema.catalog import CATALOG
from egregora.schema.tables.content import DOC_TYPES, MEDIA_TYPES, POST_STATUSES
from egregora.storage.store import Storage

DOCUMENTS = CATALOG["documents"]
RUNS = CATALOG["runs"]

# The runs every generated document may name in created_by_run (a fifth of documents name none).
RUN_IDS: tuple[str, ...] = tuple(f"bench-run-{k}" for k in range(4))
RUNS_STARTED_AT = datetime(2026, 1, 1, tzinfo=UTC)
# created_at of the first generated document; the next ones follow a second apart.
DOCUMENTS_START = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)

# A MIME type per media type, in MEDIA_TYPES order.
_MIME_TYPES = ("image/jpeg", "video/mp4", "audio/ogg", "application/pdf")

# One row per i in range($rows); k = i % 4 picks the doc type, so the four kinds are equally many.
# Every branch fills exactly what documents' rules require of its kind:
#   post    title, slug (unique per doc_type), status       profile  title, subject_uuid
#   journal title, window_signature, window_start < window_end
#   media   filename, media_type
# and updated_at is NULL or not before created_at.
_DOCUMENTS_QUERY = """
WITH base AS (
    SELECT
        i,
        i % 4 AS k,
        i // 4 AS j,
        $epoch + i AS s
    FROM range($rows) AS r(i)
)
SELECT
    md5('doc-' || i) AS "id",
    list_extract($doc_types::VARCHAR[], k + 1) AS "doc_type",
    to_timestamp(s) AS "created_at",
    CASE WHEN i % 3 <> 0 THEN to_timestamp(s + 60 * (i % 600)) END AS "updated_at",
    CASE WHEN k < 3 THEN 'Document number ' || i END AS "title",
    CASE WHEN k = 0 THEN 'post-' || j END AS "slug",
    CASE WHEN k = 0 THEN
        list_extract($post_statuses::VARCHAR[], j % len($post_statuses::VARCHAR[]) + 1)
    END AS "status",
    'Body of document ' || i || ': ' || repeat('lorem ipsum ', 1 + i % 16) AS "content",
    CASE WHEN k IN (0, 2) THEN 'Summary of document ' || i END AS "summary",
    CASE WHEN k = 0 THEN DATE '1970-01-01' + CAST(s // 86400 AS INTEGER) END AS "date",
    CASE WHEN k = 0 THEN ['author-' || (i % 97), 'author-' || (i % 89)] END AS "authors",
    CASE WHEN k = 0 THEN ['tag-' || (i % 13)] END AS "tags",
    CASE WHEN k = 1 THEN md5('subject-' || j) END AS "subject_uuid",
    CASE WHEN k = 3 THEN 'media-' || j || '.bin' END AS "filename",
    CASE WHEN k = 3 THEN
        list_extract($mime_types::VARCHAR[], j % len($mime_types::VARCHAR[]) + 1)
    END AS "mime_type",
    CASE WHEN k = 3 THEN
        list_extract($media_types::VARCHAR[], j % len($media_types::VARCHAR[]) + 1)
    END AS "media_type",
    CASE WHEN k = 2 THEN to_timestamp(s - 86400) END AS "window_start",
    CASE WHEN k = 2 THEN to_timestamp(s - 86400 + 3600) END AS "window_end",
    CASE WHEN k = 2 THEN md5('window-' || j) END AS "window_signature",
    md5('source-' || i) AS "source_checksum",
    CASE WHEN i % 2 = 0 THEN json_object('n', i, 'kind', k) END AS "extensions",
    CASE WHEN i % 5 <> 0 THEN
        list_extract($run_ids::VARCHAR[], i % len($run_ids::VARCHAR[]) + 1)
    END AS "created_by_run"
FROM base
"""


def documents_arrow(rows: int) -> pa.Table:
    """``rows`` valid documents rows, columns in the catalog's order (JSON travels as text)."""
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        params = {
            "rows": rows,
            "epoch": int(DOCUMENTS_START.timestamp()),
            "doc_types": list(DOC_TYPES),
            "post_statuses": list(POST_STATUSES),
            "media_types": list(MEDIA_TYPES),
            "mime_types": list(_MIME_TYPES),
            "run_ids": list(RUN_IDS),
        }
        table: pa.Table = con.execute(_DOCUMENTS_QUERY, params).to_arrow_table()
    finally:
        con.close()
    if tuple(table.column_names) != DOCUMENTS.column_names:
        raise RuntimeError(f"generated columns {table.column_names} are not documents' columns")
    if table.num_rows != rows:
        raise RuntimeError(f"generated {table.num_rows} rows, wanted {rows}")
    return table


def _insert(target: str, columns: tuple[str, ...], rows: exp.Expression) -> exp.Insert:
    into = exp.Schema(this=table_ref(target), expressions=[ident(c) for c in columns])
    return exp.Insert(this=into, expression=rows)


def insert_from(target: str, source: str, columns: tuple[str, ...]) -> str:
    """``INSERT INTO "target" ("a", ...) SELECT "a", ... FROM "source"``, quoted by sqlglot."""
    select = exp.select(*[exp.column(c, quoted=True) for c in columns]).from_(table_ref(source))
    return _insert(target, columns, select).sql(dialect="duckdb")


def runs_arrow() -> pa.Table:
    """The runs that generated documents and messages refer to, as ``runs`` rows."""
    n = len(RUN_IDS)
    return pa.table(
        {
            "run_id": pa.array(RUN_IDS, pa.string()),
            "stage": pa.array(["write"] * n, pa.string()),
            "status": pa.array(["succeeded"] * n, pa.string()),
            "started_at": pa.array([RUNS_STARTED_AT] * n, pa.timestamp("us", tz="UTC")),
        }
    )


def load_runs(store: Storage) -> None:
    """Insert those runs into ``store`` by its engine's bulk path (either engine)."""
    store.engine.load(store.con, RUNS.name, runs_arrow())


def insert_runs(con: duckdb.DuckDBPyConnection) -> None:
    """Insert the runs that generated documents refer to, with bound parameters."""
    columns = ("run_id", "stage", "status", "started_at")
    values = exp.Values(expressions=[exp.Tuple(expressions=[exp.Placeholder() for _ in columns])])
    statement = _insert(RUNS.name, columns, values)
    con.executemany(
        statement.sql(dialect="duckdb"),
        [[run_id, "write", "succeeded", RUNS_STARTED_AT] for run_id in RUN_IDS],
    )
