"""A run as read back from the `runs` table."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

STATUSES = ("running", "succeeded", "failed", "cancelled")

# The columns a Run is read from, in order (statements' RETURNING and SELECT use them).
COLUMNS = (
    "run_id",
    "parent_run_id",
    "stage",
    "status",
    "config_hash",
    "code_version",
    "input_checksum",
    "started_at",
    "finished_at",
    "rows_in",
    "rows_out",
    "error",
    "attrs",
    "host",
    "pid",
    "heartbeat_at",
)


@dataclass(frozen=True)
class Run:
    run_id: str
    parent_run_id: str | None
    stage: str
    status: str
    config_hash: str | None
    code_version: str | None
    input_checksum: str | None
    started_at: datetime
    finished_at: datetime | None
    rows_in: int | None
    rows_out: int | None
    error: str | None
    attrs: dict[str, Any]
    host: str | None
    pid: int | None
    heartbeat_at: datetime | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Run:
        values = dict(zip(COLUMNS, row, strict=True))
        attrs = values["attrs"]
        values["attrs"] = json.loads(attrs) if isinstance(attrs, str) else attrs or {}
        return cls(**values)

    @property
    def duration(self) -> timedelta | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in COLUMNS:
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        duration = self.duration
        out["duration_s"] = None if duration is None else duration.total_seconds()
        return out
