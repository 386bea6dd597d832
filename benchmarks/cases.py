"""The cases: each pairs what the project does with a baseline over the same rows, same run."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import duckdb
import ibis
import ibis.expr.types as ir
import pyarrow as pa
from ibis.backends.duckdb import Backend as DuckDBBackend
from sqlglot import exp

from benchmarks.archive import EtlArchiveEntries
from benchmarks.cli_startup import CliStartup
from benchmarks.data import DOCUMENTS, RUNS, insert_from, insert_runs
from benchmarks.databases import Databases
from benchmarks.etl import EtlIngest
from benchmarks.git import GitCache, GitResolveLatency, GitResolveLoop, GitResolveMany, GitSync
from benchmarks.git_resync import GitResyncForcePush
from benchmarks.harness import Benchmark, require, timed
from benchmarks.migrations import MigrateFromEmpty, MigrateNoop
from benchmarks.runner import RunnerRun
from benchmarks.services import CacheEvict, CacheHit, TasksClaim, TasksEnqueueMany
from benchmarks.sql_checks import ROWS, violation_labels, violation_sql
from benchmarks.storage import DocumentsPostsByAuthor, WriteMessagesValidated
from benchmarks.workers import RunWorkers
from benchmarks.writes import ClaimComplete, EnqueueOne, RunStart, WriteOneRow
from egregora.contracts.contract import contract_for
from egregora.ddl.render import catalog_statements, ident, sql_type, table_ref
from egregora.schema.catalog import CATALOG
from egregora.schema.model import Table

SOURCE = "documents_source"  # the Arrow table, as DuckDB sees it once registered


def _load(con: duckdb.DuckDBPyConnection, target: str, data: pa.Table) -> None:
    """INSERT ... SELECT every row of ``data`` into ``target`` (columns by name)."""
    con.register(SOURCE, data)
    try:
        con.execute(insert_from(target, SOURCE, tuple(data.column_names)))
    finally:
        con.unregister(SOURCE)


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    row = con.execute(
        exp.select(exp.Count(this=exp.Star())).from_(table_ref(table)).sql(dialect="duckdb")
    ).fetchone()
    assert row is not None
    return int(row[0])


class ContractDocuments(Benchmark):
    """``contract_for("documents").validate(t)`` against one hand-written aggregate query."""

    name = "contract_documents"
    baseline = "one_sql_query"
    note = (
        "Both read the same in-memory DuckDB table (documents' columns, all nullable, no "
        "constraints). Case: the project's pandera.ibis contract (column dtypes, NOT NULL, "
        "every rule, the primary key and the (doc_type, slug) key; no foreign key, since no "
        "parents are passed) plus its row count. Baseline: ONE SELECT built with sqlglot from "
        "the same declarations counting, per check, NULLs in NOT NULL columns, rows where each "
        "rule is FALSE, and COUNT(*) - COUNT(DISTINCT key) for both keys; it checks no dtypes "
        "and finds no example rows. Extra query_without_keys: the same SELECT without the two "
        "key counts."
    )
    duckdb_only = (
        "both sides read an in-memory DuckDB table (the contract's pandera.ibis checks and the "
        "one aggregate query); no stored database is involved"
    )

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        super().__init__(data.num_rows)
        self.data = data
        self.contract = contract_for(DOCUMENTS.name)
        self.sql = violation_sql(DOCUMENTS)
        self.rules_sql = violation_sql(DOCUMENTS, keys=False)
        self.backend: DuckDBBackend | None = None
        self.table: ir.Table | None = None

    def prepare(self) -> None:
        backend: DuckDBBackend = ibis.duckdb.connect(":memory:")
        schema = ibis.schema({c.name: c.dtype.copy(nullable=True) for c in DOCUMENTS.columns})
        backend.create_table(DOCUMENTS.name, schema=schema)
        _load(backend.con, DOCUMENTS.name, self.data)
        self.backend, self.table = backend, backend.table(DOCUMENTS.name)

        # Both sides must take the valid-data path before anything is timed.
        report = self.contract.validate(self.table)
        require(report.ok and report.rows == self.rows, f"the contract says:\n{report}")
        counts = self._violations()
        broken = {label: n for label, n in counts.items() if label != ROWS and n}
        require(counts[ROWS] == self.rows, f"the baseline query counts {counts[ROWS]} rows")
        require(not broken, f"the baseline query finds violations: {broken}")

    def _violations(self, *, keys: bool = True) -> dict[str, int]:
        assert self.backend is not None
        row = self.backend.con.execute(self.sql if keys else self.rules_sql).fetchone()
        assert row is not None
        labels = (ROWS, *violation_labels(DOCUMENTS, keys=keys))
        return dict(zip(labels, map(int, row), strict=True))

    def time_case(self) -> float:
        table = self.table
        assert table is not None
        return timed(lambda: self.contract.validate(table))

    def time_baseline(self) -> float:
        return timed(self._violations)

    def time_extras(self) -> dict[str, float]:
        """The baseline without its two COUNT(DISTINCT ...) key checks: rules and NOT NULL."""
        return {"query_without_keys": timed(lambda: self._violations(keys=False))}

    def close(self) -> None:
        if self.backend is not None:
            self.backend.disconnect()
        self.backend = self.table = None


def _bare_table(table: Table) -> str:
    """CREATE TABLE with ``table``'s columns and types and nothing else (no NOT NULL either)."""
    columns = [
        exp.ColumnDef(this=ident(c.name), kind=sql_type(c.dtype, "duckdb")) for c in table.columns
    ]
    create = exp.Create(
        kind="TABLE", this=exp.Schema(this=table_ref(table.name), expressions=columns)
    )
    return create.sql(dialect="duckdb")


class InsertDocumentsConstrained(Benchmark):
    """INSERT ... SELECT from Arrow into the catalog's documents table vs a bare table."""

    name = "insert_documents_constrained"
    baseline = "insert_documents_bare"
    note = (
        "A fresh file-backed DuckDB in a temp dir per repetition; the timing covers the one "
        "autocommitted INSERT ... SELECT from the registered Arrow table (schema creation, the "
        "runs rows and closing the database are outside it). Case: the catalog's documents "
        "(PRIMARY KEY, UNIQUE (doc_type, slug), NOT NULL, every CHECK, FOREIGN KEY to runs, "
        "the DuckDB indexes on subject_uuid and filename). Baseline: the same columns and types "
        "with no constraint or index."
    )
    duckdb_only = (
        "it measures what DuckDB's own constraints and indexes cost one INSERT ... SELECT "
        "from a registered Arrow table, which PostgreSQL cannot scan"
    )

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        super().__init__(data.num_rows)
        self.data = data
        self.insert = insert_from(DOCUMENTS.name, SOURCE, DOCUMENTS.column_names)
        self.constrained = catalog_statements(CATALOG, "duckdb", tables=(RUNS.name, DOCUMENTS.name))
        self.bare = [_bare_table(DOCUMENTS)]
        self.root: Path | None = None
        self.databases = 0

    def prepare(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="egregora-bench-"))
        # Every row must land in the constrained table before anything is timed (an invalid
        # row would raise here); this also warms DuckDB up. Each repetition re-counts the rows.
        self._time_insert(constrained=True)

    def _time_insert(self, *, constrained: bool) -> float:
        assert self.root is not None
        self.databases += 1
        folder = self.root / f"db{self.databases}"
        folder.mkdir()
        con = duckdb.connect(str(folder / "bench.duckdb"))
        try:
            for statement in self.constrained if constrained else self.bare:
                con.execute(statement)
            if constrained:
                insert_runs(con)
            con.register(SOURCE, self.data)
            seconds = timed(lambda: con.execute(self.insert))
            count = _count(con, DOCUMENTS.name)
            require(count == self.rows, f"inserted {count} rows, wanted {self.rows}")
        finally:
            con.close()
            shutil.rmtree(folder)
        return seconds

    def time_case(self) -> float:
        return self._time_insert(constrained=True)

    def time_baseline(self) -> float:
        return self._time_insert(constrained=False)

    def close(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
        self.root = None


# Each case by name, built from the generated rows and the databases it may make (one
# ``Databases`` per case, of the engine --db names; a case with ``duckdb_only`` ignores it).
CASES: dict[str, Callable[[pa.Table, Databases], Benchmark]] = {
    ContractDocuments.name: ContractDocuments,
    InsertDocumentsConstrained.name: InsertDocumentsConstrained,
    MigrateNoop.name: MigrateNoop,
    MigrateFromEmpty.name: MigrateFromEmpty,
    WriteMessagesValidated.name: WriteMessagesValidated,
    DocumentsPostsByAuthor.name: DocumentsPostsByAuthor,
    GitSync.name: GitSync,
    GitResolveMany.name: GitResolveMany,
    GitResolveLoop.name: GitResolveLoop,
    GitResolveLatency.name: GitResolveLatency,
    GitCache.name: GitCache,
    GitResyncForcePush.name: GitResyncForcePush,
    TasksEnqueueMany.name: TasksEnqueueMany,
    TasksClaim.name: TasksClaim,
    CacheHit.name: CacheHit,
    CacheEvict.name: CacheEvict,
    WriteOneRow.name: WriteOneRow,
    RunStart.name: RunStart,
    EnqueueOne.name: EnqueueOne,
    ClaimComplete.name: ClaimComplete,
    EtlIngest.name: EtlIngest,
    RunnerRun.name: RunnerRun,
    RunWorkers.name: RunWorkers,
    EtlArchiveEntries.name: EtlArchiveEntries,
    CliStartup.name: CliStartup,
}
