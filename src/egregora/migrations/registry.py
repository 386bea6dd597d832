"""Finding the migration modules shipped in ``egregora/migrations/versions``."""

from __future__ import annotations

import importlib
import re
from functools import cache
from pathlib import Path

from egregora.migrations.model import Migration, Operation
from egregora.schema.catalog import CATALOG
from egregora.schema.model import Catalog

VERSIONS = Path(__file__).parent / "versions"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.py$")


def load_migration(path: Path, module_name: str) -> Migration:
    module = importlib.import_module(module_name)
    ident = getattr(module, "ID", None)
    match = _NAME.match(path.name)
    if match is None or ident != match.group(1):
        raise ValueError(f"{path.name}: the file name must start with its ID ({ident!r})")
    operations = tuple(getattr(module, "OPERATIONS", ()))
    if not operations or not all(isinstance(o, Operation) for o in operations):
        raise ValueError(f"{path.name}: OPERATIONS must be a non-empty tuple of operations")
    return Migration(
        id=ident,
        description=str(module.DESCRIPTION),
        operations=operations,
        source=path.read_bytes(),
        path=path,
    )


@cache
def shipped_migrations() -> tuple[Migration, ...]:
    """Every shipped migration, in id order; ids must be 0001, 0002, ... without gaps."""
    migrations = []
    for path in sorted(VERSIONS.glob("[0-9]*.py")):
        migrations.append(load_migration(path, f"egregora.migrations.versions.{path.stem}"))
    for position, migration in enumerate(migrations, start=1):
        if int(migration.id) != position:
            raise ValueError(f"migration ids must run 0001, 0002, ...: found {migration.id}")
    return tuple(migrations)


def catalog_at(
    migration_id: str | None,
    migrations: tuple[Migration, ...] | None = None,
    head: Catalog = CATALOG,
) -> Catalog:
    """The schema after ``migration_id`` (None: before any): head with later migrations reverted."""
    chain = shipped_migrations() if migrations is None else migrations
    catalog = head
    for migration in reversed(chain):
        if migration_id is not None and migration.id <= migration_id:
            break
        catalog = migration.revert(catalog)
    return catalog
