"""``egregora run``: from an export to documents, cards and a site, resumable and idempotent.

Stages, each recorded in `runs` under the run's own record: ingest (the ETL), plan (windows
and authors not yet written become tasks), execute (the tasks: journals, posts, profiles),
cards (a social card per post and journal, through the asset cache) and site (with
``site``). Everything the stages write is keyed by what it was made from, so running again
over the same export writes nothing, and a run killed at any point is finished by the next.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from egregora.assets import AssetCache
from egregora.etl import ingest_export
from egregora.etl.parse import DateOrder
from egregora.media import MediaFiles
from egregora.runner.cards import card, ensure_cards
from egregora.runner.execute import PROFILE, TASK_TYPES, WINDOW, Executor
from egregora.runner.markup import one_line
from egregora.runner.model import WindowSpec
from egregora.runner.plan import Plan, make_plan
from egregora.runner.progress import Reporter, Silent
from egregora.runner.site import card_date, write_site
from egregora.runner.source import ThreadMessages
from egregora.runner.windows import zone
from egregora.runner.writer import ExtractiveWriter, Writer
from egregora.runs import RunStore
from egregora.storage.store import Storage
from egregora.tasks import ACTIVE, Backoff, NewTask, TaskStore

DOC_TYPES = ("post", "journal", "profile", "media")


@dataclass(frozen=True)
class RunOptions:
    window: WindowSpec = field(default_factory=WindowSpec)
    tz: str | None = None  # the export's zone; default: this machine's
    thread: str | None = None
    date_order: DateOrder | None = None
    site: Path | None = None
    site_name: str | None = None  # default: the group's name (see ThreadMessages.site_name)
    media_dir: Path | None = None  # default: media/ in the database's files folder
    writer: Writer = field(default_factory=ExtractiveWriter)
    batch: int = 64  # tasks per write: a validated write costs about 0.4 s whatever its size
    lease: timedelta = timedelta(minutes=5)
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
        }


def run_pipeline(
    store: Storage,
    export: Path,
    options: RunOptions | None = None,
    reporter: Reporter | None = None,
) -> RunSummary:
    """Run every stage on ``export`` (a .zip or .txt WhatsApp export) into ``store``."""
    options = options or RunOptions()
    say = reporter or Silent()
    runs = RunStore(store)
    queue = TaskStore(store, backoff=options.backoff)
    run_id = runs.start("run", options.config(), inputs=[export])
    try:
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
        tz = zone(ingested.timezone)

        say.stage("plan")
        source = ThreadMessages.read(store, thread_id)
        site_name = one_line(options.site_name or "") or source.site_name(ingested.chat_name)
        with runs.track("plan", {"window": str(options.window)}, parent=run_id) as counts:
            plan = make_plan(store, thread_id, source.label, options.window, ingested.timezone)
            queued = _enqueue(runs, queue, plan, run_id)
            counts.rows_in, counts.rows_out = plan.messages, queued

        say.stage("execute", _claimable(queue))
        with runs.track("execute", parent=run_id) as counts:
            executor = Executor(
                store=store,
                queue=queue,
                source=source,
                writer=options.writer,
                tz=tz,
                media=_media(store, source.label),
                worker=f"{socket.gethostname()}:{os.getpid()}:{run_id[:8]}",
                batch=options.batch,
                lease=options.lease,
                advance=say.advance,
            )
            done = executor.run()
            counts.rows_in, counts.rows_out = done.tasks, done.documents

        pages = _pages(store, source.label)
        say.stage("cards", len(pages))
        rendered = 0
        written_files = 0
        with AssetCache(store) as cache:

            def card_of(title: str, when: str) -> bytes:
                nonlocal rendered
                content, drawn = card(cache, title, when, site_name)
                rendered += drawn
                return content

            with runs.track("cards", parent=run_id) as counts:
                wanted = [(row["title"], card_date(row["date"])) for row in pages]
                rendered = ensure_cards(cache, wanted, site_name, say.advance)
                counts.rows_in, counts.rows_out = len(pages), rendered

            if options.site is not None:
                say.stage("site")
                with runs.track("site", {"site": str(options.site)}, parent=run_id) as counts:
                    result = write_site(
                        store,
                        source.label,
                        options.site,
                        site_name,
                        card_of,
                        MediaFiles.of(store, options.media_dir).read,
                        source.shown,
                    )
                    counts.rows_in, counts.rows_out = result.files, result.written
                    written_files = result.written

        summary = RunSummary(
            run_id=run_id,
            thread_id=thread_id,
            messages=ingested.messages,
            new_messages=ingested.new,
            documents=_document_counts(store, source.label),
            new_documents=ingested.media_files_new + done.documents,
            cards_rendered=rendered,
            site=str(options.site) if options.site is not None else None,
            windows=len(plan.windows),
            windows_written=done.windows,
            profiles_written=done.profiles,
            site_files_written=written_files,
        )
    except BaseException as exc:
        runs.fail(run_id, exc)
        raise
    runs.finish(
        run_id,
        rows_in=summary.messages,
        rows_out=summary.new_documents,
        attrs={"summary": summary.summary(), "thread_id": thread_id},
    )
    return summary


def _enqueue(runs: RunStore, queue: TaskStore, plan: Plan, run_id: str) -> int:
    """Queue the plan's work. Tasks left by runs that died are superseded first: their
    windows are planned again from what is stored now."""
    abandoned = []
    live: dict[str, bool] = {}  # run id -> still running (one lookup per run, not per task)
    for status in ACTIVE:
        for task in queue.list(status=status, limit=None):
            if task.task_type not in TASK_TYPES:
                continue
            owner = task.run_id
            if owner is not None and owner not in live:
                run = runs.get(owner)
                live[owner] = run is not None and run.status == "running"
            if owner is None or not live[owner]:
                abandoned.append(task.task_id)
    if abandoned:
        queue.supersede(abandoned)
    tasks = [
        NewTask(
            WINDOW,
            w.payload(),
            dedupe_key=f"{WINDOW}:{w.thread_id}:{w.label}:{w.signature}",
            run_id=run_id,
        )
        for w in plan.windows_todo
    ] + [
        NewTask(
            PROFILE,
            a.payload(),
            dedupe_key=f"{PROFILE}:{a.thread_id}:{a.author_uuid}:{a.signature}",
            run_id=run_id,
        )
        for a in plan.authors_todo
    ]
    return len(queue.enqueue_many(tasks).task_ids) if tasks else 0


def _claimable(queue: TaskStore) -> int:
    return sum(1 for t in queue.list(status="pending", limit=None) if t.task_type in TASK_TYPES)


def _media(store: Storage, label: str) -> dict[str, dict[str, Any]]:
    """The thread's media documents by file name, whole rows (to link them to windows)."""
    rows = store.to_pyarrow(store.documents.of_thread(label, "media")).to_pylist()
    return {row["filename"]: row for row in rows}


def _pages(store: Storage, label: str) -> list[dict[str, Any]]:
    """The posts and journals that get a card: their id, title and date."""
    found: list[dict[str, Any]] = []
    for doc_type in ("journal", "post"):
        query = store.documents.of_thread(label, doc_type).select("id", "title", "date")
        found += store.to_pyarrow(query.order_by("id")).to_pylist()
    return found


def _document_counts(store: Storage, label: str) -> dict[str, int]:
    docs = store.documents.of_thread(label)
    rows = store.to_pyarrow(docs.group_by("doc_type").agg(n=docs.count())).to_pylist()
    found = {r["doc_type"]: int(r["n"]) for r in rows}
    return {t: found.get(t, 0) for t in DOC_TYPES}
