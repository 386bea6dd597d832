"""Following a path into its old names, exactly as ``git log --first-parent --follow`` does.

Walking the first-parent chain from the tip, git keeps one name for the path. At a commit
that adds that name (the name-limited diff is a single addition), git looks at the whole
commit, with every file of the parent as a possible source, for a rename or copy that made
the name; if it finds one, the commit is shown and older commits are searched under the
source's name. A commit that adds the name with no source (a new file, or a file deleted and
added again) changes nothing: older commits keep the name.

So a path's followed history is a list of (name, chain range) segments, cut at the adding
commits where git found a source. Which source git pairs with a name is git's own similarity
judgement, so it is asked of git, once per (commit, name) the lookups cross, in parallel, and
kept in ``git_follow_sources``: later lookups, and lookups after the repository is gone, read
it from there.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import ibis
import pyarrow as pa

from egregora.errors import GitError, NotSyncedError
from egregora.git.command import git
from egregora.storage.store import Storage

TOP = 1 << 62  # above any chain_seq: the open end of the newest segment
_ADDS = ("A", "R", "C")


@dataclass(frozen=True)
class Source:
    """What git's --follow found for a name added by a commit: R or C from ``path``, or A."""

    change_type: str
    path: str | None


@dataclass(frozen=True)
class Segment:
    """The chain range [lo, hi) over which ``probe_path`` is known by ``name``."""

    probe_path: str
    name: str
    lo: int
    hi: int


class FollowSources:
    """git's rename and copy sources for (commit, added path), asked once and kept."""

    def __init__(self, store: Storage, repo_id: str) -> None:
        self.store = store
        self.repo_id = repo_id
        self._known: dict[tuple[str, str], Source] = {}
        self._root: Path | None = None

    def get(self, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Source]:
        """The source of every (commit_sha, path) in ``wanted``: kept, or asked of git."""
        pairs = set(wanted)
        missing = pairs - self._known.keys()
        if missing:
            self._known.update(self._stored(missing))
            missing -= self._known.keys()
        if missing:
            found = self._ask_git(sorted(missing))
            self._known.update(found)
            self._keep(found)
        return {pair: self._known[pair] for pair in pairs}

    def _stored(self, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], Source]:
        t = self.store.table("git_follow_sources")
        paths = sorted({path for _, path in pairs})
        rows = self.store.to_pyarrow(
            t.filter(t.repo_id == self.repo_id, t.path.isin(paths)).select(
                "commit_sha", "path", "change_type", "source_path"
            )
        ).to_pylist()
        return {
            (r["commit_sha"], r["path"]): Source(r["change_type"], r["source_path"])
            for r in rows
            if (r["commit_sha"], r["path"]) in pairs
        }

    def _keep(self, found: dict[tuple[str, str], Source]) -> None:
        if self.store.read_only or not found:
            return  # a read-only store keeps them for this resolver only
        rows = [
            {
                "repo_id": self.repo_id,
                "commit_sha": sha,
                "path": path,
                "change_type": source.change_type,
                "source_path": source.path,
            }
            for (sha, path), source in found.items()
        ]
        self.store.write("git_follow_sources", rows, mode="upsert")

    def _ask_git(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], Source]:
        root = self._repository()
        workers = max(1, min(len(pairs), os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            answers = pool.map(lambda pair: _follow_step(root, *pair), pairs)
            return dict(zip(pairs, answers, strict=True))

    def _repository(self) -> Path:
        if self._root is not None:
            return self._root
        repos = self.store.table("git_repos")
        found = self.store.to_pyarrow(
            repos.filter(repos.repo_id == self.repo_id).select("root")
        ).to_pylist()
        if not found:
            raise NotSyncedError(f"no synced repository is called {self.repo_id!r}")
        root = Path(found[0]["root"])
        if not root.exists():
            raise GitError(
                f"following renames asks git about renames not followed before, and {root} no "
                "longer exists; sync the repository from where it is now, or look up without "
                "--follow"
            )
        self._root = root
        return root


def _follow_step(root: Path, commit_sha: str, path: str) -> Source:
    """What ``git log --follow`` does at ``commit_sha``, which adds ``path``."""
    out = git(
        root,
        "log",
        "-1",
        "-z",
        "--first-parent",
        "--diff-merges=first-parent",
        "--follow",
        "--raw",
        "--no-abbrev",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--format=%x1e%H",
        commit_sha,
        "--",
        path,
    ).stdout
    tokens = [t.lstrip(b"\n") for t in out.split(b"\0")]
    for i, token in enumerate(tokens):
        if token.startswith(b":"):
            kind = token.rsplit(b" ", 1)[-1][:1].decode()
            if kind in ("R", "C"):
                return Source(kind, tokens[i + 1].decode("utf-8", "backslashreplace"))
            return Source("A", None)
    return Source("A", None)


def lineage(
    store: Storage, repo_id: str, paths: Iterable[str], sources: FollowSources
) -> list[Segment]:
    """The (name, chain range) segments of each path's followed history."""
    commits = store.table("git_commits")
    adds = commits.filter(commits.repo_id == repo_id, commits.change_type.isin(_ADDS))
    done: list[Segment] = []
    open_ = [(p, p, TOP) for p in dict.fromkeys(paths)]  # (probe path, name, hi)
    while open_:
        names = sorted({name for _, name, _ in open_})
        rows = store.to_pyarrow(
            adds.filter(adds.path.isin(names)).select("path", "chain_seq", "commit_sha")
        ).to_pylist()
        events: dict[str, list[tuple[int, str]]] = {}
        for row in rows:
            events.setdefault(row["path"], []).append((row["chain_seq"], row["commit_sha"]))
        for found in events.values():
            found.sort(reverse=True)  # newest first, as git walks
        # Each open name looks at its adding commits below hi, newest first, until git finds
        # a source at one; asked one round at a time, every open name at once.
        # The root commit (chain_seq 1) has no parent to follow into.
        below = {
            (probe, name, hi): [e for e in events.get(name, []) if 1 < e[0] < hi]
            for probe, name, hi in open_
        }
        next_open = []
        while below:
            asked = sources.get(
                (pending[0][1], name) for (_, name, _), pending in below.items() if pending
            )
            still = {}
            for (probe, name, hi), pending in below.items():
                source = asked[(pending[0][1], name)] if pending else None
                if source is not None and source.path is not None:
                    done.append(Segment(probe, name, pending[0][0], hi))
                    next_open.append((probe, source.path, pending[0][0]))
                elif len(pending) > 1:
                    still[(probe, name, hi)] = pending[1:]
                else:  # no adding commit below hi found a source: the name holds to the root
                    done.append(Segment(probe, name, 0, hi))
            below = still
        open_ = next_open
    return done


def segments_table(segments: list[Segment]) -> ibis.Table:
    return ibis.memtable(
        pa.table(
            {
                "probe_path": pa.array([s.probe_path for s in segments], pa.string()),
                "name": pa.array([s.name for s in segments], pa.string()),
                "lo": pa.array([s.lo for s in segments], pa.int64()),
                "hi": pa.array([s.hi for s in segments], pa.int64()),
            }
        )
    )
