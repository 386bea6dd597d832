"""Timing, medians and the report: a case and its baseline, measured alternately in one process."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

from rich.console import Console
from rich.table import Table as RichTable


class Benchmark(ABC):
    """A case and its baseline over the same data.

    ``prepare`` builds what both need (untimed) and checks once that both take the valid-data
    path; ``time_case`` and ``time_baseline`` each return the seconds of the measured part only,
    so per-repetition setup (such as a fresh database) stays out of the numbers.
    ``time_extras`` may time further reference points (reported, not part of the ratio).
    """

    name: str
    baseline: str
    note: str

    def __init__(self, rows: int) -> None:
        self.rows = rows

    @abstractmethod
    def prepare(self) -> None: ...

    @abstractmethod
    def time_case(self) -> float: ...

    @abstractmethod
    def time_baseline(self) -> float: ...

    def time_extras(self) -> dict[str, float]:
        """Seconds of further reference points, by name; none unless a case adds some."""
        return {}

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release what ``prepare`` built."""


@dataclass(frozen=True)
class Result:
    name: str
    baseline: str
    note: str
    rows: int
    case_s: tuple[float, ...]
    baseline_s: tuple[float, ...]
    extras_s: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def median_case_s(self) -> float:
        return statistics.median(self.case_s)

    @property
    def median_baseline_s(self) -> float:
        return statistics.median(self.baseline_s)

    @property
    def ratio(self) -> float:
        return self.median_case_s / self.median_baseline_s

    def median_extra_s(self, name: str) -> float:
        return statistics.median(self.extras_s[name])

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.name,
            "baseline": self.baseline,
            "rows": self.rows,
            "median_case_s": self.median_case_s,
            "median_baseline_s": self.median_baseline_s,
            "ratio": self.ratio,
            "case_s": list(self.case_s),
            "baseline_s": list(self.baseline_s),
            "extras": {
                name: {
                    "median_s": self.median_extra_s(name),
                    "case_ratio": self.median_case_s / self.median_extra_s(name),
                    "samples_s": list(samples),
                }
                for name, samples in self.extras_s.items()
            },
            "note": self.note,
        }


def require(condition: bool, problem: str) -> None:
    """Stop the run when the data does not take the path being measured (not an assert: -O)."""
    if not condition:
        raise RuntimeError(problem)


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action`` takes, after a garbage collection so none lands inside the timing."""
    gc.collect()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(bench: Benchmark, repeats: int, log: Console) -> Result:
    """Prepare once, then time case and baseline ``repeats`` times each, alternating their order
    every repetition so drift on a shared machine falls on both alike."""
    case: list[float] = []
    base: list[float] = []
    extras: dict[str, list[float]] = {}
    try:
        bench.prepare()
        for rep in range(repeats):
            if rep % 2 == 0:
                case.append(bench.time_case())
                base.append(bench.time_baseline())
            else:
                base.append(bench.time_baseline())
                case.append(bench.time_case())
            for name, seconds in bench.time_extras().items():
                extras.setdefault(name, []).append(seconds)
            log.print(
                f"  {bench.name} {rep + 1}/{repeats}: case {case[-1]:.3f} s, "
                f"baseline {base[-1]:.3f} s",
                highlight=False,
            )
    finally:
        bench.close()
    return Result(
        bench.name,
        bench.baseline,
        bench.note,
        bench.rows,
        tuple(case),
        tuple(base),
        {name: tuple(samples) for name, samples in extras.items()},
    )


def machine_info() -> dict[str, Any]:
    packages = ("duckdb", "ibis-framework", "pandera", "pyarrow", "sqlglot")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "load_average_at_end": load,
        "packages": {name: version(name) for name in packages},
    }


def report(
    results: Sequence[Result], *, rows: int, repeats: int, quick: bool, extra: dict[str, Any]
) -> dict[str, Any]:
    return {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": rows,
        "repeats": repeats,
        "quick": quick,
        "statistic": "median",
        "machine": machine_info(),
        **extra,
        "results": [r.to_dict() for r in results],
    }


def results_table(results: Sequence[Result], title: str) -> RichTable:
    table = RichTable(title=title)
    table.add_column("case", no_wrap=True)
    table.add_column("baseline", no_wrap=True)
    table.add_column("median case s", justify="right")
    table.add_column("median baseline s", justify="right")
    table.add_column("ratio (case/baseline)", justify="right")
    table.add_column("rows", justify="right")
    for r in results:
        table.add_row(
            r.name,
            r.baseline,
            f"{r.median_case_s:.3f}",
            f"{r.median_baseline_s:.3f}",
            f"{r.ratio:.2f}x",
            f"{r.rows:,}",
        )
    return table


def extra_lines(results: Sequence[Result]) -> list[str]:
    """One line per extra reference point: its median and the case's ratio to it."""
    return [
        f"{r.name}: {name} median {r.median_extra_s(name):.3f} s "
        f"(case / {name} = {r.median_case_s / r.median_extra_s(name):.2f}x)"
        for r in results
        for name in r.extras_s
    ]
