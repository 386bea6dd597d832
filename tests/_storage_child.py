"""A second process for tests/test_storage_processes.py; run as ``python _storage_child.py ...``.

``hold DB rw|ro``
    Open DB through Storage (for writing, or read-only), print ``ready <pid>``, keep it open
    until a line (or end of file) arrives on stdin, then close it and print ``closed``.

``crash DB TRIAL BATCHES ROWS BIG PAUSE_AT``
    Write BATCHES committed batches of ROWS ``messages`` rows (thread ``<TRIAL>-b<n>``),
    printing ``committed <n>`` after each; then build BIG rows (thread ``<TRIAL>-big``), print
    ``started big batch`` and write them in one batch, printing ``finished big batch`` if the
    write returns. Inside that write it says how far it got: ``staged`` (the batch is in a
    temporary table), ``inserting`` (in the transaction, about to insert into ``messages``) and
    ``inserted`` (inserted, not committed yet). On the line named by PAUSE_AT (or ``none``) it
    stops and waits to be killed; otherwise it goes on, and the parent kills it on a line.

``copy-threads DB THREADS ROWS ATTEMPTS``
    Write ROWS messages for each of THREADS source threads; then, ATTEMPTS times, let THREADS
    threads (started together) each copy its source rows with an Ibis expression over the
    store's own ``messages`` table. Print ``attempt <n> ok`` or ``attempt <n> failed: ...``
    per attempt, then ``done``; exit 1 if an attempt failed.

Only the installed egregora package is imported (not the tests package).
"""

from __future__ import annotations

import os
import sys
import threading
from datetime import UTC, datetime
from typing import Any, NoReturn

import ibis
import pyarrow as pa
import pyarrow.compute as pc

import egregora.storage.staging as staging
import egregora.storage.writing as writing
from egregora.storage import Storage

# Microseconds since the epoch of 2026-01-01T00:00:00Z: message i of a batch is sent at T0 + i us.
T0_US = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000


def say(line: str) -> None:
    print(line, flush=True)


def messages(thread: str, rows: int) -> Any:
    """``rows`` valid text messages of ``thread`` as an Arrow table (built without Python loops)."""
    seq = pa.array(range(rows), pa.int64())
    text = pc.cast(seq, pa.string())
    return pa.table(
        {
            "event_id": pc.binary_join_element_wise(pa.scalar(f"{thread}-"), text, ""),
            "source": pa.array(["crash-test"] * rows),
            "thread_id": pa.array([thread] * rows),
            "seq": seq,
            "ts": pc.cast(pc.add(seq, T0_US), pa.timestamp("us", tz="UTC")),
            "kind": pa.array(["text"] * rows),
            "author_raw": pa.array(["Ana"] * rows),
            "author_uuid": pa.array(["u1"] * rows),
            "text": pc.binary_join_element_wise(pa.scalar("message number "), text, ""),
            "media_omitted": pa.array([False] * rows),
        }
    )


def hold(db: str, mode: str) -> None:
    store = Storage.open(db, read_only=mode == "ro")
    say(f"ready {os.getpid()}")
    sys.stdin.readline()
    store.close()
    say("closed")


def wait_to_be_killed() -> NoReturn:
    """Block until the parent kills this process (a parent that goes away ends it too)."""
    sys.stdin.readline()
    raise SystemExit("the parent went away without killing this process")


def report_progress(pause_at: str) -> None:
    """Make Storage.write say how far it got, in this process only; stop at ``pause_at``."""
    stage, store_rows = staging.stage, writing._store

    def mark(line: str) -> None:
        say(line)
        if line == pause_at:
            wait_to_be_killed()

    def staged(*args: Any, **kwargs: Any) -> Any:
        result = stage(*args, **kwargs)
        mark("staged")
        return result

    def stored(*args: Any, **kwargs: Any) -> int:
        mark("inserting")
        written: int = store_rows(*args, **kwargs)
        mark("inserted")
        return written

    staging.stage = staged
    writing._store = stored


def crash(db: str, trial: str, batches: int, rows: int, big: int, pause_at: str) -> None:
    with Storage.open(db) as store:
        store.ensure_schema()
        for n in range(batches):
            written = store.write("messages", messages(f"{trial}-b{n}", rows))
            say(f"committed {n} {written}")
        batch = messages(f"{trial}-big", big)
        report_progress(pause_at)
        say("started big batch")
        written = store.write("messages", batch)
        say(f"finished big batch {written}")


def copy_attempt(store: Storage, attempt: int, threads: int, rows: int) -> list[str]:
    """One attempt: ``threads`` threads, started together, each copy their source rows."""
    errors: list[str] = []
    barrier = threading.Barrier(threads)

    def copy(k: int) -> None:
        try:
            barrier.wait(30)
            t = store.table("messages")
            mine = t.filter(t.thread_id == f"source-{k}")
            copied = mine.mutate(
                event_id=mine.event_id + f"-copy-{attempt}",
                thread_id=ibis.literal(f"copy-{attempt}-{k}"),
            )
            written = store.write("messages", copied)
            if written != rows:
                errors.append(f"thread {k}: copying {rows} rows wrote {written}")
        except Exception as exc:
            errors.append(f"thread {k}: {type(exc).__name__}: {exc}")

    workers = [threading.Thread(target=copy, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total = int(store.execute(store.table("messages").count()))
    if total != (attempt + 2) * threads * rows:
        errors.append(f"{total} rows in messages after the attempt")
    return errors


def copy_threads(db: str, threads: int, rows: int, attempts: int) -> bool:
    ok = True
    with Storage.open(db) as store:
        store.ensure_schema()
        for k in range(threads):
            store.write("messages", messages(f"source-{k}", rows))
        for attempt in range(attempts):
            errors = copy_attempt(store, attempt, threads, rows)
            if errors:
                ok = False
                say(
                    f"attempt {attempt} failed: "
                    + " | ".join(" ".join(e.split())[:200] for e in errors)
                )
            else:
                say(f"attempt {attempt} ok")
    say("done")
    return ok


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "hold":
        hold(args[0], args[1])
    elif command == "crash":
        crash(args[0], args[1], int(args[2]), int(args[3]), int(args[4]), args[5])
    elif command == "copy-threads":
        if not copy_threads(args[0], int(args[1]), int(args[2]), int(args[3])):
            raise SystemExit(1)
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
