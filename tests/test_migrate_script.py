"""`egregora db migrate --sql`: a script planned without any database, and printed scripts that
count the rows they copy.

A script from an empty database must build what `egregora db migrate` builds; one from an
earlier migration must keep every row of a database there; a range with a step computed in
Python from each row is refused; and a rebuild's copy stops the script, changing nothing,
rather than lose a row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from egregora.backends import backend_named
from egregora.cli.app import app
from egregora.ddl import statements as sql
from egregora.migrations import catalog_at, shipped_migrations
from egregora.migrations.rebuild import SCRIPT_GENERATIONS
from egregora.schema.model import Catalog
from egregora.storage import DatabaseURL, database_status, migrate_database, verify
from egregora.storage.setup import open_executor
from tests.samples import valid_rows, valid_rows_at
from tests.support import ScriptError, insert_sql, run_script

runner = CliRunner()
CHAIN = shipped_migrations()
HEAD = CHAIN[-1].id
# The first migration whose steps are all SQL from there on: 0008 rewrites pseudonyms in Python.
KEYED = "0008"
AFTER_KEYED = [m.id for m in CHAIN if KEYED <= m.id < HEAD]


def printed(*args: str) -> Any:
    return runner.invoke(app, ["db", "migrate", *args])


def script_of(*args: str) -> str:
    result = printed("--sql", *args)
    assert result.exit_code == 0, result.output
    return str(result.stdout)


def unreachable(url: DatabaseURL, tmp_path: Path) -> str:
    """A --db of ``url``'s engine that no one could open: the script must not try."""
    if url.dsn is None:
        return str(tmp_path / "nowhere" / "egregora.duckdb")
    return "postgresql://postgres@127.0.0.1:1/nowhere"


def fill(url: DatabaseURL, catalog: Catalog, extra_runs: list[dict[str, Any]]) -> None:
    """The sample rows, with the columns ``catalog`` (an earlier schema) declares, and
    ``extra_runs``."""
    with open_executor(url, write=True) as executor:
        executor.begin()
        for table in catalog:
            if table.name == "schema_migrations":
                continue
            rows = valid_rows_at(table) + (extra_runs if table.name == "runs" else [])
            for row in rows:
                statement = insert_sql(table.name, row.keys(), executor.dialect)
                executor.execute(statement, list(row.values()))
        executor.commit()


def rows_of(url: DatabaseURL, catalog: Catalog) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every data table, the columns ``catalog`` declares, in key order."""
    out = {}
    with open_executor(url, write=False) as executor:
        for table in catalog:
            if table.name == "schema_migrations":
                continue
            query = sql.select_rows(
                table.name, table.column_names, executor.dialect, order_by=table.primary_key
            )
            out[table.name] = [tuple(r) for r in executor.query(query)]
    return out


def run_chain(depth: int) -> list[dict[str, Any]]:
    """Runs each the parent of the next, ``depth`` generations under a sample run."""
    started = valid_rows()["runs"][0]["started_at"]
    return [
        {
            "run_id": f"chain-{i}",
            "parent_run_id": f"chain-{i - 1}" if i else "run-1",
            "stage": "s",
            "status": "succeeded",
            "started_at": started,
        }
        for i in range(depth)
    ]


def test_a_script_from_an_empty_database_builds_what_migrate_builds(
    url: DatabaseURL, tmp_path: Path
) -> None:
    nowhere = unreachable(url, tmp_path)
    script = script_of("--db", nowhere)
    assert not (tmp_path / "nowhere").exists()  # the --db only named the engine
    first = script.splitlines()[0]
    assert first.startswith(f"-- egregora db migrate --sql: {url.dialect}, from an empty database")
    assert "%s" not in script and "?" not in script.replace("'?'", "")
    run_script(url, script)
    status = database_status(url)
    assert (status.current, status.pending, status.differences) == (HEAD, (), ())
    assert [a.id for a in status.applied] == [m.id for m in CHAIN]
    assert migrate_database(url).applied == ()
    assert verify(url) == []


@pytest.mark.parametrize("start", AFTER_KEYED)
def test_a_script_from_an_earlier_migration_keeps_every_row(url: DatabaseURL, start: str) -> None:
    migrate_database(url, target=start)
    earlier = catalog_at(start)
    fill(url, earlier, run_chain(3))
    before = rows_of(url, earlier)
    run_script(url, script_of("--dialect", url.dialect, "--from", start))
    status = database_status(url)
    assert (status.current, status.differences) == (HEAD, ())
    assert [a.id for a in status.applied] == [m.id for m in CHAIN]
    assert rows_of(url, earlier) == before  # columns added since were filled, none lost
    assert verify(url) == []


def test_a_script_to_a_target_stops_there(url: DatabaseURL) -> None:
    migrate_database(url, target="0009")
    run_script(url, script_of("--dialect", url.dialect, "--from", "0009", "--to", "0011"))
    status = database_status(url)
    assert (status.current, status.differences) == ("0011", ())


def test_a_range_with_a_step_computed_in_python_is_refused() -> None:
    for start in ("0001", "0007"):
        result = printed("--sql", "--from", start, "--json")
        assert result.exit_code == 1, result.output
        error = json.loads(result.stdout)["error"]
        assert error["type"] == "MigrationError"
        assert f"migration {KEYED}" in error["message"]
        assert "egregora db migrate --dry-run --db URL" in error["message"]
    # From an empty database there are no rows to compute: the whole chain is written.
    assert printed("--sql", "--json").exit_code == 0


def test_json_holds_the_script_and_says_it_was_planned_offline() -> None:
    result = printed("--sql", "--dialect", "postgres", "--from", "0012", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ok"] is True and payload["offline"] is True and payload["dry_run"] is True
    assert (payload["from"], payload["to"], payload["dialect"]) == ("0012", HEAD, "postgres")
    assert payload["applied"] == [m.id for m in CHAIN if m.id > "0012"]
    assert payload["sql"][0] == "BEGIN" and payload["sql"][-1] == "COMMIT"


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--from", "0009"], "--from"),
        (["--dialect", "postgres"], "--dialect"),
        (["--sql", "--dry-run"], "--dry-run"),
        (["--sql", "--allow-edited"], "--allow-edited"),
        (["--sql", "--wait", "3"], "--wait"),
    ],
)
def test_options_of_the_other_mode_are_usage_errors(
    args: list[str], option: str, tmp_path: Path
) -> None:
    db = tmp_path / "egregora.duckdb"
    result = printed(*args, "--db", str(db), "--json")
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "UsageError" and option in error["message"]
    assert not db.exists()


def test_unknown_and_backward_ranges_are_refused() -> None:
    for args, words in (
        (["--from", "0099"], "no migration '0099'"),
        (["--to", "0099"], "no migration '0099'"),
        (["--from", "0011", "--to", "0009"], "downgrades are not supported"),
    ):
        result = printed("--sql", *args, "--json")
        assert result.exit_code == 1, result.output
        assert words in json.loads(result.stdout)["error"]["message"]


# -- rebuilds in printed scripts (DuckDB: the engine that rebuilds tables) ------------------


def test_a_dry_run_script_copies_every_generation_of_runs(tmp_path: Path) -> None:
    """Migration 0007 rebuilds ``runs`` on DuckDB: a run and its parent cannot be copied in
    one INSERT, so the script copies a generation at a time, and counts what it kept."""
    url = DatabaseURL.parse(str(tmp_path / "egregora.duckdb"))
    migrate_database(url, target="0006")
    earlier = catalog_at("0006")
    fill(url, earlier, run_chain(SCRIPT_GENERATIONS - 1))  # with run-1: SCRIPT_GENERATIONS deep
    before = rows_of(url, earlier)["runs"]
    result = printed("--dry-run", "--db", str(url.path))
    assert result.exit_code == 0, result.output
    run_script(url, result.stdout)
    assert database_status(url).current == HEAD
    assert rows_of(url, earlier)["runs"] == before


def test_a_script_that_would_lose_rows_stops_and_changes_nothing(tmp_path: Path) -> None:
    url = DatabaseURL.parse(str(tmp_path / "egregora.duckdb"))
    migrate_database(url, target="0006")
    earlier = catalog_at("0006")
    fill(url, earlier, run_chain(SCRIPT_GENERATIONS + 2))  # deeper than a script copies
    before = rows_of(url, earlier)
    result = printed("--dry-run", "--db", str(url.path))
    assert result.exit_code == 0, result.output
    with pytest.raises(ScriptError) as stopped:
        run_script(url, result.stdout)
    total = len(before["runs"])
    assert "0007: rebuilding runs did not keep every row; nothing was changed: kept " in str(
        stopped.value
    )
    assert f" of {total} rows" in str(stopped.value)
    assert database_status(url).current == "0006"
    assert rows_of(url, earlier) == before


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_the_count_check_stops_only_when_counts_differ(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url: DatabaseURL
    if engine == "duckdb":
        url = DatabaseURL.parse(str(tmp_path / "check.duckdb"))
        duckdb.connect(str(url.path)).close()
    else:
        url = request.getfixturevalue("pg_url")
    backend = backend_named(engine)
    run_script(url, 'CREATE TABLE "t" (x INTEGER); CREATE TABLE "s%" (x INTEGER);'
               ' INSERT INTO "t" VALUES (1); INSERT INTO "s%" VALUES (1);')  # fmt: skip
    check = backend.same_count_check("t", "s%", "copying t (100% sure)")
    run_script(url, check + ";")
    run_script(url, 'INSERT INTO "s%" VALUES (2);')
    with pytest.raises(ScriptError) as stopped:
        run_script(url, check + ";")
    assert "copying t (100% sure): kept 1 of 2 rows" in str(stopped.value)
