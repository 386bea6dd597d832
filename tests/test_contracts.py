"""Contract reports: what broke, how often, and which rows, in words a person can act on."""

from __future__ import annotations

import ibis
import pytest
from ibis.backends.duckdb import Backend as DuckDBBackend

from egregora.contracts import contract_for
from egregora.errors import ContractViolation, EgregoraError
from egregora.schema.catalog import CATALOG
from tests.samples import T0, valid_rows
from tests.support import stage


def _posts(n: int) -> list[dict[str, object]]:
    return [
        {
            "id": f"p{i}",
            "doc_type": "post",
            "created_at": T0,
            "title": f"t{i}",
            "slug": f"s{i}",
            "status": "draft",
        }
        for i in range(n)
    ]


def test_report_counts_rows_and_names_examples_by_key(backend: DuckDBBackend) -> None:
    rows = _posts(12)
    for row in rows[:8]:
        row["title"] = None
    data = stage(backend, CATALOG["documents"], rows)
    report = contract_for("documents").validate(data, max_examples=3)
    assert not report.ok
    assert report.rows == 12
    failure = report.failure("documents_post_required")
    assert failure is not None
    assert failure.count == 8
    assert [e["id"] for e in failure.examples] == ["p0", "p1", "p2"]
    assert failure.examples[0]["title"] is None
    text = str(report)
    assert "documents_post_required (8 rows): a post has a title, slug and status" in text
    assert "id='p0'" in text
    assert "nothing was written" in text


def test_every_broken_rule_is_reported_at_once(backend: DuckDBBackend) -> None:
    rows = _posts(3)
    rows[0]["status"] = "live"
    rows[1]["created_at"] = None
    rows[2]["slug"] = rows[0]["slug"]
    data = stage(backend, CATALOG["documents"], rows)
    report = contract_for("documents").validate(data)
    assert set(report.broken_rules) == {
        "documents_status_values",
        "documents_created_at_not_null",
        "documents_doc_type_slug_key",
    }
    duplicate = report.failure("documents_doc_type_slug_key")
    assert duplicate is not None and duplicate.count == 2
    assert {e["id"] for e in duplicate.examples} == {"p0", "p2"}


def test_enforce_raises_a_project_error_carrying_the_report(backend: DuckDBBackend) -> None:
    rows = _posts(1)
    rows[0]["doc_type"] = "essay"
    data = stage(backend, CATALOG["documents"], rows)
    with pytest.raises(ContractViolation) as caught:
        contract_for("documents").enforce(data)
    assert isinstance(caught.value, EgregoraError)
    assert caught.value.report.broken_rules == ("documents_doc_type_values",)
    assert "doc_type is one of: post, profile, journal, media" in str(caught.value)


def test_foreign_keys_are_checked_against_given_parents(filled: DuckDBBackend) -> None:
    rows = _posts(2)
    rows[0]["created_by_run"] = "run-1"
    rows[1]["created_by_run"] = "run-404"
    data = stage(filled, CATALOG["documents"], rows)
    contract = contract_for("documents")
    assert contract.validate(data).ok, "without parents the contract cannot judge references"
    report = contract.validate(data, parents={"runs": filled.table("runs")})
    failure = report.failure("documents_created_by_run_fkey")
    assert failure is not None and failure.count == 1
    assert failure.examples == ({"id": "p1", "created_by_run": "run-404"},)


def test_a_wrong_type_is_reported_by_column() -> None:
    rows = {k: [v] for k, v in valid_rows()["runs"][0].items()}
    data = ibis.memtable(rows).mutate(rows_in=ibis.literal("ten"))
    table = CATALOG["runs"]
    data = data.select(
        *[
            data[c] if c in data.columns else ibis.null(table.column(c).dtype).name(c)
            for c in table.column_names
        ]
    )
    report = contract_for("runs").validate(data)
    rules = report.broken_rules
    assert "wrong_dtype(rows_in)" in rules, str(report)
    failure = report.failure("wrong_dtype(rows_in)")
    assert failure is not None and "int64" in failure.description


def test_missing_and_unknown_columns_are_reported() -> None:
    row = dict(valid_rows()["git_repos"][0])
    del row["tracked_ref"]
    row["colour"] = "blue"
    report = contract_for("git_repos").validate(ibis.memtable([row]))
    assert {"unknown_column(colour)", "missing_column(tracked_ref)"} <= set(report.broken_rules)
    missing = report.failure("missing_column(tracked_ref)")
    assert missing is not None and missing.count is None
    assert "use NULL for an absent value" in missing.description


def test_valid_rows_give_a_clean_report(filled: DuckDBBackend) -> None:
    report = contract_for("tasks").validate(filled.table("tasks"))
    assert report.ok
    assert "all 2 rows satisfy the contract" in str(report)
    assert report.to_dict() == {"table": "tasks", "ok": True, "rows": 2, "failures": []}


def test_importing_egregora_leaves_pyarrow_time_zones_alone() -> None:
    """pandera sets PYARROW_IGNORE_TIMEZONE=1, which makes pyarrow move aware instants."""
    import subprocess
    import sys

    code = (
        "import os, pyarrow as pa\n"
        "from datetime import datetime, timedelta, timezone\n"
        "import egregora.storage\n"
        "from egregora.contracts import contract_for\n"
        "contract_for('messages')\n"
        "value = datetime(2026, 1, 5, 11, 30, tzinfo=timezone(timedelta(hours=2)))\n"
        "stored = pa.array([value]).cast(pa.int64())[0].as_py()\n"
        "print(os.environ.get('PYARROW_IGNORE_TIMEZONE'), stored == int(value.timestamp() * 1e6))\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYARROW_IGNORE_TIMEZONE"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.split() == ["None", "True"]
