"""Where the cases' databases live: DuckDB files in a temporary folder, or databases made on a
PostgreSQL server. One class per engine, with the same methods.

A case asks its ``Databases`` for a template (a database migrated to head and filled once by a
function of the case), for copies of it (one per repetition that changes it), or for a fresh
migrated database, and opens each through egregora's own ``Storage.open``. Every database it
made is dropped when the case ends, whether it passed or failed (``close``).

- ``DuckDBFiles``: files in a temporary folder; a copy is a file copy of a closed template.
- ``PostgresDatabases``: ``CREATE DATABASE egregora_bench_<hex>`` on the server ``--db`` names
  (the role must be allowed to create databases); a copy is ``CREATE DATABASE ... TEMPLATE``
  the template, which the server makes by copying its files, not by replaying its rows.

Whatever else differs between the engines for a case (a session setting of DuckDB's ASOF join,
how a query plan reads) is asked of the same object, so no case compares engine names.
"""

from __future__ import annotations

import atexit
import secrets
import shutil
import sys
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from egregora.backends import DatabaseURL
from egregora.errors import ConfigurationError
from egregora.storage.store import Storage

DUCKDB = "duckdb"  # the value of --db for DuckDB files (the default)
PREFIX = "egregora_bench_"  # every database made on a server is named so
# DuckDB's session setting that egregora sets to 0 on every connection (see egregora.backends.
# duckdb): an ASOF join planned as a nested loop when its left side is estimated this small.
ASOF_SETTING = "asof_loop_join_threshold"

Build = Callable[[Storage], object]


class Databases(ABC):
    """The databases one case makes: templates built once, copies, fresh migrated ones."""

    engine: ClassVar[str]  # recorded with every result: "duckdb" or "postgres"
    described: ClassVar[str]  # how the cases' notes name one of these databases

    def __init__(self) -> None:
        self._templates: dict[str, str] = {}
        self._closed = False
        atexit.register(self._close_at_exit)

    # -- what each engine does -------------------------------------------------------------
    @abstractmethod
    def _create(self) -> str:
        """A new, empty database; its location, as ``Storage.open`` takes it."""

    @abstractmethod
    def _clone(self, template: str) -> str:
        """A new database holding what the (closed) database ``template`` holds."""

    @abstractmethod
    def drop(self, location: str) -> None:
        """Remove the database at ``location`` (one this object made)."""

    @abstractmethod
    def _release(self) -> None:
        """Remove every database still there and whatever held them."""

    @abstractmethod
    def server(self) -> dict[str, Any]:
        """What the JSON records about where the databases live."""

    @abstractmethod
    def explain(self, store: Storage, sql: str) -> str:
        """The plan the engine makes for the query ``sql``, as text."""

    @staticmethod
    @abstractmethod
    def scan_kind(plan: str) -> str:
        """How ``plan`` reads its table: index scan, sequential scan (or another of the
        engine's kinds, such as PostgreSQL's bitmap index scan), or unknown scan."""

    def asof_defaults(self, store: Storage) -> AbstractContextManager[None] | None:
        """A context in which ``store`` plans an ASOF join as the engine would by default,
        without egregora's session setting; None where egregora sets nothing of the kind."""
        return None

    # -- shared by both ----------------------------------------------------------------------
    def open(self, location: str) -> Storage:
        return Storage.open(location)

    def template(self, key: str, build: Build | None = None) -> str:
        """The database ``key``: made once (migrated to head, then ``build(store)``) and
        closed, to be copied with ``copy``; later calls with the same key return it as is."""
        if key not in self._templates:
            location = self._create()
            try:
                with self.open(location) as store:
                    store.ensure_schema()
                    if build is not None:
                        build(store)
                self._sealed(location)
            except BaseException:
                self.drop(location)
                raise
            self._templates[key] = location
        return self._templates[key]

    def _sealed(self, location: str) -> None:  # noqa: B027  (optional hook)
        """Check a template, just closed, can be copied whole (nothing to check by default)."""

    def check(self) -> None:
        """Make and drop one database, so a server that refuses fails before any case runs."""
        self.drop(self._create())

    def empty(self) -> str:
        """The template of an empty database at head."""
        return self.template("empty")

    @contextmanager
    def copy(self, template: str) -> Iterator[Storage]:
        """A copy of ``template``, open; closed and dropped when the block ends."""
        location = self._clone(template)
        try:
            with self.open(location) as store:
                yield store
        finally:
            self.drop(location)

    @contextmanager
    def migrated(self) -> Iterator[Storage]:
        """A fresh database at head, open; closed and dropped when the block ends."""
        with self.copy(self.empty()) as store:
            yield store

    def close(self) -> None:
        """Drop every database made here (templates included); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._templates.clear()
        atexit.unregister(self._close_at_exit)
        self._release()

    def _close_at_exit(self) -> None:
        """The last resort, should a run end without closing (an interrupted one)."""
        try:
            self.close()
        except Exception as exc:  # at exit nothing is left to report to
            print(f"benchmarks: could not drop the {self.engine} databases: {exc}", file=sys.stderr)

    def __enter__(self) -> Databases:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class DuckDBFiles(Databases):
    """DuckDB files in a temporary folder of their own, removed with it."""

    engine = DUCKDB
    described = "file-backed DuckDB"

    def __init__(self) -> None:
        super().__init__()
        self.root: Path | None = None
        self.count = 0

    def _create(self) -> str:
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="egregora-bench-"))
        self.count += 1
        return str(self.root / f"db{self.count}.duckdb")

    def _sealed(self, location: str) -> None:
        wal = Path(location + ".wal")
        if wal.exists():
            raise RuntimeError(f"{location} left a write-ahead log; a copy would miss it")

    def _clone(self, template: str) -> str:
        location = self._create()
        shutil.copyfile(template, location)
        return location

    def drop(self, location: str) -> None:
        Path(location).unlink(missing_ok=True)
        Path(location + ".wal").unlink(missing_ok=True)

    def _release(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    @contextmanager
    def migrated(self) -> Iterator[Storage]:
        """A new file, migrated by ``store.ensure_schema()`` once opened (not a copy)."""
        location = self._create()
        try:
            with self.open(location) as store:
                store.ensure_schema()
                yield store
        finally:
            self.drop(location)

    def server(self) -> dict[str, Any]:
        import duckdb

        return {
            "engine": self.engine,
            "db": "temporary files",
            "server": f"DuckDB {duckdb.__version__}",
        }

    def explain(self, store: Storage, sql: str) -> str:
        return str(store.con.sql(sql).explain())

    @staticmethod
    def scan_kind(plan: str) -> str:
        if "INDEX_SCAN" in plan:
            return "index scan"
        if "TABLE_SCAN" in plan or "SEQ_SCAN" in plan:
            return "sequential scan"
        return "unknown scan"

    @contextmanager
    def _asof_defaults(self, store: Storage) -> Iterator[None]:
        con = store.con
        kept = int(con.execute("SELECT current_setting(?)", [ASOF_SETTING]).fetchone()[0])
        con.execute(f"RESET {ASOF_SETTING}")
        try:
            yield
        finally:
            con.execute(f"SET {ASOF_SETTING} = {kept}")

    def asof_defaults(self, store: Storage) -> AbstractContextManager[None] | None:
        return self._asof_defaults(store)


class PostgresDatabases(Databases):
    """Databases made on a PostgreSQL server, each named ``egregora_bench_<hex>``.

    One maintenance connection (to the database the URL names) creates and drops them; a
    database in use as a template must have no other session open, so templates are closed
    before they are copied. ``DROP DATABASE ... WITH (FORCE)`` ends a session a failed case
    may have left open."""

    engine = "postgres"
    described = "PostgreSQL database"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.made: list[str] = []
        self._admin: Any = None

    def _connection(self) -> Any:
        if self._admin is None:
            import psycopg

            self._admin = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        return self._admin

    def _at(self, name: str) -> str:
        """The URL of database ``name`` on the same server, as the same role."""
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path=f"/{name}"))

    def _name(self, location: str) -> str:
        return urlsplit(location).path.lstrip("/")

    def _new(self, template: str | None) -> str:
        from psycopg import sql

        name = f"{PREFIX}{secrets.token_hex(6)}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            source = sql.Identifier(self._name(template))
            statement = sql.SQL("{} TEMPLATE {}").format(statement, source)
        self._connection().execute(statement)
        self.made.append(name)
        return self._at(name)

    def _create(self) -> str:
        return self._new(None)

    def _clone(self, template: str) -> str:
        return self._new(template)

    def drop(self, location: str) -> None:
        self._drop(self._name(location))

    def _drop(self, name: str) -> None:
        from psycopg import sql

        statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        self._connection().execute(statement.format(sql.Identifier(name)))
        if name in self.made:
            self.made.remove(name)

    def _release(self) -> None:
        problems: list[str] = []
        for name in list(reversed(self.made)):
            try:
                self._drop(name)
            except Exception as exc:
                problems.append(f"{name}: {exc}")
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if problems:
            raise RuntimeError(f"could not drop {len(problems)} databases: {'; '.join(problems)}")

    def server(self) -> dict[str, Any]:
        version = self._connection().execute("SELECT version()").fetchone()[0]
        return {"engine": self.engine, "db": shown(self.url), "server": version}

    def explain(self, store: Storage, sql: str) -> str:
        rows = store.engine.run(store.con, f"EXPLAIN {sql}")  # already PostgreSQL's SQL
        return "\n".join(str(row[0]) for row in rows)

    @staticmethod
    def scan_kind(plan: str) -> str:
        if "Bitmap Index Scan" in plan:
            return "bitmap index scan"
        if "Index Scan" in plan or "Index Only Scan" in plan:
            return "index scan"
        if "Seq Scan" in plan:
            return "sequential scan"
        return "unknown scan"


def shown(db: str) -> str:
    """``--db``'s value as messages show it: any password in a server's URL hidden."""
    return db if db == DUCKDB else str(DatabaseURL.parse(db))


def databases_for(db: str) -> Callable[[], Databases]:
    """``--db``'s value as a maker of one ``Databases`` per case: ``duckdb`` for DuckDB files,
    ``postgresql://...`` (or ``postgres://...``) for a PostgreSQL server."""
    if db == DUCKDB:
        return DuckDBFiles
    try:
        server = DatabaseURL.parse(db).dsn is not None
    except ConfigurationError:
        server = False
    if server:
        return lambda: PostgresDatabases(db)
    raise ValueError(
        f"--db takes {DUCKDB} (files in a temporary folder, the default) or "
        f"postgresql://USER@HOST:PORT/DATABASE, not {db!r}"
    )
