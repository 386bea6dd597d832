"""Docs derived from the catalog stay in step with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from egregora.migrations import shipped_migrations
from egregora.schema.catalog import CATALOG
from egregora.schema.reference import markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_schema_reference_is_up_to_date() -> None:
    current = (DOCS / "schema.md").read_text(encoding="utf-8")
    assert current == markdown(CATALOG), "docs/schema.md is stale: run `make docs`"


def test_make_docs_command_prints_the_schema_reference_byte_for_byte() -> None:
    """`make docs` is `egregora db schema --format markdown > docs/schema.md`."""
    script = Path(sys.executable).parent / "egregora"
    done = subprocess.run(
        [str(script), "db", "schema", "--format", "markdown"],
        capture_output=True,
        check=False,
        env={**os.environ, "COLUMNS": "40"},  # a narrow terminal must not wrap the output
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""
    assert done.stdout == (DOCS / "schema.md").read_bytes(), "docs/schema.md is stale: make docs"


def test_schema_reference_mentions_every_column_and_rule() -> None:
    text = (DOCS / "schema.md").read_text(encoding="utf-8")
    for table in CATALOG:
        assert f"### {table.name}" in text
        for column in table.columns:
            assert f"| `{column.name}` |" in text
        for rule in table.rules:
            assert f"`{rule.name}`" in text


def test_every_index_is_justified_in_the_evolution_plan() -> None:
    plan = (DOCS / "schema-evolution-plan.md").read_text(encoding="utf-8")
    rows = {
        line.split("|")[1].strip(): line for line in plan.splitlines() if line.startswith("| `")
    }
    for table in CATALOG:
        for index in table.indexes:
            row = rows.get(f"`{index.name}`")
            assert row is not None, f"{index.name} is not in docs/schema-evolution-plan.md"
            assert index.serves in row, f"{index.name}: the plan must name the query it serves"
            assert ", ".join(index.dialects) in row
    for table in CATALOG:
        for key in table.uniques:
            assert f"`{key.name}`" in plan


def test_every_migration_is_in_the_history() -> None:
    plan = (DOCS / "schema-evolution-plan.md").read_text(encoding="utf-8")
    history = plan.split("## History", 1)[1]
    for migration in shipped_migrations():
        assert f"Migration {migration.id}" in history, migration.id
