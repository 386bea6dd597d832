"""Plain values that several layers share and the command line declares its options with.

They live here, beside the root and importing nothing but the standard library, so that
``egregora --help`` (choices, defaults and help text) loads no engine, Arrow or Ibis; the
layers that own each fact import it from here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, TypeAlias

# The SQL engines egregora speaks: one backend each, one DDL dialect each.
Dialect: TypeAlias = Literal["duckdb", "postgres"]
DIALECTS: tuple[Dialect, ...] = ("duckdb", "postgres")  # the names Index.dialects uses

# How an export writes its dates: day, month or year first.
DateOrder = Literal["dmy", "mdy", "ymd"]
DATE_ORDERS: tuple[DateOrder, ...] = ("dmy", "mdy")  # the orders a file can leave open

# The states a task of the queue ends in.
FINISHED = ("succeeded", "failed", "superseded")

# How long a worker holds a task without news.
LEASE = timedelta(seconds=60)  # renewed every third of it while a task runs

# The chat exports egregora reads: the value of messages.source and of pseudonyms' scope.
SOURCE = "whatsapp"

# The file formats `egregora export` writes a table in.
ExportFormat = Literal["parquet", "csv"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("parquet", "csv")
