"""Content addresses for cached assets: ``kind:sha256`` over everything that shapes the bytes."""

from __future__ import annotations

import re
from typing import Any

from egregora.digest import content_hash
from egregora.errors import ConfigurationError

_KIND = re.compile(r"[a-z0-9][a-z0-9_.-]*")


def key_for(kind: str, renderer_version: str | int, **inputs: Any) -> str:
    """The cache key of an asset of ``kind`` made by ``renderer_version`` from ``inputs``.

    Inputs are hashed by content: a ``pathlib.Path`` counts by its bytes (a directory by its
    files' relative names and bytes), never by its name or location, so editing a template or
    a font changes the key and moving it does not. Text, bytes, numbers, dates, None, and
    lists and mappings of these count by value; the input names count too.
    """
    check_kind(kind)
    return f"{kind}:{content_hash(kind, str(renderer_version), inputs)}"


def check_kind(kind: str) -> str:
    if not _KIND.fullmatch(kind):
        raise ConfigurationError(
            f"asset kind {kind!r} must be lower-case letters, digits, '_', '.' or '-' "
            "(for example social_card)"
        )
    return kind


def kind_of(key: str) -> str | None:
    """The kind a ``key_for`` key names (the part before ':'), if it has one."""
    kind, sep, _ = key.partition(":")
    return kind if sep and _KIND.fullmatch(kind) else None
