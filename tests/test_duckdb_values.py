"""Values in DuckDB statements: written in as literals until pandas is loaded, bound after;
either way the same rows, of the same types."""

from __future__ import annotations

import json
import subprocess
import sys

# In a process of its own, so that pandas is not loaded yet: each value is selected with its
# DuckDB type, first written in as a literal, then bound once pandas is imported.
_CHILD = """
import datetime as dt, json, sys
import duckdb
from egregora.backends.duckdb import DUCKDB, DuckDBExecutor

values = [
    "text", "it's", "", "ação", 42, -(2**40), 1.5, float("inf"), float("nan"), True, False, None,
    dt.datetime(2024, 5, 2, 18, 2, 3, 456789, tzinfo=dt.UTC),
    dt.datetime(2024, 5, 2, 18, 2, tzinfo=dt.timezone(dt.timedelta(hours=-3))),
    dt.datetime(2024, 5, 2, 18, 2), dt.date(2024, 5, 2), b"\\x00\\xffcard", ["a", "b"],
]
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
sql = "SELECT " + ", ".join("typeof(?), ?" for _ in values)
params = [p for v in values for p in (v, v)]
written = DUCKDB.run(con, sql, params)
by_migrations = DuckDBExecutor(con).query(sql, params)  # the migrations' connection
loaded_before = "pandas" in sys.modules
import pandas  # noqa: F401  (from here on DuckDB binds the values)
bound = DUCKDB.run(con, sql, params)
print(json.dumps({
    "loaded_before": loaded_before,
    "written": repr(written),
    "by_migrations": repr(by_migrations),
    "bound": repr(bound),
}))
"""


def test_values_written_in_and_bound_select_the_same_rows_and_types() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["loaded_before"] is False  # the written-in path was the one taken first
    assert seen["written"] == seen["by_migrations"] == seen["bound"]
