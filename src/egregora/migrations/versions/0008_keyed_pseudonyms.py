"""Pseudonyms are keyed: an HMAC under a secret each database keeps, instead of a UUID5 of
the thread and the name, which anyone with a list of guessed names could recompute. The key is
``EGREGORA_PSEUDONYM_KEY`` when set, else made at random. Every stored pseudonym (messages,
documents, their ids and slugs, tasks) is rewritten with it, so pages stay consistent.
"""

from egregora.migrations.keyed import KeyPseudonyms
from egregora.migrations.model import CreateTable

ID = "0008"
DESCRIPTION = "pseudonyms are keyed with a secret per database"
OPERATIONS = (CreateTable("pseudonym_keys"), KeyPseudonyms())
