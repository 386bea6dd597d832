"""Pure declarations of every table: columns, keys, rules, foreign keys and indexes. No I/O."""

from egregora.schema.catalog import CATALOG
from egregora.schema.model import TIMESTAMPTZ, Catalog, Column, ForeignKey, Index, Table, Unique
from egregora.schema.rules import (
    Bound,
    ExactlyOne,
    Matches,
    NullExactlyWhen,
    OneOf,
    Ordered,
    RequiredWhen,
    Rule,
)

__all__ = [
    "CATALOG",
    "TIMESTAMPTZ",
    "Bound",
    "Catalog",
    "Column",
    "ExactlyOne",
    "ForeignKey",
    "Index",
    "Matches",
    "NullExactlyWhen",
    "OneOf",
    "Ordered",
    "RequiredWhen",
    "Rule",
    "Table",
    "Unique",
]
