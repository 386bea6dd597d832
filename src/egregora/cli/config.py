"""A configuration file for the options typed on every run: ``egregora.toml`` or the
``[tool.egregora]`` table of ``pyproject.toml``, in the current folder.

    db = ".egregora/group.duckdb"     # or postgresql://...
    tz = "Europe/Lisbon"
    site = "site"
    writer = "extractive"
    window = "day"

Each key is the default of the option of that name on every command that has it (``egregora
demo`` aside: its sample chat never goes into a configured database). What is typed wins over
the file, and ``$EGREGORA_DB`` wins over its ``db``. Paths (``db``, ``site``) are relative to
the file's folder. A key the file should not hold, or a file that is not TOML, is refused
naming the file and the fix.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from egregora.errors import ConfigurationError

FILE = "egregora.toml"
PYPROJECT = "pyproject.toml"
KEYS = ("db", "tz", "site", "site_url", "writer", "window")  # the options a file may set
PATHS = ("db", "site")  # read relative to the file's folder
SKIPPED_COMMANDS = ("demo",)  # the sample chat goes into its own folder, never a configured db
DB_ENV = "EGREGORA_DB"  # the environment's database wins over the file's


@dataclass(frozen=True)
class Config:
    """The options a configuration file sets, and where it was read from."""

    path: Path | None
    values: Mapping[str, str]

    def defaults_for(self, params: set[str]) -> dict[str, str]:
        """The defaults of a command whose options are ``params``."""
        values = dict(self.values)
        if os.environ.get(DB_ENV):
            values.pop("db", None)
        return {k: v for k, v in values.items() if k in params}


def find_config(folder: Path) -> Config:
    """The configuration in ``folder``: ``egregora.toml``, else ``pyproject.toml``'s
    ``[tool.egregora]``, else none (no defaults)."""
    own = folder / FILE
    if own.is_file():
        return Config(own, _checked(own, _read(own)))
    project = folder / PYPROJECT
    if project.is_file():
        table = _read(project).get("tool", {}).get("egregora")
        if table is not None:
            return Config(project, _checked(project, table, "[tool.egregora] in "))
    return Config(None, {})


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(
            f"{path} is not valid TOML ({exc}); fix it or move it away"
        ) from None


def _checked(path: Path, table: Any, where: str = "") -> dict[str, str]:
    if not isinstance(table, dict):
        raise ConfigurationError(f"{where}{path} must be a table of options ({', '.join(KEYS)})")
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise ConfigurationError(
            f"{where}{path} sets {', '.join(unknown)}, which egregora does not read; "
            f"it reads {', '.join(KEYS)}"
        )
    values = {}
    for key, value in table.items():
        if not isinstance(value, str) or not value:
            raise ConfigurationError(f"{where}{path}: {key} must be a non-empty string")
        values[key] = str(path.parent / value) if key in PATHS and _is_path(value) else value
    return values


def _is_path(value: str) -> bool:
    """A file path (not a server's URL, not an already absolute path)."""
    return "://" not in value and not value.startswith("duckdb:") and not Path(value).is_absolute()
