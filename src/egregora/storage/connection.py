"""Opening databases, with errors that say what to do instead of raw driver messages."""

from __future__ import annotations

import re
import time
from typing import Any

import duckdb
import ibis
from ibis.backends.duckdb import Backend as DuckDBBackend

from egregora.errors import DatabaseError, DatabaseLockedError, DatabaseNotFoundError
from egregora.storage.url import DatabaseURL

_LOCK_PID = re.compile(r"PID (\d+)")


def connect_duckdb(
    url: DatabaseURL, *, read_only: bool = False, create: bool = True, timeout: float = 0.0
) -> DuckDBBackend:
    """Open the DuckDB database at ``url`` through Ibis.

    A missing file is created (with its folder) only when ``create`` is true and the database
    is opened for writing; otherwise the error says how to create it. While another process
    holds the file, opening is retried until ``timeout`` seconds have passed.
    """
    if url.backend != "duckdb":
        raise DatabaseError(f"{url} is not a DuckDB database")
    if url.path is None:
        return ibis.duckdb.connect(":memory:")
    path = url.path
    if not path.exists():
        if read_only or not create:
            raise DatabaseNotFoundError(
                f"no database at {path}; create it with `egregora db init --db {path}`"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            backend: DuckDBBackend = ibis.duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            error = _explain_io_error(path, exc)
            if isinstance(error, DatabaseLockedError) and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            raise error from exc
        return backend


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
