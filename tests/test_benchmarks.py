"""The benchmarks as a smoke test: every case once at ``--quick`` size, its checks included.

The benchmarks measure, they do not judge speed, so nothing here looks at a timing: what must
hold is that every case and its baseline still run and pass the correctness checks their
``prepare`` and each repetition make, and that a failed check fails the run. With a PostgreSQL
server named by ``EGREGORA_TEST_POSTGRES_URL``, the cases that run there do so once more on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from benchmarks.__main__ import main
from benchmarks.cases import CASES
from benchmarks.databases import PREFIX
from benchmarks.harness import Benchmark, CaseFailed, measure, require
from rich.console import Console

from egregora.backends import DatabaseURL

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 900  # a budget for a stuck run, not a speed limit
TAIL = 6_000  # characters of the run's stderr shown when it fails
# The storage, services, one-row, git, runner, workers and archive cases: with --db
# postgresql://... they run on the server; the others run on DuckDB whatever --db names (their
# duckdb_only says why).
POSTGRES_CASES = (
    "write_messages_validated",
    "documents_posts_by_author",
    "git_sync",
    "git_resolve_many",
    "git_resolve_loop",
    "git_resolve_latency",
    "git_cache",
    "git_resync_force_push",
    "tasks_enqueue_many",
    "tasks_claim",
    "cache_hit",
    "cache_evict",
    "write_one_row",
    "run_start",
    "enqueue_one",
    "claim_complete",
    "runner_run",
    "run_workers",
    "etl_archive_entries",
)
POSTGRES_REPEATS = 2  # both orders (case first, then baseline first), in about two minutes


def _tail(text: str | bytes | None) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return (text or "")[-TAIL:]


def _run(arguments: list[str], output: Path, shown: str) -> dict[str, Any]:
    """``python -m benchmarks ARGUMENTS --output OUTPUT``, which must exit 0; its JSON.
    ``shown`` is the command as failures print it (no password)."""
    command = [sys.executable, "-m", "benchmarks", *arguments, "--output", str(output)]
    try:
        proc = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{shown} ran over {TIMEOUT_S} s; stderr ends:\n{_tail(exc.stderr)}")
    assert proc.returncode == 0, (
        f"{shown} exited with {proc.returncode}; stderr ends:\n{_tail(proc.stderr)}"
    )
    document: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    return document


def _check_samples(document: dict[str, Any], cases: list[str] | tuple[str, ...]) -> None:
    """Every case of ``cases`` reported, in order, with samples on both sides."""
    assert document["quick"] is True
    assert document["failures"] == {}
    results = {r["case"]: r for r in document["results"]}
    assert list(results) == list(cases)
    for name, result in results.items():
        repeats = document["repeats"]
        assert len(result["case_s"]) == len(result["baseline_s"]) == repeats >= 1, name
        assert result["case_items"] >= 1 and result["baseline_items"] >= 1, name


def test_quick_run_passes_every_case(tmp_path: Path) -> None:
    document = _run(["--quick"], tmp_path / "latest.json", "python -m benchmarks --quick")
    _check_samples(document, list(CASES))
    assert {r["engine"] for r in document["results"]} == {"duckdb"}


def test_postgres_cases_are_the_ones_not_bound_to_duckdb() -> None:
    portable = [name for name, case in CASES.items() if not getattr(case, "duckdb_only", "")]
    assert portable == [name for name in CASES if name in POSTGRES_CASES]
    assert set(POSTGRES_CASES) <= set(CASES)


def _bench_databases(url: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as con:
        rows = con.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [PREFIX]
        ).fetchall()
    return {row[0] for row in rows}


def test_quick_run_on_postgres_passes_its_cases(tmp_path: Path, postgres_url: str) -> None:
    """``--quick --db postgresql://...`` for the cases that run there; every database a case
    made is dropped by the end."""
    before = _bench_databases(postgres_url)
    cases = [argument for name in POSTGRES_CASES for argument in ("--case", name)]
    arguments = ["--quick", "--repeats", str(POSTGRES_REPEATS), "--db", postgres_url, *cases]
    shown = f"python -m benchmarks --quick --db {DatabaseURL.parse(postgres_url)} ..."
    document = _run(arguments, tmp_path / "latest.json", shown)

    _check_samples(document, POSTGRES_CASES)
    assert document["engine"] == "postgres"
    assert {r["engine"] for r in document["results"]} == {"postgres"}
    assert _bench_databases(postgres_url) <= before, "the run left databases behind"


class _Scripted(Benchmark):
    """A case that does no work and whose correctness check fails where it is told to."""

    name = "scripted"
    baseline = "nothing"
    note = "A fake case for the harness's tests."

    def __init__(
        self, fail_in: str | None = None, sizes: tuple[int, int] = (1, 1), name: str = "scripted"
    ) -> None:
        super().__init__(1)
        self.name = name
        self.fail_in = fail_in
        self.items = sizes
        self.repetitions = 0
        self.closed = False

    def prepare(self) -> None:
        require(self.fail_in != "prepare", "the data did not take the valid-data path")

    def time_case(self) -> float:
        self.repetitions += 1
        failing = self.fail_in == "repetition" and self.repetitions == 2
        require(not failing, "the second repetition counted 0 rows, wanted 1")
        return 0.002

    def time_baseline(self) -> float:
        return 0.001

    def sizes(self) -> tuple[int, int]:
        return self.items

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    ("fail_in", "stage", "problem"),
    [
        ("prepare", "prepare", "did not take the valid-data path"),
        ("repetition", "repetition 2 of 3", "counted 0 rows"),
    ],
)
def test_a_failed_check_stops_the_case(fail_in: str, stage: str, problem: str) -> None:
    bench = _Scripted(fail_in)
    with pytest.raises(CaseFailed, match=f"scripted failed in {stage}: RuntimeError: .*{problem}"):
        measure(bench, 3, Console(stderr=True))
    assert bench.closed


def test_measure_records_both_sizes() -> None:
    result = measure(_Scripted(sizes=(100_000, 300)), 2, Console(stderr=True))
    assert (result.case_items, result.baseline_items) == (100_000, 300)
    assert result.sizes_text == "100,000 / 300"
    assert result.to_dict()["case_items"] == 100_000
    assert result.to_dict()["baseline_items"] == 300


def test_a_failed_case_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(
        CASES, "sized", lambda data, databases: _Scripted(sizes=(100_000, 300), name="sized")
    )
    monkeypatch.setitem(
        CASES, "broken", lambda data, databases: _Scripted("repetition", name="broken")
    )
    output = tmp_path / "latest.json"
    argv = ["--rows", "8", "--repeats", "2", "--case", "broken", "--case", "sized"]

    assert main([*argv, "--output", str(output)]) == 1

    captured = capsys.readouterr()
    assert "1 of 2 cases failed: broken" in captured.err
    assert "broken failed in repetition 2 of 2: RuntimeError: the second repetition" in captured.err
    assert "100,000 / 300" in captured.out  # the case that passed is still reported
    document = json.loads(output.read_text(encoding="utf-8"))
    assert list(document["failures"]) == ["broken"]
    assert [r["case"] for r in document["results"]] == ["sized"]
