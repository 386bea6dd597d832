"""The benchmarks as a smoke test: every case once at ``--quick`` size, its checks included.

The benchmarks measure, they do not judge speed, so nothing here looks at a timing: what must
hold is that every case and its baseline still run and pass the correctness checks their
``prepare`` and each repetition make, and that a failed check fails the run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks.__main__ import main
from benchmarks.cases import CASES
from benchmarks.harness import Benchmark, CaseFailed, measure, require
from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 900  # a budget for a stuck run, not a speed limit
TAIL = 6_000  # characters of the run's stderr shown when it fails


def _tail(text: str | bytes | None) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return (text or "")[-TAIL:]


def test_quick_run_passes_every_case(tmp_path: Path) -> None:
    output = tmp_path / "latest.json"
    command = [sys.executable, "-m", "benchmarks", "--quick", "--output", str(output)]
    try:
        proc = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"{' '.join(command)} ran over {TIMEOUT_S} s; stderr ends:\n{_tail(exc.stderr)}"
        )
    assert proc.returncode == 0, (
        f"{' '.join(command)} exited with {proc.returncode}; stderr ends:\n{_tail(proc.stderr)}"
    )

    document = json.loads(output.read_text(encoding="utf-8"))
    assert document["quick"] is True
    assert document["failures"] == {}
    results = {r["case"]: r for r in document["results"]}
    assert list(results) == list(CASES)
    for name, result in results.items():
        repeats = document["repeats"]
        assert len(result["case_s"]) == len(result["baseline_s"]) == repeats >= 1, name
        assert result["case_items"] >= 1 and result["baseline_items"] >= 1, name


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
    monkeypatch.setitem(CASES, "sized", lambda data: _Scripted(sizes=(100_000, 300), name="sized"))
    monkeypatch.setitem(CASES, "broken", lambda data: _Scripted("repetition", name="broken"))
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
