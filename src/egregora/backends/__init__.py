"""Database engines: one backend object per engine holds every difference between them.

Layer: above ``schema`` and ``ddl``, below ``migrations`` and ``storage``. Callers never compare
engine names; they ask a backend's named capabilities or call its methods (see ``base``).
"""

from egregora.backends.base import Backend, Capability, Executor
from egregora.backends.duckdb import DUCKDB, connect_duckdb
from egregora.backends.postgres import POSTGRES, connect_postgres
from egregora.backends.url import DatabaseURL
from egregora.ddl.render import Dialect
from egregora.errors import ConfigurationError

BACKENDS: dict[str, Backend] = {b.name: b for b in (DUCKDB, POSTGRES)}


def backend_named(name: Dialect | str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise ConfigurationError(
            f"no backend {name!r}; egregora speaks {', '.join(BACKENDS)}"
        ) from None


def is_driver_error(exc: BaseException) -> bool:
    """Whether ``exc`` is an error of any engine's driver (the command line reports those)."""
    return any(backend.is_driver_error(exc) for backend in BACKENDS.values())


__all__ = [
    "BACKENDS",
    "DUCKDB",
    "POSTGRES",
    "Backend",
    "Capability",
    "DatabaseURL",
    "Executor",
    "backend_named",
    "connect_duckdb",
    "connect_postgres",
    "is_driver_error",
]
