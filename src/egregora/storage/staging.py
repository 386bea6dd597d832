"""Turn what a caller hands to ``write`` into a temporary relation with the catalog's column types.

On DuckDB an append reads the batch where it lies: a temporary view casting the registered Arrow
data, so a million rows are not copied once more before they are inserted. An upsert prunes its
batch (rows identical to stored ones are dropped), so it gets a temporary table it can delete
from. Other engines get a temporary table, filled by their bulk load.

Accepted inputs: an Ibis table expression, a pyarrow Table, a pandas DataFrame, a list of dicts.
Casts done here (and documented in the README): any numeric or text value that converts to the
column's type exactly (TRY_CAST); JSON columns take JSON text, or dicts/lists (serialised);
timestamp columns take timezone-aware timestamps only (naive ones are refused: their zone is a
guess); a missing nullable column is NULL. Everything else is refused with a report naming the
column, the rows' keys, and the fix; nothing is written.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import duckdb
import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa
from ibis.formats.pyarrow import PyArrowType
from sqlglot import exp

from egregora.contracts.report import ContractReport, RuleFailure
from egregora.ddl.render import sql_type, table_ref
from egregora.errors import ConfigurationError, ContractViolation
from egregora.schema.model import Column, Table

if TYPE_CHECKING:
    from egregora.storage.store import Storage

EXAMPLES = 5
_names = itertools.count()


@dataclass(frozen=True)
class Staged:
    """A temporary view or table holding the batch, typed like the catalog table."""

    name: str
    rows: int
    source: str | None = None  # the registered Arrow data a view reads, unregistered by drop


def to_arrow(data: Any, table: Table | None = None) -> pa.Table:
    """The caller's batch as an Arrow table.

    For a list of dicts, dicts and lists bound for JSON columns become JSON text (so each keeps
    exactly its own keys), and a column whose values mix types is read as text, so that the
    values which do not fit are reported with their rows instead of failing the whole batch.
    """
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, ir.Table):
        arrow: pa.Table = data.to_pyarrow()
        return arrow
    if isinstance(data, list):
        if not all(isinstance(row, dict) for row in data):
            raise ConfigurationError(
                "write() takes a list of dicts (one per row); got another list"
            )
        # Every key of every row is a column (from_pylist would read the first row's keys only).
        names = list(dict.fromkeys(key for row in data for key in row))
        json_columns = {c.name for c in table.columns if c.dtype.is_json()} if table else set()
        arrays = {}
        for name in names:
            values = [row.get(name) for row in data]
            if any(isinstance(v, datetime) and v.tzinfo is None for v in values):
                # One naive value makes the column naive, which staging refuses by name.
                values = [v.replace(tzinfo=None) if isinstance(v, datetime) else v for v in values]
            else:
                values = [_utc(v) for v in values]
            if name in json_columns:
                values = [_json_text(v) for v in values]
            try:
                arrays[name] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                arrays[name] = pa.array([None if v is None else str(v) for v in values])
        return pa.Table.from_pydict(arrays) if arrays else pa.table({})
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas comes with ibis
        pd = None
    if pd is not None and isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise ConfigurationError(
        "write() takes an Ibis table, a pyarrow Table, a pandas DataFrame or a list of dicts; "
        f"got {type(data).__name__}"
    )


def _json_text(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict | list) else value


def _utc(value: Any) -> Any:
    """An aware datetime as the same instant in UTC; anything else unchanged.

    Once pandera is imported (it comes with egregora), pyarrow 26 converts a datetime with a
    fixed non-UTC offset by its wall-clock time, moving the instant; UTC ones convert right.
    """
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value


def utc_timestamps(data: pa.Table) -> pa.Table:
    """Relabel zone-aware timestamp columns as UTC (the same instants).

    Arrow stores aware timestamps as UTC instants with a zone label; DuckDB 1.5 misreads
    fixed-offset labels such as "+02:00" as wall-clock times, so only "UTC" is handed over.
    """
    for index, field in enumerate(data.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz not in (None, "UTC"):
            utc = pa.timestamp(field.type.unit, tz="UTC")
            data = data.set_column(index, field.with_type(utc), data.column(index).cast(utc))
    return data


def _col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def _cast_expr(column: Column, source: pa.DataType) -> tuple[exp.Expr, str | None]:
    """The SQL producing ``column`` from a source of Arrow type ``source``, or why it cannot."""
    target = sql_type(column.dtype.copy(nullable=True), "duckdb")
    value = _col(column.name)
    dtype = column.dtype
    if dtype.is_timestamp():
        if pa.types.is_timestamp(source):
            if source.tz is None:
                return value, (
                    f"{column.name} holds timestamps without a time zone; make them "
                    "timezone-aware (for example datetime(..., tzinfo=UTC) or "
                    "Series.dt.tz_localize('UTC'))"
                )
            return exp.Cast(this=value, to=target), None
        if pa.types.is_null(source):
            return exp.Cast(this=value, to=target), None
        return value, f"{column.name} must hold timezone-aware timestamps, not {source}"
    if dtype.is_json():
        if (
            pa.types.is_string(source)
            or pa.types.is_large_string(source)
            or pa.types.is_null(source)
        ):
            return exp.TryCast(this=value, to=target), None
        return exp.func("to_json", value), None
    if same_type(source, column):
        return value, None  # nothing to convert, nothing that can be lost
    return exp.TryCast(this=value, to=target), None


def same_type(source: pa.DataType, column: Column) -> bool:
    """Whether values of Arrow type ``source`` already have ``column``'s type."""
    return _same_type(source, column.dtype)


@lru_cache(maxsize=512)
def _same_type(source: pa.DataType, dtype: dt.DataType) -> bool:
    try:
        arrived = PyArrowType.to_ibis(source)
    except (TypeError, NotImplementedError):
        return False
    return bool(arrived.copy(nullable=True) == dtype.copy(nullable=True))


def casts_in_place(store: Storage) -> bool:
    """Whether staging casts values in the store's own engine (one that scans Arrow where it
    lies), rather than in the store's private DuckDB before sending them on."""
    return bool(store.engine.scans_arrow)


def stage(
    store: Storage, table: Table, data: pa.Table, *, editable: bool = False
) -> tuple[Staged, list[RuleFailure]]:
    """``data`` in ``store``'s database with ``table``'s column types, and the failures of shape
    or type found on the way (the staged relation is still made, so the contract can add its own
    findings to the same report). ``drop`` removes it.

    An engine that scans Arrow gets a temporary view over the registered data (or, ``editable``,
    a temporary table rows can be deleted from). Any other receives a temporary table filled by
    its bulk load, from the same casts made in a private in-memory DuckDB, so every engine
    accepts and refuses exactly the same values.
    """
    if casts_in_place(store):
        return stage_arrow(store.con, table, data, editable=editable)
    local = store.scratch()
    cast, failures = stage_arrow(local, table, data)
    try:
        typed = local.table(cast.name).to_arrow_table()
    finally:
        drop_arrow(local, cast)
    name = f"_egregora_stage_{next(_names)}"
    columns = [
        exp.ColumnDef(
            this=exp.to_identifier(c.name, quoted=True),
            kind=sql_type(c.dtype.copy(nullable=True), store.dialect),
        )
        for c in table.columns
    ]
    store.run(
        exp.Create(
            this=exp.Schema(this=table_ref(name), expressions=columns),
            kind="TABLE",
            properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
        )
    )
    store.engine.load(store.con, name, typed)
    return Staged(name, typed.num_rows), failures


def stage_arrow(
    con: duckdb.DuckDBPyConnection, table: Table, data: pa.Table, *, editable: bool = False
) -> tuple[Staged, list[RuleFailure]]:
    """Register ``data`` on a DuckDB connection and cast it to ``table``'s types: a temporary
    view over it, or with ``editable`` a temporary table (a copy rows can be deleted from)."""
    failures: list[RuleFailure] = []
    source = f"_egregora_in_{next(_names)}"
    staged = f"_egregora_stage_{next(_names)}"
    known = set(table.column_names)
    for name in data.column_names:
        if name not in known:
            failures.append(
                RuleFailure(
                    f"unknown_column({name})",
                    f"{table.name} has no column {name!r}; drop it from the data, or declare it "
                    "in the catalog",
                    None,
                )
            )
    data = utc_timestamps(data)
    con.register(source, data)
    try:
        selects: list[exp.Expr] = []
        checks: list[tuple[str, exp.Expr]] = []
        for column in table.columns:
            target = sql_type(column.dtype.copy(nullable=True), "duckdb")
            if column.name not in data.column_names:
                if not column.nullable:
                    failures.append(
                        RuleFailure(
                            f"missing_column({column.name})",
                            f"the data has no column {column.name!r}, which {table.name} "
                            "requires (NOT NULL)",
                            None,
                        )
                    )
                selects.append(
                    exp.alias_(exp.Cast(this=exp.Null(), to=target), column.name, quoted=True)
                )
                continue
            expression, problem = _cast_expr(column, data.schema.field(column.name).type)
            if problem is not None:
                failures.append(RuleFailure(f"type({column.name})", problem, None))
                expression = exp.Cast(this=exp.Null(), to=target)
            elif isinstance(expression, exp.TryCast):
                lost: exp.Expr = exp.Is(this=expression.copy(), expression=exp.Null())
                source_type = data.schema.field(column.name).type
                if column.dtype.is_integer() and not pa.types.is_integer(source_type):
                    # TRY_CAST rounds 2.5 (and '2.5') to 3: a value that is not a whole
                    # number is lost, not converted.
                    as_double = exp.TryCast(this=_col(column.name), to=exp.DataType.build("DOUBLE"))
                    lost = exp.or_(lost, exp.NEQ(this=expression.copy(), expression=as_double))
                lost = exp.and_(
                    exp.Not(this=exp.Is(this=_col(column.name), expression=exp.Null())), lost
                )
                checks.append((column.name, lost))
            selects.append(exp.alias_(expression, column.name, quoted=True))
        failures += _lost_values(con, table, source, data.column_names, checks)
        create = exp.Create(
            this=table_ref(staged),
            kind="TABLE" if editable else "VIEW",
            expression=exp.select(*selects).from_(table_ref(source)),
            properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
        )
        con.execute(create.sql(dialect="duckdb"))
    except BaseException:
        con.unregister(source)
        raise
    if editable:
        con.unregister(source)
        return Staged(staged, data.num_rows), failures
    return Staged(staged, data.num_rows, source), failures


def _lost_values(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    source: str,
    present: Sequence[str],
    checks: list[tuple[str, exp.Expr]],
) -> list[RuleFailure]:
    """Values that do not convert to their column's type, counted, with the rows' keys."""
    if not checks:
        return []
    counts = exp.select(
        *[exp.alias_(exp.func("count_if", lost), f"c{i}") for i, (_, lost) in enumerate(checks)]
    ).from_(table_ref(source))
    row = con.execute(counts.sql(dialect="duckdb")).fetchone()
    assert row is not None
    failures = []
    keys = [k for k in table.primary_key if k in present]
    for (name, lost), count in zip(checks, row, strict=True):
        if not count:
            continue
        shown = [*keys, name] if name not in keys else keys
        query = (
            exp.select(*[_col(c) for c in shown])
            .from_(table_ref(source))
            .where(lost)
            .limit(EXAMPLES)
        )
        cursor = con.execute(query.sql(dialect="duckdb"))
        columns = [d[0] for d in cursor.description]
        examples = tuple(dict(zip(columns, r, strict=True)) for r in cursor.fetchall())
        failures.append(
            RuleFailure(
                f"type({name})",
                f"{name} holds values that are not {table.column(name).dtype.copy(nullable=True)}",
                int(count),
                examples,
            )
        )
    return failures


def refuse(table: Table, rows: int, failures: list[RuleFailure]) -> None:
    if failures:
        raise ContractViolation(ContractReport(table.name, rows, tuple(failures)))


@contextmanager
def uploaded(store: Storage, data: pa.Table) -> Iterator[ir.Table]:
    """``data`` (any columns) as a relation ``store``'s Ibis queries can join, for as long as
    the block runs. An engine that scans Arrow reads it where it lies (an Ibis memtable); any
    other gets a temporary table filled by its bulk load and dropped afterwards, since Ibis
    would insert an in-memory table row by row (5 s for 100,000 git probes on PostgreSQL)."""
    if store.engine.scans_arrow:
        yield ibis.memtable(data)
        return
    name = f"_egregora_upload_{next(_names)}"
    schema = ibis.Schema.from_pyarrow(data.schema)
    columns = [
        exp.ColumnDef(
            this=exp.to_identifier(column, quoted=True), kind=sql_type(dtype, store.dialect)
        )
        for column, dtype in schema.items()
    ]
    store.run(
        exp.Create(
            this=exp.Schema(this=table_ref(name), expressions=columns),
            kind="TABLE",
            properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
        )
    )
    try:
        store.engine.load(store.con, name, data)
        yield store.ibis.table(name)
    finally:
        store.run(exp.Drop(this=table_ref(name), kind="TABLE", exists=True))


def drop(store: Storage, staged: Staged) -> None:
    if staged.source is not None:
        drop_arrow(store.con, staged)
        return
    store.run(exp.Drop(this=table_ref(staged.name), kind="TABLE", exists=True))


def drop_arrow(con: duckdb.DuckDBPyConnection, staged: Staged) -> None:
    kind = "TABLE" if staged.source is None else "VIEW"
    con.execute(exp.Drop(this=table_ref(staged.name), kind=kind, exists=True).sql("duckdb"))
    if staged.source is not None:
        con.unregister(staged.source)
