"""WhatsApp exports into `messages` and `documents` (``egregora.etl`` and ``egregora ingest``).

Each file in tests/fixtures/whatsapp/ holds one quirk of how phones write an export (layout,
clock, date order, direction marks, attachments, system notices, byte-order mark); every test
reads the rows back from the database. Zip exports are built at test time from those files and
a few bytes of "media". Bad input must fail with a clear error and leave nothing behind: no
rows, no run, no media folder.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from egregora.cli.app import app
from egregora.errors import ConfigurationError, EgregoraError
from egregora.etl import (
    ExportFileError,
    ExportFormatError,
    IngestResult,
    UnsafeArchiveError,
    archive,
    ingest_export,
)
from egregora.etl.parse import DateOrder
from egregora.media import MediaFiles
from egregora.pseudonyms import thread_slug
from egregora.runs import RunStore
from egregora.storage import Storage
from egregora.storage.keys import pseudonyms
from tests.conftest import Place

FIXTURES = Path(__file__).parent / "fixtures" / "whatsapp"
TZ = "America/Sao_Paulo"  # UTC-3 all year since 2019: 10:00 local is 13:00 UTC
runner = CliRunner()
Row = dict[str, Any]
# (local time as written, kind, author, text, media filename, media type)
Expected = tuple[str, str, str | None, str | None, str | None, str | None]
LRM, RLM = "\u200e", "\u200f"
MARKS = ("\u200e", "\u200f", "\u202a", "\u202c", "\u2066", "\u2067", "\u2068", "\u2069")
JPEG = b"\xff\xd8\xff\xe0 tiny jpeg"
MP4 = b"\x00\x00\x00\x18ftypmp42 tiny video"
PDF = b"%PDF-1.4 tiny recipe"
OPUS = b"OggS tiny voice note"


# -- databases ------------------------------------------------------------------------------------
@pytest.fixture
def db(place: Place) -> Place:
    """This test's own empty database, on each engine, and the folder its media/ goes in."""
    return place


@pytest.fixture
def store(db: Place) -> Iterator[Storage]:
    with Storage.open(str(db)) as opened:
        yield opened


def _ingest(
    store: Storage,
    path: Path,
    *,
    tz: str = TZ,
    thread: str | None = None,
    date_order: DateOrder | None = None,
) -> IngestResult:
    return ingest_export(
        store, path, tz=tz, thread=thread, date_order=date_order, runs=RunStore(store)
    )


def _rows(store: Storage, table: str = "messages", order: str = "seq") -> list[Row]:
    rows: list[Row] = store.to_pyarrow(store.table(table).order_by(order)).to_pylist()
    return rows


def _count(store: Storage, table: str) -> int:
    return len(store.to_pyarrow(store.table(table)))


def _media_files(db: Place) -> set[Path]:
    """What holds the media of ``db``: its media folder's files, or, where the engine keeps
    media in the database, its parts (as digest/part), with no file beside it."""
    if db.url.backend.keeps_media_in_database:
        assert not db.files.exists()
        with Storage.open(str(db), read_only=True) as store:
            parts = store.to_pyarrow(store.table("media_parts").select("digest", "part"))
        return {Path(r["digest"], str(r["part"])) for r in parts.to_pylist()}
    folder = db.files / "media"
    return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()}


def _assert_nothing_written(db: Place) -> None:
    with Storage.open(str(db)) as store:
        assert _count(store, "messages") == 0
        assert _count(store, "documents") == 0
        assert _count(store, "runs") == 0
        assert _count(store, "media_parts") == 0
    assert not (db.files / "media").exists()


def _local(when: str, tz: str = TZ) -> datetime:
    return datetime.fromisoformat(when).replace(tzinfo=ZoneInfo(tz))


def _zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


# -- what each fixture reads as -------------------------------------------------------------------
def _text(when: str, author: str, text: str) -> Expected:
    return (when, "text", author, text, None, None)


def _system(when: str, text: str) -> Expected:
    return (when, "system", None, text, None, None)


def _media(when: str, author: str, name: str, kind: str, caption: str | None = None) -> Expected:
    return (when, "media", author, caption, name, kind)


def _omitted(
    when: str, author: str, kind: str | None = None, caption: str | None = None
) -> Expected:
    """Media the export left out: a media message with no file (its kind, when named)."""
    return (when, "media", author, caption, None, kind)


ENCRYPTED_EN = (
    "Messages and calls are end-to-end encrypted. No one outside of this chat, not even "
    "WhatsApp, can read or listen to them."
)
ENCRYPTED_PT = (
    "As mensagens e as chamadas são protegidas com a criptografia de ponta a ponta e ficam "
    "somente entre você e os participantes desta conversa."
)
VANISH_EN = (
    "Ana Sousa turned on disappearing messages. All new messages will disappear from this chat "
    "7 days after they're sent."
)
VANISH_PT = "Ana Sousa ativou as mensagens temporárias."
# The notices of the system_* fixtures, in order, but for the subject and the encryption text.
NOTICES_EN = [
    'Ana Sousa created group "Family"',
    "Ana Sousa added Bia Costa",
    "Ana Sousa changed the group description",
    "Ana Sousa changed this group's icon",
    "Caio Lima joined using this group's invite link",
    "Ana Sousa turned off disappearing messages.",
    "Ana Sousa removed Caio Lima",
    "Bia Costa left",
]
NOTICES_PT = [
    'Ana Sousa criou o grupo "Família"',
    "Ana Sousa adicionou Bia Costa",
    "Ana Sousa mudou a descrição do grupo",
    "Ana Sousa mudou a imagem deste grupo",
    "Caio Lima entrou usando o link de convite deste grupo",
    "Ana Sousa desativou as mensagens temporárias.",
    "Ana Sousa removeu Caio Lima",
    "Bia Costa saiu",
]


def _notices(
    created_at: str, encrypted: str, subject: str, vanish: str, notices: list[str], salt: str
) -> list[Expected]:
    """The twelve entries of a system_* fixture: eleven notices and Ana's message at 09:08."""
    created, added, description, icon, joined, vanish_off, removed, left = notices
    texts = [encrypted, created, added, subject, description, icon, joined, vanish, vanish_off]
    times = ["09:00", created_at, "09:01", "09:02", "09:03", "09:04", "09:05", "09:06", "09:07"]
    return [
        *(_system(f"2024-03-14 {t}", text) for t, text in zip(times, texts, strict=True)),
        _text("2024-03-14 09:08", "Ana Sousa", salt),
        _system("2024-03-14 09:09", removed),
        _system("2024-03-14 09:10", left),
    ]


EXPECTED: dict[str, tuple[str, bool, list[Expected]]] = {
    "android_24h_crlf.txt": (
        "dmy",
        False,
        [
            _text("2024-03-14 09:05", "Ana Sousa", "Bom dia!"),
            _text("2024-03-14 09:07", "Bia Costa", "Good morning"),
            _text("2024-03-14 21:30", "Caio Lima", "Dinner at 8?"),
            _text("2024-03-15 00:01", "Ana Sousa", "Too late, sorry"),
        ],
    ),
    "ios_24h.txt": (
        "dmy",
        False,
        [
            _text("2024-03-14 09:05:12", "Ana Sousa", "Bom dia!"),
            _text("2024-03-14 09:05:59", "Bia Costa", "Good morning"),
            _text("2024-03-14 23:59:01", "Caio Lima", "Night"),
        ],
    ),
    "android_dots.txt": (
        "dmy",
        False,
        [
            _text("2024-03-14 09:05", "Ana Sousa", "Bom dia!"),
            _text("2024-03-14 09:06", "Bia Costa", "Olá"),
            _text("2024-04-01 18:00", "Ana Sousa", "Abril"),
        ],
    ),
    "android_12h_mdy.txt": (
        "mdy",
        False,
        [
            _text("2024-03-14 00:05", "Ana Sousa", "Past midnight"),
            _text("2024-03-14 09:30", "Bia Costa", "Morning"),
            _text("2024-03-14 12:00", "Ana Sousa", "Noon"),
            _text("2024-03-14 13:15", "Caio Lima", "Lunch"),
            _text("2024-03-14 23:59", "Bia Costa", "Almost tomorrow"),
        ],
    ),
    "ios_12h.txt": (
        "mdy",
        False,
        [
            _text("2024-03-14 00:00:00", "Ana Sousa", "Midnight"),
            _text("2024-03-14 12:00:01", "Bia Costa", "Noon"),
            _text("2024-03-14 13:02:03", "Ana Sousa", "One in the afternoon"),
            _text("2024-03-14 23:59:59", "Caio Lima", "Last second"),
        ],
    ),
    "day_first_late.txt": (
        "dmy",
        False,
        [
            _text("2024-04-03 10:00", "Ana Sousa", "third of April"),
            _text("2024-04-05 11:00", "Bia Costa", "fifth of April"),
            _text("2024-04-13 12:00", "Ana Sousa", "thirteenth of April"),
        ],
    ),
    "month_first_late.txt": (
        "mdy",
        False,
        [
            _text("2024-04-03 10:00", "Ana Sousa", "April third"),
            _text("2024-04-05 11:00", "Bia Costa", "April fifth"),
            _text("2024-04-13 12:00", "Ana Sousa", "April thirteenth"),
        ],
    ),
    "date_order_guessed.txt": (
        "dmy",
        True,
        [
            _text("2024-01-05 10:00", "Ana Sousa", "5 January"),
            _text("2024-01-06 10:00", "Bia Costa", "6 January"),
            _text("2024-02-02 10:00", "Ana Sousa", "2 February"),
        ],
    ),
    "direction_marks.txt": (
        "dmy",
        False,
        [
            _text("2024-03-14 10:00", "Ana Sousa", "hello world"),
            _text("2024-03-14 10:01", "+351 912 345 678", "call me"),
            _text("2024-03-14 10:02", "Bia Costa", "\u05e9\u05dc\u05d5\u05dd means peace"),
            _text("2024-03-14 10:03", "Bia Costa", "plain"),
        ],
    ),
    "multiline.txt": (
        "dmy",
        False,
        [
            _text(
                "2024-03-14 10:00",
                "Ana Sousa",
                "Shopping list:\n- rice\n\n- beans\n14/03/2024 was a good day",
            ),
            _text("2024-03-14 10:05", "Bia Costa", "ok"),
            _text("2024-03-14 10:06", "Ana Sousa", "one line"),
        ],
    ),
    "attachments_ios.txt": (
        "dmy",
        False,
        [
            _media(
                "2024-03-14 10:00", "Ana Sousa", "00000003-PHOTO-2024-03-14-10-00-00.jpg", "image"
            ),
            _media(
                "2024-03-14 10:01", "Bia Costa", "00000004-AUDIO-2024-03-14-10-01-00.opus", "audio"
            ),
            _media("2024-03-14 10:02", "Ana Sousa", "00000005-Receita.pdf", "document"),
            _omitted("2024-03-14 10:03", "Bia Costa", "image"),
            _text("2024-03-14 10:04", "Ana Sousa", "nice"),
        ],
    ),
    "attachments_android_en.txt": (
        "dmy",
        False,
        [
            _media("2024-03-14 10:00", "Ana Sousa", "IMG-20240314-WA0001.jpg", "image"),
            _media(
                "2024-03-14 10:01", "Bia Costa", "VID-20240314-WA0002.mp4", "video", "Look at this"
            ),
            _omitted("2024-03-14 10:02", "Ana Sousa"),
            _media("2024-03-14 10:03", "Bia Costa", "Recipe.pdf", "document"),
        ],
    ),
    "attachments_android_pt.txt": (
        "dmy",
        False,
        [
            _media("2024-03-14 10:00", "Ana Sousa", "PTT-20240314-WA0003.opus", "audio"),
            _media(
                "2024-03-14 10:01", "Bia Costa", "IMG-20240314-WA0004.jpg", "image", "A praia hoje"
            ),
            _omitted("2024-03-14 10:02", "Ana Sousa"),
            _text("2024-03-14 10:03", "Bia Costa", "que linda (a praia)"),
        ],
    ),
    "system_android_en.txt": (
        "dmy",
        False,
        _notices(
            "09:00",
            ENCRYPTED_EN + " Tap to learn more.",
            'Ana Sousa changed the subject from "Family" to "Family: Lisbon"',
            VANISH_EN,
            NOTICES_EN,
            "I added salt",
        ),
    ),
    "system_android_pt.txt": (
        "dmy",
        False,
        _notices(
            "09:00",
            ENCRYPTED_PT + " Nem mesmo o WhatsApp pode ler ou ouvi-las. Toque para saber mais.",
            'Ana Sousa mudou o assunto de "Família" para "Família: Lisboa"',
            VANISH_PT + " As novas mensagens desaparecerão desta conversa 7 dias após o envio.",
            NOTICES_PT,
            "Eu adicionei sal",
        ),
    ),
    "system_ios_en.txt": (
        "dmy",
        False,
        _notices(
            "09:00:01",
            ENCRYPTED_EN,
            'Ana Sousa changed the subject to "Family: Lisbon"',
            VANISH_EN,
            NOTICES_EN,
            "I added salt",
        ),
    ),
    "system_ios_pt.txt": (
        "dmy",
        False,
        _notices(
            "09:00:01",
            ENCRYPTED_PT,
            'Ana Sousa mudou o nome do grupo para "Família: Lisboa"',
            VANISH_PT,
            NOTICES_PT,
            "Eu adicionei sal",
        ),
    ),
    "bom.txt": (
        "dmy",
        False,
        [
            _text("2024-03-14 10:00", "Ana Sousa", "first after the mark"),
            _text("2024-03-14 10:01", "Bia Costa", "second"),
        ],
    ),
    "family_short.txt": (
        "dmy",
        False,
        [
            _text("2024-03-14 18:00", "Ana Sousa", "Dinner on Sunday?"),
            _text("2024-03-14 18:01", "Bia Costa", "Yes!"),
            _text("2024-03-14 18:02", "Caio Lima", "ok"),
            _text("2024-03-14 18:02", "Caio Lima", "ok"),
            _text("2024-03-14 18:03", "Ana Sousa", "I bring dessert"),
        ],
    ),
}
FAMILY_LONG_EXTRA = [
    _text("2024-03-15 08:00", "Bia Costa", "What time?"),
    _text("2024-03-15 08:01", "Ana Sousa", "13:00"),
    _text("2024-03-15 08:02", "Caio Lima", "ok"),
]
EXPECTED["family_long.txt"] = ("dmy", False, [*EXPECTED["family_short.txt"][2], *FAMILY_LONG_EXTRA])
# Layouts of other phones: year-first dates, time-first iOS headers, Arabic commas and
# direction marks, and the ways 12-hour clocks are written.
EXPECTED.update(
    {
        "year_first_android.txt": (
            "ymd",
            False,
            [
                _text("2019-01-30 20:49", "Ana Sousa", "Olá a todos"),
                _text("2019-01-30 21:02", "Bia Costa", "Boa noite\ncontinua na linha de baixo"),
                _text("2019-02-01 08:15", "Caio Lima", "Bom dia"),
            ],
        ),
        "year_first_dashes.txt": (
            "ymd",
            False,
            [
                _text("2019-10-20 10:16", "Ana Sousa", "Hola"),
                _text("2019-10-20 10:17", "Bia Costa", "Hey"),
                _text("2019-10-21 23:59", "Ana Sousa", "Late"),
            ],
        ),
        "year_first_ios.txt": (
            "ymd",
            False,
            [
                _text("2019-04-16 02:09", "Ana Sousa", "Up early"),
                _text("2019-04-16 02:10", "Bia Costa", "Too early"),
                _text("2019-04-17 14:00", "Ana Sousa", "Lunch?"),
            ],
        ),
        "year_first_12h.txt": (
            "ymd",
            False,
            [
                _text("2024-12-01 22:04", "Ana Sousa", "Night"),
                _text("2024-12-02 00:30", "Bia Costa", "Just after midnight"),
                _text("2024-12-02 12:05", "Ana Sousa", "Noon"),
            ],
        ),
        "ios_time_first.txt": (
            "mdy",
            False,
            [
                _text("2022-03-18 14:56:01", "Ana Sousa", "Xin chào"),
                _text("2022-03-18 14:57:30", "Bia Costa", "Chào bạn"),
                _text("2022-03-19 09:00:00", "Ana Sousa", "Sáng rồi"),
            ],
        ),
        "ios_arabic.txt": (
            "dmy",
            False,
            [
                _text("2022-03-18 14:56:01", "Ana Sousa", "مرحبا"),
                _text("2022-03-18 14:57:02", "Bia Costa", "أهلا"),
                _text("2022-03-19 08:00:00", "Ana Sousa", "صباح الخير"),
            ],
        ),
        "spanish_12h.txt": (
            "dmy",
            False,
            [
                _text("2024-12-01 00:08", "Ana Sousa", "Medianoche"),
                _text("2024-12-01 12:30", "Bia Costa", "Mediodía"),
                _text("2024-12-13 23:59", "Ana Sousa", "Casi medianoche"),
            ],
        ),
        # Every date is 1/1/21: day-first and month-first give the same days.
        "same_either_way.txt": (
            "dmy",
            False,
            [
                _text("2021-01-01 10:00", "Ana Sousa", "Happy new year"),
                _text("2021-01-01 10:01", "Bia Costa", "You too"),
                _text("2021-01-01 09:30", "Ana Sousa", "Clock went back?"),
            ],
        ),
        "markers_12h.txt": (
            "dmy",
            False,
            [
                _text("2024-12-13 10:04", "Ana Sousa", "Guten Morgen"),
                _text("2024-12-13 22:04", "Bia Costa", "Guten Abend"),
                _text("2024-12-14 09:15", "Ana Sousa", "صباح"),
                _text("2024-12-14 21:15", "Bia Costa", "مساء"),
                _text("2024-12-15 10:00", "Ana Sousa", "早上好"),
                _text("2024-12-15 22:00", "Bia Costa", "晚上好"),
                _text("2024-12-16 07:30", "Ana Sousa", "좋은 아침"),
                _text("2024-12-16 19:30", "Bia Costa", "좋은 저녁"),
            ],
        ),
    }
)


def _seen(row: Row, tz: str = TZ) -> Expected:
    """A stored row as the fixture wrote it: local time in ``tz``, then the parsed fields."""
    local = row["ts"].astimezone(ZoneInfo(tz)).replace(tzinfo=None)
    written = local.isoformat(sep=" ", timespec="seconds")
    return (
        written,
        row["kind"],
        row["author_raw"],
        row["text"],
        row["media_filename"],
        row["media_type"],
    )


def _normal(expected: Expected) -> Expected:
    """The expected row with its time written as ``_seen`` writes it (seconds always shown)."""
    when, kind, author, text, name, media = expected
    written = datetime.fromisoformat(when).isoformat(sep=" ", timespec="seconds")
    return (written, kind, author, text, name, media)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_fixture_reads_as_exactly_these_rows(store: Storage, name: str) -> None:
    order, guessed, expected = EXPECTED[name]
    result = _ingest(store, FIXTURES / name)
    rows = _rows(store)
    thread_id = thread_slug(Path(name).stem)
    assert result.thread_id == thread_id
    assert [_seen(r) for r in rows] == [_normal(e) for e in expected]
    assert [r["seq"] for r in rows] == list(range(len(expected)))
    assert (result.date_order, result.date_order_guessed) == (order, guessed)
    for row, (when, *_) in zip(rows, expected, strict=True):
        assert row["ts"] == _local(when)  # the same instant: local time in --tz
        assert row["ts"].utcoffset() == timedelta(0)
        assert row["source"] == "whatsapp"
        assert row["thread_id"] == thread_id
        who = row["author_raw"]
        keyed = None if who is None else pseudonyms(store).author("whatsapp", thread_id, who)
        assert row["author_uuid"] == keyed
        omitted = row["kind"] == "media" and row["media_filename"] is None
        assert row["media_omitted"] is omitted
        assert row["attrs"] is None
        for field in ("author_raw", "text"):
            assert not any(m in (row[field] or "") for m in (*MARKS, "\u202f", "\ufeff"))
    summary = result.summary()
    assert summary == {
        "thread_id": thread_id,
        "messages": len(expected),
        "new": len(expected),
        "reread": 0,
        "duplicates": 0,
        "authors": len({e[2] for e in expected if e[2] is not None}),
        "media": sum(e[1] == "media" for e in expected),
        "system": sum(e[1] == "system" for e in expected),
    }


def test_the_fixtures_hold_the_bytes_phones_write() -> None:
    """Guard the quirks themselves, so an editor that 'cleans' a fixture fails this test."""
    assert _fixture("android_24h_crlf.txt").count(b"\r\n") == 4
    assert b"\r" not in _fixture("android_dots.txt")
    assert _fixture("bom.txt").startswith(b"\xef\xbb\xbf14/03/2024")
    assert _fixture("ios_12h.txt").count("\u202fAM]".encode()) == 1
    assert _fixture("ios_12h.txt").count("\u202fPM]".encode()) == 3
    assert "\u202fPM - ".encode() in _fixture("android_12h_mdy.txt")
    assert b" AM - " in _fixture("android_12h_mdy.txt")
    marks = _fixture("direction_marks.txt").decode()
    assert set(MARKS) <= set(marks)
    assert marks.startswith(LRM + "14/03/2024")
    assert f"Bia{RLM} Costa".encode() in _fixture("direction_marks.txt")
    assert _fixture("system_ios_en.txt").count(f"Family: {LRM}".encode()) == 11
    assert _fixture("system_ios_pt.txt").count(f"Família: {LRM}".encode()) == 11
    assert _fixture("attachments_ios.txt").count(f": {LRM}<attached: ".encode()) == 3
    short = _fixture("family_short.txt")
    assert _fixture("family_long.txt").startswith(short)
    for path in FIXTURES.glob("*.txt"):
        path.read_bytes().decode("utf-8")  # every fixture is UTF-8


# -- date order -----------------------------------------------------------------------------------
def test_an_ambiguous_file_asks_for_date_order_and_reads_with_it(
    new_place: Callable[[], Place],
) -> None:
    path = FIXTURES / "ambiguous_dates.txt"
    first = new_place()
    wanted = "--date-order dmy or --date-order mdy"
    with Storage.open(str(first)) as store, pytest.raises(ExportFormatError, match=wanted):
        _ingest(store, path)
    _assert_nothing_written(first)
    with Storage.open(str(first)) as store:
        result = _ingest(store, path, date_order="mdy")
        assert (result.date_order, result.date_order_guessed) == ("mdy", False)
        assert [_seen(r)[0] for r in _rows(store)] == ["2024-03-04 10:00:00", "2024-03-05 10:00:00"]
    second = new_place()
    with Storage.open(str(second)) as store:
        _ingest(store, path, date_order="dmy")
        assert [_seen(r)[0] for r in _rows(store)] == ["2024-04-03 10:00:00", "2024-05-03 10:00:00"]


def test_a_date_order_the_file_contradicts_is_refused(db: Place) -> None:
    with Storage.open(str(db)) as store:
        with pytest.raises(ExportFormatError, match="cannot be read with --date-order mdy"):
            _ingest(store, FIXTURES / "day_first_late.txt", date_order="mdy")
        with pytest.raises(ConfigurationError, match="dmy or mdy"):
            # Year-first is a layout's own order, not one a file can leave open.
            _ingest(store, FIXTURES / "day_first_late.txt", date_order="ymd")
    _assert_nothing_written(db)


def test_the_cli_reads_an_ambiguous_file_with_date_order(db: Place) -> None:
    path = str(FIXTURES / "ambiguous_dates.txt")
    code, out, err = _cli("ingest", path, "--tz", TZ, "--db", str(db), "--json")
    assert code == 2
    assert err.count("\n") == 1
    assert "--date-order" in err
    assert json.loads(out)["error"]["type"] == "ExportFormatError"
    _assert_nothing_written(db)
    code, out, err = _cli(
        "ingest", path, "--tz", TZ, "--db", str(db), "--date-order", "MDY", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["new"] == 2
    code, _, err = _cli("ingest", path, "--db", str(db), "--date-order", "ymd")
    assert code == 2
    assert "--date-order must be dmy or mdy" in err


# -- time zones -----------------------------------------------------------------------------------
def test_tz_makes_local_times_instants(tmp_path: Path, new_place: Callable[[], Place]) -> None:
    path = tmp_path / "WhatsApp Chat with Family.txt"
    path.write_text("14/03/2024, 10:00 - Ana Sousa: ten o'clock\n", encoding="utf-8")
    instants = {}
    for tz in ("America/Sao_Paulo", "Europe/Lisbon", "Asia/Tokyo", "UTC"):
        copy = new_place()
        with Storage.open(str(copy)) as store:
            assert _ingest(store, path, tz=tz).summary()["new"] == 1
            instants[tz] = _rows(store)[0]["ts"]
    assert instants == {
        "America/Sao_Paulo": datetime(2024, 3, 14, 13, 0, tzinfo=UTC),
        "Europe/Lisbon": datetime(2024, 3, 14, 10, 0, tzinfo=UTC),
        "Asia/Tokyo": datetime(2024, 3, 14, 1, 0, tzinfo=UTC),
        "UTC": datetime(2024, 3, 14, 10, 0, tzinfo=UTC),
    }


def test_without_tz_times_are_local_to_the_machines_zone(
    tmp_path: Path, new_place: Callable[[], Place]
) -> None:
    """`egregora ingest` without --tz reads the times in $TZ, and says which zone it used."""
    path = tmp_path / "WhatsApp Chat with Family.txt"
    path.write_text("14/03/2024, 10:00 - Ana Sousa: ten o'clock\n", encoding="utf-8")
    stored = {}
    for machine in ("America/Sao_Paulo", ":Asia/Tokyo"):  # a leading ':' is POSIX's own form
        name = machine.lstrip(":")
        db = new_place()
        result = runner.invoke(app, ["ingest", str(path), "--db", str(db)], env={"TZ": machine})
        assert result.exit_code == 0, result.output
        assert " ".join(result.stdout.split()).endswith(f"times in {name}")
        with Storage.open(str(db)) as store:
            (row,) = _rows(store)
            (run,) = RunStore(store).list()
        assert run.attrs["config"]["tz"] == name
        assert row["ts"] == _local("2024-03-14 10:00", name)
        stored[name] = row["ts"]
    assert stored == {
        "America/Sao_Paulo": datetime(2024, 3, 14, 13, 0, tzinfo=UTC),
        "Asia/Tokyo": datetime(2024, 3, 14, 1, 0, tzinfo=UTC),
    }


def test_daylight_saving_gaps_move_forward_and_repeats_take_the_earlier(
    store: Storage, tmp_path: Path
) -> None:
    path = tmp_path / "dst.txt"
    path.write_text(
        "31/03/2024, 00:59 - Ana Sousa: before the gap\n"
        "31/03/2024, 01:30 - Ana Sousa: in the gap\n"
        "27/10/2024, 01:30 - Ana Sousa: in the repeated hour\n"
        "27/10/2024, 02:30 - Ana Sousa: after it\n",
        encoding="utf-8",
    )
    _ingest(store, path, tz="Europe/Lisbon")
    assert [r["ts"] for r in _rows(store)] == [
        datetime(2024, 3, 31, 0, 59, tzinfo=UTC),
        datetime(2024, 3, 31, 1, 0, tzinfo=UTC),  # 02:00 summer time, the end of the gap
        datetime(2024, 10, 27, 0, 30, tzinfo=UTC),  # 01:30 summer time, the first of the two
        datetime(2024, 10, 27, 2, 30, tzinfo=UTC),
    ]


def test_an_unknown_zone_is_a_configuration_error_and_writes_nothing(db: Place) -> None:
    wanted = "unknown time zone 'Mars/Olympus'"
    with Storage.open(str(db)) as store, pytest.raises(ConfigurationError, match=wanted):
        _ingest(store, FIXTURES / "family_short.txt", tz="Mars/Olympus")
    _assert_nothing_written(db)
    args = ("ingest", str(FIXTURES / "family_short.txt"), "--db", str(db))
    code, out, err = _cli(*args, "--tz", "Europe/Atlantis")
    assert (code, out) == (2, "")
    assert err.startswith("error: unknown time zone 'Europe/Atlantis'")
    assert err.count("\n") == 1
    _assert_nothing_written(db)


# -- identities: event ids, seq, authors ----------------------------------------------------------
def test_event_ids_are_deterministic_and_seq_follows_the_file(
    new_place: Callable[[], Place],
) -> None:
    seen = []
    for _ in range(2):
        path = new_place()
        with Storage.open(str(path)) as store:
            _ingest(store, FIXTURES / "system_android_en.txt", thread="Family")
            seen.append([(r["event_id"], r["seq"]) for r in _rows(store)])
    assert seen[0] == seen[1]
    ids = [event for event, _ in seen[0]]
    assert len(set(ids)) == len(ids) == 12
    assert [seq for _, seq in seen[0]] == list(range(12))


def test_authors_are_one_pseudonym_per_name_and_thread(store: Storage) -> None:
    _ingest(store, FIXTURES / "family_short.txt", thread="Family")
    _ingest(store, FIXTURES / "direction_marks.txt", thread="Family")
    _ingest(store, FIXTURES / "android_24h_crlf.txt", thread="Work")
    uuids: dict[tuple[str, str], set[str]] = {}
    for row in _rows(store, order="ts"):
        uuids.setdefault((row["thread_id"], row["author_raw"]), set()).add(row["author_uuid"])
    assert all(len(found) == 1 for found in uuids.values())
    family = {name: found.pop() for (thread, name), found in uuids.items() if thread == "family"}
    work = {name: found.pop() for (thread, name), found in uuids.items() if thread == "work"}
    keyed = pseudonyms(store)
    assert family == {n: keyed.author("whatsapp", "family", n) for n in family}
    assert set(family) == {"Ana Sousa", "Bia Costa", "Caio Lima", "+351 912 345 678"}
    names = ("Ana Sousa", "Bia Costa", "Caio Lima")
    assert work == {n: keyed.author("whatsapp", "work", n) for n in names}
    assert not set(family.values()) & set(work.values())
    assert len(set(family.values())) == len(family)


def test_thread_comes_from_the_export_name_unless_given(tmp_path: Path, store: Storage) -> None:
    body = _fixture("family_short.txt")
    english = tmp_path / "WhatsApp Chat with Family.txt"
    english.write_bytes(body)
    portuguese = tmp_path / "Conversa do WhatsApp com Amigos do Peito.txt"
    portuguese.write_bytes(body)
    assert _ingest(store, english).thread_id == "family"
    assert _ingest(store, portuguese).thread_id == "amigos-do-peito"
    assert _ingest(store, english, thread="  Trip to Porto! ").thread_id == "trip-to-porto"
    threads = [r["thread_id"] for r in _rows(store, order="event_id")]
    counts = {t: threads.count(t) for t in set(threads)}
    assert counts == {"family": 5, "amigos-do-peito": 5, "trip-to-porto": 5}


# -- idempotence ----------------------------------------------------------------------------------
def test_ingesting_the_same_export_again_adds_nothing(store: Storage) -> None:
    path = FIXTURES / "system_ios_pt.txt"
    first = _ingest(store, path)
    before = _rows(store)
    again = _ingest(store, path)
    assert (first.new, first.duplicates) == (12, 0)
    assert again.summary() == {**first.summary(), "new": 0, "duplicates": 12}
    assert _rows(store) == before


def test_a_longer_export_appends_only_its_new_messages(store: Storage) -> None:
    short = _ingest(store, FIXTURES / "family_short.txt", thread="Family")
    stored = _rows(store)
    long = _ingest(store, FIXTURES / "family_long.txt", thread="Family")
    assert (short.new, short.duplicates) == (5, 0)
    assert (long.messages, long.new, long.duplicates) == (8, 3, 5)
    rows = _rows(store)
    assert rows[:5] == stored
    assert [r["seq"] for r in rows] == list(range(8))
    assert [_seen(r) for r in rows] == [_normal(e) for e in EXPECTED["family_long.txt"][2]]
    oks = [r["event_id"] for r in rows if r["text"] == "ok"]
    assert len(set(oks)) == 3  # "ok" twice at 18:02 and once the next day: three messages
    assert {r["created_by_run"] for r in rows[5:]}.isdisjoint({r["created_by_run"] for r in stored})


def test_a_shorter_export_after_a_longer_one_adds_nothing(store: Storage) -> None:
    long = _ingest(store, FIXTURES / "family_long.txt", thread="Family")
    before = _rows(store)
    short = _ingest(store, FIXTURES / "family_short.txt", thread="Family")
    assert (long.new, short.messages, short.new, short.duplicates) == (8, 5, 0, 5)
    assert _rows(store) == before


def test_identical_messages_in_one_minute_are_distinct_rows(store: Storage, tmp_path: Path) -> None:
    path = tmp_path / "oks.txt"
    path.write_text(
        "14/03/2024, 18:02 - Caio Lima: ok\n"
        "14/03/2024, 18:02 - Caio Lima: ok\n"
        "14/03/2024, 18:02 - Caio Lima: ok\n"
        "14/03/2024, 18:02 - Bia Costa: ok\n",
        encoding="utf-8",
    )
    assert _ingest(store, path).summary()["new"] == 4
    assert len({r["event_id"] for r in _rows(store)}) == 4
    assert _ingest(store, path).summary()["new"] == 0
    assert _count(store, "messages") == 4


def test_event_ids_keep_the_formula_stored_databases_hold(store: Storage, tmp_path: Path) -> None:
    """Ids already stored must stay reachable: the key and hash are fixed, repeats numbered."""
    path = tmp_path / "oks.txt"
    path.write_text(
        "14/03/2024, 18:02 - Caio Lima: ok\n"
        "14/03/2024, 18:02 - Caio Lima: ok\n"
        "14/03/2024, 18:03 - Caio Lima: <Media omitted>\n"
        "14/03/2024, 18:02 - Caio Lima: ok\n"
        "14/03/2024, 18:04 - Bia Costa added Caio Lima\n",
        encoding="utf-8",
    )
    _ingest(store, path, thread="Oks")

    def expected(stamp: str, author: str, text: str, nth: int) -> str:
        key = "\x1f".join(
            ["whatsapp", "oks", f"2024-03-14T{stamp}:00", author, text, "-", str(nth)]
        )
        return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()

    assert [r["event_id"] for r in _rows(store, order="seq")] == [
        expected("18:02", "+Caio Lima", "+ok", 0),
        expected("18:02", "+Caio Lima", "+ok", 1),
        expected("18:03", "+Caio Lima", "-", 0),
        expected("18:02", "+Caio Lima", "+ok", 2),
        expected("18:04", "-", "+Bia Costa added Caio Lima", 0),
    ]


# -- runs -----------------------------------------------------------------------------------------
def test_an_ingest_is_a_run_and_its_rows_name_it(store: Storage) -> None:
    _ingest(store, FIXTURES / "multiline.txt")
    (run,) = _rows(store, "runs", "started_at")
    assert (run["stage"], run["status"], run["rows_in"], run["rows_out"]) == (
        "ingest",
        "succeeded",
        3,
        3,
    )
    assert json.loads(run["attrs"])["config"] == {
        "date_order": "dmy",
        "thread": "multiline",
        "tz": TZ,
    }
    assert {r["created_by_run"] for r in _rows(store)} == {run["run_id"]}


# -- zip exports and media ------------------------------------------------------------------------
def _android_zip(folder: Path) -> Path:
    return _zip(
        folder / "WhatsApp Chat with Family.zip",
        {
            "WhatsApp Chat with Family.txt": _fixture("attachments_android_en.txt"),
            "IMG-20240314-WA0001.jpg": JPEG,
            "VID-20240314-WA0002.mp4": MP4,
            "Recipe.pdf": PDF,
            "__MACOSX/._IMG-20240314-WA0001.jpg": b"AppleDouble",
        },
    )


def test_a_zip_export_stores_messages_and_media_documents(tmp_path: Path, db: Place) -> None:
    with Storage.open(str(db)) as store:
        result = _ingest(store, _android_zip(tmp_path))
        rows = _rows(store)
        documents = _rows(store, "documents", "created_at")
        label = pseudonyms(store).thread("whatsapp", "family")
        read = {d["filename"]: MediaFiles.of(store).read(d) for d in documents}
        in_database = store.engine.keeps_media_in_database
    assert (result.thread_id, result.media_files, result.media_files_new) == ("family", 3, 3)
    assert [_seen(r) for r in rows] == [
        _normal(e) for e in EXPECTED["attachments_android_en.txt"][2]
    ]
    files = {"IMG-20240314-WA0001.jpg": JPEG, "VID-20240314-WA0002.mp4": MP4, "Recipe.pdf": PDF}
    sent = {"IMG-20240314-WA0001.jpg": 0, "VID-20240314-WA0002.mp4": 1, "Recipe.pdf": 3}
    kinds = {"IMG-20240314-WA0001.jpg": "image", "VID-20240314-WA0002.mp4": "video"}
    mimes = {".jpg": "image/jpeg", ".mp4": "video/mp4", ".pdf": "application/pdf"}
    assert [d["filename"] for d in documents] == list(files)
    for doc in documents:
        name = doc["filename"]
        content = files[name]
        digest = hashlib.sha256(content).hexdigest()
        suffix = Path(name).suffix
        stored_at = f"media/{digest[:2]}/{digest}{suffix}"
        assert doc["doc_type"] == "media"
        assert doc["title"] == name
        assert doc["media_type"] == kinds.get(name, "document")
        assert doc["mime_type"] == mimes[suffix]
        assert doc["source_checksum"] == digest
        assert doc["created_at"] == rows[sent[name]]["ts"]
        assert doc["created_by_run"] == rows[0]["created_by_run"] is not None
        where = {"stored": "database"} if in_database else {"path": stored_at}
        assert json.loads(doc["extensions"]) == {
            **where,
            "size_bytes": len(content),
            "thread": label,  # documents name a thread by its keyed label, not its name
        }
        assert read[name] == content
        if not in_database:
            assert (db.files / stored_at).read_bytes() == content
    assert len(_media_files(db)) == 3  # no drafts left, no AppleDouble file


def test_an_ios_zip_links_its_attachments(tmp_path: Path, db: Place) -> None:
    path = _zip(
        tmp_path / "WhatsApp Chat - Family.zip",
        {
            "_chat.txt": _fixture("attachments_ios.txt"),
            "00000003-PHOTO-2024-03-14-10-00-00.jpg": JPEG,
            "00000004-AUDIO-2024-03-14-10-01-00.opus": OPUS,
            "00000005-Receita.pdf": PDF,
        },
    )
    with Storage.open(str(db)) as store:
        result = _ingest(store, path, thread="Family")
        rows = _rows(store)
        documents = _rows(store, "documents", "created_at")
    assert result.summary() == {
        "thread_id": "family",
        "messages": 5,
        "new": 5,
        "reread": 0,
        "duplicates": 0,
        "authors": 2,
        "media": 4,  # three attached, one the export left out
        "system": 0,
    }
    linked = [r["media_filename"] for r in rows if r["kind"] == "media" and r["media_filename"]]
    assert [d["filename"] for d in documents] == linked
    assert [d["media_type"] for d in documents] == ["image", "audio", "document"]
    assert {d["source_checksum"] for d in documents} == {
        hashlib.sha256(b).hexdigest() for b in (JPEG, OPUS, PDF)
    }
    assert len(_media_files(db)) == 3


def test_ingesting_a_zip_again_adds_no_rows_documents_or_files(tmp_path: Path, db: Place) -> None:
    path = _android_zip(tmp_path)
    with Storage.open(str(db)) as store:
        first = _ingest(store, path)
        files = _media_files(db)
        documents = _rows(store, "documents", "id")
        messages = _rows(store)
        again = _ingest(store, path)
        assert (again.new, again.duplicates, again.media_files_new) == (0, 4, 0)
        assert again.summary() == {**first.summary(), "new": 0, "duplicates": 4}
        assert _rows(store, "documents", "id") == documents
        assert _rows(store) == messages
    assert _media_files(db) == files


def test_the_same_bytes_under_two_names_are_one_file(tmp_path: Path, db: Place) -> None:
    path = _zip(
        tmp_path / "WhatsApp Chat with Family.zip",
        {
            "WhatsApp Chat with Family.txt": _fixture("attachments_android_en.txt"),
            "IMG-20240314-WA0001.jpg": JPEG,
            "Recipe.pdf": JPEG,
        },
    )
    with Storage.open(str(db)) as store:
        _ingest(store, path)
        documents = _rows(store, "documents", "id")
    assert len(documents) == 2
    assert len({d["source_checksum"] for d in documents}) == 1
    # A folder holds .jpg and .pdf (one digest, two extensions); a database, one digest's part.
    assert len(_media_files(db)) == (1 if db.url.backend.keeps_media_in_database else 2)


# -- the command line -----------------------------------------------------------------------------
def test_the_cli_prints_the_summary_and_is_idempotent(tmp_path: Path, db: Place) -> None:
    path = str(_android_zip(tmp_path))
    code, out, err = _cli("ingest", path, "--tz", TZ, "--db", str(db), "--json")
    assert code == 0, err
    first = json.loads(out)
    assert first == {
        "ok": True,
        "thread_id": "family",
        "messages": 4,
        "new": 4,
        "reread": 0,
        "duplicates": 0,
        "authors": 2,
        "media": 4,  # three attached, one the export left out
        "system": 0,
    }
    keys = ["ok", "thread_id", "messages", "new", "reread", "duplicates"]
    keys += ["authors", "media", "system"]
    assert list(first) == keys
    code, out, _ = _cli("ingest", path, "--tz", TZ, "--db", str(db), "--json", "--thread", "Fam")
    assert json.loads(out) == {**first, "thread_id": "fam"}
    code, out, _ = _cli("ingest", path, "--tz", TZ, "--db", str(db), "--json")
    assert (code, json.loads(out)) == (0, {**first, "new": 0, "duplicates": 4})
    code, out, _ = _cli("ingest", path, "--tz", TZ, "--db", str(db))
    assert code == 0
    assert "family: 4 messages in the export, 0 new, 4 already stored" in " ".join(out.split())
    with Storage.open(str(db)) as store:
        assert _count(store, "messages") == 8
        assert _count(store, "documents") == 6
        assert _count(store, "runs") == 4


def test_the_cli_reads_system_notices(db: Place) -> None:
    path = str(FIXTURES / "system_android_pt.txt")
    code, out, err = _cli("ingest", path, "--tz", TZ, "--db", str(db), "--json")
    assert code == 0, err
    assert json.loads(out) == {
        "ok": True,
        "thread_id": "system-android-pt",
        "messages": 12,
        "new": 12,
        "reread": 0,
        "duplicates": 0,
        "authors": 1,
        "media": 0,
        "system": 11,
    }


# -- bad input: a clear error, and nothing written ------------------------------------------------
CHAT = "WhatsApp Chat with Family.txt"
Maker = Callable[[Path, pytest.MonkeyPatch], Path]


def _absolute(tmp: Path, _: pytest.MonkeyPatch) -> Path:
    return _zip(tmp / "abs.zip", {CHAT: _fixture("family_short.txt"), "/tmp/evil.jpg": JPEG})


def _drive(tmp: Path, _: pytest.MonkeyPatch) -> Path:
    return _zip(tmp / "drive.zip", {CHAT: _fixture("family_short.txt"), "C:/evil.jpg": JPEG})


def _dotdot(tmp: Path, _: pytest.MonkeyPatch) -> Path:
    return _zip(tmp / "up.zip", {CHAT: _fixture("family_short.txt"), "../evil.jpg": JPEG})


def _dotdot_inside(tmp: Path, _: pytest.MonkeyPatch) -> Path:
    return _zip(
        tmp / "up2.zip", {CHAT: _fixture("family_short.txt"), "media/../../../evil.jpg": JPEG}
    )


def _bomb(tmp: Path, _: pytest.MonkeyPatch) -> Path:
    # 8 MiB of zeros deflate to ~8 KiB: a ratio near 1000, far above the 200 allowed.
    return _zip(tmp / "bomb.zip", {CHAT: _fixture("family_short.txt"), "x.jpg": bytes(8 << 20)})


def _too_large(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(archive, "MAX_EXPANDED", 1024)
    # Stored, not compressed: no ratio to complain about, only the total size (>1 KiB).
    return _zip(
        tmp / "large.zip",
        {CHAT: _fixture("family_short.txt"), "a.jpg": JPEG * 100},
        zipfile.ZIP_STORED,
    )


def _no_chat(tmp: Path, _: pytest.MonkeyPatch) -> Path:
    return _zip(tmp / "media-only.zip", {"IMG-20240314-WA0001.jpg": JPEG, "Recipe.pdf": PDF})


def _two_chats(tmp: Path, _: pytest.MonkeyPatch) -> Path:
    body = _fixture("family_short.txt")
    return _zip(tmp / "two.zip", {CHAT: body, "WhatsApp Chat with Work.txt": body})


def _latin1(tmp: Path, _: pytest.MonkeyPatch) -> Path:
    path = tmp / "latin1.txt"
    path.write_bytes("14/03/2024, 10:00 - Ana Sousa: Açúcar e café\n".encode("latin-1"))
    return path


def _latin1_zip(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    text = _latin1(tmp, monkeypatch).read_bytes()
    return _zip(tmp / "latin1.zip", {CHAT: text, "IMG-20240314-WA0001.jpg": JPEG})


def _readme(tmp: Path, _: pytest.MonkeyPatch) -> Path:
    return FIXTURES / "not_an_export.txt"


def _empty(tmp: Path, _: pytest.MonkeyPatch) -> Path:
    path = tmp / "empty.txt"
    path.write_bytes(b"")
    return path


def _blank(tmp: Path, _: pytest.MonkeyPatch) -> Path:
    path = tmp / "blank.txt"
    path.write_bytes(b"\xef\xbb\xbf\r\n  \r\n")
    return path


def _empty_chat_in_zip(tmp: Path, _: pytest.MonkeyPatch) -> Path:
    return _zip(tmp / "empty-chat.zip", {"_chat.txt": b"", "IMG-20240314-WA0001.jpg": JPEG})


def _missing(tmp: Path, _: pytest.MonkeyPatch) -> Path:
    return tmp / "nowhere.zip"


def _folder(tmp: Path, _: pytest.MonkeyPatch) -> Path:
    return tmp


def _both_orders(tmp: Path, _: pytest.MonkeyPatch) -> Path:
    path = tmp / "mixed.txt"
    path.write_text(
        "13/01/2024, 10:00 - Ana Sousa: day first\n01/13/2024, 10:00 - Ana Sousa: month first\n",
        encoding="utf-8",
    )
    return path


def _impossible(tmp: Path, _: pytest.MonkeyPatch) -> Path:
    path = tmp / "impossible.txt"
    path.write_text("31/02/2024, 10:00 - Ana Sousa: no such day\n", encoding="utf-8")
    return path


def _bad_hour(tmp: Path, _: pytest.MonkeyPatch) -> Path:
    path = tmp / "hour.txt"
    path.write_text("3/14/24, 13:00 PM - Ana Sousa: thirteen PM\n", encoding="utf-8")
    return path


def _zip_with_bad_media_later(tmp: Path, _: pytest.MonkeyPatch) -> Path:
    # A valid chat before an unsafe entry: the check covers every entry before writing any.
    return _zip(
        tmp / "late.zip",
        {CHAT: _fixture("attachments_android_en.txt"), "IMG-20240314-WA0001.jpg": JPEG}
        | {"Recipe.pdf": PDF, "x/../../Recipe.pdf": PDF},
    )


BAD: dict[str, tuple[Maker, type[EgregoraError], tuple[str, ...]]] = {
    "absolute path": (_absolute, UnsafeArchiveError, ("'/tmp/evil.jpg'", "absolute path")),
    "drive letter": (_drive, UnsafeArchiveError, ("'C:/evil.jpg'", "outside the archive")),
    "dot-dot": (_dotdot, UnsafeArchiveError, ("'../evil.jpg'", "'..'")),
    "dot-dot inside": (_dotdot_inside, UnsafeArchiveError, ("media/../../../evil.jpg",)),
    "dot-dot after good entries": (_zip_with_bad_media_later, UnsafeArchiveError, ("'..'",)),
    "zip bomb": (_bomb, UnsafeArchiveError, ("x.jpg expands", "zip bomb")),
    "expanded size": (_too_large, UnsafeArchiveError, ("more than the 1024 allowed",)),
    "no chat text": (_no_chat, ExportFileError, ("no chat text", "Export chat")),
    "two chat texts": (_two_chats, ExportFileError, ("several chat texts", "one export")),
    "latin-1 text": (_latin1, ExportFileError, ("not UTF-8", "0xe7", "iconv")),
    "latin-1 in zip": (_latin1_zip, ExportFileError, ("not UTF-8", "iconv")),
    "not an export": (_readme, ExportFormatError, ("not a WhatsApp chat export", "line 1")),
    "empty file": (_empty, ExportFormatError, ("is empty",)),
    "blank file": (_blank, ExportFormatError, ("is empty",)),
    "empty chat in zip": (_empty_chat_in_zip, ExportFormatError, ("empty-chat.zip is empty",)),
    "missing path": (_missing, ExportFileError, ("does not exist",)),
    "a folder": (_folder, ExportFileError, ("is a folder",)),
    "both date orders": (_both_orders, ExportFormatError, ("mixes day-first and month-first",)),
    "impossible date": (_impossible, ExportFormatError, ("impossible date", "31/02/2024")),
    "13 PM": (_bad_hour, ExportFormatError, ("not an hour of a 12-hour clock",)),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_a_clear_error_and_writes_nothing(
    case: str, tmp_path: Path, db: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    make, error, words = BAD[case]
    exports = tmp_path / "exports"
    exports.mkdir()
    path = make(exports, monkeypatch)
    with Storage.open(str(db)) as store, pytest.raises(error) as caught:
        _ingest(store, path)
    message = str(caught.value)
    assert type(caught.value).exit_code == 2
    for word in words:
        assert word in message
    assert "\n" not in message
    _assert_nothing_written(db)


@pytest.mark.parametrize("case", ["absolute path", "zip bomb", "latin-1 text", "not an export"])
def test_the_cli_reports_bad_input_on_one_line(
    case: str, tmp_path: Path, db: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    make, error, words = BAD[case]
    path = make(tmp_path, monkeypatch)
    code, out, err = _cli("ingest", str(path), "--tz", TZ, "--db", str(db))
    assert (code, out) == (2, "")
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert all(word in err for word in words)
    _assert_nothing_written(db)
    code, out, _ = _cli("ingest", str(path), "--tz", TZ, "--db", str(db), "--json")
    assert code == 2
    assert json.loads(out)["error"]["type"] == error.__name__
    _assert_nothing_written(db)


def test_a_failed_ingest_leaves_earlier_rows_as_they_were(
    tmp_path: Path, db: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Storage.open(str(db)) as store:
        _ingest(store, FIXTURES / "family_short.txt", thread="Family")
        before = _rows(store)
        with pytest.raises(UnsafeArchiveError):
            _ingest(store, _dotdot(tmp_path, monkeypatch), thread="Family")
        assert _rows(store) == before
        assert _count(store, "runs") == 1
    assert not (db.files / "media").exists()


# -- found by these tests, fixed: ids, thread names, damaged zips, marks-only text ------------
def test_a_message_reading_none_beside_omitted_media_is_kept(
    store: Storage, tmp_path: Path
) -> None:
    path = tmp_path / "none.txt"
    path.write_text(
        "14/03/2024, 10:00 - Ana Sousa: <Media omitted>\n14/03/2024, 10:00 - Ana Sousa: None\n",
        encoding="utf-8",
    )
    assert _ingest(store, path).summary()["new"] == 2
    assert [r["text"] for r in _rows(store)] == [None, "None"]


def test_ios_exports_of_two_groups_are_two_threads(tmp_path: Path, store: Storage) -> None:
    threads = []
    for group in ("Family", "Work"):
        path = _zip(
            tmp_path / f"WhatsApp Chat - {group}.zip", {"_chat.txt": _fixture("ios_24h.txt")}
        )
        threads.append(_ingest(store, path).thread_id)
    assert threads[0] != threads[1]


def test_chats_named_in_other_scripts_are_different_threads(tmp_path: Path, store: Storage) -> None:
    threads = set()
    for group in ("Семья", "家人", "Οικογένεια"):
        path = tmp_path / f"WhatsApp Chat with {group}.txt"
        path.write_bytes(_fixture("family_short.txt"))
        threads.add(_ingest(store, path).thread_id)
    assert len(threads) == 3


def _corrupt(path: Path, member: str) -> Path:
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + 5] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("member", "method"),
    [("IMG-20240314-WA0001.jpg", zipfile.ZIP_STORED), (CHAT, zipfile.ZIP_DEFLATED)],
)
def test_a_damaged_zip_entry_is_an_export_file_error(
    tmp_path: Path, db: Place, member: str, method: int
) -> None:
    members = {CHAT: _fixture("attachments_android_en.txt"), "IMG-20240314-WA0001.jpg": JPEG * 20}
    path = _corrupt(_zip(tmp_path / "damaged.zip", members, method), member)
    try:
        with Storage.open(str(db)) as store, pytest.raises(ExportFileError, match="export"):
            _ingest(store, path)
    finally:
        _assert_nothing_written(db)


def test_a_zip_cut_in_half_is_named_a_damaged_zip_not_text(tmp_path: Path, db: Place) -> None:
    members = {CHAT: _fixture("attachments_android_en.txt"), "IMG-20240314-WA0001.jpg": JPEG * 20}
    whole = _zip(tmp_path / "whole.zip", members, zipfile.ZIP_STORED).read_bytes()
    path = tmp_path / "cut.zip"
    path.write_bytes(whole[: len(whole) // 2])  # its list of files, at the end, is gone
    try:
        with Storage.open(str(db)) as store, pytest.raises(ExportFileError) as refused:
            _ingest(store, path)
        message = str(refused.value)
        assert "damaged zip" in message and "again" in message, message
        assert "UTF-8" not in message and "iconv" not in message, message
    finally:
        _assert_nothing_written(db)


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_its_mark_is_read_as_utf16(tmp_path: Path, db: Place, encoding: str) -> None:
    text = _fixture("family_short.txt").decode()
    plain, marked = tmp_path / "plain.txt", tmp_path / f"{encoding}.txt"
    plain.write_text(text, encoding="utf-8")
    marked.write_bytes(text.encode(encoding))  # no byte-order mark
    with Storage.open(str(db)) as store:
        read = _ingest(store, marked, thread="family")
        again = _ingest(store, plain, thread="family")  # the same messages, already stored
    assert read.messages > 0 and read.new == read.messages
    assert again.new == 0


def test_a_file_of_only_direction_marks_is_an_empty_export(tmp_path: Path, db: Place) -> None:
    path = tmp_path / "marks.txt"
    path.write_bytes(f"{LRM}\n{RLM}\n".encode())
    try:
        with Storage.open(str(db)) as store, pytest.raises(ExportFormatError, match="is empty"):
            _ingest(store, path)
    finally:
        _assert_nothing_written(db)
