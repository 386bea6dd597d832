"""Running git: one place that starts git processes and turns their failures into GitError."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from egregora.errors import GitError, MissingObjectError

CHUNK = 1 << 20
# The user's and the repository's configuration files are read (safe.directory, object
# alternates and credentials live there), but every setting that would change what git prints
# to us is pinned on the command line, where it wins over every file: answers equal git's with
# no configuration at all.
SETTINGS = {
    "log.showRoot": "true",  # the root commit's files are changes like any other
    "log.showSignature": "false",
    "log.follow": "false",
    "log.mailmap": "false",
    "log.abbrevCommit": "false",
    "log.decorate": "false",
    "log.diffMerges": "first-parent",
    "diff.renames": "true",
    "diff.renameLimit": "1000",
    "diff.algorithm": "myers",  # line counts depend on the algorithm
    "diff.indentHeuristic": "true",
    "diff.noprefix": "false",
    "diff.mnemonicPrefix": "false",
    "diff.relative": "false",
    "diff.ignoreSubmodules": "none",
    "core.quotePath": "false",
    "core.abbrev": "auto",
    "core.attributesFile": os.devnull,  # a global `*.txt -diff` would hide line counts
    "core.bigFileThreshold": "512m",  # larger files are binary to diff
    "core.useReplaceRefs": "true",
    "color.ui": "never",
    "i18n.logOutputEncoding": "UTF-8",
}
CONFIG = tuple(arg for key, value in SETTINGS.items() for arg in ("-c", f"{key}={value}"))
_ENV = {
    "LC_ALL": "C",
    "GIT_PAGER": "cat",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_LITERAL_PATHSPECS": "1",  # a path is a path, never a glob or magic
}
# Variables a calling git (a hook, an alias) or a shell may leave behind that would point git
# at another repository, add configuration, or change how paths and objects are read.
_DROPPED = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_GLOB_PATHSPECS",
    "GIT_NOGLOB_PATHSPECS",
    "GIT_ICASE_PATHSPECS",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_REPLACE_REF_BASE",
    "GIT_DIFF_OPTS",
    "GIT_EXTERNAL_DIFF",
)


def _git() -> str:
    found = shutil.which("git")
    if found is None:
        raise GitError("git is not installed or not on PATH; install git and try again")
    return found


def _command(repo: Path, args: Sequence[str]) -> list[str]:
    return [_git(), "-C", str(repo), *CONFIG, *args]


def git_env() -> dict[str, str]:
    """The environment git runs in: the user's, without the variables above, with ``_ENV``."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if name not in _DROPPED and not name.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))
    }
    return {**kept, **_ENV}


def git(
    repo: Path, *args: str, ok_codes: tuple[int, ...] = (0,)
) -> subprocess.CompletedProcess[bytes]:
    """Run git in ``repo`` and return the finished process; other exit codes raise GitError."""
    proc = subprocess.run(_command(repo, args), capture_output=True, env=git_env(), check=False)
    if proc.returncode not in ok_codes:
        raise _failure(repo, args, proc.stderr)
    return proc


def git_text(repo: Path, *args: str) -> str:
    return git(repo, *args).stdout.decode("utf-8", "surrogateescape").strip()


@contextmanager
def git_stream(repo: Path, *args: str) -> Iterator[Iterator[bytes]]:
    """Run git in ``repo`` and yield its standard output as chunks, read while git writes."""
    # stderr goes to a file: a pipe read only at the end could fill up and stall git.
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            _command(repo, args), stdout=subprocess.PIPE, stderr=errors, env=git_env()
        )
        assert proc.stdout is not None
        try:
            yield _chunks(proc.stdout)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            proc.stdout.close()
        if proc.wait() != 0:
            errors.seek(0)
            raise _failure(repo, args, errors.read())


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


# What git says when an object it must read is not in the repository (nor fetchable).
_MISSING = re.compile(
    r"(?:unable to read|missing (?:blob|tree|commit) object|could not fetch) '?([0-9a-f]{40,64})"
)


def _failure(repo: Path, args: Sequence[str], stderr: bytes) -> GitError:
    said = " ".join(stderr.decode("utf-8", "replace").split()) or "no message"
    missing = _MISSING.search(said)
    if missing is not None:
        sha = missing.group(1)
        return MissingObjectError(
            f"git {args[0]} failed in {repo}: object {sha} is missing from the repository "
            "(a partial clone, or a damaged one); fetch it from a remote that has it, or run "
            "`git fsck` to see what else is missing",
            sha,
        )
    return GitError(f"git {args[0]} failed in {repo}: {said}")
