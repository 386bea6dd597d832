"""A small append judged where it lies: typed rows checked in Python, one look at the stored
keys and parents, one INSERT of bound values.

Staging a batch (an Arrow view, a temporary table) and counting over it cost milliseconds
whatever the batch's size: for one row, many times its INSERT. A batch of at most
``SMALL_ROWS`` rows whose columns all arrive with the catalog's types (nothing to convert) is
judged here instead: NOT NULL, every rule's ``holds`` (the rule's own Python form, with SQL
CHECK semantics), keys repeated within the batch, JSON text read by DuckDB as staging reads it,
then one statement asking whether stored rows hold its keys and whether its references name
stored parents. A clean batch is inserted with bound values, in one statement. At the
first doubt ``judge`` answers None and the write takes the staged way, which writes the batch
or refuses it with the contract's report: this way only says "clean" sooner, never "broken".
``tests/test_write_checks.py`` proves its verdict the contract's over generated batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from egregora.ddl.render import Dialect, ident, sql_type, table_ref
from egregora.schema.model import Table
from egregora.schema.rules import Rule
from egregora.storage.staging import casts_in_place, same_type, utc_timestamps

if TYPE_CHECKING:
    from egregora.storage.store import Storage

# Above this many rows staging costs less than binding every value (measured on DuckDB: a
# staged one-row append cost 5x a bound one, a staged 1,000-row one less than a bound one).
SMALL_ROWS = 64

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Judged:
    """Rows found clean, in the catalog's column order and primary-key order."""

    table: Table
    rows: list[Row]


def judge(store: Storage, table: Table, data: pa.Table, *, stored: bool = True) -> Judged | None:
    """``data``'s rows when they may be appended as they are; None when the batch must take
    the staged way (too large, a value to convert, a rule broken, a key or parent in doubt).

    With ``stored`` the database is asked first whether stored rows hold its keys and its
    references name parents. Without, the INSERT's own keys and foreign keys answer that (and,
    where staging casts in the store's own engine, its casts whether JSON text reads): a
    refused INSERT then sends the batch the staged way, which says what was wrong. Only a
    write outside any transaction may ask that way: a refused statement aborts a transaction.
    """
    if not 0 < data.num_rows <= SMALL_ROWS:
        return None
    rows = _typed_rows(table, utc_timestamps(data))
    if rows is None or not _hold(table, rows):
        return None
    if (stored or not casts_in_place(store)) and not _json_reads(store, table, rows):
        return None
    if _self_reference_in_batch(store, table, rows):
        return None
    if stored and not _stored_keys_free_and_parents_found(store, table, rows):
        return None
    key = [table.column_names.index(c) for c in table.primary_key]
    rows.sort(key=lambda row: tuple(row[i] for i in key))
    return Judged(table, rows)


def insert(store: Storage, judged: Judged) -> int:
    """Append the judged rows in one INSERT (callers hold the lock)."""
    values = [value for row in judged.rows for value in row]
    store.engine.affected(store.con, _insert(judged.table, len(judged.rows), store.dialect), values)
    return len(judged.rows)


# -- the rows, typed as the catalog's ------------------------------------------------------------
def _typed_rows(table: Table, data: pa.Table) -> list[Row] | None:
    names = set(data.column_names)
    if not names <= set(table.column_names):
        return None  # an unknown column: the staged way names it
    columns: list[list[Any]] = []
    for column in table.columns:
        if column.name not in names:
            if not column.nullable:
                return None
            columns.append([None] * data.num_rows)
            continue
        source = data.schema.field(column.name).type
        json_text = column.dtype.is_json() and (
            pa.types.is_string(source) or pa.types.is_large_string(source)
        )
        if not (pa.types.is_null(source) or json_text or same_type(source, column)):
            return None  # a value to convert: the staged way converts it, or says why not
        columns.append(data.column(column.name).to_pylist())
    return list(zip(*columns, strict=True))


def _hold(table: Table, rows: list[Row]) -> bool:
    """NOT NULL, every row rule, and no key repeated within the batch."""
    names, required, rules = _layout(table)
    if any(row[i] is None for row in rows for i in required):
        return False
    if rules:
        for row in rows:
            named = dict(zip(names, row, strict=True))
            if not all(rule.holds(named) for rule in rules):
                return False
    for key in table.keys:
        values = _key_values(table, key.columns, rows)
        if len(set(values)) != len(values):
            return False
    return True


@cache
def _layout(table: Table) -> tuple[tuple[str, ...], tuple[int, ...], tuple[Rule, ...]]:
    """The column names, the NOT NULL columns' positions, the row rules (each derived anew on
    every access of the table's properties)."""
    required = tuple(i for i, c in enumerate(table.columns) if not c.nullable)
    return table.column_names, required, table.rules


def _key_values(table: Table, columns: Sequence[str], rows: list[Row]) -> list[Row]:
    """Each row's value of the key ``columns``, for the rows where every part is set (a key
    with a NULL part never equals another, as in SQL)."""
    at = [table.column_names.index(c) for c in columns]
    values = [tuple(row[i] for i in at) for row in rows]
    return [v for v in values if None not in v]


@cache
def _unreadable_json(n: int) -> str:
    """For each of ``n`` texts, whether DuckDB reads it as no JSON (one select list: a third
    cheaper than unnesting a list)."""
    json = exp.DataType.build("JSON")
    unread = [
        exp.Is(this=exp.TryCast(this=exp.Placeholder(), to=json), expression=exp.Null())
        for _ in range(n)
    ]
    return exp.select(*unread).sql("duckdb")


def _json_reads(store: Storage, table: Table, rows: list[Row]) -> bool:
    """Every JSON text is JSON to DuckDB, which staging asks (``TRY_CAST``) on every engine."""
    at = [i for i, c in enumerate(table.columns) if c.dtype.is_json()]
    texts = [row[i] for row in rows for i in at if isinstance(row[i], str)]
    if not texts:
        return True
    unread = store.scratch().execute(_unreadable_json(len(texts)), texts).fetchone()
    return unread is not None and not any(unread)


def _self_reference_in_batch(store: Storage, table: Table, rows: list[Row]) -> bool:
    """A row naming another row of the batch as its parent, on an engine that needs parents
    inserted first (the staged way inserts them in generations)."""
    if store.engine.same_table_references_in_one_insert:
        return False
    for fk in table.foreign_keys:
        if fk.references == table.name:
            at, ref = table.column_names.index(fk.column), table.column_names.index(fk.ref_column)
            held = {row[ref] for row in rows}
            if any(row[at] is not None and row[at] in held for row in rows):
                return True
    return False


# -- what is stored --------------------------------------------------------------------------------
def _stored_keys_free_and_parents_found(store: Storage, table: Table, rows: list[Row]) -> bool:
    """One statement: no stored row holds a key of the batch, and every reference names a
    stored parent or a row of the batch (``judge`` has sent the latter the staged way where
    the engine needs parents inserted first)."""
    keys = [(key.columns, _key_values(table, key.columns, rows)) for key in table.keys]
    wanted: list[tuple[str, str, list[Any]]] = []
    for fk in table.foreign_keys:
        at = table.column_names.index(fk.column)
        values = sorted({row[at] for row in rows if row[at] is not None})
        if fk.references == table.name:
            in_batch = {row[table.column_names.index(fk.ref_column)] for row in rows}
            values = [v for v in values if v not in in_batch]
        if values:
            wanted.append((fk.references, fk.ref_column, values))
    shape = (
        tuple((columns, len(values)) for columns, values in keys if values),
        tuple((parent, column, len(values)) for parent, column, values in wanted),
    )
    params = [v for _, values in keys for key in values for v in key]
    params += [v for _, _, values in wanted for v in values]
    answer = store.engine.run(store.con, _lookup(table, shape, store.dialect), params)[0]
    held = answer[: len(shape[0])]
    found = answer[len(shape[0]) :]
    return not any(held) and all(
        int(n) == len(values) for n, (_, _, values) in zip(found, wanted, strict=True)
    )


Shape = tuple[tuple[tuple[tuple[str, ...], int], ...], tuple[tuple[str, str, int], ...]]


@cache
def _lookup(table: Table, shape: Shape, dialect: Dialect) -> str:
    """For each key, whether a stored row holds one of the batch's values (its parts bound in
    row order); for each reference, how many of the batch's distinct values name a parent."""
    parts: list[exp.Expr] = []
    for columns, n in shape[0]:
        one = [
            exp.and_(*[exp.column(c, quoted=True).eq(exp.Placeholder()) for c in columns])
            for _ in range(n)
        ]
        held = exp.select("1").from_(table_ref(table.name)).where(exp.or_(*one))
        parts.append(exp.Exists(this=held))
    for parent, column, n in shape[1]:
        found = (
            exp.select(exp.Count(this=exp.Star()))
            .from_(table_ref(parent))
            .where(
                exp.In(
                    this=exp.column(column, quoted=True),
                    expressions=[exp.Placeholder() for _ in range(n)],
                )
            )
        )
        parts.append(exp.Subquery(this=found))
    return exp.select(*parts).sql(dialect=dialect)


@cache
def _insert(table: Table, n: int, dialect: Dialect) -> str:
    """INSERT of ``n`` rows of bound values, each cast to its column's type."""
    row = exp.Tuple(
        expressions=[
            exp.Cast(this=exp.Placeholder(), to=sql_type(c.dtype.copy(nullable=True), dialect))
            for c in table.columns
        ]
    )
    values = exp.Values(expressions=[row.copy() for _ in range(n)])
    tree = exp.insert(values, table_ref(table.name), columns=[ident(c) for c in table.column_names])
    return tree.sql(dialect=dialect)
