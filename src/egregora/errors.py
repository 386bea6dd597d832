"""One exception hierarchy; every message names the cause and the fix, printed as one line."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from egregora.contracts.report import ContractReport


class EgregoraError(Exception):
    """Base of every error egregora raises on purpose."""

    exit_code = 1


class ConfigurationError(EgregoraError):
    """A setting or argument is malformed (for example a ``--db`` URL)."""

    exit_code = 2


class DatabaseError(EgregoraError):
    """The database could not be opened or used."""


class DatabaseNotFoundError(DatabaseError):
    """The database named by ``--db`` does not exist."""


class DatabaseLockedError(DatabaseError):
    """Another process holds the DuckDB file."""

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


class UnsupportedBackendError(EgregoraError):
    """The operation is not available on this database backend."""

    exit_code = 2


class SchemaError(EgregoraError):
    """The live schema is not what the catalog declares."""


class ContractViolation(EgregoraError):
    """Data broke the table's contract; ``report`` names each rule, count and example keys."""

    def __init__(self, report: ContractReport) -> None:
        super().__init__(str(report))
        self.report = report


class MigrationError(EgregoraError):
    """A migration could not be applied; it was rolled back and the database is as before."""


class EditedMigrationError(MigrationError):
    """An applied migration's file changed since it was applied."""


class UnknownMigrationError(MigrationError):
    """The database records a migration this version of egregora does not ship."""


class GitError(EgregoraError):
    """git could not answer: not a repository, an unknown ref, or a failed git command."""


class MissingObjectError(GitError):
    """The repository lacks an object git had to read (a partial clone, or a damaged one)."""

    def __init__(self, message: str, sha: str) -> None:
        super().__init__(message)
        self.sha = sha


class NotSyncedError(EgregoraError):
    """The repository (or ref) asked about has not been synced into this database."""


class MissingVersionError(EgregoraError):
    """The path had no version at the time asked about (not created yet, or deleted)."""


class NotFoundError(EgregoraError):
    """A record asked for by id (a run, a task, a cached asset) does not exist."""


class LeaseLostError(EgregoraError):
    """A worker acted on a task it no longer holds: its lease expired and the task was claimed
    again, or the task was superseded or finished meanwhile."""


class DiskFullError(EgregoraError):
    """The disk (or the user's quota) had no room left for what was being written; what was
    being written was not kept, and nothing is reported as stored that is not."""


def disk_full(where: object, exc: BaseException | None = None) -> DiskFullError:
    """The one line a full disk gets, naming where the write went and the fix."""
    cause = f" ({exc})" if exc is not None else ""
    return DiskFullError(
        f"the disk holding {where} is full{cause}; free some space there (or choose another "
        "folder) and run again: what was being written was not kept"
    )
