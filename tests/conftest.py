"""Fixtures: databases at the catalog's schema, in memory or on disk, and PostgreSQL when named."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import ibis
import psycopg
import pytest
from ibis.backends.duckdb import Backend as DuckDBBackend
from psycopg import sql as pgsql
from typer.testing import CliRunner, Result

from egregora.cli.app import app
from egregora.schema.catalog import CATALOG
from egregora.storage import DatabaseURL, Storage
from tests.samples import valid_rows
from tests.support import copy_database, create_schema, db_arg, insert_rows

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
    folder = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(app, ["demo", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    return folder


ENGINES = ("duckdb", "postgres")


class Databases:
    """Makes empty databases at the latest schema on either engine: DuckDB files copied from the
    session's template, PostgreSQL schemas on the test server (dropped when the session ends)."""

    def __init__(self, root: Path, template: Path, server: str | None) -> None:
        self.root, self.template, self.server = root, template, server
        self.schemas: list[str] = []

    def new(self, engine: str, *, migrated: bool = True) -> DatabaseURL:
        """A fresh database on ``engine`` ("duckdb" or "postgres"), at the latest schema unless
        ``migrated`` is false (then empty: no tables and no pseudonym key yet)."""
        if engine == "duckdb":
            path = Path(tempfile.mkdtemp(dir=self.root)) / "egregora.duckdb"
            if migrated:
                copy_database(self.template, path)
            return DatabaseURL.parse(str(path))
        if self.server is None:
            pytest.skip(f"{POSTGRES_ENV} is not set: no PostgreSQL server to run against")
        schema = f"egregora_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.server, autocommit=True) as con:
            con.execute(pgsql.SQL("CREATE SCHEMA {}").format(pgsql.Identifier(schema)))
        self.schemas.append(schema)
        separator = "&" if "?" in self.server else "?"
        url = DatabaseURL.parse(
            f"{self.server}{separator}options={quote(f'-csearch_path={schema}')}"
        )
        if migrated:
            with Storage.open(db_arg(url)) as store:
                store.ensure_schema()
        return url

    def drop(self) -> None:
        if self.server is None or not self.schemas:
            return
        with psycopg.connect(self.server, autocommit=True) as con:
            for schema in self.schemas:
                con.execute(pgsql.SQL("DROP SCHEMA {} CASCADE").format(pgsql.Identifier(schema)))


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory, empty_db: Path) -> Iterator[Databases]:
    made = Databases(tmp_path_factory.mktemp("databases"), empty_db, os.environ.get(POSTGRES_ENV))
    yield made
    made.drop()


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each engine, once per module (for module-scoped databases); PostgreSQL skips with the
    reason when no server is named."""
    if request.param == "postgres" and not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"{POSTGRES_ENV} is not set: no PostgreSQL server to run against")
    return str(request.param)


@dataclass(frozen=True)
class Demo:
    """A folder after one ``egregora demo`` in it (the sample export, media/ and site/) and the
    database it wrote (``db``: its ``--db`` value)."""

    folder: Path
    db: str
    engine: str

    def invoke(self, *args: str) -> Result:
        """``egregora demo FOLDER --db DB ARGS`` once more."""
        return CliRunner().invoke(app, ["demo", str(self.folder), "--db", self.db, *args])


def make_demo(folder: Path, db: str, engine: str) -> Demo:
    demo = Demo(folder, db, engine)
    result = demo.invoke("--json")
    assert result.exit_code == 0, result.output
    return demo


@pytest.fixture(scope="session", params=ENGINES)
def demo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, databases: Databases
) -> Demo:
    """``egregora demo`` once per session on each engine; tests read it, never write to it."""
    folder, engine = tmp_path_factory.mktemp("demo"), str(request.param)
    if engine == "duckdb":
        return make_demo(folder, str(folder / "egregora.duckdb"), engine)
    return make_demo(folder, db_arg(databases.new(engine, migrated=False)), engine)


@pytest.fixture
def demo_copy(demo: Demo, tmp_path: Path, databases: Databases) -> Demo:
    """A demo of this test's own on the same engine: a copy of the session's DuckDB folder, or
    a fresh demo on PostgreSQL (a server's database is not a file to copy)."""
    folder = tmp_path / "demo"
    if demo.engine == "duckdb":
        shutil.copytree(demo.folder, folder)
        return Demo(folder, str(folder / "egregora.duckdb"), demo.engine)
    return make_demo(folder, db_arg(databases.new(demo.engine, migrated=False)), demo.engine)


@pytest.fixture(params=ENGINES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseURL:
    """An empty database on each engine (PostgreSQL: a fresh schema, dropped afterwards)."""
    if request.param == "duckdb":
        return DatabaseURL.parse(str(tmp_path / "egregora.duckdb"))
    pg: DatabaseURL = request.getfixturevalue("pg_url")
    return pg


@dataclass(frozen=True)
class Place:
    """A database and the folder its files (media) are kept in; ``str()`` is its ``--db``."""

    url: DatabaseURL
    files: Path

    def __str__(self) -> str:
        return db_arg(self.url)


@pytest.fixture(params=ENGINES)
def new_place(
    request: pytest.FixtureRequest,
    databases: Databases,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[], Place]:
    """Makes fresh databases at the latest schema, each test once per engine. The test runs in
    its own folder, where a server's database keeps its files (``./.egregora``)."""
    monkeypatch.chdir(tmp_path)

    def make() -> Place:
        url = databases.new(str(request.param))
        assert url.files_folder is not None
        return Place(url, url.files_folder.resolve())

    return make


@pytest.fixture
def place(new_place: Callable[[], Place]) -> Place:
    """A fresh database at the latest schema on each engine, and its files' folder."""
    return new_place()


@pytest.fixture(params=ENGINES)
def new_url(request: pytest.FixtureRequest, databases: Databases) -> Callable[[], DatabaseURL]:
    """Makes fresh databases at the latest schema, each test once per engine."""
    return lambda: databases.new(str(request.param))


@pytest.fixture
def any_store(url: DatabaseURL, empty_db: Path) -> Iterator[Storage]:
    """An empty store at the latest schema on each engine (behaviour tests of the services)."""
    if url.path is not None:
        copy_database(empty_db, url.path)
    with Storage.open(db_arg(url)) as opened:
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
