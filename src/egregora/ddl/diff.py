"""Compare a live schema with the catalog.

The expected side is the catalog's own DDL executed by the same engine and read back with the
same introspection as the live side (each backend's ``expected_schema``), so both are in that
engine's normalised spelling (types, CHECK expressions, index definitions) and nothing is
compared by fragile text rules of our own. Columns are compared by name, never by position:
PostgreSQL's ADD COLUMN appends, so a migrated table may order its columns differently.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from egregora.ddl.introspect import LiveConstraint, LiveSchema, LiveTable
from egregora.schema.model import Table


@dataclass(frozen=True)
class Difference:
    """One way the live schema differs from the catalog."""

    kind: str
    table: str
    name: str
    expected: str | None
    actual: str | None

    @property
    def message(self) -> str:
        subject = f"{self.table}.{self.name}" if self.name else self.table
        what = self.kind.replace("_", " ")
        if self.expected is not None and self.actual is not None:
            return f"{what}: {subject} is {self.actual}, expected {self.expected}"
        if self.expected is not None:
            return f"{what}: {subject} ({self.expected})"
        return f"{what}: {subject} ({self.actual})"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.message}


def label_constraints(table: Table, live: LiveTable) -> tuple[LiveConstraint, ...]:
    """Give the reference database's constraints their catalog names.

    DuckDB forgets declared names; PK, UNIQUE and FK are matched by columns and CHECKs by
    declaration order, which DuckDB keeps.
    """
    uniques = {u.columns: u.name for u in table.uniques}
    fkeys: dict[tuple[str, ...], str] = {(fk.column,): fk.name for fk in table.foreign_keys}
    checks = iter(table.rules)
    labelled = []
    for constraint in live.constraints:
        if constraint.kind == "PRIMARY KEY":
            name = table.pkey_name
        elif constraint.kind == "UNIQUE":
            name = uniques[constraint.columns]
        elif constraint.kind == "FOREIGN KEY":
            name = fkeys[constraint.columns]
        else:
            name = next(checks).name
        labelled.append(
            LiveConstraint(
                constraint.kind,
                constraint.columns,
                constraint.expression,
                constraint.references,
                constraint.ref_columns,
                name,
            )
        )
    if next(checks, None) is not None:
        raise RuntimeError(f"{table.name}: DuckDB reports fewer CHECKs than the catalog declares")
    return tuple(labelled)


def diff_schemas(expected: LiveSchema, actual: LiveSchema) -> list[Difference]:
    """Every difference, in a stable order: tables, then per table columns, constraints, indexes."""
    out: list[Difference] = []
    for name in expected:
        if name not in actual:
            out.append(Difference("missing_table", name, "", "declared in the catalog", None))
    for name in actual:
        if name not in expected:
            out.append(Difference("extra_table", name, "", None, "not in the catalog"))
    for name, want in expected.items():
        have = actual.get(name)
        if have is not None:
            out += _diff_columns(want, have)
            out += _diff_constraints(want, have)
            out += _diff_indexes(want, have)
    return out


def _null_text(nullable: bool) -> str:
    return "NULL" if nullable else "NOT NULL"


def _diff_columns(want: LiveTable, have: LiveTable) -> list[Difference]:
    out = []
    have_cols = {c.name: c for c in have.columns}
    want_cols = {c.name: c for c in want.columns}
    for c in want.columns:
        live = have_cols.get(c.name)
        if live is None:
            spec = f"{c.data_type} {_null_text(c.nullable)}"
            out.append(Difference("missing_column", want.name, c.name, spec, None))
            continue
        if live.data_type != c.data_type:
            out.append(Difference("column_type", want.name, c.name, c.data_type, live.data_type))
        if live.nullable != c.nullable:
            out.append(
                Difference(
                    "column_nullability",
                    want.name,
                    c.name,
                    _null_text(c.nullable),
                    _null_text(live.nullable),
                )
            )
        if live.default != c.default:
            out.append(
                Difference("column_default", want.name, c.name, str(c.default), str(live.default))
            )
    for c in have.columns:
        if c.name not in want_cols:
            spec = f"{c.data_type} {_null_text(c.nullable)}"
            out.append(Difference("extra_column", want.name, c.name, None, spec))
    return out


def _diff_constraints(want: LiveTable, have: LiveTable) -> list[Difference]:
    have_ids = {c.identity for c in have.constraints}
    want_ids = {c.identity for c in want.constraints}
    out = [
        Difference("missing_constraint", want.name, c.name, c.describe(), None)
        for c in want.constraints
        if c.identity not in have_ids
    ]
    out += [
        Difference("extra_constraint", want.name, c.name, None, c.describe())
        for c in have.constraints
        if c.identity not in want_ids
    ]
    return out


def _diff_indexes(want: LiveTable, have: LiveTable) -> list[Difference]:
    out = []
    have_idx = {i.name: i for i in have.indexes}
    want_idx = {i.name: i for i in want.indexes}
    for i in want.indexes:
        live = have_idx.get(i.name)
        if live is None:
            out.append(Difference("missing_index", want.name, i.name, i.expressions, None))
        elif (live.expressions, live.unique) != (i.expressions, i.unique):
            out.append(
                Difference("index_changed", want.name, i.name, i.expressions, live.expressions)
            )
    for i in have.indexes:
        if i.name not in want_idx:
            out.append(Difference("extra_index", want.name, i.name, None, i.expressions))
    return out
