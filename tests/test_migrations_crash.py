"""Migrations survive SIGKILL at any moment, concurrent runners, and a process holding the file.

Every test runs the real command line as subprocesses on DuckDB files in a temporary folder:
``python -m egregora db migrate``, or tests/_migrate_child.py, which runs the same command and
says each step a migration takes, so a test kills it where it means to.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sqlglot import exp

from egregora.backends import DatabaseURL
from egregora.migrations import catalog_at, shipped_migrations
from egregora.migrations.engine import migrate, status
from egregora.migrations.executor import DuckDBExecutor
from egregora.migrations.ledger import LEDGER
from egregora.pseudonyms import ENV, Pseudonyms
from egregora.schema.catalog import CATALOG
from egregora.schema.model import Catalog
from egregora.storage.setup import migrate_database
from tests.samples import valid_rows, valid_rows_at
from tests.support import SHARED_KEY, insert_rows

MIGRATION_IDS = [m.id for m in shipped_migrations()]
HEAD = MIGRATION_IDS[-1]
DATA_TABLES = [name for name in CATALOG.names if name != LEDGER]

# Rows of `documents` in the crash template: enough that refilling documents, and committing
# the migrations that do, take a while (tens of milliseconds) to be killed in the middle of.
DOCUMENTS = 25_000
ANNOTATIONS = DOCUMENTS // 4
MESSAGES = 2_000
MIGRATE_CHILD = Path(__file__).with_name("_migrate_child.py")
# A bound on waiting for a child to say its next line, or to end: only a hung child reaches it.
CHILD_TIMEOUT = 120.0
KILL_ATTEMPTS = 8  # kills that must land while a step runs are tried again up to this often

Digest = dict[str, tuple[int, int]]
# Columns whose value is the moment a migration ran, not data: left out of digests.
MOMENTS = {"pseudonym_keys": {"created_at"}}
# Migration 0008 rewrites every author's pseudonym under the database's key, deliberately.
REKEYED = {"messages": {"author_uuid"}}


@pytest.fixture(scope="module", autouse=True)
def shared_key() -> Iterator[None]:
    """Every migration here (children too) keys pseudonyms with one key: runs compare."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV, SHARED_KEY)
        yield


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
    for table in catalog_at("0001"):
        if table.name != LEDGER:
            insert_rows(con, table.name, valid_rows_at(table))
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


def _digest(
    con: duckdb.DuckDBPyConnection,
    catalog: Catalog = CATALOG,
    without: dict[str, set[str]] | None = None,
) -> Digest:
    """Per data table: row count and an order-independent hash of each row's text (the
    columns ``catalog`` declares, so a template can be compared with its migrated copy, less
    the ``MOMENTS`` and ``without`` columns)."""
    out: Digest = {}
    for name in DATA_TABLES:
        if name not in catalog.names:
            continue
        left_out = MOMENTS.get(name, set()) | (without or {}).get(name, set())
        columns = [c for c in catalog[name].column_names if c not in left_out]
        row_text = exp.func("ROW", *[exp.column(c, quoted=True) for c in columns])
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
    # No rows but the database's pseudonym key.
    counts = {name: count for name, (count, _) in after.digest.items()}
    assert counts == {name: int(name == "pseudonym_keys") for name in DATA_TABLES}, label


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


class Migrating:
    """tests/_migrate_child.py running ``egregora db migrate``; stdout read line by line."""

    def __init__(self, db: Path, pause_at: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(MIGRATE_CHILD), pause_at, "db", "migrate", "--db", str(db), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect(self, wanted: str) -> str:
        """Read up to the line ``wanted`` names (as ``_is_line`` reads names); return it."""
        while True:
            try:
                line = self._queue.get(timeout=CHILD_TIMEOUT)
            except queue.Empty:
                pytest.fail(f"migrate said nothing for {CHILD_TIMEOUT}s after {self.lines[-3:]}")
            if line is None:
                self.proc.wait(timeout=CHILD_TIMEOUT)
                pytest.fail(
                    f"migrate exited ({self.proc.returncode}) before {wanted!r}; said "
                    f"{self.lines[-3:]}; stderr: {self.stderr()}"
                )
            self.lines.append(line)
            if _is_line(line, wanted):
                return line

    def finish(self) -> int:
        """Wait for the child to end and read the rest of what it said."""
        returncode = self.proc.wait(timeout=CHILD_TIMEOUT)
        while (line := self._queue.get(timeout=CHILD_TIMEOUT)) is not None:
            self.lines.append(line)
        return returncode

    def kill(self) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        return self.finish()

    def stderr(self) -> str:
        return self.proc.stderr.read() if self.proc.stderr is not None else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def _is_line(line: str, wanted: str) -> bool:
    """Whether ``wanted`` names the child's ``line``, as PAUSE_AT does: ``step 9`` names
    ``step 9 ...`` (not ``step 91 ...``) and ``commit 0002`` names ``step <n> commit 0002``."""
    step = line.split()
    return line == wanted or line.startswith(wanted + " ") or " ".join(step[2:4]) == wanted


@contextmanager
def _migrating(db: Path, pause_at: str, *args: str) -> Iterator[Migrating]:
    child = Migrating(db, pause_at, *args)
    try:
        yield child
    finally:
        child.stop()


@dataclass(frozen=True)
class KillPoint:
    """Where a trial kills migrate: on the child's line ``kill_on`` (``step <n>`` or
    ``migrated``). A ``paused`` child stops on that line, so the kill lands there for sure;
    otherwise the step runs and the kill lands during it, which the trial checks (the child
    said nothing after that line) and tries again if it came too late."""

    name: str
    kill_on: str
    paused: bool


def _kill_points(said: list[str]) -> list[KillPoint]:
    """For each migration of an uninterrupted run's steps: before it begins, before it refills
    the first table it rebuilt, and before its commit (its ledger row written); during its
    refill of documents and its commit if it rebuilds documents; and once all are committed."""
    steps = [line.split(maxsplit=4) for line in said if line.startswith("step ")]
    points = []
    for migration in MIGRATION_IDS[1:]:
        mine = [step for step in steps if step[3] == migration]
        begin, commit = mine[0], mine[-1]
        assert (begin[2], commit[2]) == ("begin", "commit"), mine
        refills = [
            step
            for step in mine
            if step[2:3] == ["execute"]
            and step[4].startswith("INSERT INTO")
            and LEDGER not in step[4]
        ]
        refill = refills[0] if refills else mine[len(mine) // 2]
        what = refill[4] if len(refill) > 4 else refill[2]
        points += [
            KillPoint(f"{migration} before it begins", f"step {begin[1]}", paused=True),
            KillPoint(f"{migration} before {what}", f"step {refill[1]}", paused=True),
            KillPoint(f"{migration} before its commit", f"step {commit[1]}", paused=True),
        ]
        for step in mine:
            if step[4:] == ['INSERT INTO "documents"']:
                points += [
                    KillPoint(f"{migration} during {step[4]}", f"step {step[1]}", paused=False),
                    KillPoint(f"{migration} during its commit", f"step {commit[1]}", paused=False),
                ]
    points.append(KillPoint("all committed, the file still open", "migrated", paused=True))
    return points


def _found_allowed(said: list[str], point: KillPoint) -> set[str]:
    """Where recovery may find the database, from what the killed child said: at the last
    migration whose commit returned, or at the one it was committing when killed."""
    allowed = {MIGRATION_IDS[0]}
    for index, line in enumerate(said):
        step = line.split()
        if step[:1] == ["step"] and step[2] == "commit":
            if index + 1 < len(said):
                allowed = {step[3]}  # the commit returned: the child went on
            elif not point.paused:
                allowed.add(step[3])  # killed during the commit, or just after it
    return allowed


@dataclass
class Trial:
    index: int
    point: KillPoint
    returncode: int
    landed: bool  # killed on its line: the child said nothing after it
    last_said: str
    wal_left: bool
    found: str | None  # where the recovery run found the database

    def describe(self) -> str:
        return (
            f"trial {self.index} ({self.point.name}, kill on {self.point.kill_on!r}, "
            f"{'paused' if self.point.paused else 'running'}): returncode {self.returncode}, "
            f"landed {self.landed}, last said {self.last_said!r}, WAL left {self.wal_left}, "
            f"recovery found {self.found}"
        )


def _run_to_completion(db: Path, label: str) -> dict[str, Any]:
    """Run migrate to the end; its JSON output."""
    done = subprocess.run(
        _migrate_cmd(db, "--json"), capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 0, f"{label}: migrate exited {done.returncode}: {done.stderr}"
    payload: dict[str, Any] = json.loads(done.stdout)
    return payload


def _kill_trial(template: Path, folder: Path, index: int, point: KillPoint) -> Trial:
    db = folder / f"trial-{index:02d}.duckdb"
    shutil.copyfile(template, db)
    with _migrating(db, point.kill_on if point.paused else "none", "--json") as child:
        child.expect(point.kill_on)
        returncode = child.kill()
        said = child.lines
        label = f"trial {index} ({point.name}): said {said[-3:]}"
        assert returncode in (0, -signal.SIGKILL), f"{label}: exited {returncode}"
        if returncode == 0:
            assert json.loads(said[-1])["to"] == HEAD, label
    landed = returncode == -signal.SIGKILL and _is_line(said[-1], point.kill_on)
    if point.paused:  # stopped on the line: nothing after it can have run
        assert landed, f"{label}: the kill did not land where the child stopped"
    wal_left = _wal(db).exists()
    # Recover in this process (the function behind the command, without a second start-up).
    result = migrate_database(DatabaseURL.parse(str(db)))
    trial = Trial(index, point, returncode, landed, said[-1], wal_left, result.from_id)
    assert result.to_id == HEAD, f"{trial.describe()}: recovery ended at {result}"
    # The killed run committed each migration whole or not at all, up to where it got.
    assert result.from_id in _found_allowed(said, point), f"{trial.describe()}: {result}"
    remaining = tuple(m for m in MIGRATION_IDS if m > (result.from_id or ""))
    assert result.applied == remaining, f"{trial.describe()}: {result}"
    return trial


def test_sigkill_at_any_moment_loses_nothing(template: Path, tmp_path: Path) -> None:
    with duckdb.connect(str(template), read_only=True) as con:
        template_digest = _digest(con, catalog_at("0001"), REKEYED)

    # Two uninterrupted runs, one saying its steps: the reference state, the steps to kill at,
    # and that a run is deterministic (and unchanged by saying its steps).
    db = tmp_path / "reference-0.duckdb"
    shutil.copyfile(template, db)
    payload = _run_to_completion(db, "uninterrupted run")
    assert payload == {"ok": True, "from": "0001", "to": HEAD, "applied": MIGRATION_IDS[1:]}
    reference = _snapshot(db)
    saying = tmp_path / "reference-1.duckdb"
    shutil.copyfile(template, saying)
    with _migrating(saying, "none", "--json") as child:
        assert child.finish() == 0, child.stderr()
        said = child.lines
    assert json.loads(said[-1]) == payload, said[-3:]
    assert _snapshot(saying) == reference, "two uninterrupted runs disagree"
    assert reference.current == HEAD
    assert reference.ledger == _expected_ledger()
    with duckdb.connect(str(db), read_only=True) as con:
        kept = _digest(con, catalog_at("0001"), REKEYED)
        authors = con.execute(
            "SELECT DISTINCT source, thread_id, author_raw, author_uuid FROM messages "
            "WHERE author_raw IS NOT NULL"
        ).fetchall()
    assert kept == template_digest, "the uninterrupted migration changed data rows"
    keyed = Pseudonyms(bytes.fromhex(SHARED_KEY))
    assert authors and all(keyed.author(s, t, name) == uuid for s, t, name, uuid in authors)
    assert reference.digest["documents"][0] == DOCUMENTS + len(valid_rows()["documents"])

    trials: list[Trial] = []
    for point in _kill_points(said):
        for _ in range(1 if point.paused else KILL_ATTEMPTS):
            trial = _kill_trial(template, tmp_path, len(trials), point)
            after = _snapshot(tmp_path / f"trial-{trial.index:02d}.duckdb")
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
            if trial.landed:
                break
        summary = "\n".join("  " + t.describe() for t in trials)
        assert trials[-1].landed, f"no kill of {KILL_ATTEMPTS} landed {point.name}:\n{summary}"

    found = {m: sum(t.found == m for t in trials) for m in MIGRATION_IDS}
    print(
        f"\n{len(trials)} kills, {sum(t.landed for t in trials)} where meant, over "
        f"{len(said)} lines of an uninterrupted run; recovery found the database at {found}, "
        f"{sum(t.wal_left for t in trials)} times with a WAL on disk"
    )
    for trial in trials:
        print("  " + trial.describe())


@pytest.mark.parametrize(
    "kill_on",
    ["linking", "begin 0001", "commit 0001"],
    ids=["made-not-linked", "in-place-empty", "first-migration-uncommitted"],
)
def test_sigkill_right_after_the_new_file_appears_leaves_it_usable(
    tmp_path: Path, fresh_head_fingerprint: str, kill_on: str
) -> None:
    """The earliest moments of a run on a new database: the file made under its private name,
    then in place before the first migration, then the first migration before its commit."""
    db = tmp_path / "new.duckdb"
    with _migrating(db, kill_on) as child:
        line = child.expect(kill_on)
        assert child.kill() == -signal.SIGKILL, child.stderr()
        assert child.lines[-1] == line, f"the kill did not land on {line!r}: {child.lines}"
    left = sorted(p.name for p in tmp_path.iterdir())
    label = f"killed on {line!r}, files left: {left}"
    assert (db.name in left) == (kill_on != "linking"), label
    again = subprocess.run(
        _migrate_cmd(db, "--json"), capture_output=True, text=True, check=False, timeout=120
    )
    assert again.returncode == 0, f"{label}; migrating again failed: {again.stderr.strip()}"
    assert json.loads(again.stdout)["to"] == HEAD, label
    _assert_single_head(db, fresh_head_fingerprint, label)
    assert sorted(p.name for p in tmp_path.iterdir()) == [db.name], "a draft was left behind"


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
            out, err = proc.communicate(timeout=CHILD_TIMEOUT)
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
    outcomes = _run_together(db, "--wait", "300")
    label = f"{outcomes}"
    assert [o.returncode for o in outcomes] == [0, 0], label
    payloads = sorted((json.loads(o.stdout) for o in outcomes), key=lambda p: len(p["applied"]))
    assert payloads == [
        {"ok": True, "from": HEAD, "to": HEAD, "applied": []},
        {"ok": True, "from": None, "to": HEAD, "applied": MIGRATION_IDS},
    ], label
    _assert_single_head(db, fresh_head_fingerprint, label)


# ---------------------------------------------------------------------------------------------
# 3. Another process holds the file.

_HOLDER = """
import duckdb, sys
con = duckdb.connect(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()  # hold the file until told to let go
con.close()
print("released", flush=True)
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    db = tmp_path / "held.duckdb"
    with duckdb.connect(str(db)) as con:
        migrate(DuckDBExecutor(con), target="0001")
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(db)],
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
    refused = subprocess.run(
        _migrate_cmd(db, "--wait", "0"), capture_output=True, text=True, check=False, timeout=120
    )
    assert refused.returncode != 0
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert f"is locked by process {proc.pid}" in refused.stderr, refused.stderr
    assert "retry, or pass --wait SECONDS" in refused.stderr, refused.stderr
    assert proc.poll() is None, "the holder must still hold the file"

    # With --wait the run meets the lock, waits while the file is held, and migrates once the
    # holder lets go. (The wait only bounds a run the holder never lets go of.)
    with _migrating(db, "none", "--wait", "600", "--json") as waiting:
        waiting.expect("waiting")
        assert proc.poll() is None, "the holder held the file when migrate met it"
        assert waiting.proc.poll() is None, "migrate --wait gave up while the file was held"
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "released"
        assert waiting.finish() == 0, waiting.stderr()
        said = waiting.lines
    assert json.loads(said[-1]) == {
        "ok": True,
        "from": "0001",
        "to": HEAD,
        "applied": MIGRATION_IDS[1:],
    }
    assert said.count("waiting") == 1 and said.index("waiting") < said.index("step 0 begin 0002")
    assert proc.wait(timeout=CHILD_TIMEOUT) == 0
    assert _snapshot(db).current == HEAD
