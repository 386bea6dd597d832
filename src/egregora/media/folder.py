"""Media files in a content-addressed folder: written whole or not at all, never replaced.

A file's name is its digest (``ab/<sha256><suffix>``), so a name that is there already holds the
same bytes and is left alone. Files are written before the rows that name them; a writer whose
rows then fail removes the files it created, and only those (``Stored.undo``).

A writer killed in between leaves files no row names. So before writing, it lists the files it
is about to create in a journal (``.pending-<pid>-<random>.json``), which it removes once its
rows are committed; the next writer (``sweep``) removes what a dead writer's journal lists and
no document names, and its abandoned drafts. A file a writer creates is dated as its journal;
a writer that finds the file there already (another database sharing the folder) touches it,
so a file dated after the journal was taken up and is left alone. A user's own files, whose
names this module never writes, are never looked at.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from egregora.drafts import abandoned_drafts, is_abandoned, new_draft
from egregora.errors import disk_full
from egregora.media.model import MediaBytes

JOURNAL = ".pending-"


@dataclass
class Stored:
    """What one ``store_files`` call created, and its journal."""

    journal: Path | None
    created: list[Path] = field(default_factory=list)

    def done(self) -> None:
        """The rows naming the files are committed: the journal is no longer needed."""
        if self.journal is not None:
            self.journal.unlink(missing_ok=True)

    def undo(self) -> None:
        """The rows were not written: remove the files this call created, then the journal."""
        for path in self.created:
            path.unlink(missing_ok=True)
        self.done()


def store_files(folder: Path, files: Sequence[MediaBytes]) -> Stored:
    """Write each file not there yet (touching those that are: they are taken up again).

    A file is streamed into a draft, checked against its digest, and linked into place, which
    is atomic and never replaces a file that is there (the same name holds the same bytes).
    """
    new = [file for file in files if not _take_up(folder / file.relative)]
    if not new:
        return Stored(None)
    folder.mkdir(parents=True, exist_ok=True)
    stored = Stored(_journal(folder, [file.relative for file in new]))
    dated = stored.journal.stat().st_mtime_ns if stored.journal is not None else 0
    try:
        for file in new:
            target = folder / file.relative
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, draft = new_draft(target.parent)
            try:
                with os.fdopen(handle, "wb") as out:
                    for chunk in file.chunks():  # checked against its digest at the end
                        out.write(chunk)
                os.utime(draft, ns=(dated, dated))  # not taken up since the journal
                try:
                    os.link(draft, target)
                except FileExistsError:
                    continue  # written meanwhile by another writer: same bytes
                stored.created.append(target)
            finally:
                Path(draft).unlink(missing_ok=True)
    except OSError as exc:
        stored.undo()
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full(folder, exc) from exc
        raise
    except BaseException:
        stored.undo()
        raise
    return stored


def sweep(folder: Path, named: Callable[[], set[str]]) -> list[Path]:
    """Remove what writers that died left in ``folder``: their drafts, and the files their
    journals list that no document names (``named()``: relative paths ``ab/<name>``, asked
    only when there is a dead writer's journal) and nobody took up since."""
    removed = list(abandoned_drafts(folder))
    journals = [
        j
        for j in folder.glob(f"{JOURNAL}*.json")
        if is_abandoned(j, prefix=JOURNAL, suffix=".json")
    ]
    kept = named() if journals else set()
    for journal in journals:
        written_at = journal.stat().st_mtime_ns
        for relative in _listed(journal):
            path = folder / relative
            if relative in kept or not path.is_file():
                continue
            if path.stat().st_mtime_ns <= written_at:
                removed.append(path)
        removed.append(journal)
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def _take_up(target: Path) -> bool:
    """Whether ``target`` is there already; if so it is touched, so that a sweep of a writer
    that died after creating it knows another writer took it up."""
    try:
        os.utime(target)
    except FileNotFoundError:
        return False
    return True


def _journal(folder: Path, relatives: list[str]) -> Path:
    handle, name = new_draft(folder, JOURNAL, ".json")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump({"files": relatives}, out)
        out.flush()
        os.fsync(out.fileno())
    return name


def _listed(journal: Path) -> list[str]:
    """The relative paths a journal lists (none when it is not one: it was cut short)."""
    try:
        files = json.loads(journal.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [f for f in files if isinstance(f, str) and ".." not in f.split("/")]
