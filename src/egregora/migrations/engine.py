"""Apply pending migrations in order, each in one transaction with its ledger row; report status."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from egregora.ddl.diff import Difference, diff_schemas
from egregora.ddl.fingerprint import fingerprint
from egregora.errors import (
    DiskFullError,
    EditedMigrationError,
    MigrationError,
    UnknownMigrationError,
)
from egregora.migrations.context import MigrationContext
from egregora.migrations.executor import DryRunExecutor, Executor
from egregora.migrations.ledger import AppliedMigration, existing_tables, read_ledger, record
from egregora.migrations.model import Migration
from egregora.migrations.registry import catalog_at, shipped_migrations
from egregora.schema.catalog import CATALOG
from egregora.schema.model import Catalog


@dataclass(frozen=True)
class MigrateResult:
    from_id: str | None
    to_id: str | None
    applied: tuple[str, ...]
    statements: tuple[str, ...] = ()
    dry_run: bool = False
    offline: bool = False  # planned without the database (``db migrate --sql``)
    dialect: str | None = None  # what the statements are written in

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "from": self.from_id,
            "to": self.to_id,
            "applied": list(self.applied),
        }
        if self.dry_run:
            out["dry_run"] = True
            out["offline"] = self.offline
            out["dialect"] = self.dialect
            out["sql"] = list(self.statements)
        return out


@dataclass(frozen=True)
class Status:
    current: str | None
    head: str | None
    applied: tuple[AppliedMigration, ...]
    pending: tuple[str, ...]
    edited: tuple[str, ...]
    unknown: tuple[str, ...]
    fingerprint: str
    differences: tuple[Difference, ...] = field(default=())

    @property
    def drift(self) -> bool:
        return bool(self.edited or self.unknown or self.differences)

    def to_dict(self) -> dict[str, object]:
        return {
            "current": self.current,
            "head": self.head,
            "applied": [
                {
                    "id": a.id,
                    "description": a.description,
                    "checksum": a.checksum,
                    "applied_at": a.applied_at.isoformat(),
                    "duration_ms": a.duration_ms,
                    "applied_by": {
                        "host": a.applied_by_host,
                        "pid": a.applied_by_pid,
                        "egregora_version": a.egregora_version,
                    },
                }
                for a in self.applied
            ],
            "pending": list(self.pending),
            "fingerprint": self.fingerprint,
            "drift": {
                "edited_migrations": list(self.edited),
                "unknown_migrations": list(self.unknown),
                "schema_differences": [d.to_dict() for d in self.differences],
            },
            "ok": not self.drift,
        }


def _check_history(
    applied: list[AppliedMigration], migrations: tuple[Migration, ...]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Applied ids this code does not ship, and applied ids whose file changed since."""
    known = {m.id: m for m in migrations}
    unknown = tuple(a.id for a in applied if a.id not in known)
    edited = tuple(a.id for a in applied if a.id in known and known[a.id].checksum != a.checksum)
    return unknown, edited


def _refuse_bad_history(
    applied: list[AppliedMigration], migrations: tuple[Migration, ...], allow_edited: bool
) -> None:
    unknown, edited = _check_history(applied, migrations)
    if unknown:
        raise UnknownMigrationError(
            f"the database has applied migration(s) {', '.join(unknown)}, which this egregora "
            "does not ship; upgrade egregora to a version that has them"
        )
    if edited and not allow_edited:
        names = ", ".join(
            f"{m.id} ({m.path.name if m.path else m.description})"
            for m in migrations
            if m.id in edited
        )
        raise EditedMigrationError(
            f"applied migration(s) {names} changed since they were applied; restore the "
            "original file(s), or pass --allow-edited if the change is deliberate and harmless"
        )


def _pending(
    applied: list[AppliedMigration], migrations: tuple[Migration, ...], target: str | None
) -> list[Migration]:
    current = applied[-1].id if applied else None
    ids = [m.id for m in migrations]
    if target is not None:
        if target not in ids:
            raise MigrationError(f"no migration {target!r}; known: {', '.join(ids)}")
        if current is not None and target < current:
            raise MigrationError(
                f"the database is at {current}, past {target}; downgrades are not supported"
            )
    return [
        m
        for m in migrations
        if (current is None or m.id > current) and (target is None or m.id <= target)
    ]


def migration_lock(executor: Executor, wait: float = 0.0) -> AbstractContextManager[None]:
    """Keep two runners from migrating one database at once (the backend's own way: none for
    DuckDB, whose file admits one writer; an advisory lock on PostgreSQL)."""
    return executor.backend.migration_lock(executor, wait)


def migrate(
    executor: Executor,
    *,
    target: str | None = None,
    allow_edited: bool = False,
    dry_run: bool = False,
    wait: float = 0.0,
    migrations: tuple[Migration, ...] | None = None,
    head: Catalog = CATALOG,
) -> MigrateResult:
    """Apply every pending migration up to ``target`` (default: the last one)."""
    chain = shipped_migrations() if migrations is None else migrations
    if not dry_run:
        # At head already (every worker and command start finds that): nothing to take the
        # lock for, so processes starting at once do not refuse one another.
        applied = read_ledger(executor)
        if applied:
            _refuse_bad_history(applied, chain, allow_edited)
            if not _pending(applied, chain, target):
                return MigrateResult(
                    from_id=applied[-1].id,
                    to_id=applied[-1].id,
                    applied=(),
                    statements=(),
                    dry_run=False,
                    dialect=executor.dialect,
                )
    with migration_lock(executor, wait):
        applied = read_ledger(executor)
        _refuse_bad_history(applied, chain, allow_edited)
        current = applied[-1].id if applied else None
        if current is None:
            stray = existing_tables(executor) & set(head.names)
            if stray:
                raise MigrationError(
                    f"the database holds egregora tables ({', '.join(sorted(stray))}) but no "
                    "migration ledger; it was not created by `egregora db migrate`. Migrate a "
                    "new database and copy the data over"
                )
        pending = _pending(applied, chain, target)
        runner: Executor = DryRunExecutor(executor) if dry_run else executor
        previous = current
        for migration in pending:
            _apply(runner, migration, previous, chain, head)
            previous = migration.id
        statements = tuple(runner.statements) if isinstance(runner, DryRunExecutor) else ()
    return MigrateResult(
        from_id=current,
        to_id=previous,
        applied=tuple(m.id for m in pending),
        statements=statements,
        dry_run=dry_run,
        dialect=executor.dialect,
    )


def _apply(
    executor: Executor,
    migration: Migration,
    previous: str | None,
    chain: tuple[Migration, ...],
    head: Catalog,
) -> None:
    ctx = MigrationContext(
        executor=executor,
        migration_id=migration.id,
        before=catalog_at(previous, chain, head),
        after=catalog_at(migration.id, chain, head),
    )
    started = time.perf_counter()
    executor.begin()
    try:
        for operation in migration.operations:
            operation.apply(ctx)
        duration_ms = int((time.perf_counter() - started) * 1000)
        record(executor, migration.id, migration.description, migration.checksum, duration_ms)
        executor.commit()
    except BaseException as exc:
        executor.rollback()
        if isinstance(exc, MigrationError | DiskFullError):
            raise  # a full disk is named as such: its fix is room, not the migration
        if not isinstance(exc, Exception):
            raise
        cause = " ".join(str(exc).split()) or type(exc).__name__
        raise MigrationError(
            f"migration {migration.id} ({migration.description}) failed and was rolled back, "
            f"leaving the database as it was: {type(exc).__name__}: {cause}"
        ) from exc


def status(
    executor: Executor,
    *,
    migrations: tuple[Migration, ...] | None = None,
    head: Catalog = CATALOG,
) -> Status:
    """Where the database stands, and every way it drifted from what the code expects."""
    chain = shipped_migrations() if migrations is None else migrations
    applied = read_ledger(executor)
    unknown, edited = _check_history(applied, chain)
    current = applied[-1].id if applied else None
    pending = tuple(m.id for m in chain if current is None or m.id > current)
    backend = executor.backend
    live = backend.introspect(executor)
    differences: tuple[Difference, ...] = ()
    if not unknown:
        expected = backend.expected_schema(catalog_at(current, chain, head), executor)
        differences = tuple(diff_schemas(expected, live))
    return Status(
        current=current,
        head=chain[-1].id if chain else None,
        applied=tuple(applied),
        pending=pending,
        edited=edited,
        unknown=unknown,
        fingerprint=fingerprint(live),
        differences=differences,
    )


@dataclass(frozen=True)
class HistoryEntry:
    """One migration as ``egregora db history`` lists it: shipped with this egregora, applied
    to the database, or both; ``state`` is applied, pending, edited (applied, changed since)
    or unknown (applied by an egregora that shipped it; this one does not)."""

    id: str
    description: str
    state: str
    applied: AppliedMigration | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"id": self.id, "description": self.description}
        out["state"] = self.state
        if self.applied is not None:
            out["applied_at"] = self.applied.applied_at.isoformat()
            out["duration_ms"] = self.applied.duration_ms
            out["applied_by"] = {
                "host": self.applied.applied_by_host,
                "pid": self.applied.applied_by_pid,
                "egregora_version": self.applied.egregora_version,
            }
        return out


def history(
    executor: Executor, *, migrations: tuple[Migration, ...] | None = None
) -> list[HistoryEntry]:
    """Every migration shipped or applied, in id order, with what the ledger says of it."""
    chain = shipped_migrations() if migrations is None else migrations
    applied = {a.id: a for a in read_ledger(executor)}
    unknown, edited = _check_history(list(applied.values()), chain)
    shipped = {m.id: m for m in chain}
    entries = []
    for mid in sorted(shipped.keys() | applied.keys()):
        done = applied.get(mid)
        if done is None:
            entries.append(HistoryEntry(mid, shipped[mid].description, "pending"))
            continue
        state = "unknown" if mid in unknown else "edited" if mid in edited else "applied"
        described = shipped[mid].description if mid in shipped else done.description
        entries.append(HistoryEntry(mid, described, state, done))
    return entries
