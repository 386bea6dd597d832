"""The code keeps its promises about structure: layering, no values in SQL text, lint and types."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "egregora"

# Each layer may import only the layers listed for it (and itself); nothing imports upward.
ALLOWED: dict[str, set[str]] = {
    "schema": set(),
    "contracts": {"schema", "errors"},
    "ddl": {"schema", "constants"},
    # one object per engine, below everything that talks
    "backends": {"schema", "ddl", "errors", "drafts"},
    "migrations": {
        "schema",
        "ddl",
        "backends",
        "errors",
        "pseudonyms",
        "",
    },  # "" is the package root, for __version__
    "storage": {
        *("schema", "ddl", "backends", "migrations", "contracts", "errors", "pseudonyms"),
        *("drafts", "constants"),  # drafts: a file written under a private name, then renamed
    },
    "git": {"schema", "storage", "errors", "clock", "lazy"},  # a service on storage
    "assets": {"schema", "storage", "errors", "digest", "clock"},  # a service on storage
    "runs": {"schema", "storage", "errors", "digest", "clock", ""},  # "" for __version__
    "tasks": {"schema", "storage", "errors", "clock", "constants"},  # a service on storage
    "media": {"schema", "storage", "backends", "errors", "drafts"},  # a service on storage
    # on the services
    "etl": {
        *("schema", "storage", "errors", "digest", "runs", "pseudonyms", "media", "constants"),
        "lazy",
    },
    # on the ETL; a rekey rewrites stored pseudonyms through the migrations' rewrite
    "runner": {
        *("storage", "errors", "assets", "runs", "tasks", "etl", "pseudonyms", "migrations"),
        *("media", "drafts", "constants", "lazy"),
    },
    "cli": {
        *("schema", "ddl", "backends", "migrations", "contracts", "storage", "errors", ""),
        *("git", "assets", "runs", "tasks", "etl", "runner", "pseudonyms", "constants"),
    },
    # for other projects' tests: contracts and fresh stores, on the storage gateway
    "testing": {"schema", "contracts", "storage"},
    "errors": {"contracts"},  # for a type annotation only
    "digest": {"errors"},  # content hashing, beside errors at the root
    "clock": set(),  # the current time services read, beside errors at the root
    "drafts": set(),  # how a file is written under a private name, and its leftovers found
    "pseudonyms": {"errors"},  # how people and chats are named, from the root up
    # values several layers share and the command line's options name, beside the root
    "constants": set(),
    "lazy": set(),  # package names imported on first use (PEP 562), beside the root
}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _layer(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py") if len(relative.parts) > 1 else relative.stem


def _egregora_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            if name == "egregora":
                found.add("")
            elif name.startswith("egregora."):
                found.add(name.split(".")[1])
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_dependencies_point_one_way(path: Path) -> None:
    layer = _layer(path)
    if layer in {"__init__", "__main__"}:
        return
    assert layer in ALLOWED, f"{path}: new top-level module {layer!r} needs a place in ALLOWED"
    upward = _egregora_imports(path) - ALLOWED[layer] - {layer}
    assert not upward, f"{path.relative_to(ROOT)} imports {sorted(upward)} above its layer"


_SQL_CALLS = {"execute", "executemany", "raw_sql", "sql"}


def _formats_text(node: ast.expr) -> bool:
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    )


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_sql_text_is_built_by_string_formatting(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _SQL_CALLS
            and node.args
        ):
            assert not _formats_text(node.args[0]), (
                f"{path.relative_to(ROOT)}:{node.lineno} formats text into SQL; build it with "
                "sqlglot and pass values as parameters"
            )


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"{name} is not installed in this environment; run `make test`")
    return found


def test_ruff_is_clean() -> None:
    for args in (["check", "."], ["format", "--check", "."]):
        done = subprocess.run([_tool("ruff"), *args], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_is_clean() -> None:
    done = subprocess.run([_tool("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


_DELETING_METHODS = {"unlink", "rmdir", "rmtree"}  # Path methods and shutil
_DELETING_OS = {"remove", "rename", "replace", "truncate", "unlink", "rmdir"}
# The only functions that may delete files: they remove egregora's own creation drafts.
_MAY_DELETE = {
    ("backends/duckdb.py", "_create_duckdb_file"),
    ("backends/duckdb.py", "_remove_abandoned_drafts"),
    ("drafts.py", "remove_abandoned_drafts"),  # drafts of writers that are gone
    ("media/folder.py", "store_files"),  # a media file's draft, and what a failed call made
    ("media/folder.py", "undo"),  # media files of an ingest whose rows failed, its journal
    ("media/folder.py", "done"),  # the journal of an ingest whose rows are committed
    # what a dead ingest's journal lists and no document names, abandoned drafts and journals
    ("media/folder.py", "sweep"),
    ("runner/site.py", "_replace_file"),  # a page egregora wrote (its manifest says), or a draft
    # the folders its removed pages left empty (rmdir refuses a folder holding any file)
    ("runner/site.py", "_remove_empty_parents"),
    ("storage/export.py", "export_table"),  # its own draft, once linked or renamed into place
    ("storage/export.py", "_put"),  # the file `egregora export --replace` is asked to replace
    # a page egregora wrote and nobody edited (its manifest and its bytes say), no longer made
    ("runner/site.py", "_remove_no_longer_made"),
}


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_code_path_deletes_or_replaces_a_file(path: Path) -> None:
    relative = str(path.relative_to(PACKAGE))
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef):
            continue
        for node in ast.walk(function):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
            if node.func.attr in _DELETING_METHODS or (
                owner in {"os", "shutil"} and node.func.attr in _DELETING_OS
            ):
                assert (relative, function.name) in _MAY_DELETE, (
                    f"{relative}:{node.lineno} {function.name} calls {node.func.attr}(): "
                    "egregora never deletes or recreates a user's files"
                )


# -- the pipeline speaks Ibis -------------------------------------------------------------------
PIPELINE = ("etl", "runner")
# Doors to raw SQL: Storage.query/change/execute, an Ibis backend's sql/raw_sql, a connection.
_RAW = {"execute", "executemany", "raw_sql", "sql", "query", "change"}
_SQL_TEXT = re.compile(
    r"\b(select\b[^;]*\bfrom|insert\s+into|update\s+\w+\s+set|delete\s+from"
    r"|(create|drop|alter)\s+(temp\w*\s+)?(table|index|view)|merge\s+into)\b",
    re.IGNORECASE | re.DOTALL,
)


def sql_findings(source: str) -> list[str]:
    """Where ``source`` holds SQL text, runs raw statements, or reaches for a connection."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _SQL_TEXT.search(node.value):
                found.append(f"line {node.lineno}: SQL text {node.value[:40]!r}")
        elif isinstance(node, ast.Attribute) and (node.attr in _RAW or node.attr == "con"):
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            module = node.module if isinstance(node, ast.ImportFrom) else None
            for name in [*names, module or ""]:
                if name.split(".")[0] in {"duckdb", "sqlglot", "psycopg"}:
                    found.append(f"line {node.lineno}: imports {name}")
    return found


PIPELINE_MODULES = [p for layer in PIPELINE for p in sorted((PACKAGE / layer).rglob("*.py"))]


@pytest.mark.parametrize("path", PIPELINE_MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_etl_and_runner_hold_no_sql_and_run_no_raw_statement(path: Path) -> None:
    findings = sql_findings(path.read_text(encoding="utf-8"))
    assert not findings, (
        f"{path.relative_to(ROOT)} must read and write through Storage's typed Ibis tables: "
        + "; ".join(findings)
    )


def test_the_sql_check_finds_what_it_looks_for() -> None:
    assert PIPELINE_MODULES and {p.parent.name for p in PIPELINE_MODULES} >= set(PIPELINE)
    bad = [
        'store.query("SELECT id FROM documents WHERE doc_type = ?", ["post"])',
        'text = """insert into messages values (1)"""',
        "store.con.register('x', table)",
        "backend.raw_sql(statement)",
        "import duckdb",
        "from sqlglot import exp",
        "store.change(statement)",
    ]
    for source in bad:
        assert sql_findings(source), source
    good = 'rows = store.to_pyarrow(t.filter(t.kind == "text").select("event_id"))\n"a select few"'
    assert sql_findings(good) == []


# -- engine differences live in the backends ------------------------------------------------------
ENGINE_NAMES = {"duckdb", "postgres", "postgresql"}
ENGINE_CLASSES = {"DuckDBExecutor", "PostgresExecutor", "DuckDB", "Postgres"}


def engine_comparisons(source: str) -> list[str]:
    """Places that decide by an engine's name or class instead of asking a backend."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            named = [
                s.value for s in sides if isinstance(s, ast.Constant) and s.value in ENGINE_NAMES
            ]
            if named:
                found.append(f"line {node.lineno} compares with {named[0]!r}")
            for side in sides:
                if isinstance(side, ast.Tuple | ast.List | ast.Set) and any(
                    isinstance(e, ast.Constant) and e.value in ENGINE_NAMES for e in side.elts
                ):
                    found.append(f"line {node.lineno} tests membership in engine names")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "isinstance"
            and len(node.args) == 2
        ):
            classes = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
            names = {c.id if isinstance(c, ast.Name) else getattr(c, "attr", "") for c in classes}
            if names & ENGINE_CLASSES:
                found.append(f"line {node.lineno} tests for an engine's class")
    return found


OUTSIDE_BACKENDS = [p for p in _modules() if _layer(p) != "backends"]


@pytest.mark.parametrize("path", OUTSIDE_BACKENDS, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_engine_names_are_compared_only_in_the_backends(path: Path) -> None:
    findings = engine_comparisons(path.read_text(encoding="utf-8"))
    assert not findings, (
        f"{path.relative_to(ROOT)} decides by engine; ask the backend's capabilities or "
        "methods (egregora/backends) instead: " + "; ".join(findings)
    )


def test_the_engine_check_finds_what_it_looks_for() -> None:
    bad = [
        'if executor.dialect == "postgres":\n    pass',
        'if "duckdb" != url.dialect:\n    pass',
        'ok = dialect in ("duckdb", "postgres")',
        "if isinstance(executor, DuckDBExecutor):\n    pass",
        "if isinstance(e, (int, executor_mod.PostgresExecutor)):\n    pass",
    ]
    for source in bad:
        assert engine_comparisons(source), source
    good = 'sql = tree.sql("duckdb")\nif backend.alters_constraints:\n    pass\nx = a == "b"'
    assert engine_comparisons(good) == []
