"""The task queue: durable work items with leases, retries with backoff and dedupe keys."""

from egregora.tasks.model import ACTIVE, FINISHED, STATUSES, Backoff, NewTask, Task
from egregora.tasks.queue import DEFAULT_LEASE, Enqueued, TaskStore

__all__ = [
    "ACTIVE",
    "DEFAULT_LEASE",
    "FINISHED",
    "STATUSES",
    "Backoff",
    "Enqueued",
    "NewTask",
    "Task",
    "TaskStore",
]
