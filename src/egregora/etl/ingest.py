"""Ingest a WhatsApp export into `messages` (and its media into `documents`), idempotently.

Every entry that starts a line becomes one row with a deterministic event_id (a hash of the
thread, the local time as written, the author, the text, the attachment, and how many identical
entries came before it), so ingesting an export again, or a longer export of the same chat,
adds only what is new. New messages take the positions (``seq``) after the thread's last one.
Authors are stored with a keyed pseudonym (see ``egregora.pseudonyms``): the database's secret
key, the thread and the name. Local times become TIMESTAMPTZ in ``tz``.

Media files in a zip become `documents` of doc_type media, their bytes kept where the
database's engine keeps media (``egregora.media``): in the database itself (PostgreSQL, which
several machines share), or beside the database file in ``media/<sha256[:2]>/<sha256>.<ext>``
(DuckDB; content-addressed: the same file is stored once, and a user can back it up, browse
it, or serve it with the site as it is). Nothing is written until every check has passed; rows
and media parts land in one transaction, and files written for a batch that then fails are
removed again. Ingesting an export again restores the bytes of its media that went missing.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import mimetypes
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
import pyarrow.compute as pc

from egregora.constants import SOURCE
from egregora.errors import ConfigurationError
from egregora.etl.archive import (
    Export,
    MediaFile,
    chat_name_of,
    check_export_path,
    open_export,
)
from egregora.etl.formats import media_type
from egregora.etl.parse import DateOrder, Entries, parse_export
from egregora.etl.reread import Rereadings, find_rereadings
from egregora.media import MediaBytes, MediaFiles
from egregora.pseudonyms import Pseudonyms, thread_slug
from egregora.runs import RunStore
from egregora.storage import keys
from egregora.storage.store import Storage

Progress = Callable[[str], None]


@dataclass(frozen=True)
class IngestResult:
    thread_id: str
    chat_name: str  # as the export (or --thread) names it; thread_id is its slug
    messages: int  # entries in the export
    new: int  # written now
    reread: int  # stored rows an earlier reading got wrong, replaced by this one
    duplicates: int  # already stored
    authors: int
    media: int  # media messages in the export
    system: int  # system notices in the export
    media_files: int  # media files in the archive
    media_files_new: int
    date_order: str
    date_order_guessed: bool
    timezone: str

    def summary(self) -> dict[str, object]:
        """The JSON summary `egregora ingest --json` prints."""
        return {
            "thread_id": self.thread_id,
            "messages": self.messages,
            "new": self.new,
            "reread": self.reread,
            "duplicates": self.duplicates,
            "authors": self.authors,
            "media": self.media,
            "system": self.system,
        }


def ingest_export(
    store: Storage,
    path: Path,
    *,
    tz: str | None = None,
    thread: str | None = None,
    date_order: DateOrder | None = None,
    media_dir: Path | None = None,
    runs: RunStore | None = None,
    parent_run: str | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """Read the export at ``path`` (.zip or .txt) into ``store``; see the module docstring.

    With ``runs``, the ingest is recorded as a run of stage ``ingest`` (under ``parent_run``)
    once the export has passed every check, and its rows name that run; a zone other than the
    one the thread's earlier ingests read it in is refused before anything is written.
    """
    say = progress or (lambda _: None)
    zone_name = timezone_name(tz)
    names = keys.pseudonyms(store)
    say("reading the export")
    with open_export(path) as export:
        return _ingest(
            store,
            path,
            export,
            zone_name=zone_name,
            thread=thread,
            date_order=date_order,
            media_dir=media_dir,
            runs=runs,
            parent_run=parent_run,
            say=say,
            names=names,
        )


def _ingest(
    store: Storage,
    path: Path,
    export: Export,
    *,
    zone_name: str,
    thread: str | None,
    date_order: DateOrder | None,
    media_dir: Path | None,
    runs: RunStore | None,
    parent_run: str | None,
    say: Progress,
    names: Pseudonyms,
) -> IngestResult:
    say("parsing messages")
    entries = parse_export(export.take_text(), name=str(path), date_order=date_order)
    _let_go()
    chat_name = thread or export.chat_name
    thread_id = thread_slug(chat_name)
    if runs is not None:
        refuse_changed_zone(runs, thread_id, zone_name)
    media = MediaFiles.of(store, media_dir, writing=True) if export.media else None
    if media is not None:
        media.sweep()  # what an ingest killed half-way left in the folder
    now = datetime.now(UTC)
    say("checking what is stored")
    ids = event_ids(thread_id, entries)
    messages = store.table("messages")
    stored = store.to_pyarrow(
        messages.filter((messages.source == SOURCE) & (messages.thread_id == thread_id)).select(
            "event_id", "seq"
        )
    )
    next_seq = int(pc.max(stored["seq"]).as_py()) + 1 if stored.num_rows else 0
    # Ids are unique within an export (identical entries are numbered), so new ones are new rows.
    stored_ids = stored["event_id"].combine_chunks()
    fresh = pc.invert(pc.is_in(ids, value_set=stored_ids))
    instants = _aware(entries.local_times, zone_name)
    reread = find_rereadings(store, SOURCE, thread_id, entries, ids, fresh, instants, stored_ids)
    _let_go()
    say("reading media")
    label = names.thread(SOURCE, thread_id)
    media_rows, files = _media(store, media, export, entries, thread_id, label, zone_name, now)
    say("writing")
    run_id = None
    if runs is not None:
        config = {"tz": zone_name, "thread": thread_id, "date_order": entries.date_order}
        run_id = runs.start("ingest", config, inputs=[path], parent=parent_run)
    seqs = _places(fresh, next_seq, reread)
    rows = _message_rows(entries, ids, fresh, thread_id, instants, seqs, now, run_id, names)
    for row in media_rows:
        row["created_by_run"] = run_id
    try:
        # The media's bytes (parts in the database, or files in a folder) and the rows that
        # name them land together or not at all.
        staged = media.stage(files) if media is not None else contextlib.nullcontext()
        with staged, store.transaction():
            if len(reread):
                replaced = reread.replaced
                store.delete("messages", lambda t: t.event_id.isin(replaced))
            if rows.num_rows:
                store.write("messages", rows)
            if media_rows:
                store.write("documents", media_rows)
    except BaseException as exc:
        if runs is not None and run_id is not None:
            runs.fail(run_id, exc)
        raise
    if runs is not None and run_id is not None:
        runs.finish(run_id, rows_in=len(entries), rows_out=rows.num_rows + len(media_rows))
    return IngestResult(
        thread_id=thread_id,
        chat_name=chat_name,
        messages=len(entries),
        new=rows.num_rows - len(reread),
        reread=len(reread),
        duplicates=len(entries) - rows.num_rows,
        authors=len(pc.unique(entries.authors.drop_null())),
        media=_count(entries.kinds, "media"),
        system=_count(entries.kinds, "system"),
        media_files=len(export.media),
        media_files_new=len(media_rows),
        date_order=entries.date_order,
        date_order_guessed=entries.date_order_guessed,
        timezone=zone_name,
    )


def _let_go() -> None:
    """Give back to the system the memory a finished step's Arrow buffers held: Arrow's pool
    keeps freed memory for later, which would add each step's peak to the next one's."""
    pa.default_memory_pool().release_unused()


def _count(values: pa.Array, value: str) -> int:
    return int(pc.sum(pc.equal(values, value)).as_py() or 0)


# -- identities ---------------------------------------------------------------------------------
def event_ids(thread_id: str, entries: Entries) -> pa.Array:
    """Deterministic ids: the same entry of the same chat has the same id in any export.

    An id hashes the thread, the local time as written, the author, the text, the attachment,
    and how many identical entries came before it in the export (usually none).
    """
    # Every key first ends in "0" (no identical entry before it); repeats are renumbered below.
    keys = pc.binary_join_element_wise(
        SOURCE,
        thread_id,
        entries.stamps,
        _field(entries.authors),
        _field(entries.texts),
        _field(entries.media_filenames),
        "0",
        _KEY_SEPARATOR,
    ).cast(pa.large_binary())
    count = len(keys)
    # Each key is hashed where Arrow holds it (a view of its bytes), and each digest appended
    # to one buffer: a million keys and digests as Python objects cost 150 MB and left the
    # heap fragmented for the write that follows.
    _, ends_buffer, data_buffer = keys.buffers()
    ends = memoryview(ends_buffer).cast("q")
    data = memoryview(data_buffer) if data_buffer is not None else memoryview(b"")
    digests = bytearray()
    for row in range(count):
        digests += _blake2b_128(data[ends[row] : ends[row + 1]]).digest()
    repeats = _repeats(bytes(digests), count)
    for row, nth in repeats:  # the second identical entry counts 1, and so on
        key = bytes(data[ends[row] : ends[row + 1] - 1]) + str(nth).encode()
        digests[row * 16 : (row + 1) * 16] = _blake2b_128(key).digest()
    # Every id is 32 hex digits: one buffer and fixed offsets, not a million Python objects.
    offsets = pc.multiply(_counting(count + 1, 0), 32).cast(pa.int32()).buffers()[1]
    hexed = pa.py_buffer(digests.hex().encode("ascii"))
    return pa.Array.from_buffers(pa.string(), count, [None, offsets, hexed])


_blake2b_128 = functools.partial(hashlib.blake2b, digest_size=16)


def _repeats(digests: bytes, count: int) -> list[tuple[int, int]]:
    """(row, nth) of each digest met before: its nth repeat (1, 2, ...), in row order."""
    fixed = pa.Array.from_buffers(pa.binary(16), count, [None, pa.py_buffer(digests)])
    # Dictionary indices number the digests in order of first appearance, so a row repeats an
    # earlier one when its index is not above every index of the rows before it.
    indices = fixed.dictionary_encode().indices
    before = pa.concat_arrays(
        [pa.array([-1], indices.type), pc.cumulative_max(indices).slice(0, max(count - 1, 0))]
    )
    again = pc.indices_nonzero(pc.less_equal(indices, before))
    seen: dict[int, int] = {}
    repeats = []
    for row, index in zip(again.to_pylist(), indices.take(again).to_pylist(), strict=True):
        nth = seen[index] = seen.get(index, 0) + 1
        repeats.append((row, nth))
    return repeats


def _counting(count: int, start: int) -> pa.Array:
    """start, start + 1, ... (``count`` int64 values), built in Arrow, not from a Python range."""
    ones = pa.repeat(pa.scalar(1, pa.int64()), count)
    return pc.add(pc.cumulative_sum(ones), start - 1)


_KEY_SEPARATOR = "\x1f"


def _field(values: pa.Array) -> pa.Array:
    """Values in an id's key: NULL and the text "None" must differ ("-" against "+None")."""
    return pc.if_else(pc.is_null(values), "-", pc.binary_join_element_wise("+", values, ""))


# -- time zones ---------------------------------------------------------------------------------
def timezone_name(tz: str | None) -> str:
    """An IANA zone name (``--tz``, else the machine's), checked to exist."""
    if tz is None:
        return local_zone()
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(
            f"unknown time zone {tz!r}; give an IANA name such as Europe/Lisbon or "
            "America/Sao_Paulo"
        ) from exc
    return tz


def refuse_changed_zone(runs: RunStore, thread_id: str, zone: str) -> None:
    """Refuse to read a thread in a zone other than the one its earlier ingests read it in:
    its messages would be an hour or more apart from their neighbours, and windows split
    wrong. Raised before anything is written, naming the stored zone."""
    before = runs.last_config("ingest", thread_id)
    if before is None or before.get("tz") in (None, zone):
        return
    raise ConfigurationError(
        f"thread {thread_id} was read in the zone {before['tz']}; this asks for --tz {zone}. "
        f"Give --tz {before['tz']} (a thread's messages are all read in the zone of its first "
        "ingest; for another, ingest it into a new database with --db); nothing was written"
    )


def thread_of(path: Path, thread: str | None) -> str:
    """The id the export at ``path`` is stored under (``thread`` names it, else the chat's
    name does), read without the chat's text."""
    return thread_slug(thread or chat_name_of(path))


def check_ingest_input(path: Path, tz: str | None) -> None:
    """Refuse an export path that is no file, or an unknown zone, before a database is
    opened or anything is written."""
    check_export_path(path)
    timezone_name(tz)


def local_zone() -> str:
    """The machine's zone: $TZ, /etc/localtime's target, /etc/timezone, else UTC's offset now."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):  # no such link: not this kind of system
        candidates.append(os.readlink("/etc/localtime").split("zoneinfo/", 1)[-1])
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    for name in candidates:
        if name:
            try:
                ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
            return name
    offset = datetime.now().astimezone().strftime("%z")
    return f"{offset[:3]}:{offset[3:]}"


def _aware(naive: pa.Array, zone_name: str) -> pa.Array:
    """Local times (timestamp[us], no zone) as instants in ``zone_name``."""
    # A time that a DST change skips is moved forward; one it repeats is the earlier instant.
    local = pc.assume_timezone(
        naive, timezone=zone_name, ambiguous="earliest", nonexistent="latest"
    )
    return local.cast(pa.timestamp("us", tz="UTC"))


# -- rows -----------------------------------------------------------------------------------------
def _places(fresh: pa.Array, next_seq: int, reread: Rereadings) -> pa.Array:
    """The ``seq`` of each fresh entry: a re-read row's place, else the next free ones."""
    count = int(pc.sum(fresh).as_py() or 0)
    if not len(reread):
        return _counting(count, next_seq)
    taken = dict(zip(reread.entries, reread.seqs, strict=True))
    seqs = []
    for index in pc.indices_nonzero(fresh).to_pylist():
        if index in taken:
            seqs.append(taken[index])
        else:
            seqs.append(next_seq)
            next_seq += 1
    return pa.array(seqs, pa.int64())


def _message_rows(
    entries: Entries,
    ids: pa.Array,
    fresh: pa.Array,
    thread_id: str,
    instants: pa.Array,
    seqs: pa.Array,
    now: datetime,
    run_id: str | None,
    keyed: Pseudonyms,
) -> pa.Table:
    """The rows of the entries ``fresh`` marks (in ``seqs`` places), built column by column."""
    authors = entries.authors
    names = pc.unique(authors.drop_null())
    made = [keyed.author(SOURCE, thread_id, n) for n in names.to_pylist()]
    pseudonyms = pa.array(made, pa.string())
    every = pa.table(
        {
            "event_id": ids,
            "kind": entries.kinds,
            "author_raw": authors,
            "author_uuid": pseudonyms.take(pc.index_in(authors, value_set=names)),
            "text": entries.texts,
            "media_filename": entries.media_filenames,
            "media_type": entries.media_types,
            "media_omitted": entries.omitted_media,
            "ts": instants,
        }
    )
    rows = every if pc.all(fresh).as_py() else every.filter(fresh)
    n = rows.num_rows
    return pa.table(
        {
            "event_id": rows["event_id"],
            "source": pa.repeat(SOURCE, n),
            "thread_id": pa.repeat(thread_id, n),
            "seq": seqs,
            "ts": rows["ts"],
            "kind": rows["kind"],
            "author_raw": rows["author_raw"],
            "author_uuid": rows["author_uuid"],
            "text": rows["text"],
            "media_filename": rows["media_filename"],
            "media_type": rows["media_type"],
            "media_omitted": rows["media_omitted"],
            "attrs": pa.nulls(n, pa.string()),
            "ingested_at": _repeated_instant(now, n),
            "created_by_run": pa.repeat(pa.scalar(run_id, pa.string()), n),
        }
    )


def _repeated_instant(at: datetime, count: int) -> pa.Array:
    """``at`` ``count`` times; repeating the timestamp scalar itself is 50 times slower."""
    utc = pa.timestamp("us", tz="UTC")
    return pa.repeat(pa.scalar(at, utc).cast(pa.int64()), count).cast(utc)


def _media(
    store: Storage,
    media: MediaFiles | None,
    export: Export,
    entries: Entries,
    thread_id: str,
    label: str,
    zone_name: str,
    now: datetime,
) -> tuple[list[dict[str, object]], list[MediaBytes]]:
    """Document rows for media files not stored yet, and the files to keep (theirs, and those
    of stored documents whose bytes went missing); a document names its thread by ``label``
    (the thread's id is the chat's name, often a person's)."""
    if media is None or not export.media:
        return [], []
    attached = pc.is_valid(entries.media_filenames)
    sent = pa.table(
        {
            "name": entries.media_filenames.filter(attached),
            "at": _aware(entries.local_times.filter(attached), zone_name),
        }
    )
    sent_at: dict[str, datetime] = {}
    for name, at in zip(sent["name"].to_pylist(), sent["at"].to_pylist(), strict=True):
        sent_at.setdefault(name, at)
    candidates = _media_ids(thread_id, export.media)
    documents = store.table("documents")
    wanted = [doc_id for _, doc_id in candidates]
    found = documents.filter(documents.id.isin(wanted))
    stored = store.to_pyarrow(found.select("id", "source_checksum", "extensions")).to_pylist()
    have = {row["id"]: row for row in stored}
    lost = media.missing(stored) if stored else set()
    rows: list[dict[str, object]] = []
    files: list[MediaBytes] = []
    for item, doc_id in candidates:
        name = item.name
        if doc_id in have:
            if doc_id in lost:  # stored before, its bytes gone since: put them back
                file = MediaBytes.streamed(item.chunks, item.where)
                if file.digest == have[doc_id]["source_checksum"]:
                    files.append(file)
            continue
        file = MediaBytes.streamed(item.chunks, item.where)
        files.append(file)
        rows.append(
            {
                "id": doc_id,
                "doc_type": "media",
                "created_at": sent_at.get(name, now),
                "title": name,
                "filename": name,
                "mime_type": mimetypes.guess_type(name)[0] or "application/octet-stream",
                "media_type": media_type(name),
                "source_checksum": file.digest,
                "extensions": json.dumps(
                    {
                        "thread": label,
                        "size_bytes": file.size,
                        **({"member": item.member} if item.member != name else {}),
                        **media.extensions(file),
                    },
                    sort_keys=True,
                ),
            }
        )
    return rows, files


def _media_ids(thread_id: str, items: Sequence[MediaFile]) -> list[tuple[MediaFile, str]]:
    """Each media file and its document's id: the thread and the file's name, by which messages
    refer to it. Files of the same name in different folders of the archive are kept too; the
    first (in the archive's order) has the name's id, the others an id of their whole path."""
    seen: set[str] = set()
    found = []
    for item in items:
        key = item.member if item.name in seen else item.name
        seen.add(item.name)
        digest = hashlib.blake2b(f"{SOURCE}\x1f{thread_id}\x1f{key}".encode(), digest_size=16)
        found.append((item, "media-" + digest.hexdigest()))
    return found
