"""Archive case: what ingesting a WhatsApp export zip costs per media file it holds.

``etl_archive_entries`` times ``egregora.etl.ingest_export`` of a generated zip of 4,000 small
media files (1,000 with ``--quick``), each named by one chat line, into a fresh copy of an empty
migrated database (``databases.py``: a DuckDB file, or a database on the PostgreSQL server
``--db`` names). The baseline is the same ingest of a zip of a quarter as many files, in the
same run: the archive's list of files is read once and each file is streamed, so the cost
grows with the files and the ratio stays near 4. At full size an extra times a zip four times
larger again (16,000 files) when ``prepare``'s ingests predict it under 15 s.

The zips are written once per run (seeded, so byte for byte the same every run) into a
temporary folder of the case.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import statistics
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from benchmarks.databases import Databases
from benchmarks.harness import Benchmark, require, timed
from egregora.etl import IngestResult, ingest_export
from egregora.media import MediaFiles
from egregora.storage.store import Storage

SEED = 20_240_113
TZ = "UTC"
CHAT = "WhatsApp Chat with Media.txt"
AUTHOR = "Ana"
DAY = (2024, 1, 13)  # every file is sent on 13/01/2024 between 10:00 and 10:59
FULL_ROWS = 1_000_000  # the default --rows: full sizes; fewer rows (--quick): smaller ones
SMALLEST, LARGEST = 24, 72  # bytes of random content per media file
EXTRA_BUDGET_S = 15.0  # the largest zip is timed only when predicted to take less


@dataclass(frozen=True)
class Sizes:
    """Media files in the baseline's zip, the case's (four times as many) and the extra's
    (none: no extra)."""

    baseline: int
    case: int
    extra: int | None


FULL_SIZES = Sizes(baseline=1_000, case=4_000, extra=16_000)
QUICK_SIZES = Sizes(baseline=250, case=1_000, extra=None)  # a smoke test: no extra


def sizes_for(rows: int) -> Sizes:
    """Full sizes at the default ``--rows``; below it (``--quick``) a quarter, and no extra."""
    return FULL_SIZES if rows >= FULL_ROWS else QUICK_SIZES


def media_name(number: int) -> str:
    """``IMG-20240113-WA0001.jpg``: the name Android gives the day's ``number``-th photo."""
    return f"IMG-{DAY[0]:04d}{DAY[1]:02d}{DAY[2]:02d}-WA{number:04d}.jpg"


def write_zip(path: Path, files: int, seed: int = SEED) -> dict[str, str]:
    """A DEFLATED export at ``path``: ``files`` media files of a few dozen random bytes, each
    named by one line of the chat text; return each file's name and SHA-256 (hex). Entries
    carry a fixed time, so the same arguments write the same bytes."""
    rng = random.Random(seed)
    names = [media_name(number) for number in range(1, files + 1)]
    year, month, day = DAY
    lines = [
        f"{day:02d}/{month:02d}/{year}, 10:{minute * 60 // files:02d} - {AUTHOR}: "
        f"{name} (file attached)"
        for minute, name in enumerate(names)
    ]
    digests: dict[str, str] = {}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        _add(archive, CHAT, ("\n".join(lines) + "\n").encode())
        for name in names:
            content = rng.randbytes(rng.randint(SMALLEST, LARGEST))
            _add(archive, name, content)
            digests[name] = hashlib.sha256(content).hexdigest()
    return digests


def _add(archive: zipfile.ZipFile, name: str, content: bytes) -> None:
    entry = zipfile.ZipInfo(name, date_time=(*DAY, 10, 0, 0))
    entry.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(entry, content)


@dataclass(frozen=True)
class Export:
    """A generated zip and what ingesting it must store."""

    path: Path
    files: int
    digests: dict[str, str]  # media file name -> SHA-256 of its bytes


class EtlArchiveEntries(Benchmark):
    """``ingest_export`` of a zip of N media files against the same of N / 4 files."""

    name = "etl_archive_entries"
    baseline = "quarter_of_the_entries"
    base_note = (
        "Generated WhatsApp export zips (benchmarks/archive.py; seeded, written once per run, "
        "DEFLATED): 'WhatsApp Chat with Media.txt' of one line per media file, "
        "'13/01/2024, 10:MM - Ana: IMG-20240113-WA0001.jpg (file attached)', and the files "
        "themselves, {smallest} to {largest} random bytes each. Case: egregora.etl."
        "ingest_export(store, zip, tz='UTC') of {case:,} files into a fresh copy of an empty "
        "migrated {db} (copying, opening, checking and closing untimed; on a database whose "
        "media go to a folder, that folder starts empty and is removed after each ingest): "
        "opening the zip (its list of files read once), parsing, the messages' write, and per "
        "file its bytes streamed, hashed, stored and a media document. Baseline: the same with "
        "{baseline:,} files, so a cost in proportion to the files gives a ratio near "
        "{expected:.0f}. Every ingest must store one media document per file, with the file's "
        "name and SHA-256, and one message per line. {extra} Milliseconds per file, medians of "
        "this run: {rates}."
    )
    extra_note = (
        "Extra entries_{files}: {files:,} files, timed when prepare's ingests (the baseline's "
        "zip twice, the first to warm up, then the case's) predict less than {budget:.0f} s on "
        "the line through them ({predicted})."
    )

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        self.counts = sizes_for(data.num_rows)
        super().__init__(self.counts.case)
        self.dbs = databases
        self.engine = databases.engine
        self.folder: Path | None = None
        self.template: str | None = None
        self.exports: dict[int, Export] = {}
        self.samples: dict[int, list[float]] = {}  # files -> the repetitions' seconds
        self.predicted: float | None = None  # seconds the extra's ingest should take
        self.note = self.base_note

    def prepare(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="egregora-bench-archive-"))
        sizes = [self.counts.baseline, self.counts.case]
        if self.counts.extra is not None:
            sizes.append(self.counts.extra)
        for files in sizes:
            path = self.folder / f"WhatsApp Chat - Media {files}.zip"
            self.exports[files] = Export(path, files, write_zip(path, files))
        self.template = self.dbs.empty()
        # Both sides must store every file before anything is timed: each ingest checks it.
        # The baseline's zip goes twice, the first time to warm the process up.
        self._ingest(self.counts.baseline)
        base = self._ingest(self.counts.baseline)
        case = self._ingest(self.counts.case)
        said = f"  {self.name}: {self.counts.baseline:,} files {base:.2f} s, "
        said += f"{self.counts.case:,} files {case:.2f} s"
        if self.counts.extra is not None:
            self.predicted = _extrapolate(
                (self.counts.baseline, base), (self.counts.case, case), self.counts.extra
            )
            said += f"; {self.counts.extra:,} files predicted {self._prediction()}"
        print(said, file=sys.stderr)
        self._describe()

    def _extra(self) -> int | None:
        """The extra's files, when it is timed in this run."""
        if self.predicted is None or self.predicted >= EXTRA_BUDGET_S:
            return None
        return self.counts.extra

    def _prediction(self) -> str:
        assert self.predicted is not None
        verdict = "timed" if self._extra() is not None else "not timed"
        return f"{self.predicted:.1f} s against a budget of {EXTRA_BUDGET_S:.0f} s: {verdict}"

    def _ingest(self, files: int) -> float:
        """One timed ingest of the zip of ``files`` media files into a fresh copy, checked."""
        assert self.template is not None
        export = self.exports[files]
        with self.dbs.copy(self.template) as store:
            folder = _media_folder(store)
            try:
                require(
                    folder is None or not folder.exists(),
                    f"the media folder {folder} is there before the ingest; it must start empty",
                )
                done: list[IngestResult] = []
                seconds = timed(lambda: done.append(ingest_export(store, export.path, tz=TZ)))
                _check(store, done[0], export)
            finally:
                if folder is not None:
                    shutil.rmtree(folder, ignore_errors=True)
        return seconds

    def _repetition(self, files: int) -> float:
        seconds = self._ingest(files)
        self.samples.setdefault(files, []).append(seconds)
        self._describe()
        return seconds

    def time_case(self) -> float:
        return self._repetition(self.counts.case)

    def time_baseline(self) -> float:
        return self._repetition(self.counts.baseline)

    def time_extras(self) -> dict[str, float]:
        files = self._extra()
        if files is None:
            return {}
        return {f"entries_{files}": self._repetition(files)}

    def sizes(self) -> tuple[int, int]:
        return self.counts.case, self.counts.baseline

    def _describe(self) -> None:
        """The note, with this run's prediction for the extra and medians per file so far."""
        rates = ", ".join(
            f"{files:,} files {1000 * statistics.median(seconds) / files:.2f}"
            for files, seconds in sorted(self.samples.items())
        )
        extra = "No extra (--quick)."
        if self.counts.extra is not None:
            predicted = "not predicted yet"
            if self.predicted is not None:
                predicted = f"this run: {self._prediction()}"
            extra = self.extra_note.format(
                files=self.counts.extra, budget=EXTRA_BUDGET_S, predicted=predicted
            )
        self.note = self.base_note.format(
            smallest=SMALLEST,
            largest=LARGEST,
            case=self.counts.case,
            baseline=self.counts.baseline,
            expected=self.counts.case / self.counts.baseline,
            db=self.dbs.described,
            extra=extra,
            rates=rates or "none yet",
        )

    def close(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None
        self.exports.clear()


def _media_folder(store: Storage) -> Path | None:
    """The folder an ingest into ``store`` writes media files to; None when they go into the
    database itself."""
    media = MediaFiles.of(store)
    return None if media.in_database else media.folder


def _check(store: Storage, result: IngestResult, export: Export) -> None:
    """The ingest stored one message per chat line and one media document per file, with the
    file's name and the SHA-256 of the bytes the zip holds."""
    files = export.files
    require(
        result.messages == result.new == result.media == files
        and result.media_files == result.media_files_new == files,
        f"ingest_export of {files:,} files read {result.messages:,} messages ({result.new:,} "
        f"new, {result.media:,} media) and {result.media_files:,} files "
        f"({result.media_files_new:,} new)",
    )
    messages = int(store.query("SELECT count(*) FROM messages")[0][0])
    require(messages == files, f"the database holds {messages:,} messages, not {files:,}")
    documents = store.table("documents")
    stored = store.to_pyarrow(
        documents.filter(documents.doc_type == "media").select("filename", "source_checksum")
    )
    require(
        stored.num_rows == files,
        f"the database holds {stored.num_rows:,} media documents, not {files:,}",
    )
    found = dict(
        zip(stored["filename"].to_pylist(), stored["source_checksum"].to_pylist(), strict=True)
    )
    wrong = sorted(name for name, digest in export.digests.items() if found.get(name) != digest)
    require(
        not wrong,
        f"{len(wrong):,} media documents miss their file or its SHA-256, such as {wrong[:3]}",
    )


def _extrapolate(small: tuple[int, float], large: tuple[int, float], files: int) -> float:
    """Seconds for ``files`` on the line through two (files, seconds) points: a fixed cost
    plus a cost per file (the per-file cost of the larger point alone, if the line falls)."""
    (n1, t1), (n2, t2) = small, large
    per_file = (t2 - t1) / (n2 - n1)
    if per_file <= 0:
        return t2 / n2 * files
    return t2 + per_file * (files - n2)
