"""Content addresses: one hash of a value tree, where files count by their bytes.

Used for asset cache keys and for run records (config hash, input checksum). Every value is
written with a type tag and a length prefix, so no two different inputs encode alike (``b"ab",
b"c"`` differs from ``b"a", b"bc"``; ``1`` from ``"1"``), and a file is read, never named: the
same bytes at another path give the same address.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from egregora.errors import ConfigurationError

CHUNK = 1 << 20


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spacing: equal configurations give equal text."""
    try:
        return json.dumps(
            value,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
            default=_plain,
        )
    except (TypeError, ValueError) as exc:  # an odd type, NaN, or a circular reference
        raise ConfigurationError(
            f"cannot write the configuration as JSON: {exc}; use text, numbers, lists and mappings"
        ) from exc


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``config``."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()


def content_hash(*values: Any) -> str:
    """SHA-256 over ``values``: bytes, text, numbers, booleans, None, dates, paths (their
    content: a file's bytes, a directory's relative names and bytes), and lists, tuples and
    mappings of these."""
    h = hashlib.sha256()
    for value in values:
        _feed(h, value)
    return h.hexdigest()


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, Path):
        _feed_path(h, value)
    elif isinstance(value, bytes | bytearray | memoryview):
        _frame(h, b"b", bytes(value))
    elif isinstance(value, str):
        _frame(h, b"s", value.encode("utf-8"))
    elif value is None or isinstance(value, bool):
        _frame(h, b"c", repr(value).encode())
    elif isinstance(value, int):
        _frame(h, b"i", str(value).encode())
    elif isinstance(value, float):
        if math.isnan(value):
            raise ConfigurationError("NaN cannot be hashed (it is not equal to itself)")
        _frame(h, b"f", value.hex().encode())
    elif isinstance(value, dt.datetime | dt.date):
        _frame(h, b"t", value.isoformat().encode())
    elif isinstance(value, Mapping):
        # Keys are hashed as values (1 and "1" differ), in an order that does not depend on
        # the mapping's insertion order.
        items = sorted(value.items(), key=lambda kv: (type(kv[0]).__name__, repr(kv[0])))
        _frame(h, b"m", str(len(items)).encode())
        for key, item in items:
            _feed(h, key)
            _feed(h, item)
    elif isinstance(value, list | tuple):
        _frame(h, b"l", str(len(value)).encode())
        for item in value:
            _feed(h, item)
    else:
        raise ConfigurationError(
            f"cannot hash a {type(value).__name__}; pass bytes, text, numbers, dates, paths, "
            "or lists and mappings of them"
        )


def _frame(h: Any, tag: bytes, data: bytes) -> None:
    h.update(tag + str(len(data)).encode() + b":")
    h.update(data)


def _feed_path(h: Any, path: Path) -> None:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        _frame(h, b"d", str(len(files)).encode())
        for file in files:
            _feed(h, file.relative_to(path).as_posix())
            _feed_file(h, file)
    elif path.is_file():
        _feed_file(h, path)
    else:
        raise ConfigurationError(f"cannot hash {path}: no such file or directory")


def _feed_file(h: Any, path: Path) -> None:
    try:
        size = path.stat().st_size
        h.update(b"b" + str(size).encode() + b":")
        with path.open("rb") as stream:
            read = 0
            while chunk := stream.read(CHUNK):
                read += len(chunk)
                h.update(chunk)
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path} to hash it: {exc.strerror}") from exc
    if read != size:
        raise ConfigurationError(f"{path} changed while it was being hashed; try again")


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
