"""``assert_conforms``: data checked against one table's contract, in a test's terms."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from egregora.contracts import ContractReport, contract_for
from egregora.schema.catalog import CATALOG

if TYPE_CHECKING:
    import pandas as pd


def assert_conforms(table: str, data: Any, *, max_examples: int = 5) -> ContractReport:
    """Check ``data`` against ``table``'s contract (every column's type and nullability, every
    rule and key; foreign keys need the parent rows, so they are not checked here). Return the
    report; raise ``AssertionError`` with the readable report when a rule breaks:

        orders: 1 rule(s) broken; fix the rows below (nothing was written)
          - runs_status_known (2 rows): status is one of ... e.g. run_id='r1'; run_id='r2'
    """
    report = contract_for(_declared(table)).validate(
        as_table(table, data), max_examples=max_examples
    )
    if not report.ok:
        raise AssertionError(str(report))
    return report


def as_table(table: str, data: Any) -> ir.Table:
    """``data`` as an Ibis table with ``table``'s declared types where its values have them
    (JSON text is JSON); a value of another type keeps that type, for the contract to name
    the column. Columns the table does not declare are kept, and named too."""
    _declared(table)
    if isinstance(data, ir.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return _typed(table, pa.Table.from_batches([data]))
    if isinstance(data, pa.Table):
        return _typed(table, data)
    if type(data).__module__.startswith("pandas"):
        return _typed(table, _arrow_frame(table, data))
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        if not all(isinstance(row, Mapping) for row in data):
            raise TypeError(f"rows for {table} must be mappings of column to value")
        return _typed(table, _arrow_rows(table, data))
    raise TypeError(
        f"cannot check {type(data).__name__} against {table}: give an Ibis table, a pyarrow "
        "Table or RecordBatch, a pandas DataFrame, or a list of dicts"
    )


def _typed(table: str, rows: pa.Table) -> ir.Table:
    """``rows`` as a memtable: a declared column whose values are stored as its type is (a
    JSON column's text) gets the declared type; every other column its values' own."""
    declared = CATALOG[table]
    schema = {}
    for field in rows.schema:
        own = ibis.dtype(field.type)
        if field.name in declared.column_names:
            wanted = declared.column(field.name).dtype
            schema[field.name] = wanted if wanted.to_pyarrow() == field.type else own
        else:
            schema[field.name] = own
    return ibis.memtable(rows, schema=schema)


def _declared(table: str) -> str:
    if table not in CATALOG.names:
        raise ValueError(
            f"no table {table!r} in the catalog; its tables: {', '.join(CATALOG.names)}"
        )
    return table


def _arrow_frame(table: str, frame: pd.DataFrame) -> pa.Table:
    """A pandas frame as Arrow, each declared column as its declared type where its values
    convert (pandas keeps integers with gaps as floats: 3.0 and NaN become 3 and NULL)."""
    declared = CATALOG[table]
    columns = {}
    for name in frame.columns:
        columns[str(name)] = pa.Array.from_pandas(frame[name])
        if name in declared.column_names:
            wanted = declared.column(str(name)).dtype.to_pyarrow()
            if frame[name].isna().all():  # NaN or None throughout: NULLs of the declared type
                columns[str(name)] = pa.nulls(len(frame), type=wanted)
            with contextlib.suppress(pa.ArrowException):  # else its own type, for the report
                columns[str(name)] = pa.Array.from_pandas(frame[name], type=wanted)
    return pa.table(columns)


def _arrow_rows(table: str, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """The rows as Arrow: every declared column (a key no row has is NULL, as in a list of
    dicts), then any column the table does not declare."""
    declared = CATALOG[table]
    names = [*declared.column_names]
    names += [n for n in dict.fromkeys(name for row in rows for name in row) if n not in names]
    columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        columns[name] = pa.array(values)
        if name in declared.column_names:
            wanted = declared.column(name).dtype.to_pyarrow()
            # The declared type, unless a value has another: the report names that column.
            with contextlib.suppress(pa.ArrowException):
                columns[name] = pa.array(values, type=wanted)
    return pa.table(columns)
