"""``egregora`` saying how far a migration got; run by tests/test_migrations_crash.py.

``python _migrate_child.py PAUSE_AT ARG...`` runs the command line ``egregora ARG...`` in this
process, having made it say on stdout, as it goes:

``linking``
    before a new database file, made under a private name, is linked into place.
``waiting``
    the first time opening the database finds it held and waits to try again.
``step <n> <kind> <migration> <what>``
    before each step a migration takes on a DuckDB database: n counts the steps from 0, kind
    is ``begin``, ``execute`` or ``commit``, what is the first words of the statement.
``migrated``
    once every migration is committed, before the database is closed.

On the line PAUSE_AT names it stops and waits to be killed: ``linking``, ``migrated``,
``step <n>``, or ``<kind> <migration>`` (such as ``commit 0001``); ``none`` names none. The
command's own output follows these lines. The changes are made in this process only, and only
the installed egregora package is imported (not the tests package).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import egregora.migrations.engine as engine
import egregora.storage.setup as setup
from egregora.backends import duckdb as duckdb_backend
from egregora.backends.duckdb import connect_duckdb
from egregora.cli.app import main as egregora
from egregora.migrations.executor import DuckDBExecutor

PAUSE_AT = "none"


def mark(line: str, *names: str) -> None:
    """Say ``line``; stop there if PAUSE_AT names it (by its start, or one of ``names``)."""
    print(line, flush=True)
    if line == PAUSE_AT or line.startswith(PAUSE_AT + " ") or PAUSE_AT in names:
        sys.stdin.readline()  # the parent kills this process; one that goes away ends it
        raise SystemExit("the parent went away without killing this process")


def report_steps() -> None:
    """Say each step of a migration, and when all are committed."""
    steps = 0
    current = "-"  # the migration being applied
    apply_one, migrate, execute = engine._apply, engine.migrate, DuckDBExecutor.execute
    begin, commit = DuckDBExecutor.begin, DuckDBExecutor.commit

    def step(kind: str, run: Callable[[], None], what: str = "") -> None:
        nonlocal steps
        mark(" ".join(filter(None, ["step", str(steps), kind, current, what])), f"{kind} {current}")
        steps += 1
        run()

    def applying(executor: Any, migration: Any, *args: Any) -> None:
        nonlocal current
        current = migration.id
        apply_one(executor, migration, *args)

    def executing(self: DuckDBExecutor, sql: str, params: Any = ()) -> None:
        step("execute", lambda: execute(self, sql, params), " ".join(sql.split()[:3]))

    def beginning(self: DuckDBExecutor) -> None:
        step("begin", lambda: begin(self))

    def committing(self: DuckDBExecutor) -> None:
        step("commit", lambda: commit(self))

    def migrating(*args: Any, **kwargs: Any) -> Any:
        result = migrate(*args, **kwargs)
        mark("migrated")
        return result

    engine._apply = applying  # type: ignore[assignment]
    setup.migrate = migrating  # type: ignore[attr-defined]
    DuckDBExecutor.execute = executing  # type: ignore[method-assign]
    DuckDBExecutor.begin = beginning  # type: ignore[method-assign]
    DuckDBExecutor.commit = committing  # type: ignore[method-assign]


def report_opening() -> None:
    """Say when a new file is linked into place, and when opening first waits for the lock."""
    link = os.link
    waited = False

    def linking(source: Any, target: Any, **kwargs: Any) -> None:
        mark("linking")
        link(source, target, **kwargs)

    def pause(seconds: float) -> None:
        nonlocal waited
        if not waited:
            mark("waiting")
            waited = True
        time.sleep(seconds)

    def connect(*args: Any, **kwargs: Any) -> Any:
        return connect_duckdb(*args, pause=pause, **kwargs)

    os.link = linking  # type: ignore[assignment]
    duckdb_backend.connect_duckdb = connect


if __name__ == "__main__":
    PAUSE_AT, *arguments = sys.argv[1:]
    report_steps()
    report_opening()
    sys.argv = ["egregora", *arguments]
    egregora()
