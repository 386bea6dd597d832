"""Fresh stores at the latest schema for tests: a DuckDB file, or a schema of its own on a
PostgreSQL server, dropped afterwards."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from sqlglot import exp

from egregora.storage import DatabaseURL, Storage, migrate_database

SCHEMA_PREFIX = "egregora_t_"  # a test's schema on a PostgreSQL server


def migrated_duckdb(path: Path) -> Path:
    """A DuckDB file at ``path`` migrated to the latest schema (a template to copy)."""
    migrate_database(DatabaseURL.parse(str(path)))
    return path


@contextmanager
def fresh_store(
    folder: Path, server: str | None = None, template: Path | None = None
) -> Iterator[Storage]:
    """A store at the latest schema, open for the block: on PostgreSQL ``server`` a new schema
    (dropped after the block), else ``folder/egregora.duckdb`` (a copy of ``template``, an
    already migrated file, when given: migrating takes longer than copying)."""
    if server is None:
        path = folder / "egregora.duckdb"
        if template is not None:
            shutil.copyfile(template, path)
        with Storage.open(str(path)) as store:
            store.ensure_schema()
            yield store
        return
    import psycopg

    schema = f"{SCHEMA_PREFIX}{uuid.uuid4().hex[:12]}"
    named = exp.Table(this=exp.to_identifier(schema, quoted=True))
    with psycopg.connect(server, autocommit=True) as con:
        con.execute(exp.Create(this=named.copy(), kind="SCHEMA").sql(dialect="postgres"))
        try:
            separator = "&" if "?" in server else "?"
            url = f"{server}{separator}options={quote(f'-csearch_path={schema}')}"
            with Storage.open(url) as store:
                store.ensure_schema()
                yield store
        finally:
            dropped = exp.Drop(this=named.copy(), kind="SCHEMA", cascade=True)
            con.execute(dropped.sql(dialect="postgres"))
