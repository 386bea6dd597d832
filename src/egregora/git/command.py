"""Running git: one place that starts git processes and turns their failures into GitError."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from egregora.errors import GitError

CHUNK = 1 << 20
# Ignore the user's configuration where it would change what git prints to us.
_ENV = {"LC_ALL": "C", "GIT_CONFIG_NOSYSTEM": "1", "GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0"}
CONFIG = ("-c", "log.showSignature=false", "-c", "core.quotePath=false", "-c", "log.mailmap=false")


def _git() -> str:
    found = shutil.which("git")
    if found is None:
        raise GitError("git is not installed or not on PATH; install git and try again")
    return found


def _command(repo: Path, args: Sequence[str]) -> list[str]:
    return [_git(), "-C", str(repo), *CONFIG, *args]


def git_env() -> dict[str, str]:
    """The environment git runs in (the user's, with the settings above)."""
    return {**os.environ, **_ENV}


def git(
    repo: Path, *args: str, ok_codes: tuple[int, ...] = (0,)
) -> subprocess.CompletedProcess[bytes]:
    """Run git in ``repo`` and return the finished process; other exit codes raise GitError."""
    proc = subprocess.run(_command(repo, args), capture_output=True, env=git_env(), check=False)
    if proc.returncode not in ok_codes:
        raise GitError(_failure(repo, args, proc.stderr))
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
            raise GitError(_failure(repo, args, errors.read()))


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


def _failure(repo: Path, args: Sequence[str], stderr: bytes) -> str:
    said = " ".join(stderr.decode("utf-8", "replace").split()) or "no message"
    return f"git {args[0]} failed in {repo}: {said}"
