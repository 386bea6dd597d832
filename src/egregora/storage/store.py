"""The one gateway to a database: typed tables, validated atomic writes, thread-safe use.

The gateway opens, reads (typed Ibis tables), runs statements and groups them in transactions;
the validated batch write lives in ``writing`` and upsert in ``upsert``. Whatever differs
between engines is asked of ``self.engine``, the backend object of the URL's engine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import duckdb
import ibis.expr.types as ir
import pyarrow as pa
from ibis.backends import BaseBackend
from sqlglot import exp

from egregora.backends import Backend, DatabaseURL, Executor
from egregora.ddl.render import Dialect, table_ref
from egregora.errors import DatabaseError, EgregoraError, SchemaError, UnsupportedBackendError
from egregora.migrations.engine import MigrateResult, migrate
from egregora.storage.batch_sql import key_of
from egregora.storage.checks import Mode
from egregora.storage.documents import Documents
from egregora.storage.staging import uploaded
from egregora.storage.writing import declared_table, write_batch


class Storage:
    """A database opened through ``Storage.open``; use it as a context manager."""

    def __init__(self, backend: BaseBackend, url: DatabaseURL, read_only: bool) -> None:
        self.ibis = backend  # the Ibis connection; ``table`` hands out its typed tables
        self.url = url
        self.engine: Backend = url.backend
        self.dialect: Dialect = self.engine.name
        self.read_only = read_only
        self._lock = threading.RLock()
        self._depth = 0
        self._checked: set[str] = set()
        self._tables: dict[str, ir.Table] = {}  # typed tables, checked once against the catalog
        self._rendered: dict[int, tuple[exp.Expr, str]] = {}  # by ``prepared``
        self._scratch: duckdb.DuckDBPyConnection | None = None
        self._closed = False
        self.documents = Documents(self)

    # -- opening and closing ------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        read_only: bool = False,
        create: bool = True,
        timeout: float = 0.0,
    ) -> Storage:
        """Open the database ``url`` (read as the CLI's ``--db``); nothing in it is changed.

        A DuckDB file held by another process raises DatabaseLockedError naming its PID; with
        ``timeout`` > 0 opening is retried until then. A missing file is created empty when
        opened for writing with ``create`` (tables come from ``ensure_schema``); otherwise it
        raises DatabaseNotFoundError.
        """
        parsed = DatabaseURL.parse(url)
        engine = parsed.backend
        if not engine.serves_data:
            raise UnsupportedBackendError(
                f"{parsed} is a {parsed.dialect} database: {engine.serves_data.reason}"
            )
        backend = engine.connect(parsed, read_only=read_only, create=create, timeout=timeout)
        return cls(backend, parsed, read_only)

    def close(self) -> None:
        """Close the store, first making what it wrote durable (``checkpoint``): a full disk
        raises DiskFullError, and the store is closed all the same."""
        with self._lock:
            try:
                if not self.read_only and not self._closed:
                    self.checkpoint()
            finally:
                self._disconnect()

    def _disconnect(self) -> None:
        with self._lock:
            if self._scratch is not None:
                self._scratch.close()
                self._scratch = None
            self.ibis.disconnect()
            self._closed = True

    def checkpoint(self) -> None:
        """Make every committed write durable in the database itself, so that nothing is
        reported stored that is not; DiskFullError when the disk cannot hold it."""
        with self._lock, self._room_checked():
            self.engine.checkpoint(self.con, self.url)

    def scratch(self) -> duckdb.DuckDBPyConnection:
        """A private in-memory DuckDB, opened on first use and closed with the store, where
        batches are cast and values judged the way staging does, whatever the engine
        (callers hold the lock)."""
        with self._lock:
            if self._scratch is None:
                self._scratch = duckdb.connect(":memory:")
            return self._scratch

    def __enter__(self) -> Storage:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if value is None:
            self.close()
        else:  # the block's error is the one to report; nothing is reported stored
            self._disconnect()

    @property
    def con(self) -> Any:
        """The driver's connection (a DuckDB connection, or a psycopg one)."""
        return self.ibis.con

    def executor(self) -> Executor:
        """A migrations executor on this store's connection."""
        return self.engine.executor(self.con)

    def ensure_schema(self) -> MigrateResult:
        """Migrate the database to the latest schema (a no-op when it is there already)."""
        with self._lock:
            self._checked.clear()
            self._tables.clear()
            return migrate(self.executor())

    # -- reading --------------------------------------------------------------------------------
    def table(self, name: str) -> ir.Table:
        """The catalog table ``name`` as an Ibis table, checked once to have the catalog's types."""
        declared = declared_table(name)
        with self._lock:
            cached = self._tables.get(name)
            if cached is not None:
                return cached
            try:
                with self._room_checked():
                    table = self.ibis.table(name)
            except EgregoraError:
                raise
            except Exception as exc:
                raise SchemaError(
                    f"{self.url} has no table {name!r}; run `egregora db migrate --db {self.url}`"
                    " (or store.ensure_schema())"
                ) from exc
            if name not in self._checked:
                if dict(table.schema().items()) != dict(declared.schema.items()):
                    raise SchemaError(
                        f"{name} in {self.url} does not have the catalog's columns; run "
                        f"`egregora db status --db {self.url}` to see the drift"
                    )
                self._checked.add(name)
            if tuple(table.columns) != declared.column_names:
                # The catalog's order, whatever order a migrated table keeps its columns in.
                table = table.select(*declared.column_names)
            self._tables[name] = table
        return table

    def execute(self, expr: ir.Expr) -> Any:
        """Run an expression under the storage lock (safe beside other threads' writes)."""
        with self._lock, self._room_checked():
            return expr.execute()

    def query(
        self, statement: str | exp.Expr, parameters: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        """Run one read-only statement built by sqlglot, with bound parameters.

        For hot lookups where compiling an Ibis expression per call would cost more than the
        query itself; the statement is built once, values are always parameters.
        """
        with self._lock, self._room_checked():
            return self.engine.run(self.con, self.prepared(statement), parameters)

    def change(
        self, statement: str | exp.Expr, parameters: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        """Run one UPDATE or DELETE built by sqlglot, with bound parameters; return the rows
        of its RETURNING clause.

        For state changes of stored rows (a task claimed, a lease renewed, hits counted) where
        staging and validating a batch would cost many times the change itself. The database's
        CHECKs, keys and foreign keys still judge every changed row; a refusal changes nothing
        (one statement is atomic) and raises DatabaseError. New rows go through ``write``.
        """
        with self._lock, self._refused("a change", "changed"):
            self.refuse_read_only()
            return self.engine.run(self.con, self.prepared(statement), parameters)

    def update(self, statement: str | exp.Expr, parameters: Sequence[Any] = ()) -> int:
        """``change`` for a statement without RETURNING; how many rows it changed."""
        with self._lock, self._refused("a change", "changed"):
            self.refuse_read_only()
            return self.engine.affected(self.con, self.prepared(statement), parameters)

    def to_pyarrow(self, expr: ir.Expr) -> Any:
        with self._lock, self._room_checked():
            return expr.to_pyarrow()

    @contextmanager
    def uploaded(self, data: pa.Table) -> Iterator[ir.Table]:
        """``data`` as a table this store's queries can join while the block runs: read where
        it lies on an engine that scans Arrow, else bulk-loaded into a temporary table."""
        with self._lock, self._room_checked(), uploaded(self, data) as table:
            yield table

    # -- statements -----------------------------------------------------------------------------
    def sql(self, statement: str | exp.Expr) -> str:
        """``statement`` as this engine's SQL: a sqlglot tree rendered, text (DuckDB's dialect,
        the one the services write) translated by the engine."""
        if isinstance(statement, exp.Expr):
            return statement.sql(dialect=self.dialect)
        return self.engine.translate(statement)

    def prepared(self, statement: str | exp.Expr) -> str:
        """``sql`` of a statement built once (a module's constant), rendered once per store."""
        if isinstance(statement, str):
            return self.engine.translate(statement)  # cached by the engine
        rendered = self._rendered.get(id(statement))
        if rendered is None or rendered[0] is not statement:
            rendered = self._rendered[id(statement)] = (statement, self.sql(statement))
        return rendered[1]

    def run(
        self, statement: str | exp.Expr, parameters: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        """Run one statement as it is (callers hold the lock); its rows."""
        with self._room_checked():
            return self.engine.run(self.con, self.sql(statement), parameters)

    def affected(self, statement: str | exp.Expr, parameters: Sequence[Any] = ()) -> int:
        """Run one INSERT, UPDATE or DELETE (callers hold the lock); the rows it changed."""
        with self._room_checked():
            return self.engine.affected(self.con, self.sql(statement), parameters)

    @contextmanager
    def _refused(self, what: str, done: str) -> Iterator[None]:
        """A driver's error inside becomes DatabaseError saying ``what`` was rolled back."""
        try:
            yield
        except Exception as exc:
            if not self.engine.is_driver_error(exc):
                raise
            raise self.failed(what, done, exc) from exc

    def failed(self, what: str, done: str, exc: BaseException) -> EgregoraError:
        """The error a driver's refusal of ``what`` becomes: a full disk is named as such."""
        full = self.engine.disk_full(exc, self.con, self.url)
        if full is not None:
            return full
        cause = " ".join(str(exc).split())
        return DatabaseError(
            f"{what} failed and was rolled back, nothing was {done}: {type(exc).__name__}: {cause}"
        )

    @contextmanager
    def _room_checked(self) -> Iterator[None]:
        """A driver's error caused by a full disk (or following one) becomes DiskFullError;
        the engine tells which errors those are."""
        try:
            yield
        except Exception as exc:
            full = self.engine.disk_full(exc, self.con, self.url)
            if full is None:
                raise
            raise full from exc

    # -- writing --------------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Storage]:
        """Group writes: all land together, or none (an exception inside rolls all back)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self.refuse_read_only()
            self.run("BEGIN TRANSACTION")
            self._depth = 1
            try:
                yield self
            except BaseException:
                self.run("ROLLBACK")
                raise
            else:
                self.run("COMMIT")
            finally:
                self._depth = 0

    @property
    def in_transaction(self) -> bool:
        """Whether a ``transaction`` block of this store is open."""
        return self._depth > 0

    def write(self, name: str, data: Any, *, mode: Mode = "append") -> int:
        """Validate ``data`` against ``name``'s contract and write it in one transaction.

        ``mode="append"`` adds rows (a key already in the table is a violation); ``"upsert"``
        adds new keys and replaces rows whose primary key exists. Returns the rows written
        (an upserted row identical to the stored one is not rewritten and not counted).
        """
        with self._lock, self._room_checked():  # an Ibis input may read this very connection
            return write_batch(self, name, data, mode)

    def delete(self, name: str, where: Callable[[ir.Table], ir.BooleanValue]) -> int:
        """Delete the rows of ``name`` for which ``where(table)`` holds; return how many.

        The predicate is an Ibis expression on the typed table (it may read other stored
        tables), so callers write no SQL. A row another table still references is refused by
        the database (DatabaseError), and the delete is rolled back whole.
        """
        with self._lock:
            table = self.table(name)
            return self.delete_keys(name, table.filter(where(table)))

    def delete_keys(self, name: str, keys: ir.Table) -> int:
        """Delete the rows of ``name`` whose primary key a row of ``keys`` (an Ibis table with
        the key's columns, by name) holds; return how many. See ``delete``."""
        declared = declared_table(name)
        with self._lock:
            self.refuse_read_only()
            query = self.ibis.compiler.to_sqlglot(keys.select(*declared.primary_key))
            statement = exp.delete(table_ref(name)).where(
                exp.In(this=key_of(declared.primary_key), query=exp.Subquery(this=query))
            )
            with self.transaction(), self._refused(f"deleting from {name}", "deleted"):
                return self.affected(statement)

    def refuse_read_only(self) -> None:
        if self.read_only:
            raise DatabaseError(f"{self.url} was opened read-only; open it without read_only")
