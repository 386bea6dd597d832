"""Command-line start-up case: the small commands a user types, as processes.

``cli_startup`` times ``python -m egregora --help`` to its end (interpreter start-up, imports
and the help's rendering included, as a user waits for it); the baseline is ``python -c
"import typer, rich.console"``, what any Typer command line with rich help pays before it does
anything. Extras: ``--version`` (compared with a second measurement of the baseline, taken in
the same repetition) and ``git resolve`` of one path on a DuckDB file synced with the
2,600-commit history of the git cases (``git_repo.py``, cached), whose goal is a wall clock:
under one second. The answer is checked against ``git log -1 --first-parent --before=AT``.
A DuckDB file: the command line's start, not a server's connection, is what is measured.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa

from benchmarks.databases import Databases
from benchmarks.git_repo import RepoSpec, git_command, repository
from benchmarks.harness import Benchmark, require, timed
from egregora import __version__
from egregora.git import sync_repository
from egregora.storage import Storage

SPEC = RepoSpec(commits=2_600, files=1_000)  # the git resync case's history
TIMEOUT_S = 120.0  # a budget for a stuck command, not a speed limit
BASELINE = [sys.executable, "-c", "import typer, rich.console"]


def _run(command: list[str], cwd: Path) -> tuple[float, str]:
    """Seconds ``command`` takes to its end, and its stdout; a failure fails the case."""
    done: list[subprocess.CompletedProcess[str]] = []

    def run() -> None:
        done.append(
            subprocess.run(
                command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
            )
        )

    seconds = timed(run)
    proc = done[0]
    require(proc.returncode == 0, f"{command} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return seconds, proc.stdout


def _egregora(*args: str) -> list[str]:
    return [sys.executable, "-m", "egregora", *args]


class CliStartup(Benchmark):
    """``egregora --help`` against ``import typer, rich.console``; ``--version`` and a
    ``git resolve`` of one path as extras."""

    name = "cli_startup"
    baseline = "import_typer_rich"
    note = ""
    duckdb_only = "it measures the command line's start, on a local DuckDB file"
    extra_pairs = (("version", "import_typer_rich_again"),)

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        super().__init__(data.num_rows)
        self.folder: Path | None = None
        self.resolve: list[str] = []

    def sizes(self) -> tuple[int, int]:
        return 1, 1  # one command each

    def prepare(self) -> None:
        manifest = repository(SPEC)
        self.folder = folder = Path(tempfile.mkdtemp(prefix="egregora-bench-cli-"))
        db = folder / "git.duckdb"
        with Storage.open(str(db)) as store:
            store.ensure_schema()
            synced = sync_repository(store, manifest.path)
        path = sorted(manifest.live)[len(manifest.live) // 2]
        at = manifest.last_date + 86_400  # a day after the last commit: the path exists
        self.resolve = _egregora("git", "resolve", manifest.path, path, f"@{at}", "--db", str(db))
        want = subprocess.run(
            git_command(
                manifest.path,
                "log",
                "-1",
                "--format=%H",
                "--first-parent",
                f"--before=@{at}",
                "--",
                path,
            ),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        got = _run(self.resolve, folder)[1].strip()  # also warms the imports
        require(got == want, f"git resolve printed {got!r}; git log -1 says {want!r}")
        version = _run(_egregora("--version"), folder)[1].strip()
        require(version == __version__, f"`egregora --version` printed {version!r}")
        help_text = _run(_egregora("--help"), folder)[1]
        require("Usage" in help_text, "`egregora --help` printed no usage line")
        self.note = (
            f"egregora --help, --version and `git resolve` of {path} on a DuckDB file synced "
            f"with {synced.commits:,} first-parent commits, as processes"
        )

    def time_case(self) -> float:
        assert self.folder is not None
        return _run(_egregora("--help"), self.folder)[0]

    def time_baseline(self) -> float:
        assert self.folder is not None
        return _run(BASELINE, self.folder)[0]

    def time_extras(self) -> dict[str, float]:
        assert self.folder is not None
        return {
            "version": _run(_egregora("--version"), self.folder)[0],
            "import_typer_rich_again": _run(BASELINE, self.folder)[0],
            "git_resolve": _run(self.resolve, self.folder)[0],
        }

    def close(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
