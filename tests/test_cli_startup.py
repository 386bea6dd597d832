"""The command line starts light: help, version and completion load no engine and no data code,
and a command loads only what it uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from egregora import __version__
from egregora.backends import BACKENDS
from egregora.cli.app import app
from egregora.cli.db import DialectName
from tests.gitrepo import T0, GitRepo

# Packages that load a database engine, Arrow, a dataframe or an image library.
HEAVY_PACKAGES = frozenset(
    {"ibis", "duckdb", "_duckdb", "psycopg", "pyarrow", "pandas", "numpy", "sqlglot"}
    | {"pandera", "PIL", "whatstk"}
)
# egregora's layers that stand on those packages (or on the layers that do).
HEAVY_LAYERS = frozenset(
    {"storage", "backends", "runner", "etl", "assets", "git", "migrations", "ddl", "schema"}
    | {"contracts", "media", "runs", "tasks"}
)

# Runs the command line as the `egregora` script does, then writes its exit code and every
# module loaded by then to the file named by its first argument.
_CHILD = """
import json, sys
report, argv = sys.argv[1], json.loads(sys.argv[2])
sys.argv = ["egregora", *argv]
code = 0
try:
    from egregora.cli.app import main
    main()
except SystemExit as stop:
    code = 0 if stop.code is None else stop.code if isinstance(stop.code, int) else 1
finally:
    with open(report, "w", encoding="utf-8") as out:
        json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def _command_paths(command: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every group and command under ``command``, as the words that name it."""
    found = [path]
    if isinstance(command, TyperGroup):
        for name, sub in sorted(command.commands.items()):
            found += _command_paths(sub, (*path, name))
    return found


COMMANDS = _command_paths(typer.main.get_command(app))


def _egregora(
    argv: list[str], tmp_path: Path, env: dict[str, str] | None = None
) -> tuple[int, str, list[str]]:
    """Exit code, standard output and loaded modules of `egregora ARGV` in a new interpreter."""
    report = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(report), json.dumps(argv)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=120,
    )
    assert report.exists(), done.stderr
    print(done.stderr)  # shown by pytest when an assertion below fails
    found = json.loads(report.read_text(encoding="utf-8"))
    return found["code"], done.stdout, found["modules"]


def _heavy(
    modules: list[str],
    packages: frozenset[str] = HEAVY_PACKAGES,
    layers: frozenset[str] = HEAVY_LAYERS,
) -> list[str]:
    """The modules among ``modules`` that belong to one of ``packages`` or egregora's ``layers``."""
    return [
        name
        for name in modules
        if name.split(".")[0] in packages
        or (name.startswith("egregora.") and name.split(".")[1] in layers)
    ]


def test_every_group_and_command_is_enumerated() -> None:
    assert {(), ("db",), ("git",), ("git", "resolve"), ("db", "schema"), ("run",)} <= set(COMMANDS)
    assert ("tasks", "purge") in COMMANDS and ("work",) in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "egregora")
def test_help_loads_no_engine_and_no_data_code(path: tuple[str, ...], tmp_path: Path) -> None:
    code, out, modules = _egregora([*path, "--help"], tmp_path)
    assert code == 0
    assert f"Usage: egregora {' '.join(path)}".rstrip() in " ".join(out.split())
    assert _heavy(modules) == []


def test_the_dialect_choices_are_the_backends() -> None:
    """`db schema --dialect` offers, from a light declaration, every engine that has a backend."""
    assert [d.value for d in DialectName] == list(BACKENDS)


def test_version_and_bare_help_load_no_engine_and_no_data_code(tmp_path: Path) -> None:
    code, out, modules = _egregora(["--version"], tmp_path)
    assert (code, out) == (0, __version__ + "\n")
    assert _heavy(modules) == []
    code, out, modules = _egregora([], tmp_path)  # no arguments: the help
    assert "Usage: egregora" in out and "resolve" not in out and "git" in out
    assert _heavy(modules) == []


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("egregora ", "git"),
        ("egregora git re", "resolve"),
        ("egregora git resolve --", "--batch"),
        ("egregora db schema --format ", "mermaid"),
        ("egregora db schema --dialect ", "postgres"),
        ("egregora tasks purge --", "--status"),
        ("egregora run --", "--lease"),
    ],
)
def test_shell_completion_loads_no_engine_and_no_data_code(
    words: str, expected: str, tmp_path: Path
) -> None:
    """What the bash script of `egregora --install-completion` asks, answered light."""
    cword = str(len(words.split(" ")) - 1)
    env = {"_EGREGORA_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword}
    code, out, modules = _egregora([], tmp_path, env)
    assert code == 0
    assert expected in out.split()
    assert _heavy(modules) == []


def test_show_completion_loads_no_engine_and_no_data_code(tmp_path: Path) -> None:
    code, out, modules = _egregora(["--show-completion", "bash"], tmp_path)
    assert code == 0 and "_EGREGORA_COMPLETE=complete_bash" in out
    assert _heavy(modules) == []


def test_git_resolve_loads_neither_the_runner_nor_the_etl_nor_the_asset_cache(
    tmp_path: Path,
) -> None:
    repo = GitRepo(tmp_path / "repo")
    repo.write("notes.md", "one\n")
    first = repo.commit("first", T0)
    repo.write("notes.md", "two\n")
    repo.commit("second", T0 + 100)
    db = str(tmp_path / "git.duckdb")
    synced = CliRunner().invoke(app, ["git", "sync", str(repo.root), "--db", db])
    assert synced.exit_code == 0, synced.output
    argv = ["git", "resolve", str(repo.root), "notes.md", f"@{T0 + 50}", "--db", db]
    code, out, modules = _egregora(argv, tmp_path)
    assert (code, out) == (0, first + "\n")
    assert "egregora.git.resolver" in modules  # the command really ran
    # Storage, its engine and Arrow it needs; what makes documents, chats or cards it does not.
    unused = _heavy(
        modules,
        frozenset({"pandera", "PIL", "whatstk"}),
        frozenset({"runner", "etl", "assets", "media", "tasks", "runs"}),
    )
    assert unused == []


def test_work_loads_neither_the_ingest_nor_the_site_builder(tmp_path: Path) -> None:
    """A worker process writes windows: started once per worker, it pays for no ingest."""
    db = str(tmp_path / "queue.duckdb")
    made = CliRunner().invoke(app, ["db", "init", "--db", db])
    assert made.exit_code == 0, made.output
    code, out, modules = _egregora(["work", "--until-empty", "--db", db, "--json"], tmp_path)
    assert code == 0 and json.loads(out)["tasks"] == 0
    assert "egregora.runner.execute" in modules  # the command really ran
    etl = [m for m in modules if m.split(".")[:2] == ["egregora", "etl"]]
    assert etl == ["egregora.etl", "egregora.etl.formats"]  # the name rules only
    publishing = {"egregora.runner.pipeline", "egregora.runner.publish", "egregora.runner.site"}
    assert publishing.isdisjoint(modules)
    assert _heavy(modules, frozenset({"pandera", "PIL", "whatstk"}), frozenset()) == []
