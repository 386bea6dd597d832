"""A run records the host and process running it and a heartbeat, so that a run left `running`
by a killed process can be told apart from one still at work. Older runs get NULL.
"""

from egregora.migrations.model import AddColumns

ID = "0007"
DESCRIPTION = "runs record who runs them, to detect stale runs"
OPERATIONS = (AddColumns("runs", ("host", "pid", "heartbeat_at")),)
