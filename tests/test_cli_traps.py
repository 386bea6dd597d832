"""What a new user meets on the command line: errors naming fixes the command accepts, and
input refused before anything is written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from egregora.cli.app import app
from egregora.runner.demo import TIMEZONE, sample_export
from egregora.runs import RunStore
from egregora.storage import Storage
from tests.support import egregora_process
from tests.test_cli_startup import _command_paths

# Holds a DuckDB file open for writing until its standard input closes.
_HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def held_duckdb(tmp_path: Path) -> Iterator[Path]:
    """A migrated DuckDB file that another process holds open for writing."""
    db = tmp_path / "held.duckdb"
    made = CliRunner().invoke(app, ["db", "init", "--db", str(db)])
    assert made.exit_code == 0, made.output
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    try:
        yield db
    finally:
        holder.communicate(timeout=60)


def _egregora(*args: str) -> subprocess.CompletedProcess[str]:
    return egregora_process(*args, timeout=120)


@pytest.mark.parametrize(
    "command",
    [["runs", "list"], ["tasks", "list"], ["db", "status"], ["git", "resolve", "x", "a.md", "@0"]],
)
def test_a_locked_database_offers_wait_only_to_commands_that_take_it(
    held_duckdb: Path, command: list[str]
) -> None:
    done = _egregora(*command, "--db", str(held_duckdb))
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "is locked by process" in lines[0], done.stderr
    assert "--wait" not in lines[0]
    assert "No such option" not in done.stderr


def test_a_locked_database_offers_wait_to_migrate_which_takes_it(held_duckdb: Path) -> None:
    done = _egregora("db", "migrate", "--db", str(held_duckdb))
    assert done.returncode != 0
    assert "then retry, or pass --wait SECONDS" in done.stderr, done.stderr
    waited = _egregora("db", "migrate", "--wait", "0.2", "--db", str(held_duckdb))
    assert "is locked by process" in waited.stderr  # the option exists; the file stayed held


# -- refused before anything is written --------------------------------------------------------
@pytest.fixture
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_export(tmp_path_factory.mktemp("export"))


def _everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["run", "missing.zip"], "missing.zip does not exist"),
        (["ingest", "missing.zip"], "missing.zip does not exist"),
        (["ingest", "{export}", "--tz", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
        (["run", "{export}", "--tz", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
        (["run", "{export}", "--site", "{export_folder}"], "is not a site egregora made"),
    ],
    ids=[
        "missing-export",
        "ingest-missing-export",
        "ingest-unknown-zone",
        "unknown-zone",
        "foreign-site-folder",
    ],
)
def test_refused_input_creates_no_database(
    args: list[str], said: str, export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no --db, a run would make .egregora/egregora.duckdb here: a refusal makes nothing."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EGREGORA_DB", raising=False)
    before = _everything_under(export.parent)
    argv = [a.format(export=export, export_folder=export.parent) for a in args]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert said in result.output
    assert _everything_under(tmp_path) == []  # no database, no folder
    assert _everything_under(export.parent) == before  # the site was not written there


def _run(export: Path, db: Path, *extra: str) -> Result:
    return CliRunner().invoke(app, ["run", str(export), "--db", str(db), "--json", *extra])


def _documents(db: Path) -> list[tuple[str, str]]:
    with Storage.open(str(db), read_only=True) as store:
        table = store.to_pyarrow(store.table("documents").select("doc_type", "id"))
    return sorted(zip(table["doc_type"].to_pylist(), table["id"].to_pylist(), strict=True))


@pytest.mark.parametrize(
    ("command", "changed", "named", "kept"),
    [
        ("run", ["--window", "week", "--tz", TIMEZONE], "asks for --window week", "--window day"),
        (
            "run",
            ["--tz", "America/Sao_Paulo"],
            "asks for --tz America/Sao_Paulo",
            "--tz " + TIMEZONE,
        ),
        ("ingest", ["--tz", "Asia/Tokyo"], "asks for --tz Asia/Tokyo", "--tz " + TIMEZONE),
    ],
    ids=["window", "zone", "zone-on-ingest"],
)
def test_a_changed_window_or_zone_is_refused_naming_the_stored_one(
    command: str, changed: list[str], named: str, kept: str, export: Path, tmp_path: Path
) -> None:
    db = tmp_path / "egregora.duckdb"
    first = _run(export, db, "--tz", TIMEZONE)
    assert first.exit_code == 0, first.output
    made = _documents(db)
    assert sum(kind == "post" for kind, _ in made) == 20  # one post a day
    with Storage.open(str(db), read_only=True) as store:
        runs = len(RunStore(store).list(limit=None))
    again = CliRunner().invoke(app, [command, str(export), "--db", str(db), "--json", *changed])
    assert again.exit_code == 2, again.output
    error = json.loads(again.stdout.splitlines()[0])["error"]
    assert error["type"] == "ConfigurationError" and named in error["message"]
    assert f"Run it with {kept}" in error["message"] or f"Give {kept}" in error["message"]
    assert _documents(db) == made  # no weekly posts beside the daily ones, no moved times
    with Storage.open(str(db), read_only=True) as store:
        stored = RunStore(store).list(limit=None)
    assert len(stored) == runs  # refused before a run record was written
    same = _run(export, db, "--tz", TIMEZONE)
    assert same.exit_code == 0, same.output


# -- help -----------------------------------------------------------------------------------------
COMMANDS = [" ".join(p) for p in _command_paths(typer.main.get_command(app))]


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: p or "egregora")
def test_help_answers_dash_h_and_shows_no_bool_placeholder(path: str) -> None:
    words = path.split()
    short = CliRunner().invoke(app, [*words, "-h"], env={"COLUMNS": "200"})
    assert short.exit_code == 0, short.output
    assert (
        short.output == CliRunner().invoke(app, [*words, "--help"], env={"COLUMNS": "200"}).output
    )
    assert "<bool>" not in short.output
    (usage,) = [line for line in short.output.splitlines() if "Usage:" in line]
    assert re.search(r"[{\[][a-z_]+[}\]]", usage) is None, usage  # {export}, [path]
    assert "-h" in short.output and "Usage:" in short.output


def test_an_argument_is_written_in_capitals_in_the_usage_line() -> None:
    shown = CliRunner().invoke(app, ["run", "-h"], env={"COLUMNS": "200"}).output
    assert "run [OPTIONS] {EXPORT}" in shown


def test_every_command_takes_json() -> None:
    root = typer.main.get_command(app)
    lacking = []
    for path in _command_paths(root):
        command = root
        for word in path:
            command = command.commands[word]  # type: ignore[attr-defined]
        if hasattr(command, "commands"):
            continue  # a group: its commands are checked
        if "--json" not in {name for param in command.params for name in param.opts}:
            lacking.append(" ".join(path))
    assert lacking == []


@pytest.mark.parametrize(
    ("args", "said"),
    [(["runs", "list", "--bogus"], "No such option: --bogus"), (["run"], "Missing argument")],
    ids=["unknown-option", "missing-argument"],
)
def test_a_usage_error_under_json_is_one_json_object(args: list[str], said: str) -> None:
    done = CliRunner().invoke(app, [*args, "--json"])
    assert done.exit_code == 2
    error = json.loads(done.stdout)
    assert error["ok"] is False and error["error"]["type"] == "UsageError"
    assert said in error["error"]["message"]
    plain = CliRunner().invoke(app, args)
    assert plain.exit_code == 2 and plain.stdout == ""  # without --json: Typer's own text


@pytest.mark.parametrize(
    "command",
    [
        ["db", "status"],
        ["db", "history"],
        ["db", "verify"],
        ["db", "key"],
        ["runs", "list"],
        ["tasks", "list"],
        ["cache", "stats"],
        ["export", "runs", "--out", "{tmp}/runs.parquet"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_every_json_object_says_ok(command: list[str], tmp_path: Path) -> None:
    db = str(tmp_path / "egregora.duckdb")
    assert CliRunner().invoke(app, ["db", "init", "--db", db]).exit_code == 0
    argv = [word.format(tmp=tmp_path) for word in command]
    done = CliRunner().invoke(app, [*argv, "--db", db, "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["ok"] is True


README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_exit_codes_are_the_codes_commands_exit_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0 done; 1 the answer is no or it failed; 2 refused before it ran."""
    section = README.read_text(encoding="utf-8").split("**Exit codes.**", 1)[1]
    table = section.split("\n\n", 2)[1]  # the table after the heading's blank line
    rows = table.splitlines()[2:]
    assert [row.split("|")[1].strip() for row in rows] == ["0", "1", "2"]
    monkeypatch.chdir(tmp_path)
    db = str(tmp_path / "egregora.duckdb")
    assert CliRunner().invoke(app, ["db", "init", "--db", db]).exit_code == 0
    missing = CliRunner().invoke(app, ["git", "resolve", str(tmp_path), "a.md", "@0", "--db", db])
    assert missing.exit_code == 1  # "the answer is no": nothing synced there
    assert CliRunner().invoke(app, ["runs", "list", "--bogus"]).exit_code == 2  # usage
    assert CliRunner().invoke(app, ["run", "missing.zip", "--db", db]).exit_code == 2  # input
