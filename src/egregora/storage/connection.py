"""Opening databases, with errors that say what to do instead of raw driver messages."""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import ibis
from ibis.backends.duckdb import Backend as DuckDBBackend

from egregora.errors import DatabaseError, DatabaseLockedError, DatabaseNotFoundError
from egregora.storage.url import DatabaseURL

_LOCK_PID = re.compile(r"PID (\d+)")
_DRAFT = ".creating-"
LOCK_RETRY_INTERVAL = 0.05  # seconds between attempts to open a file another process holds


def connect_duckdb(
    url: DatabaseURL,
    *,
    read_only: bool = False,
    create: bool = True,
    timeout: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], None] = time.sleep,
) -> DuckDBBackend:
    """Open the DuckDB database at ``url`` through Ibis.

    A missing file is created (with its folder) only when ``create`` is true and the database
    is opened for writing; otherwise the error says how to create it. While another process
    holds the file, opening is retried every ``LOCK_RETRY_INTERVAL`` seconds, waited with
    ``pause``, until ``timeout`` seconds have passed on ``clock``; with no timeout it is tried
    once. (Tests pass their own ``clock`` and ``pause`` to see the waiting.)
    """
    if url.backend != "duckdb":
        raise DatabaseError(f"{url} is not a DuckDB database")
    if url.path is None:
        return _configured(ibis.duckdb.connect(":memory:"))
    path = url.path
    if not path.exists():
        if read_only or not create:
            raise DatabaseNotFoundError(
                f"no database at {path}; create it with `egregora db init --db {path}`"
            )
        _create_duckdb_file(path)
    deadline = clock() + timeout
    while True:
        try:
            backend: DuckDBBackend = ibis.duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            error = _explain_io_error(path, exc)
            if isinstance(error, DatabaseLockedError) and clock() < deadline:
                pause(LOCK_RETRY_INTERVAL)
                continue
            raise error from exc
        return _configured(backend)


def _configured(backend: DuckDBBackend) -> DuckDBBackend:
    """Session settings every egregora connection uses.

    DuckDB estimates a table scanned from Arrow (probes handed to an ASOF join) at about one
    row and then runs the ASOF join as a nested loop: measured 22x slower for 100,000 probes
    over 92,000 changes (benchmarks, case git_resolve_many), and no faster for one probe.
    """
    backend.con.execute("SET asof_loop_join_threshold = 0")
    return backend


def _create_duckdb_file(path: Path) -> None:
    """Make an empty DuckDB database at ``path`` in one step.

    DuckDB creates a file, then writes its header: a process killed in between, or a second
    process opening the file then, would find a file DuckDB refuses ("not a valid DuckDB
    database file"). So the database is made under a private name and linked into place, which
    is atomic and never replaces a file another process created first.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_drafts(path)
    draft = path.with_name(f".{path.name}{_DRAFT}{os.getpid()}")
    try:
        duckdb.connect(str(draft)).close()
        with contextlib.suppress(FileExistsError):  # another process created it first
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)
        draft.with_name(draft.name + ".wal").unlink(missing_ok=True)


def _remove_abandoned_drafts(path: Path) -> None:
    """Drafts left by a creating process that died (ours only: never a user's database)."""
    for draft in path.parent.glob(f".{path.name}{_DRAFT}*"):
        pid = draft.name.rsplit(_DRAFT, 1)[1].removesuffix(".wal")
        if pid.isdigit() and not _alive(int(pid)):
            draft.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _explain_io_error(path: Any, exc: duckdb.IOException) -> DatabaseError:
    text = str(exc)
    if "lock" in text.lower():
        match = _LOCK_PID.search(text)
        pid = int(match.group(1)) if match else None
        holder = f"process {pid}" if pid is not None else "another process"
        return DatabaseLockedError(
            f"{path} is locked by {holder}; wait for it to finish or stop it, then retry, "
            "or pass --wait SECONDS (DuckDB allows one writing process per file)",
            pid=pid,
        )
    return DatabaseError(f"cannot open {path}: {text}")


def connect_postgres(url: DatabaseURL) -> Any:
    """A psycopg connection to ``url`` (autocommit off: callers own their transactions)."""
    import psycopg

    try:
        return psycopg.connect(url.dsn or "")
    except psycopg.OperationalError as exc:
        raise DatabaseError(
            f"cannot connect to {url}: {str(exc).strip().splitlines()[0]}; "
            "check that the server runs and the URL names the right host, user and database"
        ) from exc
