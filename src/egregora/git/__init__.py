"""The git time machine: sync a repository's history, then ask which version was current when."""

from egregora.git.cache import LookupCache
from egregora.git.resolver import GitHistoryResolver, Resolution
from egregora.git.sync import SyncResult, sync_repository
from egregora.git.timespec import parse_at

__all__ = [
    "GitHistoryResolver",
    "LookupCache",
    "Resolution",
    "SyncResult",
    "parse_at",
    "sync_repository",
]
