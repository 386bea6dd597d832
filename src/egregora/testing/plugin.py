"""The pytest plugin installing egregora registers (entry point ``pytest11``): fixtures for
tests of code that reads and writes egregora's tables.

- ``egregora_store``: a fresh store at the latest schema for each test: a DuckDB file in the
  test's temporary folder, or, when ``--egregora-postgres-url`` (else
  ``$EGREGORA_TEST_POSTGRES_URL``) names a PostgreSQL server, a schema of its own there,
  dropped after the test.

It loads nothing of egregora until a test asks for a fixture, so it costs other projects'
test runs nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from egregora.storage import Storage

POSTGRES_ENV = "EGREGORA_TEST_POSTGRES_URL"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("egregora")
    group.addoption(
        "--egregora-postgres-url",
        default=None,
        help=f"PostgreSQL server for egregora_store (a schema per test; default: ${POSTGRES_ENV}, "
        "else a DuckDB file per test)",
    )


def postgres_server(config: pytest.Config) -> str | None:
    """The server ``egregora_store`` uses, or None for DuckDB."""
    given = config.getoption("egregora_postgres_url")
    return str(given) if given else os.environ.get(POSTGRES_ENV) or None


@pytest.fixture(scope="session")
def egregora_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB file migrated once per session, copied for each test's store."""
    from egregora.testing.stores import migrated_duckdb

    return migrated_duckdb(tmp_path_factory.mktemp("egregora") / "template.duckdb")


@pytest.fixture
def egregora_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """A fresh store at the latest schema (DuckDB, or PostgreSQL when a server is named)."""
    from egregora.testing.stores import fresh_store

    server = postgres_server(request.config)
    template = None if server else request.getfixturevalue("egregora_template")
    with fresh_store(tmp_path, server, template) as store:
        yield store
