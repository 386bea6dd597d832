"""Cards and the site of one thread, from the database alone (``egregora site build``).

A run ends here, and so does ``site build`` on any machine: the thread's posts and journals
get their cards (drawn when the asset cache lacks them), and with a site folder the whole site
is written, media included (read through ``media.MediaFiles``, so from the database itself
where it keeps media bytes). What the site needs of the run that planned the thread (its
label, site name and zone) is read back from that run's record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from egregora.assets import AssetCache
from egregora.errors import ConfigurationError, NotFoundError
from egregora.media import MediaFiles
from egregora.runner.cards import card, ensure_cards
from egregora.runner.markup import one_line
from egregora.runner.progress import Reporter, Silent
from egregora.runner.site import PREVIEW_URL, card_date, write_site
from egregora.runner.source import ThreadMessages
from egregora.runs import RunStore
from egregora.storage.store import Storage

MediaReader = Callable[[Mapping[str, Any]], Iterator[bytes]]


@dataclass(frozen=True)
class Published:
    cards_rendered: int
    site: Path | None
    files: int  # files the site has
    written: int  # files written now (new or changed)

    def summary(self) -> dict[str, Any]:
        return {
            "cards_rendered": self.cards_rendered,
            "site": None if self.site is None else str(self.site),
            "files": self.files,
            "written": self.written,
        }


def media_reader(store: Storage, media_dir: Path | None = None) -> MediaReader:
    """A media document's bytes, a chunk at a time, wherever this database keeps them."""
    return MediaFiles.of(store, media_dir).chunks


def publish(
    store: Storage,
    source: ThreadMessages,
    site_name: str,
    site: Path | None,
    media: MediaReader,
    runs: RunStore,
    parent: str | None,
    say: Reporter,
    site_url: str | None = None,
) -> Published:
    """Make sure every post and journal of the thread has its card; with ``site``, write the
    site (published at ``site_url``; default: where a preview serves it). Each stage is
    recorded as a run under ``parent``."""
    pages = _pages(store, source.label)
    say.stage("cards", len(pages))
    with AssetCache(store) as cache:
        with runs.track("cards", parent=parent) as counts:
            wanted = [(row["title"], card_date(row["date"])) for row in pages]
            rendered = ensure_cards(cache, wanted, site_name, say.advance)
            counts.rows_in, counts.rows_out = len(pages), rendered
        if site is None:
            return Published(rendered, None, 0, 0)

        def card_of(title: str, when: str) -> bytes:
            nonlocal rendered
            content, drawn = card(cache, title, when, site_name)
            rendered += drawn
            return content

        say.stage("site")
        with runs.track("site", {"site": str(site)}, parent=parent) as counts:
            result = write_site(
                store,
                source.label,
                site,
                site_name,
                card_of,
                media,
                source.shown,
                site_url or PREVIEW_URL,
            )
            counts.rows_in, counts.rows_out = result.files, result.written
    return Published(rendered, site, result.files, result.written)


@dataclass(frozen=True)
class Planned:
    """What a run recorded when it planned a thread: enough to publish it anywhere."""

    thread_id: str
    label: str
    site_name: str


def planned_threads(store: Storage) -> dict[str, Planned]:
    """Each thread some run planned, by id, as its latest successful plan recorded it."""
    found: dict[str, Planned] = {}
    for run in RunStore(store).list(stage="plan", status="succeeded", limit=None):
        config = run.attrs.get("config") or {}
        thread_id = config.get("thread")
        if not thread_id or thread_id in found or not config.get("label"):
            continue  # list() gives the newest first
        found[thread_id] = Planned(thread_id, config["label"], config.get("site_name") or "")
    return found


def build_site(
    store: Storage,
    site: Path,
    *,
    thread: str | None = None,
    site_name: str | None = None,
    site_url: str | None = None,
    media_dir: Path | None = None,
    reporter: Reporter | None = None,
) -> tuple[Planned, Published]:
    """Draw the missing cards and write the site of ``thread`` (the database's only thread
    when None) into ``site``, from the database alone; recorded as a run of stage
    ``site-build``."""
    threads = planned_threads(store)
    if not threads:
        raise NotFoundError(
            f"no thread of {store.url} has been planned yet; run `egregora run EXPORT` (or "
            "`egregora run EXPORT --workers 0`) first"
        )
    if thread is None:
        if len(threads) > 1:
            raise ConfigurationError(
                f"{store.url} holds {len(threads)} threads; choose one with --thread "
                f"({', '.join(sorted(threads))})"
            )
        thread = next(iter(threads))
    planned = threads.get(thread)
    if planned is None:
        raise NotFoundError(
            f"no run has planned a thread {thread!r} in {store.url}; threads: "
            f"{', '.join(sorted(threads))}"
        )
    name = one_line(site_name or "") or planned.site_name
    runs = RunStore(store)
    config = {"thread": thread, "site": str(site), "site_name": name}
    with runs.track("site-build", config) as counts:
        source = ThreadMessages.read(store, thread)
        published = publish(
            store,
            source,
            name,
            site,
            media_reader(store, media_dir),
            runs,
            counts.run_id,
            reporter or Silent(),
            site_url,
        )
        counts.rows_in, counts.rows_out = published.files, published.written
    return planned, published


def _pages(store: Storage, label: str) -> list[dict[str, Any]]:
    """The posts and journals that get a card: their id, title and date."""
    found: list[dict[str, Any]] = []
    for doc_type in ("journal", "post"):
        query = store.documents.of_thread(label, doc_type).select("id", "title", "date")
        found += store.to_pyarrow(query.order_by("id")).to_pylist()
    return found
