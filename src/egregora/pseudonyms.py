"""Keyed pseudonyms: how a member and a chat are named in everything egregora writes.

A pseudonym is an HMAC-SHA256 of the source, the thread and the member's name under a secret
key that each database keeps (``pseudonym_keys``). Without the key, a list of guessed names or
every phone number of a country maps to nothing: the names cannot be recomputed. Two databases
agree on pseudonyms only when they were given the same key (``EGREGORA_PSEUDONYM_KEY``).

A chat's public label (in page names and document ids) is keyed the same way, because a chat
is named after a person as often as not (a one-to-one chat takes the contact's name).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from egregora.errors import ConfigurationError

ENV = "EGREGORA_PSEUDONYM_KEY"
KEY_BYTES = 32  # a new key; a given one needs at least MIN_KEY_BYTES
MIN_KEY_BYTES = 16
_SEPARATOR = "\x1f"
_SLUG = re.compile(r"[\W_]+")  # letters and digits of any script stay
# A phone number as WhatsApp writes an unsaved contact: "+1 202-555-0147", "+55 11 91234-5678".
_PHONE = re.compile(r"\+?[\d][\d\s\-().]{5,}\d")
_MIN_PHONE_DIGITS = 7


def new_key() -> bytes:
    """A fresh random key."""
    return secrets.token_bytes(KEY_BYTES)


def parse_key(text: str, where: str = ENV) -> bytes:
    """A key written as hexadecimal digits (at least 32 of them), or a clear refusal."""
    digits = text.strip()
    try:
        key = bytes.fromhex(digits)
    except ValueError:
        key = b""
    if len(key) < MIN_KEY_BYTES:
        raise ConfigurationError(
            f"{where} must be a secret of at least {2 * MIN_KEY_BYTES} hexadecimal digits; "
            'make one with: python -c "import secrets; print(secrets.token_hex(32))"'
        )
    return key


def key_from_env(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The key the user set in ``EGREGORA_PSEUDONYM_KEY``, or None when it is unset or empty."""
    text = (os.environ if environ is None else environ).get(ENV, "")
    return parse_key(text) if text.strip() else None


def key_id(key: bytes) -> str:
    """A fingerprint that tells keys apart without revealing them."""
    return hashlib.sha256(b"egregora pseudonym key id" + _SEPARATOR.encode() + key).hexdigest()[:16]


def is_phone(name: str) -> bool:
    """True when ``name`` is a phone number (how an export names an unsaved contact)."""
    text = name.strip()
    return bool(_PHONE.fullmatch(text)) and sum(c.isdigit() for c in text) >= _MIN_PHONE_DIGITS


def canonical_name(name: str) -> str:
    """The form of a name a pseudonym is made from: a phone number as ``+`` and its digits (so
    "+1 202-555-0147" and a mention "@12025550147" are one member), other names as written
    (NFC, outer spaces removed)."""
    text = unicodedata.normalize("NFC", name).strip()
    if is_phone(text):
        return "+" + "".join(c for c in text if c.isdigit())
    return text


def thread_slug(name: str) -> str:
    """A thread id from a chat's name: lower case letters and digits of any script, words
    joined by '-' ("Família Silva" -> "família-silva"); "chat" when none is left."""
    slug = _SLUG.sub("-", name.lower()).strip("-")
    return slug or "chat"


def member(author_uuid: str | None) -> str:
    """How documents name an author: a short form of the pseudonym, never the raw name."""
    return f"member-{author_uuid[:8]}" if author_uuid else "system"


@dataclass(frozen=True)
class Pseudonyms:
    """The pseudonyms of one key."""

    key: bytes

    @property
    def key_id(self) -> str:
        return key_id(self.key)

    def author(self, source: str, thread_id: str, name: str) -> str:
        """The pseudonym (a UUID string) of the member ``name`` in a thread."""
        digest = self._mac("author", source, thread_id, canonical_name(name))
        raw = bytearray(digest[:16])
        raw[6] = (raw[6] & 0x0F) | 0x80  # version 8: a custom, name-free UUID (RFC 9562)
        raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC variant
        return str(uuid.UUID(bytes=bytes(raw)))

    def thread(self, source: str, thread_id: str) -> str:
        """The public label of a thread in page names and document ids: ``chat-`` and ten
        hexadecimal digits, the same for every run under this key."""
        return "chat-" + self._mac("thread", source, thread_id).hex()[:10]

    def _mac(self, *parts: str) -> bytes:
        message = _SEPARATOR.join(parts).encode()
        return hmac.new(self.key, message, hashlib.sha256).digest()
