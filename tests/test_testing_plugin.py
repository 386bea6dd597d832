"""egregora.testing for the pipeline's developers: the pytest plugin installed with egregora
and ``assert_conforms``.

The first test is a project of someone else's: a folder with one test file and no conftest,
run by pytest with the egregora installed here; the plugin's fixture and the checks must work
there as they do in this suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from egregora.contracts import contract_for
from egregora.schema.catalog import CATALOG
from egregora.storage import Storage
from egregora.testing import as_table, assert_conforms
from egregora.testing.plugin import POSTGRES_ENV

STARTED = datetime(2024, 5, 1, 9, tzinfo=UTC)
RUN = {"run_id": "r1", "stage": "ingest", "status": "running", "started_at": STARTED}

THEIR_TESTS = """
from datetime import UTC, datetime

import pytest

from egregora.testing import assert_conforms

RUN = {"run_id": "r1", "stage": "ingest", "status": "running",
       "started_at": datetime(2024, 5, 1, 9, tzinfo=UTC)}


def test_a_fresh_store_for_each_test(egregora_store):
    assert egregora_store.table("runs").count().execute() == 0
    egregora_store.write("runs", [RUN])
    assert egregora_store.table("runs").count().execute() == 1


def test_and_again_empty(egregora_store):
    assert egregora_store.table("runs").count().execute() == 0


def test_their_rows_conform():
    assert_conforms("runs", [RUN])


def test_their_broken_rows_fail_with_the_report():
    with pytest.raises(AssertionError, match="runs_status_values .1 row.: status is one of"):
        assert_conforms("runs", [dict(RUN, status="exploded")])
"""


def their_project(folder: Path, *args: str, server: str | None = None) -> str:
    """pytest in a project of one test file, no conftest and no configuration; its output."""
    (folder / "test_theirs.py").write_text(THEIR_TESTS, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != POSTGRES_ENV}
    if server is not None:
        env[POSTGRES_ENV] = server
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_project_of_its_own_uses_the_plugin_without_a_conftest(tmp_path: Path) -> None:
    out = their_project(tmp_path)
    assert "4 passed" in out
    assert not list(tmp_path.glob("conftest.py"))


def test_the_plugin_puts_their_stores_on_postgresql_when_asked(
    tmp_path: Path, postgres_url: str
) -> None:
    out = their_project(tmp_path, server=postgres_url)
    assert "4 passed" in out
    import psycopg

    with psycopg.connect(postgres_url) as con:  # each test's schema was dropped after it
        left = con.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'egregora\\_t\\_%'"
        ).fetchone()
    assert left == (0,)


def test_the_option_names_the_server_too(tmp_path: Path, postgres_url: str) -> None:
    out = their_project(tmp_path, f"--egregora-postgres-url={postgres_url}")
    assert "4 passed" in out


def test_egregora_store_here_is_migrated_and_empty(egregora_store: Storage) -> None:
    for table in ("runs", "documents", "messages", "tasks"):
        assert egregora_store.table(table).count().execute() == 0


@pytest.mark.parametrize("kind", ["dicts", "arrow", "batch", "pandas", "ibis"])
def test_every_form_of_data_is_checked(kind: str) -> None:
    bad = [dict(RUN, status="exploded", run_id=f"r{i}") for i in range(2)]
    forms = {
        "dicts": lambda rows: rows,
        "arrow": lambda rows: as_table("runs", rows).to_pyarrow(),
        "batch": lambda rows: as_table("runs", rows).to_pyarrow().to_batches()[0],
        # as a notebook makes one: every column, integers with gaps as floats
        "pandas": lambda rows: pd.DataFrame(rows, columns=list(CATALOG["runs"].column_names)),
        "ibis": lambda rows: as_table("runs", rows),
    }
    report = assert_conforms("runs", forms[kind]([RUN]))
    assert report.ok and report.rows == 1
    with pytest.raises(AssertionError) as failed:
        assert_conforms("runs", forms[kind](bad))
    expected = contract_for("runs").validate(as_table("runs", bad))
    assert str(failed.value) == str(expected)
    assert expected.broken_rules == ("runs_status_values",)


def test_a_missing_type_or_extra_column_is_named() -> None:
    with pytest.raises(AssertionError, match="started_at"):
        assert_conforms("runs", [dict(RUN, started_at="yesterday")])
    with pytest.raises(AssertionError, match="color"):
        assert_conforms("runs", [dict(RUN, color="red")])
    with pytest.raises(AssertionError, match="runs_run_id_not_null"):
        assert_conforms("runs", [dict(RUN, run_id=None)])


def test_what_cannot_be_checked_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="no table 'run' in the catalog"):
        assert_conforms("run", [RUN])
    with pytest.raises(TypeError, match="a list of dicts"):
        assert_conforms("runs", {"run_id": "r1"})
    with pytest.raises(TypeError, match="mappings of column to value"):
        assert_conforms("runs", [("r1", "ingest")])


def test_an_ibis_table_is_judged_by_its_own_types() -> None:
    typed = as_table("runs", [RUN])
    as_text = typed.mutate(started_at=typed.started_at.cast("string"))
    with pytest.raises(AssertionError, match=r"wrong_dtype\(started_at\)"):
        assert_conforms("runs", as_text)
