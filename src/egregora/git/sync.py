"""Sync a repository's first-parent history into git_repos, git_commits and git_refs.

One ``git log`` reads the history; a second sync reads only the commits added since the last
one. When the last synced commit is no longer on the ref's first-parent chain (a rebase, a
reset, a force-push), the history was rewritten: the stored rows above the fork point (the
newest stored commit still on the new chain) are replaced by the new chain's commits above it,
and the repository's cached lookups are dropped, in the same transaction. A commit's place on
the chain is its first-parent depth, fixed by its hash, so rows below the fork stay right.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa

from egregora.git.cache import forget_pending
from egregora.git.command import git, git_text
from egregora.git.directories import directories_of, directory_rows, stored_counts
from egregora.git.log import History, read_history
from egregora.git.repository import Tracked, locate, tip_of
from egregora.storage.store import Storage

DIRECTORY_INPUT = ("chain_seq", "commit_sha", "committed_at", "path", "old_path", "change_type")
REF_TYPES = {"refs/heads/": "branch", "refs/tags/": "tag", "refs/remotes/": "remote"}


@dataclass(frozen=True)
class SyncResult:
    """What a sync did; ``commits`` counts the synced first-parent history."""

    repo_id: str
    commits: int
    file_changes: int
    new_commits: int
    rewritten: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sync_repository(
    store: Storage,
    repo: str | Path,
    ref: str | None = None,
    *,
    full: bool = False,
    line_counts: bool = True,
) -> SyncResult:
    """Bring the stored history of ``repo``'s ``ref`` (default: HEAD's branch) up to date.

    ``full=True`` reads the whole history again and replaces the stored rows.
    ``line_counts=False`` stores no additions and deletions, so git reads no file contents
    but those rename detection compares (a partial clone syncs without fetching every file).
    """
    tracked = locate(repo, ref)
    repo_id = tracked.repo_id
    tip = tip_of(tracked)
    last = None if full else _last_synced(store, repo_id)
    root = Path(tracked.root)
    rewritten = False
    keep_below: int | None = None  # on a rewrite: the fork point's chain_seq (0: none shared)
    history: History | None = None
    if last == tip:
        history = History(repo_id)
    elif last is not None and _is_ancestor(root, last, tip):
        history = read_history(root, repo_id, tip, since=last, line_counts=line_counts)
        if history.oldest_parent != last:  # joined the old history below ``last``
            history = None
    if history is None and last is not None:
        rewritten = True
        fork = _fork_point(store, root, repo_id, tip)
        if fork is not None:
            history = read_history(root, repo_id, tip, since=fork[0], line_counts=line_counts)
            keep_below = fork[1] if history.oldest_parent == fork[0] else None
            history = history if keep_below is not None else None
    if history is None:
        history = read_history(root, repo_id, tip, line_counts=line_counts)
        keep_below = 0 if rewritten or full else None
    tip_seq = int(git_text(root, "rev-list", "--first-parent", "--count", tip))
    rows = history.to_arrow(tip_seq)
    base_seq = tip_seq - history.commits
    directories = _directories(store, repo_id, rows, base_seq)
    now = datetime.now(UTC)
    with store.transaction():
        store.write("git_repos", [_repo_row(tracked, tip, now)], mode="upsert")
        if keep_below is not None:
            above = keep_below
            for table in ("git_commits", "git_directory_changes"):
                store.delete(table, lambda t: (t.repo_id == repo_id) & (t.chain_seq > above))
            # Answers and followed sources of commits no longer on the chain go with them.
            store.delete("git_lookup_cache", lambda t: t.repo_id == repo_id)
            store.delete("git_follow_sources", lambda t: t.repo_id == repo_id)
        if directories.num_rows:
            store.write("git_directory_changes", directories)
        if rows.num_rows:
            store.write("git_commits", rows)
            if keep_below is None and last is not None:  # a first sync has no answers yet
                _forget_answers_changed_by(store, repo_id, tip_seq - history.commits)
        store.delete("git_refs", lambda t: t.repo_id == repo_id)
        store.write("git_refs", _refs(root, repo_id, now))
    if keep_below is not None or rows.num_rows:
        forget_pending(store, repo_id)
    commits = store.table("git_commits")
    stored = store.execute(commits.filter(commits.repo_id == repo_id).count())
    return SyncResult(repo_id, tip_seq, int(stored), history.commits, rewritten)


def _directories(store: Storage, repo_id: str, rows: pa.Table, base_seq: int) -> pa.Table:
    """The directory rows for ``rows``, counting on from the stored directories at the base.

    A repository synced before directories were stored gets all of them now, from its stored
    changes below the base and the new ones.
    """
    if base_seq > 0 and not _has_directories(store, repo_id):
        commits = store.table("git_commits")
        below = commits.filter(commits.repo_id == repo_id, commits.chain_seq <= base_seq)
        stored = store.to_pyarrow(below.select(*DIRECTORY_INPUT))
        return directory_rows(
            repo_id,
            pa.concat_tables([stored, rows.select(DIRECTORY_INPUT).cast(stored.schema)]),
            {},
        )
    if not rows.num_rows or base_seq == 0:
        return directory_rows(repo_id, rows, {})
    touched = directories_of(rows)["path"].unique().to_pylist()
    return directory_rows(repo_id, rows, stored_counts(store, repo_id, touched, base_seq))


def _has_directories(store: Storage, repo_id: str) -> bool:
    dirs = store.table("git_directory_changes")
    if store.execute(dirs.filter(dirs.repo_id == repo_id).limit(1).count()):
        return True
    commits = store.table("git_commits")
    nested = commits.filter(commits.repo_id == repo_id, commits.path.contains("/"))
    return not store.execute(nested.limit(1).count())  # no file under a directory: none due


def _last_synced(store: Storage, repo_id: str) -> str | None:
    repos = store.table("git_repos")
    found = store.to_pyarrow(
        repos.filter(repos.repo_id == repo_id).select("last_synced_commit")
    ).to_pylist()
    return found[0]["last_synced_commit"] if found else None


def _fork_point(store: Storage, root: Path, repo_id: str, tip: str) -> tuple[str, int] | None:
    """The newest stored commit on ``tip``'s first-parent chain, and its chain_seq.

    Walks the new chain from the tip and stops at the first commit the store holds rows for;
    a commit's chain_seq is its depth, so it must be the same on both chains (else None).
    """
    commits = store.table("git_commits")
    mine = commits.filter(commits.repo_id == repo_id)
    stored = store.to_pyarrow(mine.select("commit_sha", "chain_seq").distinct())
    seq_of = dict(
        zip(stored["commit_sha"].to_pylist(), stored["chain_seq"].to_pylist(), strict=True)
    )
    if not seq_of:
        return None
    chain = git_text(root, "rev-list", "--first-parent", tip).split()
    for depth, sha in enumerate(chain):
        if sha in seq_of:
            return (sha, seq_of[sha]) if seq_of[sha] == len(chain) - depth else None
    return None


def _is_ancestor(root: Path, commit: str, tip: str) -> bool:
    # Exit 1: not an ancestor; 128: the commit is gone (garbage-collected after a rewrite).
    proc = git(root, "merge-base", "--is-ancestor", commit, tip, ok_codes=(0, 1, 128))
    return proc.returncode == 0


def _repo_row(tracked: Tracked, tip: str, now: datetime) -> dict[str, Any]:
    return {
        "repo_id": tracked.repo_id,
        "root": tracked.root,
        "tracked_ref": tracked.ref,
        "last_synced_commit": tip,
        "last_synced_at": now,
    }


def _forget_answers_changed_by(store: Storage, repo_id: str, base_seq: int) -> None:
    """Drop the cached answers a new commit changes: its paths, at or after its date.

    Committer dates need not grow along history, so a new commit can change the answer for
    any time at or after its own date, not only for times after the previous tip.
    """
    commits = store.table("git_commits")
    new = commits.filter(commits.repo_id == repo_id, commits.chain_seq > base_seq)
    renamed = new.filter(new.old_path.notnull())
    dirs = store.table("git_directory_changes")
    new_dirs = dirs.filter(dirs.repo_id == repo_id, dirs.chain_seq > base_seq)
    touched = ibis.union(
        new.select(t_path=new.path, t_at=new.committed_at),
        renamed.select(t_path=renamed.old_path.cast("!string"), t_at=renamed.committed_at),
        # a directory is asked about as "docs" and as "docs/"
        new_dirs.select(t_path=new_dirs.path, t_at=new_dirs.committed_at),
        new_dirs.select(
            t_path=new_dirs.path.concat("/").cast("!string"), t_at=new_dirs.committed_at
        ),
    )
    cache = store.table("git_lookup_cache")
    changed = cache.join(
        touched,
        [cache.repo_id == repo_id, cache.path == touched.t_path, cache.at >= touched.t_at],
    )
    store.delete_keys("git_lookup_cache", changed.select("repo_id", "path", "at").distinct())


def _refs(root: Path, repo_id: str, now: datetime) -> list[dict[str, Any]]:
    """Every branch, tag and remote ref, peeled to the commit it names."""
    fmt = "%(refname)%00%(objecttype)%00%(objectname)%00%(*objecttype)%00%(*objectname)"
    out = git(root, "for-each-ref", f"--format={fmt}").stdout.decode("utf-8", "replace")
    rows = []
    for line in out.splitlines():
        name, kind, sha, peeled_kind, peeled = line.split("\0")
        ref_type = next((t for p, t in REF_TYPES.items() if name.startswith(p)), None)
        commit = peeled if peeled_kind == "commit" else sha if kind == "commit" else None
        if ref_type is None or commit is None or name.endswith("/HEAD"):
            continue
        rows.append(
            {
                "repo_id": repo_id,
                "ref_name": name,
                "ref_type": ref_type,
                "commit_sha": commit,
                "observed_at": now,
            }
        )
    return rows
