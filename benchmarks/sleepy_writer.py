"""A writer as slow as a language model: the extractive post, after a fixed sleep per window.

``run_workers`` (``benchmarks/workers.py``) passes it to ``egregora run --writer
benchmarks.sleepy_writer:SleepyWriter``; the worker processes the run starts load it by that
name, so the repository's root must be on their ``PYTHONPATH``. The sleep is read from the
environment (``EGREGORA_BENCH_WRITER_SLEEP``, seconds, default 1.0) when the writer is made,
so every process of one run sleeps the same. The posts are the extractive writer's, under its
name and version: the documents are the same whatever the sleep.
"""

from __future__ import annotations

import os
import time

from egregora.runner import ExtractiveWriter, PostDraft, WindowInput

SLEEP_VAR = "EGREGORA_BENCH_WRITER_SLEEP"
DEFAULT_SLEEP_S = 1.0


def sleep_seconds() -> float:
    """The sleep per window that ``SLEEP_VAR`` sets (the default when unset or empty)."""
    value = os.environ.get(SLEEP_VAR, "").strip()
    if not value:
        return DEFAULT_SLEEP_S
    seconds = float(value)
    if seconds < 0:
        raise ValueError(f"{SLEEP_VAR} must be 0 or more seconds, not {value!r}")
    return seconds


class SleepyWriter(ExtractiveWriter):
    """``ExtractiveWriter``'s post for each window, returned after sleeping ``sleep_s``."""

    name = ExtractiveWriter.name
    version = ExtractiveWriter.version

    def __init__(self) -> None:
        self.sleep_s = sleep_seconds()

    def write(self, window: WindowInput) -> PostDraft:
        time.sleep(self.sleep_s)
        return super().write(window)
