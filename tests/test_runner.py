"""The runner (``egregora.runner``, ``egregora run`` and ``egregora demo``).

Windows, writers and cards are tested on their own; the pipeline on the sample export that
``egregora demo`` ships (``demo``, made once per session on each engine) and on copies of it,
every expectation computed from the stored messages rather than written down.
"""

from __future__ import annotations

import html
import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from egregora.assets import AssetCache
from egregora.cli.app import app
from egregora.errors import ConfigurationError
from egregora.runner import (
    ExtractiveWriter,
    Message,
    PostDraft,
    RunOptions,
    WindowInput,
    WindowSpec,
    load_writer,
    run_pipeline,
)
from egregora.runner.cards import HEIGHT, WIDTH, card_key, ensure_cards, render_card
from egregora.runner.demo import TIMEZONE, sample_export
from egregora.runner.execute import TaskFailedError
from egregora.runner.model import Window, signature
from egregora.runner.people import People
from egregora.runner.site import MANIFEST, card_date, media_file
from egregora.runner.windows import plan_windows
from egregora.runner.writer import member
from egregora.runs import RunStore
from egregora.storage import Storage
from egregora.storage.keys import pseudonyms
from egregora.tasks import Backoff, TaskStore
from tests.conftest import Demo, Place
from tests.support import mkdocs_build

FIXTURES = Path(__file__).parent / "fixtures" / "whatsapp"
runner = CliRunner()
LISBON = ZoneInfo(TIMEZONE)


# -- helpers ----------------------------------------------------------------------------------
def thread_table(times: list[datetime]) -> pa.Table:
    """A thread of messages sent at ``times`` (event ids e0, e1, ... in that order)."""
    return pa.table(
        {
            "event_id": [f"e{i}" for i in range(len(times))],
            "seq": list(range(len(times))),
            "ts": pa.array(times, pa.timestamp("us", tz="UTC")),
        }
    )


def message(seq: int, text: str | None, author: str | None = "a" * 36, **extra: Any) -> Message:
    fields: dict[str, Any] = {
        "event_id": f"e{seq}",
        "seq": seq,
        "ts": datetime(2024, 5, 14, 9, seq, tzinfo=UTC),
        "kind": "text",
        "author_uuid": author,
        "text": text,
        "media_filename": None,
        "media_type": None,
    }
    fields.update(extra)
    return Message(**fields)


def some_window(messages: list[Message]) -> Window:
    return Window(
        thread_id="t",
        spec=WindowSpec(),
        label="2024-05-14",
        start=datetime(2024, 5, 13, 23, tzinfo=UTC),
        end=datetime(2024, 5, 14, 23, tzinfo=UTC),
        first_seq=messages[0].seq,
        last_seq=messages[-1].seq,
        messages=len(messages),
        signature=signature(m.event_id for m in messages),
    )


def demo_json(demo: Demo, *args: str) -> dict[str, Any]:
    result = demo.invoke("--json", *args)
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def rows(store: Storage, name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = store.to_pyarrow(store.table(name)).to_pylist()
    return found


def label_of(db: str | Place, thread_id: str) -> str:
    """The public label a database's key gives a thread (in document ids and page names)."""
    with Storage.open(str(db), read_only=True) as store:
        return pseudonyms(store).thread("whatsapp", thread_id)


def front_matter(page: Path) -> tuple[dict[str, Any], str]:
    text = page.read_text(encoding="utf-8")
    assert text.startswith("---\n"), page
    head, body = text[4:].split("\n---\n", 1)
    fields: dict[str, Any] = yaml.safe_load(head)
    return fields, body


# -- windows ----------------------------------------------------------------------------------
def test_window_spec_reads_day_week_and_counts() -> None:
    assert WindowSpec.parse("day") == WindowSpec("day")
    assert WindowSpec.parse(" Week ") == WindowSpec("week")
    assert WindowSpec.parse("200") == WindowSpec("messages", 200)
    for bad in ("0", "-3", "month", "2.5", ""):
        with pytest.raises(ConfigurationError, match="--window"):
            WindowSpec.parse(bad)


def test_days_are_local_days_of_the_export_zone() -> None:
    local = [
        datetime(2024, 5, 14, 0, 10, tzinfo=LISBON),  # 23:10 UTC the day before
        datetime(2024, 5, 14, 23, 50, tzinfo=LISBON),
        datetime(2024, 5, 15, 8, 0, tzinfo=LISBON),
    ]
    windows = plan_windows(
        "t", thread_table([t.astimezone(UTC) for t in local]), WindowSpec(), TIMEZONE
    )
    assert [w.label for w in windows] == ["2024-05-14", "2024-05-15"]
    first = windows[0]
    assert first.start == datetime(2024, 5, 14, tzinfo=LISBON)
    assert first.end == datetime(2024, 5, 15, tzinfo=LISBON)
    assert (first.first_seq, first.last_seq, first.messages) == (0, 1, 2)
    assert first.signature == signature(["e0", "e1"])
    in_utc = plan_windows(
        "t", thread_table([t.astimezone(UTC) for t in local]), WindowSpec(), "UTC"
    )
    assert [w.label for w in in_utc] == ["2024-05-13", "2024-05-14", "2024-05-15"]


def test_a_day_that_changes_the_clock_is_23_or_25_hours_long() -> None:
    times = [datetime(2024, 3, 31, 12, tzinfo=LISBON).astimezone(UTC)]  # clocks go forward
    (window,) = plan_windows("t", thread_table(times), WindowSpec(), TIMEZONE)
    assert (window.start, window.end) == (
        datetime(2024, 3, 31, 0, tzinfo=UTC),  # midnight, winter time (UTC+0)
        datetime(2024, 3, 31, 23, tzinfo=UTC),  # the next midnight, summer time (UTC+1)
    )
    assert window.end - window.start == timedelta(hours=23)
    times = [datetime(2024, 10, 27, 12, tzinfo=LISBON).astimezone(UTC)]  # clocks go back
    (window,) = plan_windows("t", thread_table(times), WindowSpec(), TIMEZONE)
    assert (window.start, window.end) == (
        datetime(2024, 10, 26, 23, tzinfo=UTC),
        datetime(2024, 10, 28, 0, tzinfo=UTC),
    )
    assert window.end - window.start == timedelta(hours=25)


def test_weeks_run_monday_to_monday() -> None:
    days = [datetime(2024, 5, d, 12, tzinfo=LISBON).astimezone(UTC) for d in (12, 13, 19, 20)]
    windows = plan_windows("t", thread_table(days), WindowSpec("week"), TIMEZONE)
    assert [w.label for w in windows] == ["2024-W19", "2024-W20", "2024-W21"]
    assert windows[1].start == datetime(2024, 5, 13, tzinfo=LISBON)  # a Monday
    assert windows[1].end - windows[1].start == timedelta(days=7)
    assert windows[1].messages == 2


def test_message_windows_cut_the_thread_in_order_and_grow_only_at_the_end() -> None:
    start = datetime(2024, 5, 14, 9, tzinfo=UTC)
    times = [start + timedelta(minutes=i) for i in range(7)]
    spec = WindowSpec("messages", 3)
    windows = plan_windows("t", thread_table(times), spec, "UTC")
    assert [(w.label, w.first_seq, w.last_seq) for w in windows] == [
        ("n3-00001", 0, 2),
        ("n3-00002", 3, 5),
        ("n3-00003", 6, 6),
    ]
    assert windows[2].start == times[6] and windows[2].end == times[6] + timedelta(microseconds=1)
    longer = plan_windows("t", thread_table([*times, start + timedelta(hours=1)]), spec, "UTC")
    assert [w.signature for w in longer[:2]] == [w.signature for w in windows[:2]]
    assert longer[2].signature != windows[2].signature and longer[2].messages == 2


def test_no_messages_no_windows() -> None:
    assert plan_windows("t", thread_table([]), WindowSpec(), "UTC") == []


# -- writers ----------------------------------------------------------------------------------
def test_the_extractive_writer_is_deterministic_and_keeps_names_out_of_titles() -> None:
    ana, bo = "1" * 36, "2" * 36
    messages = [
        message(0, "Ana booked the whale watching boat for Sunday", ana),
        message(1, "Whale watching! The boat leaves at nine https://boats.example.com/x.", bo),
        message(2, "ok", bo),
        message(3, None, ana, kind="media", media_filename="IMG-1.jpg", media_type="image"),
    ]
    given = WindowInput(
        some_window(messages), messages, LISBON, People(str, ["Ana Silva", "Bo"]).words
    )
    draft = ExtractiveWriter().write(given)
    assert draft == ExtractiveWriter().write(given)
    assert draft.tags == ("boat", "watching", "whale")
    assert draft.title == "Boat, watching and whale"
    assert "ana" not in {w.lower().strip(",") for w in draft.title.split()}
    assert draft.summary == "4 messages from 2 people, mostly about boat, watching and whale."
    assert f"— {member(ana)}, 10:00" in draft.content  # local time, pseudonym
    assert "<https://boats.example.com/x>" in draft.content


@pytest.mark.parametrize(
    ("texts", "title"),
    [
        (  # Russian: its stop words (это, как, мы, на) are not what the day was about
            [
                "Мы завтра едем на озеро, это будет здорово",
                "Как мы едем на озеро?",
                "Это озеро очень красивое, мы едем утром",
            ],
            "Едем, озеро and завтра",
        ),
        (  # German and English in one chat: both lists apply
            [
                "Wir fahren morgen an den See, das wird toll",
                "Ist der See weit weg von hier?",
                "The lake is not far, we drive there in the morning",
            ],
            "Drive, fahren and lake",
        ),
        (  # Spanish
            [
                "La playa está muy lejos de la casa",
                "Vamos a la playa mañana por la tarde",
                "La playa de la isla es la mejor",
            ],
            "Playa, casa and isla",
        ),
    ],
)
def test_titles_leave_out_the_stop_words_of_the_chats_own_languages(
    texts: list[str], title: str
) -> None:
    messages = [message(i, text, str(i % 2) * 36) for i, text in enumerate(texts)]
    draft = ExtractiveWriter().write(WindowInput(some_window(messages), messages, UTC))
    assert draft.title == title


def test_a_writer_given_notices_only_writes_a_quiet_post() -> None:
    notice = message(0, "Ana added Bo", None, kind="system")
    draft = ExtractiveWriter().write(WindowInput(some_window([notice]), [notice], UTC))
    assert draft.title == "Quiet times (2024-05-14)"
    assert draft.tags == ()


NOTICES_CHAT = (
    "14/03/2024, 10:00 - Ana Sousa: Good morning, the whale watching boat leaves at nine\n"
    "14/03/2024, 10:05 - Bia Costa: The whale watching boat, yes\n"
    "15/03/2024, 09:00 - Ana Sousa added Caio Lima\n"
    "15/03/2024, 09:01 - Caio Lima left\n"
    "16/03/2024, 11:00 - Bia Costa: Back home, what a trip\n"
)


def test_a_day_of_notices_only_has_a_journal_and_no_post(tmp_path: Path, place: Place) -> None:
    """A post is what members said: a day of system notices only ("Quiet times ... from 0
    people") gets its journal, which lists the notices, and no post."""
    chat = tmp_path / "WhatsApp Chat with Boat.txt"
    chat.write_text(NOTICES_CHAT, encoding="utf-8")
    site = tmp_path / "site"
    args = ["run", str(chat), "--tz", "UTC", "--site", str(site), "--db", str(place), "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["documents"] | {"media": 0} == {
        "journal": 3, "post": 2, "profile": 2, "media": 0
    }  # fmt: skip
    with Storage.open(str(place), read_only=True) as store:
        table = store.table("documents").filter(lambda d: d.doc_type.isin(["post", "journal"]))
        rows = store.to_pyarrow(table.select("doc_type", "date", "extensions")).to_pylist()
    posts = sorted(str(r["date"]) for r in rows if r["doc_type"] == "post")
    assert posts == ["2024-03-14", "2024-03-16"]
    (quiet,) = [r for r in rows if r["doc_type"] == "journal" and str(r["date"]) == "2024-03-15"]
    assert "post_id" not in json.loads(quiet["extensions"])  # it links to no post
    again = json.loads(runner.invoke(app, args).stdout)
    assert (again["new_documents"], again["tasks_waiting"]) == (0, 0)  # nothing left to do
    mkdocs_build(site, tmp_path / "built")  # --strict: no link to a missing post


class Shouting:
    name = "shouting"
    version = "2"

    def write(self, window: WindowInput) -> PostDraft:
        return PostDraft(title="LOUD", summary="loud", content="LOUD\n")


def test_writers_load_from_module_and_name() -> None:
    assert isinstance(load_writer(None), ExtractiveWriter)
    assert isinstance(load_writer("extractive"), ExtractiveWriter)
    assert load_writer("tests.test_runner:Shouting").name == "shouting"
    with pytest.raises(ConfigurationError, match=r"package\.module:Name"):
        load_writer("nothing-here")
    with pytest.raises(ConfigurationError, match="cannot import"):
        load_writer("no_such_module_anywhere:Writer")
    with pytest.raises(ConfigurationError, match="has no"):
        load_writer("tests.test_runner:Missing")
    with pytest.raises(ConfigurationError, match="is not a Writer"):
        load_writer("tests.test_runner:message")


# -- cards ------------------------------------------------------------------------------------
def test_a_card_is_a_1200_by_630_png() -> None:
    long = "A title long enough to wrap over several lines of the card " * 3
    for title in ("Whales", long):
        image = Image.open(BytesIO(render_card(title, "14 May 2024", "Trip Planners")))
        assert image.format == "PNG" and image.size == (WIDTH, HEIGHT) == (1200, 630)
    assert render_card("Whales", "14 May 2024", "x") == render_card("Whales", "14 May 2024", "x")


def test_cards_are_drawn_once(place: Place) -> None:
    db = place
    wanted = [("Whales", "14 May 2024"), ("Hot springs", "15 May 2024"), ("Whales", "14 May 2024")]
    with Storage.open(str(db)) as store, AssetCache(store) as cache:
        assert ensure_cards(cache, wanted, "Trip Planners") == 2
        assert ensure_cards(cache, wanted, "Trip Planners") == 0
        assert ensure_cards(cache, wanted, "Another site") == 2  # the site name is drawn too
        stored = cache.get(card_key("Whales", "14 May 2024", "Trip Planners"))
        assert stored is not None and stored.content_type == "image/png"
        assert stored.content == render_card("Whales", "14 May 2024", "Trip Planners")


# -- the demo and the pipeline ----------------------------------------------------------------
def test_the_demo_makes_a_database_and_a_site(demo: Demo) -> None:
    with Storage.open(demo.db, read_only=True) as store:
        messages = rows(store, "messages")
        documents = rows(store, "documents")
    days = {m["ts"].astimezone(LISBON).date() for m in messages}
    authors = {m["author_uuid"] for m in messages if m["author_uuid"]}
    files = {m["media_filename"] for m in messages if m["media_filename"]}
    media = [d for d in documents if d["doc_type"] == "media"]
    by_type = Counter(d["doc_type"] for d in documents)
    assert by_type == {
        "post": len(days),
        "journal": len(days),
        "profile": len(authors),
        "media": len(files),
    }
    docs = demo.folder / "site" / "docs"
    assert (demo.folder / "site" / "mkdocs.yml").is_file() and (docs / "index.md").is_file()
    assert len(list((docs / "blog" / "posts").glob("*-*.md"))) == len(days)
    assert len(list((docs / "blog" / "cards").glob("*.png"))) == len(days)
    assert len(list((docs / "journal").glob("*.md"))) == len(days) + 1  # and the index
    assert len(list((docs / "profiles").glob("*.md"))) == len(authors) + 1
    # Media files are published under their document's id, never the name the export gave.
    assert {d["filename"] for d in media} == files
    published = {media_file(d) for d in media}
    assert {p.name for p in (docs / "media").iterdir()} == published | {"index.md"}


def test_a_second_demo_run_makes_nothing_new(demo_copy: Demo) -> None:
    site = demo_copy.folder / "site"
    before = {p: p.read_bytes() for p in site.rglob("*") if p.is_file()}
    stamps = {p: p.stat().st_mtime_ns for p in before}
    summary = demo_json(demo_copy)
    assert summary["new_messages"] == 0 and summary["new_documents"] == 0
    assert summary["cards_rendered"] == 0
    assert set(summary) == {
        *("ok", "run_id", "messages", "new_messages", "documents", "new_documents"),
        *("cards_rendered", "site", "tasks_waiting", "workers"),
    }
    assert summary["tasks_waiting"] == 0
    assert summary["messages"] == 432 and summary["site"] == str(site)
    after = {p: p.read_bytes() for p in site.rglob("*") if p.is_file()}
    assert after == before
    assert {p: p.stat().st_mtime_ns for p in after} == stamps  # not even rewritten


def test_db_verify_passes_on_what_a_run_leaves(demo: Demo) -> None:
    result = runner.invoke(app, ["db", "verify", "--db", demo.db])
    assert result.exit_code == 0, result.output


def test_journals_hold_their_window_as_the_messages_say(demo: Demo) -> None:
    with Storage.open(demo.db, read_only=True) as store:
        messages = sorted(rows(store, "messages"), key=lambda m: m["seq"])
        documents = {d["id"]: d for d in rows(store, "documents")}
    by_day: dict[Any, list[dict[str, Any]]] = {}
    for m in messages:
        by_day.setdefault(m["ts"].astimezone(LISBON).date(), []).append(m)
    media_ids = {d["filename"]: d["id"] for d in documents.values() if d["doc_type"] == "media"}
    label = label_of(demo.db, "trip-planners")
    for day, held in by_day.items():
        journal = documents[f"journal-{label}-{day.isoformat()}"]
        ext = json.loads(journal["extensions"])
        assert journal["window_start"] == datetime.combine(day, time(), LISBON)
        assert journal["window_end"] == datetime.combine(day + timedelta(days=1), time(), LISBON)
        # The sample's days are in May, when Lisbon's clocks do not change: 24 hours each.
        assert journal["window_end"] - journal["window_start"] == timedelta(hours=24)
        assert journal["window_signature"] == signature(m["event_id"] for m in held)
        # Authors in order of their first message (not of their pseudonyms, which a rekey
        # changes).
        first = dict.fromkeys(m["author_uuid"] for m in held if m["author_uuid"])
        assert journal["authors"] == list(first)
        assert ext["messages"] == len(held)
        assert ext["kinds"] == {
            k: sum(m["kind"] == k for m in held) for k in ("text", "media", "system")
        }
        sent = [m["media_filename"] for m in held if m["media_filename"]]
        assert ext["media"] == [media_ids[f] for f in sent]
        assert all(link in "".join(m["text"] or "" for m in held) for link in ext["links"])
        post = documents[ext["post_id"]]
        assert post["window_signature"] == journal["window_signature"]
        assert post["status"] == "published" and post["date"] == day
        assert post["created_at"] == max(m["ts"] for m in held)
    linked = [json.loads(d["extensions"]) for d in documents.values() if d["doc_type"] == "media"]
    assert all(ext["journal_id"] in documents for ext in linked)


def test_profiles_describe_each_author_by_pseudonym(demo: Demo) -> None:
    with Storage.open(demo.db, read_only=True) as store:
        messages = rows(store, "messages")
        profiles = rows(store, "documents")
    names = {m["author_raw"] for m in messages if m["author_raw"]}
    profiles = [d for d in profiles if d["doc_type"] == "profile"]
    for profile in profiles:
        own = [m for m in messages if m["author_uuid"] == profile["subject_uuid"]]
        ext = json.loads(profile["extensions"])
        assert ext["messages"] == len(own)
        assert profile["created_at"] == min(m["ts"] for m in own)
        assert profile["updated_at"] == max(m["ts"] for m in own)
        assert sum(ext["active_hours"]) == len(own)
        assert profile["title"] == member(profile["subject_uuid"])
        assert not any(name in profile["content"] for name in names)


def test_no_document_names_an_author_outside_quoted_text(demo: Demo) -> None:
    with Storage.open(demo.db, read_only=True) as store:
        names = {m["author_raw"] for m in rows(store, "messages") if m["author_raw"]}
        documents = rows(store, "documents")
    words = People(str, sorted(names)).words
    for doc in documents:
        if doc["doc_type"] == "media":
            continue
        assert not {w.lower() for w in doc["tags"] or []} & words
        assert not {w.strip(",:").lower() for w in (doc["title"] or "").split()} & words
        assert all(len(a) == 36 for a in doc["authors"])  # pseudonyms (uuids)


def test_the_site_pages_carry_front_matter_and_build_with_mkdocs(
    tmp_path: Path, demo: Demo
) -> None:
    docs = demo.folder / "site" / "docs"
    db = demo.db
    page = f"{label_of(db, 'trip-planners')}-2024-05-14"
    post, body = front_matter(docs / "blog" / "posts" / f"{page}.md")
    assert post["title"] and post["date"].isoformat() == "2024-05-14"
    assert post["image"] == f"blog/cards/{page}.png" and (docs / post["image"]).is_file()
    assert post["authors"] and all(a.startswith("member-") for a in post["authors"])
    with Storage.open(str(db), read_only=True) as store:
        query = store.documents.media_by_filename("IMG-20240514-WA0001.jpg")
        (photo,) = store.to_pyarrow(query).to_pylist()
    assert f"../../media/{media_file(photo)}" in body
    journal, _ = front_matter(docs / "journal" / f"{page}.md")
    assert journal["egregora"]["window_signature"] == post["egregora"]["window_signature"]
    out = tmp_path / "built"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-q",
            "-f",
            str(demo.folder / "site" / "mkdocs.yml"),
            "-d",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert (out / "blog" / "2024" / "05" / "14" / page / "index.html").is_file()


def test_site_name_is_the_sites_title_and_drawn_on_every_card(tmp_path: Path, place: Place) -> None:
    db = place
    name = 'Ana\'s "Trip": #1 <b>'  # a quote, double quotes, a colon, a hash and markup

    def run_into(site: Path, *named: str) -> dict[str, Any]:
        args = ["run", str(FIXTURES / "family_short.txt"), "--tz", TIMEZONE, "--thread", "Family"]
        result = runner.invoke(app, [*args, "--site", str(site), *named, "--db", str(db), "--json"])
        assert result.exit_code == 0, result.output
        config: dict[str, Any] = yaml.safe_load((site / "mkdocs.yml").read_text(encoding="utf-8"))
        return config

    site = tmp_path / "site"
    # MkDocs puts the name into every page's HTML as it is: it is written HTML-escaped.
    written = run_into(site, "--site-name", name)["site_name"]
    assert "<" not in written and html.unescape(written) == name
    label = label_of(db, "family")
    pages = [*(site / "docs" / "blog" / "posts").glob(f"{label}-*.md")]
    pages += [*(site / "docs" / "journal").glob(f"{label}-*.md")]
    assert len(pages) == 2  # one window: its post and its journal
    for page in pages:
        fields, _ = front_matter(page)
        card = (site / "docs" / fields["image"]).read_bytes()
        when = card_date(fields["date"])
        title = html.unescape(fields["title"])
        assert card == render_card(title, when, name)
        assert card != render_card(title, when, "Family")
    # Without --site-name the site is named after the chat.
    assert run_into(tmp_path / "unnamed")["site_name"] == "Family"


def test_every_stage_is_a_run_under_the_run(demo: Demo) -> None:
    with Storage.open(demo.db, read_only=True) as store:
        runs = RunStore(store)
        (parent,) = runs.list(stage="run")
        children = runs.list(parent=parent.run_id)
        tasks = [t for t in TaskStore(store).list(limit=None) if t.run_id == parent.run_id]
    assert parent.status == "succeeded"
    assert sorted(c.stage for c in children) == ["cards", "execute", "ingest", "plan", "site"]
    assert all(c.status == "succeeded" for c in children)
    assert Counter(t.task_type for t in tasks) == {"window": 20, "profile": 6}
    assert all(t.status == "succeeded" for t in tasks)


def test_a_longer_export_writes_only_the_windows_it_changes(place: Place) -> None:
    db = place
    short, long = FIXTURES / "family_short.txt", FIXTURES / "family_long.txt"
    with Storage.open(str(db)) as store:
        first = run_pipeline(store, short, RunOptions(tz=TIMEZONE, thread="Family"))
        before = {d["id"]: d for d in rows(store, "documents")}
        second = run_pipeline(store, long, RunOptions(tz=TIMEZONE, thread="Family"))
        after = {d["id"]: d for d in rows(store, "documents")}
    assert first.windows == 1 and second.windows == 2
    assert second.new_messages == 8 - first.messages == 3
    # 14 March is as it was: its journal and post are skipped, not rewritten.
    label = label_of(db, "family")
    unchanged = {f"journal-{label}-2024-03-14", f"post-{label}-2024-03-14"}
    assert all(after[i] == before[i] for i in unchanged)
    new = set(after) - set(before)
    assert new == {f"journal-{label}-2024-03-15", f"post-{label}-2024-03-15"}
    # All three people wrote on the 15th: each profile is made again from more messages.
    profiles = {i for i in after if i.startswith("profile-")}
    assert len(profiles) == 3 and all(after[i] != before[i] for i in profiles)
    assert (second.windows_written, second.profiles_written) == (1, 3)
    assert second.new_documents == len(new) + len(profiles)


@pytest.mark.parametrize(
    ("window", "want"),
    [
        ("week", ["2024-W18", "2024-W19", "2024-W20", "2024-W21"]),
        ("100", [f"n100-0000{i}" for i in range(1, 6)]),
    ],
)
def test_weeks_and_message_counts_are_windows_too(
    window: str, want: list[str], tmp_path: Path
) -> None:
    """Each on a database of its own: a thread keeps the windows of its first plan."""
    export = sample_export(tmp_path / "export")
    db = str(tmp_path / "egregora.duckdb")
    made = runner.invoke(
        app, ["run", str(export), "--window", window, "--tz", TIMEZONE, "--db", db, "--json"]
    )
    assert made.exit_code == 0, made.output
    with Storage.open(db, read_only=True) as store:
        labels = [
            json.loads(d["extensions"])["label"]
            for d in rows(store, "documents")
            if d["doc_type"] == "journal"
        ]
    assert sorted(labels) == want
    assert json.loads(made.stdout)["documents"]["journal"] == len(want)


class Failing(ExtractiveWriter):
    """Fails on the 14 May window, writes the others."""

    def write(self, window: WindowInput) -> PostDraft:
        if window.window.label == "2024-05-14":
            raise RuntimeError("the model is unreachable")
        return super().write(window)


def test_a_failing_writer_fails_the_run_naming_the_window(tmp_path: Path, place: Place) -> None:
    db = place
    export = sample_export(tmp_path)
    options = RunOptions(tz=TIMEZONE, writer=Failing(), backoff=Backoff(base=timedelta(0)))
    with Storage.open(str(db)) as store:
        with pytest.raises(TaskFailedError, match="window 2024-05-14: the model is unreachable"):
            run_pipeline(store, export, options)
        ids = {d["id"] for d in rows(store, "documents")}
        (run,) = RunStore(store).list(stage="run")
        failed = TaskStore(store).list(status="failed")
    label = label_of(db, "trip-planners")
    assert f"post-{label}-2024-05-14" not in ids and f"post-{label}-2024-05-15" in ids
    assert run.status == "failed" and "TaskFailedError" in (run.error or "")
    assert [t.payload["label"] for t in failed] == ["2024-05-14"] and failed[0].attempts == 3
    with Storage.open(str(db)) as store:  # the writer recovered: the next run finishes the job
        summary = run_pipeline(store, export, RunOptions(tz=TIMEZONE))
    assert summary.windows_written == 1 and summary.documents["post"] == 20


def test_the_site_never_replaces_a_file_it_did_not_write(demo_copy: Demo) -> None:
    site = demo_copy.folder / "site"
    label = label_of(demo_copy.db, "trip-planners")
    page = site / "docs" / "blog" / "posts" / f"{label}-2024-05-14.md"
    page.write_text("my own notes\n", encoding="utf-8")  # edited by hand
    fresh = site / "docs" / "journal" / f"{label}-2024-05-02.md"
    fresh.unlink()
    manifest = (site / MANIFEST).read_bytes()
    result = demo_copy.invoke()
    assert result.exit_code == 2
    assert "was edited since egregora wrote it" in result.output and str(page) in result.output
    assert page.read_text(encoding="utf-8") == "my own notes\n"
    assert not fresh.exists()  # refused before writing anything
    assert (site / MANIFEST).read_bytes() == manifest
    page.unlink()
    stranger = site / "docs" / "profiles" / "index.md"
    stranger.write_text("written by someone else\n", encoding="utf-8")
    known = json.loads((site / MANIFEST).read_text(encoding="utf-8"))
    del known["files"]["docs/profiles/index.md"]  # a page egregora has not written, put there
    (site / MANIFEST).write_text(json.dumps(known), encoding="utf-8")
    result = demo_copy.invoke()
    assert result.exit_code == 2 and "was not written by egregora" in result.output
    (site / MANIFEST).unlink()  # no manifest: a folder of files that is no egregora site
    result = demo_copy.invoke()
    assert result.exit_code == 2 and "is not a site egregora made" in result.output
    assert stranger.read_text(encoding="utf-8") == "written by someone else\n"


def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    export = FIXTURES / "family_short.txt"
    db = str(tmp_path / "db.duckdb")
    for args, cause in (
        (["--window", "month"], "--window must be day, week or a number"),
        (["--writer", "nowhere:Writer"], "cannot import the writer's module"),
        (["--tz", "Mars/Olympus"], "unknown time zone"),
    ):
        result = runner.invoke(app, ["run", str(export), "--db", db, *args])
        assert result.exit_code == 2, result.output
        assert cause in result.output


def test_the_sample_export_shows_the_quirks_of_the_format() -> None:
    raw = sample_export_bytes()
    text = raw.decode("utf-8-sig")
    assert raw.startswith(b"\xef\xbb\xbf")  # byte-order mark
    assert "\u200eIMG-" in text and "(file attached)" in text  # marks before attachments
    assert "<Media omitted>" in text and "This message was deleted" in text
    assert " added " in text and " changed the subject " in text and " left" in text
    assert "https://" in text


def sample_export_bytes() -> bytes:
    from egregora.runner.demo import SAMPLE

    (chat,) = SAMPLE.glob("*.txt")
    return chat.read_bytes()
