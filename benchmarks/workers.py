"""Workers case: ``egregora run --workers 4`` against ``--workers 1``, with a slow writer.

``run_workers`` times the whole command a user waits for, ``python -m egregora run SAMPLE
--workers 4 --writer benchmarks.sleepy_writer:SleepyWriter --tz ZONE --json``, as a
subprocess (process start-up included), on the sample export shipped with egregora
(``egregora.runner.demo``: 20 day windows, 6 authors); the baseline is the same command with
``--workers 1``. The writer sleeps a fixed time per window before returning the extractive post
(``sleepy_writer.py``), as a language model would take seconds: what several workers are for.
On PostgreSQL the 4 workers are the run's process and 3 ``egregora work --until-empty``
processes it starts; on DuckDB 4 writer threads in the run's process.

Every run gets a fresh database at head (``Databases.template``, made and closed untimed,
dropped after the run), named in ``EGREGORA_DB`` as the run passes it to its worker processes
(a password in a server's URL never shows in the process list), and a fresh working folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa

from benchmarks.databases import Databases
from benchmarks.harness import Benchmark, require, timed
from benchmarks.sleepy_writer import SLEEP_VAR, SleepyWriter
from egregora.backends.url import ENV_VAR, DatabaseURL
from egregora.media.model import MEDIA_FOLDER
from egregora.runner.demo import TIMEZONE, sample_export

ROOT = Path(__file__).resolve().parents[1]  # on PYTHONPATH, so workers import the writer
WRITER = f"{SleepyWriter.__module__}:{SleepyWriter.__qualname__}"
WORKERS, BASELINE_WORKERS = 4, 1
FULL_ROWS = 1_000_000  # the default --rows: the full sleep; fewer rows (--quick): shorter
FULL_SLEEP_S, QUICK_SLEEP_S = 1.0, 0.2  # the writer's sleep per window
TIMEOUT_S = 900.0  # a budget for a stuck run, not a speed limit
TAIL = 3_000  # characters of a failed run's stderr kept in the error


def sleep_for(rows: int) -> float:
    """The writer's sleep per window: a second at the default size, less below it."""
    return FULL_SLEEP_S if rows >= FULL_ROWS else QUICK_SLEEP_S


class RunWorkers(Benchmark):
    """``egregora run --workers 4`` against ``--workers 1``, whole commands, a slow writer."""

    name = "run_workers"
    baseline = "one_worker"
    base_note = (
        "The sample export shipped with egregora (egregora.runner.demo.sample_export, tz "
        "{tz}): {messages} messages, {windows} day windows and {profiles} authors, so "
        "{tasks} window and profile tasks. Case: `python -m egregora run SAMPLE --workers "
        "{workers} --writer {writer} --tz {tz} --json` as a subprocess, timed from start to "
        "exit (process start-up, ingest, plan, execute, cards), the writer sleeping {sleep} s "
        "per window before it returns the extractive post (same name and version; profiles "
        "call no writer). On PostgreSQL the {workers} workers are {workers} processes (the "
        "run's and {children} `egregora work --until-empty` it starts); on DuckDB, {workers} "
        "writer threads in the run's one process; here the case's runs report {described!r}. "
        "Baseline: the same command with --workers 1 ({one!r}). Each run on a fresh {db} at head "
        "(made untimed, named in EGREGORA_DB, so the run's ensure_schema finds nothing to do) "
        "in a fresh working folder; every run must make the same documents ({documents}), "
        "leave no task queued and say it had the workers it was given."
    )

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        # ``rows``: the tasks a run does, known once the first run has planned them.
        super().__init__(0)
        self.dbs = databases
        self.engine = databases.engine
        self.sleep_s = sleep_for(data.num_rows)
        self.folder: Path | None = None
        self.export: Path | None = None
        self.runs = 0
        self.expected: dict[str, Any] | None = None  # the first run's documents and counts
        self.described: dict[int, str] = {}  # each side's `workers`, as the run words it
        self.note = self.base_note

    def _environment(self, location: str | None = None) -> dict[str, str]:
        """This process's environment with the repository on PYTHONPATH (the workers import
        the writer by name), the writer's sleep and the database (``location``), if any."""
        paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), SLEEP_VAR: repr(self.sleep_s)}
        if location is not None:
            env[ENV_VAR] = location
        return env

    def prepare(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="egregora-bench-workers-"))
        self.export = sample_export(self.folder / "export")
        # A process with the workers' environment must load the writer by its name and see
        # the sleep the note states (this also warms the files a run imports).
        probe = (
            "from egregora.runner import load_writer; "
            f"w = load_writer({WRITER!r}); print(w.name, w.version, w.sleep_s)"
        )
        proc = subprocess.run(
            [sys.executable, "-c", probe],
            cwd=self.folder,
            env=self._environment(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        require(
            proc.returncode == 0,
            f"a worker process cannot load {WRITER}: {proc.stderr[-TAIL:]}",
        )
        loaded = proc.stdout.split()
        writer = SleepyWriter()
        wanted = [writer.name, writer.version, repr(self.sleep_s)]
        require(loaded == wanted, f"a worker process loaded {loaded}, wanted {wanted}")

    def _run(self, workers: int) -> float:
        """One ``egregora run`` with ``workers`` on a fresh database: its seconds, checked."""
        assert self.folder is not None and self.export is not None
        self.runs += 1
        location = self.dbs.template(f"run{self.runs}")  # at head, closed, untimed
        place = self.folder / f"run{self.runs}"
        place.mkdir()
        command = [
            sys.executable,
            "-m",
            "egregora",
            "run",
            str(self.export),
            "--workers",
            str(workers),
            "--writer",
            WRITER,
            "--tz",
            TIMEZONE,
            "--json",
        ]
        env = self._environment(location)
        done: list[tuple[int, str, str]] = []
        try:
            seconds = timed(lambda: done.append(_finish(command, place, env)))
        finally:
            self.dbs.drop(location)
            files = DatabaseURL.parse(location).files_folder  # media written beside a file
            if files is not None:
                shutil.rmtree(place / files / MEDIA_FOLDER, ignore_errors=True)
            shutil.rmtree(place, ignore_errors=True)
        code, out, err = done[0]
        require(code == 0, f"egregora run --workers {workers} exited {code}: {err[-TAIL:]}")
        self._check(workers, json.loads(out))
        return seconds

    def _check(self, workers: int, summary: dict[str, Any]) -> None:
        """The run did the whole job, as the first run did, with the workers it was given."""
        documents = summary["documents"]
        done = {
            "documents": documents,
            "messages": summary["messages"],
            "new_messages": summary["new_messages"],
            "cards_rendered": summary["cards_rendered"],
        }
        require(
            summary["new_messages"] == summary["messages"] > 0
            and documents["post"] == documents["journal"] > 0
            and documents["profile"] > 0
            and summary["cards_rendered"] == 2 * documents["post"]
            and summary["tasks_waiting"] == 0,
            f"egregora run --workers {workers} did not do the whole job: {summary}",
        )
        if self.expected is None:
            self.expected = done
            self.rows = documents["post"] + documents["profile"]  # a task per window, author
        require(
            done == self.expected,
            f"egregora run --workers {workers} made {done}, another run {self.expected}",
        )
        described = str(summary["workers"])
        require(
            described.startswith(f"{workers} "),
            f"egregora run --workers {workers} says it had {described!r}",
        )
        self.described[workers] = described
        self._describe()

    def time_case(self) -> float:
        return self._run(WORKERS)

    def time_baseline(self) -> float:
        return self._run(BASELINE_WORKERS)

    def _describe(self) -> None:
        expected = self.expected
        if expected is None:
            return
        documents = expected["documents"]
        self.note = self.base_note.format(
            tz=TIMEZONE,
            messages=expected["messages"],
            windows=documents["post"],
            profiles=documents["profile"],
            tasks=self.rows,
            workers=WORKERS,
            children=WORKERS - 1,
            writer=WRITER,
            sleep=self.sleep_s,
            described=self.described.get(WORKERS, "not run yet"),
            one=self.described.get(BASELINE_WORKERS, "not run yet"),
            db=self.dbs.described,
            documents=", ".join(f"{n} {kind}" for kind, n in documents.items()),
        )

    def close(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = self.export = None


def _finish(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``command`` to its end: exit status, stdout and stderr. It gets a session of its
    own, so that on a timeout (or an interrupt) it goes down with the worker processes it
    started, which share its process group."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=TIMEOUT_S)
    except BaseException:
        _kill_group(process.pid)
        process.communicate()
        raise
    return process.returncode, out, err


def _kill_group(pid: int) -> None:
    """Kill the process group led by ``pid`` (a run this case started, and its workers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
