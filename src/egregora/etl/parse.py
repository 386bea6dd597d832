"""Parse the text of a WhatsApp export into entries: when, who, what kind, what text.

The text is split into lines and read column by column with pyarrow's (RE2) kernels: which
lines start with a header, the header's fields, the author before the first ": ". Only the
entries that need a closer look go through Python one by one: those with continuation lines,
possible attachments or notices, or iOS notice marks. The date order (day or month first) is
decided from every header at once, never line by line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from egregora.constants import DATE_ORDERS as DATE_ORDERS
from egregora.constants import DateOrder as DateOrder
from egregora.errors import ConfigurationError, EgregoraError
from egregora.etl.archive import utf8_array
from egregora.etl.formats import (
    ANDROID_ATTACHED_LINE,
    ATTACHED,
    CLOSES,
    EXTENSION_TYPES,
    EXTENSIONS,
    HEADER,
    IOS_CLOSE,
    IOS_NOTICE,
    MAX_MESSAGE_BYTES,
    MAX_NAME,
    MAY_BE_MEDIA,
    ODD_CHARACTERS,
    OMITTED,
    OMITTED_LINE,
    PM,
    TIME_FIRST_HEADER,
    YEAR_FIRST_HEADER,
    clean,
    media_type,
    omitted_type,
)
from egregora.etl.notices import (
    ENCRYPTION_START,
    HINT,
    HINT_PATTERN,
    NOTICE_WORDS,
    is_encryption_notice,
    is_notice,
)

# Each layout's header, and the date order it fixes (None: decided from the dates).
LAYOUTS: tuple[tuple[str, DateOrder | None], ...] = (
    (HEADER, None),
    (YEAR_FIRST_HEADER, "ymd"),
    (TIME_FIRST_HEADER, None),
)
# The header's groups: open, a, b, year, before, hour, minute, second, ampm.
Stamp = tuple[str | None, ...]
Classified = tuple[str, str | None, str | None, str | None, str | None, bool, bool]

# What Python's str.strip() removes (str.isspace); a test checks the list against Python.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# Text that `_classify` must see: a possible encryption notice after a name, or a name and a
# colon with nothing after it (an empty message).
_SPACE = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in WHITESPACE) + "]"  # for RE2
_CLOSER_LOOK = ENCRYPTION_START + f"|:{_SPACE}*$"
_SEPARATOR = ": "  # between the author and the text
_SLICE = 50_000  # entries read together; slices are read on every core
_WORKERS = min(os.cpu_count() or 1, 4)
_T = TypeVar("_T")


class ExportFormatError(EgregoraError):
    """The text is not a WhatsApp export this parser can read."""

    exit_code = 2


@dataclass(frozen=True)
class Entries:
    """The parsed export: one element per entry in each column (Arrow arrays)."""

    local_times: pa.Array  # timestamp[us] as written: no zone yet
    stamps: pa.Array  # the same local times as ISO 8601 text (2024-01-12T10:00:00)
    kinds: pa.Array
    authors: pa.Array  # NULL for system notices
    texts: pa.Array
    media_filenames: pa.Array
    media_types: pa.Array
    omitted_media: pa.Array  # bool: the export left the attachment out
    date_order: DateOrder = "dmy"
    date_order_guessed: bool = False

    def __len__(self) -> int:
        return len(self.kinds)


def parse_export(text: str | bytes, *, name: str, date_order: DateOrder | None = None) -> Entries:
    """The entries of an export's text (a str, or UTF-8 bytes); ``name`` is for errors only."""
    if date_order is not None and date_order not in DATE_ORDERS:
        raise ConfigurationError(f"--date-order must be dmy or mdy, not {date_order!r}")
    lines, odd = _lines(text.encode() if isinstance(text, str) else text, name)
    del text  # split into lines: a caller that handed the text over has it freed now
    header, fixed = _layout(lines)
    pa.default_memory_pool().release_unused()
    found = _on_every_core(lambda part: pc.extract_regex(part, header), lines)
    closes = pc.struct_field(found, "close")
    consistent = pc.equal(
        pc.equal(pc.struct_field(found, "open"), "["), pc.equal(closes, IOS_CLOSE)
    )
    is_header = pc.fill_null(pc.and_(pc.is_valid(found), consistent), False)
    headers = pc.indices_nonzero(is_header)
    _check_start(lines, headers, name)
    fields = found.take(headers)
    pa.default_memory_pool().release_unused()
    order, guessed = (fixed, False) if fixed else _date_order(fields, name, date_order)
    stamps = _stamps(fields, order, name)
    closes = pc.struct_field(fields, "close")

    def rests(start: int, count: int) -> pa.Array:
        return _rests(lines.take(headers.slice(start, count)), closes.slice(start, count))

    continued = _continuations(lines, is_header, headers, name)
    classes = _classify_all(rests, len(headers), continued, odd.take(headers))
    return Entries(
        local_times=stamps.cast(pa.timestamp("us")),
        stamps=stamps,
        **classes._asdict(),
        date_order=order,
        date_order_guessed=guessed,
    )


# -- lines --------------------------------------------------------------------------------------
def _lines(data: bytes, name: str) -> tuple[pa.Array, pa.Array]:
    """The text's lines, cleaned (`clean`): line ends as \\n, no direction marks; and which
    lines were cleaned (only those may hold `IOS_NOTICE`)."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    whole = utf8_array(data)
    if whole is None:
        raise ExportFormatError(f"{name} is not UTF-8 text; export the chat again")
    lines = pc.split_pattern(whole, "\n").flatten()  # plain strings below 2 GiB: no copy
    _check_lengths(lines, name)
    odd = pc.match_substring_regex(lines, ODD_CHARACTERS)
    if pc.any(odd).as_py():
        cleaned = [clean(line) for line in lines.filter(odd).to_pylist()]
        lines = pc.replace_with_mask(lines, odd, pa.array(cleaned, lines.type))
    return lines, odd


def _check_lengths(lines: pa.Array, name: str) -> None:
    """No line longer than a message may be (``MAX_MESSAGE_BYTES``)."""
    lengths = pc.binary_length(lines)
    longest = pc.max(lengths).as_py() or 0
    if longest > MAX_MESSAGE_BYTES:
        number = pc.index(lengths, longest).as_py() + 1
        raise _too_long(name, f"line {number} is {longest:,} bytes long")


def _check_message_sizes(numbers: pa.Array, more_lines: pa.Array, name: str) -> None:
    """No message's continuation lines together longer than ``MAX_MESSAGE_BYTES``."""
    sizes = pa.table({"entry": numbers, "size": pc.add(pc.binary_length(more_lines), 1)})
    totals = sizes.group_by("entry").aggregate([("size", "sum")])
    largest = pc.max(totals["size_sum"]).as_py() or 0
    if largest > MAX_MESSAGE_BYTES:
        entry = totals["entry"][pc.index(totals["size_sum"], largest).as_py()].as_py()
        raise _too_long(name, f"message {entry + 1} is {largest:,} bytes long")


def _too_long(name: str, what: str) -> ExportFormatError:
    return ExportFormatError(
        f"{name}: {what}, more than the {MAX_MESSAGE_BYTES:,} bytes a WhatsApp message can "
        "hold; the file is damaged or not an export: export the chat again. Nothing was written"
    )


def _layout(lines: pa.Array) -> tuple[str, DateOrder | None]:
    """The layout of the file's first line that is not blank (an export has one layout); the
    usual one when no layout reads it (``_check_start`` then names the line)."""
    for line in lines:
        text = line.as_py()
        if text.strip():
            first = pa.array([text], pa.string())
            for header, order in LAYOUTS:
                if pc.extract_regex(first, header)[0].is_valid:
                    return header, order
            break
    return LAYOUTS[0]


def _check_start(lines: pa.Array, headers: pa.Array, name: str) -> None:
    """Nothing but blank lines may come before the first header."""
    first = headers[0].as_py() if len(headers) else len(lines)
    for number, line in enumerate(lines.slice(0, first).to_pylist(), start=1):
        if line.strip():
            raise ExportFormatError(
                f"{name} is not a WhatsApp chat export: line {number} does not start with a "
                "date and time such as '12/01/2024, 10:00 - ' or '[12/01/2024, 10:00:00] '; "
                "export the chat from WhatsApp (More > Export chat) and ingest that file"
            )
    if not len(headers):  # nothing, or only blank lines and invisible marks
        raise ExportFormatError(f"{name} is empty: there is nothing to ingest")


def _rests(header_lines: pa.Array, closes: pa.Array) -> pa.Array:
    """What follows each header: the line after its first close ("] " or " - "), which no
    date or time holds; a split is several times cheaper than matching the header again
    (and a split on the file's one close cheaper than on a pattern)."""
    used = pc.unique(closes)
    if len(used) == 1:
        parts = pc.split_pattern(header_lines, used[0].as_py(), max_splits=1)
    else:
        parts = pc.split_pattern_regex(header_lines, CLOSES, max_splits=1)
    return pc.list_element(parts, 1)


def _continuations(
    lines: pa.Array, is_header: pa.Array, headers: pa.Array, name: str
) -> dict[int, str]:
    """Entry number -> its continuation lines ("\\n" before each), for entries that have any."""
    rest = pc.invert(is_header).slice(headers[0].as_py())
    extra = pc.indices_nonzero(rest)
    if not len(extra):
        return {}
    start = headers[0].as_py()
    entry = pc.subtract(pc.cumulative_sum(pc.cast(is_header, pa.int64())), 1)
    where = pc.add(extra, start)
    numbers, more_lines = entry.take(where), lines.take(where)
    _check_message_sizes(numbers, more_lines, name)
    out: dict[int, list[str]] = {}
    for number, line in zip(numbers.to_pylist(), more_lines.to_pylist(), strict=True):
        out.setdefault(number, []).append(line)
    return {number: "".join("\n" + line for line in more) for number, more in out.items()}


# -- dates --------------------------------------------------------------------------------------
def _date_order(
    fields: pa.StructArray, name: str, wanted: DateOrder | None
) -> tuple[DateOrder, bool]:
    """Day-first or month-first, from every date in the file.

    A first field above 12 means day-first, a second above 12 month-first. When no date says,
    the order under which the messages run forward in time wins; if both do, the file is
    ambiguous and the caller must say (``--date-order``).
    """
    firsts = pc.max(_int(fields, "a")).as_py()
    seconds = pc.max(_int(fields, "b")).as_py()
    day_first, month_first = firsts > 12, seconds > 12
    if wanted is not None:
        if (wanted == "dmy" and month_first) or (wanted == "mdy" and day_first):
            raise ExportFormatError(
                f"{name} cannot be read with --date-order {wanted}: it has dates whose "
                f"{'second' if wanted == 'dmy' else 'first'} field is above 12"
            )
        return wanted, False
    if day_first and month_first:
        raise ExportFormatError(
            f"{name} mixes day-first and month-first dates (both fields go above 12); it is "
            "not one export: ingest each chat's own file"
        )
    if day_first or month_first:
        return ("dmy" if day_first else "mdy"), False
    if pc.all(pc.equal(_int(fields, "a"), _int(fields, "b"))).as_py():
        return "dmy", False  # every date is the same either way (1/1/21): nothing to decide
    forward = [order for order in DATE_ORDERS if _runs_forward(fields, order)]
    if len(forward) == 1:
        return forward[0], True
    raise ExportFormatError(
        f"the dates in {name} read both as day/month and as month/day (no day is above 12); "
        "say which with --date-order dmy or --date-order mdy"
    )


def _runs_forward(fields: pa.StructArray, order: DateOrder) -> bool:
    """Every date reads under ``order``, and the distinct times never go back."""
    parts = _parts(fields, order)
    if pc.any(pc.invert(_valid(parts))).as_py():
        return False
    times = pc.unique(_iso(parts))  # in order of first appearance
    backwards = pc.less(times.slice(1), times.slice(0, len(times) - 1))
    return not pc.any(backwards).as_py()


def _stamps(fields: pa.StructArray, order: DateOrder, name: str) -> pa.Array:
    """Each header's local time as ISO 8601 text; an impossible one is an error naming it."""
    parts = _parts(fields, order)
    valid = _valid(parts)
    if not pc.all(valid).as_py():
        bad = pc.indices_nonzero(pc.invert(valid))[0].as_py()
        _local_time(_stamp(fields, bad), order, name)  # raises, naming the date
        raise ExportFormatError(f"{name} has an impossible date or time in entry {bad + 1}")
    return _iso(parts)


_Parts = dict[str, pa.Array]


def _int(fields: pa.StructArray, field: str) -> pa.Array:
    values = pc.struct_field(fields, field)
    return pc.cast(pc.if_else(pc.equal(values, ""), "0", values), pa.int64())


def _parts(fields: pa.StructArray, order: DateOrder) -> _Parts:
    """Year, month, day, hour, minute and second of each header, as integers."""
    a, b = _int(fields, "a"), _int(fields, "b")
    year = _int(fields, "year")
    hour = _int(fields, "hour")
    marker = _marker(fields)
    twelve = pc.not_equal(marker, "")
    pm = pc.match_substring_regex(marker, PM)
    # 12 AM is 0 and 12 PM is 12: h % 12, plus 12 after noon. Some phones write midnight as
    # 00:08 a. m.: 0 reads as 12 would.
    on_clock = pc.if_else(pc.equal(hour, 12), 0, hour)
    return {
        "year": pc.if_else(pc.less(year, 100), pc.add(year, 2000), year),  # WhatsApp: 2009 on
        "month": b if order == "dmy" else a,
        "day": a if order == "dmy" else b,
        "hour": pc.if_else(twelve, pc.add(on_clock, pc.if_else(pm, 12, 0)), hour),
        "twelve_ok": pc.or_(pc.invert(twelve), pc.less_equal(hour, 12)),
        "minute": _int(fields, "minute"),
        "second": _int(fields, "second"),
    }


def _marker(fields: pa.StructArray) -> pa.Array:
    """A 12-hour clock's marker, before the time or after it ("" on a 24-hour clock)."""
    after = pc.struct_field(fields, "ampm")
    return pc.if_else(pc.equal(after, ""), pc.struct_field(fields, "before"), after)


def _valid(parts: _Parts) -> pa.Array:
    """Whether each header names a real local time (the calendar is checked per distinct day)."""
    day_key = pc.add(
        pc.multiply(parts["year"], 10_000), pc.add(pc.multiply(parts["month"], 100), parts["day"])
    )
    impossible = [key for key in pc.unique(day_key).to_pylist() if not _real_day(key)]
    checks = [
        parts["twelve_ok"],
        pc.less_equal(parts["hour"], 23),
        pc.less_equal(parts["minute"], 59),
        pc.less_equal(parts["second"], 59),
    ]
    if impossible:
        checks.append(pc.invert(pc.is_in(day_key, pa.array(impossible, pa.int64()))))
    valid = checks[0]
    for check in checks[1:]:
        valid = pc.and_(valid, check)
    return valid


def _real_day(key: int) -> bool:
    try:
        datetime(key // 10_000, key // 100 % 100, key % 100)
    except ValueError:
        return False
    return True


def _iso(parts: _Parts) -> pa.Array:
    def padded(values: pa.Array, width: int) -> pa.Array:
        return pc.utf8_lpad(pc.cast(values, pa.string()), width=width, padding="0")

    date = pc.binary_join_element_wise(
        padded(parts["year"], 4), padded(parts["month"], 2), padded(parts["day"], 2), "-"
    )
    time = pc.binary_join_element_wise(
        padded(parts["hour"], 2), padded(parts["minute"], 2), padded(parts["second"], 2), ":"
    )
    return pc.binary_join_element_wise(date, time, "T")


def _stamp(fields: pa.StructArray, row: int) -> Stamp:
    values = fields[row].as_py() or {}
    keys = ("open", "a", "b", "year", "before", "hour", "minute", "second", "ampm")
    return tuple(values.get(key) or None for key in keys)


def _local_time(stamp: Stamp, order: DateOrder, name: str) -> datetime:
    """One header's local time; raises naming the date when it is impossible."""
    _, a, b, year, before, hour, minute, second, ampm = stamp
    day, month = (int(a or 0), int(b or 0)) if order == "dmy" else (int(b or 0), int(a or 0))
    full_year = int(year or 0)
    if full_year < 100:
        full_year += 2000
    h = int(hour or 0)
    marker = ampm or before
    if marker is not None:
        if not 0 <= h <= 12:
            raise ExportFormatError(f"{name}: {h} is not an hour of a 12-hour clock")
        h = h % 12 + (12 if re.search(PM, marker) else 0)
    try:
        return datetime(full_year, month, day, h, int(minute or 0), int(second or 0))
    except ValueError as exc:
        shown = f"{a}/{b}/{year} {hour}:{minute}"
        raise ExportFormatError(f"{name} has an impossible date or time {shown}: {exc}") from exc


# -- what each entry is -------------------------------------------------------------------------
class _Classes(NamedTuple):
    kinds: pa.Array
    authors: pa.Array
    texts: pa.Array
    media_filenames: pa.Array
    media_types: pa.Array
    omitted_media: pa.Array


def _classify_all(
    rests: Callable[[int, int], pa.Array], count: int, continued: dict[int, str], cleaned: pa.Array
) -> _Classes:
    """Kind, author, text and attachment of each of ``count`` entries, read in slices on every
    core (Arrow's kernels let go of the interpreter), then the names that only ever send
    notices. ``rests(start, count)`` gives a slice's text after the headers: made slice by
    slice, so the copies a slice's reading makes never exist for the whole file at once."""
    own: list[dict[int, str]] = [{} for _ in range(0, count, _SLICE)]
    for row, more in continued.items():
        own[row // _SLICE][row % _SLICE] = more

    def read(part: int) -> list[pa.Array]:
        start = part * _SLICE
        out = _read(rests(start, _SLICE), own[part], cleaned.slice(start, _SLICE))
        pa.default_memory_pool().release_unused()
        return out

    parts = _in_parallel(read, len(own))
    *classes, marked_read = (pa.concat_arrays([p[i] for p in parts]) for i in range(7))
    if pc.any(marked_read).as_py():
        classes = _unheard(classes, marked_read)
    return _Classes(*classes)


def _in_parallel(work: Callable[[int], _T], parts: int) -> list[_T]:
    """``work`` of each part, on every core (Arrow's kernels let go of the interpreter)."""
    if parts <= 1:
        return [work(part) for part in range(parts)]
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        return list(pool.map(work, range(parts)))


def _on_every_core(kernel: Callable[[pa.Array], pa.Array], values: pa.Array) -> pa.Array:
    """``kernel`` of ``values``, computed slice by slice in parallel."""
    slices = _in_parallel(
        lambda part: kernel(values.slice(part * _SLICE, _SLICE)), -(-len(values) // _SLICE)
    )
    return pa.concat_arrays(slices) if slices else kernel(values)


def _read(rests: pa.Array, continued: dict[int, str], cleaned: pa.Array) -> list[pa.Array]:
    """Kind, author, text, attachment (file, type, omitted) and the iOS notice mark on what
    reads as a message, of each entry in ``rests`` (a slice of the export's).

    Most entries are "Name: text", read here column by column exactly as `_classify` would
    read them (continuation lines are joined to the text in Python, which is cheap); the
    entries that may be a notice, an attachment, omitted media or an empty message are
    handed to `_classify` itself. ``cleaned`` marks the entries whose first line `clean`
    changed (no other may hold `IOS_NOTICE`).
    """
    # "Name: text": the name is what comes before the first ": " (appended so every row has one).
    split = pc.split_pattern(
        pc.binary_join_element_wise(rests, _SEPARATOR, ""), _SEPARATOR, max_splits=1
    )
    name, after = pc.list_element(split, 0), pc.list_element(split, 1)
    length = pc.utf8_length(name)
    trimmed = pc.utf8_trim(name, characters=WHITESPACE)
    authored = pc.and_(
        pc.and_(pc.not_equal(after, ""), pc.not_equal(trimmed, "")),
        pc.and_(pc.less_equal(length, MAX_NAME), pc.invert(pc.match_substring(name, ":"))),
    )
    written = pc.utf8_slice_codeunits(after, 0, -len(_SEPARATOR))  # the text as written
    said = pc.utf8_rtrim(written, characters=WHITESPACE)
    marked = pc.and_(authored, pc.starts_with(written, IOS_NOTICE))
    looks = pc.match_substring_regex(rests, _CLOSER_LOOK, ignore_case=True)
    hinted = pc.match_substring_regex(name, HINT, ignore_case=True)
    media = pc.match_substring_regex(said, MAY_BE_MEDIA, ignore_case=True)
    closer = pc.or_(
        looks,
        pc.and_(authored, pc.or_(pc.or_(media, pc.equal(said, "")), hinted)),
    )
    # Marked and holding a notice's word (searched in the few marked entries only).
    notice_like = _on(
        marked, said, lambda s: pc.match_substring_regex(s, NOTICE_WORDS, ignore_case=True)
    )
    closer = pc.or_(closer, notice_like)
    # iOS's notice mark after a later ": " than the first: a chat name holding ": ".
    later_mark = _on(
        pc.and_(cleaned, pc.invert(marked)),
        rests,
        lambda r: pc.match_substring(r, _SEPARATOR + IOS_NOTICE),
    )
    closer = pc.or_(closer, later_mark)
    many = pa.array(sorted(continued), pa.int64())
    is_continued = pc.is_in(pa.array(range(len(rests)), pa.int64()), value_set=many)
    if continued:
        closer = pc.or_(closer, pc.and_(marked, is_continued))
    # One-line Android attachments and omitted media, read here as `_classify` reads them
    # (without the marks Android puts before them).
    plain_media = _and_all(
        authored,
        media,
        pc.invert(looks),
        pc.invert(hinted),
        pc.invert(is_continued),
        pc.invert(notice_like),
        pc.invert(later_mark),
    )
    bare = pc.replace_substring(said.filter(plain_media), IOS_NOTICE, "")
    filenames = _scatter(
        plain_media,
        pc.utf8_trim(
            pc.struct_field(pc.extract_regex(bare, ANDROID_ATTACHED_LINE), "file"),
            characters=WHITESPACE,
        ),
    )
    omitted = pc.fill_null(
        _scatter(plain_media, pc.match_substring_regex(bare, OMITTED_LINE)), False
    )
    read_media = pc.or_(pc.is_valid(filenames), omitted)
    closer = pc.and_(closer, pc.invert(read_media))
    nobody = pa.nulls(len(rests), pa.string())
    # The text: what was said, but a notice's whole line, and no text for media read here.
    others = pc.or_(pc.invert(authored), read_media)
    if pc.any(others).as_py():
        rows = pc.indices_nonzero(others)
        whole = pc.utf8_rtrim(rests.take(rows), characters=WHITESPACE)
        values = pc.if_else(read_media.take(rows), pa.scalar(None, pa.string()), whole)
        texts = pc.replace_with_mask(said, others, values)
    else:
        texts = said
    if continued:
        joined = pc.and_(is_continued, pc.invert(closer))
        texts = _joined(texts, joined, authored, written, rests, continued)
    with_mark = _on(cleaned, texts, lambda t: pc.match_substring(t, IOS_NOTICE))
    if pc.any(with_mark).as_py():
        texts = pc.replace_with_mask(
            texts, with_mark, pc.replace_substring(texts.filter(with_mark), IOS_NOTICE, "")
        )
    columns = [
        pc.if_else(read_media, "media", pc.if_else(authored, "text", "system")),
        pc.if_else(authored, trimmed, nobody),
        texts,
        filenames,
        _media_types(filenames),
        omitted,
        # marked as a notice, but read as a message
        _and_all(marked, pc.invert(closer), pc.invert(read_media)),
    ]
    rows = pc.indices_nonzero(closer)
    if len(rows):
        looked = [
            _classify((rest + continued.get(row, "")).rstrip())
            for row, rest in zip(rows.to_pylist(), rests.take(rows).to_pylist(), strict=True)
        ]
        columns = [
            pc.replace_with_mask(column, closer, pa.array(values, column.type))
            for column, values in zip(columns, zip(*looked, strict=True), strict=True)
        ]
    return columns


def _scatter(mask: pa.Array, values: pa.Array) -> pa.Array:
    """``values`` (one per true row of ``mask``) in those rows, NULL elsewhere."""
    return pc.replace_with_mask(pa.nulls(len(mask), values.type), mask, values)


def _on(mask: pa.Array, values: pa.Array, test: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """``test`` of the rows ``mask`` selects, false elsewhere (for tests of few rows)."""
    if not pc.any(mask).as_py():
        return pc.fill_null(pa.nulls(len(mask), pa.bool_()), False)
    return pc.fill_null(_scatter(mask, test(values.filter(mask))), False)


def _and_all(*masks: pa.Array) -> pa.Array:
    result = masks[0]
    for mask in masks[1:]:
        result = pc.and_(result, mask)
    return result


def _media_types(filenames: pa.Array) -> pa.Array:
    """`media_type` of each file name, column by column (NULL for no file)."""
    extensions = pc.utf8_lower(
        pc.struct_field(pc.extract_regex(filenames, r"\.(?P<e>[^.]*)$"), "e")
    )
    known = pc.index_in(extensions, value_set=pa.array(EXTENSIONS, pa.string()))
    types = pc.fill_null(pa.array(EXTENSION_TYPES, pa.string()).take(known), "document")
    return pc.if_else(pc.is_valid(filenames), types, pa.scalar(None, pa.string()))


def _joined(
    texts: pa.Array,
    rows: pa.Array,
    authored: pa.Array,
    written: pa.Array,
    rests: pa.Array,
    continued: dict[int, str],
) -> pa.Array:
    """``texts`` where ``rows`` holds replaced by the first line as written (the text, or a
    notice's whole line) and the entry's continuation lines, trailing whitespace and
    `IOS_NOTICE` removed."""
    where = pc.indices_nonzero(rows)
    if not len(where):
        return texts
    first = pc.if_else(authored.take(where), written.take(where), rests.take(where))
    whole = [
        (line + continued[row]).rstrip().replace(IOS_NOTICE, "")
        for row, line in zip(where.to_pylist(), first.to_pylist(), strict=True)
    ]
    return pc.replace_with_mask(texts, rows, pa.array(whole, pa.string()))


def _unheard(columns: list[pa.Array], marked: pa.Array) -> list[pa.Array]:
    """Entries marked as notices (iOS) from a name that never says anything unmarked are
    notices in a language the patterns do not know: that name is the chat's, not a member's."""
    kinds, authors, texts, *rest = columns
    spoke = pc.unique(authors.filter(pc.and_(pc.invert(marked), pc.not_equal(kinds, "system"))))
    suspects = pc.unique(authors.filter(marked))
    chat = suspects.filter(pc.invert(pc.is_in(suspects, value_set=spoke)))
    if not len(chat):
        return columns
    notices = pc.and_(marked, pc.is_in(authors, value_set=chat))
    kinds = pc.if_else(notices, "system", kinds)
    authors = pc.if_else(notices, pa.scalar(None, pa.string()), authors)
    return [kinds, authors, texts, *rest]


def _classify(rest: str) -> Classified:
    """(kind, author, text, media filename, media type, media omitted, marked) of one entry's
    text; ``marked``: an iOS notice mark on what still reads as a message."""
    split = rest.find(_SEPARATOR)
    if split < 0 and rest.endswith(":") and _is_name(rest[:-1]):
        return "text", rest[:-1].strip(), None, None, None, False, False  # nothing said
    mark = rest.find(_SEPARATOR + IOS_NOTICE)
    if mark > split >= 0 and mark <= MAX_NAME and "\n" not in rest[:mark]:
        # iOS writes the chat's name before a notice, and that name may hold ": " itself.
        notice = _plain(rest[mark + len(_SEPARATOR) :])
        if is_notice(notice) or is_encryption_notice(notice):
            return _notice(notice)
    author = rest[:split] if 0 < split <= MAX_NAME else ""
    if not _is_name(author):
        return _notice(rest)
    if " " in author and HINT_PATTERN.search(author) and is_notice(_plain(rest)):
        return _notice(rest)
    text = rest[split + 2 :]
    marked = text[:1] == IOS_NOTICE
    text = _plain(text)
    if is_encryption_notice(text) or (marked and is_notice(text)):
        return _notice(text)  # whatever name came before it: the chat's or a person's
    author = author.strip()
    if "<" in text or "(" in text:
        attached = ATTACHED.match(text)
        if attached is not None:
            filename = (attached.group("ios") or attached.group("android")).strip()
            caption = attached.group("caption") or None
            return "media", author, caption, filename, media_type(filename), False, False
    omitted = OMITTED.match(text)
    if omitted is not None:
        kind = omitted_type(omitted.group("kind"))
        return "media", author, omitted.group("caption") or None, None, kind, True, False
    return "text", author, text, None, None, False, marked


def _is_name(name: str) -> bool:
    """Whether ``name`` can be the name before "Name: text"."""
    return (
        0 < len(name) <= MAX_NAME and ":" not in name and "\n" not in name and not (name.isspace())
    )


def _notice(text: str) -> Classified:
    return "system", None, _plain(text), None, None, False, False


def _plain(text: str) -> str:
    """Text without the iOS notice separator (it stood for an invisible mark)."""
    return text.replace(IOS_NOTICE, "")
