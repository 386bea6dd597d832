"""Run records: what each pipeline stage ran on, which code ran it, and how it ended."""

from egregora.runs.model import STATUSES, Run
from egregora.runs.store import DEFAULT_STALE_AFTER, RunCounts, RunStore
from egregora.runs.version import code_version

__all__ = ["DEFAULT_STALE_AFTER", "STATUSES", "Run", "RunCounts", "RunStore", "code_version"]
