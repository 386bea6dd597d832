"""What a worker keeps of each thread it works on: its messages, media documents and zone.

A worker serves tasks of any thread, planned by any machine, so everything here comes from the
database and the task itself: the thread by its id, its zone from the task's payload (``tz``,
written when the plan queued it). A thread is read once and read again only when a task was
planned from messages this copy does not hold (a later ingest).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import cache, cached_property
from typing import Any

import pyarrow.compute as pc

from egregora.errors import ConfigurationError
from egregora.runner.model import Message
from egregora.runner.source import ThreadMessages
from egregora.runner.windows import zone
from egregora.storage.store import Storage

Row = dict[str, Any]


@dataclass
class ThreadWork:
    """One thread as read at one moment."""

    source: ThreadMessages
    media: Mapping[str, Row]  # the thread's media documents by the export's file name
    last_seq: int
    last_ts: datetime | None

    @cached_property
    def media_ids(self) -> dict[str, str]:
        """A media file's name as documents show it -> its document's id."""
        return {self.source.shown(name): str(row["id"]) for name, row in self.media.items()}

    def linked_media(self, messages: list[Message]) -> list[Row]:
        """The media documents first sent among ``messages`` (a window's): they link to it."""
        seqs = {m.seq for m in messages}
        return [
            dict(row)
            for name, row in self.media.items()
            if self.source.first_window_of_file.get(name) in seqs
        ]


class Threads:
    """The threads a worker has read, by id."""

    def __init__(self, store: Storage) -> None:
        self.store = store
        self._read: dict[str, ThreadWork] = {}

    def of(
        self,
        payload: Mapping[str, Any],
        *,
        last_seq: int | None = None,
        last_seen: datetime | None = None,
    ) -> ThreadWork:
        """The thread a task's ``payload`` names, holding at least the message ``last_seq``
        (a window's last) or one sent at ``last_seen`` (an author's last)."""
        thread_id = str(payload["thread_id"])
        known = self._read.get(thread_id)
        behind = known is not None and (
            (last_seq is not None and last_seq > known.last_seq)
            or (last_seen is not None and (known.last_ts is None or last_seen > known.last_ts))
        )
        if known is None or behind:
            known = self._load(thread_id)
            self._read[thread_id] = known
        return known

    def _load(self, thread_id: str) -> ThreadWork:
        source = ThreadMessages.read(self.store, thread_id)
        rows = self.store.to_pyarrow(self.store.documents.of_thread(source.label, "media"))
        media = {row["filename"]: row for row in rows.to_pylist()}
        last_seq = pc.max(source.table["seq"]).as_py()
        last_ts = pc.max(source.table["ts"]).as_py()
        return ThreadWork(source, media, -1 if last_seq is None else last_seq, last_ts)


def task_zone(payload: Mapping[str, Any]) -> tzinfo:
    """The zone of a task's local times, which the plan wrote into its payload."""
    name = payload.get("tz")
    if not name:
        raise ConfigurationError(
            f"a task of thread {payload.get('thread_id')!r} names no zone: it was planned by "
            "an older egregora; run `egregora run EXPORT` again, which plans it anew"
        )
    return _zone(str(name))


@cache
def _zone(name: str) -> tzinfo:
    return zone(name)
