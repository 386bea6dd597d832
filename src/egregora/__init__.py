"""egregora's data layer: schemas, contracts, DDL and storage for a chat-to-blog pipeline."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("egregora")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
