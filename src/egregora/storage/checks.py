"""A staged batch judged in one statement: the table's contract, and the keys stored rows hold.

Every rule of the table's Pandera contract (``contracts.contract``) becomes one count in one
SELECT over the staged batch: NOT NULL columns, row rules (their SQL, with SQL CHECK semantics:
NULL passes), keys repeated within the batch, foreign keys (against the stored parents, and the
batch itself for a self-reference), and, for the write, keys of the batch that stored rows already
hold. Pandera builds and runs one query per check; this is one query for all of them, built once
per table. Only when a count is not zero are the offending rows read, by the contract's own
report lines (:meth:`Contract.failure`), so a refusal reads exactly as the contract's report.
``tests/test_write_checks.py`` proves the two verdicts and reports the same over generated
batches, valid and broken by every rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Literal

import ibis
import ibis.expr.types as ir
from sqlglot import exp

from egregora.contracts.report import RuleFailure, not_null_rule
from egregora.ddl.render import Dialect, table_ref
from egregora.schema.model import ForeignKey, Table, Unique
from egregora.storage.batch_sql import key_of, same

if TYPE_CHECKING:
    from egregora.storage.staging import Staged
    from egregora.storage.store import Storage

Mode = Literal["append", "upsert"]
EXAMPLES = 5
# The staged batch in the compiled statement: a quoted name no catalog table or column takes,
# replaced by the staged relation's quoted name when the statement runs.
BATCH = "_egregora_batch_"


@dataclass(frozen=True)
class Count:
    """One rule counted over the batch: the contract's name for it, and the rows breaking it."""

    rule: str
    expression: exp.Expr
    stored: bool = False  # a key stored rows hold: the write's own rule, not the contract's


def _count_where(condition: exp.Expr) -> exp.Expr:
    """Rows for which ``condition`` is TRUE (NULL is not counted), zero for no rows."""
    return exp.Count(this=exp.Case(ifs=[exp.If(this=condition, true=exp.Literal.number(1))]))


def _col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def _repeated(unique: Unique) -> exp.Expr:
    """Rows of the batch whose key (all parts set) another row of the batch holds."""
    names = unique.columns
    repeated = (
        exp.select(*[_col(c) for c in names])
        .from_(table_ref(BATCH))
        .where(
            exp.and_(*[exp.Not(this=exp.Is(this=_col(c), expression=exp.Null())) for c in names])
        )
        .group_by(*[_col(c) for c in names])
        .having(exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(1)))
    )
    counted = (
        exp.select(exp.Count(this=exp.Star()))
        .from_(exp.alias_(table_ref(BATCH), "d"))
        .where(exp.In(this=key_of(names, "d"), query=exp.Subquery(this=repeated)))
    )
    return exp.Subquery(this=counted)


def _dangling(table: Table, fk: ForeignKey) -> exp.Expr:
    """Rows whose reference is set and names no parent (stored, or in the batch when the table
    refers to itself): the contract's ``column IS NULL OR column IN (parents)``, found FALSE."""
    parents: exp.Expr = exp.select(_col(fk.ref_column)).from_(table_ref(fk.references))
    if fk.references == table.name:
        batch = exp.select(_col(fk.ref_column)).from_(table_ref(BATCH))
        parents = exp.union(parents, batch, distinct=True)
    held = exp.or_(
        exp.Is(this=_col(fk.column), expression=exp.Null()),
        exp.In(this=_col(fk.column), query=exp.Subquery(this=parents)),
    )
    return _count_where(exp.Not(this=exp.paren(held)))


def _conflicts(table: Table, unique: Unique, mode: Mode, batch: str) -> exp.Select | None:
    """Rows of ``batch`` (as ``s``) joined to the stored rows (``t``) holding their key; in an
    upsert a stored row the batch replaces (same primary key) gives its keys up. None when the
    mode cannot conflict on this key."""
    if unique.columns == table.primary_key and mode == "upsert":
        return None
    where = same(unique.columns, "s", "t")
    if mode == "upsert":
        replaced = exp.Exists(
            this=exp.select("1")
            .from_(exp.alias_(table_ref(batch), "r"))
            .where(same(table.primary_key, "r", "t"))
        )
        where = exp.and_(
            where, exp.Not(this=same(table.primary_key, "s", "t")), exp.Not(this=replaced)
        )
    return (
        exp.select()
        .from_(exp.alias_(table_ref(batch), "s"))
        .join(exp.alias_(table_ref(table.name), "t"), on=where)
    )


@cache
def counts_of(table: Table, mode: Mode) -> tuple[Count, ...]:
    """Every count the statement makes, the contract's rules in the report's order first."""
    out = [
        Count(
            not_null_rule(table.name, c.name),
            _count_where(exp.Is(this=_col(c.name), expression=exp.Null())),
        )
        for c in table.columns
        if not c.nullable
    ]
    out += [Count(r.name, _count_where(exp.Not(this=exp.paren(r.sql())))) for r in table.rules]
    out += [Count(k.name, _repeated(k)) for k in table.keys]
    out += [Count(fk.name, _dangling(table, fk)) for fk in table.foreign_keys]
    for key in table.keys:
        joined = _conflicts(table, key, mode, BATCH)
        if joined is not None:
            counted = exp.Subquery(this=joined.select(exp.Count(this=exp.Star())))
            out.append(Count(key.name, counted, stored=True))
    return tuple(out)


@cache
def _statement(table: Table, mode: Mode, dialect: Dialect) -> str:
    counted = [exp.alias_(c.expression, f"c{i}") for i, c in enumerate(counts_of(table, mode))]
    return exp.select(*counted).from_(table_ref(BATCH)).sql(dialect=dialect)


def statement(table: Table, mode: Mode, dialect: Dialect, relation: str) -> str:
    """The one statement, counting over the staged relation named ``relation``."""
    quoted = table_ref(relation).sql(dialect=dialect)
    return _statement(table, mode, dialect).replace(table_ref(BATCH).sql(dialect=dialect), quoted)


def failures(store: Storage, table: Table, staged: Staged, mode: Mode) -> list[RuleFailure]:
    """What is wrong with the staged batch, in the contract's report order; the keys stored
    rows already hold only when the contract has nothing to say. Empty when it may be written."""
    row = store.engine.run(store.con, statement(table, mode, store.dialect, staged.name))[0]
    counted = list(zip(counts_of(table, mode), (int(n) for n in row), strict=True))
    broken = [(c.rule, n) for c, n in counted if n and not c.stored]
    if broken:
        batch = store.ibis.table(staged.name)
        found = parents(store, table, batch)
        from egregora.contracts.contract import contract_for  # pandera: only when rules broke

        contract = contract_for(table.name)
        return [
            contract.failure(batch, rule, n, parents=found, max_examples=EXAMPLES)
            for rule, n in broken
        ]
    if any(n for c, n in counted if c.stored):
        return key_conflicts(store, table, staged, mode)
    return []


def parents(store: Storage, table: Table, batch: ir.Table) -> dict[str, ir.Table]:
    """The parents the contract checks references against (for its report's examples)."""
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


def key_conflicts(store: Storage, table: Table, staged: Staged, mode: Mode) -> list[RuleFailure]:
    """Keys of the batch that rows already in the table hold, with the rows' keys."""
    found = []
    for key in table.keys:
        joined = _conflicts(table, key, mode, staged.name)
        if joined is None:
            continue
        is_pkey = key.columns == table.primary_key
        shown = list(dict.fromkeys([*table.primary_key, *key.columns]))
        columns = [_col(c, "s") for c in shown]
        rows = store.run(joined.select(*columns).order_by(*columns))
        if rows:
            what = "key" if is_pkey else f"({', '.join(key.columns)})"
            hint = " (write with mode='upsert' to replace those rows)" if is_pkey else ""
            found.append(
                RuleFailure(
                    key.name,
                    f"{what} already held by a row of {table.name}{hint}",
                    len(rows),
                    tuple(dict(zip(shown, r, strict=True)) for r in rows[:EXAMPLES]),
                )
            )
    return found
