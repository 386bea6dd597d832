"""A migration: an ordered id, a description, and operations that move the schema forward.

Operations are declarative so that the schema at any migration id can be derived from the one
catalog (head) by reverting later operations: no table is ever written out twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from egregora.schema.model import Catalog, Index, Table, Unique
from egregora.schema.rules import Rule

if TYPE_CHECKING:
    from egregora.migrations.context import MigrationContext


class Operation:
    """One schema change. ``revert`` maps the catalog after it to the catalog before it."""

    # It computes rows' new values in Python from the rows it reads, so a script written
    # without the database (``db migrate --sql``) cannot apply it to a database holding rows.
    computes_rows_in_python: ClassVar[bool] = False

    def revert(self, catalog: Catalog) -> Catalog:
        raise NotImplementedError

    def apply(self, ctx: MigrationContext) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


def replace_table(catalog: Catalog, table: Table) -> Catalog:
    return Catalog(tuple(table if t.name == table.name else t for t in catalog))


@dataclass(frozen=True)
class CreateCatalog(Operation):
    """Create every table of the schema as it stands at this migration (the first migration)."""

    def revert(self, catalog: Catalog) -> Catalog:
        return Catalog(())

    def apply(self, ctx: MigrationContext) -> None:
        ctx.create_tables(tuple(t.name for t in ctx.after))

    def describe(self) -> str:
        return "create every table"


@dataclass(frozen=True)
class CreateTable(Operation):
    """Create a table the catalog declares, with its keys, checks and indexes."""

    table: str

    def revert(self, catalog: Catalog) -> Catalog:
        if self.table not in catalog.names:
            raise ValueError(f"the catalog declares no table {self.table!r}")
        if catalog.children(self.table):
            raise ValueError(f"{self.table} is referenced; create those tables later")
        return Catalog(tuple(t for t in catalog if t.name != self.table))

    def apply(self, ctx: MigrationContext) -> None:
        ctx.create_tables((self.table,))

    def describe(self) -> str:
        return f"create table {self.table}"


@dataclass(frozen=True)
class AddRule(Operation):
    """Add a declared CHECK rule to an existing table; existing rows must already satisfy it."""

    table: str
    rule: str

    def revert(self, catalog: Catalog) -> Catalog:
        table = catalog[self.table]
        kept = tuple(r for r in table.checks if r.name != self.rule)
        if len(kept) == len(table.checks):
            raise ValueError(f"{self.table} declares no rule {self.rule!r} in its checks")
        return replace_table(catalog, dataclasses.replace(table, checks=kept))

    def apply(self, ctx: MigrationContext) -> None:
        rule = next(r for r in ctx.after[self.table].checks if r.name == self.rule)
        ctx.require_rows_satisfy(self.table, rule)
        ctx.add_check(self.table, rule)

    def describe(self) -> str:
        return f"add rule {self.rule} to {self.table}"


@dataclass(frozen=True)
class AddColumns(Operation):
    """Add declared columns to one table; ``backfill`` maps a column to one SQL expression
    over the table's rows (window functions allowed) that gives existing rows a value. A NOT
    NULL column without a backfill can only be added to an empty table."""

    table: str
    columns: tuple[str, ...]
    backfill: Mapping[str, str] = field(default_factory=dict)

    def revert(self, catalog: Catalog) -> Catalog:
        table = catalog[self.table]
        for column in self.columns:
            if column not in table.column_names:
                raise ValueError(f"{self.table} declares no column {column!r}")
            users = [r.name for r in table.checks if column in r.columns]
            users += [u.name for u in table.uniques if column in u.columns]
            users += [i.name for i in table.indexes if column in i.columns]
            users += [fk.name for fk in table.foreign_keys if fk.column == column]
            if column in table.primary_key or users:
                raise ValueError(
                    f"{self.table}.{column} is used by {users or 'the primary key'}; "
                    "add those in a later migration"
                )
        kept = tuple(c for c in table.columns if c.name not in self.columns)
        return replace_table(catalog, dataclasses.replace(table, columns=kept))

    def apply(self, ctx: MigrationContext) -> None:
        ctx.add_columns(self.table, self.columns, self.backfill)

    def describe(self) -> str:
        return f"add column(s) {', '.join(self.columns)} to {self.table}"


@dataclass(frozen=True)
class DropUnique(Operation):
    """Drop a UNIQUE constraint; ``unique`` is its declaration, which the catalog no longer has."""

    table: str
    unique: Unique

    def revert(self, catalog: Catalog) -> Catalog:
        table = catalog[self.table]
        if any(u.name == self.unique.name for u in table.uniques):
            raise ValueError(f"{self.table} still declares {self.unique.name!r}")
        kept = (*table.uniques, self.unique)
        return replace_table(catalog, dataclasses.replace(table, uniques=kept))

    def apply(self, ctx: MigrationContext) -> None:
        ctx.drop_unique(self.table, self.unique.name)

    def describe(self) -> str:
        return f"drop unique {self.unique.name} from {self.table}"


@dataclass(frozen=True)
class DeferUnique(Operation):
    """Make a UNIQUE constraint the catalog declares ``deferrable`` so, where the engine can
    defer a check (elsewhere the constraint is the same and nothing changes)."""

    table: str
    unique: str

    def revert(self, catalog: Catalog) -> Catalog:
        table = catalog[self.table]
        found = [u for u in table.uniques if u.name == self.unique]
        if not found or not found[0].deferrable:
            raise ValueError(f"{self.table} declares no deferrable unique {self.unique!r}")
        before = dataclasses.replace(found[0], deferrable=False)
        kept = tuple(before if u.name == self.unique else u for u in table.uniques)
        return replace_table(catalog, dataclasses.replace(table, uniques=kept))

    def apply(self, ctx: MigrationContext) -> None:
        ctx.defer_unique(self.table, self.unique)

    def describe(self) -> str:
        return f"make unique {self.unique} of {self.table} deferrable"


@dataclass(frozen=True)
class ReplaceRule(Operation):
    """Replace a CHECK rule by the catalog's rule of the same name; ``old`` is the rule as it
    was declared before. Existing rows must satisfy the new rule."""

    table: str
    old: Rule

    def revert(self, catalog: Catalog) -> Catalog:
        table = catalog[self.table]
        if not any(r.name == self.old.name for r in table.checks):
            raise ValueError(f"{self.table} declares no rule {self.old.name!r} in its checks")
        checks = tuple(self.old if r.name == self.old.name else r for r in table.checks)
        return replace_table(catalog, dataclasses.replace(table, checks=checks))

    def apply(self, ctx: MigrationContext) -> None:
        rule = next(r for r in ctx.after[self.table].checks if r.name == self.old.name)
        ctx.require_rows_satisfy(self.table, rule)
        ctx.replace_check(self.table, rule)

    def describe(self) -> str:
        return f"replace rule {self.old.name} of {self.table}"


@dataclass(frozen=True)
class UpdateRows(Operation):
    """Change existing rows' values (the schema stays): ``values`` maps a column to one SQL
    expression over the row, applied where the SQL condition ``where`` holds."""

    table: str
    values: tuple[tuple[str, str], ...]
    where: str
    why: str

    def revert(self, catalog: Catalog) -> Catalog:
        return catalog

    def apply(self, ctx: MigrationContext) -> None:
        ctx.update_rows(self.table, self.values, self.where)

    def describe(self) -> str:
        return f"update {self.table}: {self.why}"


@dataclass(frozen=True)
class AddIndex(Operation):
    """Create an index the catalog declares (on the dialects it is declared for)."""

    table: str
    index: str

    def revert(self, catalog: Catalog) -> Catalog:
        table = catalog[self.table]
        kept = tuple(i for i in table.indexes if i.name != self.index)
        if len(kept) == len(table.indexes):
            raise ValueError(f"{self.table} declares no index {self.index!r}")
        return replace_table(catalog, dataclasses.replace(table, indexes=kept))

    def apply(self, ctx: MigrationContext) -> None:
        ctx.add_index(self.table, self.index)

    def describe(self) -> str:
        return f"add index {self.index} to {self.table}"


@dataclass(frozen=True)
class DropIndex(Operation):
    """Drop an index the catalog no longer declares (where it exists: IF EXISTS)."""

    table: str
    index: Index  # as declared before, so earlier catalogs can be rebuilt

    def revert(self, catalog: Catalog) -> Catalog:
        table = catalog[self.table]
        if any(i.name == self.index.name for i in table.indexes):
            raise ValueError(f"{self.table} still declares the index {self.index.name!r}")
        indexes = (*table.indexes, self.index)
        return replace_table(catalog, dataclasses.replace(table, indexes=indexes))

    def apply(self, ctx: MigrationContext) -> None:
        ctx.drop_index(self.index.name)

    def describe(self) -> str:
        return f"drop index {self.index.name} of {self.table}"


@dataclass(frozen=True)
class Migration:
    """A migration module: ``ID``, ``DESCRIPTION`` and ``OPERATIONS``."""

    id: str
    description: str
    operations: tuple[Operation, ...]
    source: bytes = field(repr=False, default=b"")
    path: Path | None = None

    @property
    def checksum(self) -> str:
        """SHA-256 of the module's text; line endings and a byte-order mark do not count."""
        text = self.source.removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n")
        return hashlib.sha256(text).hexdigest()

    def revert(self, catalog: Catalog) -> Catalog:
        for operation in reversed(self.operations):
            catalog = operation.revert(catalog)
        return catalog
