"""What the runner works on: how messages are cut into windows, a window, and its messages."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from egregora.errors import ConfigurationError

WindowKind = Literal["day", "week", "messages"]


@dataclass(frozen=True)
class WindowSpec:
    """Calendar days (the default), ISO weeks, or runs of ``size`` consecutive messages."""

    kind: WindowKind = "day"
    size: int | None = None

    @classmethod
    def parse(cls, text: str) -> WindowSpec:
        """``day``, ``week`` or a whole number of messages, as ``--window`` takes them."""
        value = text.strip().lower()
        if value in ("day", "week"):
            return cls(value)  # type: ignore[arg-type]
        if value.isdigit() and int(value) > 0:
            return cls("messages", int(value))
        raise ConfigurationError(
            f"--window must be day, week or a number of messages such as 200, not {text!r}"
        )

    def __str__(self) -> str:
        return str(self.size) if self.kind == "messages" else self.kind


def signature(event_ids: Iterable[str]) -> str:
    """The hash of a window's input: its messages' event ids, in order."""
    h = hashlib.blake2b(digest_size=16)
    for event_id in event_ids:
        h.update(event_id.encode())
        h.update(b"\n")
    return h.hexdigest()


@dataclass(frozen=True)
class Window:
    """A slice of one thread's messages; the label names it within the thread and the spec
    (``2024-05-12``, ``2024-W19``, ``n200-00003``), the signature hashes what it holds."""

    thread_id: str
    spec: WindowSpec
    label: str
    start: datetime  # aware; inclusive
    end: datetime  # aware; exclusive
    first_seq: int
    last_seq: int
    messages: int
    signature: str
    # Members who wrote or sent something in it: a window of system notices only (0) gets a
    # journal and no post. Windows planned before this was counted are taken to have people.
    people: int = 1

    def payload(self) -> dict[str, Any]:
        """The window as a task's JSON payload."""
        return {
            "thread_id": self.thread_id,
            "window": str(self.spec),
            "label": self.label,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "messages": self.messages,
            "signature": self.signature,
            "people": self.people,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Window:
        return cls(
            thread_id=payload["thread_id"],
            spec=WindowSpec.parse(payload["window"]),
            label=payload["label"],
            start=datetime.fromisoformat(payload["start"]),
            end=datetime.fromisoformat(payload["end"]),
            first_seq=int(payload["first_seq"]),
            last_seq=int(payload["last_seq"]),
            messages=int(payload["messages"]),
            signature=payload["signature"],
            people=int(payload.get("people", 1)),
        )


@dataclass(frozen=True)
class Message:
    """One stored message as the runner and writers see it: the author by pseudonym only."""

    event_id: str
    seq: int
    ts: datetime
    kind: str
    author_uuid: str | None
    text: str | None
    media_filename: str | None
    media_type: str | None
