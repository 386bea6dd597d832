"""The validated batch write: to Arrow, judged by the table's contract (plus the keys already
stored), then inserted or upserted in one statement or one transaction.

A small append of typed rows is judged as it lies and inserted with bound values (``direct``);
any other batch is staged with the catalog's types and judged in one statement (``checks``).
Any failure leaves the database as it was and raises ContractViolation with a readable report
(the rules broken, how many rows broke each, their keys), the contract's own report lines.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from egregora.contracts.report import ContractReport, RuleFailure
from egregora.errors import ConfigurationError, ContractViolation
from egregora.schema.catalog import CATALOG
from egregora.schema.model import Table
from egregora.storage import checks, direct, staging
from egregora.storage.batch_sql import insert
from egregora.storage.checks import Mode
from egregora.storage.staging import Staged, drop, refuse, to_arrow
from egregora.storage.upsert import upsert

if TYPE_CHECKING:
    from egregora.storage.store import Storage


def write_batch(store: Storage, name: str, data: Any, mode: Mode) -> int:
    """``Storage.write``: see there."""
    if mode not in ("append", "upsert"):
        raise ConfigurationError(f"mode must be 'append' or 'upsert', not {mode!r}")
    declared = declared_table(name)
    arrow = to_arrow(data, declared)
    if arrow.num_rows == 0 and arrow.num_columns == 0:
        return 0  # an empty list: nothing to write
    store.refuse_read_only()
    store.table(name)  # the table exists with the catalog's types
    # Inside a caller's transaction a refused INSERT would abort it: ask the database first.
    nested = store.in_transaction
    judged = direct.judge(store, declared, arrow, stored=nested) if mode == "append" else None
    if judged is not None:
        # One INSERT is atomic by itself; a transaction around the judgement would not keep
        # another writer from taking a key meanwhile (the database's own keys refuse it then).
        with _refused_by_database(store, declared, arrow.num_rows):
            try:
                return direct.insert(store, judged)
            except Exception as exc:
                if nested or not store.engine.is_driver_error(exc):
                    raise
                # Refused (a key stored, a parent missing, JSON the engine cannot read) and
                # nothing written: the staged way finds out which, and says so.
    with store.transaction():
        return _write_staged(store, declared, arrow, mode)


def _write_staged(store: Storage, declared: Table, arrow: Any, mode: Mode) -> int:
    """Stage the batch, judge it in one statement, write it; inside the write's transaction,
    because a staged copy an engine receives by COPY must not outlive a refusal."""
    staged, failures = staging.stage(store, declared, arrow, editable=mode == "upsert")
    try:
        if not failures:
            failures = checks.failures(store, declared, staged, mode)
        refuse(declared, staged.rows, failures)
        with _refused_by_database(store, declared, staged.rows):
            written = _store(store, declared, staged, mode)
    except BaseException:
        # The write is failing: the transaction's rollback takes the staged relation with
        # it, and an engine whose failed statement aborted the transaction refuses the DROP.
        with contextlib.suppress(Exception):
            drop(store, staged)
        raise
    drop(store, staged)
    return written


@contextlib.contextmanager
def _refused_by_database(store: Storage, table: Table, rows: int) -> Iterator[None]:
    """The database refusing rows the contract passed (a key taken meanwhile by another
    writer) becomes ContractViolation; a driver's error, DatabaseError."""
    try:
        yield
    except Exception as exc:
        if store.engine.is_constraint_error(exc):
            raise ContractViolation(_database_report(table, rows, exc)) from exc
        if store.engine.is_driver_error(exc):
            raise store.failed(f"writing {table.name}", "written", exc) from exc
        raise


def declared_table(name: str) -> Table:
    try:
        return CATALOG[name]
    except KeyError as exc:
        raise ConfigurationError(str(exc.args[0])) from None


def _store(store: Storage, table: Table, staged: Staged, mode: Mode) -> int:
    if mode == "append":
        insert(store, table, staged.name)
        return staged.rows
    return upsert(store, table, staged)


def _database_report(table: Table, rows: int, exc: BaseException) -> ContractReport:
    message = " ".join(str(exc).split())
    return ContractReport(
        table.name,
        rows,
        (RuleFailure("database", f"the database refused the batch: {message}", None),),
    )
