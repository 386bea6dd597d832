"""The current time, as every service reads it: aware, in UTC.

Services take a ``clock`` (a function returning the current time) defaulting to ``utc_now``,
so tests move time explicitly instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)
