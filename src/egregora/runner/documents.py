"""The rows the runner writes to `documents`: a journal and a post per window, a profile per
author. Every value comes from the messages (never the clock or the run), so the same
messages give the same rows, whether a run went straight through or was resumed.

Ids and slugs carry the thread's keyed label (never its name, which is often a person's), and
every piece of chat text enters Markdown through ``markup.chat_markdown``; the messages given
here already name people by pseudonym only (see ``source.ThreadMessages``)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from egregora.pseudonyms import member
from egregora.runner.markup import chat_markdown, one_line, sanitize_markdown
from egregora.runner.model import Message, Window, signature
from egregora.runner.writer import PostDraft, Writer, links

KINDS = ("text", "media", "system")
# How documents are made. Documents of an older recipe are made again by the next run: the
# first ones printed notices and names as written, and took the thread's name into ids; the
# second counted omitted media as text messages.
RECIPE = 3


def journal_id(label: str, window: Window) -> str:
    return f"journal-{label}-{window.label}"


def post_id(label: str, window: Window) -> str:
    return f"post-{label}-{window.label}"


def profile_id(label: str, author_uuid: str) -> str:
    return f"profile-{label}-{author_uuid}"


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 message``, ``2 messages`` (``words`` for an irregular plural)."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _local_date(moment: datetime, tz: tzinfo) -> Any:
    return moment.astimezone(tz).date()


def journal_row(
    label: str,
    window: Window,
    messages: Sequence[Message],
    media: Mapping[str, str],
    tz: tzinfo,
) -> dict[str, Any]:
    """The journal of ``window``: who spoke, how much, the links and media shared.

    ``media`` maps a file name to the id of its media document (files in the export);
    ``label`` is the thread's public label.
    """
    people = _in_order_of_appearance(messages)
    per_author = Counter(m.author_uuid for m in messages if m.author_uuid)
    kinds = Counter(m.kind for m in messages)
    shared = list(dict.fromkeys(link for m in messages for link in links(m.text)))
    files = list(dict.fromkeys(m.media_filename for m in messages if m.media_filename))
    linked = [media[f] for f in files if f in media]
    omitted = sum(1 for m in messages if m.kind == "media" and m.media_filename is None)
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
        lines += ["", "## Links", "", *[f"- {chat_markdown(link)}" for link in shared]]
    if files:
        lines += ["", "## Media", "", *[f"- {chat_markdown(one_line(name))}" for name in files]]
    notices = [m.text for m in messages if m.kind == "system" and m.text]
    if notices:
        lines += ["", "## Notices", "", *[f"- {chat_markdown(one_line(t))}" for t in notices]]
    return {
        "id": journal_id(label, window),
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
                "thread": label,
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
                **({"post_id": post_id(label, window)} if people else {}),  # notices: no post
                "recipe": RECIPE,
            }
        ),
    }


def post_row(
    label: str,
    window: Window,
    messages: Sequence[Message],
    draft: PostDraft,
    writer: Writer,
    media: Mapping[str, str],
    tz: tzinfo,
) -> dict[str, Any]:
    """The post a writer drafted for ``window``, published on the window's local date.

    A writer may be a language model that quotes what it was given: its title, summary and
    tags are kept as plain text, its Markdown is made safe (``sanitize_markdown``)."""
    people = _in_order_of_appearance(messages)
    files = list(dict.fromkeys(m.media_filename for m in messages if m.media_filename))
    return {
        "id": post_id(label, window),
        "doc_type": "post",
        "created_at": max(m.ts for m in messages),
        "title": one_line(draft.title) or f"Messages of {window.label}",
        "slug": f"{label}-{window.label}".lower(),
        "status": "published",
        "content": sanitize_markdown(draft.content),
        "summary": one_line(draft.summary),
        "date": _local_date(window.start, tz),
        "authors": people,
        "tags": [tag for tag in (one_line(t) for t in draft.tags) if tag],
        "window_start": window.start,
        "window_end": window.end,
        "window_signature": window.signature,
        "source_checksum": signature([writer.name, writer.version, window.signature]),
        "extensions": _json(
            {
                "thread": label,
                "window": str(window.spec),
                "label": window.label,
                "journal_id": journal_id(label, window),
                "writer": writer.name,
                "writer_version": writer.version,
                "media_files": files,
                "media": [media[f] for f in files if f in media],
                "recipe": RECIPE,
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


def profile_row(
    label: str, author: AuthorInput, messages: Sequence[Message], tz: tzinfo
) -> dict[str, Any]:
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
        "id": profile_id(label, author.author_uuid),
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
                "thread": label,
                "first_seen": first.isoformat(),
                "last_seen": last.isoformat(),
                "messages": len(messages),
                "kinds": {k: kinds[k] for k in KINDS},
                "active_days": len(days),
                "active_hours": hours,
                "recipe": RECIPE,
            }
        ),
    }


def _in_order_of_appearance(messages: Sequence[Message]) -> list[str]:
    """The window's authors, the first to write first: an order that owes nothing to the
    pseudonyms' values, so rewriting them under a new key keeps every document as made."""
    return list(dict.fromkeys(m.author_uuid for m in messages if m.author_uuid))


def _window_title(window: Window, tz: tzinfo) -> str:
    start = window.start.astimezone(tz)
    if window.spec.kind == "day":
        return f"{start:%A %d %B %Y}"
    if window.spec.kind == "week":
        year, week = window.label.split("-W")
        return f"week {int(week)} of {year}"
    return f"messages {window.first_seq + 1} to {window.last_seq + 1}"
