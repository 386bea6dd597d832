"""What an operation can do to a database, per dialect, including DuckDB's table rebuild."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import sqlglot

from egregora.ddl import statements as sql
from egregora.ddl.render import DEFERRABLE_KEYS, create_indexes, table_statements
from egregora.errors import MigrationError
from egregora.migrations.executor import Executor
from egregora.migrations.ledger import existing_tables
from egregora.migrations.model import replace_table
from egregora.migrations.rebuild import rebuild_family
from egregora.schema.model import Catalog, Table
from egregora.schema.rules import Rule

EXAMPLES = 5


@dataclass
class MigrationContext:
    """One migration's view: the executor, and the schema before and after it."""

    executor: Executor
    migration_id: str
    before: Catalog
    after: Catalog
    # The tables' columns as the operations done so far left them (a rebuild copies those).
    current: Catalog = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.current = self.before

    @property
    def dialect(self) -> str:
        return self.executor.dialect

    def create_tables(self, names: tuple[str, ...]) -> None:
        for table in self.after:
            if table.name in names:
                for statement in table_statements(table, self.executor.dialect):
                    self.executor.execute(statement)

    def require_rows_satisfy(self, table: str, rule: Rule) -> None:
        """Refuse (naming example keys) when existing rows break a rule about to be added."""
        if self.executor.dry_run and table not in existing_tables(self.executor):
            return  # planned in this dry run, so it holds no rows yet
        if self.executor.dry_run and set(rule.columns) - set(self.before[table].column_names):
            return  # reads a column this dry run only planned to add
        decl = self.after[table]
        where = sql.breaking(rule)
        keys = list(decl.primary_key)
        rows = self.executor.query(
            sql.select_rows(table, keys, self.executor.dialect, where, keys, EXAMPLES + 1)
        )
        if rows:
            shown = "; ".join(
                ", ".join(f"{k}={v!r}" for k, v in zip(keys, r, strict=True))
                for r in rows[:EXAMPLES]
            )
            more = " and more" if len(rows) > EXAMPLES else ""
            raise MigrationError(
                f"migration {self.migration_id}: rows of {table} break the new rule "
                f"{rule.name} ({rule.description}): {shown}{more}; fix those rows, then "
                "migrate again"
            )

    def add_check(self, table: str, rule: Rule) -> None:
        if self.executor.backend.alters_constraints:
            self.executor.execute(sql.add_check(table, rule, self.executor.dialect))
        else:
            self.rebuild(table)

    def replace_check(self, table: str, rule: Rule) -> None:
        """Swap the CHECK of ``rule``'s name for ``rule``."""
        if self.executor.backend.alters_constraints:
            self.executor.execute(sql.drop_constraint(table, rule.name, self.executor.dialect))
            self.executor.execute(sql.add_check(table, rule, self.executor.dialect))
        else:
            self.rebuild(table)

    def update_rows(self, table: str, values: tuple[tuple[str, str], ...], where: str) -> None:
        if self.executor.dry_run and table not in existing_tables(self.executor):
            return  # planned in this dry run, so it holds no rows yet
        parsed = [(c, sqlglot.parse_one(text, read="duckdb")) for c, text in values]
        condition = sqlglot.parse_one(where, read="duckdb")
        self.executor.execute(sql.update_where(table, parsed, condition, self.executor.dialect))

    def drop_unique(self, table: str, name: str) -> None:
        if self.executor.backend.alters_constraints:
            self.executor.execute(sql.drop_constraint(table, name, self.executor.dialect))
        else:
            self.rebuild(table)

    def defer_unique(self, table: str, name: str) -> None:
        """Declare the unique ``name`` again as the catalog now renders it (DEFERRABLE) where
        the dialect can defer it; elsewhere the rendered constraint did not change."""
        if self.executor.dialect not in DEFERRABLE_KEYS:
            return
        unique = next(u for u in self.after[table].uniques if u.name == name)
        self.executor.execute(sql.drop_constraint(table, name, self.executor.dialect))
        self.executor.execute(sql.add_unique(table, unique, self.executor.dialect))

    def drop_index(self, name: str) -> None:
        self.executor.execute(sql.drop_index(name, self.executor.dialect))

    def add_index(self, table: str, name: str) -> None:
        """Create the index where it is declared; a rebuild earlier in the migration may have
        created it already, hence IF NOT EXISTS."""
        decl = self.after[table]
        indexes = tuple(i for i in decl.indexes if i.name == name)
        only = dataclasses.replace(decl, indexes=indexes)
        for tree in create_indexes(only, self.executor.dialect, if_not_exists=True):
            self.executor.execute(tree.sql(dialect=self.executor.dialect))

    def add_columns(
        self, table: str, columns: tuple[str, ...], backfill: Mapping[str, str]
    ) -> None:
        """Add ``columns`` as ``after`` declares them, filling existing rows from ``backfill``."""
        decl = self.after[table]
        specs = [decl.column(c) for c in columns]
        values = {c: sqlglot.parse_one(sql_text, read="duckdb") for c, sql_text in backfill.items()}
        unfilled = [s.name for s in specs if not s.nullable and s.name not in values]
        if unfilled and self._has_rows(table):
            raise MigrationError(
                f"migration {self.migration_id}: {table} has rows but the new NOT NULL "
                f"column(s) {', '.join(unfilled)} have no backfill; this egregora cannot "
                "migrate that database (report it)"
            )
        dialect = self.executor.dialect
        key = decl.primary_key

        def add_and_fill(target: str) -> None:
            for spec in specs:
                self.executor.execute(sql.add_column(target, spec, dialect))
                if spec.name in values:
                    fill = sql.fill_column(target, spec.name, key, values[spec.name], dialect)
                    self.executor.execute(fill)

        if self.executor.backend.alters_constraints:
            self.current = replace_table(self.current, decl)
            add_and_fill(table)
            for spec in specs:
                if not spec.nullable:
                    self.executor.execute(sql.set_not_null(table, spec.name, dialect))
            replaced = {r.name for r in self.before[table].rules}  # by a ReplaceRule
            for rule in decl.rules:
                if set(columns) & set(rule.columns) and rule.name not in replaced:
                    self.executor.execute(sql.add_check(table, rule, dialect))
            return

        def patch(member: Table, aside: str) -> None:
            if member.name == table:
                add_and_fill(aside)

        # The rows are copied aside with the new columns filled, so they are refilled with them.
        source = replace_table(self.current, decl)
        label = self.migration_id
        rebuild_family(self.executor, source, self.after, table, label=label, patch=patch)
        self.current = source

    def _has_rows(self, table: str) -> bool:
        if self.executor.dry_run and table not in existing_tables(self.executor):
            return False
        return bool(self.executor.query(sql.count_rows(table, self.executor.dialect))[0][0])

    def rebuild(self, table: str) -> None:
        """Recreate ``table`` at its new declaration, keeping its rows and its dependants."""
        rebuild_family(self.executor, self.current, self.after, table, label=self.migration_id)
