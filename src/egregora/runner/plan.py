"""Plan a run: the thread's windows and authors, and which of them need new documents.

A window is done when its journal and its post hold its current signature; an author is done
when their profile was made from exactly their current messages. A document made by an older
recipe (see ``documents.RECIPE``) is not done. Only what is not done becomes a task, so a
second run over the same messages plans nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa

from egregora.runner.documents import RECIPE, AuthorInput, journal_id, post_id, profile_id
from egregora.runner.model import Window, WindowSpec, signature
from egregora.runner.windows import plan_windows
from egregora.storage.store import Storage


@dataclass(frozen=True)
class Plan:
    thread_id: str
    messages: int
    windows: tuple[Window, ...]
    authors: tuple[AuthorInput, ...]
    windows_todo: tuple[Window, ...]
    authors_todo: tuple[AuthorInput, ...]


def make_plan(store: Storage, thread_id: str, label: str, spec: WindowSpec, zone_name: str) -> Plan:
    """Read the thread's messages and stored documents (two queries each way), and plan;
    ``label`` is the thread's public label, which document ids carry."""
    messages = store.table("messages")
    table = store.to_pyarrow(
        messages.filter(messages.thread_id == thread_id).select(
            "event_id", "seq", "ts", "author_uuid"
        )
    )
    windows = plan_windows(thread_id, table, spec, zone_name)
    authors = _authors(thread_id, table)
    journals = _stored(store, label, "journal", "window_signature")
    posts = _stored(store, label, "post", "window_signature")
    profiles = _stored(store, label, "profile", "source_checksum")
    windows_todo = tuple(
        w
        for w in windows
        if journals.get(journal_id(label, w)) != w.signature
        or (w.people > 0 and posts.get(post_id(label, w)) != w.signature)  # notices: no post
    )
    authors_todo = tuple(
        a for a in authors if profiles.get(profile_id(label, a.author_uuid)) != a.signature
    )
    return Plan(
        thread_id=thread_id,
        messages=table.num_rows,
        windows=tuple(windows),
        authors=tuple(authors),
        windows_todo=windows_todo,
        authors_todo=authors_todo,
    )


def _stored(store: Storage, label: str, doc_type: str, column: str) -> dict[str, str | None]:
    """id -> ``column`` of the thread's stored documents of ``doc_type`` made by the current
    recipe (an older one is as good as missing)."""
    query = store.documents.of_thread(label, doc_type).select("id", column, "extensions")
    found = store.to_pyarrow(query).to_pylist()
    return {
        row["id"]: row[column]
        for row in found
        if json.loads(row["extensions"] or "{}").get("recipe") == RECIPE
    }


def _authors(thread_id: str, table: pa.Table) -> list[AuthorInput]:
    """Each author's message count, first and last time and signature, in one grouping."""
    spoken = table.filter(table["author_uuid"].is_valid()).sort_by("seq")
    if spoken.num_rows == 0:
        return []
    grouped = (
        spoken.group_by("author_uuid", use_threads=False)  # rows stay in seq order
        .aggregate([("event_id", "list"), ("ts", "min"), ("ts", "max")])
        .sort_by("author_uuid")
    )
    return [
        AuthorInput(
            thread_id=thread_id,
            author_uuid=row["author_uuid"],
            signature=signature(row["event_id_list"]),
            messages=len(row["event_id_list"]),
            first_seen=row["ts_min"],
            last_seen=row["ts_max"],
        )
        for row in grouped.to_pylist()
    ]
