"""Typed queries on ``documents``: each returns an Ibis expression, never SQL text."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

import ibis.expr.types as ir

if TYPE_CHECKING:
    from egregora.storage.store import Storage


class Documents:
    """``store.documents``: the questions the pipeline asks of the unified documents table."""

    def __init__(self, store: Storage) -> None:
        self._store = store

    @property
    def table(self) -> ir.Table:
        return self._store.table("documents")

    def of_type(self, doc_type: str) -> ir.Table:
        t = self.table
        return t.filter(t.doc_type == doc_type)

    def posts(self, status: str | None = None) -> ir.Table:
        """Posts, optionally only those with ``status`` (draft, published, archived)."""
        t = self.of_type("post")
        return t if status is None else t.filter(t.status == status)

    def post_by_slug(self, slug: str) -> ir.Table:
        t = self.of_type("post")
        return t.filter(t.slug == slug)

    def posts_by_author(self, author: str) -> ir.Table:
        t = self.of_type("post")
        return t.filter(t.authors.contains(author))

    def journals_overlapping(self, start: datetime, end: datetime) -> ir.Table:
        """Journals whose window [window_start, window_end) meets [start, end)."""
        t = self.of_type("journal")
        return t.filter((t.window_start < end) & (t.window_end > start))

    def profile(self, subject_uuid: str) -> ir.Table:
        t = self.of_type("profile")
        return t.filter(t.subject_uuid == subject_uuid)

    def media_by_filename(self, filename: str) -> ir.Table:
        t = self.of_type("media")
        return t.filter(t.filename == filename)

    def of_thread(self, label: str, doc_type: str | None = None) -> ir.Table:
        """Documents made from one chat thread, of one type if given. Documents name their
        thread by its public label (``extensions.thread``: ``chat-`` and a keyed hash), never
        by its id, which is the chat's name and often a person's."""
        t = self.table if doc_type is None else self.of_type(doc_type)
        # The value's JSON text, compared with the label written as JSON: Ibis 12 unwraps a
        # JSON string into SQL PostgreSQL refuses (``->> VARIADIC ARRAY[]``).
        return t.filter(t.extensions["thread"].cast("string") == json.dumps(label))

    def created_by_run(self, run_id: str) -> ir.Table:
        t = self.table
        return t.filter(t.created_by_run == run_id)
