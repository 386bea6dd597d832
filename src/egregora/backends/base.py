"""What every engine's backend object offers, and the capabilities callers ask it about.

Engine differences live in one object per engine (``duckdb.DUCKDB``, ``postgres.POSTGRES``).
A caller never compares engine names: it asks a named capability (``backend.alters_constraints``)
or calls the backend's own way of doing a thing (``backend.introspect(executor)``). Each
capability carries the reason it holds or not, next to its value, so a reader sees why an engine
takes the longer road.
"""

from __future__ import annotations

import errno
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

import sqlglot
from sqlglot import exp

from egregora.ddl.render import Dialect
from egregora.errors import DiskFullError, disk_full

if TYPE_CHECKING:
    import pyarrow as pa
    from ibis.backends import BaseBackend

    from egregora.backends.url import DatabaseURL
    from egregora.ddl.introspect import LiveSchema
    from egregora.schema.model import Catalog


# The errors a write meets when the disk (or the user's quota) has no room left.
NO_ROOM = (errno.ENOSPC, errno.EDQUOT)
# Engines name the file a write failed on in double quotes ('Could not write file "x.wal"').
_QUOTED_FILE = re.compile(r'file "([^"]+)"')


@dataclass(frozen=True)
class Capability:
    """Whether an engine can do a thing, and why (or why not)."""

    able: bool
    reason: str

    def __bool__(self) -> bool:
        return self.able


class Executor(Protocol):
    """The little migrations and introspection need from a connection."""

    backend: Backend
    dialect: Dialect  # the backend's SQL dialect, for rendering statements
    dry_run: bool

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def table_names(self) -> set[str]:
        """The base tables of the schema it works in (asked of the connection, not the
        backend: a script planned without a database reads a stand-in of another engine)."""
        ...

    def column_names(self, table: str) -> list[str]:
        """The columns of ``table``, in the table's order."""
        ...

    def begin(self) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class Backend(ABC):
    """One database engine: its SQL dialect, its capabilities and its ways of doing things."""

    name: Dialect
    # In-place ALTER TABLE ADD/DROP CONSTRAINT and SET NOT NULL; without it a changed rule or a
    # new NOT NULL column rebuilds the table (copy aside, recreate, copy back).
    alters_constraints: Capability
    # Several processes may write at once, so migrating needs a lock of its own.
    concurrent_writers: Capability
    # The storage gateway (validated writes, the services, ingest and run) works on it.
    serves_data: Capability
    # CREATE INDEX ... WHERE: an index of the rows a query can want (Index.where).
    partial_indexes: Capability
    # A batch is scanned where it lies in the client's memory (Arrow), not sent row by row.
    scans_arrow: Capability
    # One INSERT may hold a row and the row of the same table it references.
    same_table_references_in_one_insert: Capability
    # UPDATE of a row another table references, whatever the table's indexes.
    updates_referenced_rows: Capability
    # SELECT ... FOR UPDATE SKIP LOCKED: concurrent claimers skip each other's rows.
    skips_locked_rows: Capability
    # ASOF JOIN: each probe meets the latest row at or before it, in one pass.
    asof_join: Capability
    # Media files' bytes are kept in the database (``media_parts``), not in a folder beside it.
    keeps_media_in_database: Capability

    @abstractmethod
    def open_executor(
        self, url: DatabaseURL, *, write: bool, create: bool = False, wait: float = 0.0
    ) -> AbstractContextManager[Executor]:
        """A connection for migrations and introspection; read-only where the engine can tell."""

    def open_planner(
        self, url: DatabaseURL, *, wait: float = 0.0
    ) -> AbstractContextManager[Executor]:
        """A connection a dry run reads from (it never writes)."""
        return self.open_executor(url, write=False, wait=wait)

    # -- the storage gateway's connection ---------------------------------------------------
    @abstractmethod
    def connect(
        self, url: DatabaseURL, *, read_only: bool, create: bool, timeout: float
    ) -> BaseBackend:
        """An Ibis connection for the storage gateway; transactions are the gateway's own
        (BEGIN/COMMIT statements), everything else commits as it runs."""

    @abstractmethod
    def executor(self, con: Any) -> Executor:
        """The migrations' executor on the gateway's driver connection ``con``."""

    @abstractmethod
    def run(self, con: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on ``con``; its rows (none for a statement that returns none)."""

    @abstractmethod
    def affected(self, con: Any, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one INSERT, UPDATE or DELETE on ``con``; how many rows it changed."""

    @abstractmethod
    def load(self, con: Any, table: str, rows: pa.Table) -> None:
        """Append ``rows`` (named and typed like ``table``'s columns) to ``table`` in bulk."""

    def defer_unique_checks(self, con: Any) -> None:  # noqa: B027  (most engines cannot)
        """Check the current transaction's DEFERRABLE unique keys at its commit, so one
        statement may move a key between rows; nothing where no key can be deferred."""

    @abstractmethod
    def is_constraint_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the database refusing rows (a key, CHECK or foreign key)."""

    @abstractmethod
    def table_names(self, executor: Executor) -> set[str]:
        """The base tables of the schema the connection works in."""

    @abstractmethod
    def column_names(self, executor: Executor, table: str) -> list[str]:
        """The columns of ``table`` in the connection's schema, in the table's order."""

    @abstractmethod
    def introspect(self, executor: Executor) -> LiveSchema:
        """The live schema: tables, columns, constraints and indexes, in the engine's spelling."""

    @abstractmethod
    def expected_schema(self, catalog: Catalog, executor: Executor) -> LiveSchema:
        """``catalog`` as this engine stores it, read back with ``introspect``'s spelling, so a
        live schema is compared with it and never with text rules of our own."""

    @abstractmethod
    def same_count_check(self, table: str, source: str, message: str) -> str:
        """A statement for a printed script: it stops the script (its transaction refused)
        with ``message`` and both counts unless ``table`` holds as many rows as ``source``.
        A dry run cannot count rows it only plans to copy, so the script counts them."""

    def migration_lock(self, executor: Executor, wait: float) -> AbstractContextManager[None]:
        """Held while migrating; engines with one writer per database need none."""
        return nullcontext()

    def translate(self, sql: str) -> str:
        """SQL text written in DuckDB's dialect (the one the services build statements in) as
        this engine's SQL; translated once per statement."""
        return _translated(sql, self.name)

    def inline(self, sql: str, params: Sequence[Any]) -> str:
        """``sql`` with ``params`` written in as SQL literals of this dialect: what a dry run
        prints runs as it is in the engine's own shell (``duckdb``, ``psql``)."""
        if not params:
            return sql
        values = iter(params)
        tree = sqlglot.parse_one(sql, read=self.name).transform(
            lambda node: self.literal(next(values)) if isinstance(node, exp.Placeholder) else node
        )
        return tree.sql(dialect=self.name)

    def literal(self, value: Any) -> exp.Expr:
        """``value`` as an SQL literal of this dialect."""
        if isinstance(value, bytes | bytearray | memoryview):
            return self.bytes_literal(bytes(value).hex())
        if isinstance(value, float):  # a bare 1.5 reads as a DECIMAL, not the bound DOUBLE
            return exp.cast(exp.Literal.string(repr(value)), exp.DataType.Type.DOUBLE)
        return exp.convert(value)

    @abstractmethod
    def bytes_literal(self, hex_digits: str) -> exp.Expr:
        """Bytes written as hexadecimal digits, as this dialect reads a binary value."""

    @abstractmethod
    def is_driver_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` comes from this engine's driver (the command line reports those)."""

    def disk_full(
        self, exc: BaseException, con: Any = None, where: object = None
    ) -> DiskFullError | None:
        """``exc`` as DiskFullError when a full disk or quota caused it (the driver says so
        only in its message), else None. ``con`` is the connection it came from and ``where``
        the database (else the file the message names)."""
        if not self.is_driver_error(exc):
            return None
        return no_room(str(exc), where)

    def checkpoint(self, con: Any, where: object = None) -> None:  # noqa: B027
        """Make every committed write durable in the database itself, raising (DiskFullError
        naming ``where`` for a full disk) when it cannot be; nothing where a commit is durable
        already (a server's)."""


def no_room(text: str, where: object = None) -> DiskFullError | None:
    """DiskFullError when a driver's message ``text`` reports a full disk (ENOSPC) or quota
    (EDQUOT), naming ``where`` (else the file the message names); None otherwise."""
    for code in NO_ROOM:
        if os.strerror(code) in text:
            named = _QUOTED_FILE.search(text)
            file = named.group(1) if named else None
            place = where if where is not None else file
            shown = file if file is not None and file != str(place) else None
            return disk_full(place or "the database", OSError(code, os.strerror(code), shown))
    return None


@lru_cache(maxsize=1024)
def _translated(sql: str, dialect: Dialect) -> str:
    return str(sqlglot.transpile(sql, read="duckdb", write=dialect)[0])
