"""What an operation can do to a database, per dialect, including DuckDB's table rebuild."""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from egregora.ddl import statements as sql
from egregora.ddl.render import table_statements
from egregora.errors import MigrationError
from egregora.migrations.executor import Executor
from egregora.migrations.ledger import existing_tables
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
        if self.executor.dialect == "postgres":
            self.executor.execute(sql.add_check(table, rule, "postgres"))
        else:
            self.rebuild(table)

    def rebuild(self, table: str) -> None:
        """Recreate ``table`` at its new declaration, keeping its rows and its dependants.

        DuckDB cannot add CHECK, UNIQUE or FOREIGN KEY constraints to a table, nor drop a
        table other tables reference, so the table and every table that references it
        (transitively) are copied aside, dropped children first, created from the catalog
        parents first (with their indexes), and refilled; all inside the caller's transaction.
        """
        family = self._dependants(table)
        dialect = self.executor.dialect
        ordered = [t for t in self.after if t.name in family]
        counts = {}
        for t in ordered:
            counts[t.name] = self._count(t.name)
            self.executor.execute(sql.copy_into_temp(t.name, _aside(t.name), dialect))
        for t in reversed(ordered):
            self.executor.execute(sql.drop_table(t.name, dialect))
        for t in ordered:
            for statement in table_statements(t, dialect):
                self.executor.execute(statement)
        for t in ordered:
            self._refill(t)
            self.executor.execute(sql.drop_table(_aside(t.name), dialect))
            if not self.executor.dry_run and self._count(t.name) != counts[t.name]:
                raise MigrationError(
                    f"migration {self.migration_id}: rebuilding {t.name} kept "
                    f"{self._count(t.name)} of {counts[t.name]} rows; nothing was changed"
                )

    def _dependants(self, table: str) -> set[str]:
        family = {table}
        frontier = [table]
        while frontier:
            current = frontier.pop()
            for child in self.after.children(current):
                if child.name not in family:
                    family.add(child.name)
                    frontier.append(child.name)
        return family

    def _count(self, table: str) -> int:
        if self.executor.dry_run:
            return 0
        return int(self.executor.query(sql.count_rows(table, self.executor.dialect))[0][0])

    def _refill(self, table: Table) -> None:
        old = {c.name for c in self.before[table.name].columns}
        columns = [c for c in table.column_names if c in old]
        dialect = self.executor.dialect
        selfrefs = [fk for fk in table.foreign_keys if fk.references == table.name]
        if not selfrefs:
            self.executor.execute(
                sql.insert_select(table.name, _aside(table.name), columns, dialect)
            )
            return
        # A row may reference another row of the same table, and DuckDB checks the reference
        # within one INSERT statement: insert parents before children, one generation at a time.
        while True:
            before = self._count(table.name)
            self.executor.execute(
                sql.insert_select(
                    table.name, _aside(table.name), columns, dialect, _next_generation(table)
                )
            )
            if self.executor.dry_run or self._count(table.name) == before:
                return


def _aside(name: str) -> str:
    return f"_egregora_rebuild_{name}"


def _next_generation(table: Table) -> exp.Expr:
    """Rows not copied yet whose same-table references are all present already."""
    here = exp.Table(this=exp.to_identifier(table.name, quoted=True))
    keys = [exp.column(c, quoted=True) for c in table.primary_key]
    key: exp.Expr = keys[0] if len(keys) == 1 else exp.Tuple(expressions=keys)
    copied = exp.select(*[exp.column(c, quoted=True) for c in table.primary_key]).from_(here)
    conditions: list[exp.Expr] = [exp.Not(this=key.isin(query=copied))]
    for fk in table.foreign_keys:
        if fk.references != table.name:
            continue
        column = exp.column(fk.column, quoted=True)
        parents = exp.select(exp.column(fk.ref_column, quoted=True)).from_(here.copy())
        conditions.append(
            exp.or_(exp.Is(this=column, expression=exp.Null()), column.isin(query=parents))
        )
    return exp.and_(*conditions)
