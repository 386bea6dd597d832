"""The ETL: WhatsApp exports (.zip or .txt) into validated `messages` and media `documents`."""

from egregora.etl.archive import ExportFileError, UnsafeArchiveError, open_export
from egregora.etl.ingest import IngestResult, author_uuid, ingest_export, thread_slug
from egregora.etl.parse import DATE_ORDERS, Entries, ExportFormatError, parse_export

__all__ = [
    "DATE_ORDERS",
    "Entries",
    "ExportFileError",
    "ExportFormatError",
    "IngestResult",
    "UnsafeArchiveError",
    "author_uuid",
    "ingest_export",
    "open_export",
    "parse_export",
    "thread_slug",
]
