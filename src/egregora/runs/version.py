"""Which code ran: the package version, and the git commit when egregora runs from a checkout."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import egregora

PACKAGE = Path(egregora.__file__).resolve().parent


@functools.cache
def code_version() -> str:
    """``0.1.0``, or ``0.1.0+g<commit>`` (``.dirty`` with uncommitted changes) from a checkout."""
    commit = _checkout_commit()
    return f"{egregora.__version__}+g{commit}" if commit else egregora.__version__


def _checkout_commit() -> str | None:
    """The commit of the git checkout egregora's own sources live in, if they do.

    An installed egregora inside someone else's repository (a virtualenv in a project) is
    not a checkout of egregora: the top level must hold this very package under src/.
    """
    top = _git("rev-parse", "--show-toplevel")
    if top is None or (Path(top) / "src" / "egregora").resolve() != PACKAGE:
        return None
    head = _git("rev-parse", "--short=12", "HEAD")
    if head is None:
        return None
    changed = _git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return f"{head}.dirty" if changed else head


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(PACKAGE), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None  # no git here: the package version alone names the code
    return done.stdout.strip() if done.returncode == 0 else None
