"""A thread's messages, read once through the typed `messages` table and sliced in memory.

Every window and author task of a run reads from this one copy instead of querying per task.
It is also where people's names leave: messages come out with every name, mention and phone
number in their text, notices and file names replaced by pseudonyms (``people.People``), so
journals, profiles and writers never see what the export called anyone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from egregora.constants import SOURCE
from egregora.pseudonyms import Pseudonyms
from egregora.runner.markup import one_line
from egregora.runner.model import Message, Window
from egregora.runner.people import People
from egregora.storage.keys import pseudonyms
from egregora.storage.store import Storage

DEFAULT_SITE_NAME = "Chat journal"
GROUP = 3  # people who speak in a chat that is surely a group
COLUMNS = (
    "event_id",
    "seq",
    "ts",
    "kind",
    "author_uuid",
    "author_raw",
    "text",
    "media_filename",
    "media_type",
)


def read_thread(store: Storage, thread_id: str, columns: Sequence[str] = COLUMNS) -> pa.Table:
    """The thread's messages (``columns``) in thread order."""
    messages = store.table("messages")
    query = messages.filter(messages.thread_id == thread_id).select(*columns).order_by("seq")
    table: pa.Table = store.to_pyarrow(query)
    return table


class ThreadMessages:
    """One thread's messages, served by window (time or position) and by author."""

    def __init__(
        self, table: pa.Table, keyed: Pseudonyms, thread_id: str, source: str = SOURCE
    ) -> None:
        table = table.combine_chunks()
        self.thread_id = thread_id
        self.label = keyed.thread(source, thread_id)  # the thread's name in ids and pages
        authors = [n for n in pc.unique(table["author_raw"]).to_pylist() if n is not None]
        system = pc.equal(table["kind"], "system")
        notices = [t for t in table["text"].filter(system).to_pylist() if t]
        self.people = People(lambda name: keyed.author(source, thread_id, name), authors, notices)
        self.table = table.drop_columns(["author_raw"])  # documents never hold it
        times = self.table["ts"].cast(pa.int64()).to_numpy()
        self._by_time = np.argsort(times, kind="stable")
        self._times = times[self._by_time]
        self._seqs = self.table["seq"].to_numpy()

    @classmethod
    def read(cls, store: Storage, thread_id: str) -> ThreadMessages:
        return cls(read_thread(store, thread_id), pseudonyms(store), thread_id)

    @property
    def names(self) -> frozenset[str]:
        """The words of the thread's member names, which titles and tags leave out."""
        return self.people.words

    def site_name(self, chat_name: str) -> str:
        """The site's default name: the group's name, unless the chat may be named after a
        person (one or two people speak, as in a one-to-one chat, whose export takes the
        contact's name) or the name holds a member's name or number."""
        name = one_line(chat_name)
        if len(self._authors) >= GROUP and name and self.people.name(name) == name:
            return name
        return DEFAULT_SITE_NAME

    def shown(self, filename: str) -> str:
        """A file's name as documents show it: any member's name or number in it replaced."""
        return self.people.name(filename)

    def window(self, window: Window) -> list[Message]:
        """The window's messages in thread order."""
        if window.spec.kind == "messages":
            first, last = np.searchsorted(self._seqs, [window.first_seq, window.last_seq + 1])
            rows = np.arange(first, last)
        else:
            lo, hi = np.searchsorted(self._times, [_micros(window.start), _micros(window.end)])
            rows = np.sort(self._by_time[lo:hi])
        return self._messages(rows)

    def author(self, author_uuid: str) -> list[Message]:
        """Every message of one author, in thread order."""
        return self._messages(self._authors.get(author_uuid, np.array([], dtype=np.int64)))

    @cached_property
    def first_window_of_file(self) -> dict[str, int]:
        """The seq of the first message naming each media file."""
        first: dict[str, int] = {}
        names = self.table["media_filename"].to_pylist()
        for name, seq in zip(names, self._seqs.tolist(), strict=True):
            if name is not None and name not in first:
                first[name] = seq
        return first

    @cached_property
    def _authors(self) -> dict[str, np.ndarray]:
        encoded = pc.dictionary_encode(self.table["author_uuid"].combine_chunks())
        indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        order = np.argsort(indices, kind="stable")
        bounds = np.searchsorted(indices[order], np.arange(len(encoded.dictionary) + 1))
        names = encoded.dictionary.to_pylist()
        return {name: order[bounds[i] : bounds[i + 1]] for i, name in enumerate(names)}

    def _messages(self, rows: np.ndarray) -> list[Message]:
        if len(rows) == 0:
            return []
        picked = self.table.take(pa.array(rows, pa.int64()))
        return [self._pseudonymous(Message(**row)) for row in picked.to_pylist()]

    def _pseudonymous(self, message: Message) -> Message:
        text = message.text
        if text is not None:
            text = self.people.notice(text) if message.kind == "system" else self.people.text(text)
        name = message.media_filename
        return dataclasses.replace(
            message, text=text, media_filename=self.shown(name) if name is not None else None
        )


def _micros(moment: object) -> int:
    """An aware datetime as microseconds since the epoch (how Arrow holds ``ts``)."""
    return int(pa.scalar(moment, pa.timestamp("us", tz="UTC")).cast(pa.int64()).as_py())
