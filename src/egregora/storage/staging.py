"""Turn what a caller hands to ``write`` into a temporary table with the catalog's column types.

Accepted inputs: an Ibis table expression, a pyarrow Table, a pandas DataFrame, a list of dicts.
Casts done here (and documented in the README): any numeric or text value that converts to the
column's type exactly (TRY_CAST); JSON columns take JSON text, or dicts/lists (serialised);
timestamp columns take timezone-aware timestamps only (naive ones are refused: their zone is a
guess); a missing nullable column is NULL. Everything else is refused with a report naming the
column, the rows' keys, and the fix; nothing is written.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import ibis.expr.types as ir
import pyarrow as pa
from ibis.formats.pyarrow import PyArrowType
from sqlglot import exp

from egregora.contracts.report import ContractReport, RuleFailure
from egregora.ddl.render import sql_type, table_ref
from egregora.errors import ConfigurationError, ContractViolation
from egregora.schema.model import Column, Table

EXAMPLES = 5
_names = itertools.count()


@dataclass(frozen=True)
class Staged:
    """A temporary table holding the batch, typed like the catalog table."""

    name: str
    rows: int


def to_arrow(data: Any) -> pa.Table:
    """The caller's batch as an Arrow table."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, ir.Table):
        table: pa.Table = data.to_pyarrow()
        return table
    if isinstance(data, list):
        if not all(isinstance(row, dict) for row in data):
            raise ConfigurationError(
                "write() takes a list of dicts (one per row); got another list"
            )
        # Every key of every row is a column (from_pylist would read the first row's keys only).
        names = list(dict.fromkeys(key for row in data for key in row))
        try:
            return pa.Table.from_pydict({n: [row.get(n) for row in data] for n in names})
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ConfigurationError(
                f"the rows cannot be read as columns: {exc}; give each column one type"
            ) from exc
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas comes with ibis
        pd = None
    if pd is not None and isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise ConfigurationError(
        "write() takes an Ibis table, a pyarrow Table, a pandas DataFrame or a list of dicts; "
        f"got {type(data).__name__}"
    )


def _col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def _cast_expr(column: Column, source: pa.DataType) -> tuple[exp.Expr, str | None]:
    """The SQL producing ``column`` from a source of Arrow type ``source``, or why it cannot."""
    target = sql_type(column.dtype.copy(nullable=True), "duckdb")
    value = _col(column.name)
    dtype = column.dtype
    if dtype.is_timestamp():
        if pa.types.is_timestamp(source):
            if source.tz is None:
                return value, (
                    f"{column.name} holds timestamps without a time zone; make them "
                    "timezone-aware (for example datetime(..., tzinfo=UTC) or "
                    "Series.dt.tz_localize('UTC'))"
                )
            return exp.Cast(this=value, to=target), None
        if pa.types.is_null(source):
            return exp.Cast(this=value, to=target), None
        return value, f"{column.name} must hold timezone-aware timestamps, not {source}"
    if dtype.is_json():
        if (
            pa.types.is_string(source)
            or pa.types.is_large_string(source)
            or pa.types.is_null(source)
        ):
            return exp.TryCast(this=value, to=target), None
        return exp.func("to_json", value), None
    if _same_type(source, column):
        return value, None  # nothing to convert, nothing that can be lost
    return exp.TryCast(this=value, to=target), None


def _same_type(source: pa.DataType, column: Column) -> bool:
    try:
        arrived = PyArrowType.to_ibis(source)
    except (TypeError, NotImplementedError):
        return False
    return bool(arrived.copy(nullable=True) == column.dtype.copy(nullable=True))


def stage(
    con: duckdb.DuckDBPyConnection, table: Table, data: pa.Table
) -> tuple[Staged, list[RuleFailure]]:
    """Register ``data``, cast it to ``table``'s types into a temporary table.

    Returns the staged table and the failures of shape or type found on the way (the staged
    table is still made, so the contract can add its own findings to the same report).
    """
    failures: list[RuleFailure] = []
    source = f"_egregora_in_{next(_names)}"
    staged = f"_egregora_stage_{next(_names)}"
    known = set(table.column_names)
    for name in data.column_names:
        if name not in known:
            failures.append(
                RuleFailure(
                    f"unknown_column({name})",
                    f"{table.name} has no column {name!r}; drop it from the data, or declare it "
                    "in the catalog",
                    None,
                )
            )
    con.register(source, data)
    try:
        selects: list[exp.Expr] = []
        checks: list[tuple[str, exp.Expr]] = []
        for column in table.columns:
            target = sql_type(column.dtype.copy(nullable=True), "duckdb")
            if column.name not in data.column_names:
                if not column.nullable:
                    failures.append(
                        RuleFailure(
                            f"missing_column({column.name})",
                            f"the data has no column {column.name!r}, which {table.name} "
                            "requires (NOT NULL)",
                            None,
                        )
                    )
                selects.append(
                    exp.alias_(exp.Cast(this=exp.Null(), to=target), column.name, quoted=True)
                )
                continue
            expression, problem = _cast_expr(column, data.schema.field(column.name).type)
            if problem is not None:
                failures.append(RuleFailure(f"type({column.name})", problem, None))
                expression = exp.Cast(this=exp.Null(), to=target)
            elif isinstance(expression, exp.TryCast):
                lost = exp.and_(
                    exp.Not(this=exp.Is(this=_col(column.name), expression=exp.Null())),
                    exp.Is(this=expression.copy(), expression=exp.Null()),
                )
                checks.append((column.name, lost))
            selects.append(exp.alias_(expression, column.name, quoted=True))
        failures += _lost_values(con, table, source, data.column_names, checks)
        create = exp.Create(
            this=table_ref(staged),
            kind="TABLE",
            expression=exp.select(*selects).from_(table_ref(source)),
            properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
        )
        con.execute(create.sql(dialect="duckdb"))
    finally:
        con.unregister(source)
    return Staged(staged, data.num_rows), failures


def _lost_values(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    source: str,
    present: Sequence[str],
    checks: list[tuple[str, exp.Expr]],
) -> list[RuleFailure]:
    """Values that do not convert to their column's type, counted, with the rows' keys."""
    if not checks:
        return []
    counts = exp.select(
        *[exp.alias_(exp.func("count_if", lost), f"c{i}") for i, (_, lost) in enumerate(checks)]
    ).from_(table_ref(source))
    row = con.execute(counts.sql(dialect="duckdb")).fetchone()
    assert row is not None
    failures = []
    keys = [k for k in table.primary_key if k in present]
    for (name, lost), count in zip(checks, row, strict=True):
        if not count:
            continue
        shown = [*keys, name] if name not in keys else keys
        query = (
            exp.select(*[_col(c) for c in shown])
            .from_(table_ref(source))
            .where(lost)
            .limit(EXAMPLES)
        )
        cursor = con.execute(query.sql(dialect="duckdb"))
        columns = [d[0] for d in cursor.description]
        examples = tuple(dict(zip(columns, r, strict=True)) for r in cursor.fetchall())
        failures.append(
            RuleFailure(
                f"type({name})",
                f"{name} holds values that are not {table.column(name).dtype.copy(nullable=True)}",
                int(count),
                examples,
            )
        )
    return failures


def refuse(table: Table, rows: int, failures: list[RuleFailure]) -> None:
    if failures:
        raise ContractViolation(ContractReport(table.name, rows, tuple(failures)))


def drop(con: duckdb.DuckDBPyConnection, staged: Staged) -> None:
    con.execute(exp.Drop(this=table_ref(staged.name), kind="TABLE", exists=True).sql("duckdb"))
