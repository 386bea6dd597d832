"""How commands speak: rich text for people, one JSON object with ``--json``, one-line errors."""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from egregora.errors import DatabaseLockedError, DiskFullError, EgregoraError, disk_full

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="DuckDB file path (duckdb:///ABS/PATH, duckdb:REL/PATH) or postgresql://... "
        "(default: $EGREGORA_DB, else .egregora/egregora.duckdb)",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout instead of the human view.")
]

console = Console()
err_console = Console(stderr=True)


class Verbosity:
    """How much the human view says, set by ``egregora -q`` or ``-v`` for one command:
    quiet prints nothing but errors (``--json`` still prints its object); verbose adds each
    step of a run as a line, and the traceback behind an error."""

    verbose = False

    @classmethod
    def set(cls, *, quiet: bool, verbose: bool) -> None:
        console.quiet = quiet
        cls.verbose = verbose

    @classmethod
    def quiet(cls) -> bool:
        return bool(console.quiet)


def quiet_library_warnings() -> None:
    """Hide two warnings ibis 12 emits on every query; they concern library internals, not users."""
    warnings.filterwarnings("ignore", message=r"fetch_arrow_table\(\) is deprecated")
    warnings.filterwarnings("ignore", message="The 'future.infer_string' option is deprecated")


def emit_json(payload: dict[str, Any]) -> None:
    """One JSON object on stdout. Every object says ``"ok"``: true unless the command says
    otherwise (an error, drift found, nothing found), as its exit code does."""
    shown = {"ok": True, **payload}
    sys.stdout.write(json.dumps(shown, default=str, sort_keys=False) + "\n")


def fail(message: str, *, code: int = 1, as_json: bool = False, kind: str = "error") -> NoReturn:
    """Exit non-zero with ``message`` as one line on stderr (and a JSON object with --json)."""
    line = " ".join(message.split())
    if as_json:
        emit_json({"ok": False, "error": {"type": kind, "message": line}})
    err_console.print(f"error: {line}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def reported_errors(as_json: bool, *, waits: bool = False) -> Iterator[None]:
    """Turn the project's errors, and any database driver's error, into one line and an exit
    code (EGREGORA_DEBUG=1 shows a driver error's traceback instead; ``-v`` shows every
    error's traceback before its line). The backends, which
    load the engines' drivers, are imported only when an error needs naming. ``waits``: the
    command takes ``--wait``, which a locked database's error then offers."""
    try:
        with _traced():
            yield
    except DatabaseLockedError as exc:
        offer = ", or pass --wait SECONDS" if waits else ""
        fail(f"{exc}{offer}", code=exc.exit_code, as_json=as_json, kind=type(exc).__name__)
    except EgregoraError as exc:
        fail(str(exc), code=exc.exit_code, as_json=as_json, kind=type(exc).__name__)
    except Exception as exc:
        full = _disk_full(exc)
        if full is not None:
            fail(str(full), code=full.exit_code, as_json=as_json, kind=type(full).__name__)
        if not _is_driver_error(exc) or os.environ.get("EGREGORA_DEBUG"):
            raise
        fail(
            f"database error ({type(exc).__name__}): {str(exc).splitlines()[0]}; "
            "set EGREGORA_DEBUG=1 to see the traceback",
            as_json=as_json,
            kind=type(exc).__name__,
        )


@contextmanager
def _traced() -> Iterator[None]:
    """With ``-v``, the traceback of an error before its one line."""
    try:
        yield
    except Exception:
        if Verbosity.verbose:
            err_console.print_exception()
        raise


def _disk_full(exc: Exception) -> DiskFullError | None:
    """A full disk or quota met outside the code that names it (a file written, a driver's
    error no store translated) is still named as such, in one line."""
    from egregora.backends import BACKENDS
    from egregora.backends.base import NO_ROOM

    if isinstance(exc, OSError) and exc.errno in NO_ROOM:
        return disk_full(exc.filename or "the file being written", OSError(exc.errno, exc.strerror))
    for backend in BACKENDS.values():
        full = backend.disk_full(exc)
        if full is not None:
            return full
    return None


def _is_driver_error(exc: Exception) -> bool:
    from egregora.backends import is_driver_error

    return is_driver_error(exc)
