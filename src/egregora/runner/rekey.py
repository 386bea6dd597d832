"""Change a database's pseudonym key, rewriting every pseudonym it stores (``egregora db rekey``).

A rekey is how two databases come to agree (give both the same key) or how a key that got out
is retired. Pseudonyms live in messages, in documents (their ids, slugs, authors and the
``member-xxxxxxxx`` names in their text) and in queued tasks; all of them move to the new key in
one transaction, so pages written from the database afterwards link to each other as before.
A member named only in text (added by a notice, mentioned, never writing) has a pseudonym too:
the thread's messages are read again, as the runner reads them, to find every one.
"""

from __future__ import annotations

from datetime import UTC, datetime

from egregora.errors import MigrationError
from egregora.migrations.keyed import MessageRow, RekeyResult, rekey
from egregora.pseudonyms import Pseudonyms, key_from_env, new_key
from egregora.runner.people import People
from egregora.storage import DatabaseURL
from egregora.storage.setup import database_status, open_executor


def rekey_database(url: DatabaseURL, key: bytes | None = None) -> RekeyResult:
    """Give the database at ``url`` the key ``key`` (else ``EGREGORA_PSEUDONYM_KEY``, else a
    new random one), rewriting every stored pseudonym: all of it, or nothing."""
    pending = database_status(url).pending
    if pending:
        raise MigrationError(
            f"{url} is not at the latest schema ({', '.join(pending)} not applied): run "
            "`egregora db migrate` first, then rekey"
        )
    given = key if key is not None else key_from_env()
    chosen = given if given is not None else new_key()
    origin = "given" if given is not None else "generated"
    with open_executor(url, write=True) as executor:
        executor.begin()
        try:
            result = rekey(executor, chosen, origin, datetime.now(UTC), named_in)
        except BaseException:
            executor.rollback()
            raise
        executor.commit()
    return result


def named_in(keyed: Pseudonyms, source: str, thread_id: str, rows: list[MessageRow]) -> set[str]:
    """Every name the runner gives a pseudonym to in a thread: authors, and the people its
    notices, mentions and file names name."""
    named: set[str] = set()

    def mint(name: str) -> str:
        named.add(name)
        return keyed.author(source, thread_id, name)

    authors = [r[3] for r in rows if r[3] is not None]
    notices = [r[4] for r in rows if r[2] == "system" and r[4]]
    people = People(mint, authors, notices)
    for _, _, kind, _, text, filename in rows:
        if text:
            people.notice(text) if kind == "system" else people.text(text)
        if filename:
            people.name(filename)
    return named
