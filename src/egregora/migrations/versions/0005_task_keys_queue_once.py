"""A dedupe key is unique among active tasks only: once a task has finished, the same work can
be queued again. DuckDB has no partial index, so the task queue enforces "one pending or running
task per key" in its enqueue statement; an index serves that lookup.
"""

from egregora.migrations.model import AddIndex, DropUnique
from egregora.schema.model import Unique

ID = "0005"
DESCRIPTION = "a dedupe key is queued once at a time, not once ever"
OPERATIONS = (
    DropUnique("tasks", Unique("tasks_dedupe_key_key", ("dedupe_key",), "one task per dedupe key")),
    AddIndex("tasks", "tasks_dedupe_key_idx"),
)
