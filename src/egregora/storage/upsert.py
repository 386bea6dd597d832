"""Upsert on the primary key: new keys are inserted, changed rows replaced, identical rows left
alone (and not counted).

Where the engine updates a referenced row in place (``updates_referenced_rows``), one
``INSERT ... ON CONFLICT DO UPDATE`` does it. DuckDB 1.5 cannot update or delete a row another
table references while the table has an index (documents has several), not even inside one
transaction: there unreferenced rows are deleted and inserted again, and when a changed row is
referenced the table is rebuilt with its dependants (the migrations' rebuild step), which is
slower but keeps every reference and stays atomic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

from egregora.ddl import statements as sql
from egregora.ddl.render import table_ref
from egregora.migrations.rebuild import rebuild_family
from egregora.schema.catalog import CATALOG
from egregora.schema.model import Table
from egregora.storage.batch_sql import count, in_keys, insert, same
from egregora.storage.staging import Staged

if TYPE_CHECKING:
    from egregora.storage.store import Storage


def upsert(store: Storage, table: Table, staged: Staged) -> int:
    """Write ``staged`` over ``table`` by primary key; return the rows written."""
    _drop_identical(store, table, staged)
    if store.engine.updates_referenced_rows:
        return _on_conflict(store, table, staged)
    changed = _changed_keys(store, table, staged)
    try:
        written = count(store, staged.name)
        if _referenced(store, table, changed):
            columns = _changed_columns(store, table, staged)
            if _in_place(table, columns):
                _update_in_place(store, table, staged, columns)
                return written
            _rebuild_with(store, table, staged)
            return written
        store.run(exp.delete(table_ref(table.name)).where(in_keys(table, staged.name)))
        insert(store, table, staged.name)
        return written
    finally:
        store.run(sql.drop_table(changed, store.dialect))


def _drop_identical(store: Storage, table: Table, staged: Staged) -> None:
    """Drop the batch's rows identical to stored ones: they are not rewritten or counted.

    The primary key (never NULL) is compared with plain equality, which its index serves; a
    NULL-safe comparison of every column made PostgreSQL scan the whole table for each
    batch, so storing an export's media slowed down with every part stored before.
    """
    rest = tuple(c for c in table.column_names if c not in table.primary_key)
    match = same(table.primary_key, "s", "t")
    if rest:
        match = exp.and_(match, same(rest, "s", "t", null_safe=True, as_text=_json(table)))
    identical = exp.Exists(
        this=exp.select("1").from_(exp.alias_(table_ref(table.name), "t")).where(match)
    )
    store.run(exp.delete(exp.alias_(table_ref(staged.name), "s")).where(identical))


def _on_conflict(store: Storage, table: Table, staged: Staged) -> int:
    # Row by row, a swap of two stored rows' unique keys would clash half-way: the keys are
    # checked at commit instead (the contract has already checked the batch against them).
    store.engine.defer_unique_checks(store.con)
    free = [c for c in table.column_names if c not in table.primary_key]
    insert = exp.insert(
        exp.select(*[exp.column(c, quoted=True) for c in table.column_names]).from_(
            table_ref(staged.name)
        ),
        table_ref(table.name),
        columns=[exp.to_identifier(c, quoted=True) for c in table.column_names],
    )
    insert.set(
        "conflict",
        exp.OnConflict(
            conflict_keys=[exp.to_identifier(c, quoted=True) for c in table.primary_key],
            action=exp.var("DO UPDATE"),
            expressions=[
                exp.EQ(
                    this=exp.column(c, quoted=True),
                    expression=exp.column(c, table="excluded", quoted=True),
                )
                for c in free
            ],
        ),
    )
    return store.affected(insert)


def _changed_keys(store: Storage, table: Table, staged: Staged) -> str:
    """A temp table of the stored keys the (pruned) batch replaces."""
    name = f"{staged.name}_changed"
    keys = (
        exp.select(*[exp.column(c, table="t", quoted=True) for c in table.primary_key])
        .from_(exp.alias_(table_ref(table.name), "t"))
        .where(in_keys(table, staged.name, alias="t"))
    )
    store.run(
        exp.Create(
            this=table_ref(name),
            kind="TABLE",
            expression=keys,
            properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
        )
    )
    return name


def _changed_columns(store: Storage, table: Table, staged: Staged) -> set[str]:
    """The columns in which some row of the batch differs from the stored row it replaces."""
    checks = [
        exp.alias_(
            exp.func(
                "BOOL_OR", exp.Not(this=same((c,), "s", "t", null_safe=True, as_text=_json(table)))
            ),
            f"c{i}",
        )
        for i, c in enumerate(table.column_names)
    ]
    query = (
        exp.select(*checks)
        .from_(exp.alias_(table_ref(staged.name), "s"))
        .join(exp.alias_(table_ref(table.name), "t"), on=same(table.primary_key, "s", "t"))
    )
    rows = store.run(query)
    row = rows[0] if rows else ()
    return {c for c, changed in zip(table.column_names, row, strict=True) if changed}


def _in_place(table: Table, changed: set[str]) -> bool:
    """Whether DuckDB can UPDATE the referenced rows instead of rebuilding the family.

    It rewrites an update of an indexed column as delete and insert, which a referenced row
    refuses. Measured on 1.5: updating a referenced `documents` row fails even for an
    unindexed column while `runs`, `messages` and `git_repos` rows update fine; the one trait
    `documents` alone has is list columns, so such tables always rebuild.
    """
    indexed = table.indexed_columns("duckdb")
    if any(c.dtype.is_array() for c in table.columns):
        return False
    return not any(c in indexed for c in changed)


def _update_in_place(store: Storage, table: Table, staged: Staged, changed: set[str]) -> None:
    """UPDATE the changed columns of the rows the batch replaces, then insert new keys."""
    free = [c for c in table.column_names if c in changed]
    update = exp.Update(
        this=exp.alias_(table_ref(table.name), "t"),
        expressions=[
            exp.EQ(
                this=exp.column(c, quoted=True),
                expression=exp.column(c, table="s", quoted=True),
            )
            for c in free
        ],
        from_=exp.From(this=exp.alias_(table_ref(staged.name), "s")),
        where=exp.Where(this=same(table.primary_key, "s", "t")),
    )
    if free:
        store.run(update)
    stored = exp.Exists(
        this=exp.select("1")
        .from_(exp.alias_(table_ref(table.name), "t"))
        .where(same(table.primary_key, "s", "t"))
    )
    store.run(exp.delete(exp.alias_(table_ref(staged.name), "s")).where(stored))
    insert(store, table, staged.name)


def _referenced(store: Storage, table: Table, changed: str) -> bool:
    self_referencing = any(fk.references == table.name for fk in table.foreign_keys)
    for child in CATALOG.children(table.name) + ((table,) if self_referencing else ()):
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
            rows = store.run(query)
            if rows and rows[0][0]:
                return True
    return False


def _rebuild_with(store: Storage, table: Table, staged: Staged) -> None:
    def patch(member: Table, aside: str) -> None:
        if member.name != table.name:
            return
        store.run(exp.delete(table_ref(aside)).where(in_keys(table, staged.name)))
        store.run(sql.insert_select(aside, staged.name, table.column_names, store.dialect))

    rebuild_family(store.executor(), CATALOG, CATALOG, table.name, label="upsert", patch=patch)


def _json(table: Table) -> frozenset[str]:
    return frozenset(c.name for c in table.columns if c.dtype.is_json())
