"""Media files in the database: ``media_parts``, each file cut into parts keyed by its digest.

Parts are written through the store's validated write (an upsert, so two workers storing the
same file at once both succeed) a few at a time, as the file is read: memory stays bounded by a
few parts, whatever the file's size; a file's parts are read back a few at a time, in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import pyarrow as pa

from egregora.media import statements as sql
from egregora.media.model import MediaBytes, part_count
from egregora.schema.tables.media import MEDIA_PART_BYTES, MEDIA_PARTS
from egregora.storage.store import Storage

# A validated write takes parts until they hold this many bytes (two whole parts), so memory
# stays bounded and an export of many small files is a few writes, not one per file (each
# write's staged table holds a lock until the ingest commits: PostgreSQL ran out of lock
# space at 16,000 files written four parts at a time).
WRITE_BYTES = 2 * MEDIA_PART_BYTES
READ_PARTS = 2  # parts per fetch when a file is read back (8 MiB: bounded memory)


def stored_parts(store: Storage, digests: Iterable[str]) -> dict[str, dict[int, int]]:
    """digest -> {part: its length} of the parts stored for ``digests`` (no bytes fetched)."""
    wanted = sorted(set(digests))
    if not wanted:
        return {}
    found: dict[str, dict[int, int]] = {}
    for digest, part, length in store.query(sql.STORED, [wanted]):
        found.setdefault(str(digest), {})[int(part)] = int(length)
    return found


def is_whole(stored: dict[int, int], size: int) -> bool:
    """Whether ``stored`` (part -> length) is every part of a file of ``size`` bytes."""
    count = part_count(size)
    return len(stored) == count and sum(stored.values()) == size and max(stored) == count - 1


def write_parts(store: Storage, files: Sequence[MediaBytes]) -> int:
    """Store every part of ``files`` not stored whole yet, in the caller's transaction (or one
    of its own); return how many parts were written. A file already whole writes nothing."""
    seen: set[str] = set()
    batch: list[tuple[str, int, bytes]] = []
    size = written = 0
    with store.transaction():
        stored = stored_parts(store, (f.digest for f in files))
        for file in files:
            if file.digest in seen:
                continue
            seen.add(file.digest)
            have = stored.get(file.digest, {})
            if have and is_whole(have, file.size):
                continue  # stored already: not even read
            for part, chunk in file.parts():
                if have.get(part) == len(chunk):
                    continue
                batch.append((file.digest, part, chunk))
                size += len(chunk)
                if size >= WRITE_BYTES:
                    written += _write(store, batch)
                    batch, size = [], 0
        if batch:
            written += _write(store, batch)
    return written


def _write(store: Storage, batch: list[tuple[str, int, bytes]]) -> int:
    digests, parts, contents = zip(*batch, strict=True)
    rows = pa.table(
        {
            "digest": pa.array(digests, pa.string()),
            "part": pa.array(parts, pa.int32()),
            "content": pa.array(contents, pa.binary()),
        }
    )
    store.write(MEDIA_PARTS.name, rows, mode="upsert")
    return len(batch)


def missing_parts(store: Storage, digest: str, count: int) -> list[int]:
    """The parts of 0 to ``count - 1`` of ``digest`` not stored (no bytes fetched)."""
    stored = stored_parts(store, [digest]).get(digest, {})
    return [part for part in range(count) if part not in stored]


def stream_parts(store: Storage, digest: str, count: int) -> Iterator[bytes]:
    """The bytes of parts 0 to ``count - 1`` of ``digest``, in order, a few parts fetched at a
    time; stops at the first part missing (the caller checks the whole it got)."""
    for first in range(0, count, READ_PARTS):
        last = min(first + READ_PARTS, count)
        found = {
            int(part): bytes(data) for part, data in store.query(sql.PARTS, [digest, first, last])
        }
        for part in range(first, last):
            if part not in found:
                return
            yield found.pop(part)
