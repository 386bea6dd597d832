"""SQL pieces the write and upsert rooms share: key comparisons, counting, the insert."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

from egregora.ddl import statements as sql
from egregora.ddl.render import table_ref
from egregora.migrations.rebuild import next_generation
from egregora.schema.model import Table

if TYPE_CHECKING:
    from egregora.storage.store import Storage


def insert(store: Storage, table: Table, source: str) -> None:
    """Every row of ``source`` into ``table``, in the order it holds them.

    Not sorted by key first: DuckDB builds the key's index a little faster from sorted rows,
    but the sort holds a second copy of the whole batch (an ingest of 250,000 messages peaked
    100 MB higher, one of 1,000,000 260 MB higher), and memory is what a large chat runs out
    of; ingest hands over its rows in the export's order anyway."""
    columns = table.column_names
    self_referencing = any(fk.references == table.name for fk in table.foreign_keys)
    if not self_referencing or store.engine.same_table_references_in_one_insert:
        store.run(sql.insert_select(table.name, source, columns, store.dialect))
        return
    # Parents first, in generations, for an engine that checks each row as it is inserted.
    while True:
        before = count(store, table.name)
        statement = sql.insert_select(
            table.name,
            source,
            columns,
            store.dialect,
            next_generation(table),
            order_by=table.primary_key,
        )
        store.run(statement)
        if count(store, table.name) == before:
            return


def count(store: Storage, table: str) -> int:
    rows = store.run(sql.count_rows(table, store.dialect))
    return int(rows[0][0]) if rows else 0


def same(
    columns: tuple[str, ...],
    left: str,
    right: str,
    *,
    null_safe: bool = False,
    as_text: frozenset[str] = frozenset(),
) -> exp.Expr:
    """Columns equal between two aliased relations; ``as_text`` ones are compared as text
    (JSON, which PostgreSQL cannot compare as JSON)."""
    parts: list[exp.Expr] = []
    for c in columns:
        a: exp.Expr = exp.column(c, table=left, quoted=True)
        b: exp.Expr = exp.column(c, table=right, quoted=True)
        if c in as_text:
            a, b = exp.cast(a, "text"), exp.cast(b, "text")
        parts.append(
            exp.NullSafeEQ(this=a, expression=b) if null_safe else exp.EQ(this=a, expression=b)
        )
    return exp.and_(*parts)


def key_of(columns: tuple[str, ...], alias: str | None = None) -> exp.Expr:
    """A key as SQL: the column, or a tuple of the columns."""
    keys = [
        exp.column(c, table=alias, quoted=True) if alias else exp.column(c, quoted=True)
        for c in columns
    ]
    return keys[0] if len(keys) == 1 else exp.Tuple(expressions=keys)


def in_keys(table: Table, source: str, alias: str | None = None) -> exp.Expr:
    key = key_of(table.primary_key, alias)
    pick = exp.select(*[exp.column(c, quoted=True) for c in table.primary_key]).from_(
        table_ref(source)
    )
    return exp.In(this=key, query=exp.Subquery(this=pick))
