"""Row rules, written once and enforced twice.

Each rule renders to a SQL boolean expression (a sqlglot tree, used as a named CHECK constraint)
and to an Ibis predicate (used by the Pandera contract before anything is written). Both follow
SQL CHECK semantics: a row breaks a rule only when the expression is FALSE; NULL (unknown) passes.
Values become sqlglot literals, so no value is ever formatted into SQL text.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import ibis
import ibis.expr.types as ir
from sqlglot import exp

Scalar: TypeAlias = str | int | float | bool
Comparison: TypeAlias = Literal["<", "<=", ">", ">="]

_SQL_COMPARISONS: dict[str, type[exp.Binary]] = {
    "<": exp.LT,
    "<=": exp.LTE,
    ">": exp.GT,
    ">=": exp.GTE,
}
_PY_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def _not_null(name: str) -> exp.Expr:
    return exp.Not(this=exp.Is(this=_col(name), expression=exp.Null()))


def _is_null(name: str) -> exp.Expr:
    return exp.Is(this=_col(name), expression=exp.Null())


def _eq(name: str, value: Scalar) -> exp.Expr:
    return exp.EQ(this=_col(name), expression=exp.convert(value))


def _and(parts: Sequence[exp.Expr]) -> exp.Expr:
    return exp.and_(*parts, wrap=True) if len(parts) > 1 else parts[0]


def _or(parts: Sequence[exp.Expr]) -> exp.Expr:
    return exp.or_(*parts, wrap=True) if len(parts) > 1 else parts[0]


def _all(values: Sequence[ir.BooleanValue]) -> ir.BooleanValue:
    result = values[0]
    for value in values[1:]:
        result = result & value
    return result


def _and3(values: Sequence[bool | None]) -> bool | None:
    """SQL AND over TRUE, FALSE and NULL (None)."""
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def _or3(values: Sequence[bool | None]) -> bool | None:
    """SQL OR over TRUE, FALSE and NULL (None)."""
    if any(v is True for v in values):
        return True
    return None if any(v is None for v in values) else False


@dataclass(frozen=True)
class Rule:
    """A named row rule; subclasses say what must hold."""

    name: str
    description: str

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns the rule reads, in declaration order."""
        raise NotImplementedError

    def sql(self) -> exp.Expr:
        """The rule as a dialect-neutral SQL boolean expression."""
        raise NotImplementedError

    def predicate(self, table: ir.Table) -> ir.BooleanValue:
        """The rule as an Ibis boolean column over ``table`` (NULL means unknown, which passes)."""
        raise NotImplementedError

    def holds(self, row: dict[str, Any]) -> bool:
        """Evaluate the rule on one Python row, with SQL CHECK semantics."""
        raise NotImplementedError

    def sql_text(self, dialect: str = "duckdb") -> str:
        return self.sql().sql(dialect=dialect)


@dataclass(frozen=True)
class OneOf(Rule):
    """An enumeration: ``column`` takes one of ``values``."""

    column: str
    values: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column,)

    def sql(self) -> exp.Expr:
        return exp.In(this=_col(self.column), expressions=[exp.convert(v) for v in self.values])

    def predicate(self, table: ir.Table) -> ir.BooleanValue:
        return table[self.column].isin(list(self.values))

    def holds(self, row: dict[str, Any]) -> bool:
        value = row.get(self.column)
        return value is None or value in self.values


@dataclass(frozen=True)
class Bound(Rule):
    """A column compared with a constant, such as ``size_bytes >= 0``."""

    column: str
    op: Comparison
    value: int | float

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column,)

    def sql(self) -> exp.Expr:
        return _SQL_COMPARISONS[self.op](this=_col(self.column), expression=exp.convert(self.value))

    def predicate(self, table: ir.Table) -> ir.BooleanValue:
        result: ir.BooleanValue = _PY_COMPARISONS[self.op](table[self.column], self.value)
        return result

    def holds(self, row: dict[str, Any]) -> bool:
        value = row.get(self.column)
        return value is None or bool(_PY_COMPARISONS[self.op](value, self.value))


@dataclass(frozen=True)
class Ordered(Rule):
    """Two columns in order when both are set, such as ``window_start < window_end``."""

    low: str
    op: Comparison
    high: str

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.low, self.high)

    def sql(self) -> exp.Expr:
        return _SQL_COMPARISONS[self.op](this=_col(self.low), expression=_col(self.high))

    def predicate(self, table: ir.Table) -> ir.BooleanValue:
        result: ir.BooleanValue = _PY_COMPARISONS[self.op](table[self.low], table[self.high])
        return result

    def holds(self, row: dict[str, Any]) -> bool:
        low, high = row.get(self.low), row.get(self.high)
        return low is None or high is None or bool(_PY_COMPARISONS[self.op](low, high))


@dataclass(frozen=True)
class RequiredWhen(Rule):
    """When ``column`` equals ``equals``, every column in ``required`` is set, unless the
    boolean column ``unless`` is true (which should be NOT NULL: NULL would excuse the row)."""

    column: str
    equals: Scalar
    required: tuple[str, ...]
    unless: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column, *self.required, *([self.unless] if self.unless else []))

    def sql(self) -> exp.Expr:
        other = exp.NEQ(this=_col(self.column), expression=exp.convert(self.equals))
        excused = [_col(self.unless)] if self.unless else []
        return _or([other, _and([_not_null(c) for c in self.required]), *excused])

    def predicate(self, table: ir.Table) -> ir.BooleanValue:
        present = _all([table[c].notnull() for c in self.required])
        result: ir.BooleanValue = (table[self.column] != self.equals) | present
        if self.unless:
            result = result | table[self.unless]
        return result

    def holds(self, row: dict[str, Any]) -> bool:
        value = row.get(self.column)
        other = None if value is None else value != self.equals
        present = all(row.get(c) is not None for c in self.required)
        excused: list[bool | None] = []
        if self.unless:
            flag = row.get(self.unless)
            excused = [None if flag is None else bool(flag)]
        return _or3([other, present, *excused]) is not False


@dataclass(frozen=True)
class NullExactlyWhen(Rule):
    """The ``nulls`` columns are NULL exactly when ``column`` equals ``equals``."""

    column: str
    equals: Scalar
    nulls: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column, *self.nulls)

    def sql(self) -> exp.Expr:
        when = _and([_eq(self.column, self.equals), *[_is_null(c) for c in self.nulls]])
        otherwise = _and(
            [
                exp.NEQ(this=_col(self.column), expression=exp.convert(self.equals)),
                *[_not_null(c) for c in self.nulls],
            ]
        )
        return _or([when, otherwise])

    def predicate(self, table: ir.Table) -> ir.BooleanValue:
        key = table[self.column]
        when = _all([key == self.equals, *[table[c].isnull() for c in self.nulls]])
        otherwise = _all([key != self.equals, *[table[c].notnull() for c in self.nulls]])
        result: ir.BooleanValue = when | otherwise
        return result

    def holds(self, row: dict[str, Any]) -> bool:
        # Three-valued, like the SQL: with ``column`` NULL the comparison is unknown, so the
        # row passes only when the null/set tests alone cannot make both branches FALSE.
        value = row.get(self.column)
        equal = None if value is None else value == self.equals
        nulls = [row.get(c) is None for c in self.nulls]
        when = _and3([equal, *nulls])
        otherwise = _and3([None if equal is None else not equal, *[not n for n in nulls]])
        return _or3([when, otherwise]) is not False


@dataclass(frozen=True)
class ExactlyOne(Rule):
    """Exactly one of ``choices`` is set (a parent that is one of several kinds)."""

    choices: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.choices

    def sql(self) -> exp.Expr:
        options = []
        for chosen in self.choices:
            parts = [_not_null(c) if c == chosen else _is_null(c) for c in self.choices]
            options.append(_and(parts))
        return _or(options)

    def predicate(self, table: ir.Table) -> ir.BooleanValue:
        # ifelse, not a cast: PostgreSQL casts a boolean to integer only, not to smallint.
        count = sum(
            (ibis.ifelse(table[c].notnull(), 1, 0) for c in self.choices[1:]),
            ibis.ifelse(table[self.choices[0]].notnull(), 1, 0),
        )
        result: ir.BooleanValue = count == 1
        return result

    def holds(self, row: dict[str, Any]) -> bool:
        return sum(row.get(c) is not None for c in self.choices) == 1


@dataclass(frozen=True)
class Matches(Rule):
    """``column`` matches ``pattern`` whole, such as a digest's 64 hexadecimal digits.

    ``pattern`` keeps to what PostgreSQL's, DuckDB's (RE2) and Python's regular expressions
    read alike: literals, bracketed classes and ``{n}`` counts; no ``^`` or ``$`` (the rule
    anchors it) and no backslash, so the CHECK and the contract judge a value alike everywhere.
    """

    column: str
    pattern: str

    def __post_init__(self) -> None:
        if "\\" in self.pattern or any(a in self.pattern for a in "^$"):
            raise ValueError(f"rule {self.name}: write the pattern without ^, $ or backslashes")
        re.compile(self.pattern)

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column,)

    @property
    def anchored(self) -> str:
        return f"^({self.pattern})$"

    def sql(self) -> exp.Expr:
        return exp.RegexpLike(this=_col(self.column), expression=exp.convert(self.anchored))

    def predicate(self, table: ir.Table) -> ir.BooleanValue:
        result: ir.BooleanValue = table[self.column].re_search(self.anchored)
        return result

    def holds(self, row: dict[str, Any]) -> bool:
        # fullmatch: Python's ``$`` also matches before a final newline, SQL's does not.
        value = row.get(self.column)
        return value is None or re.fullmatch(self.pattern, str(value)) is not None
