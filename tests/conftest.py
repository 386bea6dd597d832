"""Fixtures: databases at the catalog's schema, in memory or on disk, and PostgreSQL when named."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import ibis
import psycopg
import pytest
from ibis.backends.duckdb import Backend as DuckDBBackend
from psycopg import sql as pgsql

from egregora.schema.catalog import CATALOG
from egregora.storage import DatabaseURL, Storage
from tests.samples import valid_rows
from tests.support import copy_database, create_schema, insert_rows

POSTGRES_ENV = "EGREGORA_TEST_POSTGRES_URL"


@pytest.fixture
def backend() -> Iterator[DuckDBBackend]:
    """An in-memory DuckDB (through Ibis) holding the catalog's empty tables."""
    con = ibis.duckdb.connect(":memory:")
    create_schema(con.con)
    yield con
    con.disconnect()


@pytest.fixture
def filled(backend: DuckDBBackend) -> DuckDBBackend:
    """The same database holding every valid sample row."""
    for table in CATALOG:
        insert_rows(backend.con, table.name, valid_rows()[table.name])
    return backend


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "egregora.duckdb"


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set: no PostgreSQL server to run against")
    return url


@pytest.fixture(scope="session")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty database at the latest schema, made once per session; tests copy it with
    ``support.copy_database`` (migrating is slow), never write to it."""
    path = tmp_path_factory.mktemp("template") / "empty.duckdb"
    with Storage.open(str(path)) as store:
        store.ensure_schema()
    return path


@pytest.fixture(scope="session")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder after one `egregora demo` in it: the sample export, egregora.duckdb (and its
    media/ folder) and site/. Made once per session; tests read it or copy it, never write."""
    from typer.testing import CliRunner

    from egregora.cli.app import app

    folder = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(app, ["demo", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(params=["duckdb", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseURL:
    """An empty database on each engine (PostgreSQL: a fresh schema, dropped afterwards)."""
    if request.param == "duckdb":
        return DatabaseURL.parse(str(tmp_path / "egregora.duckdb"))
    pg: DatabaseURL = request.getfixturevalue("pg_url")
    return pg


@pytest.fixture
def any_store(url: DatabaseURL, empty_db: Path) -> Iterator[Storage]:
    """An empty store at the latest schema on each engine (behaviour tests of the services)."""
    if url.path is not None:
        copy_database(empty_db, url.path)
    with Storage.open(url.dsn or str(url.path)) as opened:
        opened.ensure_schema()
        yield opened


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[DatabaseURL]:
    """An empty PostgreSQL database: a fresh schema on the test server, dropped afterwards."""
    server = postgres_url
    schema = f"egregora_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as con:
        con.execute(pgsql.SQL("CREATE SCHEMA {}").format(pgsql.Identifier(schema)))
        separator = "&" if "?" in server else "?"
        try:
            yield DatabaseURL.parse(
                f"{server}{separator}options={quote(f'-csearch_path={schema}')}"
            )
        finally:
            con.execute(pgsql.SQL("DROP SCHEMA {} CASCADE").format(pgsql.Identifier(schema)))
