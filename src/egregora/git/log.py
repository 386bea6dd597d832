"""Read first-parent history from one ``git log`` process into ``git_commits`` columns.

git prints NUL-separated records (``-z``), so any byte but NUL may appear in a path: spaces,
quotes, newlines, unicode. Each commit is a header (our ``--format``) followed by its raw diff
entries against the first parent (status and paths) and its numstat entries (line counts).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from egregora.errors import GitError, MissingObjectError
from egregora.git.command import git_stream
from egregora.schema.tables.git import CHANGE_TYPES

HEADER = b"\x1e"
FIELD = b"\x1f"
# Free text (the author's name) comes last, so a stray separator in it cannot shift a field.
FORMAT = "--format=%x1e%H%x1f%P%x1f%ct%x1f%at%x1f%ae%x1f%an"


def log_args(tip: str, since: str | None = None, *, line_counts: bool = True) -> list[str]:
    """The one ``git log`` command a sync consumes (benchmarks time it on its own).

    Line counts (``--numstat``) read both sides of every changed file; without them git reads
    only trees, and the blobs of the added and deleted files rename detection compares.
    """
    walk = f"{since}..{tip}" if since else tip
    return [
        "log",
        "-z",
        "--first-parent",
        "--diff-merges=first-parent",
        "--root",
        "-M",
        "--raw",
        *(["--numstat"] if line_counts else []),
        "--no-abbrev",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        FORMAT,
        walk,
        "--",
    ]


def _decode(raw: bytes) -> str:
    # Paths are bytes in git; the few that are not UTF-8 are kept readable, never dropped.
    return raw.decode("utf-8", "backslashreplace")


@dataclass
class History:
    """Columns of ``git_commits`` for the commits one walk read, newest first."""

    repo_id: str
    commits: int = 0
    oldest_parent: str | None = None  # first parent of the last (oldest) commit read
    commit_sha: list[str] = field(default_factory=list)
    walk_index: list[int] = field(default_factory=list)  # 0 for the newest commit read
    path: list[str] = field(default_factory=list)
    old_path: list[str | None] = field(default_factory=list)
    change_type: list[str] = field(default_factory=list)
    committed_at: list[int] = field(default_factory=list)
    authored_at: list[int] = field(default_factory=list)
    author_name: list[str] = field(default_factory=list)
    author_email: list[str] = field(default_factory=list)
    additions: list[int | None] = field(default_factory=list)
    deletions: list[int | None] = field(default_factory=list)

    def to_arrow(self, tip_seq: int) -> pa.Table:
        """The rows, with ``chain_seq`` counted down from ``tip_seq`` for the newest commit."""
        seconds = pa.array(self.committed_at, pa.int64())
        authored = pa.array(self.authored_at, pa.int64())
        to_us = pa.scalar(1_000_000, pa.int64())

        def stamp(values: pa.Array) -> pa.Array:
            return pc.multiply(values, to_us).cast(pa.timestamp("us", tz="UTC"))

        seq = pc.subtract(pa.scalar(tip_seq, pa.int64()), pa.array(self.walk_index, pa.int64()))
        return pa.table(
            {
                "repo_id": pa.array([self.repo_id] * len(self.path), pa.string()),
                "commit_sha": pa.array(self.commit_sha, pa.string()),
                "chain_seq": seq,
                "path": pa.array(self.path, pa.string()),
                "old_path": pa.array(self.old_path, pa.string()),
                "change_type": pa.array(self.change_type, pa.string()),
                "committed_at": stamp(seconds),
                "authored_at": stamp(authored),
                "author_name": pa.array(self.author_name, pa.string()),
                "author_email": pa.array(self.author_email, pa.string()),
                "additions": pa.array(self.additions, pa.int64()),
                "deletions": pa.array(self.deletions, pa.int64()),
            }
        )


def read_history(
    repo: Path, repo_id: str, tip: str, since: str | None = None, *, line_counts: bool = True
) -> History:
    """Walk ``since..tip`` (or all of ``tip``) along first parents in one git process."""
    try:
        with git_stream(repo, *log_args(tip, since, line_counts=line_counts)) as chunks:
            return parse_log(_tokens(chunks), repo_id)
    except MissingObjectError as missing:
        if not line_counts:
            raise
        raise MissingObjectError(
            f"{missing}; or sync with --no-line-counts (line_counts=False), which reads no "
            "file contents but those rename detection compares",
            missing.sha,
        ) from missing


def _tokens(chunks: Iterable[bytes]) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks:
        parts = (rest + chunk).split(b"\0")
        rest = parts.pop()
        yield from parts
    if rest:
        yield rest


def parse_log(tokens: Iterator[bytes], repo_id: str) -> History:
    history = History(repo_id)
    out = history
    sha = email = name = ""
    committed = authored = 0
    first_parent: str | None = None
    start = 0  # index of the current commit's first row
    counts: dict[str, tuple[int | None, int | None]] = {}

    def close_commit() -> None:
        # numstat lines come after the raw lines; attach them to the rows by path.
        for i in range(start, len(out.path)):
            added, deleted = counts.get(out.path[i], (None, None))
            out.additions[i] = added
            out.deletions[i] = deleted
        counts.clear()

    for token in tokens:
        if token.startswith(b"\n"):
            token = token[1:]
        if not token:
            continue
        if token.startswith(HEADER):
            if history.commits:
                close_commit()
            fields = token[1:].split(FIELD, 5)
            if len(fields) != 6:
                raise GitError(f"unexpected git log header {token[:80]!r}; report this")
            sha = fields[0].decode()
            parents = fields[1].split()
            first_parent = parents[0].decode() if parents else None
            committed, authored = int(fields[2]), int(fields[3])
            email, name = _decode(fields[4]), _decode(fields[5])
            start = len(out.path)
            history.commits += 1
            history.oldest_parent = first_parent
            continue
        if token.startswith(b":"):
            status = token.rsplit(b" ", 1)[-1].decode()
            kind = status[:1]
            if kind not in CHANGE_TYPES:
                raise GitError(f"git log reported change {status!r} in {sha}; report this")
            old: str | None = None
            if kind in ("R", "C"):
                old = _decode(next(tokens))
            path = _decode(next(tokens))
            out.commit_sha.append(sha)
            out.walk_index.append(history.commits - 1)
            out.path.append(path)
            out.old_path.append(old)
            out.change_type.append(kind)
            out.committed_at.append(committed)
            out.authored_at.append(authored)
            out.author_name.append(name)
            out.author_email.append(email)
            out.additions.append(None)
            out.deletions.append(None)
            continue
        # numstat: "added\tdeleted\tpath", or "added\tdeleted\t" then old and new path.
        added_raw, deleted_raw, rest = token.split(b"\t", 2)
        if rest:
            path = _decode(rest)
        else:
            next(tokens)
            path = _decode(next(tokens))
        counts[path] = (
            None if added_raw == b"-" else int(added_raw),
            None if deleted_raw == b"-" else int(deleted_raw),
        )
    if history.commits:
        close_commit()
    return history
