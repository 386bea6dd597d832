"""Migrations survive SIGKILL at any moment, concurrent runners, and a process holding the file.

Every test runs the real command line (``python -m egregora db migrate``) as subprocesses on
DuckDB files in a temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sqlglot import exp

from egregora.migrations import catalog_at, shipped_migrations
from egregora.migrations.engine import migrate, status
from egregora.migrations.executor import DuckDBExecutor
from egregora.migrations.ledger import LEDGER
from egregora.schema.catalog import CATALOG
from egregora.schema.model import Catalog
from egregora.storage.setup import migrate_database
from egregora.storage.url import DatabaseURL
from tests.samples import valid_rows
from tests.support import insert_rows

MIGRATION_IDS = [m.id for m in shipped_migrations()]
HEAD = MIGRATION_IDS[-1]
DATA_TABLES = [name for name in CATALOG.names if name != LEDGER]

# Rows of `documents` in the crash template: enough that migrating 0001 -> head (0002 rebuilds
# documents and annotations) takes about a second beyond interpreter start-up.
DOCUMENTS = 25_000
ANNOTATIONS = DOCUMENTS // 4
MESSAGES = 2_000
KILL_TRIALS = 24
MIN_REAL_KILLS = 10

Digest = dict[str, tuple[int, int]]


def _migrate_cmd(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "egregora", "db", "migrate", "--db", str(db), *args]


def _wal(db: Path) -> Path:
    return db.with_name(db.name + ".wal")


# ---------------------------------------------------------------------------------------------
# Building and reading databases in this process.


def _fill_template(con: duckdb.DuckDBPyConnection) -> None:
    """Sample rows in every table, then bulk documents, messages and annotations at 0001.

    The generated documents satisfy every rule of 0001 (post/profile/journal/media required
    columns, one slug per type, created <= updated, window order, the runs foreign key) and the
    rule 0002 adds: every published post has a date; drafts and archived posts sometimes lack
    one, which 0002 allows.
    """
    samples = valid_rows()
    for table in catalog_at("0001"):
        if table.name != LEDGER:
            columns = set(table.column_names)
            rows = [{k: v for k, v in r.items() if k in columns} for r in samples[table.name]]
            insert_rows(con, table.name, rows)
    con.execute(
        """
        INSERT INTO documents (
            id, doc_type, created_at, updated_at, title, slug, status, content, summary, date,
            authors, tags, subject_uuid, filename, mime_type, media_type, window_start,
            window_end, window_signature, source_checksum, extensions, created_by_run)
        SELECT
            'gen-doc-' || i,
            ['post', 'profile', 'journal', 'media'][i % 4 + 1],
            TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds(i),
            CASE WHEN i % 3 = 0 THEN TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds(i + 60) END,
            CASE WHEN i % 4 <> 3 THEN 'Title ' || i END,
            CASE WHEN i % 4 = 0 THEN 'slug-' || i END,
            CASE WHEN i % 4 = 0 THEN ['draft', 'published', 'archived'][(i // 4) % 3 + 1] END,
            repeat('lorem ipsum ', 1 + i % 20) || i,
            CASE WHEN i % 2 = 0 THEN 'summary ' || i END,
            CASE WHEN i % 4 = 0 AND (i // 4) % 3 = 1 THEN DATE '2026-01-01' + (i % 365)::INTEGER
                 WHEN i % 4 = 0 AND (i // 4) % 6 = 2 THEN DATE '2025-06-01' + (i % 99)::INTEGER
            END,
            ['u' || (i % 7), 'u' || (i % 11)],
            CASE WHEN i % 3 <> 0 THEN ['tag' || (i % 5)] END,
            CASE WHEN i % 4 = 1 THEN 'subject-' || i END,
            CASE WHEN i % 4 = 3 THEN 'file-' || i || '.jpg' END,
            CASE WHEN i % 4 = 3 THEN 'image/jpeg' END,
            CASE WHEN i % 4 = 3 THEN ['image', 'video', 'audio', 'document'][(i // 4) % 4 + 1] END,
            CASE WHEN i % 4 = 2 THEN TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds(i) END,
            CASE WHEN i % 4 = 2 THEN TIMESTAMPTZ '2026-01-01 01:00:00+00' + to_seconds(i) END,
            CASE WHEN i % 4 = 2 THEN 'sig-' || i END,
            md5(i::VARCHAR),
            CASE WHEN i % 5 = 0 THEN '{"n": ' || i || '}' END,
            ['run-1', 'run-2', 'run-3', NULL][i % 4 + 1]
        FROM range(?) AS r(i)
        """,
        [DOCUMENTS],
    )
    con.execute(
        """
        INSERT INTO messages (event_id, source, thread_id, seq, ts, kind, author_raw,
                              author_uuid, text, media_filename, media_type, created_by_run)
        SELECT
            'gen-ev-' || i, 'whatsapp', 'thread-' || (i % 3), i,
            TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds(i),
            ['text', 'media', 'system'][i % 3 + 1],
            CASE WHEN i % 3 <> 2 THEN 'Author ' || (i % 9) END,
            CASE WHEN i % 3 <> 2 THEN 'u' || (i % 9) END,
            'message ' || i,
            CASE WHEN i % 3 = 1 THEN 'm-' || i || '.png' END,
            CASE WHEN i % 3 = 1 THEN 'image' END,
            CASE WHEN i % 2 = 0 THEN 'run-1' END
        FROM range(?) AS r(i)
        """,
        [MESSAGES],
    )
    con.execute(
        """
        INSERT INTO annotations (annotation_id, message_id, document_id, author, content,
                                 created_at)
        SELECT
            'gen-an-' || i,
            CASE WHEN i % 5 = 0 THEN 'gen-ev-' || (i % ?) END,
            CASE WHEN i % 5 <> 0 THEN 'gen-doc-' || ((i * 7) % ?) END,
            'editor-' || (i % 3),
            'note ' || i,
            TIMESTAMPTZ '2026-02-01 00:00:00+00' + to_seconds(i)
        FROM range(?) AS r(i)
        """,
        [MESSAGES, DOCUMENTS, ANNOTATIONS],
    )


def _digest(con: duckdb.DuckDBPyConnection, catalog: Catalog = CATALOG) -> Digest:
    """Per data table: row count and an order-independent hash of each row's text (the
    columns ``catalog`` declares, so a template can be compared with its migrated copy)."""
    out: Digest = {}
    for name in DATA_TABLES:
        row_text = exp.func(
            "ROW", *[exp.column(c, quoted=True) for c in catalog[name].column_names]
        )
        query = exp.select(
            exp.Count(this=exp.Star()),
            exp.func(
                "COALESCE", exp.func("SUM", exp.func("HASH", exp.cast(row_text, "VARCHAR"))), 0
            ),
        ).from_(exp.to_table(name, quoted=True))
        row = con.execute(query.sql("duckdb")).fetchone()
        assert row is not None
        out[name] = (int(row[0]), int(row[1]))
    return out


@dataclass(frozen=True)
class Snapshot:
    current: str | None
    fingerprint: str | None
    ledger: list[tuple[Any, ...]]
    digest: Digest


def _snapshot(db: Path) -> Snapshot:
    with duckdb.connect(str(db), read_only=True) as con:
        report = status(DuckDBExecutor(con))
        ledger = con.execute(
            f'SELECT id, description, checksum FROM "{LEDGER}" ORDER BY id'  # noqa: S608
        ).fetchall()
        return Snapshot(report.current, report.fingerprint, ledger, _digest(con))


def _expected_ledger() -> list[tuple[Any, ...]]:
    return [(m.id, m.description, m.checksum) for m in shipped_migrations()]


def _assert_single_head(db: Path, fingerprint: str, label: str) -> None:
    """A new database at head: one ledger row per migration, the fresh schema, no rows."""
    after = _snapshot(db)
    assert after.current == HEAD, label
    assert after.ledger == _expected_ledger(), f"{label}: ledger {after.ledger}"
    assert after.fingerprint == fingerprint, f"{label}: fingerprint differs from a fresh head"
    assert all(count == 0 for count, _ in after.digest.values()), label


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A populated database at 0001, closed cleanly (no WAL), to copy for each trial."""
    db = tmp_path_factory.mktemp("crash") / "template.duckdb"
    with duckdb.connect(str(db)) as con:
        assert migrate(DuckDBExecutor(con), target="0001").applied == ("0001",)
        _fill_template(con)
        con.execute("CHECKPOINT")
    assert not _wal(db).exists()
    return db


@pytest.fixture(scope="module")
def fresh_head_fingerprint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The fingerprint of a new database migrated to head in this process."""
    db = tmp_path_factory.mktemp("fresh") / "head.duckdb"
    assert migrate_database(DatabaseURL.parse(str(db))).applied == tuple(MIGRATION_IDS)
    fingerprint = _snapshot(db).fingerprint
    assert fingerprint is not None
    return fingerprint


# ---------------------------------------------------------------------------------------------
# 1. SIGKILL at many moments of a migration.


@dataclass
class Trial:
    index: int
    kill_at: float
    returncode: int
    wal_left: bool
    found: str | None  # where the recovery run found the database

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL

    def describe(self) -> str:
        return (
            f"trial {self.index} (kill at {self.kill_at:.3f}s): returncode {self.returncode}, "
            f"WAL left {self.wal_left}, recovery found {self.found}"
        )


def _run_to_completion(db: Path, label: str) -> tuple[float, dict[str, Any]]:
    """Run migrate to the end; its wall time from process start and its JSON output."""
    started = time.monotonic()
    done = subprocess.run(
        _migrate_cmd(db, "--json"), capture_output=True, text=True, check=False, timeout=120
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, f"{label}: migrate exited {done.returncode}: {done.stderr}"
    payload: dict[str, Any] = json.loads(done.stdout)
    return elapsed, payload


def _kill_trial(template: Path, folder: Path, index: int, kill_at: float) -> Trial:
    db = folder / f"trial-{index:02d}.duckdb"
    shutil.copyfile(template, db)
    started = time.monotonic()
    proc = subprocess.Popen(
        _migrate_cmd(db, "--json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        delay = started + kill_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    label = f"trial {index} (kill at {kill_at:.3f}s)"
    assert proc.returncode in (0, -signal.SIGKILL), (
        f"{label}: migrate exited {proc.returncode} before the kill: {err}"
    )
    if proc.returncode == 0:
        assert json.loads(out)["to"] == HEAD, f"{label}: {out}"
    wal_left = _wal(db).exists()
    # Recover in this process (the function behind the command, without a second start-up).
    result = migrate_database(DatabaseURL.parse(str(db)))
    trial = Trial(index, kill_at, proc.returncode, wal_left, result.from_id)
    assert result.to_id == HEAD, f"{trial.describe()}: recovery ended at {result}"
    # The killed run committed each migration whole or not at all.
    assert result.from_id in MIGRATION_IDS, f"{trial.describe()}: {result}"
    remaining = tuple(m for m in MIGRATION_IDS if m > (result.from_id or ""))
    assert result.applied == remaining, f"{trial.describe()}: {result}"
    return trial


def test_sigkill_at_any_moment_loses_nothing(template: Path, tmp_path: Path) -> None:
    with duckdb.connect(str(template), read_only=True) as con:
        template_digest = _digest(con, catalog_at("0001"))

    # Two uninterrupted runs: the reference state, its duration, and that it is deterministic.
    durations = []
    references = []
    for n in range(2):
        db = tmp_path / f"reference-{n}.duckdb"
        shutil.copyfile(template, db)
        elapsed, payload = _run_to_completion(db, f"uninterrupted run {n}")
        assert payload == {"from": "0001", "to": HEAD, "applied": MIGRATION_IDS[1:]}
        durations.append(elapsed)
        references.append(_snapshot(db))
    reference = references[0]
    assert references[1] == reference, "two uninterrupted runs disagree"
    assert reference.current == HEAD
    assert reference.ledger == _expected_ledger()
    with duckdb.connect(str(tmp_path / "reference-0.duckdb"), read_only=True) as con:
        kept = _digest(con, catalog_at("0001"))
    assert kept == template_digest, "the uninterrupted migration changed data rows"
    assert reference.digest["documents"][0] == DOCUMENTS + len(valid_rows()["documents"])

    full = min(durations)
    kill_times = [1.1 * full * i / (KILL_TRIALS - 1) for i in range(KILL_TRIALS)]
    trials: list[Trial] = []
    for index, kill_at in enumerate(kill_times):
        trial = _kill_trial(template, tmp_path, index, kill_at)
        after = _snapshot(tmp_path / f"trial-{index:02d}.duckdb")
        assert after.current == HEAD, trial.describe()
        assert after.fingerprint == reference.fingerprint, f"{trial.describe()}: schema differs"
        assert after.ledger == reference.ledger, f"{trial.describe()}: ledger {after.ledger}"
        lost = {
            name: (after.digest[name], want)
            for name, want in reference.digest.items()
            if after.digest[name] != want
        }
        assert not lost, f"{trial.describe()}: (count, hash) now vs uninterrupted: {lost}"
        trials.append(trial)

    killed = [t for t in trials if t.killed]
    before_commit = [t for t in killed if t.found == "0001"]
    after_commit = [t for t in killed if t.found == HEAD]
    print(
        f"\nuninterrupted migrate: {', '.join(f'{d:.2f}s' for d in durations)}; "
        f"{len(trials)} trials, kills from 0 to {kill_times[-1]:.2f}s: "
        f"{len(killed)} killed mid-run (returncode -9; {len(before_commit)} before the commit, "
        f"{sum(t.wal_left for t in before_commit)} of them with a WAL on disk; "
        f"{len(after_commit)} after it), {len(trials) - len(killed)} finished first"
    )
    for trial in trials:
        print("  " + trial.describe())
    assert len(killed) >= MIN_REAL_KILLS, (
        f"only {len(killed)} of {len(trials)} trials killed the process mid-run: the run "
        f"({full:.2f}s) is too short for the test to mean anything"
    )


@pytest.mark.parametrize("attempt", range(3))
def test_sigkill_right_after_the_new_file_appears_leaves_it_usable(
    tmp_path: Path, fresh_head_fingerprint: str, attempt: int
) -> None:
    """The earliest moment of a run on a new database: DuckDB has just created the file."""
    db = tmp_path / f"new-{attempt}.duckdb"
    proc = subprocess.Popen(
        _migrate_cmd(db), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not db.exists() and proc.poll() is None and time.monotonic() < deadline:
            pass  # spin: the window between creating the file and writing its header is short
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = db.stat().st_size if db.exists() else None
    label = f"attempt {attempt}: killed with returncode {proc.returncode}, file left: {left} bytes"
    again = subprocess.run(
        _migrate_cmd(db, "--json"), capture_output=True, text=True, check=False, timeout=120
    )
    assert again.returncode == 0, f"{label}; migrating again failed: {again.stderr.strip()}"
    assert json.loads(again.stdout)["to"] == HEAD, label
    _assert_single_head(db, fresh_head_fingerprint, label)


# ---------------------------------------------------------------------------------------------
# 2. Two concurrent runners on one new database file.


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def _run_together(db: Path, *args: str, count: int = 2) -> list[Outcome]:
    procs = [
        subprocess.Popen(
            _migrate_cmd(db, "--json", *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    outcomes = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=90)
            outcomes.append(Outcome(proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return outcomes


@pytest.mark.parametrize("attempt", range(5))
def test_two_concurrent_migrates_create_the_database_once(
    tmp_path: Path, fresh_head_fingerprint: str, attempt: int
) -> None:
    db = tmp_path / "new" / "race.duckdb"
    outcomes = _run_together(db)
    label = f"attempt {attempt}: {outcomes}"
    for o in outcomes:
        if o.returncode == 0:
            payload = json.loads(o.stdout)
            assert payload["to"] == HEAD, label
        else:
            lines = o.stderr.splitlines()
            assert len(lines) == 1 and o.stderr.endswith("\n"), label
            assert lines[0].startswith("error: "), label
            assert "locked by process" in lines[0], label
            assert "--wait SECONDS" in lines[0], label
    winners = [json.loads(o.stdout) for o in outcomes if o.returncode == 0]
    assert winners, f"{label}: no process succeeded"
    applied = sorted((p["applied"] for p in winners), key=len)
    assert applied[-1] == MIGRATION_IDS, label  # one run created everything ...
    assert all(a == [] for a in applied[:-1]), label  # ... any other found it done
    _assert_single_head(db, fresh_head_fingerprint, label)


def test_two_concurrent_migrates_with_wait_both_succeed(
    tmp_path: Path, fresh_head_fingerprint: str
) -> None:
    db = tmp_path / "new" / "wait.duckdb"
    outcomes = _run_together(db, "--wait", "30")
    label = f"{outcomes}"
    assert [o.returncode for o in outcomes] == [0, 0], label
    payloads = sorted((json.loads(o.stdout) for o in outcomes), key=lambda p: len(p["applied"]))
    assert payloads == [
        {"from": HEAD, "to": HEAD, "applied": []},
        {"from": None, "to": HEAD, "applied": MIGRATION_IDS},
    ], label
    _assert_single_head(db, fresh_head_fingerprint, label)


# ---------------------------------------------------------------------------------------------
# 3. Another process holds the file.

_HOLDER = """
import duckdb, sys, time
con = duckdb.connect(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()  # hold the file until told to let go
time.sleep(float(sys.argv[2]))
con.close()
print("released", flush=True)
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    db = tmp_path / "held.duckdb"
    with duckdb.connect(str(db)) as con:
        migrate(DuckDBExecutor(con), target="0001")
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(db), "1.0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield db, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_a_held_file_fails_fast_and_waits_when_asked(
    holder: tuple[Path, subprocess.Popen[str]],
) -> None:
    db, proc = holder
    started = time.monotonic()
    refused = subprocess.run(
        _migrate_cmd(db, "--wait", "0"), capture_output=True, text=True, check=False, timeout=60
    )
    fail_fast = time.monotonic() - started
    assert refused.returncode != 0
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert f"is locked by process {proc.pid}" in refused.stderr, refused.stderr
    assert "retry, or pass --wait SECONDS" in refused.stderr, refused.stderr
    assert proc.poll() is None, "the holder must still hold the file"

    waiting = subprocess.Popen(
        _migrate_cmd(db, "--wait", "10", "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Long enough for the waiting run to have met the lock (as the refused run did).
        time.sleep(max(1.0, 1.5 * fail_fast))
        assert waiting.poll() is None, "migrate --wait 10 gave up while the file was held"
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()  # the holder lets go about 1 s from now
        assert proc.stdout.readline().strip() == "released"
        out, err = waiting.communicate(timeout=30)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    assert waiting.returncode == 0, err
    assert json.loads(out) == {"from": "0001", "to": HEAD, "applied": MIGRATION_IDS[1:]}
    assert proc.wait(timeout=10) == 0
    assert _snapshot(db).current == HEAD
