"""The validated batch write: to Arrow, staged with the catalog's types, judged by the table's
contract (plus the keys already stored), then inserted or upserted in one transaction.

Any failure leaves the database as it was and raises ContractViolation with a readable report
(the rules broken, how many rows broke each, their keys).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Literal

import ibis
import ibis.expr.types as ir
from sqlglot import exp

from egregora.contracts.contract import contract_for
from egregora.contracts.report import ContractReport, RuleFailure
from egregora.ddl.render import table_ref
from egregora.errors import ConfigurationError, ContractViolation
from egregora.schema.catalog import CATALOG
from egregora.schema.model import Table
from egregora.storage import staging
from egregora.storage.batch_sql import insert, same
from egregora.storage.staging import Staged, drop, refuse, to_arrow
from egregora.storage.upsert import upsert

if TYPE_CHECKING:
    from egregora.storage.store import Storage

Mode = Literal["append", "upsert"]
EXAMPLES = 5


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
    # A staged copy lives in the database for the whole check; on an engine that receives it
    # by COPY it must not outlive a refusal, so the check runs inside the write's transaction.
    with store.transaction():
        staged, failures = staging.stage(store, declared, arrow, editable=mode == "upsert")
        try:
            batch = store.ibis.table(staged.name)
            if not failures:
                report = contract_for(name).validate(
                    batch, parents=_parents(store, declared, batch), max_examples=EXAMPLES
                )
                failures += report.failures
            if not failures:
                failures += _key_conflicts(store, declared, staged, mode)
            refuse(declared, staged.rows, failures)
            try:
                written = _store(store, declared, staged, mode)
            except Exception as exc:
                if store.engine.is_constraint_error(exc):
                    raise ContractViolation(_database_report(declared, staged, exc)) from exc
                if store.engine.is_driver_error(exc):
                    raise store.failed(f"writing {name}", "written", exc) from exc
                raise
        except BaseException:
            # The write is failing: the transaction's rollback takes the staged relation with
            # it, and an engine whose failed statement aborted the transaction refuses the DROP.
            with contextlib.suppress(Exception):
                drop(store, staged)
            raise
        drop(store, staged)
        return written


def declared_table(name: str) -> Table:
    try:
        return CATALOG[name]
    except KeyError as exc:
        raise ConfigurationError(str(exc.args[0])) from None


def _parents(store: Storage, table: Table, batch: ir.Table) -> dict[str, ir.Table]:
    parents: dict[str, ir.Table] = {}
    for fk in table.foreign_keys:
        live = store.table(fk.references)
        if fk.references == table.name:  # a row may name a parent of the same batch
            ref = fk.ref_column
            nullable = table.column(ref).dtype.copy(nullable=True)
            live = ibis.union(
                live.select(live[ref].cast(nullable).name(ref)),
                batch.select(batch[ref].cast(nullable).name(ref)),
                distinct=True,
            )
        parents[fk.references] = live
    return parents


def _key_conflicts(store: Storage, table: Table, staged: Staged, mode: Mode) -> list[RuleFailure]:
    """Keys of the batch that rows already in the table hold."""
    failures = []
    for key in table.keys:
        is_pkey = key.columns == table.primary_key
        if is_pkey and mode == "upsert":
            continue
        where = same(key.columns, "s", "t")
        if mode == "upsert":  # a stored row the batch replaces gives its keys up
            where = exp.and_(where, exp.Not(this=same(table.primary_key, "s", "t")))
            replaced = exp.Exists(
                this=exp.select("1")
                .from_(exp.alias_(table_ref(staged.name), "r"))
                .where(same(table.primary_key, "r", "t"))
            )
            where = exp.and_(where, exp.Not(this=replaced))
        shown = list(dict.fromkeys([*table.primary_key, *key.columns]))
        query = (
            exp.select(*[exp.column(c, table="s", quoted=True) for c in shown])
            .from_(exp.alias_(table_ref(staged.name), "s"))
            .join(exp.alias_(table_ref(table.name), "t"), on=where)
        )
        rows = store.run(query)
        if rows:
            what = "key" if is_pkey else f"({', '.join(key.columns)})"
            hint = " (write with mode='upsert' to replace those rows)" if is_pkey else ""
            failures.append(
                RuleFailure(
                    key.name,
                    f"{what} already held by a row of {table.name}{hint}",
                    len(rows),
                    tuple(dict(zip(shown, r, strict=True)) for r in rows[:EXAMPLES]),
                )
            )
    return failures


def _store(store: Storage, table: Table, staged: Staged, mode: Mode) -> int:
    if mode == "append":
        insert(store, table, staged.name)
        return staged.rows
    return upsert(store, table, staged)


def _database_report(table: Table, staged: Staged, exc: BaseException) -> ContractReport:
    message = " ".join(str(exc).split())
    return ContractReport(
        table.name,
        staged.rows,
        (RuleFailure("database", f"the database refused the batch: {message}", None),),
    )
