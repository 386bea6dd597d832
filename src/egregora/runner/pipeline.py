"""``egregora run``: from an export to documents, cards and a site, resumable and idempotent.

Stages, each recorded in `runs` under the run's own record: ingest (the ETL), plan (windows
and authors not yet written become tasks in the queue), execute (workers do the tasks:
journals, posts, profiles; see ``workers``), cards (a social card per post and journal,
through the asset cache) and site (with ``site``; see ``publish``). With no workers the run
stops after the plan: the tasks wait in the queue for ``egregora work`` on any machine.
Everything the stages write is keyed by what it was made from, so running again over the same
export writes nothing, and a run killed at any point is finished by the next.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from egregora.errors import ConfigurationError, EgregoraError
from egregora.etl import ingest_export
from egregora.etl.ingest import (
    IngestResult,
    check_ingest_input,
    refuse_changed_zone,
    thread_of,
    timezone_name,
)
from egregora.etl.parse import DateOrder
from egregora.runner.execute import LEASE, PROFILE, TASK_TYPES, WINDOW, Executed, run_of_worker
from egregora.runner.markup import one_line
from egregora.runner.model import WindowSpec
from egregora.runner.plan import Plan, make_plan
from egregora.runner.progress import Reporter, Silent
from egregora.runner.publish import Published, media_reader, publish
from egregora.runner.site import check_site_folder, site_address
from egregora.runner.source import ThreadMessages
from egregora.runner.workers import (
    children_done,
    describe_workers,
    execute,
    worker_processes,
)
from egregora.runner.writer import ExtractiveWriter, Writer
from egregora.runs import RunStore
from egregora.storage.store import Storage
from egregora.tasks import Backoff, NewTask, TaskStore

DOC_TYPES = ("post", "journal", "profile", "media")


@dataclass(frozen=True)
class RunOptions:
    window: WindowSpec = field(default_factory=WindowSpec)
    tz: str | None = None  # the export's zone; default: this machine's
    thread: str | None = None
    date_order: DateOrder | None = None
    site: Path | None = None
    site_name: str | None = None  # default: the group's name (see ThreadMessages.site_name)
    site_url: str | None = None  # where the site is published; default: a preview's address
    media_dir: Path | None = None  # default: media/ in the database's files folder
    writer: Writer = field(default_factory=ExtractiveWriter)
    batch: int = 64  # tasks per write: a validated write costs about 0.4 s whatever its size
    lease: timedelta = LEASE  # short, and renewed while a task runs
    workers: int = 1  # 0: plan only; see workers.describe_workers for what N means
    backoff: Backoff = field(default_factory=Backoff)

    def config(self) -> dict[str, Any]:
        """What shapes the run's output, recorded (and hashed) with the run."""
        return {
            "window": str(self.window),
            "tz": self.tz,
            "thread": self.thread,
            "date_order": self.date_order,
            "site": str(self.site) if self.site else None,
            "site_name": self.site_name,
            "writer": f"{self.writer.name}@{self.writer.version}",
        }


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    thread_id: str
    messages: int  # in the export
    new_messages: int
    documents: Mapping[str, int]  # the thread's documents by type, after the run
    new_documents: int  # written by this run (new or changed)
    cards_rendered: int
    site: str | None
    windows: int
    windows_written: int
    profiles_written: int
    site_files_written: int
    tasks_waiting: int = 0  # window and profile tasks left in the queue after the run
    workers: str = ""  # what did the work, in words

    def summary(self) -> dict[str, Any]:
        """The JSON object `egregora run --json` prints."""
        return {
            "run_id": self.run_id,
            "messages": self.messages,
            "new_messages": self.new_messages,
            "documents": dict(self.documents),
            "new_documents": self.new_documents,
            "cards_rendered": self.cards_rendered,
            "site": self.site,
            "tasks_waiting": self.tasks_waiting,
            "workers": self.workers,
        }


def check_input(export: Path, options: RunOptions) -> None:
    """Refuse what cannot run before a database is opened or anything is written: an export
    path that is no file, an unknown time zone, a site folder that is not egregora's, an
    address that is not a site's."""
    check_ingest_input(export, options.tz)
    if options.site is not None:
        check_site_folder(options.site)
    if options.site_url is not None:
        site_address(options.site_url)


def run_pipeline(
    store: Storage,
    export: Path,
    options: RunOptions | None = None,
    reporter: Reporter | None = None,
) -> RunSummary:
    """Run every stage on ``export`` (a .zip or .txt WhatsApp export) into ``store``."""
    options = options or RunOptions()
    check_input(export, options)
    say = reporter or Silent()
    runs = RunStore(store)
    queue = TaskStore(store, backoff=options.backoff)
    thread_id = thread_of(export, options.thread)  # its settings are checked before any write
    refuse_changed_window(runs, options.window, thread_id)
    refuse_changed_zone(runs, thread_id, timezone_name(options.tz))
    run_id = runs.start("run", options.config(), inputs=[export])
    try:
        done = Executed()
        published = Published(0, None, 0, 0)
        with worker_processes(store, options, run_id) as children:
            ingested, source, site_name, plan = _ingest_and_plan(
                store, export, options, runs, queue, run_id, say
            )
            if options.workers > 0:
                say.stage("execute", len(queue.active(TASK_TYPES)))
                with runs.track("execute", {"workers": options.workers}, parent=run_id) as counts:
                    done = execute(store, queue, runs, run_id, options, say, children)
                    counts.rows_in, counts.rows_out = done.tasks, done.documents
                media = media_reader(store, options.media_dir)
                published = publish(
                    store,
                    source,
                    site_name,
                    options.site,
                    media,
                    runs,
                    run_id,
                    say,
                    options.site_url,
                )
            children.wait()
        done.add(children_done(runs, run_id).counts())
        summary = RunSummary(
            run_id=run_id,
            thread_id=ingested.thread_id,
            messages=ingested.messages,
            new_messages=ingested.new,
            documents=_document_counts(store, source.label),
            new_documents=ingested.media_files_new + done.documents,
            cards_rendered=published.cards_rendered,
            site=str(published.site) if published.site is not None else None,
            windows=len(plan.windows),
            windows_written=done.windows,
            profiles_written=done.profiles,
            site_files_written=published.written,
            tasks_waiting=len(queue.active(TASK_TYPES)),
            workers=describe_workers(store, options.workers),
        )
        store.checkpoint()  # the run succeeds only once its writes are in the database file
    except BaseException as exc:
        _record_failure(runs, run_id, exc)
        raise
    runs.finish(
        run_id,
        rows_in=summary.messages,
        rows_out=summary.new_documents,
        attrs={"summary": summary.summary(), "thread_id": ingested.thread_id},
    )
    return summary


def _record_failure(runs: RunStore, run_id: str, exc: BaseException) -> None:
    """Mark the run failed with ``exc``. A database that cannot record it (its disk is full,
    so DuckDB invalidated it) leaves the run `running` until the next look at the runs marks
    it stale; ``exc`` is what went wrong, so it is the error raised, with this one noted."""
    try:
        runs.fail(run_id, exc)
    except EgregoraError as unrecorded:
        exc.add_note(f"the run {run_id} could not be recorded as failed: {unrecorded}")


def _ingest_and_plan(
    store: Storage,
    export: Path,
    options: RunOptions,
    runs: RunStore,
    queue: TaskStore,
    run_id: str,
    say: Reporter,
) -> tuple[IngestResult, ThreadMessages, str, Plan]:
    """The ingest and plan stages: the export's new messages stored, the work they call for
    queued. The plan's record keeps what publishing the thread needs anywhere (its label,
    site name and zone; see ``publish.planned_threads``)."""
    say.stage("ingest")
    ingested = ingest_export(
        store,
        export,
        tz=options.tz,
        thread=options.thread,
        date_order=options.date_order,
        media_dir=options.media_dir,
        runs=runs,
        parent_run=run_id,
        progress=say.step,
    )
    thread_id = ingested.thread_id
    say.stage("plan")
    source = ThreadMessages.read(store, thread_id)
    site_name = one_line(options.site_name or "") or source.site_name(ingested.chat_name)
    recorded = {
        "window": str(options.window),
        "thread": thread_id,
        "label": source.label,
        "tz": ingested.timezone,
        "site_name": site_name,
    }
    with runs.track("plan", recorded, parent=run_id) as counts:
        plan = make_plan(store, thread_id, source.label, options.window, ingested.timezone)
        queued = _enqueue(runs, queue, plan, run_id, ingested.timezone)
        counts.rows_in, counts.rows_out = plan.messages, queued
    return ingested, source, site_name, plan


def refuse_changed_window(runs: RunStore, window: WindowSpec, thread_id: str) -> None:
    """Refuse a run whose window differs from the one the thread was planned with.

    A thread keeps its windows for its life: posts made by days and by weeks side by side
    would both be wrong; so a run asking for others is refused, before anything is written,
    naming the stored window. (Its zone is the ingest's to keep: ``etl.ingest``.)"""
    before = runs.last_config("plan", thread_id)
    if before is None or before.get("window") in (None, str(window)):
        return
    raise ConfigurationError(
        f"thread {thread_id} was planned with --window {before['window']}; this run asks for "
        f"--window {window}. Run it with --window {before['window']} (a thread keeps the "
        "windows it was first planned with; for others, ingest it into a new database with "
        "--db); nothing was written"
    )


def _enqueue(runs: RunStore, queue: TaskStore, plan: Plan, run_id: str, zone_name: str) -> int:
    """Queue the plan's work, each task naming its thread and zone so that any worker can do
    it from the database alone.

    Tasks held by workers known to be gone (their run ended) go back to the queue first. A
    waiting task of this thread that the plan no longer wants (its window changed, or its
    documents are made) is superseded; one it still wants stays, and is not queued twice.
    A task being worked on under a live lease is left to its worker.
    """
    runs.mark_stale()
    active = queue.active(TASK_TYPES)
    gone = []
    for owner in {t.lease_owner for t in active if t.lease_owner}:
        worker_run = run_of_worker(owner)
        run = runs.get(worker_run) if worker_run else None
        if run is not None and run.status != "running":
            gone.append(owner)
    if queue.release_held_by(gone):
        active = queue.active(TASK_TYPES)
    tasks = [
        NewTask(
            WINDOW,
            {**w.payload(), "tz": zone_name},
            dedupe_key=f"{WINDOW}:{w.thread_id}:{w.label}:{w.signature}",
            run_id=run_id,
        )
        for w in plan.windows_todo
    ] + [
        NewTask(
            PROFILE,
            {**a.payload(), "tz": zone_name},
            dedupe_key=f"{PROFILE}:{a.thread_id}:{a.author_uuid}:{a.signature}",
            run_id=run_id,
        )
        for a in plan.authors_todo
    ]
    wanted = {t.dedupe_key for t in tasks}
    unwanted = [
        t.task_id
        for t in active
        if t.payload.get("thread_id") == plan.thread_id
        and t.dedupe_key not in wanted
        and t.status == "pending"
    ]
    if unwanted:
        queue.supersede(unwanted)
    return len(queue.enqueue_many(tasks).task_ids) if tasks else 0


def _document_counts(store: Storage, label: str) -> dict[str, int]:
    docs = store.documents.of_thread(label)
    rows = store.to_pyarrow(docs.group_by("doc_type").agg(n=docs.count())).to_pylist()
    found = {r["doc_type"]: int(r["n"]) for r in rows}
    return {t: found.get(t, 0) for t in DOC_TYPES}
