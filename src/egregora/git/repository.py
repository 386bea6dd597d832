"""Which repository and ref a sync or a lookup means, and the id they are stored under."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from sqlglot import exp

from egregora.errors import ConfigurationError, GitError, NotSyncedError
from egregora.git.command import git, git_text
from egregora.storage.store import Storage


@dataclass(frozen=True)
class Tracked:
    """A repository's root and the full name of the ref whose history is synced."""

    root: str
    ref: str

    @property
    def repo_id(self) -> str:
        """Readable and stable: the directory's name and a hash of (root, ref)."""
        digest = hashlib.sha256(f"{self.root}\0{self.ref}".encode()).hexdigest()[:12]
        return f"{Path(self.root).name or 'repo'}-{digest}"


def locate(repo: str | Path, ref: str | None = None) -> Tracked:
    """The repository holding ``repo`` and the full name of ``ref`` (default: HEAD's branch)."""
    root = locate_root(repo)
    path = Path(root)
    if ref is None:
        head = git(path, "symbolic-ref", "-q", "HEAD", ok_codes=(0, 1))
        if head.returncode != 0:
            raise GitError(f"HEAD of {root} is detached; pass --ref BRANCH to say which to sync")
        full = head.stdout.decode().strip()
    else:
        named = git(path, "rev-parse", "--symbolic-full-name", ref, ok_codes=(0, 128))
        full = named.stdout.decode("utf-8", "replace").strip()
        if named.returncode != 0 or not full.startswith("refs/"):
            raise GitError(
                f"{ref!r} is not a branch or tag of {root}; pass --ref with a branch or tag name"
            )
    return Tracked(root, full)


def tip_of(tracked: Tracked) -> str:
    """The commit the tracked ref points to now."""
    spec = f"{tracked.ref}^{{commit}}"
    found = git(Path(tracked.root), "rev-parse", "--verify", "--quiet", spec, ok_codes=(0, 1, 128))
    if found.returncode != 0:
        raise GitError(
            f"{tracked.ref} of {tracked.root} has no commits yet; commit something, then sync"
        )
    return found.stdout.decode().strip()


# Every synced repository (a handful of rows), read without compiling an Ibis expression: a
# single lookup's command starts faster without it.
_REPO_COLUMNS = ("repo_id", "root", "tracked_ref")
_REPOS = exp.select(*(exp.column(c, quoted=True) for c in _REPO_COLUMNS)).from_(
    exp.to_table("git_repos", quoted=True)
)


def find_repo_id(store: Storage, repo: str | Path, ref: str | None = None) -> str:
    """The id of a synced repository, given its id or a path inside it (and ``ref`` if several)."""
    known = [dict(zip(_REPO_COLUMNS, row, strict=True)) for row in store.query(_REPOS)]
    if any(r["repo_id"] == str(repo) for r in known):
        return str(repo)
    if not Path(repo).expanduser().exists():
        raise NotSyncedError(
            f"no synced repository is called {repo!r}; run `egregora git sync REPO` first"
        )
    tracked = locate(repo, ref) if ref is not None else None
    root = tracked.root if tracked else locate_root(repo)
    matches = [
        r
        for r in known
        if r["root"] == root and (tracked is None or r["tracked_ref"] == tracked.ref)
    ]
    if not matches:
        raise NotSyncedError(
            f"{root} has not been synced into {store.url}; run `egregora git sync {repo}` first"
        )
    if len(matches) > 1:
        refs = ", ".join(sorted(r["tracked_ref"] for r in matches))
        raise ConfigurationError(f"{root} is synced for several refs ({refs}); pass --ref")
    return str(matches[0]["repo_id"])


def locate_root(repo: str | Path) -> str:
    """The absolute top-level directory of the repository holding ``repo`` (git dir if bare)."""
    path = Path(repo).expanduser()
    if not path.exists():
        raise GitError(f"{repo} does not exist; pass the path of a git repository")
    probe = git(path, "rev-parse", "--is-bare-repository", ok_codes=(0, 128))
    if probe.returncode != 0 and b"dubious ownership" in probe.stderr:
        raise GitError(
            f"git refuses {repo}: another user owns it; if you trust it, add it to git's "
            f"safe.directory (git config --global --add safe.directory {Path(repo).resolve()})"
        )
    if probe.returncode != 0:
        raise GitError(
            f"{repo} is not inside a git repository; pass the path of a git working tree "
            "(or of a bare repository)"
        )
    bare = probe.stdout.strip() == b"true"
    root = git_text(path, "rev-parse", "--absolute-git-dir" if bare else "--show-toplevel")
    return str(Path(root).resolve())


def file_at(store: Storage, repo_id: str, commit_sha: str, path: str) -> bytes:
    """The bytes of ``path`` as ``commit_sha`` left it, read from the synced repository."""
    repos = store.table("git_repos")
    found = store.to_pyarrow(repos.filter(repos.repo_id == repo_id).select("root")).to_pylist()
    if not found:
        raise NotSyncedError(f"no synced repository is called {repo_id!r}; run `egregora git sync`")
    root = Path(found[0]["root"])
    if not root.exists():
        raise GitError(f"{root} no longer exists; sync the repository from where it is now")
    shown = git(root, "cat-file", "blob", f"{commit_sha}:{path}", ok_codes=(0, 128))
    if shown.returncode != 0:
        raise GitError(f"{path!r} is not a file in commit {commit_sha[:12]} of {root}")
    return shown.stdout
