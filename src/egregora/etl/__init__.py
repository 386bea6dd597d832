"""The ETL: WhatsApp exports (.zip or .txt) into validated `messages` and media `documents`."""

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
