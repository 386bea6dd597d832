"""The ``egregora`` command line: one Typer application, human or JSON output."""

import os

# The allocators of Arrow (mimalloc) and of DuckDB (jemalloc) keep freed memory a while before
# giving it back, so each step of an ingest (copies of the chat's text, then the check and the
# insert of its rows) adds its peak to the next one's: an ingest of 250,000 messages peaked
# near 465 MB, 425 MB with both giving memory back at once (1,000,000 messages: 950 MB and
# 780 MB, for a few per cent more time). Asked here, before anything loads Arrow or DuckDB;
# a user's own setting wins.
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")
os.environ.setdefault("DUCKDB_JE_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")
