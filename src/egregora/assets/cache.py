"""AssetCache: generated and fetched binary assets (social cards, images, fonts) by content key.

Entries live in `asset_cache` with an optional expiry. ``evict()`` drops expired entries, then
the least recently used until the byte budget holds; ``put`` evicts when a write takes the
cache over budget. A read counts a hit and moves the entry up the LRU order, but only in
memory: hits are written in one statement per ``flush_every`` reads, every
``flush_interval``, and before anything that reads them (evict, stats, close), so a read costs
one indexed SELECT and no write of its own (benchmarks, case cache_hit, measure both ways).
Hits not yet flushed when a process dies are lost; they are statistics, not data.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import ibis
import ibis.expr.types as ir

from egregora.assets import statements as sql
from egregora.assets.keys import check_kind, key_for, kind_of
from egregora.clock import Clock, utc_now
from egregora.errors import ConfigurationError
from egregora.storage.store import Storage

LOCKS = 64  # striped locks: two threads making one missing asset make it once


@dataclass(frozen=True)
class Asset:
    key: str
    kind: str
    content_type: str
    content: bytes
    size_bytes: int
    created_at: datetime
    expires_at: datetime | None
    last_accessed_at: datetime
    hits: int
    source_url: str | None
    etag: str | None
    metadata: dict[str, Any]


@dataclass(frozen=True)
class NewAsset:
    """An asset to store with ``put_many`` (the arguments of ``put``)."""

    key: str
    content: bytes
    content_type: str
    ttl: timedelta | None = None
    source_url: str | None = None
    etag: str | None = None
    metadata: Mapping[str, Any] | None = None
    kind: str | None = None


@dataclass(frozen=True)
class Evicted:
    """What ``evict`` dropped, and the bytes the cache (or the kind evicted) holds after."""

    expired: int
    evicted: int
    bytes_freed: int
    bytes_left: int

    @property
    def entries(self) -> int:
        return self.expired + self.evicted


@dataclass(frozen=True)
class KindStats:
    entries: int
    bytes: int
    hits: int
    expired: int


@dataclass(frozen=True)
class CacheStats:
    """The stored cache (per kind and in total) and this process's hit rate."""

    entries: int
    bytes: int
    hits: int
    expired: int
    budget_bytes: int | None
    by_kind: dict[str, KindStats]
    session_hits: int
    session_misses: int

    def as_json(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "bytes": self.bytes,
            "hits": self.hits,
            "expired": self.expired,
            "budget_bytes": self.budget_bytes,
            "by_kind": {k: vars(v) for k, v in self.by_kind.items()},
            "session_hits": self.session_hits,
            "session_misses": self.session_misses,
        }


class AssetCache:
    """The asset cache in ``store``; use as a context manager or call ``close``."""

    key_for = staticmethod(key_for)

    def __init__(
        self,
        store: Storage,
        budget_bytes: int | None = None,
        default_ttl: timedelta | None = None,
        *,
        flush_every: int = 256,
        flush_interval: timedelta = timedelta(seconds=5),
        clock: Clock = utc_now,
    ) -> None:
        if budget_bytes is not None and budget_bytes < 0:
            raise ConfigurationError(f"budget_bytes must not be negative, not {budget_bytes}")
        if default_ttl is not None and default_ttl <= timedelta(0):
            raise ConfigurationError(f"default_ttl must be positive, not {default_ttl}")
        if flush_every < 1:
            raise ConfigurationError(f"flush_every must be at least 1, not {flush_every}")
        self.store = store
        self.budget_bytes = budget_bytes
        self.default_ttl = default_ttl
        self.flush_every = flush_every
        self.flush_interval = flush_interval
        self.clock = clock
        self.hits = 0
        self.misses = 0
        self._pending: dict[str, list[Any]] = {}  # key -> [hits, last access]
        self._pending_hits = 0
        self._flushed = clock()
        self._lock = threading.Lock()
        self._makers = [threading.Lock() for _ in range(LOCKS)]

    def __enter__(self) -> AssetCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Write the hits counted in memory."""
        self.flush()

    # -- reading ----------------------------------------------------------------------------------
    def get(self, key: str) -> Asset | None:
        """The asset stored under ``key``, unless missing or expired (a hit or a miss)."""
        now = self.clock()
        asset = self._read(key, now)
        if asset is None:
            with self._lock:
                self.misses += 1
            return None
        with self._lock:
            self.hits += 1
            pending = self._pending.setdefault(key, [0, now])
            pending[0] += 1
            pending[1] = max(pending[1], now)
            self._pending_hits += 1
            hits = asset.hits + pending[0]
            due = (
                self._pending_hits >= self.flush_every or now - self._flushed >= self.flush_interval
            )
        if due:
            self.flush()
        return replace(asset, hits=hits, last_accessed_at=now)

    def _read(self, key: str, now: datetime) -> Asset | None:
        rows = self.store.query(sql.GET, [key])
        if not rows:
            return None
        asset = _asset(rows[0])
        if asset.expires_at is not None and asset.expires_at <= now:
            return None  # expired: gone for readers, dropped by the next evict()
        return asset

    def __contains__(self, key: str) -> bool:
        return self._read(key, self.clock()) is not None

    # -- writing ----------------------------------------------------------------------------------
    def put(
        self,
        key: str,
        content: bytes,
        content_type: str,
        *,
        ttl: timedelta | None = None,
        source_url: str | None = None,
        etag: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        kind: str | None = None,
    ) -> Asset:
        """Store ``content`` under ``key`` (replacing what was there) and return it.

        The kind is the one ``key_for`` put in the key, or ``kind``. ``ttl`` (default: the
        cache's ``default_ttl``) makes the entry expire; None with no default keeps it.
        """
        new = NewAsset(key, content, content_type, ttl, source_url, etag, metadata, kind)
        return self.put_many([new])[0]

    def put_many(self, assets: Iterable[NewAsset]) -> list[Asset]:
        """Store several assets as ``put`` does, in one validated write (a validated write
        costs about the same for one row as for a hundred). A batch larger than the budget
        keeps what fits, the last asset first."""
        now = self.clock()
        rows = [self._row(asset, now) for asset in assets]
        if not rows:
            return []
        keys = [str(row["key"]) for row in rows]
        if len(set(keys)) != len(keys):
            repeated = sorted({k for k in keys if keys.count(k) > 1})
            raise ConfigurationError(
                f"put_many got the key {repeated[0]} more than once; put each asset once"
            )
        with self._lock:
            for key in keys:
                stale = self._pending.pop(key, None)  # a replaced entry starts from no hits
                if stale:
                    self._pending_hits -= stale[0]
        self.store.write("asset_cache", rows, mode="upsert")
        if self.budget_bytes is not None and self._total_bytes() > self.budget_bytes:
            self._evict(self.budget_bytes, None, keep=keys[-1])
        return [_asset(tuple(row.values())) for row in rows]

    def _row(self, asset: NewAsset, now: datetime) -> dict[str, Any]:
        """The `asset_cache` row of ``asset``, after checking what put promises to refuse."""
        content = asset.content
        if not isinstance(content, bytes | bytearray | memoryview):
            raise ConfigurationError(
                f"asset content must be bytes, not {type(content).__name__}; encode text first"
            )
        content = bytes(content)
        kind = check_kind(asset.kind) if asset.kind is not None else kind_of(asset.key)
        if kind is None:
            raise ConfigurationError(
                f"cannot tell the kind of asset {asset.key!r}; make the key with key_for() or "
                "pass kind="
            )
        if not asset.content_type:
            raise ConfigurationError("an asset needs its content_type (for example image/png)")
        ttl = self.default_ttl if asset.ttl is None else asset.ttl
        if ttl is not None and ttl <= timedelta(0):
            raise ConfigurationError(f"ttl must be positive, not {ttl}")
        if self.budget_bytes is not None and len(content) > self.budget_bytes:
            raise ConfigurationError(
                f"an asset of {len(content)} bytes cannot fit the cache budget of "
                f"{self.budget_bytes} bytes; raise budget_bytes"
            )
        metadata = asset.metadata
        return {
            "key": asset.key,
            "kind": kind,
            "content_type": asset.content_type,
            "content": content,
            "size_bytes": len(content),
            "created_at": now,
            "expires_at": None if ttl is None else now + ttl,
            "last_accessed_at": now,
            "hits": 0,
            "source_url": asset.source_url,
            "etag": asset.etag,
            "metadata": json.dumps(dict(metadata), sort_keys=True) if metadata else None,
        }

    def get_or_create(
        self,
        key: str,
        make: Callable[[], bytes],
        *,
        content_type: str = "application/octet-stream",
        ttl: timedelta | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Asset:
        """The asset under ``key``; on a miss, ``make()`` gives its bytes and they are stored.

        Threads of one process asking for the same missing key call ``make`` once.
        """
        found = self.get(key)
        if found is not None:
            return found
        with self._makers[hash(key) % LOCKS]:
            found = self._read(key, self.clock())  # made by another thread meanwhile?
            if found is not None:
                return found
            content = make()
            return self.put(key, content, content_type, ttl=ttl, metadata=metadata)

    def flush(self) -> int:
        """Write the hits and access times counted in memory; return how many entries."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._pending_hits = 0
            self._flushed = self.clock()
        if not pending:
            return 0
        keys = list(pending)
        counts = [pending[k][0] for k in keys]
        times = [pending[k][1] for k in keys]
        self.store.change(sql.TOUCH, [keys, counts, times])
        return len(keys)

    # -- making room ------------------------------------------------------------------------------
    def evict(self, budget_bytes: int | None = None, *, kind: str | None = None) -> Evicted:
        """Drop expired entries, then least recently used ones until the stored bytes fit
        ``budget_bytes`` (default: the cache's budget; None keeps all unexpired entries).

        With ``kind``, only that kind's entries are dropped, and its bytes are held to the
        budget. One transaction: a failure drops nothing.
        """
        budget = self.budget_bytes if budget_bytes is None else budget_bytes
        if budget is not None and budget < 0:
            raise ConfigurationError(f"the budget must not be negative, not {budget}")
        return self._evict(budget, kind)

    def _evict(self, budget: int | None, kind: str | None, keep: str | None = None) -> Evicted:
        """``evict``; ``keep`` (the entry ``put`` just wrote) counts as the most recent, even
        when an older entry has the same access time."""
        self.flush()  # LRU order must see the reads counted in memory
        now = self.clock()

        def scope(t: ir.Table) -> ir.BooleanValue:
            return ibis.literal(True) if kind is None else t.kind == check_kind(kind)

        with self.store.transaction():
            before = self._total_bytes(kind)
            expired = self.store.delete(
                "asset_cache", lambda t: scope(t) & t.expires_at.notnull() & (t.expires_at <= now)
            )
            evicted = 0
            if budget is not None:

                def over_budget(t: ir.Table) -> ir.BooleanValue:
                    mine = t.filter(scope(t))
                    newest_first = ibis.cumulative_window(
                        order_by=[
                            ibis.desc(mine.key == (keep or "")),
                            ibis.desc(mine.last_accessed_at),
                            ibis.desc(mine.key),
                        ]
                    )
                    ranked = mine.select("key", kept=mine.size_bytes.sum().over(newest_first))
                    return t.key.isin(ranked.filter(ranked.kept > budget).key)

                evicted = self.store.delete("asset_cache", over_budget)
            after = self._total_bytes(kind)
        return Evicted(expired, evicted, before - after, after)

    def clear(self, kind: str | None = None) -> int:
        """Delete every entry (or every entry of ``kind``); return how many."""
        if kind is None:
            with self._lock:
                self._pending.clear()
                self._pending_hits = 0
            return self.store.delete("asset_cache", lambda t: ibis.literal(True))
        wanted = check_kind(kind)
        self.flush()  # other kinds' reads counted in memory stay counted
        return self.store.delete("asset_cache", lambda t: t.kind == wanted)

    # -- stats ------------------------------------------------------------------------------------
    def stats(self, kind: str | None = None) -> CacheStats:
        """Entries, bytes, hits and expired entries per kind and in total."""
        self.flush()
        now = self.clock()
        t = self.store.table("asset_cache")
        if kind is not None:
            t = t.filter(t.kind == check_kind(kind))
        expired = t.expires_at.notnull() & (t.expires_at <= now)
        grouped = t.group_by("kind").agg(
            entries=t.count(),
            bytes=t.size_bytes.sum(),
            hits=t.hits.sum(),
            expired=expired.ifelse(1, 0).sum(),
        )
        rows = self.store.to_pyarrow(grouped.order_by("kind")).to_pylist()
        by_kind = {
            r["kind"]: KindStats(
                int(r["entries"]), int(r["bytes"]), int(r["hits"]), int(r["expired"])
            )
            for r in rows
        }
        return CacheStats(
            entries=sum(k.entries for k in by_kind.values()),
            bytes=sum(k.bytes for k in by_kind.values()),
            hits=sum(k.hits for k in by_kind.values()),
            expired=sum(k.expired for k in by_kind.values()),
            budget_bytes=self.budget_bytes,
            by_kind=by_kind,
            session_hits=self.hits,
            session_misses=self.misses,
        )

    def _total_bytes(self, kind: str | None = None) -> int:
        if kind is None:
            rows = self.store.query(sql.TOTAL_BYTES)
        else:
            rows = self.store.query(sql.KIND_BYTES, [check_kind(kind)])
        return int(rows[0][0]) if rows else 0


def _asset(row: tuple[Any, ...]) -> Asset:
    values = dict(zip(sql.COLUMNS, row, strict=True))
    meta = values["metadata"]
    values["metadata"] = json.loads(meta) if isinstance(meta, str) else meta or {}
    values["content"] = bytes(values["content"])
    return Asset(**values)
