"""Migration cases: the no-op migrate on an up-to-date database, and migrating an empty one."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa

from benchmarks.databases import Databases
from benchmarks.harness import Benchmark, require, timed
from egregora.ddl.render import catalog_statements
from egregora.migrations import DuckDBExecutor, migrate, shipped_migrations
from egregora.migrations.ledger import read_ledger
from egregora.schema.catalog import CATALOG

NOOP_GOAL_S = 0.050


class MigrateNoop(Benchmark):
    """``migrate`` on a file-backed database already at head, connection open (in-process)."""

    name = "migrate_noop"
    baseline = "read_ledger"
    note = (
        "Case: migrate() on a file-backed DuckDB already at head: read the ledger, check every "
        "applied migration's checksum, find nothing pending. Baseline: the one ledger query a "
        f"no-op cannot avoid. Goal: the case under {NOOP_GOAL_S * 1000:.0f} ms."
    )
    duckdb_only = (
        "it times migrate() on a DuckDB file through DuckDBExecutor, against the one ledger "
        "query DuckDB runs"
    )

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        super().__init__(len(CATALOG))
        self.root: Path | None = None
        self.con: duckdb.DuckDBPyConnection | None = None

    def prepare(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="egregora-bench-"))
        self.con = duckdb.connect(str(self.root / "noop.duckdb"))
        migrate(DuckDBExecutor(self.con))
        result = migrate(DuckDBExecutor(self.con))
        require(result.applied == (), "the second migrate applied something")

    def time_case(self) -> float:
        assert self.con is not None
        executor = DuckDBExecutor(self.con)
        return timed(lambda: migrate(executor))

    def time_baseline(self) -> float:
        assert self.con is not None
        executor = DuckDBExecutor(self.con)
        return timed(lambda: read_ledger(executor))

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)


class MigrateFromEmpty(Benchmark):
    """Every migration from an empty file-backed database, against the head DDL run directly."""

    name = "migrate_from_empty"
    baseline = "head_ddl_once"
    note = (
        "A fresh file-backed DuckDB per repetition. Case: migrate() from empty to head (each "
        "migration in its own transaction with its ledger row, 0002 rebuilding the empty "
        "documents and annotations). Baseline: the head catalog's CREATE statements in one "
        "transaction, with no ledger and no history."
    )
    duckdb_only = (
        "it times migrate() on new DuckDB files through DuckDBExecutor, against DuckDB's "
        "rendering of the head DDL"
    )

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        super().__init__(len(CATALOG))
        self.root: Path | None = None
        self.count = 0

    def prepare(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="egregora-bench-"))
        require(len(shipped_migrations()) > 0, "no migrations shipped")

    def _fresh(self) -> duckdb.DuckDBPyConnection:
        assert self.root is not None
        self.count += 1
        return duckdb.connect(str(self.root / f"db{self.count}.duckdb"))

    def time_case(self) -> float:
        con = self._fresh()
        try:
            seconds = timed(lambda: migrate(DuckDBExecutor(con)))
            applied = con.execute("SELECT count(*) FROM schema_migrations").fetchone()
            require(applied == (len(shipped_migrations()),), "not every migration applied")
        finally:
            con.close()
        return seconds

    def time_baseline(self) -> float:
        con = self._fresh()
        statements = catalog_statements(CATALOG, "duckdb")

        def create() -> None:
            con.execute("BEGIN TRANSACTION")
            for statement in statements:
                con.execute(statement)
            con.execute("COMMIT")

        try:
            return timed(create)
        finally:
            con.close()

    def close(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
