"""Parse the text of a WhatsApp export into entries: when, who, what kind, what text.

The text is split into lines and read column by column with pyarrow's (RE2) kernels: which
lines start with a header, the header's fields, the author before the first ": ". Only the
entries that need a closer look go through Python one by one: those with continuation lines,
possible attachments or notices, or iOS notice marks. The date order (day or month first) is
decided from every header at once, never line by line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from egregora.errors import ConfigurationError, EgregoraError
from egregora.etl.archive import utf8_array
from egregora.etl.formats import (
    ATTACHED,
    HEADER,
    IOS_CLOSE,
    IOS_NOTICE,
    MAX_NAME,
    NOTICE,
    ODD_CHARACTERS,
    OMITTED,
    PM,
    TIME_FIRST_HEADER,
    YEAR_FIRST_HEADER,
    clean,
    media_type,
)

DateOrder = Literal["dmy", "mdy", "ymd"]
DATE_ORDERS: tuple[DateOrder, ...] = ("dmy", "mdy")  # the orders a file can leave open
# Each layout's header, and the date order it fixes (None: decided from the dates).
LAYOUTS: tuple[tuple[str, DateOrder | None], ...] = (
    (HEADER, None),
    (YEAR_FIRST_HEADER, "ymd"),
    (TIME_FIRST_HEADER, None),
)
# The header's groups: open, a, b, year, before, hour, minute, second, ampm.
Stamp = tuple[str | None, ...]
Classified = tuple[str, str | None, str | None, str | None, bool]

# What Python's str.strip() removes (str.isspace); a test checks the list against Python.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# A name that holds one of these is read as a notice ("Ana changed the subject from "x: y"").
_NOTICE_HINT_PATTERN = (
    r" (?:changed|created|added|removed|turned|deleted|joined|mudou|alterou|criou|adicionou"
    r"|removeu|ativou|desativou|apagou|entrou) "
)
_NOTICE_HINT = re.compile(_NOTICE_HINT_PATTERN, re.IGNORECASE)
# Every notice holds one of these words (in lower case): a cheap test before the full pattern.
# (Searched in lowered text: an IGNORECASE alternation is 9x slower in Python's re.)
_NOTICE_WORD = re.compile(
    r"encrypt|criptografia|protegidas|created|criou|added|adicionou|removed|removeu|left"
    r"|saiu|joined|entrou|changed|mudou|alterou|deleted|apagou|admin|disappearing"
    r"|tempor[áa]rias|security|seguran[çc]a"
)
# Text that `_classify` must see: a possible attachment, omitted media, or an iOS notice mark.
_CLOSER_LOOK = r"\(|omit|ocult|" + IOS_NOTICE
_SEPARATOR = ": "  # between the author and the text
_LARGE = 1 << 31  # Arrow's plain strings hold less than this many bytes per array


def _is_notice(text: str) -> bool:
    return _NOTICE_WORD.search(text.lower()) is not None and NOTICE.match(text) is not None


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
    lines = _lines(text.encode() if isinstance(text, str) else text, name)
    header, fixed = _layout(lines)
    found = pc.extract_regex(lines, header)
    closes = pc.struct_field(found, "close")
    consistent = pc.equal(
        pc.equal(pc.struct_field(found, "open"), "["), pc.equal(closes, IOS_CLOSE)
    )
    is_header = pc.fill_null(pc.and_(pc.is_valid(found), consistent), False)
    headers = pc.indices_nonzero(is_header)
    _check_start(lines, headers, name)
    fields = found.take(headers)
    order, guessed = (fixed, False) if fixed else _date_order(fields, name, date_order)
    stamps = _stamps(fields, order, name)
    rests = pc.replace_substring_regex(lines.take(headers), header, "", max_replacements=1)
    classes = _classify_all(rests, _continuations(lines, is_header, headers))
    return Entries(
        local_times=stamps.cast(pa.timestamp("us")),
        stamps=stamps,
        **classes._asdict(),
        date_order=order,
        date_order_guessed=guessed,
    )


# -- lines --------------------------------------------------------------------------------------
def _lines(data: bytes, name: str) -> pa.Array:
    """The text's lines, cleaned (`clean`): line ends as \\n, no direction marks."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    whole = utf8_array(data)
    if whole is None:
        raise ExportFormatError(f"{name} is not UTF-8 text; export the chat again")
    lines = pc.split_pattern(whole, "\n").flatten()
    if len(data) < _LARGE:
        lines = lines.cast(pa.string())
    odd = pc.match_substring_regex(lines, ODD_CHARACTERS)
    if pc.any(odd).as_py():
        cleaned = [clean(line) for line in lines.filter(odd).to_pylist()]
        lines = pc.replace_with_mask(lines, odd, pa.array(cleaned, lines.type))
    return lines


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


def _continuations(lines: pa.Array, is_header: pa.Array, headers: pa.Array) -> dict[int, str]:
    """Entry number -> its continuation lines ("\\n" before each), for entries that have any."""
    rest = pc.invert(is_header).slice(headers[0].as_py())
    extra = pc.indices_nonzero(rest)
    if not len(extra):
        return {}
    start = headers[0].as_py()
    entry = pc.subtract(pc.cumulative_sum(pc.cast(is_header, pa.int64())), 1)
    where = pc.add(extra, start)
    out: dict[int, list[str]] = {}
    for number, line in zip(
        entry.take(where).to_pylist(), lines.take(where).to_pylist(), strict=True
    ):
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


def _classify_all(rests: pa.Array, continued: dict[int, str]) -> _Classes:
    """Kind, author, text and attachment of every entry.

    Most entries are "Name: text" on one line, read here column by column exactly as
    `_classify` would read them; every other entry (continuation lines, a possible notice,
    attachment or omitted media, a blank text) is handed to `_classify` itself.
    """
    # "Name: text": the name is what comes before the first ": " (appended so every row has one).
    split = pc.split_pattern(
        pc.binary_join_element_wise(rests, _SEPARATOR, ""), _SEPARATOR, max_splits=1
    )
    name, after = pc.list_element(split, 0), pc.list_element(split, 1)
    length = pc.utf8_length(name)
    authored = pc.and_(
        pc.and_(pc.not_equal(after, ""), pc.greater(length, 0)),
        pc.and_(pc.less_equal(length, MAX_NAME), pc.invert(pc.match_substring(name, ":"))),
    )
    said = pc.utf8_rtrim(pc.utf8_slice_codeunits(after, 0, -len(_SEPARATOR)), characters=WHITESPACE)
    closer = pc.or_(
        pc.match_substring_regex(rests, _CLOSER_LOOK),
        pc.and_(
            authored,
            pc.or_(
                pc.or_(pc.starts_with(said, "<"), pc.equal(said, "")),
                pc.match_substring_regex(name, _NOTICE_HINT_PATTERN, ignore_case=True),
            ),
        ),
    )
    if continued:
        many = pa.array(sorted(continued), pa.int64())
        closer = pc.or_(closer, pc.is_in(pa.array(range(len(rests)), pa.int64()), value_set=many))
    nobody = pa.nulls(len(rests), pa.string())
    columns = [
        pc.if_else(authored, "text", "system"),
        pc.if_else(authored, pc.utf8_trim(name, characters=WHITESPACE), nobody),
        pc.if_else(authored, said, pc.utf8_rtrim(rests, characters=WHITESPACE)),
        nobody,  # media filenames
        nobody,  # media types
        pc.fill_null(pa.nulls(len(rests), pa.bool_()), False),  # media omitted
    ]
    rows = pc.indices_nonzero(closer)
    if len(rows):
        looked = [
            _classify((rest + continued.get(row, "")).rstrip())
            for row, rest in zip(rows.to_pylist(), rests.take(rows).to_pylist(), strict=True)
        ]
        kinds, authors, texts, filenames, omitted = (list(c) for c in zip(*looked, strict=True))
        types = [None if f is None else media_type(f) for f in filenames]
        columns = [
            pc.replace_with_mask(column, closer, pa.array(values, column.type))
            for column, values in zip(
                columns, (kinds, authors, texts, filenames, types, omitted), strict=True
            )
        ]
    return _Classes(*columns)


def _classify(rest: str) -> Classified:
    """(kind, author, text, media filename, media omitted) of one entry's text."""
    split = rest.find(_SEPARATOR)
    author = rest[:split] if 0 < split <= MAX_NAME else ""
    if not author or ":" in author or "\n" in author:
        return "system", None, _plain(rest), None, False
    if " " in author and _NOTICE_HINT.search(author) and _is_notice(_plain(rest)):
        return "system", None, _plain(rest), None, False
    text = rest[split + 2 :]
    if text[:1] == IOS_NOTICE:
        text = _plain(text)
        if _is_notice(text):
            return "system", None, text, None, False
    elif IOS_NOTICE in text:
        text = _plain(text)
    author = author.strip()
    head = text[:1]
    if head == "<" or "(" in text:
        attached = ATTACHED.match(text)
        if attached is not None:
            filename = (attached.group("ios") or attached.group("android")).strip()
            return "media", author, attached.group("caption") or None, filename, False
    if (head == "<" or "omit" in text or "ocult" in text) and OMITTED.match(text):
        return "text", author, None, None, True
    return "text", author, text, None, False


def _plain(text: str) -> str:
    """Text without the iOS notice separator (it stood for an invisible mark)."""
    return text.replace(IOS_NOTICE, "")
