"""PostgreSQL indexes that serve the queries: the task claim's pick, read in its ORDER BY from
the first claimable task (a partial index of pending and running tasks), and every foreign-key
column, which PostgreSQL does not index by itself. The old pending-task index matched no query
the queue runs. DuckDB indexes foreign-key columns itself and has no partial index, so nothing
changes there.
"""

from egregora.migrations.model import AddIndex, DropIndex
from egregora.schema.model import Index

ID = "0010"
DESCRIPTION = "postgres indexes for the task claim and every foreign-key column"
OPERATIONS = (
    DropIndex(
        "tasks",
        Index(
            "tasks_next_pending_idx",
            ("task_type", "status", "created_at"),
            "the next pending task of a type, oldest first: WHERE task_type = ? AND "
            "status = 'pending' ORDER BY created_at LIMIT 1",
            dialects=("postgres",),
        ),
    ),
    AddIndex("tasks", "tasks_claim_idx"),
    AddIndex("tasks", "tasks_run_id_idx"),
    AddIndex("runs", "runs_parent_run_id_idx"),
    AddIndex("documents", "documents_created_by_run_idx"),
    AddIndex("messages", "messages_created_by_run_idx"),
    AddIndex("annotations", "annotations_message_id_idx"),
    AddIndex("annotations", "annotations_document_id_idx"),
)
