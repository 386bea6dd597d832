"""A stable hash of a live schema, whatever order its tables and indexes were made in."""

from __future__ import annotations

import hashlib
import json

from egregora.ddl.introspect import LiveSchema


def fingerprint(schema: LiveSchema) -> str:
    """SHA-256 over tables, columns, types, nullability, defaults, constraints, indexes.

    Constraint names are left out: DuckDB generates them from columns, so they add nothing and
    would differ between backends. Columns count by name, not position: PostgreSQL's ADD COLUMN
    appends, so a migrated table and a fresh one may order the same columns differently.
    """
    canonical = {
        name: {
            "columns": sorted([c.name, c.data_type, c.nullable, c.default] for c in table.columns),
            "constraints": sorted(json.dumps(c.identity, default=str) for c in table.constraints),
            "indexes": sorted([i.name, i.expressions, i.unique] for i in table.indexes),
        }
        for name, table in schema.items()
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
