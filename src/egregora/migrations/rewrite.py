"""Rewrite stored pseudonyms: messages, documents, annotations and tasks, in one rebuild.

Pseudonyms are derived identities kept as data: a message's ``author_uuid``, a document's
``authors`` and ``subject_uuid``, the ``member-xxxxxxxx`` names in its text, the thread label
in its id and slug, a task's payload. When the recipe or the key changes, every one of them
is rewritten together, so a page never links to a pseudonym another page no longer uses.

The rows are rewritten while the family of ``runs`` is set aside (see ``rebuild_family``):
DuckDB cannot update a row other rows reference, and a document's id is such a row.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from egregora.ddl import statements as sql
from egregora.migrations.executor import Executor
from egregora.migrations.ledger import existing_tables
from egregora.migrations.rebuild import rebuild_family
from egregora.schema.model import Catalog, Table

# Documents whose id, slug and links carry their thread's label: ``<doc_type>-<label>-...``.
LABELLED = ("journal", "post", "profile")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MEMBER = re.compile(r"\bmember-([0-9a-f]{8})\b")
_DOCUMENT_TEXT = ("title", "content", "summary", "subject_uuid")


@dataclass(frozen=True)
class ThreadRename:
    """How one thread's pseudonyms change: its label, and each member's pseudonym."""

    source: str
    thread_id: str
    old_label: str
    new_label: str
    authors: Mapping[str, str] = field(default_factory=dict)  # author_raw -> new pseudonym
    uuids: Mapping[str, str] = field(default_factory=dict)  # old pseudonym -> new pseudonym


class Renamer:
    """Rewrites text and ids under a set of thread renames."""

    def __init__(self, renames: Iterable[ThreadRename]) -> None:
        self.threads = {r.thread_id: r for r in renames}
        self.labels = {r.old_label: r for r in self.threads.values()}
        self.uuids = {old: new for r in self.threads.values() for old, new in r.uuids.items()}
        self.short = {old[:8]: new[:8] for old, new in self.uuids.items()}

    def text(self, value: str | None) -> str | None:
        """``value`` with every old pseudonym, whole or as ``member-xxxxxxxx``, replaced."""
        if not value:
            return value
        value = _UUID.sub(lambda m: self.uuids.get(m.group(), m.group()), value)
        return _MEMBER.sub(lambda m: "member-" + self.short.get(m.group(1), m.group(1)), value)

    def value(self, value: Any) -> Any:
        """A JSON value with every string in it (keys too) renamed by ``text``."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value

    def labelled(self, value: str | None, prefix: str, rename: ThreadRename) -> str | None:
        """An id or slug that starts with ``prefix`` and the old label, moved to the new one."""
        if value is None:
            return None
        for old in dict.fromkeys((rename.old_label, rename.old_label.lower())):
            start = f"{prefix}{old}-"
            if value.startswith(start):
                return f"{prefix}{rename.new_label}-" + value.removeprefix(start)
        return value

    def document(self, row: Mapping[str, Any]) -> dict[str, Any] | None:
        """The rewritten columns of one document row, or None when nothing changes."""
        extensions = json.loads(row["extensions"]) if row["extensions"] else {}
        if not isinstance(extensions, dict):
            return None
        # A document names its thread by label ("thread"); before labels, by id ("thread_id").
        if "thread" in extensions:
            rename = self.labels.get(str(extensions["thread"]))
        else:
            rename = self.threads.get(str(extensions.get("thread_id")))
        if rename is None:
            return None
        extensions.pop("thread_id", None)
        extensions["thread"] = rename.new_label
        new: dict[str, Any] = {name: self.text(row[name]) for name in _DOCUMENT_TEXT}
        doc_type = row["doc_type"]
        new["id"] = row["id"]
        if doc_type in LABELLED:
            new["id"] = self.labelled(self.text(row["id"]), f"{doc_type}-", rename)
        new["slug"] = self.labelled(row["slug"], "", rename)
        new["authors"] = [self.uuids.get(a, a) for a in row["authors"]] if row["authors"] else None
        for link, prefix in (("journal_id", "journal-"), ("post_id", "post-")):
            if isinstance(extensions.get(link), str):
                extensions[link] = self.labelled(extensions[link], prefix, rename)
        # Renamed inside, then written as the runner writes it (keys sorted): a renamed key
        # moves to its new place, as if the document had been made under the new key.
        text = json.dumps(self.value(extensions), sort_keys=True, ensure_ascii=False)
        new["extensions"] = text
        same = all(new[k] == row[k] for k in new if k != "extensions")
        if same and json.loads(text or "{}") == json.loads(row["extensions"] or "{}"):
            return None
        return new


_DOCUMENT_COLUMNS = ("id", "doc_type", "slug", "authors", "extensions", *_DOCUMENT_TEXT)
_SET = ("id", "slug", "authors", "extensions", *_DOCUMENT_TEXT)


def rewrite_pseudonyms(
    executor: Executor,
    catalog: Catalog,
    renames: Iterable[ThreadRename],
    *,
    label: str,
) -> None:
    """Rewrite every stored pseudonym under ``renames`` (tables at ``catalog``'s schema)."""
    renamer = Renamer(renames)
    if not renamer.threads or "messages" not in existing_tables(executor):
        return  # an empty database (or a dry run of one) holds no pseudonyms yet
    dialect = executor.dialect
    moved: dict[str, str] = {}  # document id: old -> new

    def patch(table: Table, aside: str) -> None:
        # Rows are read from the table itself, which the aside copy equals until the rebuild
        # drops it; a dry run has no aside copy to read.
        if table.name == "messages":
            statement = sql.update_values(
                aside, ["author_uuid"], ["source", "thread_id", "author_raw"], dialect
            )
            for rename in renamer.threads.values():
                for name, pseudonym in rename.authors.items():
                    executor.execute(statement, [pseudonym, rename.source, rename.thread_id, name])
        elif table.name == "documents":
            statement = sql.update_values(aside, _SET, ["id"], dialect)
            query = sql.select_rows(table.name, _DOCUMENT_COLUMNS, dialect)
            for values in executor.query(query):
                row = dict(zip(_DOCUMENT_COLUMNS, values, strict=True))
                if isinstance(row["extensions"], dict):  # a driver that parses JSON itself
                    row["extensions"] = json.dumps(row["extensions"], sort_keys=True)
                changed = renamer.document(row)
                if changed is None:
                    continue
                if changed["id"] != row["id"]:
                    moved[row["id"]] = changed["id"]
                executor.execute(statement, [*(changed[c] for c in _SET), row["id"]])
        elif table.name == "annotations":
            statement = sql.update_values(aside, ["document_id"], ["document_id"], dialect)
            for old, new in moved.items():
                executor.execute(statement, [new, old])
        elif table.name == "tasks":
            statement = sql.update_values(aside, ["payload", "dedupe_key"], ["task_id"], dialect)
            query = sql.select_rows(table.name, ["task_id", "payload", "dedupe_key"], dialect)
            for task_id, payload, dedupe_key in executor.query(query):
                text = payload if isinstance(payload, str) else json.dumps(payload)
                new_payload, new_key = renamer.text(text), renamer.text(dedupe_key)
                if (new_payload, new_key) != (text, dedupe_key):
                    executor.execute(statement, [new_payload, new_key, task_id])

    # ``runs`` is the parent of messages, documents and tasks (and so of annotations): its
    # family is every table that holds a pseudonym, rebuilt once.
    rebuild_family(executor, catalog, catalog, "runs", label=label, patch=patch)
