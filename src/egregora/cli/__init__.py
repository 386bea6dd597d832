"""The ``egregora`` command line: one Typer application, human or JSON output."""

import os

# Arrow's allocator (mimalloc) keeps freed memory a while before giving it back to the system,
# so each step of an ingest (several copies of the chat's text, one after another) adds its peak
# to the next: an ingest of 250,000 messages peaked near 480 MB instead of 420 MB. Asked here,
# before anything loads Arrow; a user's own setting wins.
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")
