"""Every index declared for DuckDB is one DuckDB's planner actually scans for its lookup."""

from __future__ import annotations

import duckdb
import pytest

from egregora.ddl.render import create_indexes, ident, sql_type
from egregora.schema.catalog import CATALOG
from egregora.schema.model import Index, Table

DUCKDB_INDEXES = [
    (table, index) for table in CATALOG for index in table.indexes if "duckdb" in index.dialects
]


def _values_sql(table: Table, column: str) -> str:
    """A SELECT producing 200,000 distinct values of the column's type."""
    dtype = table.column(column).dtype
    if dtype.is_string():
        return "SELECT 'v' || i::VARCHAR AS v FROM range(200000) r(i)"
    if dtype.is_timestamp():
        start = "TIMESTAMPTZ '2026-01-01 00:00:00+00'"
        return f"SELECT {start} + to_seconds(i) AS v FROM range(200000) r(i)"  # noqa: S608
    if dtype.is_integer():
        return "SELECT i AS v FROM range(200000) r(i)"
    raise NotImplementedError(f"no value generator for {dtype}")


@pytest.mark.parametrize(
    ("table", "index"), DUCKDB_INDEXES, ids=[i.name for _, i in DUCKDB_INDEXES]
)
def test_duckdb_scans_the_index_for_an_equality_lookup(table: Table, index: Index) -> None:
    assert len(index.columns) == 1, (
        f"{index.name}: DuckDB 1.5 never scans a composite ART index; declare it for postgres only"
    )
    (column,) = index.columns
    kind = sql_type(table.column(column).dtype, "duckdb").sql("duckdb")
    name, col = ident(table.name).sql("duckdb"), ident(column).sql("duckdb")
    with duckdb.connect() as con:
        con.execute(f"CREATE TABLE {name} ({col} {kind})")
        con.execute(f"INSERT INTO {name} SELECT v FROM ({_values_sql(table, column)})")  # noqa: S608
        (statement,) = [s for s in create_indexes(table, "duckdb") if s.this.name == index.name]
        con.execute(statement.sql("duckdb"))
        probe = con.execute(f"SELECT {col} FROM {name} LIMIT 1 OFFSET 777").fetchone()  # noqa: S608
        assert probe is not None
        plan = con.execute(
            f"EXPLAIN ANALYZE SELECT * FROM {name} WHERE {col} = ?",  # noqa: S608
            [probe[0]],
        ).fetchall()[0][1]
    assert "Index Scan" in plan, plan
