"""The git time machine: sync a repository's history, then ask which version was current when.

Its names load their module on first use, so that a lookup (``egregora git resolve``) does
not import the sync and its Arrow computations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from egregora.lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers; at run time __getattr__ imports each name
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

__getattr__, __dir__ = lazy_exports(
    __name__,
    __all__,
    {
        "egregora.git.cache": ("LookupCache",),
        "egregora.git.resolver": ("GitHistoryResolver", "Resolution"),
        "egregora.git.sync": ("SyncResult", "sync_repository"),
        "egregora.git.timespec": ("parse_at",),
    },
)
