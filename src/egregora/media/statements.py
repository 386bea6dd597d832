"""The statements media parts are read with, built once; values are bound parameters.

Written in DuckDB's dialect and translated by the store for other engines, like the other
services' statements.
"""

from __future__ import annotations

import sqlglot


def _build(text: str) -> str:
    return sqlglot.parse_one(text, read="duckdb").sql("duckdb")


# [digests] -> (digest, part, length) of every stored part: which files are whole, without
# fetching a byte of them (PostgreSQL reads a stored value's length from its header).
STORED = _build(
    """
SELECT digest, part, octet_length(content) FROM media_parts
WHERE digest IN (SELECT UNNEST(CAST(? AS VARCHAR[])))
"""
)

# digest, first part, part after the last -> (part, content), in order: a file is read a few
# parts at a time, never fetched in one piece.
PARTS = _build(
    """
SELECT part, content FROM media_parts
WHERE digest = ? AND part >= ? AND part < ?
ORDER BY part
"""
)
