"""Runner case: the whole ``egregora run`` on a generated export, the time split by stage.

``runner_run`` times ``egregora.runner.run_pipeline`` (ingest, plan, execute, cards, site) on
the generated Android export of ``benchmarks/etl.py`` (100,000 messages at the default
``--rows``, 20,000 with ``--quick``), into a fresh copy of an empty migrated database
(``databases.py``: a DuckDB file, or a database on the PostgreSQL server ``--db`` names) and a
fresh site folder. The baseline is the first stage alone, ``ingest_export`` of the same file
into the same kind of database: the ratio is what turning messages into documents, cards and
a site costs on top of reading them in. Extras give each stage's seconds (a reporter timing
the stage boundaries) and a second run over the same export (every window skipped).
"""

from __future__ import annotations

import atexit
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pyarrow as pa

from benchmarks.databases import Databases
from benchmarks.etl import ExportManifest, export
from benchmarks.harness import Benchmark, require, timed
from egregora.etl import ingest_export
from egregora.runner import RunOptions, RunSummary, run_pipeline

QUICK_MESSAGES = 20_000
STAGES = ("ingest", "plan", "execute", "cards", "site")
TZ = "UTC"  # the generated export's times


def messages_for(rows: int) -> int:
    """100,000 messages at the default 1,000,000 rows; at least 20,000."""
    return max(QUICK_MESSAGES, rows // 10)


class StageClock:
    """A reporter that times each stage from its start to the next one's (or the end)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._stage: str | None = None
        self._since = 0.0

    def stage(self, name: str, total: int | None = None) -> None:
        self._close()
        self._stage, self._since = name, time.perf_counter()

    def advance(self, steps: int = 1) -> None:
        pass

    def step(self, text: str) -> None:
        pass

    def _close(self) -> None:
        if self._stage is not None:
            self.seconds[self._stage] = time.perf_counter() - self._since
            self._stage = None

    def finish(self) -> dict[str, float]:
        self._close()
        return self.seconds


class RunnerRun(Benchmark):
    """``run_pipeline`` with a site against ``ingest_export`` of the same export."""

    name = "runner_run"
    baseline = "ingest_only"
    base_note = (
        "The generated Android export of benchmarks/etl.py: {messages:,} messages ({first} to "
        "{last}), {windows} day windows, {authors} authors. Case: egregora.runner."
        "run_pipeline(store, path, RunOptions(tz='UTC', site=DIR)) into a fresh copy of an "
        "empty migrated {db} and an empty site folder: ingest, plan (windows and "
        "authors, tasks queued), execute (a journal and an extractive post per day, a profile "
        "per author, 64 tasks per validated write), cards (a 1200x630 PNG per post and journal "
        "through the asset cache) and site (Markdown pages, cards and index pages). Baseline: "
        "egregora.etl.ingest_export of the same file into the same kind of database, the "
        "run's first stage alone. Extras: each stage's seconds (a reporter marks the stage "
        "boundaries) and rerun, a second run_pipeline over the same export and database "
        "(nothing new: every window skipped, no card drawn, no file written). This run's "
        "medians per stage: {stages}."
    )

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        super().__init__(messages_for(data.num_rows))
        self.dbs = databases
        self.engine = databases.engine
        self.note = self.base_note
        self.manifest: ExportManifest | None = None
        self.folder: Path | None = None
        self.template: str | None = None
        self.copies = 0
        self.summary: RunSummary | None = None
        self.stage_samples: dict[str, list[float]] = defaultdict(list)

    def prepare(self) -> None:
        self.manifest = export(self.rows)
        self.folder = Path(tempfile.mkdtemp(prefix="egregora-bench-runner-"))
        atexit.register(shutil.rmtree, self.folder, ignore_errors=True)
        self.template = self.dbs.empty()
        summary, _, _ = self._run()
        days = summary.windows
        require(
            summary.new_messages == self.rows and summary.documents["post"] == days > 0,
            f"run_pipeline wrote {summary.new_messages:,} messages and "
            f"{summary.documents['post']} posts for {days} windows; wanted {self.rows:,}",
        )
        require(
            summary.documents["journal"] == days and summary.cards_rendered == 2 * days + 1,
            f"expected a journal and two cards per window, and the site's card: {summary}",
        )
        self.summary = summary
        self._describe()

    def _workspace(self) -> Path:
        """A new empty folder for one run's site."""
        assert self.folder is not None
        self.copies += 1
        place = self.folder / f"run{self.copies}"
        place.mkdir()
        return place

    def _run(self, *, again: bool = False) -> tuple[RunSummary, float, float | None]:
        """One run into a fresh copy and site; with ``again``, a second one timed too."""
        assert self.manifest is not None and self.template is not None
        place = self._workspace()
        path = Path(self.manifest.path)
        options = RunOptions(tz=TZ, site=place / "site")
        try:
            with self.dbs.copy(self.template) as store:
                clock = StageClock()
                done: list[RunSummary] = []
                seconds = timed(lambda: done.append(run_pipeline(store, path, options, clock)))
                for stage, spent in clock.finish().items():
                    self.stage_samples[stage].append(spent)
                rerun = None
                if again:
                    repeat: list[RunSummary] = []
                    rerun = timed(lambda: repeat.append(run_pipeline(store, path, options)))
                    require(
                        repeat[0].new_documents == 0 and repeat[0].cards_rendered == 0,
                        f"the second run made something new: {repeat[0]}",
                    )
        finally:
            shutil.rmtree(place, ignore_errors=True)
        return done[0], seconds, rerun

    def time_case(self) -> float:
        summary, seconds, _ = self._run()
        require(summary.new_messages == self.rows, "the run did not ingest every message")
        self._describe()
        return seconds

    def time_baseline(self) -> float:
        assert self.manifest is not None and self.template is not None
        place = self._workspace()
        path = Path(self.manifest.path)
        try:
            with self.dbs.copy(self.template) as store:
                done: list[int] = []
                seconds = timed(lambda: done.append(ingest_export(store, path, tz=TZ).new))
        finally:
            shutil.rmtree(place, ignore_errors=True)
        require(done[0] == self.rows, f"ingest_export wrote {done[0]:,} messages")
        return seconds

    def time_extras(self) -> dict[str, float]:
        _, _, rerun = self._run(again=True)
        assert rerun is not None
        latest = {stage: samples[-1] for stage, samples in self.stage_samples.items()}
        self._describe()
        return {**{f"stage_{s}": latest[s] for s in STAGES if s in latest}, "rerun": rerun}

    def _describe(self) -> None:
        manifest, summary = self.manifest, self.summary
        if manifest is None or summary is None:
            return
        stages = ", ".join(
            f"{s} {statistics.median(self.stage_samples[s]):.2f} s"
            for s in STAGES
            if self.stage_samples.get(s)
        )
        self.note = self.base_note.format(
            db=self.dbs.described,
            messages=self.rows,
            first=manifest.first,
            last=manifest.last,
            windows=summary.windows,
            authors=summary.documents["profile"],
            stages=stages or "not timed yet",
        )
        print(f"  {self.name}: {stages}", file=sys.stderr)

    def close(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = self.template = None
