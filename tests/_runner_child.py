"""A process for tests/test_runner_resume.py that kills itself (SIGKILL) part-way through a run.

``python _runner_child.py DB EXPORT SITE POINT N``

POINT ``writer``: SIGKILL inside the writer's N-th call, while the process holds that batch's
tasks and has written none of their documents. POINT a stage name (``plan``, ``execute``,
``cards``, ``site``): SIGKILL once that stage has reported N steps (0: as it begins). The run
uses the default writer's name and version, three tasks per write and the zone of the sample.
Prints ``finished`` if the run ends without being killed.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from egregora.runner import ExtractiveWriter, PostDraft, RunOptions, WindowInput, run_pipeline
from egregora.runner.demo import TIMEZONE
from egregora.storage import Storage

BATCH = 3


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class DyingWriter(ExtractiveWriter):
    """The extractive writer, which the process dies inside on its ``limit``-th call."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.calls = 0

    def write(self, window: WindowInput) -> PostDraft:
        self.calls += 1
        if self.calls == self.limit:
            die()
        return super().write(window)


class DyingReporter:
    """Dies once stage ``point`` has reported ``steps`` steps."""

    def __init__(self, point: str, steps: int) -> None:
        self.point = point
        self.steps = steps
        self.current = ""
        self.done = 0

    def stage(self, name: str, total: int | None = None) -> None:
        self.current, self.done = name, 0
        self._check()

    def advance(self, steps: int = 1) -> None:
        self.done += steps
        self._check()

    def step(self, text: str) -> None:
        self.done += 1
        self._check()

    def _check(self) -> None:
        if self.current == self.point and self.done >= self.steps:
            die()


def options(site: Path, writer: ExtractiveWriter | None = None) -> RunOptions:
    """The run's options; media go to ``media/`` beside the site, on either engine."""
    return RunOptions(
        tz=TIMEZONE,
        site=site,
        writer=writer or ExtractiveWriter(),
        batch=BATCH,
        media_dir=site.parent / "media",
    )


def main(argv: list[str]) -> int:
    db, export, site, point, n = argv
    steps = int(n)
    writer = DyingWriter(steps) if point == "writer" else None
    reporter = None if point == "writer" else DyingReporter(point, steps)
    with Storage.open(db) as store:
        store.ensure_schema()
        run_pipeline(store, Path(export), options(Path(site), writer), reporter)
    print("finished")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
