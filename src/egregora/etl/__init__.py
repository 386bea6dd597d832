"""The ETL: WhatsApp exports (.zip or .txt) into validated `messages` and media `documents`.

Its names load their module on first use: the runner reads the name rules of
``egregora.etl.formats`` without importing the ingest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from egregora.lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers; at run time __getattr__ imports each name
    from egregora.etl.archive import ExportFileError, UnsafeArchiveError, open_export
    from egregora.etl.ingest import IngestResult, ingest_export
    from egregora.etl.parse import DATE_ORDERS, Entries, ExportFormatError, parse_export

__all__ = [
    "DATE_ORDERS",
    "Entries",
    "ExportFileError",
    "ExportFormatError",
    "IngestResult",
    "UnsafeArchiveError",
    "ingest_export",
    "open_export",
    "parse_export",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    __all__,
    {
        "egregora.etl.archive": ("ExportFileError", "UnsafeArchiveError", "open_export"),
        "egregora.etl.ingest": ("IngestResult", "ingest_export"),
        "egregora.etl.parse": ("DATE_ORDERS", "Entries", "ExportFormatError", "parse_export"),
    },
)
