"""A worker process for the queue tests: claim and complete tasks until none is left.

    python -m tests._queue_child URL WORKER

Prints one line per completed task (``done <task_id>``), then ``idle``.
"""

from __future__ import annotations

import sys

from egregora.storage import Storage
from egregora.tasks import TaskStore


def main(url: str, worker: str) -> None:
    with Storage.open(url) as store:
        queue = TaskStore(store)
        while (task := queue.claim(worker)) is not None:
            queue.complete(task)
            print(f"done {task.task_id}", flush=True)
    print("idle", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
