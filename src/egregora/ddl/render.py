"""Render CREATE TABLE and CREATE INDEX statements from the catalog with sqlglot.

Every identifier is a quoted sqlglot Identifier and every value a sqlglot Literal, so hostile
names and values are escaped by the generator, never formatted into SQL text by hand.
"""

from __future__ import annotations

from collections.abc import Iterable

import ibis.expr.datatypes as dt
import sqlglot
from ibis.backends.sql.datatypes import DuckDBType, PostgresType
from sqlglot import exp

from egregora.constants import DIALECTS as DIALECTS
from egregora.constants import Dialect as Dialect
from egregora.schema.model import Catalog, Table, Unique

_TYPE_MAPPERS = {"duckdb": DuckDBType, "postgres": PostgresType}
# Where a UNIQUE can be declared DEFERRABLE (checked at commit when a transaction asks). DuckDB
# parses the word and ignores it, so it is left out there rather than promised.
DEFERRABLE_KEYS: frozenset[Dialect] = frozenset({"postgres"})


def ident(name: str) -> exp.Identifier:
    """A quoted identifier: the only way a name enters SQL here."""
    return exp.to_identifier(name, quoted=True)


def table_ref(name: str) -> exp.Table:
    return exp.Table(this=ident(name))


def sql_type(dtype: dt.DataType, dialect: Dialect) -> exp.DataType:
    """The SQL type Ibis itself uses for ``dtype`` on ``dialect`` (so reads round-trip)."""
    mapped: exp.DataType = _TYPE_MAPPERS[dialect].from_ibis(dtype)
    return mapped


def _named(name: str, constraint: exp.Expr) -> exp.Constraint:
    return exp.Constraint(this=ident(name), expressions=[constraint])


def unique_constraint(unique: Unique, dialect: Dialect) -> exp.Constraint:
    """CONSTRAINT name UNIQUE (columns), DEFERRABLE where declared so and the dialect can."""
    columns = exp.Schema(expressions=[ident(c) for c in unique.columns])
    deferrable = unique.deferrable and dialect in DEFERRABLE_KEYS
    options = [exp.var("DEFERRABLE")] if deferrable else None
    return _named(unique.name, exp.UniqueColumnConstraint(this=columns, options=options))


def create_table(table: Table, dialect: Dialect, *, if_not_exists: bool = False) -> exp.Create:
    """CREATE TABLE with NOT NULL, PRIMARY KEY, UNIQUE, named CHECK and FOREIGN KEY clauses."""
    parts: list[exp.Expr] = []
    for column in table.columns:
        constraints = []
        if not column.nullable:
            constraints.append(exp.ColumnConstraint(kind=exp.NotNullColumnConstraint()))
        parts.append(
            exp.ColumnDef(
                this=ident(column.name),
                kind=sql_type(column.dtype, dialect),
                constraints=constraints,
            )
        )
    parts.append(
        _named(table.pkey_name, exp.PrimaryKey(expressions=[ident(c) for c in table.primary_key]))
    )
    for unique in table.uniques:
        parts.append(unique_constraint(unique, dialect))
    for rule in table.rules:
        parts.append(_named(rule.name, exp.CheckColumnConstraint(this=rule.sql())))
    for fk in table.foreign_keys:
        reference = exp.Reference(
            this=exp.Schema(this=table_ref(fk.references), expressions=[ident(fk.ref_column)])
        )
        parts.append(
            _named(fk.name, exp.ForeignKey(expressions=[ident(fk.column)], reference=reference))
        )
    return exp.Create(
        kind="TABLE",
        exists=if_not_exists,
        this=exp.Schema(this=table_ref(table.name), expressions=parts),
    )


def create_indexes(
    table: Table, dialect: Dialect, *, if_not_exists: bool = False
) -> list[exp.Create]:
    """One CREATE INDEX per secondary index declared for ``dialect``."""
    statements = []
    for index in table.indexes:
        if dialect not in index.dialects:
            continue
        columns = [
            exp.Ordered(
                this=exp.column(c, quoted=True), **({"desc": True} if c in index.descending else {})
            )
            for c in index.columns
        ]
        where = None
        if index.where is not None:
            where = exp.Where(this=sqlglot.parse_one(index.where, read="duckdb"))
        statements.append(
            exp.Create(
                kind="INDEX",
                exists=if_not_exists,
                this=exp.Index(
                    this=ident(index.name),
                    table=table_ref(table.name),
                    params=exp.IndexParameters(columns=columns, where=where),
                ),
            )
        )
    return statements


def table_statements(table: Table, dialect: Dialect, *, if_not_exists: bool = False) -> list[str]:
    """The table's CREATE TABLE followed by its CREATE INDEX statements, as SQL text."""
    trees = [create_table(table, dialect, if_not_exists=if_not_exists)]
    trees += create_indexes(table, dialect, if_not_exists=if_not_exists)
    return [tree.sql(dialect=dialect) for tree in trees]


def catalog_statements(
    catalog: Catalog, dialect: Dialect, *, tables: Iterable[str] | None = None
) -> list[str]:
    """Statements that create ``tables`` (default: all) in dependency order."""
    wanted = set(tables) if tables is not None else None
    statements: list[str] = []
    for table in catalog:
        if wanted is None or table.name in wanted:
            statements += table_statements(table, dialect)
    return statements


def catalog_script(catalog: Catalog, dialect: Dialect) -> str:
    """The whole schema as one SQL script (for ``egregora db schema --format sql``)."""
    return "".join(f"{statement};\n\n" for statement in catalog_statements(catalog, dialect))
