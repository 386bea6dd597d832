"""Stored messages that an earlier reading of the same lines got wrong, and their new reading.

An event id hashes what was read from a line (author, text, attachment), so when the parser
learns to read a line better (a notice in another language, an empty message, a document's
page count) the line gets a new id, and ingesting the export again would store it beside the
old, wrong row. Instead, a stored row that the export no longer yields is replaced by a new
entry when both are the same line read twice: the same instant, and every field of the new
reading (author, text, attachment) found in what was stored. The new row takes the old one's
place in the thread (its ``seq``). A row that an annotation points at is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from egregora.etl.parse import Entries
from egregora.storage.store import Storage


@dataclass(frozen=True)
class Rereadings:
    """Entries that read stored rows again: each entry, the row it replaces, and its place."""

    entries: list[int]
    replaced: list[str]  # event ids of the stored rows they replace
    seqs: list[int]

    def __len__(self) -> int:
        return len(self.entries)


NONE = Rereadings([], [], [])


def find_rereadings(
    store: Storage,
    source: str,
    thread_id: str,
    entries: Entries,
    ids: pa.Array,
    fresh: pa.Array,
    instants: pa.Array,
    stored_ids: pa.Array,
) -> Rereadings:
    """Pair stored rows the export no longer yields with fresh entries that read them again.

    ``fresh`` marks entries whose id is not stored; ``instants`` are the entries' times (UTC);
    ``stored_ids`` are the thread's stored event ids.
    """
    if not pc.any(fresh).as_py() or not len(stored_ids):
        return NONE
    if pc.all(pc.is_in(stored_ids, value_set=ids)).as_py():
        return NONE  # every stored row is in this export: nothing was read differently
    when = instants.filter(fresh)
    messages = store.table("messages")
    nearby = messages.filter(
        (messages.source == source)
        & (messages.thread_id == thread_id)
        & messages.ts.between(pc.min(when).as_py(), pc.max(when).as_py())
    ).select("event_id", "seq", "ts", "author_raw", "text", "media_filename")
    rows = store.to_pyarrow(nearby.order_by("seq"))
    gone = pc.invert(pc.is_in(rows["event_id"], value_set=ids))
    orphans = rows.filter(gone).to_pylist()
    if not orphans:
        return NONE
    pinned = _annotated(store, [o["event_id"] for o in orphans])
    waiting: dict[object, list[int]] = {}
    for index, at in zip(pc.indices_nonzero(fresh).to_pylist(), when.to_pylist(), strict=True):
        waiting.setdefault(at, []).append(index)
    authors, texts = entries.authors, entries.texts
    filenames = entries.media_filenames
    found = Rereadings([], [], [])
    for orphan in orphans:
        if orphan["event_id"] in pinned:
            continue
        stored = f"{orphan['author_raw'] or ''}: {orphan['text'] or ''}"
        for index in waiting.get(orphan["ts"], []):
            parts = [
                p
                for p in (authors[index].as_py(), texts[index].as_py(), filenames[index].as_py())
                if p
            ]
            if parts and all(p in stored for p in parts):
                waiting[orphan["ts"]].remove(index)
                found.entries.append(index)
                found.replaced.append(orphan["event_id"])
                found.seqs.append(orphan["seq"])
                break
    return found


def _annotated(store: Storage, event_ids: list[str]) -> set[str]:
    """Which of these messages an annotation points at."""
    notes = store.table("annotations")
    hits = store.to_pyarrow(notes.filter(notes.message_id.isin(event_ids)).select("message_id"))
    return set(hits["message_id"].to_pylist())
