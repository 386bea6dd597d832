"""ETL case: a generated WhatsApp export ingested and validated, against whatstk's parser.

``etl_ingest`` times ``egregora.etl.ingest_export`` on a generated Android export of N messages
(1,000,000 at the default ``--rows``, 50,000 with ``--quick``) into a fresh copy of an empty
migrated DuckDB database: reading, parsing, building every row and the validated
``store.write("messages", rows)``. The baseline is the ``whatstk`` package's parser on the same
file in the same run, which only builds a pandas DataFrame (no validation, no database).

The export is generated once (seeded) and cached under ``benchmarks/.cache/``, as
``git_repo.py`` caches its repository. whatstk is an optional dependency (the ``bench`` extra,
which ``make bench`` installs); it is imported only when the case runs, so type checking
``benchmarks/`` does not need it.
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from benchmarks.cache import CACHE, load_manifest, save_manifest
from benchmarks.databases import Databases
from benchmarks.harness import Benchmark, require, timed
from egregora.ddl.statements import insert_select
from egregora.etl import Entries, IngestResult, ingest_export, parse_export
from egregora.etl.archive import decode
from egregora.schema.catalog import CATALOG
from egregora.storage.store import Storage

# Bump when the generator changes what it writes: the cache key includes it.
GENERATOR_VERSION = 1
SEED = 20_240_112
QUICK_MESSAGES = 50_000  # the fewest messages: what --quick (20,000 rows) generates
CHAT = "Weekend Trips"  # the file is "WhatsApp Chat with Weekend Trips.txt"
TZ = "UTC"
# The header as whatstk reads it: passed explicitly, so it does not detect it.
HFORMAT = "%d/%m/%Y, %H:%M - %name:"
SAMPLES = 500  # messages prepare compares between the two parsers
TOLERANCE = 0.01  # whatstk's row count may differ from N by this share (it skips notices)

START = datetime(2019, 1, 7, 7, 30)
LRM = "\u200e"  # the invisible left-to-right mark Android puts before some texts
# Shares of the messages (the rest: single-line text).
SYSTEM, MULTILINE, ATTACHED, OMITTED, DELETED, SHORT = 0.001, 0.05, 0.03, 0.02, 0.005, 0.08
EMOJI = 0.15  # share of text lines that end with emoji
MARKED = 0.02  # share of text messages with an invisible mark before the text
CAPTION = 0.3  # share of attachments with a caption on the next line

AUTHORS = (
    *("José Antônio", "María Fernández", "Zoë Müller", "Łukasz Nowak", "François Dupont"),
    *("Ana Luíza", "João Pedro", "Søren Ødegård", "Inês Gonçalves", "Çağla Şahin"),
    *("Björn Åkesson", "Chloé Lefèvre", "Renée Côté", "Miguel Ángel", "Tomáš Dvořák"),
    *("Ngọc Anh", "Aurélien Faÿ", "Conceição Brandão", "Priya Raman", "+55 11 98765-4321"),
)
WORDS = (
    *("amanhã", "então", "você", "não", "obrigado", "café", "reunião", "praia", "fotos", "hoje"),
    *("viagem", "ônibus", "avião", "chegou", "saímos", "às", "depois", "almoço", "jantar", "já"),
    *("tomorrow", "dinner", "let's", "great", "the", "train", "leaves", "at", "seven", "and"),
    *("we", "need", "tickets", "for", "sunday", "morning", "hotel", "booked", "really", "nice"),
    *("très", "bien", "für", "schön", "mañana", "qué", "tal", "niño", "día", "señor"),
)
SHORT_TEXTS = ("ok", "Ok", "kkkk", "sim", "👍", "haha", "valeu", "😂😂", "boa noite", "bom dia")
EMOJIS = ("😂", "👍", "❤️", "🎉", "🙏", "😅", "🔥", "🇧🇷", "👨‍👩‍👧", "🤔")
SUBJECTS = ("Weekend Trips", "Viagem 2024 🌴", "Férias de verão", "Trip to Kraków")
ENCRYPTED = (
    "Messages and calls are end-to-end encrypted. No one outside of this chat, not even "
    "WhatsApp, can read or listen to them. Tap to learn more."
)
# Attachment names: prefix, extension, share (they sum to 1).
ATTACHMENTS = (
    ("IMG", "jpg", 0.7),
    ("VID", "mp4", 0.15),
    ("PTT", "opus", 0.1),
    ("DOC", "pdf", 0.05),
)


# -- the export -------------------------------------------------------------------------------
@dataclass
class ExportManifest:
    """What the generator wrote, kept beside the export in the cache."""

    generator_version: int
    seed: int
    messages: int  # entries: lines that start with a header
    system: int  # system notices (the encryption notice included)
    multiline: int
    attached: int
    omitted: int
    first: str
    last: str
    bytes: int
    build_s: float
    path: str

    def save(self, folder: Path) -> None:
        save_manifest(folder, asdict(self))

    @classmethod
    def load(cls, folder: Path) -> ExportManifest | None:
        raw = load_manifest(folder)
        if raw is None:
            return None
        manifest = cls(**raw)
        manifest.path = str(folder / _file_name())  # the cache may have moved
        return manifest


def _file_name() -> str:
    return f"WhatsApp Chat with {CHAT}.txt"


def messages_for(rows: int) -> int:
    """Messages in the export: ``rows`` (1,000,000 by default), at least 50,000 (--quick)."""
    return max(QUICK_MESSAGES, rows)


def export(messages: int, *, log: IO[str] = sys.stderr) -> ExportManifest:
    """The generated export of ``messages`` messages: from the cache, or written (and cached)."""
    key = f"whatsapp-v{GENERATOR_VERSION}-n{messages}-s{SEED}"
    folder = CACHE / key
    manifest = ExportManifest.load(folder)
    if manifest is not None and Path(manifest.path).is_file():
        return manifest
    print(f"  generating a WhatsApp export of {messages:,} messages in {folder} ...", file=log)
    CACHE.mkdir(parents=True, exist_ok=True)
    # Write beside the final place and rename, so an interrupted build is never reused.
    partial = CACHE / f"{key}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        started = time.perf_counter()
        target = partial / _file_name()
        with target.open("w", encoding="utf-8", newline="\n") as out:
            counts = _write_export(out, messages, random.Random(SEED))
        manifest = ExportManifest(
            generator_version=GENERATOR_VERSION,
            seed=SEED,
            messages=messages,
            bytes=target.stat().st_size,
            build_s=round(time.perf_counter() - started, 2),
            path=str(folder / _file_name()),
            **counts,
        )
        manifest.save(partial)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    manifest.path = str(folder / _file_name())
    print(
        f"  written in {manifest.build_s:.1f} s: {manifest.bytes / 1e6:.1f} MB, "
        f"{manifest.first} to {manifest.last}",
        file=log,
    )
    return manifest


def _write_export(out: IO[str], messages: int, rng: random.Random) -> dict[str, Any]:
    """Write ``messages`` entries to ``out``; return what the manifest counts."""
    weights = [1 / (i + 1) for i in range(len(AUTHORS))]  # a heavy tail of talkers
    kinds = ("system", "multiline", "attached", "omitted", "deleted", "short")
    shares = (SYSTEM, MULTILINE, ATTACHED, OMITTED, DELETED, SHORT)
    bounds = [sum(shares[: i + 1]) for i in range(len(shares))]
    counts = dict.fromkeys(("system", "multiline", "attached", "omitted"), 0)
    now = START
    day_files = 0  # attachments sent today: WA0001, WA0002, ...
    lines: list[str] = []

    def words(low: int, high: int) -> str:
        text = " ".join(rng.choices(WORDS, k=rng.randint(low, high)))
        text = text[:1].upper() + text[1:]
        if rng.random() < EMOJI:
            text += " " + "".join(rng.choices(EMOJIS, k=rng.randint(1, 3)))
        return text

    for i in range(messages):
        if i > 0:
            roll = rng.random()  # several messages a minute, then pauses, now and then a night
            if roll < 0.4:
                step = timedelta(minutes=rng.randint(1, 2))
            elif roll < 0.49:
                step = timedelta(minutes=rng.randint(3, 30))
            elif roll < 0.493:
                step = timedelta(hours=rng.randint(1, 9), minutes=rng.randint(0, 59))
            else:
                step = timedelta(0)
            previous, now = now, now + step
            if now.date() != previous.date():
                day_files = 0
        header = f"{now:%d/%m/%Y, %H:%M} - "
        author = rng.choices(AUTHORS, weights)[0]
        roll = rng.random()
        kind = next((k for k, bound in zip(kinds, bounds, strict=True) if roll < bound), "text")
        if i == 0 or kind == "system":
            counts["system"] += 1
            lines.append(header + (ENCRYPTED if i == 0 else _notice(rng, author)))
        elif kind == "multiline":
            counts["multiline"] += 1
            body = "\n".join(words(2, 12) for _ in range(rng.randint(2, 4)))
            lines.append(f"{header}{author}: {body}")
        elif kind == "attached":
            counts["attached"] += 1
            day_files += 1
            prefix, ext = rng.choices(
                [(p, e) for p, e, _ in ATTACHMENTS], [s for _, _, s in ATTACHMENTS]
            )[0]
            name = f"{prefix}-{now:%Y%m%d}-WA{day_files:04d}.{ext}"
            caption = "\n" + words(1, 8) if rng.random() < CAPTION else ""
            lines.append(f"{header}{author}: {LRM}{name} (file attached){caption}")
        elif kind == "omitted":
            counts["omitted"] += 1
            lines.append(f"{header}{author}: <Media omitted>")
        elif kind == "deleted":
            lines.append(f"{header}{author}: This message was deleted")
        elif kind == "short":  # the same few words, often twice in a minute by the same person
            lines.append(f"{header}{author}: {rng.choice(SHORT_TEXTS)}")
        else:
            mark = LRM if rng.random() < MARKED else ""
            lines.append(f"{header}{author}: {mark}{words(1, 20)}")
        if len(lines) >= 10_000:
            out.write("\n".join(lines) + "\n")
            lines.clear()
    out.write("\n".join(lines) + "\n" if lines else "")
    return {**counts, "first": f"{START:%Y-%m-%d %H:%M}", "last": f"{now:%Y-%m-%d %H:%M}"}


def _notice(rng: random.Random, actor: str) -> str:
    other = rng.choice(AUTHORS)
    old, new = rng.sample(SUBJECTS, 2)
    return rng.choice(
        (
            f"{actor} added {other}",
            f"{actor} left",
            f'{actor} changed the subject from "{old}" to "{new}"',
            f"{actor} removed {other}",
            f"{actor} changed this group's icon",
        )
    )


# -- whatstk, the baseline --------------------------------------------------------------------
def _whatstk_chat() -> Any:
    """whatstk's ``WhatsAppChat`` class; a clear error when the package is not installed."""
    try:
        from whatstk import WhatsAppChat
    except ImportError as exc:
        raise RuntimeError(
            "etl_ingest compares against the whatstk package, which is not installed: run "
            "`make bench` (it installs the bench extra, whatstk==0.9.1), or "
            "`.venv/bin/python -m pip install -e '.[bench]'`"
        ) from exc
    return WhatsAppChat


def whatstk_parse(path: str) -> Any:
    """whatstk's DataFrame of the export at ``path`` (header format given; no size limit)."""
    # auto_header=False: no detection pass; max_size=None: whatstk refuses over 50 MB otherwise.
    chat = _whatstk_chat().from_source(
        filepath=path, auto_header=False, hformat=HFORMAT, max_size=None
    )
    return chat.df


def _whatstk_version() -> str:
    from importlib.metadata import version

    return version("whatstk")


# -- the case ---------------------------------------------------------------------------------
def _scratch() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="egregora-bench-etl-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


class EtlIngest(Benchmark):
    """``ingest_export`` of a generated export into a fresh database against whatstk's parser."""

    name = "etl_ingest"
    baseline = "whatstk_parse"
    base_note = (
        "A generated Android WhatsApp export (benchmarks/etl.py; cached): {messages:,} "
        "messages, {mb:.1f} MB, {authors} authors with accented names, day-first headers "
        "'DD/MM/YYYY, HH:MM - Name: text', several messages a minute ({first} to {last}); "
        "{multiline:,} multi-line, {attached:,} attachments ('IMG-...jpg (file attached)', "
        "some captioned), {omitted:,} '<Media omitted>', {system:,} system notices, emoji, "
        "U+200E marks, identical short messages in the same minute. Case: "
        "egregora.etl.ingest_export(store, path, tz='UTC') into a fresh file-backed DuckDB "
        "migrated to head (a copy of an empty template; copying, opening and closing untimed): "
        "reading and decoding the file, parsing, event ids, the stored-ids lookup, building "
        "the Arrow rows and one store.write('messages', rows), which validates every row "
        "against the contract and inserts them in one transaction. Baseline: whatstk "
        "{whatstk}'s WhatsAppChat.from_source(path, auto_header=False, hformat='{hformat}', "
        "max_size=None) on the same file: reading, cleaning, parsing into a pandas DataFrame "
        "(date, username, message); no validation, no database, no notices (it folds them "
        "into the message above and cuts them off). Extra parse_only: "
        "egregora.etl.parse_export on the file's text, already read and checked as UTF-8 "
        "(no ids, rows or database). Extra insert_only: the rows that ingest wrote (read back "
        "once, untimed), "
        "inserted by one plain INSERT ... SELECT in primary-key order into a fresh copy of "
        "the same migrated database, no contract: what DuckDB costs to store them under the "
        "table's PRIMARY KEY and UNIQUE (source, thread_id, seq), the floor of any ingest "
        "into this schema. Messages/s = {messages:,} / median seconds; this run: {rates}. "
        "Goal: ratio <= 0.33 (at least 3x faster than whatstk)."
    )
    duckdb_only = (
        "its baseline is whatstk's parser into a pandas DataFrame, which has no database, and "
        "its insert_only extra inserts from a registered Arrow table"
    )

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        super().__init__(messages_for(data.num_rows))
        self.note = self.base_note
        self.manifest: ExportManifest | None = None
        self.text = b""
        self.folder: Path | None = None
        self.template: Path | None = None
        self.copies = 0
        self._case: list[float] = []
        self._base: list[float] = []
        self._parse: list[float] = []
        self._insert: list[float] = []
        self.stored: pa.Table | None = None  # the rows one ingest wrote, for insert_only

    def prepare(self) -> None:
        _whatstk_chat()  # fails now, before generating anything, if whatstk is missing
        self.manifest = manifest = export(self.rows)
        self.folder = _scratch()
        self.template = self.folder / "empty.duckdb"
        with Storage.open(str(self.template)) as store:
            store.ensure_schema()
        wal = self.template.with_name(self.template.name + ".wal")
        require(not wal.exists(), "the template left a write-ahead log; a copy would miss it")
        self.text = decode(Path(manifest.path).read_bytes(), manifest.path)

        # Both sides must take the valid-data path before anything is timed.
        result, _ = self._ingest(keep=True)
        entries = parse_export(self.text, name=manifest.path)
        frame = whatstk_parse(manifest.path)
        self._check(result, entries, frame)
        self._rates()

    def _check(self, result: IngestResult, entries: Entries, frame: Any) -> None:
        manifest = self.manifest
        assert manifest is not None
        n = self.rows
        require(
            result.messages == n and result.new == n and result.duplicates == 0,
            f"ingest_export read {result.messages:,} messages and wrote {result.new:,} "
            f"({result.duplicates:,} duplicates); the export holds {n:,}",
        )
        require(
            result.system == manifest.system
            and result.media == manifest.attached + manifest.omitted
            and result.authors == len(AUTHORS)
            and result.date_order == "dmy"
            and not result.date_order_guessed,
            f"ingest_export classified the export differently from the generator: {result}",
        )
        require(len(entries) == n, f"parse_export found {len(entries):,} entries, not {n:,}")
        rows = len(frame)
        require(
            abs(rows - n) <= TOLERANCE * n,
            f"whatstk parsed {rows:,} rows from an export of {n:,} messages",
        )
        print(
            f"  {self.name}: egregora ingested {result.new:,} of {n:,} messages "
            f"({result.system:,} notices, {result.media:,} media); whatstk parsed {rows:,} rows "
            f"(it drops the {manifest.system:,} notices)",
            file=sys.stderr,
        )
        # whatstk's rows are egregora's entries without the notices, in order: compare a sample.
        kinds, filenames = entries.kinds.to_pylist(), entries.media_filenames.to_pylist()
        texts_, omitted = entries.texts.to_pylist(), entries.omitted_media.to_pylist()
        times, authors = entries.local_times.to_pylist(), entries.authors.to_pylist()
        spoken = [i for i, kind in enumerate(kinds) if kind != "system"]
        require(
            rows == len(spoken),
            f"whatstk parsed {rows:,} rows; egregora found {len(spoken):,} non-notice entries",
        )
        dates = frame["date"].tolist()
        names = frame["username"].tolist()
        texts = frame["message"].tolist()
        for row in sorted(random.Random(SEED).sample(range(rows), min(SAMPLES, rows))):
            i = spoken[row]
            theirs = (dates[row].to_pydatetime(), names[row], str(texts[row]).strip())
            if omitted[i]:
                ours_text = "<Media omitted>"
            elif kinds[i] == "media":
                ours_text = f"{filenames[i]} (file attached)"
                if texts_[i] is not None:
                    ours_text += f"\n{texts_[i]}"
            else:
                ours_text = texts_[i] or ""
            ours = (times[i], authors[i], ours_text.strip())
            require(ours == theirs, f"message {i}: egregora reads {ours!r}, whatstk {theirs!r}")

    def _copy(self) -> Path:
        """A fresh copy of the empty migrated template."""
        assert self.folder is not None and self.template is not None
        self.copies += 1
        copy = self.folder / f"copy{self.copies}.duckdb"
        shutil.copyfile(self.template, copy)
        return copy

    def _ingest(self, *, keep: bool = False) -> tuple[IngestResult, float]:
        """One timed ingest into a fresh copy; with ``keep``, the written rows are kept."""
        assert self.manifest is not None
        copy = self._copy()
        path = Path(self.manifest.path)
        store = Storage.open(str(copy))
        try:
            results: list[IngestResult] = []
            seconds = timed(lambda: results.append(ingest_export(store, path, tz=TZ)))
            stored = _count_messages(store)
            if keep:
                self.stored = store.to_pyarrow(store.table("messages"))
        finally:
            store.close()
            _remove(copy)
        require(stored == self.rows, f"the database holds {stored:,} messages, not {self.rows:,}")
        return results[0], seconds

    def _insert_only(self) -> float:
        """The plain ordered INSERT of the ingested rows into a fresh copy (no contract)."""
        rows = self.stored
        assert rows is not None
        messages = CATALOG["messages"]
        statement = insert_select(
            messages.name,
            "ingested",
            messages.column_names,
            "duckdb",
            order_by=messages.primary_key,
        )
        copy = self._copy()
        store = Storage.open(str(copy))
        try:
            store.con.register("ingested", rows)
            seconds = timed(lambda: store.con.execute(statement))
            stored = _count_messages(store)
        finally:
            store.close()
            _remove(copy)
        require(stored == self.rows, f"insert_only stored {stored:,} messages, not {self.rows:,}")
        return seconds

    def time_case(self) -> float:
        result, seconds = self._ingest()
        require(result.new == self.rows, f"ingest_export wrote {result.new:,} messages")
        self._case.append(seconds)
        self._rates()
        return seconds

    def time_baseline(self) -> float:
        assert self.manifest is not None
        path = self.manifest.path
        frames: list[Any] = []
        seconds = timed(lambda: frames.append(whatstk_parse(path)))
        require(abs(len(frames[0]) - self.rows) <= TOLERANCE * self.rows, "whatstk lost rows")
        self._base.append(seconds)
        self._rates()
        return seconds

    def time_extras(self) -> dict[str, float]:
        assert self.manifest is not None
        name = self.manifest.path
        seconds = timed(lambda: parse_export(self.text, name=name))
        self._parse.append(seconds)
        inserted = self._insert_only()
        self._insert.append(inserted)
        self._rates()
        return {"parse_only": seconds, "insert_only": inserted}

    def _rates(self) -> None:
        """The note, with this run's messages per second for both sides (medians so far)."""
        manifest = self.manifest
        assert manifest is not None

        def rate(samples: list[float]) -> str:
            if not samples:
                return "not timed yet"
            return f"{self.rows / statistics.median(samples):,.0f} messages/s"

        self.note = self.base_note.format(
            messages=self.rows,
            mb=manifest.bytes / 1e6,
            authors=len(AUTHORS),
            first=manifest.first,
            last=manifest.last,
            multiline=manifest.multiline,
            attached=manifest.attached,
            omitted=manifest.omitted,
            system=manifest.system,
            whatstk=_whatstk_version(),
            hformat=HFORMAT,
            rates=f"egregora {rate(self._case)}, whatstk {rate(self._base)}, "
            f"parse_only {rate(self._parse)}, insert_only {rate(self._insert)}",
        )

    def close(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = self.template = None
        self.text = b""
        self.stored = None


def _count_messages(store: Storage) -> int:
    return int(store.query("SELECT count(*) FROM messages")[0][0])


def _remove(database: Path) -> None:
    database.unlink(missing_ok=True)
    database.with_name(database.name + ".wal").unlink(missing_ok=True)
