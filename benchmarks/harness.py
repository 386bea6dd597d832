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
from typing import Any, ClassVar

from rich.console import Console
from rich.table import Table as RichTable


class Benchmark(ABC):
    """A case and its baseline over the same data.

    ``prepare`` builds what both need (untimed) and checks once that both take the valid-data
    path; ``time_case`` and ``time_baseline`` each return the seconds of the measured part only,
    so per-repetition setup (such as a fresh database) stays out of the numbers.
    ``time_extras`` may time further reference points (reported, not part of the ratio).
    ``unit`` says what the returned numbers are (seconds per run unless a case divides them,
    say per probe, to compare sides that do different amounts of work); ``sizes`` says how many
    items each side's number covers, printed beside the ratio, since a per-item cost of a big
    batch improves just by growing the batch; ``extra_pairs`` names extras reported as a ratio
    to another extra rather than to the case (such as two p99s).
    """

    name: str
    baseline: str
    note: str
    unit: ClassVar[str] = "s"
    extra_pairs: ClassVar[tuple[tuple[str, str], ...]] = ()
    # The engine the case ran on: its databases' engine (see ``databases.py``), or DuckDB for
    # a case that runs there whatever ``--db`` names, saying why in ``duckdb_only``.
    engine: str = "duckdb"
    duckdb_only: ClassVar[str] = ""

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

    def sizes(self) -> tuple[int, int]:
        """Items the case and the baseline each work through: ``rows`` both, unless a case
        times its sides on different amounts (a batch against a sample, say)."""
        return self.rows, self.rows

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release what ``prepare`` built."""


class CaseFailed(RuntimeError):
    """A case stopped: a correctness check failed (or something broke) in one of its stages."""

    def __init__(self, case: str, stage: str, cause: BaseException) -> None:
        super().__init__(f"{case} failed in {stage}: {type(cause).__name__}: {cause}")
        self.case, self.stage = case, stage


@dataclass(frozen=True)
class Result:
    name: str
    baseline: str
    note: str
    rows: int
    case_s: tuple[float, ...]
    baseline_s: tuple[float, ...]
    case_items: int
    baseline_items: int
    extras_s: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    unit: str = "s"
    extra_pairs: tuple[tuple[str, str], ...] = ()
    wall_s: float = 0.0  # the whole case: prepare, repetitions and close
    engine: str = "duckdb"  # where both sides ran

    @property
    def median_case_s(self) -> float:
        return statistics.median(self.case_s)

    @property
    def median_baseline_s(self) -> float:
        return statistics.median(self.baseline_s)

    @property
    def ratio(self) -> float:
        return self.median_case_s / self.median_baseline_s

    @property
    def sizes_text(self) -> str:
        """``100,000 / 300``: the items behind the case's number and the baseline's."""
        return f"{self.case_items:,} / {self.baseline_items:,}"

    def median_extra_s(self, name: str) -> float:
        return statistics.median(self.extras_s[name])

    def extra_ratio(self, name: str) -> tuple[str, float]:
        """What extra ``name`` is compared with ("case" or another extra) and the ratio."""
        other = dict(self.extra_pairs).get(name)
        if other is None:
            return "case", self.median_case_s / self.median_extra_s(name)
        return other, self.median_extra_s(name) / self.median_extra_s(other)

    def to_dict(self) -> dict[str, Any]:
        extras: dict[str, Any] = {}
        for name, samples in self.extras_s.items():
            extras[name] = {
                "median_s": self.median_extra_s(name),
                "case_ratio": self.median_case_s / self.median_extra_s(name),
                "samples_s": list(samples),
            }
            other, ratio = self.extra_ratio(name)
            if other != "case":
                extras[name] |= {"compared_with": other, "ratio": ratio}
        return {
            "case": self.name,
            "baseline": self.baseline,
            "engine": self.engine,
            "rows": self.rows,
            "unit": self.unit,
            "median_case_s": self.median_case_s,
            "median_baseline_s": self.median_baseline_s,
            "ratio": self.ratio,
            "case_items": self.case_items,
            "baseline_items": self.baseline_items,
            "case_s": list(self.case_s),
            "baseline_s": list(self.baseline_s),
            "extras": extras,
            "note": self.note,
            "wall_s": self.wall_s,
        }


def require(condition: bool, problem: str) -> None:
    """Stop the run when the data does not take the path being measured (not an assert: -O)."""
    if not condition:
        raise RuntimeError(problem)


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``samples``, interpolated between the nearest two."""
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def seconds_text(value: float) -> str:
    """Three decimals, or three significant digits below 0.1 (per-probe times are tiny)."""
    return f"{value:.3f}" if value >= 0.1 else f"{value:.3g}"


def ratio_text(ratio: float) -> str:
    """``2.50x``; a ratio below 0.1 also as a fraction, so "1/3,400" reads as 3,400x faster."""
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.3g}x (1/{1 / ratio:,.0f})"


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action`` takes, after a garbage collection so none lands inside the timing."""
    gc.collect()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(bench: Benchmark, repeats: int, log: Console) -> Result:
    """Prepare once, then time case and baseline ``repeats`` times each, alternating their order
    every repetition so drift on a shared machine falls on both alike.

    Any exception (a failed correctness check in ``prepare`` or in a repetition included) stops
    the case and is raised again as ``CaseFailed``, naming the case and the stage."""
    case: list[float] = []
    base: list[float] = []
    extras: dict[str, list[float]] = {}
    started = time.perf_counter()
    stage = "prepare"
    try:
        try:
            bench.prepare()
            for rep in range(repeats):
                stage = f"repetition {rep + 1} of {repeats}"
                if rep % 2 == 0:
                    case.append(bench.time_case())
                    base.append(bench.time_baseline())
                else:
                    base.append(bench.time_baseline())
                    case.append(bench.time_case())
                for name, seconds in bench.time_extras().items():
                    extras.setdefault(name, []).append(seconds)
                log.print(
                    f"  {bench.name} {rep + 1}/{repeats}: case {seconds_text(case[-1])} "
                    f"{bench.unit}, baseline {seconds_text(base[-1])} {bench.unit}",
                    highlight=False,
                )
            stage = "sizes"
            case_items, baseline_items = bench.sizes()
        except BaseException:
            _close_after_failure(bench, log)
            raise
        stage = "close"
        bench.close()
    except Exception as exc:
        raise CaseFailed(bench.name, stage, exc) from exc
    return Result(
        name=bench.name,
        baseline=bench.baseline,
        note=bench.note,
        rows=bench.rows,
        case_s=tuple(case),
        baseline_s=tuple(base),
        case_items=case_items,
        baseline_items=baseline_items,
        extras_s={name: tuple(samples) for name, samples in extras.items()},
        unit=bench.unit,
        extra_pairs=bench.extra_pairs,
        wall_s=time.perf_counter() - started,
        engine=bench.engine,
    )


def _close_after_failure(bench: Benchmark, log: Console) -> None:
    """Release what the case built, without letting a second error hide the first."""
    try:
        bench.close()
    except Exception as exc:
        log.print(f"  {bench.name}: close() failed too: {exc!r}", highlight=False)


def machine_info() -> dict[str, Any]:
    packages = ("duckdb", "ibis-framework", "pandera", "pyarrow", "sqlglot", "psycopg")
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
    table.add_column("engine", no_wrap=True)
    table.add_column("baseline", no_wrap=True)
    table.add_column("median case", justify="right")
    table.add_column("median baseline", justify="right")
    table.add_column("ratio (case/baseline)", justify="right")
    table.add_column("sizes", justify="right")
    table.add_column("rows", justify="right")
    for r in results:
        table.add_row(
            r.name,
            r.engine,
            r.baseline,
            f"{seconds_text(r.median_case_s)} {r.unit}",
            f"{seconds_text(r.median_baseline_s)} {r.unit}",
            ratio_text(r.ratio),
            r.sizes_text,
            f"{r.rows:,}",
        )
    return table


def extra_lines(results: Sequence[Result]) -> list[str]:
    """One line per extra reference point: its median and the case's ratio to it; a paired
    extra's line gives its partner's median too and their ratio instead."""
    lines = []
    for r in results:
        partners = dict(r.extra_pairs)
        for name in r.extras_s:
            if name in partners.values():
                continue  # on its partner's line
            median = f"{r.name}: {name} median {seconds_text(r.median_extra_s(name))} {r.unit}"
            other, ratio = r.extra_ratio(name)
            if other == "case":
                lines.append(f"{median} (case / {name} = {ratio_text(ratio)})")
            else:
                lines.append(
                    f"{median}, {other} median {seconds_text(r.median_extra_s(other))} "
                    f"{r.unit} ({name} / {other} = {ratio_text(ratio)})"
                )
    return lines
