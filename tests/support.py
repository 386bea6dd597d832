"""Helpers shared by the tests: create the schema, insert rows with bound parameters, stage data."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import ibis.expr.types as ir
import pytest
from ibis.backends.duckdb import Backend as DuckDBBackend

from egregora.ddl.render import Dialect, catalog_statements
from egregora.ddl.statements import insert_values
from egregora.schema.catalog import CATALOG
from egregora.schema.model import Catalog, Table
from egregora.storage import DatabaseURL

_staged = itertools.count()


def create_schema(con: duckdb.DuckDBPyConnection, catalog: Catalog = CATALOG) -> None:
    for statement in catalog_statements(catalog, "duckdb"):
        con.execute(statement)


def insert_sql(table: str, columns: Iterable[str], dialect: Dialect = "duckdb") -> str:
    """INSERT INTO "table" ("a", "b") VALUES (?, ?), identifiers quoted by sqlglot."""
    return insert_values(table, list(columns), dialect)


def insert_rows(
    con: duckdb.DuckDBPyConnection, table: str, rows: Iterable[Mapping[str, Any]]
) -> None:
    """Insert each row with bound parameters (one statement per row, columns as given)."""
    for row in rows:
        con.execute(insert_sql(table, row.keys()), list(row.values()))


def stage(backend: DuckDBBackend, table: Table, rows: list[dict[str, Any]]) -> ir.Table:
    """A temporary table with ``table``'s columns (all nullable, no constraints) holding ``rows``.

    This is data as it arrives before any check: the contract is what judges it.
    """
    name = f"_stage_{table.name}_{next(_staged)}"
    schema = {c.name: c.dtype.copy(nullable=True) for c in table.columns}
    backend.create_table(name, schema=schema, temp=True)
    full = [{c: row.get(c) for c in table.column_names} for row in rows]
    insert_rows(backend.con, name, full)
    return backend.table(name)


def db_arg(url: DatabaseURL) -> str:
    """The ``--db`` value that opens ``url`` again (a PostgreSQL URL with its secrets)."""
    return str(url.dsn or url.path)


def copy_database(source: Path, target: Path) -> Path:
    """Copy a DuckDB file (and its write-ahead log, if any) to ``target``; return ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", ".wal"):
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")
    return target


class FakeClock:
    """A clock the test moves by hand: calling it gives ``now``, which stands still until
    ``advance`` (or an assignment) moves it. Services take it as their ``clock``."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> datetime:
        self.now += by
        return self.now


# A pseudonym key for tests that compare databases: given to both, their pseudonyms agree.
SHARED_KEY = "5eed" * 16


def mkdocs_build(site: Path, out: Path) -> list[Path]:
    """``mkdocs build --strict`` of a written site (a broken link fails it); its HTML pages."""
    config = str(site / "mkdocs.yml")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", config, "-d", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return sorted(out.rglob("*.html"))


@contextmanager
def mounted_tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted with ``options`` (``size=32m``, ``ro,size=1m``) on the folder ``where``
    for the block, to make a disk full or read-only for real; unmounted afterwards. Skips the
    test with the reason where mounting is not permitted (it needs root)."""
    import pytest

    where.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command here: a tmpfs is needed to make a disk full or read-only")
    args = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = done.stderr.strip() or f"exit {done.returncode}"
        pytest.skip(f"mounting a tmpfs is not permitted here ({reason}); it needs root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "--lazy", str(where)], check=True)


def egregora_process(
    *args: str, cwd: Path | None = None, timeout: float = 300, umask: int | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m egregora ARGS`` as a process of its own, to its end (any exit code); with
    ``umask``, the process runs under it, as a shell that set it would start it."""
    return subprocess.run(
        [sys.executable, "-m", "egregora", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        check=False,
        preexec_fn=None if umask is None else (lambda: os.umask(umask) and None),
    )


class ScriptError(Exception):
    """A printed SQL script stopped with an error; the message is the engine's."""


def run_script(url: DatabaseURL, script: str) -> None:
    """Run ``script`` as the engine's own shell would (psql stops at the first error); an
    error raises ScriptError with the engine's message."""
    if url.dsn is None:
        con = duckdb.connect(str(url.path))
        try:
            con.execute(script)
        except duckdb.Error as exc:
            raise ScriptError(str(exc)) from exc
        finally:
            con.close()  # a transaction the error left open is rolled back
        return
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql is not installed: cannot run the printed script as psql would")
    done = subprocess.run(
        [psql, url.dsn, "-v", "ON_ERROR_STOP=1", "-q", "-f", "-"],
        input=script,
        text=True,
        check=False,
        capture_output=True,
    )
    if done.returncode != 0:
        raise ScriptError(done.stderr)
