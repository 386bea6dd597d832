"""Every rule is enforced twice: the database and the contract each accept a valid row and reject
a row that breaks the rule.

The cases are derived from the catalog. For every CHECK rule (by its kind), primary key, unique
key, foreign key and NOT NULL column, a valid sample row from tests/samples.py is changed so that
it breaks that rule and nothing else. When no sample row can be changed that way, the case still
exists and fails, naming the sample that is missing: a new rule is never silently untested.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import duckdb
import ibis.expr.types as ir
import pytest
from ibis.backends.duckdb import Backend as DuckDBBackend

from egregora.contracts import contract_for
from egregora.schema.catalog import CATALOG
from egregora.schema.model import ForeignKey, Table, Unique
from egregora.schema.rules import (
    Bound,
    Comparison,
    ExactlyOne,
    Matches,
    NullExactlyWhen,
    OneOf,
    Ordered,
    RequiredWhen,
    Rule,
)
from tests.samples import valid_rows
from tests.support import insert_rows, stage

Row = dict[str, Any]
Mutation = Callable[[Row], Row | None]

SAMPLES = valid_rows()


@dataclass(frozen=True)
class Case:
    """One way to break one rule of one table.

    ``valid`` are unmodified sample rows, ``bad`` the violating data (when there are two rows,
    the first is valid on its own and the second collides with it), ``before`` the sample rows of
    the same table the database needs first (rows the valid row may refer to).
    """

    id: str
    table: Table
    kind: str  # the constraint type, as duckdb_constraints() names it
    rule: str  # the rule name the contract reports
    valid: tuple[Row, ...] = ()
    bad: tuple[Row, ...] = ()
    before: tuple[Row, ...] = ()
    db_error: tuple[str, ...] = ()  # fragments of the database's error message
    missing: str | None = None

    def require(self) -> None:
        if self.missing is not None:
            pytest.fail(f"{self.id}: {self.missing}", pytrace=False)


# -- judging a row by the declarations ---------------------------------------------------------
def not_null_name(table: Table, column: str) -> str:
    return f"{table.name}_{column}_not_null"


def broken(table: Table, row: Row) -> set[str]:
    """Names of the rules one row breaks on its own: CHECK rules, NOT NULL, foreign keys."""
    names = {rule.name for rule in table.rules if not rule.holds(row)}
    names |= {
        not_null_name(table, c.name)
        for c in table.columns
        if not c.nullable and row.get(c.name) is None
    }
    for fk in table.foreign_keys:
        targets = {parent.get(fk.ref_column) for parent in SAMPLES[fk.references]}
        if row.get(fk.column) is not None and row[fk.column] not in targets:
            names.add(fk.name)
    return names


def collisions(table: Table, row: Row) -> set[tuple[str, int]]:
    """(key name, sample index) for every sample row that shares a key with ``row``."""
    return {
        (key.name, index)
        for key in table.keys
        for index, sample in enumerate(SAMPLES[table.name])
        if all(row.get(c) is not None and row.get(c) == sample.get(c) for c in key.columns)
    }


def primary_key(table: Table, row: Row) -> Row:
    return {c: row.get(c) for c in table.primary_key}


# -- values that break or dodge a rule ---------------------------------------------------------
def outside(values: tuple[str, ...]) -> str:
    """A string none of ``values`` equals."""
    value = "not-" + "-".join(values)
    assert value not in values
    return value


def beyond(op: Comparison, bound: int | float) -> int | float:
    """A value that fails ``value <op> bound`` (``>= 0`` gives -1)."""
    return {">=": bound - 1, ">": bound, "<=": bound + 1, "<": bound}[op]


def fresh(value: Any) -> Any:
    """A different value of the same type, or None when there is no obvious one."""
    if isinstance(value, str):
        return f"{value}-twin"
    if isinstance(value, bytes):
        return value + b"-twin"
    if isinstance(value, int) and not isinstance(value, bool):
        return value + 1000
    if isinstance(value, date):  # datetimes too
        return value + timedelta(days=1)
    return None


def sample_value(table: Table, column: str) -> Any:
    """The first value any sample row of ``table`` has in ``column`` (None when none has one)."""
    return next((r[column] for r in SAMPLES[table.name] if r.get(column) is not None), None)


# -- building the cases ------------------------------------------------------------------------
def single_row_case(
    table: Table,
    kind: str,
    rule: str,
    suffix: str,
    mutate: Mutation,
    needs: str,
    db_error: tuple[str, ...],
) -> Case:
    """The first sample row ``mutate`` turns into a row breaking ``rule`` and nothing else."""
    case_id = f"{table.name}-{rule}" + (f"-{suffix}" if suffix else "")
    rows = SAMPLES[table.name]
    for index, row in enumerate(rows):
        bad = mutate(row)
        if bad is not None and broken(table, bad) == {rule}:
            return Case(
                case_id,
                table,
                kind,
                rule,
                valid=(row,),
                bad=(bad,),
                before=tuple(rows[:index]),
                db_error=db_error,
            )
    return Case(
        case_id,
        table,
        kind,
        rule,
        missing=f"tests/samples.py has no {table.name} row that can break {rule} alone: "
        f"add {needs}",
    )


def setting(condition: Callable[[Row], bool], values: Row) -> Mutation:
    """Rows meeting ``condition``, with ``values`` set (other rows are not usable)."""
    return lambda row: {**row, **values} if condition(row) else None


def always(row: Row) -> bool:
    return True


def is_set(column: str) -> Callable[[Row], bool]:
    return lambda row: row.get(column) is not None


def equals(column: str, value: Any) -> Callable[[Row], bool]:
    return lambda row: row.get(column) == value


def differs(column: str, value: Any) -> Callable[[Row], bool]:
    return lambda row: row.get(column) is not None and row[column] != value


def swap(low: str, high: str) -> Mutation:
    def mutate(row: Row) -> Row | None:
        a, b = row.get(low), row.get(high)
        if a is None or b is None or a == b:
            return None
        return {**row, low: b, high: a}

    return mutate


def check_cases(table: Table, rule: Rule) -> Iterator[Case]:
    """The ways to break a CHECK rule, by its kind."""
    db_error = (f"CHECK constraint failed on table {table.name}", *rule.columns)

    def case(suffix: str, mutate: Mutation, needs: str) -> Case:
        return single_row_case(table, "CHECK", rule.name, suffix, mutate, needs, db_error)

    if isinstance(rule, OneOf | Bound):
        bad = outside(rule.values) if isinstance(rule, OneOf) else beyond(rule.op, rule.value)
        yield case(
            "", setting(is_set(rule.column), {rule.column: bad}), f"a row with {rule.column} set"
        )
    elif isinstance(rule, Ordered):
        yield case(
            "",
            swap(rule.low, rule.high),
            f"a row with {rule.low} and {rule.high} set and different",
        )
    elif isinstance(rule, RequiredWhen):
        selected = equals(rule.column, rule.equals)
        unexcused = {rule.unless: False} if rule.unless else {}
        for column in rule.required:
            yield case(
                column,
                setting(selected, {column: None, **unexcused}),
                f"a row with {rule.column} = {rule.equals!r}",
            )
    elif isinstance(rule, NullExactlyWhen):
        selected, others = equals(rule.column, rule.equals), differs(rule.column, rule.equals)
        for column in rule.nulls:
            value = sample_value(table, column)
            yield case(
                f"{column}-set",
                setting(selected, {column: value}),
                f"a row with {rule.column} = {rule.equals!r}, and one with {column} set",
            )
            yield case(
                f"{column}-null",
                setting(others, {column: None}),
                f"a row with {rule.column} set to something other than {rule.equals!r}",
            )
    elif isinstance(rule, ExactlyOne):
        values = {c: sample_value(table, c) for c in rule.choices}
        yield case(
            "all", setting(always, values), f"rows setting each of {', '.join(rule.choices)}"
        )
        yield case("none", setting(always, dict.fromkeys(rule.choices)), "any row")
    elif isinstance(rule, Matches):
        # A character outside the pattern, a trailing newline (which Python's ``$`` would
        # excuse and SQL's does not), and the value in upper case.
        value = str(sample_value(table, rule.column))
        for suffix, bad in (
            ("char", value + "!"),
            ("newline", value + "\n"),
            ("upper", value.upper()),
        ):
            if not rule.holds({rule.column: bad}):
                yield case(
                    suffix,
                    setting(is_set(rule.column), {rule.column: bad}),
                    f"a row with {rule.column} set",
                )
    else:
        yield Case(
            f"{table.name}-{rule.name}",
            table,
            "CHECK",
            rule.name,
            missing=f"no recipe to break a {type(rule).__name__} rule: "
            "add one to check_cases() in tests/test_rules.py",
        )


def not_null_case(table: Table, column: str) -> Case:
    name = not_null_name(table, column)
    return single_row_case(
        table,
        "NOT NULL",
        name,
        "",
        setting(is_set(column), {column: None}),
        f"a row with {column} set",
        (f"NOT NULL constraint failed: {table.name}.{column}",),
    )


def foreign_key_case(table: Table, fk: ForeignKey) -> Case:
    absent = f"no-such-{fk.references}"
    return single_row_case(
        table,
        "FOREIGN KEY",
        fk.name,
        "",
        setting(is_set(fk.column), {fk.column: absent}),
        f"a row with {fk.column} set",
        ("Violates foreign key constraint", f'"{fk.ref_column}: {absent}" does not exist'),
    )


def twin(table: Table, key: Unique, original: Row) -> Row:
    """A second row sharing ``key`` with ``original``: each other key gets a fresh value in one
    column (never a foreign key), so only ``key`` can collide. The caller checks the result."""
    result = dict(original)
    fk_columns = {fk.column for fk in table.foreign_keys}
    kept = set(key.columns) | fk_columns
    for other in table.keys:
        if other == key:
            continue
        for column in (c for c in other.columns if c not in kept):
            candidate = {**result, column: fresh(original.get(column))}
            if candidate[column] is not None and not broken(table, candidate):
                result = candidate
                break
    if result == original:  # no other key: change a column nothing else reads
        read = {c for k in table.keys for c in k.columns} | fk_columns
        read |= {c for rule in table.rules for c in rule.columns}
        plain = [c for c in table.column_names if c not in read and fresh(original.get(c))]
        if plain:
            result[plain[0]] = fresh(original[plain[0]])
    return result


def key_case(table: Table, key: Unique) -> Case:
    kind = "PRIMARY KEY" if key.name == table.pkey_name else "UNIQUE"
    case_id = f"{table.name}-{key.name}"
    rows = SAMPLES[table.name]
    for index, original in enumerate(rows):
        if any(original.get(c) is None for c in key.columns):
            continue
        duplicate = twin(table, key, original)
        if not broken(table, duplicate) and collisions(table, duplicate) == {(key.name, index)}:
            return Case(
                case_id,
                table,
                kind,
                key.name,
                valid=(original,),
                bad=(original, duplicate),
                before=tuple(rows[:index]),
                db_error=(f"violates {kind.lower()} constraint", *(f"{c}: " for c in key.columns)),
            )
    return Case(
        case_id,
        table,
        kind,
        key.name,
        missing=f"tests/samples.py has no {table.name} row with ({', '.join(key.columns)}) set "
        "whose other keys can be changed to make a second valid row",
    )


def violations(table: Table) -> list[Case]:
    """One case per way of breaking each rule of ``table``."""
    cases = [not_null_case(table, c.name) for c in table.columns if not c.nullable]
    cases += [key_case(table, key) for key in table.keys]
    cases += [case for rule in table.rules for case in check_cases(table, rule)]
    cases += [foreign_key_case(table, fk) for fk in table.foreign_keys]
    return cases


CASES = [case for table in CATALOG for case in violations(table)]
each_case = pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])


# -- helpers for the tests ---------------------------------------------------------------------
def with_parents(backend: DuckDBBackend, table: Table) -> duckdb.DuckDBPyConnection:
    """The connection, holding every sample row of the tables declared before ``table``."""
    con: duckdb.DuckDBPyConnection = backend.con
    for parent in CATALOG:
        if parent.name == table.name:
            break
        insert_rows(con, parent.name, SAMPLES[parent.name])
    return con


def count(backend: DuckDBBackend, table: Table) -> int:
    return int(backend.table(table.name).count().execute())


def parents(backend: DuckDBBackend) -> dict[str, ir.Table]:
    return {t.name: backend.table(t.name) for t in CATALOG}


# -- the tests ---------------------------------------------------------------------------------
@pytest.mark.parametrize("table", CATALOG.tables, ids=CATALOG.names)
def test_every_database_constraint_has_a_case(backend: DuckDBBackend, table: Table) -> None:
    """The cases cover exactly the constraints the database holds, kind by kind."""
    rows = backend.con.execute(
        "SELECT constraint_type, count(*) FROM duckdb_constraints() "
        "WHERE table_name = ? GROUP BY constraint_type",
        [table.name],
    ).fetchall()
    covered = Counter(
        kind for kind, _ in {(c.kind, c.rule) for c in CASES if c.table.name == table.name}
    )
    assert covered == Counter(dict(rows))


@each_case
def test_database_accepts_the_valid_row(backend: DuckDBBackend, case: Case) -> None:
    case.require()
    con = with_parents(backend, case.table)
    insert_rows(con, case.table.name, [*case.before, *case.valid])
    assert count(backend, case.table) == len(case.before) + len(case.valid)


@each_case
def test_database_rejects_the_violating_row(backend: DuckDBBackend, case: Case) -> None:
    case.require()
    con = with_parents(backend, case.table)
    *first, offending = case.bad
    insert_rows(con, case.table.name, [*case.before, *first])
    rows_before = count(backend, case.table)
    with pytest.raises(duckdb.ConstraintException) as raised:
        insert_rows(con, case.table.name, [offending])
    message = str(raised.value)
    assert all(part in message for part in case.db_error), f"rejected for another reason: {message}"
    assert count(backend, case.table) == rows_before


@each_case
def test_contract_accepts_the_valid_row(filled: DuckDBBackend, case: Case) -> None:
    case.require()
    data = stage(filled, case.table, list(case.valid))
    report = contract_for(case.table.name).validate(data, parents=parents(filled))
    assert report.ok, str(report)


@each_case
def test_contract_rejects_the_violating_row(filled: DuckDBBackend, case: Case) -> None:
    case.require()
    data = stage(filled, case.table, list(case.bad))
    report = contract_for(case.table.name).validate(data, parents=parents(filled))
    assert report.broken_rules == (case.rule,), str(report)
    failure = report.failure(case.rule)
    assert failure is not None
    assert failure.count == len(case.bad), str(report)
    shown = [primary_key(case.table, example) for example in failure.examples]
    for row in case.bad:
        assert primary_key(case.table, row) in shown, str(report)
