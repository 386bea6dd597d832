"""A writer for the worker tests: the extractive writer, made as slow as a language model.

    --writer tests._slow_writer:SlowWriter   (with the repository root on PYTHONPATH)

It has the extractive writer's name and version, so its posts equal the default writer's: a
run with it can be compared with any other run. Each window sleeps ``EGREGORA_TEST_WRITER_SLEEP``
seconds (a float, default 1.0), except the first ``EGREGORA_TEST_WRITER_QUICK`` calls of a
process (default 0), which are written at once: quick tasks first let a worker's batches grow,
so that it holds several tasks when the slow ones begin.

When ``EGREGORA_TEST_WRITER_LOG`` names a folder, each call leaves two small files there,
``<pid>-<label>-<n>.started`` before sleeping and ``<pid>-<label>-<n>.done`` once written
(``n`` counts calls of one process on one window; each name is taken by a hard link, which
fails on a name already taken, so workers never overwrite each other's): a started marker
without its done is a process inside the writer.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path

from egregora.runner import ExtractiveWriter, PostDraft, WindowInput

SLEEP_ENV = "EGREGORA_TEST_WRITER_SLEEP"
QUICK_ENV = "EGREGORA_TEST_WRITER_QUICK"
LOG_ENV = "EGREGORA_TEST_WRITER_LOG"
STARTED, DONE = ".started", ".done"


class SlowWriter(ExtractiveWriter):
    """The extractive writer, sleeping before each window it writes (see the module)."""

    def __init__(self) -> None:
        self.sleep = float(os.environ.get(SLEEP_ENV, "1.0"))
        self.quick = int(os.environ.get(QUICK_ENV, "0"))
        log = os.environ.get(LOG_ENV)
        self.log = Path(log) if log else None
        self.calls = itertools.count(1)
        self.lock = threading.Lock()  # writer threads share one writer on DuckDB

    def write(self, window: WindowInput) -> PostDraft:
        with self.lock:
            call = next(self.calls)
        stem = mark(self.log, f"{os.getpid()}-{window.window.label}", STARTED)
        if call > self.quick:
            time.sleep(self.sleep)
        draft = super().write(window)
        if self.log is not None and stem is not None:
            (self.log / f"{stem}{DONE}").write_text(f"{os.getpid()} {window.window.label}\n")
        return draft


def mark(log: Path | None, name: str, suffix: str) -> str | None:
    """Create ``log/<name>-<n><suffix>`` for the first ``n`` not taken; its stem (None
    without a log folder).

    The marker is written under a private name and linked into place, so it appears whole:
    its time never moves after a reader has seen it (a file written after it was created
    would change its mtime under a test comparing two reads)."""
    if log is None:
        return None
    draft = log / f"{name}-{os.getpid()}-{threading.get_ident()}{suffix}.draft"
    draft.write_text(f"{name}\n")
    try:
        for n in itertools.count(1):
            stem = f"{name}-{n}"
            try:
                os.link(draft, log / f"{stem}{suffix}")
            except FileExistsError:
                continue
            return stem
    finally:
        draft.unlink()
    raise AssertionError("unreachable")  # itertools.count never ends
