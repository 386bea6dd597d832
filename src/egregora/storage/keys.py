"""The pseudonym key of an open database, for the ETL and the runner."""

from __future__ import annotations

from egregora.errors import ConfigurationError, SchemaError
from egregora.migrations.keyed import StoredKey, read_key
from egregora.pseudonyms import ENV, Pseudonyms, key_from_env
from egregora.storage.store import Storage


def stored_key(store: Storage) -> StoredKey:
    """The database's key; refused when ``EGREGORA_PSEUDONYM_KEY`` names another one, since
    pseudonyms made with it would not match the ones stored."""
    found = read_key(store.executor())
    if found is None:
        raise SchemaError(
            f"{store.url} has no pseudonym key yet; run `egregora db migrate --db {store.url}`"
        )
    given = key_from_env()
    if given is not None and given != found.secret:
        raise ConfigurationError(
            f"{ENV} is not the key of {store.url} (its key is {found.key_id}); unset it to use "
            f"the database's own key, or make it the database's key with `egregora db rekey "
            f"--db {store.url}`, which rewrites every stored pseudonym"
        )
    return found


def pseudonyms(store: Storage) -> Pseudonyms:
    """The pseudonyms of ``store``'s key (see ``stored_key``)."""
    return stored_key(store).pseudonyms
