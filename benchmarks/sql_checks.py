"""The contract's checks as ONE aggregate query, built with sqlglot from the same declarations.

Each output column counts the rows that break one thing (0 everywhere means the data is valid):
a NOT NULL column holding NULL, a row rule that is FALSE (``COUNT(*) FILTER (WHERE NOT (rule))``,
so a NULL rule result passes, as in a SQL CHECK), and for every key the rows beyond the first
sharing a value (``COUNT(*) - COUNT(DISTINCT key)`` over rows whose key columns are all set).
Identifiers are quoted sqlglot identifiers and values sqlglot literals; nothing is formatted.
"""

from __future__ import annotations

from sqlglot import exp

from egregora.ddl.render import table_ref
from egregora.schema.model import Table

ROWS = "rows"


def _column(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def _count_where(condition: exp.Expression | None) -> exp.Expression:
    """``COUNT(*)``, or ``COUNT(*) FILTER (WHERE condition)``."""
    count = exp.Count(this=exp.Star())
    if condition is None:
        return count
    return exp.Filter(this=count, expression=exp.Where(this=condition))


def _is_null(name: str) -> exp.Expression:
    return exp.Is(this=_column(name), expression=exp.Null())


def _all_set(names: tuple[str, ...]) -> exp.Expression:
    """``NOT a IS NULL AND NOT b IS NULL ...``."""
    result: exp.Expression = exp.Not(this=_is_null(names[0]))
    for name in names[1:]:
        result = exp.And(this=result, expression=exp.Not(this=_is_null(name)))
    return result


def _surplus_keys(columns: tuple[str, ...]) -> exp.Expression:
    """Rows whose (fully set) key another row already has: COUNT(*) - COUNT(DISTINCT key)."""
    key: exp.Expression = (
        _column(columns[0])
        if len(columns) == 1
        else exp.Tuple(expressions=[_column(c) for c in columns])
    )
    complete = _all_set(columns)
    distinct = exp.Filter(
        this=exp.Count(this=exp.Distinct(expressions=[key])),
        expression=exp.Where(this=complete.copy()),
    )
    return exp.Sub(this=_count_where(complete), expression=distinct)


def violation_labels(table: Table, *, keys: bool = True) -> tuple[str, ...]:
    """The names of the counted things, in the query's column order (after ``rows``)."""
    not_null = [f"{table.name}_{c.name}_not_null" for c in table.columns if not c.nullable]
    key_names = [k.name for k in table.keys] if keys else []
    return (*not_null, *(r.name for r in table.rules), *key_names)


def violation_query(table: Table, *, keys: bool = True) -> exp.Select:
    """``SELECT COUNT(*) AS rows, <one violation count per check> FROM "table"``.

    ``keys=False`` leaves out the uniqueness counts (NOT NULL and row rules only).
    """
    counts: list[exp.Expression] = [
        _count_where(_is_null(c.name)) for c in table.columns if not c.nullable
    ]
    counts += [_count_where(exp.Not(this=exp.Paren(this=r.sql()))) for r in table.rules]
    if keys:
        counts += [_surplus_keys(k.columns) for k in table.keys]
    labels = (ROWS, *violation_labels(table, keys=keys))
    projections = [_count_where(None), *counts]
    return exp.select(
        *[exp.alias_(p, label, quoted=True) for p, label in zip(projections, labels, strict=True)]
    ).from_(table_ref(table.name))


def violation_sql(table: Table, *, keys: bool = True, dialect: str = "duckdb") -> str:
    return violation_query(table, keys=keys).sql(dialect=dialect)
