"""Ingesting again after the parser learned to read lines better: the stored rows an earlier
reading got wrong are replaced in place by the new reading, nothing is stored twice, and a row
that is not the same line read again is never replaced.

The earlier readings are written into the database as the previous parser stored them: the
encryption notice after the group's name as a message from the group, an empty message as a
notice holding the author's name, omitted media in Spanish and an iOS document with its page
count as plain text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from egregora.ddl import statements as sql
from egregora.etl import ingest_export
from egregora.runs import RunStore
from egregora.storage import Storage
from tests.support import copy_database, insert_sql

TZ = "America/Sao_Paulo"
EXPORT = (
    "15/04/2016, 15:04 - Pokemon Chat: Messages and calls are end-to-end encrypted. No one "
    "outside of this chat, not even WhatsApp, can read or listen to them.\n"
    "15/04/2016, 15:05 - Ana Sousa: oi\n"
    "15/04/2016, 15:06 - Franklin: \n"
    "15/04/2016, 15:07 - Ana Sousa: <Multimedia omitido>\n"
    "15/04/2016, 15:08 - Ana Sousa: Resume.pdf \u2022 2 pages <attached: 00000047-Resume.pdf>\n"
    "15/04/2016, 15:09 - Franklin: tchau\n"
)
# seq -> (kind, author_raw, text, media_filename, media_omitted) as the earlier parser read it
EARLIER: dict[int, tuple[str, str | None, str | None, str | None, bool]] = {
    0: (
        "text",
        "Pokemon Chat",
        "Messages and calls are end-to-end encrypted. No one outside of this chat, not even "
        "WhatsApp, can read or listen to them.",
        None,
        False,
    ),
    2: ("system", None, "Franklin:", None, False),
    3: ("text", "Ana Sousa", "<Multimedia omitido>", None, False),
    4: (
        "text",
        "Ana Sousa",
        "Resume.pdf \u2022 2 pages <attached: 00000047-Resume.pdf>",
        None,
        False,
    ),
}
COLUMNS = ["event_id", "seq", "ts", "kind", "author_raw", "author_uuid", "text"]
COLUMNS += ["media_filename", "media_type", "media_omitted"]


@pytest.fixture
def store(tmp_path: Path, empty_db: Path) -> Any:
    with Storage.open(str(copy_database(empty_db, tmp_path / "egregora.duckdb"))) as opened:
        yield opened


def _export(tmp_path: Path, text: str = EXPORT) -> Path:
    path = tmp_path / "WhatsApp Chat with Pokemon Chat.txt"
    path.write_text(text, encoding="utf-8")
    return path


def _rows(store: Storage) -> list[dict[str, Any]]:
    messages = store.table("messages")
    rows: list[dict[str, Any]] = store.to_pyarrow(
        messages.select(*COLUMNS).order_by("seq")
    ).to_pylist()
    return rows


def _read_as_before(store: Storage, rows: list[dict[str, Any]]) -> None:
    """Turn the rows of EARLIER back into what the earlier parser stored (its own ids)."""
    columns = ["event_id", "kind", "author_raw", "author_uuid", "text", "media_filename"]
    columns += ["media_type", "media_omitted"]
    update = sql.update_values("messages", columns, ["seq"], "duckdb")
    for seq, (kind, author, text, filename, omitted) in EARLIER.items():
        uuid = None if author is None else "0" * 8 + "-0000-8000-8000-" + "0" * 12
        values = [f"{seq:032x}", kind, author, uuid, text, filename, None, omitted]
        store.change(update, [*values, seq])
    assert [r["kind"] for r in _rows(store)] != [r["kind"] for r in rows]


def _ingest(store: Storage, path: Path) -> dict[str, object]:
    return ingest_export(store, path, tz=TZ, runs=RunStore(store)).summary()


def test_rows_read_wrongly_before_are_replaced_in_place(store: Storage, tmp_path: Path) -> None:
    path = _export(tmp_path)
    _ingest(store, path)
    right = _rows(store)
    assert [r["kind"] for r in right] == ["system", "text", "text", "media", "media", "text"]
    assert {r["author_raw"] for r in right} == {None, "Ana Sousa", "Franklin"}
    _read_as_before(store, right)
    again = _ingest(store, path)
    assert (again["new"], again["reread"], again["duplicates"]) == (0, 4, 2)
    assert _rows(store) == right  # the same ids, places and readings as a fresh ingest
    third = _ingest(store, path)
    assert (third["new"], third["reread"], third["duplicates"]) == (0, 0, 6)


def test_a_longer_export_rereads_and_appends(store: Storage, tmp_path: Path) -> None:
    _ingest(store, _export(tmp_path))
    right = _rows(store)
    _read_as_before(store, right)
    longer = EXPORT + "15/04/2016, 15:10 - Ana Sousa: <Medien ausgeschlossen>\n"
    summary = _ingest(store, _export(tmp_path, longer))
    assert (summary["new"], summary["reread"], summary["duplicates"]) == (1, 4, 2)
    rows = _rows(store)
    assert rows[:6] == right
    assert (rows[6]["seq"], rows[6]["kind"], rows[6]["media_omitted"]) == (6, "media", True)


def test_a_different_line_at_the_same_minute_is_never_replaced(
    store: Storage, tmp_path: Path
) -> None:
    """Another phone's export may say "This message was deleted" where the first said what
    was written: that is not the same line read again, so both are kept."""
    _ingest(store, _export(tmp_path, "15/04/2016, 15:05 - Ana Sousa: the original words\n"))
    deleted = "15/04/2016, 15:05 - Ana Sousa: This message was deleted\n"
    summary = _ingest(store, _export(tmp_path, deleted))
    assert (summary["new"], summary["reread"]) == (1, 0)
    assert [r["text"] for r in _rows(store)] == ["the original words", "This message was deleted"]


def test_an_annotated_row_is_left_as_it_is(store: Storage, tmp_path: Path) -> None:
    path = _export(tmp_path)
    _ingest(store, path)
    right = _rows(store)
    _read_as_before(store, right)
    note = {
        "annotation_id": "n1",
        "message_id": f"{2:032x}",
        "author": "editor",
        "content": "who is Franklin?",
        "created_at": right[0]["ts"],
    }
    store.con.execute(insert_sql("annotations", note), list(note.values()))
    summary = _ingest(store, path)
    assert (summary["new"], summary["reread"]) == (1, 3)
    rows = _rows(store)
    kept = next(r for r in rows if r["event_id"] == f"{2:032x}")
    assert (kept["seq"], kept["kind"], kept["text"]) == (2, "system", "Franklin:")
    assert rows[-1]["seq"] == 6 and rows[-1]["author_raw"] == "Franklin"
