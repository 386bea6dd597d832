"""The rows the runner writes to `documents`: a journal and a post per window, a profile per
author. Every value comes from the messages (never the clock or the run), so the same
messages give the same rows, whether a run went straight through or was resumed."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from egregora.runner.model import Message, Window, signature
from egregora.runner.writer import PostDraft, Writer, links, member

KINDS = ("text", "media", "system")


def journal_id(window: Window) -> str:
    return f"journal-{window.thread_id}-{window.label}"


def post_id(window: Window) -> str:
    return f"post-{window.thread_id}-{window.label}"


def profile_id(thread_id: str, author_uuid: str) -> str:
    return f"profile-{thread_id}-{author_uuid}"


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 message``, ``2 messages`` (``words`` for an irregular plural)."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _local_date(moment: datetime, tz: tzinfo) -> Any:
    return moment.astimezone(tz).date()


def journal_row(
    window: Window,
    messages: Sequence[Message],
    media: Mapping[str, str],
    tz: tzinfo,
) -> dict[str, Any]:
    """The journal of ``window``: who spoke, how much, the links and media shared.

    ``media`` maps a file name to the id of its media document (files in the export).
    """
    people = sorted({m.author_uuid for m in messages if m.author_uuid})
    per_author = Counter(m.author_uuid for m in messages if m.author_uuid)
    kinds = Counter(m.kind for m in messages)
    shared = list(dict.fromkeys(link for m in messages for link in links(m.text)))
    files = list(dict.fromkeys(m.media_filename for m in messages if m.media_filename))
    linked = [media[f] for f in files if f in media]
    omitted = sum(1 for m in messages if m.kind == "text" and m.text is None)
    title = f"Journal: {_window_title(window, tz)}"
    summary = (
        f"{plural(len(messages), 'message')} ({kinds['text']} text, {kinds['media']} media, "
        f"{plural(kinds['system'], 'notice')}) from {plural(len(people), 'person', 'people')}; "
        f"{plural(len(shared), 'link')}, {plural(len(files), 'file')} shared."
    )
    lines = [summary, "", "## Participants", ""]
    lines += [f"- {member(p)}: {plural(per_author[p], 'message')}" for p in people]
    lines += [] if people else ["- nobody (system notices only)"]
    if shared:
        lines += ["", "## Links", "", *[f"- <{link}>" for link in shared]]
    if files:
        lines += ["", "## Media", "", *[f"- {name}" for name in files]]
    notices = [m.text for m in messages if m.kind == "system" and m.text]
    if notices:
        lines += ["", "## Notices", "", *[f"- {text}" for text in notices]]
    return {
        "id": journal_id(window),
        "doc_type": "journal",
        "created_at": max(m.ts for m in messages),
        "title": title,
        "content": "\n".join(lines) + "\n",
        "summary": summary,
        "date": _local_date(window.start, tz),
        "authors": people,
        "window_start": window.start,
        "window_end": window.end,
        "window_signature": window.signature,
        "extensions": _json(
            {
                "thread_id": window.thread_id,
                "window": str(window.spec),
                "label": window.label,
                "first_seq": window.first_seq,
                "last_seq": window.last_seq,
                "messages": len(messages),
                "kinds": {k: kinds[k] for k in KINDS},
                "per_author": {p: per_author[p] for p in people},
                "links": shared,
                "media_files": files,
                "media": linked,
                "media_omitted": omitted,
                "post_id": post_id(window),
            }
        ),
    }


def post_row(
    window: Window,
    messages: Sequence[Message],
    draft: PostDraft,
    writer: Writer,
    media: Mapping[str, str],
    tz: tzinfo,
) -> dict[str, Any]:
    """The post a writer drafted for ``window``, published on the window's local date."""
    people = sorted({m.author_uuid for m in messages if m.author_uuid})
    files = list(dict.fromkeys(m.media_filename for m in messages if m.media_filename))
    return {
        "id": post_id(window),
        "doc_type": "post",
        "created_at": max(m.ts for m in messages),
        "title": draft.title,
        "slug": f"{window.thread_id}-{window.label}".lower(),
        "status": "published",
        "content": draft.content,
        "summary": draft.summary,
        "date": _local_date(window.start, tz),
        "authors": people,
        "tags": list(draft.tags),
        "window_start": window.start,
        "window_end": window.end,
        "window_signature": window.signature,
        "source_checksum": signature([writer.name, writer.version, window.signature]),
        "extensions": _json(
            {
                "thread_id": window.thread_id,
                "window": str(window.spec),
                "label": window.label,
                "journal_id": journal_id(window),
                "writer": writer.name,
                "writer_version": writer.version,
                "media_files": files,
                "media": [media[f] for f in files if f in media],
            }
        ),
    }


@dataclass(frozen=True)
class AuthorInput:
    """One author's messages in a thread, summarised for a profile (planned in one query)."""

    thread_id: str
    author_uuid: str
    signature: str  # of the author's event ids, in thread order
    messages: int
    first_seen: datetime
    last_seen: datetime

    def payload(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "author_uuid": self.author_uuid,
            "signature": self.signature,
            "messages": self.messages,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> AuthorInput:
        return cls(
            thread_id=payload["thread_id"],
            author_uuid=payload["author_uuid"],
            signature=payload["signature"],
            messages=int(payload["messages"]),
            first_seen=datetime.fromisoformat(payload["first_seen"]),
            last_seen=datetime.fromisoformat(payload["last_seen"]),
        )


def profile_row(author: AuthorInput, messages: Sequence[Message], tz: tzinfo) -> dict[str, Any]:
    """The profile of one author: first and last seen, how much and when they write."""
    hours = [0] * 24
    kinds: Counter[str] = Counter()
    days: set[Any] = set()
    for message in messages:
        local = message.ts.astimezone(tz)
        hours[local.hour] += 1
        kinds[message.kind] += 1
        days.add(local.date())
    first = min(m.ts for m in messages)
    last = max(m.ts for m in messages)
    name = member(author.author_uuid)
    busiest = max(range(24), key=lambda h: (hours[h], -h))
    summary = (
        f"{plural(len(messages), 'message')} on {plural(len(days), 'day')}, from "
        f"{first.astimezone(tz):%Y-%m-%d} "
        f"to {last.astimezone(tz):%Y-%m-%d}; most active around {busiest:02d}:00."
    )
    rows = [f"| {h:02d}:00 | {n} |" for h, n in enumerate(hours) if n]
    content = "\n".join(
        [
            summary,
            "",
            f"- first seen: {first.astimezone(tz):%Y-%m-%d %H:%M}",
            f"- last seen: {last.astimezone(tz):%Y-%m-%d %H:%M}",
            f"- messages: {kinds['text']} text, {kinds['media']} media",
            "",
            "## Active hours",
            "",
            "| hour | messages |",
            "| --- | --- |",
            *rows,
        ]
    )
    return {
        "id": profile_id(author.thread_id, author.author_uuid),
        "doc_type": "profile",
        "created_at": first,
        "updated_at": last,
        "title": name,
        "content": content + "\n",
        "summary": summary,
        "authors": [author.author_uuid],
        "subject_uuid": author.author_uuid,
        "source_checksum": author.signature,
        "extensions": _json(
            {
                "thread_id": author.thread_id,
                "first_seen": first.isoformat(),
                "last_seen": last.isoformat(),
                "messages": len(messages),
                "kinds": {k: kinds[k] for k in KINDS},
                "active_days": len(days),
                "active_hours": hours,
            }
        ),
    }


def _window_title(window: Window, tz: tzinfo) -> str:
    start = window.start.astimezone(tz)
    if window.spec.kind == "day":
        return f"{start:%A %d %B %Y}"
    if window.spec.kind == "week":
        year, week = window.label.split("-W")
        return f"week {int(week)} of {year}"
    return f"messages {window.first_seq + 1} to {window.last_seq + 1}"
