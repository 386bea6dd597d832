"""Golden values: the identities egregora derives, pinned to fixed inputs.

Every value below is written out by hand, never computed by the code under test, because
these identities are stored and compared across runs and versions:

- ``event_id`` decides whether a message is already stored. A changed recipe gives every
  message of an existing database a new id, so the next ingest of the same export would
  store every message a second time.
- ``author_uuid`` is the pseudonym documents name people by (an HMAC under the database's
  key, pinned here under a fixed key), and the thread's keyed label is part of every document
  id. A changed recipe splits each member into two people and orphans their profiles.
- A window's or an author's signature decides whether its journal, post or profile is done.
  A changed recipe re-writes every document of every thread on the next run.
- Document ids (journals, posts, profiles, media) are the keys upserts land on; asset keys,
  config hashes and input checksums decide cache hits and tell runs apart.

So a failure here is never fixed by pasting the new value in. A deliberate change of recipe
is a schema change: it needs a migration that rewrites the stored values (or keeps the old
recipe for stored rows), a note in docs/schema-evolution-plan.md, and only then new golden
values in this file.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from egregora.assets import key_for
from egregora.digest import config_hash, content_hash
from egregora.etl.ingest import event_ids
from egregora.etl.parse import parse_export
from egregora.pseudonyms import ENV, Pseudonyms, key_id, thread_slug
from egregora.runner import RunOptions, run_pipeline
from egregora.runner.cards import card_key
from egregora.runner.model import WindowSpec, signature
from egregora.runner.windows import plan_windows
from egregora.runner.writer import member
from egregora.storage import Storage
from tests.conftest import ENGINES, Databases
from tests.support import db_arg

CHAT = "Família Gonçalves"
THREAD = "família-gonçalves"
ZONE = "America/Sao_Paulo"  # UTC-3 in March 2024: window bounds must move with the zone
IMAGE = "IMG-20240314-WA0001.jpg"
IMAGE_BYTES = b"\xff\xd8\xff\xe0golden image\xff\xd9"

# An Android export holding one of each kind of entry an id must tell apart: a notice (no
# author), accents, a phone number as a name, a continued line, the same message twice in
# the same minute, an attachment, omitted media, and the text "None" (not the same as none).
EXPORT = (
    "14/03/2024, 17:59 - Messages and calls are end-to-end encrypted. No one outside of this "
    "chat, not even WhatsApp, can read or listen to them. Tap to learn more.\n"
    "14/03/2024, 18:00 - Inês Gonçalves: Jantar no domingo?\n"
    "14/03/2024, 18:01 - +351 912 345 678: Sim!\n"
    "levo a sobremesa\n"
    "14/03/2024, 18:02 - Caio Lima: ok\n"
    "14/03/2024, 18:02 - Caio Lima: ok\n"
    f"14/03/2024, 18:03 - Inês Gonçalves: \u200e{IMAGE} (file attached)\n"
    "14/03/2024, 18:04 - Caio Lima: <Media omitted>\n"
    "15/03/2024, 09:30 - Caio Lima: None\n"
)

KEY = bytes(range(32))  # the database's pseudonym key in every test below
KEYED = Pseudonyms(KEY)
LABEL = "chat-e3ab6799ea"  # the thread's public label under KEY
INES = "f6d378c1-bff5-89fb-8a01-96ccfaf85d6d"
PHONE = "c23c2a6d-1018-80dc-9d88-447bac4e8e2d"
CAIO = "a0f34aab-f777-897d-95ad-ecea46bf7457"

# (local time as written, kind, author_uuid, event_id), in the export's order.
MESSAGES = [
    ("2024-03-14T17:59:00", "system", None, "4d641159b5587ac9b0c54e60f45ac435"),
    ("2024-03-14T18:00:00", "text", INES, "e60b38c6f86f06d575d7d830a9dfd053"),
    ("2024-03-14T18:01:00", "text", PHONE, "3885b6fd865470c1cddf120fe0efc25b"),
    ("2024-03-14T18:02:00", "text", CAIO, "c268656303a07e0fc8c0d392b6295da5"),
    ("2024-03-14T18:02:00", "text", CAIO, "d55cfcafd61f42669cf083b54b899b5c"),  # 2nd "ok"
    ("2024-03-14T18:03:00", "media", INES, "2f92228a8b29289a3249e3fbb6be4fbd"),
    # Omitted media: a media message since migration 0009 (it was "text"); its id is the same.
    ("2024-03-14T18:04:00", "media", CAIO, "32d976ba2f26398ba2a066a9741fbf3b"),
    ("2024-03-15T09:30:00", "text", CAIO, "eac1f28798f84a1d71fd35a8ced3fa67"),
]
EVENT_IDS = [event for *_, event in MESSAGES]

# (label, start, end, first seq, last seq, messages, signature) per --window, in ZONE.
WINDOWS: dict[str, list[tuple[str, str, str, int, int, int, str]]] = {
    "day": [
        (
            "2024-03-14",
            "2024-03-14T03:00:00+00:00",
            "2024-03-15T03:00:00+00:00",
            0,
            6,
            7,
            "4380a7c9c17b3aa40571f925b7ad1f10",
        ),
        (
            "2024-03-15",
            "2024-03-15T03:00:00+00:00",
            "2024-03-16T03:00:00+00:00",
            7,
            7,
            1,
            "99ec049fb43f243aec45f84156c28b6d",
        ),
    ],
    "week": [
        (
            "2024-W11",
            "2024-03-11T03:00:00+00:00",
            "2024-03-18T03:00:00+00:00",
            0,
            7,
            8,
            "984c28ff455023ac4797dd03263666e9",
        ),
    ],
    "3": [
        (
            "n3-00001",
            "2024-03-14T20:59:00+00:00",
            "2024-03-14T21:01:00.000001+00:00",
            0,
            2,
            3,
            "340c1a6bb590055a097b022a704489cd",
        ),
        (
            "n3-00002",
            "2024-03-14T21:02:00+00:00",
            "2024-03-14T21:03:00.000001+00:00",
            3,
            5,
            3,
            "0b4110e77ab75ef1c9ec6b3d5c339755",
        ),
        (
            "n3-00003",
            "2024-03-14T21:04:00+00:00",
            "2024-03-15T12:30:00.000001+00:00",
            6,
            7,
            2,
            "880e50c7871ee9710847435c49cd2744",
        ),
    ],
}

# The documents a run stores, by id: (window_signature, source_checksum). Journals and posts
# hold their window's signature, a post also its writer's (writer name, version, window), a
# profile its author's (their event ids in thread order), and the media file its SHA-256.
DOCUMENTS = {
    f"journal-{LABEL}-2024-03-14": ("4380a7c9c17b3aa40571f925b7ad1f10", None),
    f"journal-{LABEL}-2024-03-15": ("99ec049fb43f243aec45f84156c28b6d", None),
    "media-f1e722a8273f043678c08222346ded38": (
        None,
        "641e62f983238e058f43c87718b8c4271e9cda279d7604f712b3e6be77b6cb5a",
    ),
    f"post-{LABEL}-2024-03-14": (
        "4380a7c9c17b3aa40571f925b7ad1f10",
        "fc35d324a4a2ead96d26712ce40c66b5",
    ),
    f"post-{LABEL}-2024-03-15": (
        "99ec049fb43f243aec45f84156c28b6d",
        "72c2583f96a2ee95cb963fff9a496128",
    ),
    f"profile-{LABEL}-{PHONE}": (None, "6111375952ae59ad7fa6a1bce7960e44"),
    f"profile-{LABEL}-{CAIO}": (None, "875f267b5d6b3d66ed6b0c696b3b8f06"),
    f"profile-{LABEL}-{INES}": (None, "e123beedcb56f24f3f0bd4241ab9d536"),
}


# -- identities of messages and people ------------------------------------------------------------
def test_thread_slug_is_pinned() -> None:
    assert thread_slug(CHAT) == THREAD
    assert thread_slug("WhatsApp: Trip to Porto 2024!") == "whatsapp-trip-to-porto-2024"
    assert thread_slug("Семья") == "семья"
    assert thread_slug("__trip_2024__") == "trip-2024"
    assert thread_slug("!!!") == "chat"


def test_event_ids_are_pinned() -> None:
    entries = parse_export(EXPORT, name="golden.txt")
    assert entries.stamps.to_pylist() == [stamp for stamp, *_ in MESSAGES]
    assert entries.kinds.to_pylist() == [kind for _, kind, *_ in MESSAGES]
    assert event_ids(THREAD, entries).to_pylist() == EVENT_IDS


def test_event_ids_depend_on_the_thread() -> None:
    """The same export read as another chat is another set of messages."""
    entries = parse_export(EXPORT, name="golden.txt")
    other = event_ids("família-silva", entries).to_pylist()
    assert other[:2] == ["a1b6f314e9ce31f0577ce065d6b4e1b0", "8fcb7cf6f8027892ebaab876a9c3d9bd"]
    assert not set(other) & set(EVENT_IDS)


def test_author_pseudonyms_are_pinned() -> None:
    assert KEYED.author("whatsapp", THREAD, "Inês Gonçalves") == INES
    assert KEYED.author("whatsapp", THREAD, "+351 912 345 678") == PHONE
    assert KEYED.author("whatsapp", THREAD, "Caio Lima") == CAIO
    other = KEYED.author("whatsapp", "família-silva", "Caio Lima")
    assert other == "4e27991f-1e14-8a4d-86a9-7af7fb7830cd"
    # A number is one member however it is written; a name is one with or without spaces.
    assert KEYED.author("whatsapp", THREAD, "+351912345678") == PHONE
    assert KEYED.author("whatsapp", THREAD, " Inês Gonçalves ") == INES
    # Another key gives other pseudonyms: without the key, a name cannot be tested.
    unkeyed = Pseudonyms(bytes(32)).author("whatsapp", THREAD, "Caio Lima")
    assert unkeyed == "7047c46f-898d-8352-b32d-a9cca2efc0dd"
    assert member(CAIO) == "member-a0f34aab"
    assert member(None) == "system"


def test_thread_labels_and_key_ids_are_pinned() -> None:
    assert KEYED.thread("whatsapp", THREAD) == LABEL
    assert KEYED.thread("whatsapp", "família-silva") == "chat-02c5f63498"
    assert key_id(KEY) == "7b0b5e5847ef0741"


# -- windows and their signatures ---------------------------------------------------------------
def test_signature_is_pinned() -> None:
    assert signature([]) == "cae66941d9efbd404e4d88758ea67670"
    assert signature(EVENT_IDS) == "984c28ff455023ac4797dd03263666e9"
    assert signature(["a", "b"]) == "8d020eb46fdee76eed11c25c3c809ede"


@pytest.mark.parametrize("window", sorted(WINDOWS))
def test_windows_are_pinned(window: str) -> None:
    local = ZoneInfo(ZONE)
    times = [datetime.fromisoformat(stamp).replace(tzinfo=local) for stamp, *_ in MESSAGES]
    table = pa.table(
        {
            "event_id": EVENT_IDS,
            "seq": pa.array(range(len(EVENT_IDS)), pa.int64()),
            "ts": pa.array(times, pa.timestamp("us", "UTC")),
        }
    )
    planned = plan_windows(THREAD, table, WindowSpec.parse(window), ZONE)
    seen = [
        (
            w.label,
            w.start.isoformat(),
            w.end.isoformat(),
            w.first_seq,
            w.last_seq,
            w.messages,
            w.signature,
        )
        for w in planned
    ]
    assert seen == WINDOWS[window]


# -- content addresses --------------------------------------------------------------------------
def test_content_keys_are_pinned(tmp_path: Path) -> None:
    template = tmp_path / "card.svg"
    template.write_bytes(b"<svg/>\n")
    assert (
        key_for(
            "social_card",
            2,
            title="abraço",
            date=date(2024, 3, 14),
            size=[1200, 630],
            blob=b"\x00\x01",
            n=None,
        )
        == "social_card:1a2341f265ca59d52e4fc0ec9cfdfe94f56cd299f05d3597d391a19c6912e399"
    )
    assert (
        key_for("social_card", "2", template=template)
        == "social_card:1f84caf8593b246ec3d4ce65beaa4766cfe574f7e3143e0230d958a146a1abaf"
    )
    assert (
        card_key("Thursday 14 March 2024", "2024-03-14", CHAT)
        == "social_card:c16c02e546a9fccc66f95c08df5195ba264ddecb6d719365f1b4954a3de07bf7"
    )
    moment = datetime(2024, 3, 14, 18, tzinfo=UTC)
    assert (
        content_hash("a", 1, 1.5, True, None, moment, {"k": [1, "1"]})
        == "12a33720c8794303eb3e6e96c5a74016795d897dcc7648bec9d39d0b7cd4ef1f"
    )
    assert (
        config_hash({"tz": "Europe/Lisbon", "window": "day", "thread": THREAD})
        == "84b5b9d7ed300878c3f170d3e36c69938c479750f6fdd4ec19e91d6b939feadb"
    )


# -- the same identities as a run stores them -----------------------------------------------
@pytest.fixture
def export(tmp_path: Path) -> Path:
    path = tmp_path / f"WhatsApp Chat with {CHAT}.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"WhatsApp Chat with {CHAT}.txt", EXPORT)
        archive.writestr(IMAGE, IMAGE_BYTES)
    return path


@pytest.fixture(params=ENGINES)
def store(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    databases: Databases,
) -> Iterator[Storage]:
    """A new database on each engine, given the key ``KEY`` (the test runs in its own folder,
    where a server's database keeps its media)."""
    monkeypatch.setenv(ENV, KEY.hex())
    monkeypatch.chdir(tmp_path)
    with Storage.open(db_arg(databases.new(str(request.param), migrated=False))) as opened:
        opened.ensure_schema()
        yield opened


def _stored(store: Storage, table: str, *columns: str, order: str) -> list[dict[str, Any]]:
    query = store.table(table).order_by(order).select(*columns)
    rows: list[dict[str, Any]] = store.to_pyarrow(query).to_pylist()
    return rows


def test_a_run_stores_the_pinned_identities(store: Storage, export: Path) -> None:
    run_pipeline(store, export, RunOptions(tz=ZONE))
    messages = _stored(store, "messages", "seq", "event_id", "author_uuid", order="seq")
    assert messages == [
        {"seq": seq, "event_id": event, "author_uuid": author}
        for seq, (_, _, author, event) in enumerate(MESSAGES)
    ]
    documents = _stored(store, "documents", "id", "window_signature", "source_checksum", order="id")
    assert {
        row["id"]: (row["window_signature"], row["source_checksum"]) for row in documents
    } == DOCUMENTS
    assert len(documents) == len(DOCUMENTS)
