"""The benchmarks' cache of generated inputs (``benchmarks/.cache/``, git-ignored), each
folder with a JSON manifest of what it holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CACHE = Path(__file__).resolve().parent / ".cache"
MANIFEST = "manifest.json"


def save_manifest(folder: Path, fields: dict[str, Any]) -> None:
    (folder / MANIFEST).write_text(json.dumps(fields) + "\n", encoding="utf-8")


def load_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest's fields, or None when the folder holds no readable one."""
    try:
        raw: dict[str, Any] = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return raw
