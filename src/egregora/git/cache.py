"""git_lookup_cache: memoized single lookups, bounded by age and by a least-recently-used cap.

A read that finds an answer counts a hit and touches ``last_accessed_at``, but only in memory:
those updates, and new answers, are written in one validated batch by ``flush()`` (every
``flush_every`` changes, and on ``close()``), so a hit never costs a write of its own.
Syncing drops the answers new commits change, and all of a repository's after a rewrite.

On DuckDB a lookup is one indexed scan of git_commits and costs about what reading the cache
costs, so the cache pays only where recomputing is dearer (``benchmarks``, case git-cache).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import ibis
from sqlglot import exp

from egregora.schema.catalog import CATALOG
from egregora.storage.store import Storage

if TYPE_CHECKING:
    from egregora.git.resolver import Resolution

TABLE = CATALOG["git_lookup_cache"]
Key = tuple[str, str, datetime]


class LookupCache:
    """Memoized answers in ``git_lookup_cache``; use as a context manager or call ``close``."""

    def __init__(
        self,
        store: Storage,
        *,
        ttl: timedelta = timedelta(days=30),
        max_rows: int = 100_000,
        flush_every: int = 1_000,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.max_rows = max_rows
        self.flush_every = flush_every
        self._pending: dict[Key, dict[str, Any]] = {}
        self._tips: dict[str, str | None] = {}  # each repository's synced tip, as last seen
        self.hits = 0
        self.misses = 0

    def get(self, repo_id: str, path: str, at: datetime) -> Resolution | None:
        """The memoized answer, if one younger than the TTL exists (counted as a hit)."""
        from egregora.git.resolver import Resolution

        found = self.store.query(_GET, [path, at, repo_id])
        tip = found[0][0] if found else None
        self._check_tip(repo_id, tip)
        key = (repo_id, path, at)
        row = self._pending.get(key)
        if row is None and found and found[0][1] is not None:
            row = dict(zip(TABLE.column_names, found[0][1:], strict=True))
        now = datetime.now(UTC)
        if row is None or row["resolved_at"] < now - self.ttl:
            self.misses += 1
            return None
        self.hits += 1
        self._stage({**row, "hits": row["hits"] + 1, "last_accessed_at": now})
        return Resolution(
            path,
            at,
            row["commit_sha"],
            row["change_type"],
            row["committed_at"],
            found_path=path if row["commit_sha"] else None,
        )

    def put(self, repo_id: str, answer: Resolution) -> None:
        """Memoize ``answer`` (computed against the history synced now)."""
        if repo_id not in self._tips:
            self._check_tip(repo_id, self._current_tips([repo_id]).get(repo_id))
        now = datetime.now(UTC)
        self._stage(
            {
                "repo_id": repo_id,
                "path": answer.path,
                "at": answer.at,
                "commit_sha": answer.commit_sha,
                "change_type": answer.change_type,
                "committed_at": answer.committed_at,
                "resolved_at": now,
                "last_accessed_at": now,
                "hits": 0,
            }
        )

    def _check_tip(self, repo_id: str, tip: str | None) -> None:
        """Forget pending answers of a repository synced again since they were computed.

        A sync drops the stored answers it changes, but cannot see these, held in memory.
        """
        if self._tips.get(repo_id, tip) != tip:
            self._pending = {k: v for k, v in self._pending.items() if k[0] != repo_id}
        self._tips[repo_id] = tip

    def _current_tips(self, repo_ids: list[str]) -> dict[str, str | None]:
        repos = self.store.table("git_repos")
        rows = self.store.to_pyarrow(
            repos.filter(repos.repo_id.isin(repo_ids)).select("repo_id", "last_synced_commit")
        ).to_pylist()
        return {r["repo_id"]: r["last_synced_commit"] for r in rows}

    def _stage(self, row: dict[str, Any]) -> None:
        self._pending[(row["repo_id"], row["path"], row["at"])] = row
        if len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write pending answers and hits in one batch, then evict what the bounds exclude."""
        if self._pending:
            repo_ids = sorted({k[0] for k in self._pending})
            for repo_id, tip in self._current_tips(repo_ids).items():
                self._check_tip(repo_id, tip)
            rows = list(self._pending.values())
            if rows:
                self.store.write("git_lookup_cache", rows, mode="upsert")
            self._pending.clear()
        self.evict()

    def evict(self) -> int:
        """Drop answers older than the TTL, then the least recently used beyond ``max_rows``."""
        cutoff = datetime.now(UTC) - self.ttl
        gone = self.store.delete("git_lookup_cache", lambda t: t.resolved_at < cutoff)
        table = self.store.table("git_lookup_cache")
        extra = int(self.store.execute(table.count())) - self.max_rows
        if extra > 0:
            oldest = table.order_by(
                [table.last_accessed_at, table.repo_id, table.path, table.at]
            ).limit(extra)
            doomed = oldest.select(k=ibis.struct({c: oldest[c] for c in TABLE.primary_key}))
            gone += self.store.delete(
                "git_lookup_cache",
                lambda t: ibis.struct({c: t[c] for c in TABLE.primary_key}).isin(doomed.k),
            )
        return gone

    def clear(self, repo_id: str | None = None) -> int:
        self._pending = {k: v for k, v in self._pending.items() if repo_id and k[0] != repo_id}
        if repo_id is None:
            return self.store.delete("git_lookup_cache", lambda t: ibis.literal(True))
        return self.store.delete("git_lookup_cache", lambda t: t.repo_id == repo_id)

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> LookupCache:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()


def _get() -> str:
    """The repository's synced tip, and the cached row for (path, at) if there is one."""
    on = exp.and_(
        exp.column("repo_id", table="c", quoted=True).eq(
            exp.column("repo_id", table="r", quoted=True)
        ),
        exp.column("path", table="c", quoted=True).eq(exp.Placeholder()),
        exp.column("at", table="c", quoted=True).eq(exp.Placeholder()),
    )
    query = (
        exp.select(
            exp.column("last_synced_commit", table="r", quoted=True),
            *[exp.column(c, table="c", quoted=True) for c in TABLE.column_names],
        )
        .from_(exp.alias_(exp.to_table("git_repos", quoted=True), "r"))
        .join(
            exp.alias_(exp.to_table("git_lookup_cache", quoted=True), "c"), on=on, join_type="left"
        )
        .where(exp.column("repo_id", table="r", quoted=True).eq(exp.Placeholder()))
    )
    return query.sql("duckdb")


_GET = _get()
