"""Read the live schema of a DuckDB database from its catalog functions.

Queries take values as bound parameters; nothing is formatted into SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb


@dataclass(frozen=True)
class LiveColumn:
    name: str
    data_type: str
    nullable: bool
    default: str | None


@dataclass(frozen=True)
class LiveConstraint:
    """A PRIMARY KEY, UNIQUE, CHECK or FOREIGN KEY as the database reports it."""

    kind: str
    columns: tuple[str, ...]
    expression: str | None = None
    references: str | None = None
    ref_columns: tuple[str, ...] = ()
    name: str = ""

    @property
    def identity(self) -> tuple[Any, ...]:
        """What makes two constraints the same (DuckDB does not keep declared names)."""
        return (self.kind, self.columns, self.expression, self.references, self.ref_columns)

    def describe(self) -> str:
        if self.kind == "CHECK":
            return f"CHECK {self.expression}"
        if self.kind == "FOREIGN KEY":
            target = f"{self.references}({', '.join(self.ref_columns)})"
            return f"FOREIGN KEY ({', '.join(self.columns)}) REFERENCES {target}"
        return f"{self.kind} ({', '.join(self.columns)})"


@dataclass(frozen=True)
class LiveIndex:
    name: str
    expressions: str
    unique: bool


@dataclass(frozen=True)
class LiveTable:
    name: str
    columns: tuple[LiveColumn, ...]
    constraints: tuple[LiveConstraint, ...]
    indexes: tuple[LiveIndex, ...]


LiveSchema = dict[str, LiveTable]

_WHERE = "database_name = current_database() AND schema_name = ? AND NOT internal"

_TABLES = f"SELECT table_name FROM duckdb_tables() WHERE {_WHERE} ORDER BY table_name"  # noqa: S608
_COLUMNS = (
    "SELECT table_name, column_name, data_type, is_nullable, column_default "  # noqa: S608
    f"FROM duckdb_columns() WHERE {_WHERE} ORDER BY table_name, column_index"
)
_CONSTRAINTS = (
    "SELECT table_name, constraint_type, constraint_column_names, expression, "
    "referenced_table, referenced_column_names, constraint_name "
    "FROM duckdb_constraints() "
    "WHERE database_name = current_database() AND schema_name = ? "
    "AND constraint_type IN ('PRIMARY KEY', 'UNIQUE', 'CHECK', 'FOREIGN KEY') "
    "ORDER BY table_name, constraint_index"
)
_INDEXES = (
    "SELECT table_name, index_name, expressions, is_unique FROM duckdb_indexes() "
    "WHERE database_name = current_database() AND schema_name = ? "
    "ORDER BY table_name, index_name"
)


def introspect_duckdb(con: duckdb.DuckDBPyConnection, schema: str = "main") -> LiveSchema:
    """Tables, columns, constraints and indexes of ``schema`` in the connection's database."""
    names = [row[0] for row in con.execute(_TABLES, [schema]).fetchall()]
    columns: dict[str, list[LiveColumn]] = {n: [] for n in names}
    for table, name, data_type, nullable, default in con.execute(_COLUMNS, [schema]).fetchall():
        if table in columns:
            columns[table].append(LiveColumn(name, data_type, bool(nullable), default))
    constraints: dict[str, list[LiveConstraint]] = {n: [] for n in names}
    seen: set[tuple[str, tuple[Any, ...]]] = set()
    for table, kind, cols, expression, ref, ref_cols, cname in con.execute(
        _CONSTRAINTS, [schema]
    ).fetchall():
        constraint = LiveConstraint(
            kind=kind,
            columns=tuple(cols),
            expression=expression if kind == "CHECK" else None,
            references=ref if kind == "FOREIGN KEY" else None,
            ref_columns=tuple(ref_cols or ()) if kind == "FOREIGN KEY" else (),
            name=cname,
        )
        # DuckDB lists a self-referencing foreign key twice; keep one.
        if table in constraints and (table, constraint.identity) not in seen:
            seen.add((table, constraint.identity))
            constraints[table].append(constraint)
    indexes: dict[str, list[LiveIndex]] = {n: [] for n in names}
    for table, name, expressions, unique in con.execute(_INDEXES, [schema]).fetchall():
        if table in indexes:
            indexes[table].append(LiveIndex(name, str(expressions), bool(unique)))
    return {
        n: LiveTable(n, tuple(columns[n]), tuple(constraints[n]), tuple(indexes[n])) for n in names
    }
