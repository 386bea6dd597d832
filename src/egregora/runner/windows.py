"""Cut a thread's messages into windows: local calendar days, ISO weeks, or N messages.

Days and weeks are those of the zone the export's times were read in, so a message sent at
23:30 in Lisbon belongs to that Lisbon day whatever the machine's zone. A window holds only
the days that have messages: a day without any is no window.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from egregora.runner.model import Window, WindowSpec, signature

_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")
_LABEL_FORMAT = {"day": "%Y-%m-%d", "week": "%G-W%V"}


def zone(name: str) -> tzinfo:
    """An IANA zone, or a fixed offset written ``+HH:MM`` (what ingest falls back to)."""
    found = _OFFSET.fullmatch(name)
    if found:
        sign = -1 if found.group(1) == "-" else 1
        return timezone(sign * timedelta(hours=int(found.group(2)), minutes=int(found.group(3))))
    return ZoneInfo(name)


def plan_windows(
    thread_id: str, messages: pa.Table, spec: WindowSpec, zone_name: str
) -> list[Window]:
    """The windows of ``messages`` (columns event_id, seq, ts, and author_uuid to count each
    window's people; any order), oldest first."""
    if messages.num_rows == 0:
        return []
    if "author_uuid" not in messages.column_names:  # nobody is known: everyone counts as one
        messages = messages.append_column("author_uuid", pa.array(["?"] * messages.num_rows))
    ordered = messages.select(["event_id", "seq", "ts", "author_uuid"]).sort_by("seq")
    if spec.kind == "messages":
        assert spec.size is not None
        return _runs_of(thread_id, ordered, spec)
    local = ordered["ts"].cast(pa.timestamp("us", tz=zone_name))
    labels = pc.strftime(local, format=_LABEL_FORMAT[spec.kind])
    grouped = (
        ordered.append_column("label", labels)
        .group_by("label", use_threads=False)  # keeps each group's rows in seq order
        .aggregate(
            [
                ("event_id", "list"),
                ("seq", "min"),
                ("seq", "max"),
                ("ts", "min"),
                ("ts", "max"),
                ("author_uuid", "count_distinct"),  # nulls (system notices) not counted
            ]
        )
        .sort_by([("ts_min", "ascending"), ("label", "ascending")])
    )
    where = zone(zone_name)
    windows = []
    for row in grouped.to_pylist():
        start, end = _bounds(row["label"], spec, where)
        ids = row["event_id_list"]
        windows.append(
            Window(
                thread_id=thread_id,
                spec=spec,
                label=row["label"],
                start=start,
                end=end,
                first_seq=row["seq_min"],
                last_seq=row["seq_max"],
                messages=len(ids),
                signature=signature(ids),
                people=row["author_uuid_count_distinct"],
            )
        )
    return windows


def _bounds(label: str, spec: WindowSpec, where: tzinfo) -> tuple[datetime, datetime]:
    """Local midnight to local midnight (a day, or Monday to Monday), as UTC instants."""
    if spec.kind == "day":
        first = date.fromisoformat(label)
        after = first + timedelta(days=1)
    else:
        year, week = label.split("-W")
        first = date.fromisocalendar(int(year), int(week), 1)
        after = first + timedelta(days=7)
    start = datetime.combine(first, time(), where).astimezone(UTC)
    end = datetime.combine(after, time(), where).astimezone(UTC)
    return start, end


def _runs_of(thread_id: str, ordered: pa.Table, spec: WindowSpec) -> list[Window]:
    """Consecutive runs of ``spec.size`` messages in thread order; the last may be shorter."""
    size = spec.size
    assert size is not None
    ids = ordered["event_id"].to_pylist()
    seqs = ordered["seq"].to_pylist()
    times = ordered["ts"].to_pylist()
    authors = ordered["author_uuid"].to_pylist()
    windows = []
    for index, first in enumerate(range(0, len(ids), size)):
        last = min(first + size, len(ids)) - 1
        chunk = ids[first : last + 1]
        windows.append(
            Window(
                thread_id=thread_id,
                spec=spec,
                label=f"n{size}-{index + 1:05d}",
                start=min(times[first : last + 1]),
                # The end is exclusive: just after the run's last message.
                end=max(times[first : last + 1]) + timedelta(microseconds=1),
                first_seq=seqs[first],
                last_seq=seqs[last],
                messages=len(chunk),
                signature=signature(chunk),
                people=len({a for a in authors[first : last + 1] if a is not None}),
            )
        )
    return windows
