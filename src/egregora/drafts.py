"""Draft files: written under a private name, then linked or renamed into place.

A draft's name carries its writer's process id (``.draft-<pid>-<random>``), so a later writer
can tell a draft abandoned by a process that died (killed between writing and renaming) from
one a live process is still writing, and removes only the former. Only names egregora gives are
ever looked at: a user's ``.draft-notes.txt`` is not a draft.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path

PREFIX = ".draft-"
# An unowned draft (named by an older version, without a pid) untouched this long has no
# writer left.
OLD_DRAFT_S = 3600
# A live pid may be a later process that reused a dead writer's pid; no writer leaves its draft
# untouched this long (it writes it in one go, then renames it).
OWNED_DRAFT_S = 86400


def draft_prefix(prefix: str = PREFIX) -> str:
    """The prefix of this process's drafts (``new_draft`` adds 8 random characters)."""
    return f"{prefix}{os.getpid()}-"


def new_draft(folder: Path, prefix: str = PREFIX, suffix: str = "") -> tuple[int, Path]:
    """A new, empty draft in ``folder`` opened for writing: its descriptor and path.

    It is created with mode 0666 less the user's umask (0644 under 022), as any file the user
    writes, and not 0600 as ``tempfile.mkstemp`` makes it: a site or an export renamed from
    it must be readable by a web server or a colleague the user lets read their files."""
    for _ in range(100):
        draft = folder / f"{draft_prefix(prefix)}{secrets.token_hex(4)}{suffix}"
        try:
            return os.open(draft, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666), draft
        except FileExistsError:
            continue  # 4 billion names: another writer drew the same one
    raise FileExistsError(f"no free draft name in {folder}")


@cache
def _names(prefix: str, suffix: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Owned (``<prefix><pid>-<random><suffix>``) and older unowned (``<prefix><random>``)
    names; drafts get 8 random letters, digits or underscores (hexadecimal digits now)."""
    start, end = re.escape(prefix), re.escape(suffix)
    return (
        re.compile(start + r"(?P<pid>[0-9]{1,10})-[a-z0-9_]{8}" + end),
        re.compile(start + r"[a-z0-9_]{8}" + end),
    )


def is_abandoned(
    draft: Path, *, prefix: str = PREFIX, suffix: str = "", now: float | None = None
) -> bool:
    """Whether ``draft`` was left by a writer that is gone: one named by a pid no process on
    this machine has (or untouched for a day, as pids are reused), or an unowned one of an
    older version untouched for an hour. A name egregora does not give is never abandoned."""
    owned, unowned = _names(prefix, suffix)
    found = owned.fullmatch(draft.name)
    if found is None and unowned.fullmatch(draft.name) is None:
        return False  # not a name egregora gives: the user's file
    try:
        info = draft.lstat()
    except FileNotFoundError:
        return False  # its writer renamed it meanwhile
    if not stat.S_ISREG(info.st_mode):
        return False
    age = (time.time() if now is None else now) - info.st_mtime
    if found is None:
        return age > OLD_DRAFT_S
    return age > OWNED_DRAFT_S or not process_alive(int(found["pid"]))


def abandoned_drafts(folder: Path, prefix: str = PREFIX) -> Iterator[Path]:
    """The abandoned drafts anywhere under ``folder``."""
    now = time.time()
    for root, _, names in os.walk(folder):
        for name in names:
            if name.startswith(prefix) and is_abandoned(Path(root, name), prefix=prefix, now=now):
                yield Path(root, name)


def remove_abandoned_drafts(folder: Path) -> list[Path]:
    """Remove the abandoned drafts under ``folder``; return them."""
    removed = list(abandoned_drafts(folder))
    for draft in removed:
        draft.unlink(missing_ok=True)
    return removed


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (signal 0 is sent to nobody)."""
    if pid <= 0:
        return False  # 0 and below name process groups, never a writer
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True  # someone else's process
    return True
