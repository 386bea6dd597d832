"""``python -m benchmarks [--quick] [--rows N] [--repeats K] [--case NAME ...] [--db URL]``.

Exits 1 when any case fails (a correctness check in its ``prepare`` or in a repetition, or
anything else it raises), after running the others: ``--quick`` doubles as a smoke test of
every case. ``--db postgresql://...`` runs the storage, services, git and runner cases on
databases made on that server (``databases.py``); the others run on DuckDB and say why.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
from rich.console import Console

from benchmarks.cases import CASES
from benchmarks.data import documents_arrow
from benchmarks.databases import DUCKDB, Databases, databases_for, shown
from benchmarks.harness import CaseFailed, Result, extra_lines, measure, report, results_table

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
FULL_ROWS, QUICK_ROWS = 1_000_000, 20_000
FULL_REPEATS, QUICK_REPEATS = 5, 3

# ibis 12 emits these on every query (see [tool.pytest.ini_options] filterwarnings).
NOISY_WARNINGS = (
    r"fetch_arrow_table\(\) is deprecated",
    r"The 'future.infer_string' option is deprecated",
)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time each case against its baseline in this process; print medians and "
        "their ratio, and write benchmarks/results/latest.json. Exits 1 if a case fails "
        "(such as one of its correctness checks).",
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_ROWS:,} rows, {QUICK_REPEATS} repeats"
    )
    parser.add_argument("--rows", type=int, help=f"rows per case (default {FULL_ROWS:,})")
    parser.add_argument("--repeats", type=int, help=f"repetitions (default {FULL_REPEATS})")
    parser.add_argument(
        "--case", action="append", choices=sorted(CASES), help="run only this case (repeatable)"
    )
    parser.add_argument(
        "--db",
        default=DUCKDB,
        metavar="URL",
        help=f"{DUCKDB} (the default: DuckDB files in temporary folders) or "
        "postgresql://USER@HOST:PORT/DATABASE, a server where the user may create databases "
        "(each case makes its own, named egregora_bench_*, and drops them when it ends)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args(argv)
    if args.rows is not None and args.rows < 1:
        parser.error("--rows must be at least 1")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    try:
        args.databases = databases_for(args.db)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def _run_case(
    name: str, data: pa.Table, repeats: int, log: Console, databases: Databases
) -> Result:
    """One case, built and measured; any failure raised as ``CaseFailed``. Every database the
    case made is dropped when it ends, passed or failed."""
    try:
        try:
            bench = CASES[name](data, databases)
        except Exception as exc:
            raise CaseFailed(name, "setup", exc) from exc
        if bench.duckdb_only and bench.engine != databases.engine:
            log.print(
                f"  {name} runs on {bench.engine}, whatever --db names: {bench.duckdb_only}",
                highlight=False,
            )
        result = measure(bench, repeats, log)
    except BaseException:
        try:
            databases.close()
        except Exception as exc:  # the first failure is the one to report
            log.print(f"  {name}: dropping its databases failed too: {exc!r}", highlight=False)
        raise
    try:
        databases.close()
    except Exception as exc:
        raise CaseFailed(name, "dropping its databases", exc) from exc
    return result


def main(argv: Sequence[str] | None = None) -> int:
    for message in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=message)

    args = _parse(argv)
    rows = args.rows or (QUICK_ROWS if args.quick else FULL_ROWS)
    repeats = args.repeats or (QUICK_REPEATS if args.quick else FULL_REPEATS)
    names = args.case or list(CASES)
    log = Console(stderr=True)
    # Wide enough that the table never wraps when stdout is a pipe or a file (rich assumes 80).
    out = Console(width=None if sys.stdout.isatty() else 160)

    started = time.perf_counter()
    probe = args.databases()
    try:
        probe.check()  # a server that refuses fails here, before any case
        server = probe.server()
    except Exception as exc:
        log.print(f"cannot make databases at --db {shown(args.db)}: {exc}", highlight=False)
        return 2
    finally:
        probe.close()
    log.print(f"databases: {server['engine']} ({server['server']})", highlight=False)
    log.print(f"generating {rows:,} valid documents rows ...", highlight=False)
    data = documents_arrow(rows)
    generated = time.perf_counter() - started
    results: list[Result] = []
    failures: dict[str, str] = {}
    for name in names:
        log.print(
            f"{name}: checking the valid-data path, then {repeats} repetitions", highlight=False
        )
        try:
            result = _run_case(name, data, repeats, log, args.databases())
        except CaseFailed as failed:
            failures[name] = str(failed)
            trace = traceback.format_exception(failed.__cause__ or failed)
            log.print("".join(trace), markup=False, highlight=False, soft_wrap=True, end="")
            log.print(str(failed), markup=False, highlight=False, soft_wrap=True)
            continue
        results.append(result)
        log.print(f"  {name}: {result.wall_s:.1f} s in all", highlight=False)
    total = time.perf_counter() - started

    if results:
        title = (
            f"{rows:,} rows, median of {repeats}, on {server['engine']} ({server['db']}) "
            "where a case can run there (ratio = case / baseline; lower is cheaper; "
            "sizes = case items / baseline items)"
        )
        out.print(results_table(results, title))
        for line in extra_lines(results):
            out.print(line, highlight=False)
    document = report(
        results,
        rows=rows,
        repeats=repeats,
        quick=args.quick,
        extra={**server, "generate_s": generated, "total_s": total, "failures": failures},
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    log.print(f"wrote {args.output} ({total:.1f} s in all)", highlight=False)
    if failures:
        log.print(
            f"{len(failures)} of {len(names)} cases failed: {', '.join(failures)}",
            highlight=False,
        )
        for message in failures.values():
            log.print(f"  {message}", markup=False, highlight=False, soft_wrap=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
