"""The declaration model: a table is columns, keys, rules, foreign keys and indexes, declared once.

Everything else (DDL per dialect, Pandera contracts, the schema reference, test-data generators)
is derived from these immutable values. This module does no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import ibis
import ibis.expr.datatypes as dt

from egregora.schema.rules import Bound, Comparison, OneOf, Rule

# TIMESTAMPTZ as DuckDB and PostgreSQL read it back: UTC, microseconds.
TIMESTAMPTZ = "timestamp('UTC', 6)"


@dataclass(frozen=True)
class Column:
    """One column: an Ibis dtype (``!`` means NOT NULL) and a one-line description.

    ``one_of`` and ``min_value`` are shorthands for the most common rules on a
    single column; the table turns them into named rules.
    """

    name: str
    dtype: dt.DataType
    description: str
    one_of: tuple[str, ...] | None = None
    min_value: int | float | None = None

    @property
    def nullable(self) -> bool:
        return bool(self.dtype.nullable)


def col(
    name: str,
    dtype: str,
    description: str,
    *,
    one_of: Sequence[str] | None = None,
    min_value: int | float | None = None,
) -> Column:
    """Declare a column from an Ibis dtype string such as ``"!string"`` or ``TIMESTAMPTZ``."""
    return Column(
        name=name,
        dtype=ibis.dtype(dtype),
        description=description,
        one_of=tuple(one_of) if one_of is not None else None,
        min_value=min_value,
    )


@dataclass(frozen=True)
class Unique:
    """A set of columns no two rows share (NULLs are never equal, as in SQL).

    ``deferrable``: one transaction may move the key between rows (an upsert that swaps two
    slugs), checked when it commits, on engines that can defer a check.
    """

    name: str
    columns: tuple[str, ...]
    description: str = ""
    deferrable: bool = False


@dataclass(frozen=True)
class ForeignKey:
    """``column`` refers to ``ref_column`` of ``references`` (NULL refers to nothing)."""

    name: str
    column: str
    references: str
    ref_column: str


DIALECTS = ("duckdb", "postgres")


@dataclass(frozen=True)
class Index:
    """A secondary index, the query it exists to serve, and the dialects whose planner uses it.

    DuckDB 1.5 scans an ART index only for equality or a selective range on a single column;
    composite and ORDER BY ... LIMIT lookups are declared for PostgreSQL alone, where a B-tree
    serves them, instead of slowing every DuckDB write for nothing. ``descending`` names the
    columns kept in descending order (to match an ORDER BY ... DESC); ``where`` makes a partial
    index (SQL over the table's columns), for the dialects whose backend can build one.
    """

    name: str
    columns: tuple[str, ...]
    serves: str
    dialects: tuple[str, ...] = DIALECTS
    descending: tuple[str, ...] = ()
    where: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.descending) - set(self.columns)
        if unknown:
            raise ValueError(f"index {self.name}: descending names no column of it: {unknown}")


def foreign_key_index(table: str, column: str) -> Index:
    """The PostgreSQL index of a foreign-key column: PostgreSQL indexes only the referenced
    side, so deleting or re-keying a parent would scan the whole child table (DuckDB indexes
    foreign-key columns itself)."""
    return Index(
        f"{table}_{column}_idx",
        (column,),
        f"the rows that reference a parent: WHERE {column} = ? (deleting or re-keying the "
        "parent checks them)",
        dialects=("postgres",),
    )


@dataclass(frozen=True)
class Table:
    """One table, declared once."""

    name: str
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    uniques: tuple[Unique, ...] = ()
    checks: tuple[Rule, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    indexes: tuple[Index, ...] = ()
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {c.name: c for c in self.columns}
        object.__setattr__(self, "_by_name", by_name)
        problems = list(self._problems(by_name))
        if problems:
            raise ValueError(f"table {self.name!r} is declared wrongly: " + "; ".join(problems))

    def __hash__(self) -> int:
        # By name alone: tables key the caches of statements built per table, and hashing
        # every column, rule and key on each lookup cost more than the lookup saved.
        return hash(self.name)

    def _problems(self, by_name: dict[str, Column]) -> Iterator[str]:
        if len(by_name) != len(self.columns):
            yield "a column name repeats"
        if not self.primary_key:
            yield "no primary key"
        referenced = [
            *self.primary_key,
            *(c for u in self.uniques for c in u.columns),
            *(c for r in self.checks for c in r.columns),
            *(fk.column for fk in self.foreign_keys),
            *(c for i in self.indexes for c in i.columns),
        ]
        for name in referenced:
            if name not in by_name:
                yield f"unknown column {name!r}"
        for name in self.primary_key:
            if name in by_name and by_name[name].nullable:
                yield f"primary key column {name!r} must be NOT NULL"
        names = [r.name for r in self.rules] + [u.name for u in self.uniques]
        names += [fk.name for fk in self.foreign_keys] + [i.name for i in self.indexes]
        if len(set(names)) != len(names):
            yield "a constraint or index name repeats"
        for index in self.indexes:
            if not index.dialects or set(index.dialects) - set(DIALECTS):
                yield f"index {index.name!r} must name dialects among {DIALECTS}"

    # -- derived views -------------------------------------------------------------------------
    @property
    def schema(self) -> ibis.Schema:
        """The columns as an Ibis schema (nullability included)."""
        return ibis.schema({c.name: c.dtype for c in self.columns})

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        return self._by_name[name]

    @property
    def pkey_name(self) -> str:
        return f"{self.name}_pkey"

    @property
    def rules(self) -> tuple[Rule, ...]:
        """Every CHECK rule: the columns' shorthands first, then the table's own rules."""
        derived: list[Rule] = []
        for c in self.columns:
            if c.one_of is not None:
                derived.append(
                    OneOf(
                        name=f"{self.name}_{c.name}_values",
                        description=f"{c.name} is one of: {', '.join(c.one_of)}",
                        column=c.name,
                        values=c.one_of,
                    )
                )
            if c.min_value is not None:
                op: Comparison = ">="
                derived.append(
                    Bound(
                        name=f"{self.name}_{c.name}_min",
                        description=f"{c.name} >= {c.min_value}",
                        column=c.name,
                        op=op,
                        value=c.min_value,
                    )
                )
        return (*derived, *self.checks)

    def indexed_columns(self, dialect: str) -> frozenset[str]:
        """Columns some key, foreign key or index of ``dialect`` covers (DuckDB cannot update
        such a column of a row another table references)."""
        names = {*self.primary_key, *(fk.column for fk in self.foreign_keys)}
        names.update(c for u in self.uniques for c in u.columns)
        names.update(c for i in self.indexes if dialect in i.dialects for c in i.columns)
        return frozenset(names)

    @property
    def keys(self) -> tuple[Unique, ...]:
        """The primary key and every unique key, as uniqueness rules."""
        pkey = Unique(self.pkey_name, self.primary_key, "primary key")
        return (pkey, *self.uniques)


@dataclass(frozen=True)
class Catalog:
    """Every table, in an order where a table comes after the tables it references."""

    tables: tuple[Table, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for table in self.tables:
            for fk in table.foreign_keys:
                if fk.references != table.name and fk.references not in seen:
                    raise ValueError(
                        f"{table.name}.{fk.column} references {fk.references!r}, "
                        "which must be declared before it"
                    )
                parent = self.tables_by_name().get(fk.references)
                if parent is None or fk.ref_column not in parent.column_names:
                    raise ValueError(f"{fk.name}: no column {fk.references}.{fk.ref_column}")
            seen.add(table.name)

    def tables_by_name(self) -> dict[str, Table]:
        return {t.name: t for t in self.tables}

    def __getitem__(self, name: str) -> Table:
        try:
            return self.tables_by_name()[name]
        except KeyError:
            known = ", ".join(t.name for t in self.tables)
            raise KeyError(f"no table {name!r} in the catalog (known: {known})") from None

    def __iter__(self) -> Iterator[Table]:
        return iter(self.tables)

    def __len__(self) -> int:
        return len(self.tables)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tables)

    def children(self, name: str) -> tuple[Table, ...]:
        """Tables with a foreign key to ``name`` (other than itself)."""
        return tuple(
            t
            for t in self.tables
            if t.name != name and any(fk.references == name for fk in t.foreign_keys)
        )
