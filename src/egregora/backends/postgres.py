"""PostgreSQL, where several processes and machines write one database at once.

Connecting through psycopg 3, the migrations' connection, the migration lock (a session-level
advisory lock), reading the live schema from ``pg_catalog``, and the catalog as this server
stores it: made as temporary tables inside a savepoint that is rolled back, so it needs no
privilege beyond TEMP (which every role has by default) and leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from egregora.backends.base import Backend, Capability, Executor

if TYPE_CHECKING:
    from ibis.backends import BaseBackend
from egregora.backends.url import DatabaseURL
from egregora.ddl.introspect import LiveColumn, LiveConstraint, LiveIndex, LiveSchema, LiveTable
from egregora.ddl.render import Dialect, catalog_statements
from egregora.errors import ConfigurationError, DatabaseError, DatabaseLockedError
from egregora.schema.model import Catalog

# How long a connection may take before it is given up (seconds; see ``connect_timeout``).
CONNECT_TIMEOUT = 10.0
TIMEOUT_VAR = "EGREGORA_CONNECT_TIMEOUT"

# How long one statement may run before the server cancels it (seconds; see
# ``statement_timeout``). Generous on purpose: one statement of a migration may copy a table
# of millions of rows aside and back, or check a new rule over all of them, which takes
# minutes on a large database, and a migration cut short is rolled back and starts over. A
# statement past 15 minutes waits on something that will not come (a lock a forgotten
# session holds, a stalled server): better one line than a command that never ends.
STATEMENT_TIMEOUT = 15 * 60.0
STATEMENT_TIMEOUT_VAR = "EGREGORA_STATEMENT_TIMEOUT"

# libpq's TCP settings, so a server that stops answering in the middle of a statement (the
# network gone) is given up instead of waited for forever: after 10 s of silence the client
# probes every 5 s, and the connection is dropped once 30 s pass with nothing acknowledged
# (tcp_user_timeout, which also bounds data sent and never acknowledged). A slow statement on
# a live server is not cut short: the server's machine answers the probes. The URL's own
# values win (libpq's names: keepalives_idle=SECONDS, tcp_user_timeout=MILLISECONDS, ...).
NETWORK_SETTINGS = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "4",
    "tcp_user_timeout": "30000",
}

# The advisory lock egregora's migrations take: this class, and the schema's name hashed, so
# that databases in two schemas of one server database migrate without waiting for each other.
LOCK_CLASS = 0x2A6B5E0E
_LOCK_ARGS = "%s, hashtext(current_schema())"


def connect_timeout(dsn: str) -> float:
    """Seconds to wait for a server to answer a connection: the URL's own ``connect_timeout``,
    else ``$EGREGORA_CONNECT_TIMEOUT``, else ``CONNECT_TIMEOUT``; 0 waits forever, as libpq's
    own 0 does. Without a limit, a server that accepts the connection and never answers holds
    every command forever."""
    from psycopg.conninfo import conninfo_to_dict

    given = conninfo_to_dict(dsn).get("connect_timeout") or os.environ.get(TIMEOUT_VAR)
    if given is None or str(given).strip() == "":
        return CONNECT_TIMEOUT
    try:
        seconds = float(str(given))
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise ConfigurationError(
            f"the connection timeout must be a number of seconds (0: no limit), not {given!r} (set "
            f"connect_timeout in the URL or ${TIMEOUT_VAR})"
        )
    return seconds


# A statement_timeout among the server options of libpq's ``options``: ``-c name=value``,
# ``-cname=value`` or ``--name=value`` (libpq splits them at white space).
_OPTION = re.compile(r"(?:^|\s)(?:-c\s*|--)statement[_-]timeout=(\S*)", re.IGNORECASE)
# PostgreSQL's spelling of a time setting: a number and a unit, milliseconds when none.
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(us|ms|s|min|h|d)?")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True)
class StatementTimeout:
    """How long a statement may run (seconds; 0: no limit), and who said so: ``"url"`` (the
    URL's options, which the server applies itself), ``"PGOPTIONS"``, ``"env"`` or
    ``"default"`` (both set by egregora on each session)."""

    seconds: float
    source: str

    @property
    def set_by_server(self) -> bool:
        """Whether the server applies it from the connection's options (nothing to SET)."""
        return self.source in ("url", "PGOPTIONS")

    def fix(self) -> str:
        """How the user allows longer, where the limit came from."""
        if self.source == "url":
            return "raise statement_timeout in the URL's options (0: no limit)"
        if self.source == "PGOPTIONS":
            return "raise statement_timeout in $PGOPTIONS (0: no limit)"
        return (
            f"allow longer with ${STATEMENT_TIMEOUT_VAR}=SECONDS (0: no limit) or "
            "-c statement_timeout=... in the URL's options"
        )


def statement_timeout(dsn: str) -> StatementTimeout:
    """How long a statement may run on ``dsn``: ``statement_timeout`` in the URL's options
    (else in ``$PGOPTIONS``, which libpq reads then), else ``$EGREGORA_STATEMENT_TIMEOUT``
    seconds, else ``STATEMENT_TIMEOUT``. A value the server would refuse is refused here, in
    one line, before anything connects."""
    from psycopg.conninfo import conninfo_to_dict

    options = conninfo_to_dict(dsn).get("options")
    source = "url"
    if options is None:
        options, source = os.environ.get("PGOPTIONS", ""), "PGOPTIONS"
    found = _OPTION.findall(str(options))
    if found:
        return StatementTimeout(_duration(found[-1], source), source)  # the last one counts
    given = os.environ.get(STATEMENT_TIMEOUT_VAR, "").strip()
    if not given:
        return StatementTimeout(STATEMENT_TIMEOUT, "default")
    try:
        seconds = float(given)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < math.inf:
        raise ConfigurationError(
            f"the statement timeout must be a number of seconds (0: no limit), not {given!r} "
            f"(set ${STATEMENT_TIMEOUT_VAR}, or statement_timeout in the URL's options)"
        )
    return StatementTimeout(seconds, "env")


def _duration(text: str, source: str) -> float:
    """Seconds in PostgreSQL's spelling of a time setting (``5s``, ``15min``, ``500``)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        where = "the URL's options" if source == "url" else "$PGOPTIONS"
        raise ConfigurationError(
            f"statement_timeout={text} in {where} is not a duration; write a number with a "
            "unit (500ms, 30s, 15min, 1h) or 0 for no limit"
        )
    return float(match.group(1)) * _UNITS[match.group(2) or "ms"]


def _duration_text(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _network_settings(dsn: str) -> dict[str, str]:
    """``NETWORK_SETTINGS`` the URL does not set itself."""
    from psycopg.conninfo import conninfo_to_dict

    given = conninfo_to_dict(dsn)
    return {name: value for name, value in NETWORK_SETTINGS.items() if name not in given}


@dataclass(frozen=True)
class _Limits:
    """What a connection was allowed, to name the limit that ended a statement."""

    url: str  # as shown to people (no password)
    statement: StatementTimeout
    silence: float  # seconds without an answer before the network is given up (0: the system's)

    def explain(self, exc: BaseException, *, broken: bool, elapsed: float) -> DatabaseError | None:
        """``exc`` (an OperationalError of psycopg) in one line naming what expired, the
        limit and how to change it; None for any other error, which is reported as it is."""
        psycopg = sys.modules["psycopg"]
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        limit = self.statement.seconds
        if isinstance(exc, psycopg.errors.QueryCanceled) and (
            "statement timeout" in reason or 0 < limit <= elapsed  # a server in another language
        ):
            return DatabaseError(
                f"a statement on {self.url} ran longer than the statement timeout of "
                f"{_duration_text(limit)} and was cancelled, so nothing it did was kept; "
                f"{self.statement.fix()}"
            )
        if not broken:
            return None
        silence = f" for {_duration_text(self.silence)}" if self.silence else ""
        return DatabaseError(
            f"lost the connection to {self.url} while a statement ran ({reason}): the server "
            f"closed it, or did not answer{silence} (tcp_user_timeout, with TCP keepalives); "
            "check that the server runs and the network reaches it, then run again, or give a "
            "slow network longer with tcp_user_timeout=MILLISECONDS in the URL"
        )


@lru_cache(maxsize=1)
def _connection_class() -> type[Any]:
    """psycopg's connection, whose every exchange with the server (a statement, a fetch, a
    COPY, a commit) passes through ``wait``: there a cancelled statement or a lost server
    becomes one line naming the limit. Made on first use, so that psycopg is imported only
    by commands that talk to PostgreSQL."""
    import psycopg

    class Connection(psycopg.Connection[Any]):
        limits: _Limits | None = None

        def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                return super().wait(gen, *args, **kwargs)
            except psycopg.OperationalError as exc:
                if self.limits is None:
                    raise
                elapsed = time.monotonic() - started
                explained = self.limits.explain(exc, broken=self.broken, elapsed=elapsed)
                if explained is None:
                    raise
                raise explained from exc

    return Connection


def connect_postgres(url: DatabaseURL, *, autocommit: bool = False) -> Any:
    """A psycopg connection to ``url``; without autocommit, BEGIN is implicit (migrations).

    Its sessions run under a statement timeout and TCP keepalives (``statement_timeout``,
    ``NETWORK_SETTINGS``); a statement ended by either raises DatabaseError in one line."""
    import psycopg

    dsn = url.dsn or ""
    timeout = connect_timeout(dsn)
    statement = statement_timeout(dsn)
    network = _network_settings(dsn)
    try:
        # psycopg waits at most connect_timeout for the whole handshake (whole seconds).
        con = _connection_class().connect(
            dsn, autocommit=autocommit, connect_timeout=math.ceil(timeout), **network
        )
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0]
        if "timeout" in reason.lower():
            raise DatabaseError(
                f"cannot connect to {url}: no answer within {timeout:g} s ({reason}); check that "
                "the server runs and answers on that host and port, or allow longer with "
                f"connect_timeout in the URL or ${TIMEOUT_VAR}"
            ) from exc
        raise DatabaseError(
            f"cannot connect to {url}: {reason}; "
            "check that the server runs and the URL names the right host, user and database"
        ) from exc
    con.limits = _Limits(str(url), statement, _silence(dsn))
    if not statement.set_by_server:
        _set_statement_timeout(con, statement.seconds)
    return con


def _silence(dsn: str) -> float:
    """Seconds of tcp_user_timeout the connection runs under (libpq has checked the value)."""
    from psycopg.conninfo import conninfo_to_dict

    given = {**NETWORK_SETTINGS, **conninfo_to_dict(dsn)}["tcp_user_timeout"]
    return float(str(given).strip() or 0) / 1000


def _set_statement_timeout(con: Any, seconds: float) -> None:
    """The session's statement_timeout, set once it is open (a SET, not the startup packet's
    options, which connection poolers such as PgBouncer refuse by default); committed, since
    a rolled-back transaction would take the setting with it."""
    milliseconds = math.ceil(seconds * 1000)
    con.execute("SELECT set_config('statement_timeout', %s, false)", [f"{milliseconds}ms"])
    if not con.autocommit:
        con.commit()


class PostgresExecutor:
    """Runs on a psycopg connection; with autocommit off BEGIN is implicit in psycopg, with it
    on (the storage gateway's connection) BEGIN, COMMIT and ROLLBACK are statements."""

    dialect: Dialect = "postgres"
    dry_run = False

    def __init__(self, con: Any) -> None:
        self.con = con
        self.backend: Backend = POSTGRES

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.con.execute(sql, list(params) or None)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self.con.execute(sql, list(params) or None).fetchall()
        return rows

    def table_names(self) -> set[str]:
        return self.backend.table_names(self)

    def column_names(self, table: str) -> list[str]:
        return self.backend.column_names(self, table)

    def begin(self) -> None:
        if self.con.autocommit:
            self.con.execute("BEGIN")

    def commit(self) -> None:
        if self.con.autocommit:
            self.con.execute("COMMIT")
        else:
            self.con.commit()

    def rollback(self) -> None:
        if self.con.autocommit:
            self.con.execute("ROLLBACK")
        else:
            self.con.rollback()


# -- the live schema, from pg_catalog ----------------------------------------------------------
# Every query reads one schema, named by its parameter; no value is formatted into the text.
_TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY 1
"""
_COLUMNS = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
"""
_TABLE_COLUMNS = """
SELECT a.attname FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
# Key columns by name, in the key's order.
_CONSTRAINTS = """
SELECT c.relname, k.contype, k.conname,
       ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY AS u(num, pos)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.num
             ORDER BY u.pos),
       CASE WHEN k.contype = 'c' THEN pg_get_expr(k.conbin, k.conrelid) END,
       r.relname,
       ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY AS u(num, pos)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.num
             ORDER BY u.pos),
       k.condeferrable
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class r ON r.oid = k.confrelid
WHERE n.nspname = %s AND k.contype IN ('p', 'u', 'c', 'f')
ORDER BY c.relname, k.conname
"""
_KINDS = {"p": "PRIMARY KEY", "u": "UNIQUE", "c": "CHECK", "f": "FOREIGN KEY"}
# Indexes other than those behind a key; the definition from USING on (method, columns,
# order, predicate) leaves out the schema-qualified table name.
_INDEXES = """
SELECT c.relname, i.relname, x.indisunique,
       substring(pg_get_indexdef(x.indexrelid) FROM ' USING .*$')
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class c ON c.oid = x.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND NOT EXISTS (
    SELECT 1 FROM pg_constraint k
    WHERE k.conindid = x.indexrelid AND k.conrelid = x.indrelid AND k.contype IN ('p', 'u'))
ORDER BY c.relname, i.relname
"""


def _introspect(executor: Executor, schema: str) -> LiveSchema:
    names = [row[0] for row in executor.query(_TABLES, [schema])]
    columns: dict[str, list[LiveColumn]] = {n: [] for n in names}
    for table, name, data_type, nullable, default in executor.query(_COLUMNS, [schema]):
        columns[table].append(LiveColumn(name, data_type, bool(nullable), default))
    constraints: dict[str, list[LiveConstraint]] = {n: [] for n in names}
    for table, kind, cname, cols, expression, ref, ref_cols, deferrable in executor.query(
        _CONSTRAINTS, [schema]
    ):
        constraints[table].append(
            LiveConstraint(
                kind=_KINDS[kind],
                columns=tuple(cols),
                expression=expression,
                references=ref,
                ref_columns=tuple(ref_cols) if kind == "f" else (),
                name=cname,
                deferrable=bool(deferrable),
            )
        )
    indexes: dict[str, list[LiveIndex]] = {n: [] for n in names}
    for table, name, unique, definition in executor.query(_INDEXES, [schema]):
        indexes[table].append(LiveIndex(name, definition.removeprefix(" USING "), bool(unique)))
    return {
        n: LiveTable(n, tuple(columns[n]), tuple(constraints[n]), tuple(indexes[n])) for n in names
    }


# -- the backend -------------------------------------------------------------------------------
class Postgres(Backend):
    name: Dialect = "postgres"
    alters_constraints = Capability(
        True, "PostgreSQL adds and drops constraints and NOT NULL in place, inside a transaction"
    )
    concurrent_writers = Capability(
        True,
        "any number of sessions write at once, so two migrate commands must take turns: a "
        "session-level advisory lock, which the server drops when a process dies",
    )
    partial_indexes = Capability(True, "a B-tree may hold only the rows its WHERE selects")
    scans_arrow = Capability(False, "the server receives a batch by COPY, row by row")
    same_table_references_in_one_insert = Capability(
        True, "foreign keys are checked at the end of each statement"
    )
    updates_referenced_rows = Capability(
        True, "INSERT ... ON CONFLICT DO UPDATE changes referenced rows in place"
    )
    skips_locked_rows = Capability(
        True,
        "many workers claim at once; without SKIP LOCKED two of them take the same task "
        "(measured: 198 of 300 tasks claimed twice by 4 processes)",
    )

    asof_join = Capability(
        False,
        "PostgreSQL has no ASOF JOIN (Ibis refuses it there): probes and changes are sorted "
        "into one stream per path and the latest change carried forward",
    )
    keeps_media_in_database = Capability(
        True,
        "several machines share the database and no folder, so a site is written on any of "
        "them from the database alone; files are cut into parts (media_parts) so that no "
        "value nears bytea's 1 GB limit or is fetched in one piece",
    )

    def defer_unique_checks(self, con: Any) -> None:
        # Only the unique keys declared DEFERRABLE (ddl.render.DEFERRABLE_KEYS) are deferred;
        # primary and foreign keys stay immediate, and ON CONFLICT's arbiter is the primary key.
        con.execute("SET CONSTRAINTS ALL DEFERRED")

    def connect(
        self, url: DatabaseURL, *, read_only: bool, create: bool, timeout: float
    ) -> BaseBackend:
        import ibis

        # Read-only is the gateway's own promise (it refuses every write): a read-only session
        # would also refuse the temporary tables Ibis makes for in-memory inputs.
        con = connect_postgres(url, autocommit=True)
        _current_schema(PostgresExecutor(con))  # a search_path naming no schema is refused now
        # Ibis reads results through a server-side cursor, which PostgreSQL plans for the
        # first 10% of rows by default (nested loops): every result here is read whole, and the
        # batch git lookup took 6 s that way instead of 0.4 s.
        con.execute("SET cursor_tuple_fraction = 1.0")
        return ibis.postgres.from_connection(con)

    def executor(self, con: Any) -> Executor:
        return PostgresExecutor(con)

    def run(self, con: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = con.execute(sql, list(params) or None)
        rows: list[tuple[Any, ...]] = cursor.fetchall() if cursor.description else []
        return rows

    def affected(self, con: Any, sql: str, params: Sequence[Any] = ()) -> int:
        return int(con.execute(sql, list(params) or None).rowcount)

    def load(self, con: Any, table: str, rows: pa.Table) -> None:
        from psycopg import sql

        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, rows.column_names))
        )
        with con.cursor() as cursor, cursor.copy(statement) as copy:
            for batch in rows.to_batches():
                for row in zip(*(column.to_pylist() for column in batch.columns), strict=True):
                    copy.write_row(row)

    def is_constraint_error(self, exc: BaseException) -> bool:
        psycopg = sys.modules.get("psycopg")
        return psycopg is not None and isinstance(exc, psycopg.errors.IntegrityError)

    serves_data = Capability(True, "every command and the Python API work on PostgreSQL")

    @contextlib.contextmanager
    def open_executor(
        self, url: DatabaseURL, *, write: bool, create: bool = False, wait: float = 0.0
    ) -> Iterator[Executor]:
        con = connect_postgres(url)
        try:
            yield PostgresExecutor(con)
        finally:
            con.close()

    def table_names(self, executor: Executor) -> set[str]:
        return {row[0] for row in executor.query(_TABLES, [_current_schema(executor)])}

    def column_names(self, executor: Executor, table: str) -> list[str]:
        rows = executor.query(_TABLE_COLUMNS, [_current_schema(executor), table])
        return [row[0] for row in rows]

    def introspect(self, executor: Executor) -> LiveSchema:
        return _introspect(executor, _current_schema(executor))

    def expected_schema(self, catalog: Catalog, executor: Executor) -> LiveSchema:
        """Made as temporary tables (``search_path`` set to ``pg_temp`` makes every CREATE
        TABLE one) inside a savepoint, read back, and rolled back."""
        # A savepoint needs a transaction: the gateway's connection commits each statement.
        outside = _outside_transaction(executor)
        if outside:
            executor.execute("BEGIN")
        executor.execute("SAVEPOINT egregora_expected")
        try:
            executor.execute("SET LOCAL search_path TO pg_temp")
            for statement in catalog_statements(catalog, "postgres"):
                executor.execute(statement)
            schema = executor.query("SELECT pg_my_temp_schema()::regnamespace::text")[0][0]
            return _introspect(executor, schema)
        finally:
            executor.execute("ROLLBACK TO SAVEPOINT egregora_expected")
            executor.execute("RELEASE SAVEPOINT egregora_expected")
            if outside:
                executor.execute("ROLLBACK")

    @contextlib.contextmanager
    def migration_lock(self, executor: Executor, wait: float) -> Iterator[None]:
        if executor.dry_run:
            yield
            return
        deadline = time.monotonic() + wait
        while not executor.query(f"SELECT pg_try_advisory_lock({_LOCK_ARGS})", [LOCK_CLASS])[0][0]:
            if time.monotonic() >= deadline:
                holders = executor.query(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND objsubid = 2 AND classid::bigint = %s "
                    "AND objid::bigint = (hashtext(current_schema())::bigint & 4294967295)",
                    [LOCK_CLASS],
                )
                executor.commit()
                holder = f"backend process {holders[0][0]}" if holders else "another session"
                raise DatabaseLockedError(
                    f"another egregora migrate holds the migration lock ({holder}); wait for "
                    "it to finish and retry",
                    pid=holders[0][0] if holders else None,
                )
            time.sleep(0.1)
        executor.commit()
        try:
            yield
        finally:
            executor.rollback()
            executor.query(f"SELECT pg_advisory_unlock({_LOCK_ARGS})", [LOCK_CLASS])
            executor.commit()

    def bytes_literal(self, hex_digits: str) -> exp.Expr:
        return exp.func("decode", exp.Literal.string(hex_digits), exp.Literal.string("hex"))

    def same_count_check(self, table: str, source: str, message: str) -> str:
        kept, total = (
            exp.to_identifier(t, quoted=True).sql(dialect="postgres") for t in (table, source)
        )
        # RAISE formats its message with %: the message's own are doubled.
        text = exp.Literal.string(message.replace("%", "%%") + ": kept % of % rows")
        count = "(SELECT count(*) FROM {})"
        return (
            f"DO $egregora$ BEGIN IF {count.format(kept)} <> {count.format(total)} THEN "
            f"RAISE EXCEPTION {text.sql(dialect='postgres')}, {count.format(kept)}, "
            f"{count.format(total)}; END IF; END $egregora$"
        )

    def is_driver_error(self, exc: BaseException) -> bool:
        psycopg = sys.modules.get("psycopg")  # not imported: not one of its errors
        return psycopg is not None and isinstance(exc, psycopg.Error)


def _outside_transaction(executor: Executor) -> bool:
    """Whether ``executor`` runs on an autocommit connection outside a transaction block."""
    if not isinstance(executor, PostgresExecutor) or not executor.con.autocommit:
        return False
    from psycopg.pq import TransactionStatus

    return bool(executor.con.info.transaction_status == TransactionStatus.IDLE)


def _current_schema(executor: Executor) -> str:
    schema: str | None = executor.query("SELECT current_schema()")[0][0]
    if schema is None:
        raise DatabaseError(
            "the connection has no current schema (its search_path names none that exists); "
            "create the schema, or set search_path in the URL: ?options=-csearch_path%3DNAME"
        )
    return schema


POSTGRES = Postgres()
