"""DuckDB, the embedded default: one file, one writing process, its own catalog functions.

Opening a file (created atomically, with errors that say what to do instead of raw driver
messages, and waiting for a lock when asked), the migrations' connection, reading the live
schema, and the catalog as DuckDB stores it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
import ibis
import pyarrow as pa
from ibis.backends.duckdb import Backend as DuckDBBackend
from sqlglot import exp

from egregora.backends.base import NO_ROOM, Backend, Capability, Executor, no_room
from egregora.backends.url import DatabaseURL
from egregora.ddl.diff import Difference, diff_schemas, label_constraints
from egregora.ddl.introspect import LiveColumn, LiveConstraint, LiveIndex, LiveSchema, LiveTable
from egregora.ddl.render import Dialect, catalog_statements
from egregora.drafts import process_alive
from egregora.errors import (
    ConfigurationError,
    DatabaseError,
    DatabaseLockedError,
    DatabaseNotFoundError,
    DiskFullError,
    EgregoraError,
    disk_full,
)
from egregora.schema.model import Catalog

_LOCK_PID = re.compile(r"PID (\d+)")
_DRAFT = ".creating-"
LOCK_RETRY_INTERVAL = 0.05  # seconds between attempts to open a file another process holds
# What DuckDB answers later statements once a write failed: the transaction is aborted (or,
# after a failed COMMIT, gone), or after a failed checkpoint the database is invalidated.
_NOTHING_TO_ROLL_BACK = "no transaction is active"
_AFTERMATH = (
    "current transaction is aborted",
    "database has been invalidated",
    _NOTHING_TO_ROLL_BACK,
)


def connect_duckdb(
    url: DatabaseURL,
    *,
    read_only: bool = False,
    create: bool = True,
    timeout: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], None] = time.sleep,
) -> DuckDBBackend:
    """Open the DuckDB database at ``url`` through Ibis.

    A missing file is created (with its folder) only when ``create`` is true and the database
    is opened for writing; otherwise the error says how to create it. While another process
    holds the file, opening is retried every ``LOCK_RETRY_INTERVAL`` seconds, waited with
    ``pause``, until ``timeout`` seconds have passed on ``clock``; with no timeout it is tried
    once. (Tests pass their own ``clock`` and ``pause`` to see the waiting.)
    """
    if url.dsn is not None:
        raise DatabaseError(f"{url} is not a DuckDB database")
    if url.path is None:
        return _configured(ibis.duckdb.connect(":memory:"))
    path = url.path
    if not path.exists():
        if read_only or not create:
            raise DatabaseNotFoundError(
                f"no database at {path}; create it with `egregora db init --db {path}`"
            )
        _create_duckdb_file(path)
    deadline = clock() + timeout
    while True:
        try:
            backend: DuckDBBackend = ibis.duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:  # opening replays the write-ahead log: a disk may be full
            error = _explain_open_error(path, exc)
            if isinstance(error, DatabaseLockedError) and clock() < deadline:
                pause(LOCK_RETRY_INTERVAL)
                continue
            if error is None:
                raise
            raise error from exc
        return _configured(backend)


def _configured(backend: DuckDBBackend) -> DuckDBBackend:
    """Session settings every egregora connection uses.

    DuckDB estimates a table scanned from Arrow (probes handed to an ASOF join) at about one
    row and then runs the ASOF join as a nested loop: measured 22x slower for 100,000 probes
    over 92,000 changes (benchmarks, case git_resolve_many), and no faster for one probe.
    """
    backend.con.execute("SET asof_loop_join_threshold = 0")
    return backend


def _create_duckdb_file(path: Path) -> None:
    """Make an empty DuckDB database at ``path`` in one step, or nothing at all.

    DuckDB creates a file, then writes its header: a process killed in between, or a second
    process opening the file then, would find a file DuckDB refuses ("not a valid DuckDB
    database file"). So the database is made under a private name and linked into place, which
    is atomic and never replaces a file another process created first. Folders made for it
    are removed again when it cannot be made.
    """
    made: list[Path] = []
    draft = path.with_name(f".{path.name}{_DRAFT}{os.getpid()}")
    try:
        try:
            _make_folders(path.parent, made)
            _remove_abandoned_drafts(path)
            duckdb.connect(str(draft)).close()
            with contextlib.suppress(FileExistsError):  # another process created it first
                os.link(draft, path)
        finally:
            for each in (draft, draft.with_name(draft.name + ".wal")):
                if os.path.lexists(each):  # a read-only disk refuses even to unlink nothing
                    each.unlink(missing_ok=True)
    except (OSError, duckdb.Error) as exc:  # a file for a folder, no permission, a full disk
        for folder in reversed(made):
            with contextlib.suppress(OSError):  # something else was put there meanwhile
                folder.rmdir()
        raise _cannot_create(path, exc) from exc


def _make_folders(folder: Path, made: list[Path]) -> None:
    """Make ``folder`` and its missing parents, adding each one made to ``made`` (outermost
    first, so they can be removed again). A file where a folder should be is named
    (NotADirectoryError)."""
    missing = []
    for each in (folder, *folder.parents):
        if each.is_dir():
            break
        if os.path.lexists(each):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(each))
        missing.append(each)
    for each in reversed(missing):
        try:
            each.mkdir()
        except FileExistsError:  # another process made it meanwhile
            if not each.is_dir():
                raise
            continue
        made.append(each)


def _cannot_create(path: Path, exc: OSError | duckdb.Error) -> EgregoraError:
    if isinstance(exc, OSError):
        if exc.errno in NO_ROOM:
            return disk_full(path, exc)
        cause, where = exc.strerror or str(exc), exc.filename or path.parent
    else:
        full = no_room(str(exc), path)
        if full is not None:
            return full
        cause, where = _duckdb_cause(exc), path.parent
    return ConfigurationError(
        f"cannot create the database {path}: {cause} ({where}); "
        "choose a --db path in a folder you can write"
    )


def _duckdb_cause(exc: duckdb.Error) -> str:
    """The end of a DuckDB message ('IO Error: Cannot open file "x": Permission denied')."""
    return " ".join(str(exc).split()).rsplit(": ", 1)[-1]


def _remove_abandoned_drafts(path: Path) -> None:
    """Drafts left by a creating process that died (ours only: never a user's database)."""
    for draft in path.parent.glob(f".{path.name}{_DRAFT}*"):
        pid = draft.name.rsplit(_DRAFT, 1)[1].removesuffix(".wal")
        if pid.isdigit() and not process_alive(int(pid)):
            draft.unlink(missing_ok=True)


def _explain_open_error(path: Path, exc: duckdb.Error) -> EgregoraError | None:
    text = str(exc)
    full = no_room(text, path)
    if full is not None:
        return full
    if not isinstance(exc, duckdb.IOException):
        return None
    if "lock" in text.lower():
        match = _LOCK_PID.search(text)
        pid = int(match.group(1)) if match else None
        holder = f"process {pid}" if pid is not None else "another process"
        return DatabaseLockedError(
            f"{path} is locked by {holder} (DuckDB allows one writing process per file); "
            "wait for it to finish or stop it, then retry",
            pid=pid,
        )
    return DatabaseError(f"cannot open {path}: {text}")


def _quoted(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql(dialect="duckdb")


# -- the migrations' connection --------------------------------------------------------------
class DuckDBExecutor:
    """Statements of migrations and introspection; a full disk is named as such."""

    dialect: Dialect = "duckdb"
    dry_run = False

    def __init__(self, con: duckdb.DuckDBPyConnection, where: object = None) -> None:
        self.con = con
        self.where = where  # the database, named by a full disk's error
        self.backend: Backend = DUCKDB

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with room_checked(self.con, self.where):
            self.con.execute(*DUCKDB.bound(sql, params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with room_checked(self.con, self.where):
            return self.con.execute(*DUCKDB.bound(sql, params)).fetchall()

    def table_names(self) -> set[str]:
        return self.backend.table_names(self)

    def column_names(self, table: str) -> list[str]:
        return self.backend.column_names(self, table)

    def begin(self) -> None:
        with room_checked(self.con, self.where):
            self.con.execute("BEGIN TRANSACTION")

    def commit(self) -> None:
        with room_checked(self.con, self.where):
            self.con.execute("COMMIT")

    def rollback(self) -> None:
        try:
            with room_checked(self.con, self.where):
                self.con.execute("ROLLBACK")
        except duckdb.TransactionException as exc:
            if _NOTHING_TO_ROLL_BACK not in str(exc):
                raise
            # A failed COMMIT ended the transaction itself; its own error is the one to see.


@contextlib.contextmanager
def room_checked(con: duckdb.DuckDBPyConnection, where: object = None) -> Iterator[None]:
    """A DuckDB error inside caused by a full disk (or following one) becomes DiskFullError."""
    try:
        yield
    except duckdb.Error as exc:
        full = DUCKDB.disk_full(exc, con, where)
        if full is None:
            raise
        raise full from exc


# -- the live schema, from DuckDB's catalog functions ----------------------------------------
_WHERE = "database_name = current_database() AND schema_name = ? AND NOT internal"

_TABLES = f"SELECT table_name FROM duckdb_tables() WHERE {_WHERE} ORDER BY table_name"  # noqa: S608
_COLUMNS = (
    "SELECT table_name, column_name, data_type, is_nullable, column_default "  # noqa: S608
    f"FROM duckdb_columns() WHERE {_WHERE} ORDER BY table_name, column_index"
)
_CONSTRAINTS = (
    "SELECT table_name, constraint_type, constraint_column_names, expression, "
    "referenced_table, referenced_column_names, constraint_name "
    "FROM duckdb_constraints() "
    "WHERE database_name = current_database() AND schema_name = ? "
    "AND constraint_type IN ('PRIMARY KEY', 'UNIQUE', 'CHECK', 'FOREIGN KEY') "
    "ORDER BY table_name, constraint_index"
)
_INDEXES = (
    "SELECT table_name, index_name, expressions, is_unique FROM duckdb_indexes() "
    "WHERE database_name = current_database() AND schema_name = ? "
    "ORDER BY table_name, index_name"
)
_CURRENT = "database_name = current_database() AND schema_name = current_schema()"
_CURRENT_TABLES = f"SELECT table_name FROM duckdb_tables() WHERE {_CURRENT}"  # noqa: S608
_TABLE_COLUMNS = (
    f"SELECT column_name FROM duckdb_columns() WHERE {_CURRENT} AND table_name = ? "  # noqa: S608
    "ORDER BY column_index"
)


def introspect_duckdb(con: duckdb.DuckDBPyConnection, schema: str = "main") -> LiveSchema:
    """Tables, columns, constraints and indexes of ``schema`` in the connection's database."""
    return _introspect(lambda sql, params: con.execute(sql, list(params)).fetchall(), schema)


Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


def _introspect(query: Query, schema: str) -> LiveSchema:
    names = [row[0] for row in query(_TABLES, [schema])]
    columns: dict[str, list[LiveColumn]] = {n: [] for n in names}
    for table, name, data_type, nullable, default in query(_COLUMNS, [schema]):
        if table in columns:
            columns[table].append(LiveColumn(name, data_type, bool(nullable), default))
    constraints: dict[str, list[LiveConstraint]] = {n: [] for n in names}
    seen: set[tuple[str, tuple[Any, ...]]] = set()
    for table, kind, cols, expression, ref, ref_cols, cname in query(_CONSTRAINTS, [schema]):
        constraint = LiveConstraint(
            kind=kind,
            columns=tuple(cols),
            expression=expression if kind == "CHECK" else None,
            references=ref if kind == "FOREIGN KEY" else None,
            ref_columns=tuple(ref_cols or ()) if kind == "FOREIGN KEY" else (),
            name=cname,
        )
        # DuckDB lists a self-referencing foreign key twice; keep one.
        if table in constraints and (table, constraint.identity) not in seen:
            seen.add((table, constraint.identity))
            constraints[table].append(constraint)
    indexes: dict[str, list[LiveIndex]] = {n: [] for n in names}
    for table, name, expressions, unique in query(_INDEXES, [schema]):
        if table in indexes:
            indexes[table].append(LiveIndex(name, str(expressions), bool(unique)))
    return {
        n: LiveTable(n, tuple(columns[n]), tuple(constraints[n]), tuple(indexes[n])) for n in names
    }


@lru_cache(maxsize=8)
def expected_duckdb(catalog: Catalog) -> LiveSchema:
    """The catalog as DuckDB stores it (made in a private in-memory database and read back),
    with the catalog's names on every constraint (DuckDB forgets declared names)."""
    with duckdb.connect(":memory:") as con:
        for statement in catalog_statements(catalog, "duckdb"):
            con.execute(statement)
        live = introspect_duckdb(con)
    return {
        t.name: LiveTable(
            t.name, live[t.name].columns, label_constraints(t, live[t.name]), live[t.name].indexes
        )
        for t in catalog
    }


# -- the backend -------------------------------------------------------------------------------
class DuckDB(Backend):
    name: Dialect = "duckdb"
    alters_constraints = Capability(
        False,
        "DuckDB 1.5 has no ALTER TABLE ADD/DROP CONSTRAINT and refuses SET NOT NULL on a table "
        "with indexes, so a changed rule or a new NOT NULL column rebuilds the table",
    )
    concurrent_writers = Capability(
        False,
        "one process writes a DuckDB file at a time; another one waits for the file's lock, "
        "so migrating needs no lock of its own",
    )
    serves_data = Capability(True, "every command and the Python API work on a DuckDB file")
    partial_indexes = Capability(False, "DuckDB 1.5 has no CREATE INDEX ... WHERE")
    scans_arrow = Capability(True, "a registered Arrow table is scanned in place, not copied")
    same_table_references_in_one_insert = Capability(
        False, "DuckDB checks a row's same-table reference as the row is inserted"
    )
    updates_referenced_rows = Capability(
        False,
        "DuckDB 1.5 rewrites an update of an indexed (or list) column as delete and insert, "
        "which a referenced row refuses, even inside one transaction",
    )
    skips_locked_rows = Capability(
        False, "one process writes a DuckDB file, so no two claimers ever meet"
    )
    asof_join = Capability(
        True, "100,000 probes over 1,000,000 changes in about 0.3 s (benchmarks, git_resolve_many)"
    )
    keeps_media_in_database = Capability(
        False,
        "one machine writes the file; large videos stay files beside it, where they are read "
        "and copied without growing the database",
    )

    def __init__(self) -> None:
        # The full disk each connection met, named again by the errors that follow it.
        self._full: weakref.WeakKeyDictionary[Any, DiskFullError] = weakref.WeakKeyDictionary()

    def connect(
        self, url: DatabaseURL, *, read_only: bool, create: bool, timeout: float
    ) -> DuckDBBackend:
        return connect_duckdb(url, read_only=read_only, create=create, timeout=timeout)

    def executor(self, con: Any) -> Executor:
        return DuckDBExecutor(con)

    def disk_full(
        self, exc: BaseException, con: Any = None, where: object = None
    ) -> DiskFullError | None:
        """As ``Backend.disk_full``; and once a connection met a full disk, the aborted
        transaction or invalidated database DuckDB answers afterwards is that full disk too."""
        if not isinstance(exc, duckdb.Error):
            return None
        full = no_room(str(exc), where)
        if full is not None:
            if con is not None:
                self._full[con] = full
            return full
        earlier = self._full.get(con) if con is not None else None
        if earlier is not None and any(m in str(exc).lower() for m in _AFTERMATH):
            return DiskFullError(str(earlier))
        return None

    def checkpoint(self, con: Any, where: object = None) -> None:
        """Fold the write-ahead log into the database file. DuckDB does so when the last
        connection closes, but a failure there goes unreported: on a full disk a command
        would say it succeeded while its writes were not in the file."""
        with room_checked(con, where):
            con.execute("CHECKPOINT")

    def translate(self, sql: str) -> str:
        return sql  # written in this dialect

    def run(self, con: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = con.execute(*self.bound(sql, params)).fetchall()
        return rows

    def affected(self, con: Any, sql: str, params: Sequence[Any] = ()) -> int:
        row = con.execute(*self.bound(sql, params)).fetchone()  # DuckDB answers with the count
        return int(row[0]) if row else 0

    def bound(self, sql: str, params: Sequence[Any]) -> tuple[str, list[Any]]:
        """The statement and the values DuckDB binds. Its Python client imports pandas (a
        fifth of a second) the first time it binds any value; until something else has
        imported pandas, the values are written into the statement as literals of their
        types instead, so a small command (one git lookup) does not pay for it."""
        if params and "pandas" not in sys.modules:
            return self.inline(sql, params), []
        return sql, list(params)

    def load(self, con: Any, table: str, rows: pa.Table) -> None:
        source = f"_egregora_load_{id(rows)}"
        con.register(source, rows)
        try:
            columns = [exp.column(c, quoted=True) for c in rows.column_names]
            insert = exp.insert(
                exp.select(*columns).from_(exp.to_table(source)),
                exp.to_table(table, quoted=True),
                columns=[exp.to_identifier(c, quoted=True) for c in rows.column_names],
            )
            con.execute(insert.sql("duckdb"))
        finally:
            con.unregister(source)

    def is_constraint_error(self, exc: BaseException) -> bool:
        return isinstance(exc, duckdb.ConstraintException)

    @contextlib.contextmanager
    def open_executor(
        self, url: DatabaseURL, *, write: bool, create: bool = False, wait: float = 0.0
    ) -> Iterator[Executor]:
        if not write and not url.is_memory and url.path is not None and not url.path.exists():
            connect_duckdb(url, read_only=True)  # raises the "create it with db init" error
        backend = connect_duckdb(
            url, read_only=not write and not url.is_memory, create=create, timeout=wait
        )
        try:
            yield DuckDBExecutor(backend.con, url.path)
        except BaseException:
            backend.disconnect()
            raise
        try:
            if write:
                self.checkpoint(backend.con, url.path)
        finally:
            backend.disconnect()

    def open_planner(
        self, url: DatabaseURL, *, wait: float = 0.0
    ) -> contextlib.AbstractContextManager[Executor]:
        if url.path is not None and not url.path.exists():
            # Plan against an empty database without creating the file.
            return self.open_executor(DatabaseURL("duckdb"), write=True)
        return self.open_executor(url, write=False, wait=wait)

    def table_names(self, executor: Executor) -> set[str]:
        return {row[0] for row in executor.query(_CURRENT_TABLES)}

    def column_names(self, executor: Executor, table: str) -> list[str]:
        return [row[0] for row in executor.query(_TABLE_COLUMNS, [table])]

    def introspect(self, executor: Executor) -> LiveSchema:
        return _introspect(executor.query, "main")

    def expected_schema(self, catalog: Catalog, executor: Executor) -> LiveSchema:
        return expected_duckdb(catalog)

    def bytes_literal(self, hex_digits: str) -> exp.Expr:
        return exp.func("from_hex", exp.Literal.string(hex_digits))

    def same_count_check(self, table: str, source: str, message: str) -> str:
        # error() of a constant is raised when the statement is planned, whatever its WHERE,
        # so the message is made from the counts: it is raised only for a row that differs.
        kept, total = (_quoted(t) for t in (table, source))
        text = exp.Literal.string(f"{message}: kept ").sql(dialect="duckdb")
        return (
            f"SELECT error({text} || kept || ' of ' || total || ' rows') FROM (SELECT "  # noqa: S608
            f"(SELECT count(*) FROM {kept}) AS kept, (SELECT count(*) FROM {total}) AS total) "
            "AS counts WHERE kept <> total"
        )

    def is_driver_error(self, exc: BaseException) -> bool:
        return isinstance(exc, duckdb.Error)


DUCKDB = DuckDB()


def diff_duckdb(catalog: Catalog, con: duckdb.DuckDBPyConnection) -> list[Difference]:
    """Differences between ``catalog`` and the database behind ``con``."""
    return diff_schemas(expected_duckdb(catalog), introspect_duckdb(con))
