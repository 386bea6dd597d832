"""Media files in a content-addressed folder: written whole or not at all, never replaced.

A file's name is its digest (``ab/<sha256><suffix>``), so a name that is there already holds the
same bytes and is left alone. Files are written before the rows that name them; a caller whose
rows then fail removes the files this very call created (``undo``), and only those.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from egregora.media.model import MediaBytes


def store_files(folder: Path, files: Sequence[MediaBytes]) -> list[Path]:
    """Write each file not there yet; return the ones this call created.

    A file is written under a draft name and linked into place, which is atomic and never
    replaces a file that is there (the same name holds the same bytes).
    """
    created: list[Path] = []
    try:
        for file in files:
            target = folder / file.relative
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, draft = tempfile.mkstemp(dir=target.parent, prefix=".draft-")
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(file.content)
                try:
                    os.link(draft, target)
                except FileExistsError:
                    continue  # written meanwhile by another ingest: same bytes
                created.append(target)
            finally:
                Path(draft).unlink(missing_ok=True)
    except BaseException:
        undo(created)
        raise
    return created


def undo(created: Sequence[Path]) -> None:
    """Remove media files this very call created, when the rows naming them were not written."""
    for path in created:
        path.unlink(missing_ok=True)
