"""The run record's state changes, each one SQL statement built once by sqlglot.

Values are bound parameters (``?``), listed beside each statement. Only a `running` run
changes: a finished, failed or cancelled run is history. No statement has a RETURNING clause:
DuckDB 1.5 refuses any UPDATE ... RETURNING of a row another row references (a task, a child
run), even when no key changes, while the same UPDATE without RETURNING works.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from egregora.runs.model import COLUMNS


def _build(text: str) -> str:
    return sqlglot.parse_one(text, read="duckdb").sql("duckdb")


# A clock stepped back must not end a run before it started: finished_at is at least
# started_at.
# finished_at, rows_in, rows_out, attrs (JSON, NULL keeps them), heartbeat_at, run_id
FINISH = _build(
    "UPDATE runs SET status = 'succeeded', finished_at = greatest(?, started_at), "
    "rows_in = ?, rows_out = ?, attrs = COALESCE(?, attrs), heartbeat_at = ? "
    "WHERE run_id = ? AND status = 'running'"
)
# finished_at, error, heartbeat_at, run_id
FAIL = _build(
    "UPDATE runs SET status = 'failed', finished_at = greatest(?, started_at), error = ?, "
    "heartbeat_at = ? WHERE run_id = ? AND status = 'running'"
)
# finished_at, error, heartbeat_at, run_id
CANCEL = _build(
    "UPDATE runs SET status = 'cancelled', finished_at = greatest(?, started_at), error = ?, "
    "heartbeat_at = ? WHERE run_id = ? AND status = 'running'"
)
# heartbeat_at, run_id
HEARTBEAT = _build("UPDATE runs SET heartbeat_at = ? WHERE run_id = ? AND status = 'running'")

# (none): the running runs, for ``mark_stale`` to judge
RUNNING = _build(
    "SELECT run_id, host, pid, started_at, heartbeat_at FROM runs WHERE status = 'running'"
)

# run_id
GET = (
    exp.select(*[exp.column(c, quoted=True) for c in COLUMNS])
    .from_(exp.to_table("runs", quoted=True))
    .where(exp.column("run_id", quoted=True).eq(exp.Placeholder()))
    .sql("duckdb")
)
