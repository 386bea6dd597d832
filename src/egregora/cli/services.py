"""What the service commands (cache, runs, tasks) share: opening an existing database, sizes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from egregora.errors import ConfigurationError

if TYPE_CHECKING:
    from egregora.storage.store import Storage

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*((?:[kmgt]i?)?b?)", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


@contextmanager
def existing(db: str | None) -> Iterator[Storage]:
    """The database ``db``, migrated to the latest schema; a missing file is an error (these
    commands look after a database, they do not make one)."""
    from egregora.storage.store import Storage

    with Storage.open(db, create=False) as store:
        store.ensure_schema()
        yield store


def parse_size(text: str) -> int:
    """Bytes from ``500``, ``64KB``, ``1.5MB``, ``2GiB`` (KB = 1000 bytes, KiB = 1024)."""
    found = _SIZE.fullmatch(text.strip())
    if not found:
        raise ConfigurationError(
            f"cannot read the size {text!r}; write bytes or a unit, for example 500MB or 2GiB"
        )
    number, unit = float(found.group(1)), found.group(2).lower()
    prefix = unit[:1] if unit[:1] in ("k", "m", "g", "t") else ""
    base = 1024 ** ("kmgt".index(prefix) + 1) if prefix and "i" in unit else _UNITS[prefix]
    size = number * base
    if size != int(size):
        raise ConfigurationError(
            f"cannot read the size {text!r}: it is not a whole number of bytes"
        )
    return int(size)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # unreachable: the loop returns at GiB


def when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")
