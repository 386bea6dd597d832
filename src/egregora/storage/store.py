"""The one gateway to a database: typed tables, validated atomic writes, thread-safe use.

Every write goes: to Arrow, staged with the catalog's types, judged by the table's contract
(plus the keys already in the table), then written in one transaction. Any failure leaves
the database as it was and raises ContractViolation with a readable report.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Literal

import duckdb
import ibis
import ibis.expr.types as ir
from ibis.backends.duckdb import Backend as DuckDBBackend
from sqlglot import exp

from egregora.backends import DatabaseURL, connect_duckdb
from egregora.backends.duckdb import DuckDBExecutor
from egregora.contracts.contract import contract_for
from egregora.contracts.report import ContractReport, RuleFailure
from egregora.ddl import statements as sql
from egregora.ddl.render import table_ref
from egregora.errors import (
    ConfigurationError,
    ContractViolation,
    DatabaseError,
    SchemaError,
    UnsupportedBackendError,
)
from egregora.migrations.engine import MigrateResult, migrate
from egregora.migrations.rebuild import next_generation, rebuild_family
from egregora.schema.catalog import CATALOG
from egregora.schema.model import Table
from egregora.storage.documents import Documents
from egregora.storage.staging import Staged, drop, refuse, stage, to_arrow

Mode = Literal["append", "upsert"]
EXAMPLES = 5


class Storage:
    """A database opened through ``Storage.open``; use it as a context manager."""

    def __init__(self, backend: DuckDBBackend, url: DatabaseURL, read_only: bool) -> None:
        self._backend = backend
        self.url = url
        self.read_only = read_only
        self._lock = threading.RLock()
        self._depth = 0
        self._checked: set[str] = set()
        self._tables: dict[str, ir.Table] = {}  # typed tables, checked once against the catalog
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
        if not parsed.backend.serves_data:
            raise UnsupportedBackendError(
                f"{parsed} is a {parsed.dialect} database: {parsed.backend.serves_data.reason}"
            )
        backend = connect_duckdb(parsed, read_only=read_only, create=create, timeout=timeout)
        return cls(backend, parsed, read_only)

    def close(self) -> None:
        with self._lock:
            self._backend.disconnect()

    def __enter__(self) -> Storage:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        con: duckdb.DuckDBPyConnection = self._backend.con
        return con

    def ensure_schema(self) -> MigrateResult:
        """Migrate the database to the latest schema (a no-op when it is there already)."""
        with self._lock:
            self._checked.clear()
            self._tables.clear()
            return migrate(DuckDBExecutor(self.con))

    # -- reading --------------------------------------------------------------------------------
    def table(self, name: str) -> ir.Table:
        """The catalog table ``name`` as an Ibis table, checked once to have the catalog's types."""
        declared = _declared(name)
        with self._lock:
            cached = self._tables.get(name)
            if cached is not None:
                return cached
            try:
                table = self._backend.table(name)
            except Exception as exc:
                raise SchemaError(
                    f"{self.url} has no table {name!r}; run `egregora db migrate --db {self.url}`"
                    " (or store.ensure_schema())"
                ) from exc
            if name not in self._checked:
                if table.schema() != declared.schema:
                    raise SchemaError(
                        f"{name} in {self.url} does not have the catalog's columns; run "
                        f"`egregora db status --db {self.url}` to see the drift"
                    )
                self._checked.add(name)
            self._tables[name] = table
        return table

    def execute(self, expr: ir.Expr) -> Any:
        """Run an expression under the storage lock (safe beside other threads' writes)."""
        with self._lock:
            return expr.execute()

    def query(self, statement: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read-only statement built by sqlglot, with bound parameters.

        For hot lookups where compiling an Ibis expression per call would cost more than the
        query itself; the statement is built once, values are always parameters.
        """
        with self._lock:
            return self.con.execute(statement, list(parameters)).fetchall()

    def change(self, statement: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one UPDATE or DELETE built by sqlglot, with bound parameters; return the rows
        of its RETURNING clause.

        For state changes of stored rows (a task claimed, a lease renewed, hits counted) where
        staging and validating a batch would cost many times the change itself. The database's
        CHECKs, keys and foreign keys still judge every changed row; a refusal changes nothing
        (one statement is atomic) and raises DatabaseError. New rows go through ``write``.
        """
        with self._lock:
            self._refuse_read_only()
            try:
                return self.con.execute(statement, list(parameters)).fetchall()
            except duckdb.Error as exc:
                raise _rolled_back("a change", "changed", exc) from exc

    def to_pyarrow(self, expr: ir.Expr) -> Any:
        with self._lock:
            return expr.to_pyarrow()

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
            self._refuse_read_only()
            self.con.execute("BEGIN TRANSACTION")
            self._depth = 1
            try:
                yield self
            except BaseException:
                self.con.execute("ROLLBACK")
                raise
            else:
                self.con.execute("COMMIT")
            finally:
                self._depth = 0

    def write(self, name: str, data: Any, *, mode: Mode = "append") -> int:
        """Validate ``data`` against ``name``'s contract and write it in one transaction.

        ``mode="append"`` adds rows (a key already in the table is a violation); ``"upsert"``
        adds new keys and replaces rows whose primary key exists. Returns the rows written
        (an upserted row identical to the stored one is not rewritten and not counted).
        """
        if mode not in ("append", "upsert"):
            raise ConfigurationError(f"mode must be 'append' or 'upsert', not {mode!r}")
        declared = _declared(name)
        with self._lock:  # an Ibis input may read this very connection
            arrow = to_arrow(data, declared)
            if arrow.num_rows == 0 and arrow.num_columns == 0:
                return 0  # an empty list: nothing to write
            self._refuse_read_only()
            self.table(name)  # the table exists with the catalog's types
            staged, failures = stage(self.con, declared, arrow, editable=mode == "upsert")
            try:
                batch = self._backend.table(staged.name)
                if not failures:
                    report = contract_for(name).validate(
                        batch, parents=self._parents(declared, batch), max_examples=EXAMPLES
                    )
                    failures += report.failures
                if not failures:
                    failures += self._key_conflicts(declared, staged, mode)
                refuse(declared, staged.rows, failures)
                with self.transaction():
                    try:
                        return self._store(declared, staged, mode)
                    except duckdb.ConstraintException as exc:
                        raise ContractViolation(_database_report(declared, staged, exc)) from exc
                    except duckdb.Error as exc:
                        raise _rolled_back(f"writing {name}", "written", exc) from exc
            finally:
                drop(self.con, staged)

    def delete(self, name: str, where: Callable[[ir.Table], ir.BooleanValue]) -> int:
        """Delete the rows of ``name`` for which ``where(table)`` holds; return how many.

        The predicate is an Ibis expression on the typed table (it may read other stored
        tables), so callers write no SQL. A row another table still references is refused by
        the database (DatabaseError), and the delete is rolled back whole.
        """
        declared = _declared(name)
        with self._lock:
            self._refuse_read_only()
            table = self.table(name)
            doomed = table.filter(where(table)).select(*declared.primary_key)
            query = self._backend.compiler.to_sqlglot(doomed)
            statement = exp.delete(table_ref(name)).where(
                exp.In(this=_key(declared.primary_key), query=exp.Subquery(this=query))
            )
            with self.transaction():
                try:
                    row = self.con.execute(statement.sql("duckdb")).fetchone()
                except duckdb.Error as exc:
                    raise _rolled_back(f"deleting from {name}", "deleted", exc) from exc
            return int(row[0]) if row else 0

    def _refuse_read_only(self) -> None:
        if self.read_only:
            raise DatabaseError(f"{self.url} was opened read-only; open it without read_only")

    def _parents(self, table: Table, batch: ir.Table) -> dict[str, ir.Table]:
        parents: dict[str, ir.Table] = {}
        for fk in table.foreign_keys:
            live = self.table(fk.references)
            if fk.references == table.name:  # a row may name a parent of the same batch
                ref = fk.ref_column
                nullable = table.column(ref).dtype.copy(nullable=True)
                live = ibis.union(
                    live.select(live[ref].cast(nullable).name(ref)),
                    batch.select(batch[ref].cast(nullable).name(ref)),
                    distinct=True,
                )
            parents[fk.references] = live
        return parents

    def _key_conflicts(self, table: Table, staged: Staged, mode: Mode) -> list[RuleFailure]:
        """Keys of the batch that rows already in the table hold."""
        failures = []
        for key in table.keys:
            is_pkey = key.columns == table.primary_key
            if is_pkey and mode == "upsert":
                continue
            where = _same(key.columns, "s", "t")
            if mode == "upsert":  # a stored row the batch replaces gives its keys up
                where = exp.and_(where, exp.Not(this=_same(table.primary_key, "s", "t")))
                replaced = exp.Exists(
                    this=exp.select("1")
                    .from_(exp.alias_(table_ref(staged.name), "r"))
                    .where(_same(table.primary_key, "r", "t"))
                )
                where = exp.and_(where, exp.Not(this=replaced))
            shown = list(dict.fromkeys([*table.primary_key, *key.columns]))
            query = (
                exp.select(*[exp.column(c, table="s", quoted=True) for c in shown])
                .from_(exp.alias_(table_ref(staged.name), "s"))
                .join(exp.alias_(table_ref(table.name), "t"), on=where)
            )
            rows = self.con.execute(query.sql("duckdb")).fetchall()
            if rows:
                what = "key" if is_pkey else f"({', '.join(key.columns)})"
                hint = " (write with mode='upsert' to replace those rows)" if is_pkey else ""
                failures.append(
                    RuleFailure(
                        key.name,
                        f"{what} already held by a row of {table.name}{hint}",
                        len(rows),
                        tuple(dict(zip(shown, r, strict=True)) for r in rows[:EXAMPLES]),
                    )
                )
        return failures

    def _store(self, table: Table, staged: Staged, mode: Mode) -> int:
        if mode == "append":
            self._insert(table, staged.name, table.column_names)
            return staged.rows
        return self._upsert(table, staged)

    def _insert(self, table: Table, source: str, columns: tuple[str, ...]) -> None:
        if not any(fk.references == table.name for fk in table.foreign_keys):
            statement = sql.insert_select(
                table.name, source, columns, "duckdb", order_by=table.primary_key
            )
            self.con.execute(statement)
            return
        # DuckDB checks a same-table reference within one INSERT: parents first, in generations.
        while True:
            before = self._count(table.name)
            where = next_generation(table)
            statement = sql.insert_select(
                table.name, source, columns, "duckdb", where, order_by=table.primary_key
            )
            self.con.execute(statement)
            if self._count(table.name) == before:
                return

    def _upsert(self, table: Table, staged: Staged) -> int:
        """New keys are inserted; changed rows are replaced; identical rows are left alone.

        DuckDB cannot update or delete a row another table references while the table has an
        index (documents has several), not even inside one transaction. Unreferenced rows are
        deleted and inserted again; when a changed row is referenced, the table is rebuilt with
        its dependants (the rebuild step of the migrations), which is slower but keeps every
        reference and stays atomic.
        """
        changed = self._changed_keys(table, staged)
        try:
            written = self._count(staged.name)
            if self._referenced(table, changed):
                columns = self._changed_columns(table, staged)
                if self._in_place(table, columns):
                    self._update_in_place(table, staged, columns)
                    return written
                self._rebuild_with(table, staged)
                return written
            where = _in_keys(table, staged.name)
            self.con.execute(exp.delete(table_ref(table.name)).where(where).sql("duckdb"))
            self._insert(table, staged.name, table.column_names)
            return written
        finally:
            self.con.execute(sql.drop_table(changed, "duckdb"))

    def _changed_columns(self, table: Table, staged: Staged) -> set[str]:
        """The columns in which some row of the batch differs from the stored row it replaces."""
        checks = [
            exp.alias_(
                exp.func(
                    "BOOL_OR",
                    exp.Not(this=_same((c,), "s", "t", null_safe=True)),
                ),
                f"c{i}",
            )
            for i, c in enumerate(table.column_names)
        ]
        query = (
            exp.select(*checks)
            .from_(exp.alias_(table_ref(staged.name), "s"))
            .join(exp.alias_(table_ref(table.name), "t"), on=_same(table.primary_key, "s", "t"))
        )
        row = self.con.execute(query.sql("duckdb")).fetchone() or ()
        return {c for c, changed in zip(table.column_names, row, strict=True) if changed}

    def _in_place(self, table: Table, changed: set[str]) -> bool:
        """Whether DuckDB can UPDATE the referenced rows instead of rebuilding the family.

        It rewrites an update of an indexed column as delete and insert, which a referenced
        row refuses. Measured on 1.5: updating a referenced `documents` row fails even for an
        unindexed column while `runs`, `messages` and `git_repos` rows update fine; the one
        trait `documents` alone has is list columns, so such tables always rebuild.
        """
        indexed = table.indexed_columns("duckdb")
        if any(c.dtype.is_array() for c in table.columns):
            return False
        return not any(c in indexed for c in changed)

    def _update_in_place(self, table: Table, staged: Staged, changed: set[str]) -> None:
        """UPDATE the changed columns of the rows the batch replaces, then insert new keys."""
        free = [c for c in table.column_names if c in changed]
        target = exp.alias_(table_ref(table.name), "t")
        update = exp.Update(
            this=target,
            expressions=[
                exp.EQ(
                    this=exp.column(c, quoted=True),
                    expression=exp.column(c, table="s", quoted=True),
                )
                for c in free
            ],
            from_=exp.From(this=exp.alias_(table_ref(staged.name), "s")),
            where=exp.Where(this=_same(table.primary_key, "s", "t")),
        )
        if free:
            self.con.execute(update.sql("duckdb"))
        stored = exp.Exists(
            this=exp.select("1")
            .from_(exp.alias_(table_ref(table.name), "t"))
            .where(_same(table.primary_key, "s", "t"))
        )
        self.con.execute(
            exp.delete(exp.alias_(table_ref(staged.name), "s")).where(stored).sql("duckdb")
        )
        self._insert(table, staged.name, table.column_names)

    def _changed_keys(self, table: Table, staged: Staged) -> str:
        """Drop identical rows from the batch; return a temp table of changed stored keys."""
        identical = exp.Exists(
            this=exp.select("1")
            .from_(exp.alias_(table_ref(table.name), "t"))
            .where(_same(table.column_names, "s", "t", null_safe=True))
        )
        self.con.execute(
            exp.delete(exp.alias_(table_ref(staged.name), "s")).where(identical).sql("duckdb")
        )
        name = f"{staged.name}_changed"
        keys = (
            exp.select(*[exp.column(c, table="t", quoted=True) for c in table.primary_key])
            .from_(exp.alias_(table_ref(table.name), "t"))
            .where(_in_keys(table, staged.name, alias="t"))
        )
        self.con.execute(
            exp.Create(
                this=table_ref(name),
                kind="TABLE",
                expression=keys,
                properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
            ).sql("duckdb")
        )
        return name

    def _referenced(self, table: Table, changed: str) -> bool:
        for child in CATALOG.children(table.name) + ((table,) if _self_ref(table) else ()):
            for fk in child.foreign_keys:
                if fk.references != table.name:
                    continue
                query = (
                    exp.select(exp.Count(this=exp.Star()))
                    .from_(table_ref(child.name))
                    .where(
                        exp.column(fk.column, quoted=True).isin(
                            query=exp.select(exp.column(fk.ref_column, quoted=True)).from_(
                                table_ref(changed)
                            )
                        )
                    )
                )
                row = self.con.execute(query.sql("duckdb")).fetchone()
                if row and row[0]:
                    return True
        return False

    def _rebuild_with(self, table: Table, staged: Staged) -> None:
        def patch(member: Table, aside: str) -> None:
            if member.name != table.name:
                return
            self.con.execute(
                exp.delete(table_ref(aside)).where(_in_keys(table, staged.name)).sql("duckdb")
            )
            self.con.execute(sql.insert_select(aside, staged.name, table.column_names, "duckdb"))

        rebuild_family(
            DuckDBExecutor(self.con), CATALOG, CATALOG, table.name, label="upsert", patch=patch
        )

    def _count(self, table: str) -> int:
        row = self.con.execute(sql.count_rows(table, "duckdb")).fetchone()
        return int(row[0]) if row else 0


def _declared(name: str) -> Table:
    try:
        return CATALOG[name]
    except KeyError as exc:
        raise ConfigurationError(str(exc.args[0])) from None


def _self_ref(table: Table) -> bool:
    return any(fk.references == table.name for fk in table.foreign_keys)


def _same(columns: tuple[str, ...], left: str, right: str, *, null_safe: bool = False) -> exp.Expr:
    parts: list[exp.Expr] = []
    for c in columns:
        a, b = exp.column(c, table=left, quoted=True), exp.column(c, table=right, quoted=True)
        parts.append(
            exp.NullSafeEQ(this=a, expression=b) if null_safe else exp.EQ(this=a, expression=b)
        )
    return exp.and_(*parts)


def _key(columns: tuple[str, ...], alias: str | None = None) -> exp.Expr:
    """A key as SQL: the column, or a tuple of the columns."""
    keys = [
        exp.column(c, table=alias, quoted=True) if alias else exp.column(c, quoted=True)
        for c in columns
    ]
    return keys[0] if len(keys) == 1 else exp.Tuple(expressions=keys)


def _rolled_back(what: str, done: str, exc: duckdb.Error) -> DatabaseError:
    cause = " ".join(str(exc).split())
    return DatabaseError(
        f"{what} failed and was rolled back, nothing was {done}: {type(exc).__name__}: {cause}"
    )


def _in_keys(table: Table, source: str, alias: str | None = None) -> exp.Expr:
    key = _key(table.primary_key, alias)
    pick = exp.select(*[exp.column(c, quoted=True) for c in table.primary_key]).from_(
        table_ref(source)
    )
    return exp.In(this=key, query=exp.Subquery(this=pick))


def _database_report(
    table: Table, staged: Staged, exc: duckdb.ConstraintException
) -> ContractReport:
    message = " ".join(str(exc).split())
    return ContractReport(
        table.name,
        staged.rows,
        (RuleFailure("database", f"the database refused the batch: {message}", None),),
    )
