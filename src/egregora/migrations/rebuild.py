"""The rebuild step: recreate a table and the tables that reference it, keeping every row.

DuckDB cannot add CHECK, UNIQUE or FOREIGN KEY constraints to a table, drop a table other
tables reference, or update a referenced row of an indexed table. The one correct way around
all three is to copy the family aside, drop it children first, create it parents first from the
declarations (with keys, checks, foreign keys and indexes) and refill it, inside the caller's
transaction so a failure leaves no trace.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from egregora.ddl import statements as sql
from egregora.ddl.render import table_statements
from egregora.errors import MigrationError
from egregora.migrations.executor import Executor
from egregora.schema.model import Catalog, Table

Patch = Callable[[Table, str], None]
# How deep a tree of rows of one table (runs and their parent runs) a printed script copies:
# egregora nests runs a few deep (a pipeline run, its plan, the work runs after the plan).
SCRIPT_GENERATIONS = 8


def family(catalog: Catalog, table: str) -> list[Table]:
    """``table`` and every table that references it, transitively, parents first."""
    members = {table}
    frontier = [table]
    while frontier:
        for child in catalog.children(frontier.pop()):
            if child.name not in members:
                members.add(child.name)
                frontier.append(child.name)
    return [t for t in catalog if t.name in members]


def aside_name(table: str) -> str:
    return f"_egregora_rebuild_{table}"


def rebuild_family(
    executor: Executor,
    before: Catalog,
    after: Catalog,
    table: str,
    *,
    label: str,
    patch: Patch | None = None,
) -> None:
    """Rebuild ``table`` and its dependants from ``before`` to ``after`` declarations.

    ``patch(table, aside)`` may change a table's rows while they are set aside (the storage
    layer uses it to upsert referenced rows); row counts are then not required to match.
    """
    dialect = executor.dialect
    ordered = family(after, table)
    counts: dict[str, int] = {}
    for t in ordered:
        counts[t.name] = _count(executor, t.name)
        executor.execute(sql.copy_into_temp(t.name, aside_name(t.name), dialect))
        if patch is not None:
            patch(t, aside_name(t.name))
            counts[t.name] = _count(executor, aside_name(t.name))
    for t in reversed(ordered):
        executor.execute(sql.drop_table(t.name, dialect))
    for t in ordered:
        for statement in table_statements(t, dialect):
            executor.execute(statement)
    for t in ordered:
        _refill(executor, before[t.name], t)
        if executor.dry_run:  # the script counts the rows this plan could not
            message = f"{label}: rebuilding {t.name} did not keep every row; nothing was changed"
            check = executor.backend.same_count_check(t.name, aside_name(t.name), message)
            executor.execute(check)
        executor.execute(sql.drop_table(aside_name(t.name), dialect))
        kept = _count(executor, t.name)
        if not executor.dry_run and kept != counts[t.name]:
            raise MigrationError(
                f"{label}: rebuilding {t.name} kept {kept} of {counts[t.name]} rows; "
                "nothing was changed"
            )


def _count(executor: Executor, table: str) -> int:
    if executor.dry_run:
        return 0
    return int(executor.query(sql.count_rows(table, executor.dialect))[0][0])


def _refill(executor: Executor, old: Table, table: Table) -> None:
    kept_columns = {c.name for c in old.columns}
    columns = [c for c in table.column_names if c in kept_columns]
    dialect = executor.dialect
    source = aside_name(table.name)
    if not any(fk.references == table.name for fk in table.foreign_keys):
        executor.execute(sql.insert_select(table.name, source, columns, dialect))
        return
    # A row may reference another row of the same table, and DuckDB checks the reference
    # within one INSERT statement: insert parents before children, one generation at a time.
    # A script cannot loop, so it copies SCRIPT_GENERATIONS of them; its count check stops it
    # (changing nothing) on a deeper tree.
    if executor.dry_run:
        where = next_generation(table)
        for _ in range(SCRIPT_GENERATIONS):
            executor.execute(sql.insert_select(table.name, source, columns, dialect, where))
        return
    while True:
        before = _count(executor, table.name)
        where = next_generation(table)
        executor.execute(sql.insert_select(table.name, source, columns, dialect, where))
        if _count(executor, table.name) == before:
            return


def next_generation(table: Table) -> exp.Expr:
    """Rows not copied yet whose same-table references are all present already."""
    here = exp.Table(this=exp.to_identifier(table.name, quoted=True))
    keys = [exp.column(c, quoted=True) for c in table.primary_key]
    key: exp.Expr = keys[0] if len(keys) == 1 else exp.Tuple(expressions=keys)
    copied = exp.select(*[exp.column(c, quoted=True) for c in table.primary_key]).from_(here)
    conditions: list[exp.Expr] = [exp.Not(this=exp.In(this=key, query=exp.Subquery(this=copied)))]
    for fk in table.foreign_keys:
        if fk.references != table.name:
            continue
        column = exp.column(fk.column, quoted=True)
        parents = exp.select(exp.column(fk.ref_column, quoted=True)).from_(here.copy())
        conditions.append(
            exp.or_(exp.Is(this=column, expression=exp.Null()), column.isin(query=parents))
        )
    return exp.and_(*conditions)
