"""What the task queue takes (NewTask), hands out (Task), and how long a retry waits (Backoff)."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from egregora.constants import FINISHED as FINISHED
from egregora.errors import ConfigurationError

STATUSES = ("pending", "running", "succeeded", "failed", "superseded")
ACTIVE = ("pending", "running")

# The columns a Task is read from, in order (every statement's RETURNING and SELECT use them).
COLUMNS = (
    "task_id",
    "task_type",
    "status",
    "payload",
    "dedupe_key",
    "priority",
    "attempts",
    "max_attempts",
    "lease_owner",
    "lease_expires_at",
    "run_id",
    "created_at",
    "updated_at",
    "available_at",
    "last_error",
)


@dataclass(frozen=True)
class NewTask:
    """Work to enqueue. A ``dedupe_key`` already pending or running makes it a no-op;
    ``delay`` keeps it from being claimed until then."""

    task_type: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    dedupe_key: str | None = None
    priority: int = 0
    max_attempts: int = 3
    run_id: str | None = None
    delay: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if not self.task_type:
            raise ConfigurationError("a task needs a task_type")
        if self.max_attempts < 1:
            raise ConfigurationError(
                f"max_attempts must be at least 1, not {self.max_attempts} (1 means no retry)"
            )
        if self.delay < timedelta(0):
            raise ConfigurationError(f"delay must not be negative, not {self.delay}")


@dataclass(frozen=True)
class Task:
    """A stored task. One returned by ``claim`` is the lease: pass it to complete/fail/extend."""

    task_id: str
    task_type: str
    status: str
    payload: dict[str, Any]
    dedupe_key: str | None
    priority: int
    attempts: int
    max_attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    run_id: str | None
    created_at: datetime
    updated_at: datetime | None
    available_at: datetime
    last_error: str | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Task:
        values = dict(zip(COLUMNS, row, strict=True))
        payload = values["payload"]
        values["payload"] = json.loads(payload) if isinstance(payload, str) else payload or {}
        return cls(**values)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in COLUMNS:
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        return out


@dataclass(frozen=True)
class Backoff:
    """Wait ``base * factor ** (attempt - 1)``, at most ``cap``, spread by +-``jitter`` so that
    tasks failing together do not all come back at once."""

    base: timedelta = timedelta(seconds=10)
    factor: float = 2.0
    cap: timedelta = timedelta(hours=1)
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.base < timedelta(0) or self.factor < 1 or not 0 <= self.jitter < 1:
            raise ConfigurationError(
                "Backoff needs base >= 0, factor >= 1 and 0 <= jitter < 1; "
                f"got {self.base}, {self.factor}, {self.jitter}"
            )

    def delay(self, attempt: int) -> timedelta:
        """How long to wait after failed attempt number ``attempt`` (1 for the first)."""
        cap = self.cap.total_seconds()
        try:
            seconds = min(self.base.total_seconds() * self.factor ** max(attempt - 1, 0), cap)
        except OverflowError:  # many attempts at a large factor: past any cap
            seconds = cap
        if self.jitter:
            seconds *= 1 + random.uniform(-self.jitter, self.jitter)
        return timedelta(seconds=seconds)
