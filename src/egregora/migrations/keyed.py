"""Keyed pseudonyms in the database: the key's one row, and the operation that (re)keys.

The key lives in ``pseudonym_keys`` so that every process using the database finds it; it is
chosen once (at random, or ``EGREGORA_PSEUDONYM_KEY`` when set) and changed only by a rekey,
which rewrites every stored pseudonym in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from egregora.ddl import statements as sql
from egregora.errors import SchemaError
from egregora.migrations.executor import Executor
from egregora.migrations.ledger import existing_tables
from egregora.migrations.model import Operation
from egregora.migrations.rewrite import ThreadRename, rewrite_pseudonyms
from egregora.pseudonyms import Pseudonyms, key_from_env, new_key
from egregora.schema.catalog import CATALOG
from egregora.schema.model import Catalog
from egregora.schema.tables.keys import PSEUDONYM_KEYS

if TYPE_CHECKING:
    from egregora.migrations.context import MigrationContext

TABLE = PSEUDONYM_KEYS.name
_COLUMNS = ("key_id", "secret", "origin", "created_at")


@dataclass(frozen=True)
class StoredKey:
    key_id: str
    secret: bytes
    origin: str
    created_at: datetime

    @property
    def pseudonyms(self) -> Pseudonyms:
        return Pseudonyms(self.secret)


def read_key(executor: Executor) -> StoredKey | None:
    """The database's key, or None before the migration that creates it."""
    if TABLE not in existing_tables(executor):
        return None
    rows = executor.query(sql.select_rows(TABLE, _COLUMNS, executor.dialect))
    if not rows:
        return None
    key_id, secret, origin, created_at = rows[0]
    return StoredKey(str(key_id), bytes(secret), str(origin), created_at)


def store_key(executor: Executor, key: bytes, origin: str, now: datetime) -> StoredKey:
    """Make ``key`` the database's only key."""
    stored = StoredKey(Pseudonyms(key).key_id, key, origin, now)
    if executor.dry_run:  # the printed script holds the key, like a dump of the database
        executor.execute(
            "-- the next statements store the database's pseudonym key: keep this script as "
            "private as the database, or run `egregora db migrate` instead"
        )
    executor.execute(sql.delete_all(TABLE, executor.dialect))
    values = [stored.key_id, stored.secret, stored.origin, stored.created_at]
    executor.execute(sql.insert_values(TABLE, _COLUMNS, executor.dialect), values)
    return stored


def author_renames(executor: Executor, new: Pseudonyms) -> list[ThreadRename]:
    """Each thread's renames for its authors before keys: every stored pseudonym, made again
    from the author's name under ``new``; documents move from the thread's id (how they named
    their thread then) to its keyed label."""
    columns = ["source", "thread_id", "author_raw", "author_uuid"]
    query = sql.select_rows("messages", columns, executor.dialect, distinct=True)
    threads: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for source, thread_id, name, pseudonym in executor.query(query):
        people = threads.setdefault((source, thread_id), [])
        if name is not None and pseudonym is not None:
            people.append((name, pseudonym))
    return [
        thread_rename(new, source, thread_id, thread_id, people)
        for (source, thread_id), people in sorted(threads.items())
    ]


def thread_rename(
    new: Pseudonyms,
    source: str,
    thread_id: str,
    old_label: str,
    people: Iterable[tuple[str, str]],
) -> ThreadRename:
    """The rename of one thread: (name, old pseudonym) pairs made again under ``new``."""
    authors: dict[str, str] = {}
    uuids: dict[str, str] = {}
    for name, old in people:
        authors[name] = uuids[old] = new.author(source, thread_id, name)
    return ThreadRename(source, thread_id, old_label, new.thread(source, thread_id), authors, uuids)


@dataclass(frozen=True)
class KeyPseudonyms(Operation):
    """Give the database its pseudonym key and rewrite every stored pseudonym with it. The
    pseudonyms before were made without a key (UUID5 of public inputs), and documents were
    labelled with the thread's own id."""

    computes_rows_in_python = True  # each pseudonym is made again from the member's name

    def revert(self, catalog: Catalog) -> Catalog:
        return catalog  # rows change, the schema does not

    def apply(self, ctx: MigrationContext) -> None:
        given = key_from_env()
        key = given if given is not None else new_key()
        now = datetime.now(UTC)
        store_key(ctx.executor, key, "given" if given is not None else "generated", now)
        new = Pseudonyms(key)
        renames = []
        if "messages" in existing_tables(ctx.executor):
            renames = author_renames(ctx.executor, new)
        rewrite_pseudonyms(ctx.executor, ctx.after, renames, label=ctx.migration_id)

    def describe(self) -> str:
        return "key pseudonyms with a secret per database, rewriting the stored ones"


# (source, thread_id, kind, author_raw, text, media_filename) of each message of a thread.
MessageRow = tuple[str, str, str, str | None, str | None, str | None]
# Every name a thread's pages give a pseudonym to, found in its messages under a key.
NameFinder = Callable[[Pseudonyms, str, str, list[MessageRow]], Iterable[str]]
_MESSAGE_COLUMNS = ("source", "thread_id", "kind", "author_raw", "text", "media_filename")


@dataclass(frozen=True)
class RekeyResult:
    old_key_id: str
    key_id: str
    origin: str
    threads: int
    members: int  # pseudonyms rewritten

    def to_dict(self) -> dict[str, object]:
        return {
            "old_key_id": self.old_key_id,
            "key_id": self.key_id,
            "origin": self.origin,
            "threads": self.threads,
            "members": self.members,
        }


def rekey(
    executor: Executor, key: bytes, origin: str, now: datetime, names: NameFinder
) -> RekeyResult:
    """Move every stored pseudonym from the database's key to ``key``, in the caller's
    transaction; ``names`` finds, per thread, every name pages give a pseudonym to."""
    old = read_key(executor)
    if old is None:
        raise SchemaError("the database has no pseudonym key yet; run `egregora db migrate`")
    renames: list[ThreadRename] = []
    if key != old.secret:
        new = Pseudonyms(key)
        query = sql.select_rows("messages", _MESSAGE_COLUMNS, executor.dialect)
        threads: dict[tuple[str, str], list[MessageRow]] = {}
        for row in executor.query(query):
            threads.setdefault((row[0], row[1]), []).append(tuple(row))
        for (source, thread_id), rows in sorted(threads.items()):
            authors = {r[3] for r in rows if r[3] is not None}
            found = set(names(old.pseudonyms, source, thread_id, rows)) | authors
            people = [(n, old.pseudonyms.author(source, thread_id, n)) for n in sorted(found)]
            label = old.pseudonyms.thread(source, thread_id)
            renames.append(thread_rename(new, source, thread_id, label, people))
        rewrite_pseudonyms(executor, CATALOG, renames, label="rekey")
    stored = store_key(executor, key, origin, now)
    return RekeyResult(
        old.key_id, stored.key_id, origin, len(renames), sum(len(r.uuids) for r in renames)
    )
