"""RunStore: a record of each pipeline stage run, what it ran on, and how it ended.

``start`` writes the run (validated like every new row) with the hash of its configuration,
the code version and a checksum of its inputs, plus the host and process running it. A
process killed mid-run cannot say so; the next look at the runs (``mark_stale``, called by
``start`` and by the CLI) fails every `running` run whose process is gone: on this host, its
pid no longer runs the process that started it; elsewhere, its heartbeat is older than
``stale_after``.
"""

from __future__ import annotations

import json
import os
import socket
import traceback
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import ibis
import psutil

from egregora.clock import Clock, utc_now
from egregora.digest import canonical_json, config_hash, content_hash
from egregora.errors import ConfigurationError, EgregoraError, NotFoundError
from egregora.runs import statements as sql
from egregora.runs.model import COLUMNS, STATUSES, Run
from egregora.runs.version import code_version
from egregora.storage.store import Storage

DEFAULT_STALE_AFTER = timedelta(hours=1)
# A process that started after the run did is not the run's process (its pid was reused).
_START_SLACK = timedelta(seconds=2)


@dataclass
class RunCounts:
    """Rows a run read and wrote, filled in by the code inside ``RunStore.track``."""

    run_id: str
    rows_in: int | None = None
    rows_out: int | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


class RunStore:
    """Run records in ``store``'s `runs` table."""

    def __init__(
        self,
        store: Storage,
        *,
        stale_after: timedelta = DEFAULT_STALE_AFTER,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.stale_after = stale_after
        self.clock = clock
        self.host = socket.gethostname()

    # -- the life of a run ------------------------------------------------------------------------
    def start(
        self,
        stage: str,
        config: Mapping[str, Any] | None = None,
        inputs: Any = None,
        parent: str | None = None,
        *,
        attrs: Mapping[str, Any] | None = None,
    ) -> str:
        """Record that ``stage`` starts now; return its run id.

        ``config`` is hashed as canonical JSON (and kept in attrs["config"]); ``inputs``
        (paths, bytes, values) are checksummed by content. ``parent`` is the run that started
        this one and must exist.
        """
        if not stage:
            raise ConfigurationError("a run needs the name of the stage it runs")
        self.mark_stale()
        extra = dict(attrs or {})
        if config is not None:
            extra["config"] = json.loads(canonical_json(dict(config)))
        now = self.clock()
        run_id = str(uuid.uuid4())
        row = {
            "run_id": run_id,
            "parent_run_id": parent,
            "stage": stage,
            "status": "running",
            "config_hash": None if config is None else config_hash(config),
            "code_version": code_version(),
            "input_checksum": None if inputs is None else content_hash(inputs),
            "started_at": now,
            "attrs": canonical_json(extra) if extra else None,
            "host": self.host,
            "pid": os.getpid(),
            "heartbeat_at": now,
        }
        self.store.write("runs", [row])
        return run_id

    def heartbeat(self, run_id: str) -> None:
        """Say the run is still at work (long runs on another host call this now and then)."""
        if not self.store.update(sql.HEARTBEAT, [self.clock(), run_id]):
            raise self._ended(run_id, "given a heartbeat")

    def finish(
        self,
        run_id: str,
        rows_in: int | None = None,
        rows_out: int | None = None,
        *,
        attrs: Mapping[str, Any] | None = None,
    ) -> Run:
        """Mark the run succeeded with the rows it read and wrote; ``attrs`` are added to the
        run's attributes (a key given again replaces the one recorded at start)."""
        now = self.clock()
        # Attributes are read, merged and written back: one transaction around the two.
        with self.store.transaction() if attrs else nullcontext():
            merged = None
            if attrs:
                merged = canonical_json({**self.require(run_id).attrs, **dict(attrs)})
            params = [now, rows_in, rows_out, merged, now]
            return self._end(run_id, sql.FINISH, params, "finished")

    def fail(self, run_id: str, error: str | BaseException) -> Run:
        """Mark the run failed; ``error`` (text or the exception) says why."""
        now = self.clock()
        return self._end(run_id, sql.FAIL, [now, _describe(error), now], "failed")

    def cancel(self, run_id: str, reason: str = "cancelled") -> Run:
        """Mark the run cancelled (stopped on purpose, not failed)."""
        now = self.clock()
        return self._end(run_id, sql.CANCEL, [now, reason, now], "cancelled")

    @contextmanager
    def track(
        self,
        stage: str,
        config: Mapping[str, Any] | None = None,
        inputs: Any = None,
        parent: str | None = None,
    ) -> Iterator[RunCounts]:
        """Run the block as a recorded run: finished when it returns, failed (and the error
        raised on) when it raises. Set ``rows_in``/``rows_out`` on the yielded counts."""
        counts = RunCounts(self.start(stage, config, inputs, parent))
        try:
            yield counts
        except BaseException as exc:
            self.fail(counts.run_id, exc)
            raise
        self.finish(counts.run_id, counts.rows_in, counts.rows_out, attrs=counts.attrs)

    def _end(self, run_id: str, statement: str, params: list[Any], what: str) -> Run:
        # One UPDATE of a running run, atomic by itself; an ended run changes no more, so
        # reading it back needs no transaction around the two.
        if self.store.update(statement, [*params, run_id]):
            return self.require(run_id)
        raise self._ended(run_id, what)

    def _ended(self, run_id: str, what: str) -> EgregoraError:
        run = self.require(run_id)
        return EgregoraError(
            f"run {run_id} cannot be {what}: it is {run.status} already"
            + (f" ({run.error})" if run.error else "")
        )

    # -- stale runs -------------------------------------------------------------------------------
    def mark_stale(self) -> list[str]:
        """Fail every `running` run whose process is gone; return their ids."""
        if self.store.read_only:
            return []
        fields = ("run_id", "host", "pid", "started_at", "heartbeat_at")
        running = [dict(zip(fields, row, strict=True)) for row in self.store.query(sql.RUNNING)]
        now = self.clock()
        gone = []
        for run in running:
            why = self._why_stale(run, now)
            if why is not None and self.store.update(sql.FAIL, [now, why, now, run["run_id"]]):
                gone.append(run["run_id"])
        return gone

    def _why_stale(self, run: dict[str, Any], now: datetime) -> str | None:
        if run["host"] == self.host and run["pid"] is not None:
            pid = int(run["pid"])
            if pid == os.getpid() or _runs_since(pid, run["started_at"]):
                return None
            return f"stale: process {pid} on {self.host} ended without finishing the run"
        seen = run["heartbeat_at"] or run["started_at"]
        if now - seen <= self.stale_after:
            return None
        where = f"on {run['host']} " if run["host"] else ""
        return (
            f"stale: no heartbeat {where}since {seen.isoformat()} "
            f"(more than {self.stale_after} ago)"
        )

    # -- reading ----------------------------------------------------------------------------------
    def get(self, run_id: str) -> Run | None:
        rows = self.store.query(sql.GET, [run_id])
        return Run.from_row(rows[0]) if rows else None

    def require(self, run_id: str) -> Run:
        run = self.get(run_id)
        if run is None:
            raise NotFoundError(f"no run {run_id!r} in {self.store.url}; see `egregora runs list`")
        return run

    def last_config(self, stage: str, thread: str) -> dict[str, Any] | None:
        """The config of the latest succeeded run of ``stage`` for ``thread`` (its config's
        ``thread``), or None: what a thread's earlier ingest or plan was made with."""
        for run in self.list(status="succeeded", stage=stage, limit=None):
            config = run.attrs.get("config") or {}
            if config.get("thread") == thread:
                return dict(config)
        return None

    def list(
        self,
        status: str | None = None,
        stage: str | None = None,
        parent: str | None = None,
        limit: int | None = 50,
    ) -> list[Run]:
        """Runs, newest first, filtered by status, stage and parent run."""
        if status is not None and status not in STATUSES:
            raise ConfigurationError(
                f"unknown run status {status!r}; statuses are {', '.join(STATUSES)}"
            )
        runs = self.store.table("runs")
        if status is not None:
            runs = runs.filter(runs.status == status)
        if stage is not None:
            runs = runs.filter(runs.stage == stage)
        if parent is not None:
            runs = runs.filter(runs.parent_run_id == parent)
        runs = runs.order_by(ibis.desc("started_at"), ibis.desc("run_id"))
        if limit is not None:
            runs = runs.limit(limit)
        rows = self.store.to_pyarrow(runs.select(*COLUMNS)).to_pylist()
        return [Run.from_row(tuple(r.values())) for r in rows]


def _runs_since(pid: int, started_at: datetime) -> bool:
    """Whether ``pid`` is a live process that already ran when the run started."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # ended, not yet reaped by its parent
            return False
        created = datetime.fromtimestamp(process.create_time(), UTC)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # it exists; whose it is cannot be told, so it is not judged stale
    return created <= started_at + _START_SLACK


def _describe(error: str | BaseException) -> str:
    if isinstance(error, BaseException):
        last = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
        where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
        message = str(error)
        text = f"{type(error).__name__}{': ' + message if message else ''}{where}"
    else:
        text = error
    if not text.strip():
        raise ConfigurationError("a failed run needs the error that made it fail")
    return text
