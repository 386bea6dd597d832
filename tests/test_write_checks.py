"""The write's own judgement agrees with the Pandera contract, on both engines.

A write judges a batch in one statement (``storage.checks``) or, for a few typed rows, as they
lie (``storage.direct``); the Pandera contract stays the reference. For every table, hypothesis
draws valid rows (their parents stored first) and breaks them by one declared rule: a NOT NULL
column, each row rule, each key repeated, each reference to no parent. On every batch the
statement's report must equal the contract's, line for line, and the direct way must call the
batch clean exactly when the contract does (where it takes the batch at all); judging without
asking the database, it may leave to the INSERT's foreign keys only references to no parent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import ibis.expr.datatypes as dt
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egregora.contracts import contract_for
from egregora.errors import ContractViolation
from egregora.schema.catalog import CATALOG
from egregora.schema.model import Column, ForeignKey, Table, Unique
from egregora.schema.rules import (
    Bound,
    ExactlyOne,
    Matches,
    NullExactlyWhen,
    OneOf,
    Ordered,
    RequiredWhen,
    Rule,
)
from egregora.storage import checks, direct, staging
from egregora.storage.store import Storage
from tests.conftest import Databases
from tests.strategies import database
from tests.support import db_arg

SLOW_OK = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]


@pytest.fixture(scope="module")
def store(engine: str, databases: Databases) -> Iterator[Storage]:
    with Storage.open(db_arg(databases.new(engine))) as opened:
        yield opened


class _Undo(Exception):
    """Raised to roll a transaction back."""


@contextmanager
def rolled_back(store: Storage) -> Iterator[None]:
    """Everything written inside is gone afterwards."""
    try:
        with store.transaction():
            yield
            raise _Undo
    except _Undo:
        pass


# -- breaking a batch by one rule ------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """A rule to break: ``name`` as a report names it, ``what`` the declaration behind it."""

    name: str
    what: Column | Rule | Unique | ForeignKey

    def __str__(self) -> str:
        return self.name


def targets(table: Table) -> list[Target]:
    contract = contract_for(table.name)
    out = [Target(contract.not_null_rule(c.name), c) for c in table.columns if not c.nullable]
    out += [Target(r.name, r) for r in table.rules]
    out += [Target(k.name, k) for k in table.keys]
    out += [Target(fk.name, fk) for fk in table.foreign_keys]
    return out


CASES = [pytest.param(t.name, None, id=f"{t.name}-valid") for t in CATALOG]
CASES += [pytest.param(t.name, x, id=f"{t.name}-{x}") for t in CATALOG for x in targets(t)]

_SOME_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def some_value(dtype: dt.DataType) -> Any:
    """A set value of ``dtype`` (what a rule needs to see a column set)."""
    if dtype.is_timestamp():
        return _SOME_TIME
    if dtype.is_date():
        return date(2026, 3, 1)
    if dtype.is_integer():
        return 7
    if dtype.is_boolean():
        return True
    if dtype.is_binary():
        return b"\x01"
    if dtype.is_array():
        return ["x"]
    return "set"  # text and JSON text alike


def later(value: Any) -> Any:
    return value + (timedelta(seconds=1) if isinstance(value, datetime) else 1)


def break_rows(table: Table, rows: list[dict[str, Any]], target: Target, at: int) -> None:
    """Change ``rows`` (at row ``at``) so that ``target`` is broken."""
    row = rows[at]
    what = target.what
    if isinstance(what, Column):
        row[what.name] = None
    elif isinstance(what, OneOf):
        row[what.column] = "not-one-of-them"
    elif isinstance(what, Bound):
        beyond = {">=": -1, ">": 0, "<=": 1, "<": 0}[what.op]
        row[what.column] = int(what.value) + beyond
    elif isinstance(what, Ordered):
        base = row[what.low]
        if base is None:
            base = some_value(table.column(what.low).dtype)
        # The pair in an order the rule forbids: equal breaks a strict order, reversed any.
        pairs = {
            "<": (base, base),
            "<=": (later(base), base),
            ">": (base, base),
            ">=": (base, later(base)),
        }
        row[what.low], row[what.high] = pairs[what.op]
    elif isinstance(what, RequiredWhen):
        row[what.column] = what.equals
        row[what.required[0]] = None
        if what.unless:
            row[what.unless] = False
    elif isinstance(what, NullExactlyWhen):
        row[what.column] = what.equals
        row[what.nulls[0]] = some_value(table.column(what.nulls[0]).dtype)
    elif isinstance(what, ExactlyOne):
        for choice in what.choices:
            row[choice] = None
    elif isinstance(what, Unique):
        other = dict(rows[(at + 1) % len(rows)]) if len(rows) > 1 else dict(row)
        for column in what.columns:
            if row[column] is None:
                row[column] = some_value(table.column(column).dtype)
            other[column] = row[column]
        if len(rows) > 1:
            rows[(at + 1) % len(rows)] = other
        else:
            rows.append(other)
    elif isinstance(what, ForeignKey):
        row[what.column] = "no-such-parent"
    elif isinstance(what, Matches):
        row[what.column] = f"{row[what.column] or 'set'}\n"  # SQL's $ takes no final newline
    else:  # pragma: no cover - a new kind of declaration must be taught here
        raise NotImplementedError(f"cannot break {target}")


# -- the property ----------------------------------------------------------------------------------
def _self_reference_in_batch(table: Table, rows: list[dict[str, Any]]) -> bool:
    for fk in table.foreign_keys:
        if fk.references == table.name:
            held = {r[fk.ref_column] for r in rows}
            if any(r[fk.column] is not None and r[fk.column] in held for r in rows):
                return True
    return False


@pytest.mark.parametrize(("name", "target"), CASES)
@settings(max_examples=3, deadline=None, suppress_health_check=SLOW_OK, derandomize=True)
@given(data=st.data())
def test_the_write_judges_every_batch_as_the_contract_does(
    store: Storage, name: str, target: Target | None, data: st.DataObject
) -> None:
    table = CATALOG[name]
    generated = data.draw(database(tables=[name], min_size=1))
    rows = [dict(r) for r in generated[name]]
    if not rows:  # the declaration leaves no valid row here (a NOT NULL reference, no parent)
        return
    if target is not None:
        break_rows(table, rows, target, data.draw(st.integers(0, len(rows) - 1)))
    batch = pa.Table.from_pylist(rows, schema=table.schema.to_pyarrow())
    with rolled_back(store):
        for parent, parent_rows in generated.items():
            if parent != name and parent_rows:
                store.write(parent, parent_rows)
        staged, shape = staging.stage(store, table, batch)
        assert shape == []
        data_table = store.ibis.table(staged.name)
        parents = checks.parents(store, table, data_table)
        report = contract_for(name).validate(
            data_table, parents=parents, max_examples=checks.EXAMPLES
        )
        judged = checks.failures(store, table, staged, "append")
        staging.drop(store, staged)
        clean = direct.judge(store, table, batch)
        # Outside a transaction the INSERT's own keys and foreign keys judge the stored state.
        loose = direct.judge(store, table, batch, stored=False)

    if target is None:
        assert report.ok, str(report)
    else:
        assert target.name in report.broken_rules, str(report)
    assert judged == list(report.failures)
    takes_it = not (
        _self_reference_in_batch(table, rows)
        and not store.engine.same_table_references_in_one_insert
    )
    if takes_it:
        assert (clean is not None) == report.ok, str(report)
        assert (loose is not None) >= report.ok, str(report)
    else:
        assert clean is None and loose is None
    if loose is not None:  # only what the database's own constraints refuse may be left
        references = {fk.name for fk in table.foreign_keys}
        assert set(report.broken_rules) <= references, str(report)


# -- what a caller sees ----------------------------------------------------------------------------
def test_the_statement_counts_every_rule_of_the_contract_in_its_order() -> None:
    for table in CATALOG:
        for mode in ("append", "upsert"):
            counted = [c.rule for c in checks.counts_of(table, mode) if not c.stored]
            assert counted == contract_for(table.name).rule_names()


def _run(run_id: str, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run_id": run_id,
        "stage": "ingest",
        "status": "running",
        "started_at": _SOME_TIME,
        "host": "here",
        "pid": 10,
        "heartbeat_at": _SOME_TIME,
    }
    return {**row, **changes}


def _runs(store: Storage) -> int:
    return int(store.query("SELECT count(*) FROM runs")[0][0])


def test_a_broken_row_is_refused_naming_the_rule_and_its_key_and_nothing_is_written(
    store: Storage,
) -> None:
    before = _runs(store)
    with pytest.raises(ContractViolation) as refused:
        store.write("runs", [_run("run-broken", status="exploded")])
    failure = refused.value.report.failure("runs_status_values")
    assert failure is not None and failure.count == 1
    assert failure.examples == ({"run_id": "run-broken", "status": "exploded"},)
    assert refused.value.report.broken_rules == ("runs_status_values",)
    assert _runs(store) == before


def test_a_row_whose_key_is_stored_is_refused_naming_the_key_and_nothing_is_written(
    store: Storage,
) -> None:
    store.write("runs", [_run("run-kept")])
    before = _runs(store)
    with pytest.raises(ContractViolation) as refused:
        store.write("runs", [_run("run-kept", stage="again"), _run("run-new")])
    failure = refused.value.report.failure("runs_pkey")
    assert failure is not None and failure.count == 1
    assert failure.examples == ({"run_id": "run-kept"},)
    assert "already held" in failure.description
    assert _runs(store) == before
    assert store.query("SELECT stage FROM runs WHERE run_id = 'run-kept'") == [("ingest",)]


def test_a_reference_to_no_parent_is_refused_by_name(store: Storage) -> None:
    with pytest.raises(ContractViolation) as refused:
        store.write("runs", [_run("run-orphan", parent_run_id="run-nowhere")])
    failure = refused.value.report.failure("runs_parent_run_id_fkey")
    assert failure is not None
    assert failure.examples == ({"run_id": "run-orphan", "parent_run_id": "run-nowhere"},)


def test_a_small_typed_append_is_written_without_staging(
    store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_staging(*args: object, **kwargs: object) -> None:
        raise AssertionError("a small typed append must not be staged")

    monkeypatch.setattr(staging, "stage", no_staging)
    assert store.write("runs", [_run("run-direct-1"), _run("run-direct-2")]) == 2
    assert store.query(
        "SELECT run_id FROM runs WHERE run_id LIKE 'run-direct-%' ORDER BY run_id"
    ) == [("run-direct-1",), ("run-direct-2",)]


def test_a_value_to_convert_takes_the_staged_way_and_is_converted(store: Storage) -> None:
    row = _run("run-converted", pid="42")  # text for an integer column
    assert direct.judge(store, CATALOG["runs"], staging.to_arrow([row])) is None
    assert store.write("runs", [row]) == 1
    assert store.query("SELECT pid FROM runs WHERE run_id = 'run-converted'") == [(42,)]


def test_json_text_that_staging_refuses_is_refused_by_name(store: Storage) -> None:
    row = _run("run-json-bad", attrs="{not json")
    assert direct.judge(store, CATALOG["runs"], staging.to_arrow([row])) is None
    before = _runs(store)
    with pytest.raises(ContractViolation) as refused:
        store.write("runs", [row])
    failure = refused.value.report.failure("type(attrs)")
    assert failure is not None and failure.examples[0]["run_id"] == "run-json-bad"
    assert _runs(store) == before


def test_a_refusal_inside_a_transaction_leaves_the_transaction_usable(store: Storage) -> None:
    """Inside a caller's transaction the write asks the database before inserting: a refused
    INSERT would abort the caller's transaction, and its other writes with it."""
    store.write("runs", [_run("run-held")])
    with store.transaction():
        for broken in (_run("run-held"), _run("run-child", parent_run_id="run-nowhere")):
            with pytest.raises(ContractViolation):
                store.write("runs", [broken])
        store.write("runs", [_run("run-after-refusals")])
    assert store.query("SELECT count(*) FROM runs WHERE run_id = 'run-after-refusals'") == [(1,)]
