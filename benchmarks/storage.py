"""Storage cases: a validated ``store.write`` and a typed ``store.documents`` query.

Both run through ``Storage`` on databases migrated to head (``databases.py``: DuckDB files, or
databases on the PostgreSQL server ``--db`` names), against plain SQL on the same database.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime

import duckdb
import ibis
import ibis.expr.types as ir
import pyarrow as pa
import sqlglot
from sqlglot import exp

from benchmarks.data import DOCUMENTS, RUN_IDS, load_runs
from benchmarks.databases import Databases
from benchmarks.harness import Benchmark, require, timed
from egregora.ddl import statements as sql
from egregora.schema.catalog import CATALOG
from egregora.schema.tables.content import MEDIA_TYPES, MESSAGE_KINDS
from egregora.storage.store import Storage

MESSAGES = CATALOG["messages"]

# The three kinds of message; each fills what messages' rules require of it.
TEXT, MEDIA, SYSTEM = "text", "media", "system"
# Threads the generated messages spread over (round robin), and the sources they come from.
THREADS = 1_000
MESSAGE_SOURCES = ("whatsapp", "signal")
MESSAGES_START = datetime(2026, 1, 2, 8, 0, tzinfo=UTC)
INGESTED_AT = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)

# One row per i in range($rows). Thread t = i % $threads and seq = i // $threads, so
# (source, thread_id, seq) is unique (a thread has one source); event ids are MD5 hex strings.
# 1 in 20 rows is a system notice (no author), 1 in 5 a media message (with a file name and a
# media type), the rest text; 4 in 5 rows name one of the runs load_runs creates.
_MESSAGES_QUERY = """
WITH base AS (
    SELECT
        i,
        i % $threads AS t,
        i // $threads AS q,
        CASE WHEN i % 20 = 0 THEN $system WHEN i % 5 = 1 THEN $media ELSE $text END AS kind
    FROM range($rows) AS r(i)
)
SELECT
    md5('message-' || i) AS "event_id",
    list_extract($sources::VARCHAR[], t % len($sources::VARCHAR[]) + 1) AS "source",
    'thread-' || t AS "thread_id",
    q AS "seq",
    to_timestamp($epoch + 7 * i) AS "ts",
    kind AS "kind",
    CASE WHEN kind <> $system THEN 'Member ' || (i % 211) END AS "author_raw",
    CASE WHEN kind <> $system THEN md5('author-' || (i % 211)) END AS "author_uuid",
    CASE
        WHEN kind = $text THEN 'Message ' || i || ': ' || repeat('hello there ', 1 + i % 12)
        WHEN kind = $system THEN 'Member ' || (i % 211) || ' joined the group'
    END AS "text",
    CASE WHEN kind = $media THEN 'IMG-' || i || '.jpg' END AS "media_filename",
    CASE WHEN kind = $media THEN
        list_extract($media_types::VARCHAR[], q % len($media_types::VARCHAR[]) + 1)
    END AS "media_type",
    FALSE AS "media_omitted",
    CASE WHEN i % 3 = 0 THEN json_object('line', i, 'edited', i % 2 = 0)::VARCHAR END AS "attrs",
    $ingested_at::TIMESTAMPTZ AS "ingested_at",
    CASE WHEN i % 5 <> 0 THEN
        list_extract($run_ids::VARCHAR[], i % len($run_ids::VARCHAR[]) + 1)
    END AS "created_by_run"
FROM base
"""

# The author the query case asks about; generated posts name 'author-' || (i % 97) and
# 'author-' || (i % 89), so every such author has posts.
AUTHOR = "author-7"
# The hand-written baseline of posts_by_author(author).count(): a constant, the author bound
# (in DuckDB's dialect; the engine translates it). The parameter's type is written out because
# PostgreSQL's translation tests it for NULL first, and a server cannot type a bare ``$1 IS NULL``.
_POSTS_BY_AUTHOR_SQL = (
    "SELECT count(*) FROM documents WHERE doc_type = 'post' "
    "AND list_contains(authors, CAST(? AS VARCHAR))"
)


def messages_arrow(rows: int) -> pa.Table:
    """``rows`` valid messages rows, columns in the catalog's order (JSON travels as text)."""
    require({TEXT, MEDIA, SYSTEM} == set(MESSAGE_KINDS), f"message kinds are now {MESSAGE_KINDS}")
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        params = {
            "rows": rows,
            "threads": THREADS,
            "epoch": int(MESSAGES_START.timestamp()),
            "text": TEXT,
            "media": MEDIA,
            "system": SYSTEM,
            "sources": list(MESSAGE_SOURCES),
            "media_types": list(MEDIA_TYPES),
            "ingested_at": INGESTED_AT,
            "run_ids": list(RUN_IDS),
        }
        table: pa.Table = con.execute(_MESSAGES_QUERY, params).to_arrow_table()
    finally:
        con.close()
    require(
        tuple(table.column_names) == MESSAGES.column_names,
        f"generated columns {table.column_names} are not messages' columns",
    )
    require(table.num_rows == rows, f"generated {table.num_rows} rows, wanted {rows}")
    return table


def _count(store: Storage, table: str) -> int:
    return int(store.query(sql.count_rows(table, "duckdb"))[0][0])


def _placeholders(statement: str, dialect: str) -> int:
    """How many parameters ``statement`` binds: PostgreSQL's translation of ``list_contains``
    (a NULL-safe CASE) names the one value twice, so it is bound once per placeholder."""
    return len(list(sqlglot.parse_one(statement, read=dialect).find_all(exp.Placeholder)))


class WriteMessagesValidated(Benchmark):
    """``store.write("messages", arrow)`` against an unvalidated INSERT of the same Arrow rows."""

    name = "write_messages_validated"
    baseline = "insert_messages_unvalidated"
    base_note = (
        "A fresh {db} per repetition, migrated to head, with the four benchmark runs; the same "
        "generated Arrow table of valid messages (text/media/system, unique (source, "
        "thread_id, seq), 4 in 5 naming a run). Case: store.write('messages', arrow) "
        "(append): stage with the catalog's types (DuckDB: a temporary view over the Arrow "
        "data; PostgreSQL: cast in a private in-memory DuckDB, then COPY into a temporary "
        "table), the pandera contract with the foreign key checked against runs, keys against "
        "stored rows, then INSERT ... SELECT in one transaction. Baseline: the engine's plain "
        "bulk load of the same rows into messages, autocommitted (DuckDB: one INSERT INTO "
        "messages SELECT ... FROM the registered Arrow table; PostgreSQL: one COPY messages "
        "FROM STDIN), so the database still enforces its NOT NULL, CHECK, key and foreign key "
        "constraints. Only the write is timed; the rows are counted after each. Goal: ratio "
        "<= 1.25."
    )

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        super().__init__(data.num_rows)
        self.dbs = databases
        self.engine = databases.engine
        self.note = self.base_note.format(db=databases.described)
        self.data: pa.Table | None = None

    def prepare(self) -> None:
        self.data = messages_arrow(self.rows)
        # The rows must pass the contract (write raises ContractViolation otherwise) and land in
        # the table; this also warms the engine and the contract up. Each repetition re-counts.
        self.time_case()

    def _written(self, store: Storage, written: int) -> None:
        count = _count(store, MESSAGES.name)
        require(
            written == count == self.rows,
            f"wrote {written} rows, messages holds {count}, wanted {self.rows}",
        )

    def time_case(self) -> float:
        data = self.data
        assert data is not None
        with self.dbs.migrated() as store:
            load_runs(store)
            written: list[int] = []
            seconds = timed(lambda: written.append(store.write(MESSAGES.name, data)))
            self._written(store, written[0])
        return seconds

    def time_baseline(self) -> float:
        data = self.data
        assert data is not None
        with self.dbs.migrated() as store:
            load_runs(store)
            engine, con = store.engine, store.con
            seconds = timed(lambda: engine.load(con, MESSAGES.name, data))
            self._written(store, self.rows)
        return seconds

    def close(self) -> None:
        self.data = None


class DocumentsPostsByAuthor(Benchmark):
    """``store.documents.posts_by_author(a).count()`` against the same count in plain SQL."""

    name = "documents_posts_by_author"
    baseline = "hand_written_sql"
    base_note = (
        "One {db} migrated to head, holding the generated documents (a quarter posts, each "
        "naming two authors) loaded in bulk, untimed. "
        f"Case: store.execute(store.documents.posts_by_author({AUTHOR!r}).count()), building "
        "the Ibis expression (a table lookup) and running it. Baseline: "
        f"{_POSTS_BY_AUTHOR_SQL!r} with the author bound (translated by the engine: "
        "{baseline_sql!r}), run on the driver's connection and fetched. Both give the same "
        "count. Extras: prebuilt_expr runs an expression built once through store.execute; "
        "compiled_sql runs ibis.to_sql(expr) directly on the connection."
    )

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        super().__init__(data.num_rows)
        self.data = data
        self.dbs = databases
        self.engine = databases.engine
        self.note = self.base_note.format(db=databases.described, baseline_sql="")
        self._open = ExitStack()
        self.store: Storage | None = None
        self.expr: ir.IntegerScalar | None = None
        self.compiled = ""
        self.baseline_sql = ""
        self.params: list[str] = []
        self.plan = ""
        self.expected = -1

    def prepare(self) -> None:
        store = self.store = self._open.enter_context(self.dbs.migrated())
        load_runs(store)
        store.engine.load(store.con, DOCUMENTS.name, self.data)
        require(_count(store, DOCUMENTS.name) == self.rows, "not every document was inserted")

        self.baseline_sql = store.engine.translate(_POSTS_BY_AUTHOR_SQL)
        self.params = [AUTHOR] * _placeholders(self.baseline_sql, store.dialect)
        self.expr = store.documents.posts_by_author(AUTHOR).count()
        self.compiled = str(ibis.to_sql(self.expr))
        self.plan = self.dbs.explain(store, self.compiled)
        case, base, compiled = self._typed(), self._hand_written(), self._compiled_sql()
        require(base > 0, f"no post names {AUTHOR!r}; the case would measure an empty answer")
        require(
            case == base == compiled,
            f"typed query counts {case}, compiled SQL {compiled}, hand-written SQL {base}",
        )
        self.expected = base
        scan = self.dbs.scan_kind(self.plan)
        note = self.base_note.format(db=self.dbs.described, baseline_sql=self.baseline_sql)
        self.note = (
            f"{note} Count: {base} posts by {AUTHOR!r}. The compiled query reads documents by "
            f"{scan}.\nCompiled SQL:\n{self.compiled}\n{self.engine} plan:\n{self.plan}"
        )
        print(
            f"  {self.name}: {base:,} posts by {AUTHOR!r}; the compiled Ibis query is a "
            f"{scan} (is sequential scan: {scan == 'sequential scan'})\n{self.plan}",
            file=sys.stderr,
        )

    def _typed(self) -> int:
        store = self.store
        assert store is not None
        return int(store.execute(store.documents.posts_by_author(AUTHOR).count()))

    def _prebuilt(self) -> int:
        assert self.store is not None and self.expr is not None
        return int(self.store.execute(self.expr))

    def _hand_written(self) -> int:
        store = self.store
        assert store is not None
        return int(store.engine.run(store.con, self.baseline_sql, self.params)[0][0])

    def _compiled_sql(self) -> int:
        store = self.store
        assert store is not None
        return int(store.engine.run(store.con, self.compiled)[0][0])

    def _timed_count(self, query: Callable[[], int], what: str) -> float:
        """Seconds ``query`` takes; its answer must be the count found in ``prepare``."""
        answers: list[int] = []
        seconds = timed(lambda: answers.append(query()))
        require(answers == [self.expected], f"{what} counts {answers}, wanted {self.expected}")
        return seconds

    def time_case(self) -> float:
        return self._timed_count(self._typed, "the typed query")

    def time_baseline(self) -> float:
        return self._timed_count(self._hand_written, "the hand-written SQL")

    def time_extras(self) -> dict[str, float]:
        return {
            "prebuilt_expr": self._timed_count(self._prebuilt, "the prebuilt expression"),
            "compiled_sql": self._timed_count(self._compiled_sql, "the compiled SQL"),
        }

    def close(self) -> None:
        self.store = self.expr = None
        self._open.close()
