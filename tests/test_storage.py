"""The storage gateway on real DuckDB files: validated atomic writes, upserts, typed queries.

Every test opens ``Storage`` on a file in a temporary folder. Tests that need a second process
live in tests/test_storage_processes.py.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import ibis
import pandas as pd
import pyarrow as pa
import pytest

from egregora.contracts.report import ContractReport, RuleFailure
from egregora.ddl.diff import Difference, diff_schemas
from egregora.errors import (
    ContractViolation,
    DatabaseError,
    DatabaseNotFoundError,
    EgregoraError,
    SchemaError,
)
from egregora.migrations import catalog_at, shipped_migrations
from egregora.schema.catalog import CATALOG
from egregora.storage import DatabaseURL, Storage, migrate_database
from tests.samples import T0, at, valid_rows
from tests.support import insert_rows, insert_sql

Row = dict[str, Any]
Rows = list[Row]
MIGRATIONS = shipped_migrations()

# ---------------------------------------------------------------------------------------------
# Fixtures and helpers.


@pytest.fixture
def store(any_store: Storage) -> Storage:
    """A new database at the catalog's schema, opened for writing, on each engine."""
    return any_store


@pytest.fixture
def sampled(store: Storage) -> Storage:
    """The same store holding every valid sample row (inserted directly, which is quicker;
    test_every_sample_table_round_trips writes them through the gateway)."""
    for name, rows in valid_rows().items():
        if name != "schema_migrations":
            for row in rows:
                store.run(insert_sql(name, row.keys()), list(row.values()))
    return store


def violation(excinfo: pytest.ExceptionInfo[ContractViolation]) -> ContractReport:
    report = excinfo.value.report
    assert isinstance(report, ContractReport)
    assert not report.ok
    assert "nothing was written" in str(excinfo.value)
    return report


def failure(report: ContractReport, rule: str) -> RuleFailure:
    found = report.failure(rule)
    assert found is not None, f"expected rule {rule!r} in the report, got:\n{report}"
    return found


def snapshot(store: Storage, name: str) -> pa.Table:
    """Every row of ``name``, in primary-key order."""
    t = store.table(name)
    table: pa.Table = store.to_pyarrow(t.order_by(list(CATALOG[name].primary_key)))
    return table


def read_rows(store: Storage, name: str) -> Rows:
    rows: Rows = snapshot(store, name).to_pylist()
    return rows


def count(store: Storage, name: str) -> int:
    return int(store.execute(store.table(name).count()))


def assert_unchanged(store: Storage, name: str, before: pa.Table, label: str) -> None:
    after = snapshot(store, name)
    assert after.num_rows == before.num_rows, (
        f"{label}: {name} had {before.num_rows} rows, now {after.num_rows}"
    )
    assert after.equals(before), f"{label}: the rows of {name} changed"


def full_row(table: str, row: Row) -> Row:
    """``row`` with every column of ``table`` (absent ones None)."""
    return {c: row.get(c) for c in CATALOG[table].column_names}


def comparable(table: str, row: Row) -> Row:
    """A row as written or as read back, with JSON columns parsed, for comparison."""
    out = full_row(table, row)
    for column in CATALOG[table].columns:
        value = out[column.name]
        if column.dtype.is_json() and isinstance(value, str):
            out[column.name] = json.loads(value)
    return out


def assert_same_rows(table: str, got: Rows, want: Rows, label: str = "") -> None:
    key = CATALOG[table].primary_key

    def by_key(rows: Rows) -> dict[tuple[Any, ...], Row]:
        return {tuple(r[k] for k in key): comparable(table, r) for r in rows}

    have, need = by_key(got), by_key(want)
    assert sorted(have) == sorted(need), f"{label}: keys read back {sorted(have)} != {sorted(need)}"
    differences = [
        f"{k} {c}: read {have[k][c]!r}, wrote {need[k][c]!r}"
        for k in need
        for c in need[k]
        if have[k][c] != need[k][c]
    ]
    assert not differences, f"{label}: " + "; ".join(differences)


def message(i: int, *, thread: str = "group", run: str | None = None) -> Row:
    return {
        "event_id": f"ev-{i:05d}",
        "source": "whatsapp",
        "thread_id": thread,
        "seq": i,
        "ts": T0 + timedelta(seconds=i),
        "kind": "text",
        "author_raw": "Ana",
        "author_uuid": "u1",
        "text": f"message {i}",
        "media_omitted": False,
        "created_by_run": run,
    }


def messages(start: int, stop: int, *, run: str | None = "run-1") -> Rows:
    return [message(i, run=run) for i in range(start, stop)]


def runs_only(store: Storage) -> Storage:
    store.write("runs", valid_rows()["runs"])
    return store


# Each accepted kind of input, built from a list of complete rows.
INPUT_KINDS: dict[str, Callable[[Rows], Any]] = {
    "list-of-dicts": lambda rows: rows,
    "pyarrow": pa.Table.from_pylist,
    "pandas": pd.DataFrame,
    "ibis-memtable": lambda rows: ibis.memtable(pa.Table.from_pylist(rows)),
}


# ---------------------------------------------------------------------------------------------
# 1. A valid batch lands, from every kind of input.


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_a_valid_batch_lands_from_each_input_kind(store: Storage, kind: str) -> None:
    runs_only(store)
    rows = [full_row("documents", r) for r in valid_rows()["documents"]]
    written = store.write("documents", INPUT_KINDS[kind](rows))
    assert written == len(rows) == count(store, "documents")
    assert_same_rows("documents", read_rows(store, "documents"), rows, kind)


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_messages_with_json_and_nulls_land_from_each_input_kind(store: Storage, kind: str) -> None:
    runs_only(store)
    rows = [full_row("messages", m) for m in messages(0, 50)]
    for i, row in enumerate(rows):
        row["attrs"] = json.dumps({"n": i, "tags": ["a", "b"]}) if i % 3 else None
        row["ingested_at"] = at(i) if i % 2 else None
    written = store.write("messages", INPUT_KINDS[kind](rows))
    assert written == 50 == count(store, "messages")
    assert_same_rows("messages", read_rows(store, "messages"), rows, kind)


def test_every_sample_table_round_trips(store: Storage) -> None:
    # A migrated database holds its own pseudonym key already: that row is not a sample's.
    (own,) = read_rows(store, "pseudonym_keys")
    for name, rows in valid_rows().items():
        if name != "schema_migrations":
            assert store.write(name, rows) == len(rows), name
    for name, rows in valid_rows().items():
        if name != "schema_migrations":
            read = [r for r in read_rows(store, name) if r != own]
            assert_same_rows(name, read, rows, name)


# ---------------------------------------------------------------------------------------------
# 2. One bad row in 10,000 writes nothing, and the report names it.

BIG = 10_000
BAD = 4_321  # the position of the bad row in the batch

# How to break a row: (rule, change, the example the report must show, minus the key)
BREAKERS: dict[str, tuple[str, Row, Row]] = {
    "check": ("messages_kind_values", {"kind": "bogus"}, {"kind": "bogus"}),
    "foreign-key": (
        "messages_created_by_run_fkey",
        {"created_by_run": "no-such-run"},
        {"created_by_run": "no-such-run"},
    ),
}


def _assert_names_the_bad_row(
    excinfo: pytest.ExceptionInfo[ContractViolation], breaker: str, key: str
) -> None:
    rule, _, shown = BREAKERS[breaker]
    report = violation(excinfo)
    assert report.table == "messages"
    assert report.rows == BIG, str(report)
    assert report.broken_rules == (rule,), f"only {rule} should break:\n{report}"
    broken = failure(report, rule)
    assert broken.count == 1, str(report)
    assert broken.examples == ({"event_id": key, **shown},), str(report)
    assert key in str(excinfo.value)


@pytest.mark.parametrize("breaker", BREAKERS)
def test_append_of_10000_rows_with_one_bad_row_writes_nothing(store: Storage, breaker: str) -> None:
    runs_only(store)
    store.write("messages", messages(BIG, BIG + 10))  # rows already there must stay as they are
    before = snapshot(store, "messages")
    batch = messages(0, BIG)
    batch[BAD].update(BREAKERS[breaker][1])
    with pytest.raises(ContractViolation) as excinfo:
        store.write("messages", batch)
    _assert_names_the_bad_row(excinfo, breaker, batch[BAD]["event_id"])
    assert_unchanged(store, "messages", before, f"append, {breaker}")
    # The same batch without the bad row lands whole.
    batch[BAD] = message(BAD, run="run-1")
    assert store.write("messages", batch) == BIG
    assert count(store, "messages") == BIG + 10


@pytest.mark.parametrize("bad_row_is", ["replacing", "new"])
@pytest.mark.parametrize("breaker", BREAKERS)
def test_upsert_of_10000_rows_with_one_bad_row_leaves_the_table_as_before(
    store: Storage, breaker: str, bad_row_is: str
) -> None:
    runs_only(store)
    # 5,000 stored rows; the batch replaces the last 2,500 (their text changes) and adds 7,500.
    assert store.write("messages", messages(0, 5_000)) == 5_000
    before = snapshot(store, "messages")
    batch = messages(2_500, 2_500 + BIG)
    for row in batch:
        row["text"] = "edited " + str(row["text"])
    bad = 1_234 if bad_row_is == "replacing" else 6_789
    assert (int(batch[bad]["seq"]) < 5_000) == (bad_row_is == "replacing")
    batch[bad].update(BREAKERS[breaker][1])
    with pytest.raises(ContractViolation) as excinfo:
        store.write("messages", batch, mode="upsert")
    _assert_names_the_bad_row(excinfo, breaker, batch[bad]["event_id"])
    assert_unchanged(store, "messages", before, f"upsert, {breaker}, bad row {bad_row_is}")
    # Fixed, the batch replaces 2,500 rows and adds 7,500.
    batch[bad] = message(int(batch[bad]["seq"]), run="run-1")
    batch[bad]["text"] = "edited " + str(batch[bad]["text"])
    assert store.write("messages", batch, mode="upsert") == BIG
    assert count(store, "messages") == 2_500 + BIG
    stored = {r["event_id"]: r["text"] for r in read_rows(store, "messages")}
    assert stored["ev-00000"] == "message 0"
    assert stored["ev-02500"] == "edited message 2500"


# ---------------------------------------------------------------------------------------------
# 3. Types: what is refused, with which rule, and what JSON columns take.


def _naive(rows: Rows) -> Rows:
    return [{**r, "ts": r["ts"].replace(tzinfo=None)} for r in rows]


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_naive_timestamps_are_refused(store: Storage, kind: str) -> None:
    rows = _naive(messages(0, 3, run=None))
    with pytest.raises(ContractViolation) as excinfo:
        store.write("messages", INPUT_KINDS[kind](rows))
    broken = failure(violation(excinfo), "type(ts)")
    assert broken.description == (
        "ts holds timestamps without a time zone; make them timezone-aware (for example "
        "datetime(..., tzinfo=UTC) or Series.dt.tz_localize('UTC'))"
    )
    assert count(store, "messages") == 0


@pytest.mark.parametrize("naive_row", [0, 1, 2])
def test_one_naive_timestamp_among_aware_ones_is_refused(store: Storage, naive_row: int) -> None:
    """A naive value's zone is a guess wherever it sits in the batch, not UTC by default."""
    rows = messages(0, 3, run=None)
    rows[naive_row]["ts"] = rows[naive_row]["ts"].replace(tzinfo=None)
    try:
        store.write("messages", rows)
    except ContractViolation as exc:
        assert failure(exc.report, "type(ts)").rule == "type(ts)"
        assert count(store, "messages") == 0
        return
    stored = {r["event_id"]: r["ts"].isoformat() for r in read_rows(store, "messages")}
    pytest.fail(
        f"row {naive_row} with the naive timestamp {rows[naive_row]['ts'].isoformat()} was "
        f"accepted among aware ones; stored {stored}"
    )


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_aware_timestamps_in_any_zone_are_stored_as_the_same_instant(
    store: Storage, kind: str
) -> None:
    """11:30 at UTC+2 and 04:30 at UTC-5 are both 09:30 UTC.

    (Importing pandera sets PYARROW_IGNORE_TIMEZONE=1 in os.environ, after which pyarrow
    converts aware datetimes by their wall time: watch this test if it fails.)"""
    rows = messages(0, 2, run=None)
    rows[0]["ts"] = datetime(2026, 1, 5, 11, 30, tzinfo=timezone(timedelta(hours=2)))
    rows[1]["ts"] = datetime(2026, 1, 5, 4, 30, 1, tzinfo=timezone(timedelta(hours=-5)))
    assert store.write("messages", INPUT_KINDS[kind](rows)) == 2
    stored = [r["ts"] for r in read_rows(store, "messages")]
    want = [datetime(2026, 1, 5, 9, 30, tzinfo=UTC), datetime(2026, 1, 5, 9, 30, 1, tzinfo=UTC)]
    assert stored == want, (
        f"wrote {[r['ts'].isoformat() for r in rows]}, "
        f"read back {[t.isoformat() for t in stored]} (instants moved)"
    )


@pytest.mark.parametrize("kind", ["list-of-dicts", "pyarrow", "pandas"])
def test_strings_in_an_integer_column_are_reported_with_key_and_value(
    store: Storage, kind: str
) -> None:
    rows = messages(0, 5, run=None)
    for row in rows:
        row["seq"] = str(row["seq"])  # text that converts exactly is accepted...
    rows[3]["seq"] = "three"  # ...text that does not is refused
    with pytest.raises(ContractViolation) as excinfo:
        store.write("messages", INPUT_KINDS[kind](rows))
    report = violation(excinfo)
    broken = failure(report, "type(seq)")
    assert broken.count == 1
    assert broken.examples == ({"event_id": "ev-00003", "seq": "three"},), str(report)
    assert "'three'" in str(excinfo.value) and "ev-00003" in str(excinfo.value)
    assert count(store, "messages") == 0
    rows[3]["seq"] = "3"
    assert store.write("messages", INPUT_KINDS[kind](rows)) == 5
    assert [r["seq"] for r in read_rows(store, "messages")] == [0, 1, 2, 3, 4]


def test_one_string_among_integers_in_a_list_of_dicts_is_reported_with_key_and_value(
    store: Storage,
) -> None:
    """The same mistake as above, as it happens in practice: one row of many is wrong."""
    rows = messages(0, 5, run=None)
    rows[3]["seq"] = "three"
    with pytest.raises(ContractViolation) as excinfo:
        store.write("messages", rows)
    broken = failure(violation(excinfo), "type(seq)")
    assert broken.examples == ({"event_id": "ev-00003", "seq": "three"},)
    assert count(store, "messages") == 0


def test_integral_floats_are_accepted_in_an_integer_column(store: Storage) -> None:
    """pandas turns an integer column with a missing value into floats: 10.0 is 10."""
    frame = pd.DataFrame(
        [
            {"run_id": "r1", "stage": "s", "status": "running", "started_at": T0, "rows_in": 10},
            {"run_id": "r2", "stage": "s", "status": "running", "started_at": T0, "rows_in": None},
        ]
    )
    assert str(frame["rows_in"].dtype) == "float64"
    assert store.write("runs", frame) == 2
    assert [r["rows_in"] for r in read_rows(store, "runs")] == [10, None]


@pytest.mark.parametrize("value", [2.5, "2.5"], ids=["float", "text"])
def test_fractional_numbers_are_refused_in_an_integer_column(store: Storage, value: Any) -> None:
    """Staging promises casts that are exact; 2.5 rows is not an integer (TRY_CAST rounds)."""
    rows: Rows = [
        {"run_id": f"r{i}", "stage": "s", "status": "running", "started_at": T0, "rows_in": v}
        for i, v in enumerate([value, type(value)(7)])  # the other row converts exactly
    ]
    try:
        store.write("runs", rows)
    except ContractViolation as exc:
        broken = failure(exc.report, "type(rows_in)")
        assert broken.examples == ({"run_id": "r0", "rows_in": value},), str(exc.report)
        assert count(store, "runs") == 0
        return
    stored = [r["rows_in"] for r in read_rows(store, "runs")]
    pytest.fail(f"{value!r} was accepted into runs.rows_in (BIGINT) and stored as {stored}")


def test_a_missing_required_column_is_reported(store: Storage) -> None:
    rows = [{k: v for k, v in r.items() if k != "source"} for r in messages(0, 3, run=None)]
    with pytest.raises(ContractViolation) as excinfo:
        store.write("messages", rows)
    report = violation(excinfo)
    broken = failure(report, "missing_column(source)")
    assert "source" in broken.description and "NOT NULL" in broken.description
    assert count(store, "messages") == 0


def test_a_missing_nullable_column_is_null(store: Storage) -> None:
    rows = [{k: v for k, v in r.items() if k != "text"} for r in messages(0, 3, run=None)]
    assert store.write("messages", rows) == 3
    assert [r["text"] for r in read_rows(store, "messages")] == [None, None, None]


def test_an_unknown_column_is_reported(store: Storage) -> None:
    rows = [{**r, "colour": "blue"} for r in messages(0, 3, run=None)]
    with pytest.raises(ContractViolation) as excinfo:
        store.write("messages", rows)
    report = violation(excinfo)
    assert report.broken_rules == ("unknown_column(colour)",), str(report)
    assert "colour" in failure(report, "unknown_column(colour)").description
    assert count(store, "messages") == 0


def test_a_column_only_some_dicts_have_is_still_a_column(store: Storage) -> None:
    rows = messages(0, 3, run=None)
    rows[2]["colour"] = "blue"  # only the last row has it
    with pytest.raises(ContractViolation) as excinfo:
        store.write("messages", rows)
    assert violation(excinfo).broken_rules == ("unknown_column(colour)",)
    assert count(store, "messages") == 0


@pytest.mark.parametrize("kind", ["list-of-dicts", "pandas"])
def test_json_columns_take_dicts_and_serialise_them(store: Storage, kind: str) -> None:
    values: list[Any] = [
        {"lang": "en", "n": 1},
        {"lang": "pt", "n": 2},
        None,
        {"lang": "fr", "n": 3},
    ]
    rows = messages(0, len(values), run=None)
    for row, value in zip(rows, values, strict=True):
        row["attrs"] = value
    assert store.write("messages", INPUT_KINDS[kind](rows)) == len(values)
    stored = [r["attrs"] for r in read_rows(store, "messages")]
    assert [None if s is None else json.loads(s) for s in stored] == values, stored


def test_json_columns_take_json_text(store: Storage) -> None:
    texts = ['{"a": [1, 2, {"b": null}]}', "[1, 2]", '"just text"', "42", None]
    rows = messages(0, len(texts), run=None)
    for row, text in zip(rows, texts, strict=True):
        row["attrs"] = text
    assert store.write("messages", rows) == len(texts)
    stored = [r["attrs"] for r in read_rows(store, "messages")]
    assert [None if s is None else json.loads(s) for s in stored] == [
        None if t is None else json.loads(t) for t in texts
    ]


def test_json_dicts_with_different_keys_keep_exactly_their_keys(store: Storage) -> None:
    """Source attributes differ from message to message; none may gain another's keys.

    (A list of dicts becomes one Arrow struct type, the union of every row's keys.)"""
    values: list[Any] = [{"a": 1}, {"b": "x"}, {"nested": {"deep": [1, 2]}}]
    rows = messages(0, len(values), run=None)
    for row, value in zip(rows, values, strict=True):
        row["attrs"] = value
    assert store.write("messages", rows) == len(values)
    stored = [r["attrs"] for r in read_rows(store, "messages")]
    assert [json.loads(s) for s in stored] == values, f"stored {stored} for {values}"


def test_text_that_is_not_json_is_reported_with_its_key(store: Storage) -> None:
    rows = messages(0, 3, run=None)
    for row in rows:
        row["attrs"] = '{"ok": true}'
    rows[1]["attrs"] = "{not json"
    with pytest.raises(ContractViolation) as excinfo:
        store.write("messages", rows)
    broken = failure(violation(excinfo), "type(attrs)")
    assert broken.examples == ({"event_id": "ev-00001", "attrs": "{not json"},)
    assert count(store, "messages") == 0


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_an_empty_batch_writes_nothing(store: Storage, kind: str) -> None:
    """No rows is not a driver error: 0 rows written, or a readable EgregoraError."""
    empty = pa.Table.from_pylist([full_row("messages", message(0))]).slice(0, 0)
    data = {
        "list-of-dicts": [],
        "pyarrow": empty,
        "pandas": empty.to_pandas(),
        "ibis-memtable": ibis.memtable(empty),
    }[kind]
    with contextlib.suppress(EgregoraError):
        assert store.write("messages", data) == 0
    assert count(store, "messages") == 0


def test_an_input_of_another_kind_is_a_clear_error(store: Storage) -> None:
    with pytest.raises(EgregoraError, match="list of dicts"):
        store.write("messages", "not rows")
    with pytest.raises(EgregoraError, match="list of dicts"):
        store.write("messages", [("ev-1", "whatsapp")])
    with pytest.raises(EgregoraError, match="mode"):
        store.write("messages", messages(0, 1, run=None), mode="merge")  # type: ignore[arg-type]
    with pytest.raises(EgregoraError, match="no_such_table"):
        store.write("no_such_table", messages(0, 1, run=None))
    assert count(store, "messages") == 0


# ---------------------------------------------------------------------------------------------
# 4. Keys: append refuses held keys; upsert replaces, skips identical rows, keeps references.


def test_append_of_a_held_key_names_it_and_suggests_upsert(sampled: Storage) -> None:
    before = snapshot(sampled, "runs")
    held = dict(valid_rows()["runs"][2])
    held["stage"] = "changed"
    new = {"run_id": "run-new", "stage": "s", "status": "running", "started_at": T0}
    with pytest.raises(ContractViolation) as excinfo:
        sampled.write("runs", [new, held])
    report = violation(excinfo)
    assert report.broken_rules == ("runs_pkey",), str(report)
    broken = failure(report, "runs_pkey")
    assert broken.count == 1
    assert broken.examples == ({"run_id": "run-3"},)
    assert "mode='upsert'" in broken.description
    assert "run-3" in str(excinfo.value) and "upsert" in str(excinfo.value)
    assert_unchanged(sampled, "runs", before, "append of a held key")  # run-new did not land


def _drift(store: Storage) -> list[Difference]:
    """Every way the store's live schema differs from the catalog (as verify reports it)."""
    executor = store.executor()
    expected = store.engine.expected_schema(CATALOG, executor)
    return diff_schemas(expected, store.engine.introspect(executor))


def _rowids(store: Storage) -> dict[str, str]:
    """Where each row physically lies (DuckDB's rowid, PostgreSQL's ctid): an UPDATE moves it."""
    where = "CAST(ctid AS TEXT)" if store.url.dsn else "CAST(rowid AS VARCHAR)"
    return {str(k): str(v) for k, v in store.query(f"SELECT id, {where} FROM documents")}  # noqa: S608


def test_upsert_replaces_changed_rows_adds_new_ones_and_leaves_identical_ones(
    store: Storage,
) -> None:
    runs_only(store)
    docs = valid_rows()["documents"]
    assert store.write("documents", docs) == 4
    untouched = _rowids(store)

    batch = [dict(d) for d in docs]
    batch[1]["title"] = "Ana, renamed"  # doc-profile changes
    new = {"id": "doc-new", "doc_type": "post", "created_at": T0, "title": "New"}
    new.update({"slug": "new", "status": "draft"})
    batch.append(new)
    assert store.write("documents", batch, mode="upsert") == 2

    stored = {r["id"]: r for r in read_rows(store, "documents")}
    assert sorted(stored) == ["doc-journal", "doc-media", "doc-new", "doc-post", "doc-profile"]
    assert stored["doc-profile"]["title"] == "Ana, renamed"
    assert_same_rows("documents", list(stored.values()), [*batch], "after upsert")
    rowids = _rowids(store)
    for doc in ("doc-post", "doc-journal", "doc-media"):
        assert rowids[doc] == untouched[doc], f"{doc} was identical but was rewritten"


def test_upsert_of_a_batch_identical_to_the_stored_rows_writes_nothing(sampled: Storage) -> None:
    for name, rows in valid_rows().items():
        if name in ("schema_migrations", "git_commits", "git_refs", "git_lookup_cache"):
            continue  # composite keys: see test_upsert_with_a_composite_primary_key
        before = snapshot(sampled, name)
        assert sampled.write(name, rows, mode="upsert") == 0, name
        assert_unchanged(sampled, name, before, f"identical upsert of {name}")


def test_upsert_with_a_composite_primary_key(sampled: Storage) -> None:
    commits = [dict(c) for c in valid_rows()["git_commits"]]
    commits[1]["additions"] = 7  # (repo-1, b*40, posts/hi.md) changes
    commits.append(
        {
            "repo_id": "repo-1",
            "commit_sha": "b" * 40,  # same repo and commit as two stored rows, another path
            "chain_seq": 2,
            "path": "posts/new.md",
            "change_type": "A",
            "committed_at": at(5),
        }
    )
    assert sampled.write("git_commits", commits, mode="upsert") == 2
    stored = read_rows(sampled, "git_commits")
    assert len(stored) == 4
    assert_same_rows("git_commits", stored, commits, "composite-key upsert")
    assert sampled.write("git_commits", commits, mode="upsert") == 0
    for name in ("git_refs", "git_lookup_cache"):  # the other composite keys
        before = snapshot(sampled, name)
        assert sampled.write(name, valid_rows()[name], mode="upsert") == 0, name
        assert_unchanged(sampled, name, before, f"identical upsert of {name}")


def test_upsert_of_a_row_that_foreign_keys_reference(sampled: Storage) -> None:
    doc_count, annotation_count = count(sampled, "documents"), count(sampled, "annotations")
    annotations = snapshot(sampled, "annotations")
    post = dict(valid_rows()["documents"][0])
    assert post["id"] == "doc-post"  # annotation an-2 references it
    post["title"] = "Hello again"
    assert sampled.write("documents", [post], mode="upsert") == 1

    assert count(sampled, "documents") == doc_count
    assert count(sampled, "annotations") == annotation_count
    assert_unchanged(sampled, "annotations", annotations, "annotations after the upsert")
    docs = sampled.table("documents")
    assert sampled.execute(docs.filter(docs.id == "doc-post").title).tolist() == ["Hello again"]
    notes = sampled.table("annotations")
    joined = notes.join(docs, notes.document_id == docs.id).select(notes.annotation_id, docs.title)
    assert sampled.to_pyarrow(joined).to_pylist() == [
        {"annotation_id": "an-2", "title": "Hello again"}
    ]
    # The schema (keys, checks, foreign keys, indexes) is intact and still enforced.
    assert _drift(sampled) == []
    orphan: Row = {"annotation_id": "an-x", "document_id": "no-such-doc", "author": "e"}
    orphan.update({"content": "c", "created_at": T0})
    with pytest.raises(ContractViolation) as excinfo:
        sampled.write("annotations", [orphan])
    failure(violation(excinfo), "annotations_document_id_fkey")


def test_upsert_of_a_run_referenced_by_its_own_table_and_others(sampled: Storage) -> None:
    counts = {name: count(sampled, name) for name in ("runs", "documents", "messages", "tasks")}
    run = dict(valid_rows()["runs"][0])
    assert run["run_id"] == "run-1"  # run-2's parent; created documents and messages
    run["rows_out"] = 8
    assert sampled.write("runs", [run], mode="upsert") == 1
    assert {name: count(sampled, name) for name in counts} == counts
    stored = {r["run_id"]: r for r in read_rows(sampled, "runs")}
    assert stored["run-1"]["rows_out"] == 8
    assert stored["run-2"]["parent_run_id"] == "run-1"
    assert _drift(sampled) == []


@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_a_unique_key_held_by_another_stored_row_is_reported(sampled: Storage, mode: str) -> None:
    before = snapshot(sampled, "documents")
    clash = {"id": "doc-post-2", "doc_type": "post", "created_at": T0, "title": "Twin"}
    clash.update({"slug": "hello", "status": "draft"})  # doc-post holds (post, hello)
    with pytest.raises(ContractViolation) as excinfo:
        sampled.write("documents", [clash], mode=mode)  # type: ignore[arg-type]
    report = violation(excinfo)
    assert report.broken_rules == ("documents_doc_type_slug_key",), str(report)
    broken = failure(report, "documents_doc_type_slug_key")
    assert broken.count == 1
    assert broken.examples == ({"id": "doc-post-2", "doc_type": "post", "slug": "hello"},)
    assert "doc_type, slug" in broken.description
    assert_unchanged(sampled, "documents", before, f"unique clash ({mode})")


def test_upsert_may_move_a_unique_key_between_rows_it_replaces(sampled: Storage) -> None:
    other = {"id": "doc-post-2", "doc_type": "post", "created_at": T0, "title": "Two"}
    other.update({"slug": "two", "status": "draft"})
    sampled.write("documents", [other])
    first = {**valid_rows()["documents"][0], "slug": "two"}
    second = {**other, "slug": "hello"}
    assert sampled.write("documents", [first, second], mode="upsert") == 2
    docs = sampled.table("documents")
    posts = sampled.to_pyarrow(docs.filter(docs.doc_type == "post").select("id", "slug"))
    assert sorted(posts.to_pylist(), key=lambda r: r["id"]) == [
        {"id": "doc-post", "slug": "two"},
        {"id": "doc-post-2", "slug": "hello"},
    ]


def test_a_batch_repeating_a_key_is_refused_in_both_modes(sampled: Storage) -> None:
    before = snapshot(sampled, "runs")
    twice = [dict(valid_rows()["runs"][2]), {**valid_rows()["runs"][2], "stage": "other"}]
    for mode in ("append", "upsert"):
        with pytest.raises(ContractViolation) as excinfo:
            sampled.write("runs", twice, mode=mode)
        assert failure(violation(excinfo), "runs_pkey").count == 2
    assert_unchanged(sampled, "runs", before, "a batch repeating a key")


# ---------------------------------------------------------------------------------------------
# 5. Transactions.

REPO = {"repo_id": "repo-t", "root": "/srv/t", "tracked_ref": "refs/heads/main"}
RUN = {"run_id": "run-t", "stage": "ingest", "status": "running", "started_at": T0}


def test_an_exception_inside_a_transaction_undoes_every_write(store: Storage) -> None:
    with pytest.raises(RuntimeError, match="boom"), store.transaction() as tx:
        assert tx is store
        assert store.write("git_repos", [REPO]) == 1
        assert store.write("runs", [RUN]) == 1
        assert count(store, "git_repos") == 1  # visible inside the transaction
        raise RuntimeError("boom")
    assert count(store, "git_repos") == 0
    assert count(store, "runs") == 0


def test_a_transaction_without_exception_commits_every_write(store: Storage) -> None:
    with store.transaction():
        store.write("git_repos", [REPO])
        store.write("runs", [RUN])
    assert count(store, "git_repos") == 1
    assert count(store, "runs") == 1


def test_a_refused_write_inside_a_transaction_undoes_the_earlier_one(store: Storage) -> None:
    with pytest.raises(ContractViolation), store.transaction():
        store.write("git_repos", [REPO])
        store.write("runs", [{**RUN, "status": "bogus"}])
    assert count(store, "git_repos") == 0
    assert count(store, "runs") == 0


def test_a_rolled_back_transaction_undoes_an_upsert_that_rebuilt_tables(sampled: Storage) -> None:
    """Upserting a referenced row rebuilds documents and annotations; a rollback undoes that."""
    documents, annotations = snapshot(sampled, "documents"), snapshot(sampled, "annotations")
    post = {**valid_rows()["documents"][0], "title": "Rolled back"}
    with pytest.raises(RuntimeError, match="undo"), sampled.transaction():
        assert sampled.write("documents", [post], mode="upsert") == 1
        assert sampled.write("git_repos", [REPO]) == 1
        raise RuntimeError("undo")
    assert_unchanged(sampled, "documents", documents, "documents after the rollback")
    assert_unchanged(sampled, "annotations", annotations, "annotations after the rollback")
    assert count(sampled, "git_repos") == len(valid_rows()["git_repos"])
    assert _drift(sampled) == []
    assert sampled.write("documents", [post], mode="upsert") == 1  # and it still works


class WatchedLock:
    """A stand-in for a Storage's lock that tells when another thread has to wait for it."""

    def __init__(self, lock: Any) -> None:
        self._lock = lock
        self.contended = threading.Event()

    def __enter__(self) -> None:
        if not self._lock.acquire(blocking=False):  # held by another thread: wait for it
            self.contended.set()
            self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def test_another_threads_write_is_not_undone_by_a_rolled_back_transaction(
    store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = WatchedLock(store._lock)
    monkeypatch.setattr(store, "_lock", lock)
    inside = threading.Event()
    errors: list[BaseException] = []

    def roll_back() -> None:
        try:
            with store.transaction():
                store.write("git_repos", [REPO])
                inside.set()
                # The other thread tries to write meanwhile, and waits for the transaction.
                assert lock.contended.wait(60), "the other thread never tried to write"
                raise RuntimeError("undo")
        except RuntimeError:
            pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def write_run() -> None:
        try:
            assert inside.wait(10)
            store.write("runs", [RUN])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=roll_back), threading.Thread(target=write_run)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert count(store, "git_repos") == 0
    assert count(store, "runs") == 1


# ---------------------------------------------------------------------------------------------
# 6. Threads sharing one Storage (threads writing Ibis expressions over the store's own tables
#    can deadlock, so that test runs in a child process: tests/test_storage_processes.py).

THREADS = 8
ROWS_PER_THREAD = 1_000


def _run_threads(target: Callable[[int], None], count: int) -> list[str]:
    """Run ``target(k)`` in ``count`` threads started together; the errors they raised."""
    errors: list[str] = []
    barrier = threading.Barrier(count)

    def run(k: int) -> None:
        try:
            barrier.wait(30)
            target(k)
        except BaseException as exc:
            errors.append(f"thread {k}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(t.is_alive() for t in threads), "a thread did not finish within 120 s"
    return errors


def test_threads_writing_distinct_keys_through_one_storage(store: Storage) -> None:
    written: dict[int, int] = {}
    stop = threading.Event()
    reads: list[int] = []

    def write(k: int) -> None:
        rows = [
            {**message(i, thread=f"thread-{k}"), "event_id": f"t{k}-{i:04d}", "seq": i}
            for i in range(ROWS_PER_THREAD)
        ]
        written[k] = store.write("messages", rows)

    def read() -> None:  # readers beside the writers, through the same store
        while not stop.is_set():
            reads.append(int(store.execute(store.table("messages").count())))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        errors = _run_threads(write, THREADS)
    finally:
        stop.set()
        reader.join(30)
    assert not errors, "\n".join(errors)
    assert written == dict.fromkeys(range(THREADS), ROWS_PER_THREAD)
    assert count(store, "messages") == THREADS * ROWS_PER_THREAD
    t = store.table("messages")
    per_thread = store.execute(t.group_by("thread_id").agg(n=t.count(), ids=t.event_id.nunique()))
    assert sorted(per_thread.itertuples(index=False, name=None)) == [
        (f"thread-{k}", ROWS_PER_THREAD, ROWS_PER_THREAD) for k in range(THREADS)
    ]
    assert reads == sorted(reads), "a reader saw the row count go down"
    assert all(n % ROWS_PER_THREAD == 0 for n in reads), f"a reader saw a partial batch: {reads}"


# ---------------------------------------------------------------------------------------------
# 7. Typed document queries.

W0 = T0 + timedelta(hours=10)  # the asked window is [W0, W0 + 2h)
W1 = W0 + timedelta(hours=2)
S_ANA = "6f1c0d1e-0000-4000-8000-00000000000a"
S_BO = "6f1c0d1e-0000-4000-8000-00000000000b"


def _post(doc_id: str, status: str, authors: list[str], **more: Any) -> Row:
    row: Row = {"id": doc_id, "doc_type": "post", "created_at": T0, "title": doc_id}
    row.update(slug=doc_id, status=status, authors=authors, **more)
    if status == "published":
        row["date"] = T0.date()
    return row


def _journal(doc_id: str, start: datetime, end: datetime) -> Row:
    return {
        "id": doc_id,
        "doc_type": "journal",
        "created_at": T0,
        "title": doc_id,
        "window_signature": f"sig-{doc_id}",
        "window_start": start,
        "window_end": end,
        "created_by_run": "run-2",
    }


def _documents() -> Rows:
    hour = timedelta(hours=1)
    return [
        _post("p-draft", "draft", ["u1"], created_by_run="run-1"),
        _post("p-published", "published", ["u2", "u1"], created_by_run="run-1"),
        _post("p-archived", "archived", ["u10"], created_by_run="run-2"),
        # a post carrying journal-like and profile-like fields is still not a journal/profile
        _post(
            "p-odd",
            "draft",
            [],
            subject_uuid=S_ANA,
            filename="pic.jpg",
            window_start=W0,
            window_end=W1,
        ),
        _journal("j-ends-at-start", W0 - hour, W0),
        _journal("j-starts-at-end", W1, W1 + hour),
        _journal("j-inside", W0 + hour / 2, W0 + hour),
        _journal("j-covers", W0 - hour, W1 + hour),
        _journal("j-crosses-start", W0 - hour / 2, W0 + hour / 2),
        _journal("j-crosses-end", W1 - hour / 2, W1 + hour / 2),
        _journal("j-ends-just-after-start", W0 - hour, W0 + timedelta(microseconds=1)),
        _journal("j-long-before", W0 - 5 * hour, W0 - 4 * hour),
        {"id": "prof-ana", "doc_type": "profile", "created_at": T0, "title": "Ana"}
        | {"subject_uuid": S_ANA},
        {"id": "prof-bo", "doc_type": "profile", "created_at": T0, "title": "Bo"}
        | {"subject_uuid": S_BO, "created_by_run": "run-1"},
        {"id": "m-jpg", "doc_type": "media", "created_at": T0, "filename": "pic.jpg"}
        | {"media_type": "image"},
        {"id": "m-jpeg", "doc_type": "media", "created_at": T0, "filename": "pic.jpeg"}
        | {"media_type": "image", "created_by_run": "run-3"},
    ]


@pytest.fixture
def documents(store: Storage) -> Storage:
    runs_only(store)
    rows = _documents()
    assert store.write("documents", rows) == len(rows)
    return store


def ids(store: Storage, expr: Any) -> list[str]:
    return sorted(str(i) for i in store.execute(expr.id))


def test_posts_by_status(documents: Storage) -> None:
    d = documents.documents
    assert ids(documents, d.posts()) == ["p-archived", "p-draft", "p-odd", "p-published"]
    assert ids(documents, d.posts("draft")) == ["p-draft", "p-odd"]
    assert ids(documents, d.posts("published")) == ["p-published"]
    assert ids(documents, d.posts("archived")) == ["p-archived"]
    assert ids(documents, d.posts("deleted")) == []


def test_post_by_slug(documents: Storage) -> None:
    d = documents.documents
    (post,) = documents.to_pyarrow(d.post_by_slug("p-published")).to_pylist()
    assert post["id"] == "p-published" and post["date"] == T0.date()
    assert ids(documents, d.post_by_slug("j-inside")) == []  # not a post
    assert ids(documents, d.post_by_slug("nope")) == []


def test_posts_by_author_match_whole_author_ids(documents: Storage) -> None:
    d = documents.documents
    assert ids(documents, d.posts_by_author("u1")) == ["p-draft", "p-published"]
    assert ids(documents, d.posts_by_author("u10")) == ["p-archived"]
    assert ids(documents, d.posts_by_author("u")) == []


def test_journals_overlapping_a_window(documents: Storage) -> None:
    found = ids(documents, documents.documents.journals_overlapping(W0, W1))
    assert found == [
        "j-covers",
        "j-crosses-end",
        "j-crosses-start",
        "j-ends-just-after-start",
        "j-inside",
    ], "a journal ending exactly at start, or starting exactly at end, does not overlap"


def test_profile_by_subject(documents: Storage) -> None:
    d = documents.documents
    assert ids(documents, d.profile(S_ANA)) == ["prof-ana"]  # not p-odd, a post
    assert ids(documents, d.profile(S_BO)) == ["prof-bo"]
    assert ids(documents, d.profile("nobody")) == []


def test_media_by_filename(documents: Storage) -> None:
    d = documents.documents
    assert ids(documents, d.media_by_filename("pic.jpg")) == ["m-jpg"]  # not p-odd, a post
    assert ids(documents, d.media_by_filename("pic.jpeg")) == ["m-jpeg"]
    assert ids(documents, d.media_by_filename("pic")) == []


def test_created_by_run(documents: Storage) -> None:
    d = documents.documents
    assert ids(documents, d.created_by_run("run-1")) == ["p-draft", "p-published", "prof-bo"]
    journals = sorted(r["id"] for r in _documents() if r["doc_type"] == "journal")
    assert ids(documents, d.created_by_run("run-2")) == sorted(["p-archived", *journals])
    assert ids(documents, d.created_by_run("run-3")) == ["m-jpeg"]
    assert ids(documents, d.created_by_run("run-9")) == []


# ---------------------------------------------------------------------------------------------
# 8. Read-only stores (a second read-only process: tests/test_storage_processes.py).


def test_writing_through_a_read_only_store_is_refused(db_path: Path) -> None:
    with Storage.open(str(db_path)) as store:
        store.ensure_schema()
        store.write("git_repos", [REPO])
    with Storage.open(str(db_path), read_only=True) as store:
        assert store.read_only
        assert count(store, "git_repos") == 1
        attempts: list[Callable[[], int]] = [
            lambda: store.write("runs", [RUN]),
            lambda: store.write("git_repos", [REPO], mode="upsert"),
            lambda: store.delete("git_repos", lambda t: t.repo_id == REPO["repo_id"]),
        ]
        for attempt in attempts:
            with pytest.raises(DatabaseError, match="read-only") as refused:
                attempt()
            assert isinstance(refused.value, EgregoraError)
        with pytest.raises(DatabaseError, match="read-only"), store.transaction():
            pass
        assert count(store, "runs") == 0
    with Storage.open(str(db_path)) as store:
        assert count(store, "runs") == 0
        assert count(store, "git_repos") == 1


def test_opening_a_missing_file_read_only_does_not_create_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.duckdb"
    with pytest.raises(DatabaseNotFoundError):
        Storage.open(str(missing), read_only=True)
    assert not missing.exists()


def test_a_change_the_database_refuses_changes_nothing(store: Storage) -> None:
    """``change`` runs one UPDATE; a row it would break a CHECK of stays as it was."""
    store.write("runs", [valid_rows()["runs"][2]])  # run-3, running
    store.write("tasks", valid_rows()["tasks"])
    before = store.to_pyarrow(store.table("tasks").order_by("task_id"))
    with pytest.raises(DatabaseError, match=r"rolled back, nothing was changed.*attempts"):
        store.change("UPDATE tasks SET attempts = ? WHERE task_id = ?", [99, "task-1"])
    assert store.to_pyarrow(store.table("tasks").order_by("task_id")).equals(before)
    assert store.update("UPDATE tasks SET priority = ? WHERE task_id = ?", [7, "task-1"]) == 1
    assert store.query("SELECT priority FROM tasks WHERE task_id = ?", ["task-1"]) == [(7,)]


def test_open_without_create_refuses_a_missing_file_and_makes_none(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "egregora.duckdb"
    with pytest.raises(DatabaseNotFoundError, match="no database at"):
        Storage.open(str(path), create=False)
    assert not path.parent.exists()


# Opening changes nothing: no table is made and no migration applied until ensure_schema.
TABLES = "SELECT table_name FROM duckdb_tables() ORDER BY table_name"


def test_opening_a_missing_file_makes_an_empty_database_without_a_schema(tmp_path: Path) -> None:
    path = tmp_path / "new" / "egregora.duckdb"
    with Storage.open(str(path)) as store:
        assert store.query(TABLES) == []
    assert sorted(p.name for p in path.parent.iterdir()) == ["egregora.duckdb"]  # no draft left
    with Storage.open(str(path)) as store:  # and an empty database opened again stays empty
        assert store.query(TABLES) == []
        with pytest.raises(SchemaError, match=r"has no table 'runs'.*egregora db migrate"):
            store.table("runs")
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute(TABLES).fetchall() == []


def test_opening_an_older_database_neither_migrates_nor_changes_it(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    migrate_database(DatabaseURL.parse(str(path)), target=MIGRATIONS[0].id)
    older = catalog_at(MIGRATIONS[0].id)["git_repos"].column_names
    with duckdb.connect(str(path)) as con:
        insert_rows(con, "git_repos", [{k: v for k, v in REPO.items() if k in older}])
        tables = con.execute(TABLES).fetchall()
    before = path.read_bytes()
    for read_only in (False, True):
        with Storage.open(str(path), read_only=read_only) as store:
            assert store.query("SELECT id FROM schema_migrations") == [(MIGRATIONS[0].id,)]
            assert store.query(TABLES) == tables
            # A table whose columns are older than the catalog's is refused, not migrated.
            with pytest.raises(SchemaError, match="egregora db status"):
                store.table("runs")
    assert path.read_bytes() == before  # not a byte changed
    with Storage.open(str(path)) as store:  # ensure_schema is what migrates
        assert store.ensure_schema().applied == tuple(m.id for m in MIGRATIONS[1:])
        assert read_rows(store, "git_repos")[0]["repo_id"] == REPO["repo_id"]


def test_a_postgresql_server_that_is_not_there_is_named_with_the_fix() -> None:
    # Port 1 has no server.
    with pytest.raises(DatabaseError, match=r"cannot connect to .*check that the server runs"):
        Storage.open("postgresql://nobody@127.0.0.1:1/none")


# ---------------------------------------------------------------------------------------------
# 9. Deleting with an Ibis predicate.


def test_delete_removes_exactly_the_rows_the_predicate_selects(sampled: Storage) -> None:
    assert sampled.delete("git_lookup_cache", lambda t: t.hits == 0) == 1
    assert [r["path"] for r in read_rows(sampled, "git_lookup_cache")] == ["posts/hi.md"]
    assert sampled.delete("git_lookup_cache", lambda t: t.hits > 100) == 0
    # The predicate may read other stored tables: the notes on text messages.
    msgs = sampled.table("messages")
    texts = msgs.filter(msgs.kind == "text").event_id
    assert sampled.delete("annotations", lambda t: t.message_id.isin(texts)) == 1
    assert [r["annotation_id"] for r in read_rows(sampled, "annotations")] == ["an-2"]


def test_a_delete_of_a_row_another_table_references_is_refused_and_deletes_nothing(
    sampled: Storage,
) -> None:
    tables = ("runs", "tasks", "documents", "messages")
    before = {name: snapshot(sampled, name) for name in tables}
    # The write runs are run-2, which nothing references, and run-3, which task-1 does.
    refusal = (
        r"^deleting from runs failed and was rolled back, nothing was deleted: "
        r"\w+: .*run-3.* is still referenced"  # the engine's own words after its error's name
    )
    with pytest.raises(DatabaseError, match=refusal):
        sampled.delete("runs", lambda t: t.stage == "write")
    for name in tables:
        assert_unchanged(sampled, name, before[name], "after a refused delete")
    # Inside a transaction the refusal undoes the transaction's earlier writes too.
    with pytest.raises(DatabaseError, match="nothing was deleted"), sampled.transaction():
        sampled.write("git_repos", [REPO])
        sampled.delete("runs", lambda t: t.run_id == "run-3")
    assert [r["repo_id"] for r in read_rows(sampled, "git_repos")] == ["repo-1"]
    assert_unchanged(sampled, "runs", before["runs"], "after a refused delete in a transaction")
    # Once nothing references run-3, the same delete takes both runs.
    assert sampled.delete("tasks", lambda t: t.run_id == "run-3") == 1
    assert sampled.delete("runs", lambda t: t.stage == "write") == 2
    assert [r["run_id"] for r in read_rows(sampled, "runs")] == ["run-1"]
