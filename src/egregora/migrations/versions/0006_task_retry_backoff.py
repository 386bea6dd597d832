"""A failed attempt is retried after a backoff: tasks gain the time before which they are not
claimed. Existing tasks are available from when they were created.
"""

from egregora.migrations.model import AddColumns

ID = "0006"
DESCRIPTION = "tasks wait out a retry backoff"
OPERATIONS = (AddColumns("tasks", ("available_at",), {"available_at": "created_at"}),)
