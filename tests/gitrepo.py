"""Real git repositories for the git time machine tests, and git itself as the oracle.

Every git process runs without the user's or the system's configuration, so a developer's
aliases, hooks or ``diff.renames`` setting cannot change what the tests expect.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z: every date is T0 plus an offset, well above 1e8
_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "LC_ALL": "C",
    "TZ": "UTC",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_LITERAL_PATHSPECS": "1",  # a path is a path, never a glob or magic
}


@dataclass(frozen=True)
class Change:
    """One row git reports for a commit against its first parent."""

    path: str
    old_path: str | None
    change_type: str
    additions: int | None
    deletions: int | None


class GitRepo:
    """A work tree in ``root`` built commit by commit, with explicit dates and authors."""

    def __init__(self, root: Path, *, branch: str = "main") -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.git("-c", f"init.defaultBranch={branch}", "init", "-q")
        self.git("config", "user.name", "Tester")
        self.git("config", "user.email", "tester@example.com")
        self.git("config", "commit.gpgsign", "false")

    # -- running git ----------------------------------------------------------------------------
    def run(self, *args: str, env: dict[str, str] | None = None) -> bytes:
        """Run git in the repository and return its standard output (failures raise)."""
        proc = subprocess.run(
            ["git", "-C", str(self.root), *args],
            capture_output=True,
            env={**os.environ, **_ENV, **(env or {})},
            check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.decode()}")
        return proc.stdout

    def git(self, *args: str, env: dict[str, str] | None = None) -> str:
        return self.run(*args, env=env).decode("utf-8").strip()

    # -- building history -----------------------------------------------------------------------
    def write(self, path: str, content: str | bytes) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            target.write_text(content, encoding="utf-8")
        else:
            target.write_bytes(content)
        self.git("add", "--", path)

    def remove(self, path: str) -> None:
        self.git("rm", "-q", "--", path)

    def move(self, old: str, new: str) -> None:
        (self.root / new).parent.mkdir(parents=True, exist_ok=True)
        self.git("mv", "--", old, new)

    def symlink(self, path: str, target: str) -> None:
        """Replace ``path`` by a symbolic link (a type change, T, for git)."""
        link = self.root / path
        link.unlink(missing_ok=True)
        link.symlink_to(target)
        self.git("add", "--", path)

    def dated(self, committed: int, authored: int | None = None) -> dict[str, str]:
        """The environment that stamps a commit with these Unix times."""
        author = committed if authored is None else authored
        return {
            "GIT_COMMITTER_DATE": f"@{committed} +0000",
            "GIT_AUTHOR_DATE": f"@{author} +0000",
        }

    def commit(
        self,
        message: str,
        committed: int,
        authored: int | None = None,
        *,
        author: str = "Tester <tester@example.com>",
        allow_empty: bool = False,
        amend: bool = False,
    ) -> str:
        """Commit what is staged with these dates; return the new commit's sha."""
        args = ["commit", "-q", "--no-verify", "-m", message, f"--author={author}"]
        if allow_empty:
            args.append("--allow-empty")
        if amend:
            args.append("--amend")
        self.git(*args, env=self.dated(committed, authored))
        return self.head()

    def merge(self, branch: str, message: str, committed: int) -> str:
        """A merge commit of ``branch`` into the current branch (never a fast-forward)."""
        self.git("merge", "-q", "--no-ff", "--no-edit", "-m", message, branch)
        # git merge takes no date; re-stamp the merge keeping its tree and parents.
        self.git("commit", "-q", "--amend", "--no-edit", env=self.dated(committed))
        return self.head()

    def checkout(self, *args: str) -> None:
        self.git("checkout", "-q", *args)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    # -- the oracle -----------------------------------------------------------------------------
    def last_change(self, ref: str, path: str, at: int, *, follow: bool = False) -> str | None:
        """``git log -1 --first-parent --format=%H --before=@AT REF -- PATH`` (None if empty)."""
        args = ["--literal-pathspecs", "log", "-1", "--first-parent", "--format=%H"]
        if follow:
            args.append("--follow")
        out = self.git(*args, f"--before=@{at}", ref, "--", path)
        return out or None

    def follow_log(self, ref: str, path: str) -> list[tuple[str, int]]:
        """``git log --follow --first-parent REF -- PATH`` without a date: (sha, committer time)."""
        out = self.git(
            "--literal-pathspecs",
            "log",
            "--follow",
            "--first-parent",
            "--format=%H %ct",
            ref,
            "--",
            path,
        )
        return [(sha, int(ct)) for sha, ct in (line.split() for line in out.splitlines())]

    def name_status(self, ref: str, path: str, at: int) -> str | None:
        """The status letter ``git log -1 --first-parent --name-status -M`` shows for PATH."""
        out = self.run(
            "--literal-pathspecs",
            "log",
            "-1",
            "--first-parent",
            "--format=",
            "--name-status",
            "-M",
            "-z",
            f"--before=@{at}",
            ref,
            "--",
            path,
        )
        tokens = [t for t in out.split(b"\0") if t.strip(b"\n")]
        return tokens[0].lstrip(b"\n").decode()[:1] if tokens else None

    def chain(self, ref: str) -> list[str]:
        """The first-parent chain of ``ref``, root first."""
        return self.git("rev-list", "--first-parent", "--reverse", ref).split()

    def changes(self, sha: str) -> list[Change]:
        """What ``sha`` changed against its first parent, with -M, as plumbing reports it."""
        parents = self.git("rev-list", "--parents", "-n", "1", sha).split()[1:]
        base = [parents[0], sha] if parents else ["--root", sha]
        common = ["diff-tree", "-r", "-M", "-z", "--no-commit-id"]
        statuses = self.run(*common, "--name-status", *base).split(b"\0")
        numstat = self.run(*common, "--numstat", *base).split(b"\0")
        counts: dict[str, tuple[int | None, int | None]] = {}
        i = 0
        while i < len(numstat) and numstat[i]:
            added, deleted, rest = numstat[i].split(b"\t", 2)
            if rest:
                path, i = rest.decode(), i + 1
            else:
                path, i = numstat[i + 2].decode(), i + 3
            counts[path] = (
                None if added == b"-" else int(added),
                None if deleted == b"-" else int(deleted),
            )
        out: list[Change] = []
        i = 0
        while i < len(statuses) and statuses[i]:
            kind = statuses[i].decode()[:1]
            old: str | None = None
            if kind in ("R", "C"):
                old, path, i = statuses[i + 1].decode(), statuses[i + 2].decode(), i + 3
            else:
                path, i = statuses[i + 1].decode(), i + 2
            out.append(Change(path, old, kind, *counts[path]))
        return out

    def dates(self, sha: str) -> tuple[int, int, str, str]:
        """Committer and author Unix times, author name and e-mail of ``sha``."""
        out = self.run("show", "-s", "--format=%ct%x00%at%x00%an%x00%ae", sha)
        committed, authored, name, email = out.decode().strip("\n").split("\0")
        return int(committed), int(authored), name, email

    def all_dates(self, ref: str) -> set[int]:
        """Every committer and author date of every commit reachable from ``ref``."""
        out = self.git("log", "--format=%ct %at", ref)
        return {int(x) for x in out.split()}

    # -- more oracle helpers --------------------------------------------------------------------
    @classmethod
    def existing(cls, root: Path) -> GitRepo:
        """A repository that is already there (a clone, a bare one): nothing is initialised."""
        repo = cls.__new__(cls)
        repo.root = root
        return repo

    def committer_dates(self, ref: str) -> set[int]:
        """The committer date of every commit reachable from ``ref``."""
        return {int(x) for x in self.git("log", "--format=%ct", ref).split()}

    def tree_has(self, sha: str, path: str) -> bool:
        """Whether ``git ls-tree -r SHA -- PATH`` lists anything: a file, or one under a folder."""
        return bool(self.run("ls-tree", "-r", "-z", "--name-only", sha, "--", path))

    def renames(self, ref: str) -> list[tuple[str, str]]:
        """Every (old, new) rename ``git log --first-parent -M`` reports along ``ref``."""
        out = self.run(
            "log",
            "--first-parent",
            "--diff-merges=first-parent",
            "-M",
            "--diff-filter=R",
            "--name-status",
            "-z",
            "--format=",
            ref,
        )
        # With only renames shown, the output is (status, old, new) triples.
        tokens = [t.lstrip(b"\n") for t in out.split(b"\0") if t.strip(b"\n")]
        return [(tokens[i + 1].decode(), tokens[i + 2].decode()) for i in range(0, len(tokens), 3)]

    def missing_objects(self) -> int:
        """How many objects reachable from any ref are absent (a partial clone's unfetched)."""
        out = self.git("rev-list", "--objects", "--missing=print", "--all")
        return sum(line.startswith("?") for line in out.splitlines())

    def gitlink(self, path: str, sha: str) -> None:
        """Stage a submodule entry (a gitlink) at ``path`` pointing to commit ``sha``."""
        (self.root / path).mkdir(parents=True, exist_ok=True)  # a submodule not checked out
        self.git("update-index", "--add", "--cacheinfo", f"160000,{sha},{path}")
