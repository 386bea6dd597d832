"""Hypothesis strategies for valid rows, derived from the catalog's declarations alone.

Nothing here names a table or a column: values come from each column's Ibis dtype (nullability
included) and ``one_of``; rows are built to satisfy the table's rules by kind (``OneOf``, ``Bound``,
``Ordered``, ``RequiredWhen``, ``NullExactlyWhen``, ``ExactlyOne``, ``Matches``), its keys and its
foreign keys. A table or rule added to the catalog is generated for without touching this module;
a rule of a kind this module does not understand raises ``NotImplementedError`` naming it, so it
can never silently yield invalid data.

Generation is constraint-aware rather than filtered: the columns rules branch on are drawn first,
the nullness every rule implies is worked out from them, the remaining columns are drawn to suit,
and ordered pairs are put in order afterwards. Rows whose key repeats an earlier row's are
dropped. Every generated list is checked against the rules, keys and foreign keys before it is
handed out, so a misunderstanding here fails loudly as a generator bug.

Self-references (a column referring to its own table) only point at rows earlier in the same
list, so inserting the rows one at a time, in order, satisfies them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from functools import cache
from typing import Any, Literal, TypeAlias
from zoneinfo import ZoneInfo

import ibis.expr.datatypes as dt
from hypothesis import reject
from hypothesis import strategies as st

from egregora.schema.catalog import CATALOG
from egregora.schema.model import Catalog, Column, Table
from egregora.schema.rules import (
    Bound,
    ExactlyOne,
    Matches,
    NullExactlyWhen,
    OneOf,
    Ordered,
    RequiredWhen,
    Rule,
)

Row: TypeAlias = dict[str, Any]
Rows: TypeAlias = list[Row]
ParentRows: TypeAlias = Mapping[str, Sequence[Mapping[str, Any]]]

#: The rule kinds this module knows how to satisfy (matched exactly: a subclass may mean more).
SUPPORTED_RULES: tuple[type[Rule], ...] = (
    OneOf,
    Bound,
    Ordered,
    RequiredWhen,
    NullExactlyWhen,
    ExactlyOne,
    Matches,
)

MAX_ROWS = 6
"""Rows drawn per table before duplicate keys are dropped (kept small: inserts are per row)."""

INT_LIMIT = 10**12
"""Integers stay within +-INT_LIMIT (and their dtype's range), leaving room to bump by one."""

MIN_DATETIME = datetime(1970, 1, 1)
MAX_DATETIME = datetime(2200, 12, 31, 23, 59, 59)
MIN_DATE = date(1970, 1, 1)
MAX_DATE = date(2200, 12, 31)

# DuckDB's VARCHAR rejects NUL and lone surrogates (not valid UTF-8); everything else is fair,
# and quotes, backslashes and LIKE wildcards are mixed in on purpose.
_CHARACTERS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
TEXT: st.SearchStrategy[str] = st.text(
    st.one_of(st.sampled_from("'\"\\%_;"), _CHARACTERS), max_size=12
)

_JSON_SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
_JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=8,
)
_JSON_DOCUMENTS: st.SearchStrategy[Any] = st.one_of(
    st.dictionaries(TEXT, _JSON_VALUES, max_size=4), st.lists(_JSON_VALUES, max_size=4)
)
JSON_TEXT: st.SearchStrategy[str] = st.builds(
    lambda value, ascii_only: json.dumps(value, ensure_ascii=ascii_only, allow_nan=False),
    _JSON_DOCUMENTS,
    st.booleans(),
)
"""JSON as text (how DuckDB takes a JSON parameter): small objects and arrays."""


# -- values ----------------------------------------------------------------------------------------
def check_rule_kinds(table: Table) -> None:
    """Raise ``NotImplementedError`` for a rule of a kind this module cannot satisfy."""
    for rule in table.rules:
        if type(rule) not in SUPPORTED_RULES:
            raise NotImplementedError(
                f"tests/strategies.py cannot generate rows for rule {rule.name!r} of "
                f"{table.name!r}: unknown rule kind {type(rule).__name__}; teach it this kind "
                "rather than risk generating rows that break it"
            )


def value_for(column: Column, bounds: Iterable[Bound] = ()) -> st.SearchStrategy[Any]:
    """Non-NULL values of ``column``'s dtype within its ``one_of``, ``min_value`` and ``bounds``.

    Nullability is the row's business (rules decide when a column may be NULL), so this never
    draws ``None``.
    """
    return _value_for(column, tuple(bounds))


@cache
def _value_for(column: Column, bounds: tuple[Bound, ...]) -> st.SearchStrategy[Any]:
    # Cached: rows are planned afresh for every database drawn, and building strategies is slow.
    if column.one_of is not None:
        return st.sampled_from(column.one_of)
    limits = list(bounds)
    if column.min_value is not None:
        limits.append(Bound("min_value", "", column.name, ">=", column.min_value))
    return _value_for_dtype(column.dtype, limits, f"column {column.name!r}")


def _value_for_dtype(
    dtype: dt.DataType, bounds: Sequence[Bound], what: str
) -> st.SearchStrategy[Any]:
    if bounds and not dtype.is_numeric():
        raise NotImplementedError(f"{what}: a Bound on a {dtype} column cannot be generated")
    if dtype.is_string():
        return TEXT
    if dtype.is_integer():
        low, high = _int_range(dtype, bounds, what)
        return st.integers(low, high)
    if dtype.is_floating():
        return _floats(dtype, bounds)
    if dtype.is_decimal():
        return _decimals(dtype, bounds)
    if dtype.is_boolean():
        return st.booleans()
    if dtype.is_timestamp():
        return _timestamps(dtype)
    if dtype.is_date():
        return st.dates(MIN_DATE, MAX_DATE)
    if dtype.is_time():
        return st.times()
    if dtype.is_array():
        element = _value_for_dtype(dtype.value_type, (), f"elements of {what}")
        if dtype.value_type.nullable:
            element = st.one_of(st.none(), element)
        return st.lists(element, max_size=4)
    if dtype.is_json():
        return JSON_TEXT
    if dtype.is_binary():
        return st.binary(max_size=16)
    if dtype.is_uuid():
        return st.uuids()
    raise NotImplementedError(f"{what}: no value strategy for dtype {dtype}")


def _int_range(dtype: dt.DataType, bounds: Sequence[Bound], what: str) -> tuple[int, int]:
    low = max(int(dtype.bounds.lower), -INT_LIMIT)
    high = min(int(dtype.bounds.upper) - 1, INT_LIMIT)  # one to spare for a strict Ordered
    for bound in bounds:
        value = bound.value
        if bound.op == ">=":
            low = max(low, math.ceil(value))
        elif bound.op == ">":
            low = max(low, math.floor(value) + 1)
        elif bound.op == "<=":
            high = min(high, math.floor(value))
        else:
            high = min(high, math.ceil(value) - 1)
    if low > high:
        raise ValueError(f"{what}: no {dtype} value satisfies its bounds")
    return low, high


def _floats(dtype: dt.DataType, bounds: Sequence[Bound]) -> st.SearchStrategy[float]:
    low: float = -1e15
    high: float = 1e15
    exclude_low = exclude_high = False
    for bound in bounds:
        if bound.op in (">=", ">") and bound.value >= low:
            low, exclude_low = float(bound.value), bound.op == ">"
        elif bound.op in ("<=", "<") and bound.value <= high:
            high, exclude_high = float(bound.value), bound.op == "<"
    width: Literal[32, 64] = 32 if dtype.nbytes == 4 else 64
    return st.floats(low, high, exclude_min=exclude_low, exclude_max=exclude_high, width=width)


def _decimals(dtype: dt.DataType, bounds: Sequence[Bound]) -> st.SearchStrategy[Decimal]:
    precision = dtype.precision or 18
    places = dtype.scale or 0
    limit = Decimal(10) ** (precision - places) - Decimal(10) ** -places
    low, high = -limit, limit
    for bound in bounds:
        step = Decimal(10) ** -places
        value = Decimal(str(bound.value))
        if bound.op == ">=":
            low = max(low, value)
        elif bound.op == ">":
            low = max(low, value + step)
        elif bound.op == "<=":
            high = min(high, value)
        else:
            high = min(high, value - step)
    return st.decimals(low, high, places=places, allow_nan=False, allow_infinity=False)


def _timestamps(dtype: dt.DataType) -> st.SearchStrategy[datetime]:
    if dtype.timezone is None:
        stamps = st.datetimes(MIN_DATETIME, MAX_DATETIME)
    else:
        zone: tzinfo = UTC if dtype.timezone.upper() == "UTC" else ZoneInfo(dtype.timezone)
        stamps = st.datetimes(
            MIN_DATETIME, MAX_DATETIME, timezones=st.just(zone), allow_imaginary=False
        )
    unit = _timestamp_unit(dtype)
    if unit == 1:
        return stamps
    return stamps.map(lambda d: d.replace(microsecond=d.microsecond // unit * unit))


def _timestamp_unit(dtype: dt.DataType) -> int:
    """The dtype's resolution in microseconds (Python datetimes stop at microseconds)."""
    scale = dtype.scale if dtype.scale is not None else 6
    return int(10 ** max(0, 6 - scale))


def successor(value: Any, dtype: dt.DataType) -> Any:
    """A value of ``dtype`` just above ``value`` (to make an equal pair strictly ordered)."""
    if dtype.is_integer():
        return value + 1
    if dtype.is_floating():
        return math.nextafter(value, math.inf)
    if dtype.is_decimal():
        return value + Decimal(10) ** -(dtype.scale or 0)
    if dtype.is_timestamp():
        return value + timedelta(microseconds=_timestamp_unit(dtype))
    if dtype.is_date():
        return value + timedelta(days=1)
    if dtype.is_string():
        return value + "0"
    if dtype.is_binary():
        return value + b"\x00"
    if dtype.is_boolean() and value is False:
        return True
    raise NotImplementedError(f"no successor of {value!r} in {dtype} for a strict Ordered rule")


# -- rows of one table -----------------------------------------------------------------------------
class _Parent:
    """Stands in for a self-reference until the rows before it are known."""

    def __init__(self, required: bool) -> None:
        self.required = required

    def __repr__(self) -> str:
        return f"<self-reference, {'required' if self.required else 'optional'}>"


_REQUIRED_PARENT = _Parent(required=True)
_OPTIONAL_PARENT = _Parent(required=False)


@dataclass(frozen=True)
class _Plan:
    """What one table's rows may contain, given the parent rows available."""

    table: Table
    references: dict[str, tuple[Any, ...]]  # column -> values it may refer to (other tables)
    self_references: dict[str, str]  # column -> referenced column of the same table
    bounds: dict[str, tuple[Bound, ...]]
    condition_columns: tuple[str, ...]  # columns RequiredWhen / NullExactlyWhen branch on
    forbidden: dict[str, frozenset[Any]]  # values a condition column must not take
    pinned: dict[str, tuple[Any, ...]]  # the only values a condition column may take
    _strategies: dict[tuple[str, str], st.SearchStrategy[Any]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def build(cls, table: Table, parents: ParentRows) -> _Plan:
        references: dict[str, tuple[Any, ...]] = {}
        self_references: dict[str, str] = {}
        for fk in table.foreign_keys:
            if fk.references == table.name:
                self_references[fk.column] = fk.ref_column
                continue
            found = tuple(
                dict.fromkeys(
                    row[fk.ref_column]
                    for row in parents.get(fk.references, ())
                    if row.get(fk.ref_column) is not None
                )
            )
            if fk.column in references:  # one column, two parents: it must exist in both
                found = tuple(v for v in references[fk.column] if v in found)
            references[fk.column] = found
        bounds: dict[str, list[Bound]] = {}
        forbidden: dict[str, set[Any]] = {}
        pinned: dict[str, set[Any]] = {}
        conditions: set[str] = set()

        def nullable(name: str) -> bool:
            return table.column(name).nullable

        def settable(name: str) -> bool:
            return bool(references[name]) if name in references else True

        for rule in table.rules:
            if isinstance(rule, Bound):
                bounds.setdefault(rule.column, []).append(rule)
            elif isinstance(rule, RequiredWhen):
                conditions.add(rule.column)
                if not all(settable(c) for c in rule.required):
                    forbidden.setdefault(rule.column, set()).add(rule.equals)
            elif isinstance(rule, NullExactlyWhen):
                conditions.add(rule.column)
                if not all(nullable(c) for c in rule.nulls):
                    forbidden.setdefault(rule.column, set()).add(rule.equals)
                if not all(settable(c) for c in rule.nulls):
                    pinned.setdefault(rule.column, set()).add(rule.equals)
        return cls(
            table=table,
            references=references,
            self_references=self_references,
            bounds={name: tuple(found) for name, found in bounds.items()},
            condition_columns=tuple(c for c in table.column_names if c in conditions),
            forbidden={name: frozenset(values) for name, values in forbidden.items()},
            pinned={name: tuple(sorted(values, key=repr)) for name, values in pinned.items()},
        )

    # -- what a column can be ------------------------------------------------------------------
    def nullable(self, name: str) -> bool:
        return self.table.column(name).nullable

    def settable(self, name: str) -> bool:
        """Whether the column can hold a value (a reference needs something to refer to)."""
        return bool(self.references[name]) if name in self.references else True

    @property
    def impossible(self) -> str | None:
        """Why no row at all can be generated, or None."""
        for column in self.table.columns:
            if not column.nullable and not self.settable(column.name):
                return f"NOT NULL {column.name} refers to a table with no rows"
            if not column.nullable and column.name in self.self_references:
                return f"NOT NULL {column.name} refers to its own table"
        for rule in self.table.rules:
            if isinstance(rule, ExactlyOne) and not any(self.settable(c) for c in rule.choices):
                return f"{rule.name}: none of {', '.join(rule.choices)} can be set"
        return None

    def candidates(self, name: str) -> tuple[Any, ...] | None:
        """The finite set of values a column may take, or None when it is open-ended."""
        column = self.table.column(name)
        if name in self.references:
            found = self.references[name]
            return tuple(v for v in found if column.one_of is None or v in column.one_of)
        if column.one_of is not None:
            return column.one_of
        return None

    def values(self, name: str) -> st.SearchStrategy[Any]:
        """Non-NULL values for a column (self-references excepted)."""
        return self._cached("values", name)

    def maybe_values(self, name: str) -> st.SearchStrategy[Any]:
        """NULL or :meth:`values`."""
        return self._cached("maybe", name)

    def condition_values(self, name: str) -> st.SearchStrategy[Any]:
        """Values of a column a rule branches on, avoiding those no row can live with."""
        return self._cached("condition", name)

    def _cached(self, kind: str, name: str) -> st.SearchStrategy[Any]:
        found = self._strategies.get((kind, name))
        if found is None:
            if kind == "values":
                found = self._values(name)
            elif kind == "maybe":
                found = st.one_of(st.none(), self.values(name))
            else:
                found = self._condition_values(name)
            self._strategies[(kind, name)] = found
        return found

    def _values(self, name: str) -> st.SearchStrategy[Any]:
        finite = self.candidates(name)
        if finite is not None:
            return st.sampled_from(finite) if finite else st.nothing()
        patterns = [r for r in self.table.rules if isinstance(r, Matches) and r.column == name]
        if patterns:
            return st.from_regex(patterns[0].pattern, fullmatch=True).filter(
                lambda v: all(r.holds({name: v}) for r in patterns)
            )
        return value_for(self.table.column(name), self.bounds.get(name, ()))

    def _condition_values(self, name: str) -> st.SearchStrategy[Any]:
        forbidden = self.forbidden.get(name, frozenset())
        pinned = self.pinned.get(name)
        finite = self.candidates(name)
        if pinned is not None:
            finite = pinned if finite is None else tuple(v for v in finite if v in pinned)
        if finite is not None:
            allowed = [v for v in finite if v not in forbidden]
            values: st.SearchStrategy[Any] = st.sampled_from(allowed) if allowed else st.nothing()
        else:
            values = self.values(name)
            if forbidden:
                values = values.filter(lambda v: v not in forbidden)
        if self.nullable(name):
            values = st.one_of(st.none(), values)
        return values


@st.composite
def _row(draw: st.DrawFn, plan: _Plan) -> Row:
    table = plan.table
    row: Row = {name: draw(plan.condition_values(name)) for name in plan.condition_columns}
    must_be_null: set[str] = set()
    must_be_set: set[str] = set()
    for rule in table.rules:
        if isinstance(rule, RequiredWhen):
            value = row[rule.column]
            if value is not None and value == rule.equals:
                must_be_set.update(rule.required)
        elif isinstance(rule, NullExactlyWhen):
            value = row[rule.column]
            if value is None:
                # Unknown passes only while the nulls agree: mixed nullness makes the SQL
                # expression FALSE, whatever holds() says.
                if not all(plan.nullable(c) for c in rule.nulls):
                    all_null = False
                elif not all(plan.settable(c) for c in rule.nulls):
                    all_null = True
                else:
                    all_null = draw(st.booleans())
            else:
                all_null = value == rule.equals
            (must_be_null if all_null else must_be_set).update(rule.nulls)
    for rule in table.rules:
        if isinstance(rule, ExactlyOne):
            chosen = [c for c in rule.choices if c in must_be_set or not plan.nullable(c)]
            if not chosen:
                options = [c for c in rule.choices if plan.settable(c) and c not in must_be_null]
                if not options:
                    reject()  # the branches drawn above leave no choice: no such row exists
                chosen = [draw(st.sampled_from(options))]
            must_be_set.add(chosen[0])
            must_be_null.update(c for c in rule.choices if c != chosen[0])
    clash = must_be_null & must_be_set
    clash |= {c for c in must_be_null if not plan.nullable(c)}
    clash |= {c for c in must_be_set if not plan.settable(c)}
    clash |= {c for c, v in row.items() if (v is None and c in must_be_set)}
    clash |= {c for c, v in row.items() if (v is not None and c in must_be_null)}
    if clash:
        reject()  # rules contradict each other for the values drawn: no such row exists

    for name in table.column_names:
        if name in row:
            continue
        required = name in must_be_set or not plan.nullable(name)
        if name in must_be_null:
            row[name] = None
        elif name in plan.self_references:
            wanted = required or draw(st.booleans())
            row[name] = (_REQUIRED_PARENT if required else _OPTIONAL_PARENT) if wanted else None
        elif required:
            row[name] = draw(plan.values(name))
        else:
            row[name] = draw(plan.maybe_values(name))
    _put_in_order(row, table)
    return row


def _put_in_order(row: Row, table: Table) -> None:
    """Swap out-of-order pairs of every Ordered rule; separate equal pairs of a strict one."""
    ordered = [r for r in table.rules if isinstance(r, Ordered)]
    for _ in range(len(ordered) + 1):
        broken = [r for r in ordered if not r.holds(row)]
        if not broken:
            return
        for rule in broken:
            row[rule.low], row[rule.high] = row[rule.high], row[rule.low]
            if not rule.holds(row):  # equal values under < or >
                bumped = rule.high if rule.op in ("<", "<=") else rule.low
                row[bumped] = successor(row[bumped], table.column(bumped).dtype)


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


@st.composite
def _rows(draw: st.DrawFn, plan: _Plan, min_size: int, max_size: int) -> Rows:
    table = plan.table
    drawn = draw(st.lists(_row(plan), min_size=min_size, max_size=max_size))
    kept: Rows = []
    seen: dict[str, set[tuple[Any, ...]]] = {key.name: set() for key in table.keys}
    for row in drawn:
        dropped = False
        for name, ref_column in plan.self_references.items():
            marker = row[name]
            if not isinstance(marker, _Parent):
                continue
            earlier = [r[ref_column] for r in kept if r[ref_column] is not None]
            if earlier:
                row[name] = draw(st.sampled_from(earlier))
            elif marker.required:
                dropped = True
            else:
                row[name] = None
        if dropped:
            continue
        keys = {k.name: tuple(_hashable(row[c]) for c in k.columns) for k in table.keys}
        if any(None not in key and key in seen[name] for name, key in keys.items()):
            continue  # a repeated key: NULLs never collide, anything else does
        for name, key in keys.items():
            if None not in key:
                seen[name].add(key)
        kept.append(row)
    found = problems(table, kept, _parent_rows_of(plan))
    if found:
        raise AssertionError(
            f"tests/strategies.py generated invalid {table.name} rows (a generator bug): "
            + "; ".join(found)
        )
    return kept


def _parent_rows_of(plan: _Plan) -> dict[str, Rows]:
    """The referenced values as rows, enough for :func:`problems` to check references."""
    out: dict[str, Rows] = {}
    for fk in plan.table.foreign_keys:
        if fk.references != plan.table.name:
            out.setdefault(fk.references, []).extend(
                {fk.ref_column: v} for v in plan.references[fk.column]
            )
    return out


def rows(
    table: Table,
    parents: ParentRows | None = None,
    *,
    min_size: int = 0,
    max_size: int = MAX_ROWS,
) -> st.SearchStrategy[Rows]:
    """Lists of valid rows of ``table`` (every column present, ``None`` for NULL).

    Foreign keys refer to ``parents[referenced_table]`` (a table missing from ``parents`` has no
    rows); a self-reference refers to an earlier row of the same list. Keys are unique across
    the list. ``min_size`` rows are drawn, but fewer are kept when keys repeat, and none when
    the declaration leaves no valid row (a NOT NULL reference to a table with no rows).
    Raises ``NotImplementedError`` for a rule kind or dtype it cannot generate.
    """
    check_rule_kinds(table)
    for column in table.columns:  # fail now, not at the first draw, for an unknown dtype
        value_for(column)
    plan = _Plan.build(table, parents or {})
    if plan.impossible is not None:
        return st.just([])
    return _rows(plan, min_size, max_size)


# -- whole databases -------------------------------------------------------------------------------
def with_ancestors(names: Iterable[str], catalog: Catalog = CATALOG) -> tuple[str, ...]:
    """``names`` and every table they refer to, directly or not, in catalog order."""
    wanted = set(names)
    for table in reversed(catalog.tables):
        if table.name in wanted:
            wanted.update(fk.references for fk in table.foreign_keys)
    return tuple(name for name in catalog.names if name in wanted)


def database(
    catalog: Catalog = CATALOG,
    *,
    tables: Iterable[str] | None = None,
    min_size: int = 0,
    max_size: int = MAX_ROWS,
) -> st.SearchStrategy[dict[str, Rows]]:
    """Rows for every table of ``catalog`` (or ``tables`` and their ancestors), parents first.

    The result maps table name to rows in catalog order; inserting the tables in that order and
    each table's rows one by one satisfies every foreign key. With ``min_size=1`` every table
    the declaration allows rows in gets at least one.
    """
    names = catalog.names if tables is None else with_ancestors(tables, catalog)
    chosen = [catalog[name] for name in names]
    for table in chosen:
        check_rule_kinds(table)

    @st.composite
    def draw_all(draw: st.DrawFn) -> dict[str, Rows]:
        out: dict[str, Rows] = {}
        for table in chosen:
            out[table.name] = draw(rows(table, out, min_size=min_size, max_size=max_size))
        return out

    return draw_all()


# -- checking --------------------------------------------------------------------------------------
def problems(
    table: Table, table_rows: Sequence[Mapping[str, Any]], parents: ParentRows
) -> list[str]:
    """Everything wrong with ``table_rows`` by the declaration, judged in Python.

    NOT NULL, every rule's ``holds``, key uniqueness (NULLs never collide) and references
    (to ``parents``, or to earlier rows for a self-reference). Empty when the rows are valid.
    """
    found: list[str] = []
    seen: dict[str, set[tuple[Any, ...]]] = {key.name: set() for key in table.keys}
    for index, row in enumerate(table_rows):
        where = f"row {index}"
        if set(row) != set(table.column_names):
            found.append(f"{where} has columns {sorted(row)}")
            continue
        for column in table.columns:
            if not column.nullable and row[column.name] is None:
                found.append(f"{where}: NOT NULL {column.name} is NULL")
        for rule in table.rules:
            if not rule.holds(dict(row)):
                found.append(f"{where} breaks {rule.name}")
            elif (
                isinstance(rule, NullExactlyWhen)
                and row[rule.column] is None
                and len({row[c] is None for c in rule.nulls}) > 1
            ):
                # holds() passes this row, but the CHECK is FALSE when the nulls disagree.
                found.append(f"{where} breaks {rule.name} in SQL (NULL key, mixed nulls)")
        for key in table.keys:
            value = tuple(_hashable(row[c]) for c in key.columns)
            if None in value:
                continue
            if value in seen[key.name]:
                found.append(f"{where} repeats {key.name} {value!r}")
            seen[key.name].add(value)
        for fk in table.foreign_keys:
            value = row[fk.column]
            if value is None:
                continue
            if fk.references == table.name:
                targets = [r[fk.ref_column] for r in table_rows[:index]]
            else:
                targets = [r.get(fk.ref_column) for r in parents.get(fk.references, ())]
            if value not in targets:
                found.append(f"{where}: {fk.name} refers to missing {value!r}")
    return found
