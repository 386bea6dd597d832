"""Where the database is: the ``--db`` value (a path, ``duckdb:///ABS/PATH``,
``duckdb:REL/PATH`` or ``postgresql://...``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from egregora.ddl.render import Dialect
from egregora.errors import ConfigurationError

if TYPE_CHECKING:
    from egregora.backends.base import Backend

ENV_VAR = "EGREGORA_DB"
DEFAULT_PATH = Path(".egregora") / "egregora.duckdb"
_SCHEME = "duckdb:"
_SPELLINGS = "duckdb:///ABSOLUTE/PATH or duckdb:RELATIVE/PATH"


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database location: a DuckDB file (or ``:memory:``) or a PostgreSQL DSN."""

    dialect: Dialect  # names the engine; ask ``backend`` what the engine can do
    path: Path | None = None
    dsn: str | None = None

    @property
    def backend(self) -> Backend:
        """The engine's backend object."""
        from egregora.backends import backend_named  # the registry imports every backend

        return backend_named(self.dialect)

    @classmethod
    def parse(cls, value: str | os.PathLike[str] | None = None) -> DatabaseURL:
        """Read ``value`` as the CLI's ``--db``; None means $EGREGORA_DB, else the default path.

        A DuckDB file is a plain path (relative to the current folder unless absolute),
        ``duckdb:///ABS/PATH`` or ``duckdb:////ABS/PATH`` (absolute, as ``file:///`` URLs
        are) or ``duckdb:REL/PATH`` (relative). ``duckdb:///x`` once meant the relative
        ``x``: where that reading finds a database and the absolute one finds nothing, the
        value is refused rather than a new empty database made beside the user's.
        """
        if value is None:
            value = os.environ.get(ENV_VAR) or DEFAULT_PATH
        text = os.fspath(value).strip()
        if not text:
            raise ConfigurationError(
                f"the database URL is empty; pass --db PATH, {_SPELLINGS} or postgresql://..."
            )
        if text.startswith(("postgresql://", "postgres://")):
            return cls("postgres", dsn=text)
        if text.startswith(_SCHEME):
            text = _duckdb_path(text)
        elif "://" in text:
            scheme = text.split("://", 1)[0]
            raise ConfigurationError(
                f"unsupported database scheme {scheme!r} in {text!r}; "
                f"use a DuckDB file path, {_SPELLINGS} or postgresql://..."
            )
        if text == ":memory:":
            return cls("duckdb", path=None)
        return cls("duckdb", path=Path(text).expanduser())

    @property
    def files_folder(self) -> Path | None:
        """Where files kept beside the database go (media): the DuckDB file's folder; for a
        server's database ``.egregora`` under the current folder, where the default DuckDB file
        lives; none for an in-memory database."""
        if self.path is not None:
            return self.path.parent
        if self.dsn is not None:
            return DEFAULT_PATH.parent
        return None

    def environment(self) -> dict[str, str]:
        """The environment that names this database to another egregora process (in the
        environment, not its arguments, so a password never shows in the process list)."""
        if self.is_memory:
            raise ConfigurationError(
                "an in-memory database cannot be shared with another process; use a file"
            )
        location = self.dsn if self.dsn is not None else str(self.path)
        return {ENV_VAR: location}

    @property
    def is_memory(self) -> bool:
        return self.path is None and self.dsn is None

    def __str__(self) -> str:
        if self.dsn is not None:
            return _redact(self.dsn)
        return ":memory:" if self.path is None else str(self.path)


def _duckdb_path(url: str) -> str:
    """The path a ``duckdb:`` URL names (see ``DatabaseURL.parse``)."""
    rest = url.removeprefix(_SCHEME)
    slashes = len(rest) - len(rest.lstrip("/"))
    if slashes == 2:  # duckdb://host/...: a file has no host
        raise ConfigurationError(
            f"cannot read {url!r}: a DuckDB URL names no host; write {_SPELLINGS}"
        )
    if slashes > 2:
        rest = "/" + rest.lstrip("/")
    if rest.strip("/") == "":
        raise ConfigurationError(f"{url!r} names no file; write {_SPELLINGS}")
    if rest == "/:memory:":
        return ":memory:"
    if slashes == 3:  # once read as a relative path
        _refuse_the_old_reading(url, Path(rest))
    return rest


def _refuse_the_old_reading(url: str, absolute: Path) -> None:
    """``duckdb:///x`` meant the relative ``x`` in earlier versions: when only that file
    exists, the user means it, and creating an empty ``/x`` would hide their data."""
    relative = Path(str(absolute).lstrip("/"))
    if absolute.exists() or not relative.exists():
        return
    raise ConfigurationError(
        f"{url} names the absolute path {absolute}, which does not exist, while {relative} "
        f"exists under the current folder ({Path.cwd()}); write duckdb:{relative} (or "
        f"{relative}) for that database, or duckdb:///{absolute} (or {absolute}) for a new "
        "one at the absolute path"
    )


def _redact(dsn: str) -> str:
    """Hide a password in a DSN before it is shown to anyone."""
    scheme, sep, rest = dsn.partition("://")
    creds, at, host = rest.rpartition("@")
    if at and ":" in creds:
        user = creds.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{host}"
    return dsn
