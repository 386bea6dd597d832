"""The asset cache: content keys, expiry, the byte budget, LRU eviction, hits and its CLI."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from egregora.assets import (
    Asset,
    AssetCache,
    CacheStats,
    Evicted,
    KindStats,
    NewAsset,
    key_for,
    kind_of,
)
from egregora.cli.app import app
from egregora.digest import canonical_json, config_hash, content_hash
from egregora.errors import ConfigurationError, EgregoraError
from egregora.storage import Storage
from tests.support import FakeClock

runner = CliRunner()
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
NEVER = timedelta(hours=1)  # a flush_interval no test reaches: only flush_every and calls flush


@pytest.fixture
def store(any_store: Storage) -> Storage:
    return any_store  # on each engine


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def cache(store: Storage, clock: FakeClock) -> Iterator[AssetCache]:
    with AssetCache(store, flush_interval=NEVER, clock=clock) as opened:
        yield opened


def rows(store: Storage) -> list[tuple[Any, ...]]:
    """Every stored entry, in key order, as the database holds it (unflushed reads excluded)."""
    return store.query(
        "SELECT key, kind, content_type, content, size_bytes, created_at, expires_at, "
        "last_accessed_at, hits, source_url, etag, metadata FROM asset_cache ORDER BY key"
    )


def stored_hits(store: Storage, key: str) -> int:
    found = store.query("SELECT hits FROM asset_cache WHERE key = ?", [key])
    assert found, f"{key} is not stored"
    return int(found[0][0])


def stored_keys(store: Storage) -> set[str]:
    return {str(row[0]) for row in store.query("SELECT key FROM asset_cache")}


def card(n: int) -> str:
    return key_for("social_card", 1, n=n)


# -- keys ----------------------------------------------------------------------------------------
def test_a_key_names_its_kind_and_a_sha256_of_the_inputs(tmp_path: Path) -> None:
    font = tmp_path / "font.ttf"
    font.write_bytes(b"\x00glyphs")
    key = key_for("social_card", 3, title="Hi", font=font)
    kind, _, digest = key.partition(":")
    assert kind == "social_card" and kind_of(key) == "social_card"
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    # The SHA-256 of every input framed as tag, length and value: the kind, the renderer's
    # version, then the inputs by name in sorted order, a file by its bytes.
    framed = [b"s11:social_card", b"s1:3", b"m1:2", b"s4:font", b"b7:\x00glyphs"]
    framed += [b"s5:title", b"s2:Hi"]
    assert digest == hashlib.sha256(b"".join(framed)).hexdigest()
    assert key == key_for("social_card", 3, font=font, title="Hi")  # argument order is no input
    assert key == AssetCache.key_for("social_card", 3, title="Hi", font=font)
    assert kind_of("no-kind-here") is None
    assert kind_of("Not A Kind:abc") is None
    assert kind_of(":abc") is None


@pytest.mark.parametrize("kind", ["", "Social", "social card", "_x", "a:b", "é"])
def test_a_kind_outside_the_allowed_characters_is_refused(kind: str) -> None:
    with pytest.raises(ConfigurationError, match="kind"):
        key_for(kind, 1, x=1)


def test_names_kinds_versions_framing_and_types_all_change_the_key() -> None:
    base = key_for("social_card", 1, title="Hi")
    assert key_for("social_card", 1, title="Hi") == base
    assert key_for("social_card", 1, heading="Hi") != base  # the input's name counts
    assert key_for("og_image", 1, title="Hi").partition(":")[2] != base.partition(":")[2]
    assert key_for("social_card", 2, title="Hi") != base
    assert key_for("social_card", "1.1", title="Hi") != key_for("social_card", "1.10", title="Hi")
    assert key_for("k", 1, parts=[b"ab", b"c"]) != key_for("k", 1, parts=[b"a", b"bc"])
    assert key_for("k", 1, parts=["ab", "c"]) != key_for("k", 1, parts=["a", "bc"])
    assert key_for("k", 1, a="x", b="") != key_for("k", 1, a="", b="x")
    assert key_for("k", 1, x=1) != key_for("k", 1, x="1")
    assert key_for("k", 1, x=1) != key_for("k", 1, x=True)
    assert key_for("k", 1, x=1) != key_for("k", 1, x=1.0)
    assert key_for("k", 1, x=None) != key_for("k", 1, x="None")
    assert key_for("k", 1, x=b"1") != key_for("k", 1, x="1")
    assert key_for("k", 1, x=[1, 2]) != key_for("k", 1, x=[2, 1])
    assert key_for("k", 1, x=[[1], 2]) != key_for("k", 1, x=[1, [2]])
    assert key_for("k", 1, x=date(2024, 1, 1)) != key_for("k", 1, x=datetime(2024, 1, 1))
    assert key_for("k", 1, m={"a": 1, "b": 2}) == key_for("k", 1, m={"b": 2, "a": 1})
    assert key_for("k", 1, m={"a": 1, "b": 2}) != key_for("k", 1, m={"a": 2, "b": 1})


def test_inputs_that_cannot_be_hashed_faithfully_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="NaN"):
        key_for("k", 1, x=math.nan)
    with pytest.raises(ConfigurationError, match="cannot hash a set"):
        key_for("k", 1, x={1, 2})
    with pytest.raises(ConfigurationError, match="no such file"):
        key_for("k", 1, font=tmp_path / "missing.ttf")


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(), content=st.binary(min_size=1, max_size=512), kind=st.sampled_from(["a", "b"])
)
def test_any_changed_input_byte_changes_the_key(
    data: st.DataObject, content: bytes, kind: str
) -> None:
    position = data.draw(st.integers(0, len(content) - 1), label="position")
    value = data.draw(st.integers(0, 255).filter(lambda b: b != content[position]), label="byte")
    changed = bytearray(content)
    changed[position] = value
    assert key_for(kind, 7, data=content) != key_for(kind, 7, data=bytes(changed))
    assert key_for(kind, 7, data=content) == key_for(kind, 7, data=bytearray(content))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), content=st.binary(min_size=1, max_size=512))
def test_any_changed_file_byte_changes_the_key_and_moving_the_file_does_not(
    data: st.DataObject, content: bytes
) -> None:
    position = data.draw(st.integers(0, len(content) - 1), label="position")
    value = data.draw(st.integers(0, 255).filter(lambda b: b != content[position]), label="byte")
    changed = bytearray(content)
    changed[position] = value
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        original, edited = root / "font.ttf", root / "edited.ttf"
        elsewhere = root / "moved" / "renamed.bin"
        elsewhere.parent.mkdir()
        original.write_bytes(content)
        edited.write_bytes(bytes(changed))
        elsewhere.write_bytes(content)
        key = key_for("social_card", 1, font=original)
        assert key != key_for("social_card", 1, font=edited)
        assert key == key_for("social_card", 1, font=elsewhere)  # same bytes, other path


def test_a_directory_counts_by_its_files_names_and_bytes_not_its_location(tmp_path: Path) -> None:
    theme = tmp_path / "theme"
    (theme / "fonts").mkdir(parents=True)
    (theme / "card.html").write_text("<h1>{{ title }}</h1>", encoding="utf-8")
    (theme / "fonts" / "a.ttf").write_bytes(b"\x01\x02")
    key = key_for("social_card", 1, theme=theme)

    copy = tmp_path / "elsewhere" / "other-name"
    shutil.copytree(theme, copy)
    assert key_for("social_card", 1, theme=copy) == key

    (copy / "fonts" / "a.ttf").write_bytes(b"\x01\x03")  # a file inside changes
    edited = key_for("social_card", 1, theme=copy)
    assert edited != key
    (copy / "fonts" / "a.ttf").write_bytes(b"\x01\x02")
    assert key_for("social_card", 1, theme=copy) == key  # and back

    (copy / "fonts" / "a.ttf").rename(copy / "fonts" / "b.ttf")  # a file inside is renamed
    assert key_for("social_card", 1, theme=copy) != key
    (copy / "fonts" / "b.ttf").rename(copy / "fonts" / "a.ttf")
    (copy / "extra.css").write_text("", encoding="utf-8")  # an empty file is still a file
    assert key_for("social_card", 1, theme=copy) != key


# -- digest --------------------------------------------------------------------------------------
def test_content_hash_frames_every_value() -> None:
    assert content_hash(b"ab", b"c") != content_hash(b"a", b"bc")
    assert content_hash("ab", "c") != content_hash("abc")
    assert content_hash(1) != content_hash("1")
    assert content_hash([]) != content_hash({}) != content_hash(())
    assert content_hash([1, 2]) == content_hash((1, 2))
    assert content_hash(b"x") == content_hash(memoryview(b"x"))
    assert len(content_hash()) == 64


def test_config_hash_ignores_key_order_and_canonical_json_writes_dates_paths_and_sets() -> None:
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": "1"})
    text = canonical_json(
        {"when": datetime(2024, 1, 2, 3, 4, tzinfo=UTC), "p": Path("a/b"), "s": {3, 1, 2}}
    )
    assert text == '{"p":"a/b","s":[1,2,3],"when":"2024-01-02T03:04:00+00:00"}'
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ConfigurationError):
        canonical_json({"loop": loop})


def test_canonical_json_refuses_what_json_cannot_hold() -> None:
    for bad in (math.nan, math.inf, object()):
        with pytest.raises(ConfigurationError, match="cannot write the configuration as JSON"):
            canonical_json({"x": bad})


def test_mapping_keys_count_by_type_and_value() -> None:
    assert content_hash({1: "a"}) != content_hash({"1": "a"})
    assert content_hash({"a": 1, "b": 2}) == content_hash({"b": 2, "a": 1})


def test_put_never_evicts_the_entry_it_just_wrote(store: Storage, clock: FakeClock) -> None:
    """With equal access times the newest write still counts as the most recent."""
    cache = AssetCache(store, budget_bytes=10, clock=clock)
    cache.put("zz:1", b"x" * 10, "text/plain")
    written = cache.put("aa:1", b"y" * 10, "text/plain")  # the clock has not moved
    assert cache.get("aa:1") == replace(written, hits=1)
    assert "zz:1" not in cache


# -- put and get ---------------------------------------------------------------------------------
def test_put_then_get_returns_the_asset_with_utc_timestamps(
    cache: AssetCache, store: Storage, clock: FakeClock
) -> None:
    key = card(1)
    put = cache.put(
        key,
        b"\x89PNG\x00\xff",
        "image/png",
        source_url="https://example.org/p",
        etag='"v1"',
        metadata={"w": 1200, "h": 630},
    )
    assert isinstance(put, Asset)
    assert (put.kind, put.size_bytes, put.hits, put.expires_at) == ("social_card", 6, 0, None)
    clock.advance(SECOND)
    got = cache.get(key)
    assert got is not None
    assert got.content == b"\x89PNG\x00\xff" and got.content_type == "image/png"
    assert (got.source_url, got.etag) == ("https://example.org/p", '"v1"')
    assert got.metadata == {"w": 1200, "h": 630}
    assert got.created_at == T0 and got.last_accessed_at == T0 + SECOND and got.hits == 1
    for stamp in (got.created_at, got.last_accessed_at):
        assert stamp.utcoffset() == timedelta(0)
    (row,) = rows(store)
    assert row[5] == T0 and row[5].tzinfo is not None
    assert cache.get(card(2)) is None
    assert key in cache and card(2) not in cache


def test_put_takes_the_kind_from_the_key_or_from_kind(cache: AssetCache) -> None:
    assert cache.put("logo.png", b"x", "image/png", kind="image").kind == "image"
    assert cache.put(card(1), b"x", "image/png", kind="other").kind == "other"
    assert cache.stats().by_kind.keys() == {"image", "other"}


def test_put_replaces_an_entry_and_its_hits_start_over(
    cache: AssetCache, store: Storage, clock: FakeClock
) -> None:
    key = card(1)
    cache.put(key, b"old", "image/png")
    assert cache.get(key) is not None and cache.get(key) is not None
    cache.flush()
    assert cache.get(key) is not None  # one more, still only in memory
    clock.advance(SECOND)
    cache.put(key, b"newer", "image/webp", metadata={"v": 2})
    cache.flush()
    (row,) = rows(store)
    assert (row[3], row[4], row[8], row[2]) == (b"newer", 5, 0, "image/webp")
    assert row[5] == T0 + SECOND


BAD_PUTS: dict[str, tuple[str, Any, str, dict[str, Any]]] = {
    "text content": (card(1), "text", "image/png", {}),
    "None content": (card(1), None, "image/png", {}),
    "empty content_type": (card(1), b"x", "", {}),
    "zero ttl": (card(1), b"x", "image/png", {"ttl": timedelta(0)}),
    "negative ttl": (card(1), b"x", "image/png", {"ttl": -SECOND}),
    "kindless key": ("plain-key", b"x", "image/png", {}),
    "bad kind": ("plain-key", b"x", "image/png", {"kind": "Not Valid"}),
    "bigger than the budget": (card(1), b"x" * 101, "image/png", {}),
}


@pytest.mark.parametrize("case", list(BAD_PUTS))
def test_a_refused_put_writes_nothing(case: str, store: Storage, clock: FakeClock) -> None:
    cache = AssetCache(store, budget_bytes=100, flush_interval=NEVER, clock=clock)
    cache.put(card(1), b"original", "image/png", metadata={"keep": True})
    before = rows(store)
    clock.advance(SECOND)
    key, content, content_type, options = BAD_PUTS[case]
    with pytest.raises(ConfigurationError):
        cache.put(key, content, content_type, **options)
    assert rows(store) == before


def test_put_many_stores_a_batch_as_put_would_each(
    cache: AssetCache, store: Storage, clock: FakeClock
) -> None:
    cache.put(card(1), b"old", "image/png")
    assert cache.get(card(1)) is not None  # a hit in memory, for the entry about to be replaced
    clock.advance(SECOND)
    batch = [
        NewAsset(card(1), b"one", "image/png", metadata={"n": 1}),
        NewAsset(card(2), b"two!", "image/webp", ttl=timedelta(hours=1)),
        NewAsset("font:abc", b"three", "font/woff2", source_url="https://fonts.example.com/a"),
    ]
    stored = cache.put_many(batch)
    assert [a.key for a in stored] == [card(1), card(2), "font:abc"]
    assert [a.kind for a in stored] == ["social_card", "social_card", "font"]
    cache.flush()
    by_key = {r[0]: r for r in rows(store)}
    assert (by_key[card(1)][3], by_key[card(1)][8]) == (b"one", 0)  # replaced: hits start over
    assert by_key[card(2)][6] == T0 + SECOND + timedelta(hours=1)
    assert by_key["font:abc"][9] == "https://fonts.example.com/a"
    for new, asset in zip(batch, stored, strict=True):
        fetched = cache.get(new.key)
        assert fetched is not None and fetched.content == asset.content == new.content
    assert cache.put_many([]) == []


def test_put_many_with_one_bad_asset_writes_none(cache: AssetCache, store: Storage) -> None:
    good = NewAsset(card(1), b"fine", "image/png")
    for bad in (NewAsset(card(2), b"x", ""), NewAsset(card(1), b"again", "image/png")):
        with pytest.raises(ConfigurationError):
            cache.put_many([good, bad])
        assert rows(store) == []


def test_put_many_over_budget_keeps_the_newest_it_can(store: Storage, clock: FakeClock) -> None:
    cache = AssetCache(store, budget_bytes=10, flush_interval=NEVER, clock=clock)
    cache.put_many([NewAsset(card(i), b"1234", "image/png") for i in range(4)])
    kept = [r[0] for r in rows(store)]
    assert card(3) in kept and len(kept) == 2  # two of 4 bytes fit in 10, three do not
    assert sum(r[4] for r in rows(store)) == 8


def test_a_naive_clock_is_refused_and_writes_nothing(store: Storage) -> None:
    cache = AssetCache(store, clock=lambda: datetime(2024, 1, 1))
    with pytest.raises(EgregoraError, match="time zone"):
        cache.put(card(1), b"x", "image/png")
    assert rows(store) == []


@pytest.mark.parametrize(
    "options",
    [
        {"budget_bytes": -1},
        {"default_ttl": timedelta(0)},
        {"default_ttl": -SECOND},
        {"flush_every": 0},
    ],
)
def test_a_cache_with_impossible_settings_is_refused(store: Storage, options: Any) -> None:
    with pytest.raises(ConfigurationError):
        AssetCache(store, **options)


# -- expiry --------------------------------------------------------------------------------------
def test_an_entry_is_served_until_its_ttl_and_evict_then_counts_it_expired(
    cache: AssetCache, clock: FakeClock
) -> None:
    short, forever = card(1), card(2)
    put = cache.put(short, b"x" * 40, "image/png", ttl=timedelta(minutes=10))
    cache.put(forever, b"y" * 7, "image/png")
    assert put.expires_at == T0 + timedelta(minutes=10)
    clock.advance(timedelta(minutes=10) - SECOND)
    assert cache.get(short) is not None and short in cache
    assert cache.stats().expired == 0
    clock.advance(SECOND)  # exactly at expiry: gone
    assert cache.get(short) is None and short not in cache
    stats = cache.stats()
    assert (stats.entries, stats.expired, stats.session_hits, stats.session_misses) == (2, 1, 1, 1)
    assert cache.evict() == Evicted(expired=1, evicted=0, bytes_freed=40, bytes_left=7)
    assert cache.stats().entries == 1
    clock.advance(timedelta(days=10_000))
    assert cache.get(forever) is not None
    assert cache.evict() == Evicted(0, 0, 0, 7)


def test_default_ttl_applies_when_put_names_none(store: Storage, clock: FakeClock) -> None:
    cache = AssetCache(store, default_ttl=timedelta(hours=1), clock=clock)
    assert cache.put(card(1), b"x", "image/png").expires_at == T0 + timedelta(hours=1)
    put = cache.put(card(2), b"x", "image/png", ttl=timedelta(hours=3))
    assert put.expires_at == T0 + timedelta(hours=3)
    clock.advance(timedelta(hours=2))
    assert cache.get(card(1)) is None and cache.get(card(2)) is not None


# -- the budget and LRU order --------------------------------------------------------------------
SIZES = [300, 50, 120, 700, 10, 260, 90, 1]


def expected_kept(recency: list[tuple[str, int]], budget: int) -> set[str]:
    """Drop the least recently used (``recency`` is oldest first) until the rest fit."""
    left = list(recency)
    while sum(size for _, size in left) > budget:
        left.pop(0)
    return {key for key, _ in left}


def test_evict_holds_the_budget_and_keeps_the_most_recently_used(
    cache: AssetCache, store: Storage, clock: FakeClock
) -> None:
    keys = [card(n) for n in range(len(SIZES))]
    for key, size in zip(keys, SIZES, strict=True):
        cache.put(key, bytes(size), "application/octet-stream")
        clock.advance(SECOND)
    # Reads reorder recency: the oldest, the biggest and one from the middle become the newest.
    for n in (0, 3, 5):
        clock.advance(SECOND)
        assert cache.get(keys[n]) is not None
    order = [1, 2, 4, 6, 7, 0, 3, 5]  # oldest access first
    recency = [(keys[n], SIZES[n]) for n in order]
    before = cache.stats().bytes
    assert before == sum(SIZES)

    for budget in (sum(SIZES), 1300, 1261, 1000, 960, 959, 0):  # each drops some of the oldest
        result = cache.evict(budget)
        kept = expected_kept(recency, budget)
        assert stored_keys(store) == kept, budget
        assert cache.stats().bytes <= budget
        assert result.bytes_left == cache.stats().bytes == sum(s for k, s in recency if k in kept)
        assert result.bytes_freed == before - result.bytes_left
        assert (result.expired, result.evicted) == (0, len(recency) - len(kept))
        if budget == 1000:
            assert kept == {keys[3], keys[5]}  # read last, and 960 bytes together
        recency = [(k, s) for k, s in recency if k in kept]
        before = result.bytes_left
    assert recency == []


@pytest.mark.parametrize("flush_every", [1, 10_000])
def test_lru_order_sees_reads_whether_flushed_or_not(
    store: Storage, clock: FakeClock, flush_every: int
) -> None:
    cache = AssetCache(store, flush_every=flush_every, flush_interval=NEVER, clock=clock)
    a, b, c = card(1), card(2), card(3)
    for key in (a, b, c):
        cache.put(key, bytes(100), "image/png")
        clock.advance(SECOND)
    assert cache.get(a) is not None  # A is now the most recently used
    assert stored_hits(store, a) == (1 if flush_every == 1 else 0)  # written, or only counted

    assert cache.evict(200) == Evicted(expired=0, evicted=1, bytes_freed=100, bytes_left=200)
    assert stored_keys(store) == {a, c}
    assert stored_hits(store, a) == 1


def test_hits_are_written_once_the_flush_interval_has_passed(
    store: Storage, clock: FakeClock
) -> None:
    """Few reads still reach the table: a read that finds the last flush an interval old
    writes the hits counted since (time read from the cache's clock)."""
    cache = AssetCache(store, flush_every=10_000, flush_interval=5 * SECOND, clock=clock)
    a = card(1)
    cache.put(a, b"x", "image/png")
    clock.advance(4 * SECOND)
    assert cache.get(a) is not None
    assert stored_hits(store, a) == 0  # 4 s since the last flush: only counted
    clock.advance(SECOND)
    assert cache.get(a) is not None  # 5 s: this read writes both
    assert stored_hits(store, a) == 2
    clock.advance(4 * SECOND)
    assert cache.get(a) is not None  # 4 s since that flush: counted again
    assert stored_hits(store, a) == 2
    cache.close()
    assert stored_hits(store, a) == 3


def test_put_evicts_the_least_recently_used_when_a_write_goes_over_budget(
    store: Storage, clock: FakeClock
) -> None:
    cache = AssetCache(store, budget_bytes=100, flush_interval=NEVER, clock=clock)
    a, b, c, d = card(1), card(2), card(3), card(4)
    for key in (a, b):
        cache.put(key, bytes(40), "image/png")
        clock.advance(SECOND)
    assert cache.get(a) is not None
    clock.advance(SECOND)
    cache.put(c, bytes(40), "image/png")  # 120 > 100: B, the least recently used, goes
    assert stored_keys(store) == {a, c}
    clock.advance(SECOND)
    put = cache.put(d, bytes(100), "image/png")  # exactly the budget: only D is left
    assert stored_keys(store) == {d} and put.size_bytes == 100
    stats = cache.stats()
    assert (stats.bytes, stats.budget_bytes) == (100, 100)


def test_evict_drops_expired_entries_before_counting_the_budget(
    cache: AssetCache, store: Storage, clock: FakeClock
) -> None:
    old, new = card(1), card(2)
    cache.put(old, bytes(50), "image/png")
    clock.advance(SECOND)
    cache.put(new, bytes(50), "image/png", ttl=timedelta(minutes=1))
    clock.advance(timedelta(minutes=2))
    # The newer entry expired: dropping it alone makes the older one fit.
    assert cache.evict(50) == Evicted(expired=1, evicted=0, bytes_freed=50, bytes_left=50)
    assert stored_keys(store) == {old}


def test_evict_with_a_kind_touches_only_that_kind(
    cache: AssetCache, store: Storage, clock: FakeClock
) -> None:
    fonts = [key_for("font", 1, n=n) for n in range(3)]
    cards = [card(n) for n in range(3)]
    for font, social in zip(fonts, cards, strict=True):
        cache.put(font, bytes(30), "font/ttf", ttl=timedelta(minutes=1))
        cache.put(social, bytes(30), "image/png")
        clock.advance(SECOND)
    clock.advance(timedelta(minutes=5))  # every font expired
    result = cache.evict(30, kind="social_card")
    assert result == Evicted(expired=0, evicted=2, bytes_freed=60, bytes_left=30)
    assert stored_keys(store) == {*fonts, cards[2]}
    assert cache.evict(kind="font") == Evicted(expired=3, evicted=0, bytes_freed=90, bytes_left=0)
    with pytest.raises(ConfigurationError):
        cache.evict(-1)
    with pytest.raises(ConfigurationError):
        cache.evict(kind="Bad Kind")


# -- hits ----------------------------------------------------------------------------------------
def test_hits_are_counted_in_memory_and_persisted_by_flush_stats_and_close(
    store: Storage, clock: FakeClock
) -> None:
    cache = AssetCache(store, flush_every=256, flush_interval=NEVER, clock=clock)
    a, b = card(1), card(2)
    cache.put(a, b"a", "image/png")
    cache.put(b, b"b", "image/png")
    assert cache.flush() == 0
    seen = []
    for _ in range(3):
        clock.advance(SECOND)
        got = cache.get(a)
        assert got is not None
        seen.append(got.hits)
    assert seen == [1, 2, 3]
    assert cache.get(b) is not None
    assert stored_hits(store, a) == 0  # one UPDATE per flush, none per read
    assert cache.flush() == 2  # two entries touched
    assert (stored_hits(store, a), stored_hits(store, b)) == (3, 1)
    assert cache.flush() == 0
    (row,) = [r for r in rows(store) if r[0] == a]
    assert row[7] == T0 + 3 * SECOND  # last_accessed_at written with the hits

    assert cache.get(a) is not None
    stats = cache.stats()  # flushes first
    assert (stats.hits, stats.session_hits, stats.session_misses) == (5, 5, 0)
    assert stats.by_kind["social_card"].hits == 5

    assert cache.get(b) is not None and cache.get(card(3)) is None
    cache.close()
    assert stored_hits(store, b) == 2
    fresh = AssetCache(store, clock=clock).stats()
    assert (fresh.hits, fresh.session_hits, fresh.session_misses) == (6, 0, 0)


def test_hits_persist_across_reopening_the_database(
    empty_db: Path, tmp_path: Path, clock: FakeClock
) -> None:
    path = str(tmp_path / "hits.duckdb")
    shutil.copyfile(empty_db, path)
    with (
        Storage.open(path, create=False) as store,
        AssetCache(store, flush_interval=NEVER, clock=clock) as cache,
    ):
        cache.put(card(1), b"x", "image/png")
        for _ in range(4):
            assert cache.get(card(1)) is not None
    with Storage.open(path, create=False) as store:
        assert AssetCache(store).stats().hits == 4


def test_flush_every_writes_hits_without_being_asked(store: Storage, clock: FakeClock) -> None:
    cache = AssetCache(store, flush_every=3, flush_interval=NEVER, clock=clock)
    key = card(1)
    cache.put(key, b"x", "image/png")
    for expected in (0, 0, 3, 3, 3, 6):
        assert cache.get(key) is not None
        assert stored_hits(store, key) == expected


def test_a_read_of_an_expired_entry_is_a_miss_not_a_hit(
    cache: AssetCache, store: Storage, clock: FakeClock
) -> None:
    key = card(1)
    cache.put(key, b"x", "image/png", ttl=SECOND)
    clock.advance(2 * SECOND)
    assert cache.get(key) is None
    stats = cache.stats()
    assert (stats.hits, stats.session_hits, stats.session_misses, stats.expired) == (0, 0, 1, 1)


# -- get_or_create -------------------------------------------------------------------------------
def test_get_or_create_makes_on_a_miss_only(cache: AssetCache) -> None:
    calls: list[int] = []

    def make() -> bytes:
        calls.append(1)
        return b"rendered"

    first = cache.get_or_create(card(1), make, content_type="image/png", metadata={"w": 1})
    second = cache.get_or_create(card(1), make, content_type="image/png")
    assert len(calls) == 1
    assert (first.content, first.hits, first.metadata) == (b"rendered", 0, {"w": 1})
    assert (second.content, second.hits, second.content_type) == (b"rendered", 1, "image/png")


def test_get_or_create_makes_once_for_eight_threads_asking_at_once(
    cache: AssetCache, store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = card(1)
    calls: list[int] = []
    count_lock = threading.Lock()
    start = threading.Barrier(8)
    results: list[Asset] = []
    errors: list[BaseException] = []
    missed = threading.Condition()
    misses = 0
    get = cache.get

    def counting_get(key: str) -> Asset | None:
        nonlocal misses
        found = get(key)
        if found is None:
            with missed:
                misses += 1
                missed.notify_all()
        return found

    monkeypatch.setattr(cache, "get", counting_get)

    def make() -> bytes:
        with count_lock:
            calls.append(1)
        with missed:  # not before every thread found the asset missing and went on to make it
            assert missed.wait_for(lambda: misses == 8, timeout=60), f"{misses} of 8 missed"
        return b"made once"

    def ask() -> None:
        try:
            start.wait(timeout=10)
            asset = cache.get_or_create(key, make, content_type="image/png")
            with count_lock:
                results.append(asset)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(calls) == 1
    assert len(results) == 8 and {a.content for a in results} == {b"made once"}
    assert stored_keys(store) == {key}


# -- clear and stats -----------------------------------------------------------------------------
def fill_two_kinds(cache: AssetCache) -> tuple[list[str], list[str]]:
    cards = [card(n) for n in range(3)]
    fonts = [key_for("font", 1, n=n) for n in range(2)]
    for n, key in enumerate(cards):
        cache.put(key, bytes(10 * (n + 1)), "image/png")
    for key in fonts:
        cache.put(key, bytes(100), "font/ttf", ttl=timedelta(minutes=1))
    return cards, fonts


def test_stats_are_per_kind_and_in_total(cache: AssetCache, clock: FakeClock) -> None:
    cards, fonts = fill_two_kinds(cache)
    assert cache.get(cards[0]) is not None and cache.get(cards[0]) is not None
    assert cache.get(fonts[1]) is not None
    clock.advance(timedelta(minutes=1))
    stats = cache.stats()
    assert isinstance(stats, CacheStats)
    assert stats.by_kind == {
        "font": KindStats(entries=2, bytes=200, hits=1, expired=2),
        "social_card": KindStats(entries=3, bytes=60, hits=2, expired=0),
    }
    assert (stats.entries, stats.bytes, stats.hits, stats.expired) == (5, 260, 3, 2)
    only = cache.stats("social_card")
    assert only.by_kind.keys() == {"social_card"}
    assert (only.entries, only.bytes, only.hits, only.expired) == (3, 60, 2, 0)
    assert cache.stats("never_stored").entries == 0
    assert stats.as_json() == {
        "entries": 5,
        "bytes": 260,
        "hits": 3,
        "expired": 2,
        "budget_bytes": None,
        "by_kind": {
            "font": {"entries": 2, "bytes": 200, "hits": 1, "expired": 2},
            "social_card": {"entries": 3, "bytes": 60, "hits": 2, "expired": 0},
        },
        "session_hits": 3,
        "session_misses": 0,
    }


def test_an_empty_cache_has_zero_stats(cache: AssetCache) -> None:
    stats = cache.stats()
    assert (stats.entries, stats.bytes, stats.hits, stats.expired, stats.by_kind) == (
        0,
        0,
        0,
        0,
        {},
    )
    assert cache.evict(0) == Evicted(0, 0, 0, 0)


def test_clear_with_a_kind_removes_only_that_kind(
    cache: AssetCache, store: Storage, clock: FakeClock
) -> None:
    cards, _ = fill_two_kinds(cache)
    assert cache.clear("font") == 2
    assert stored_keys(store) == set(cards)
    assert cache.clear("font") == 0
    assert cache.clear() == 3
    assert rows(store) == []
    with pytest.raises(ConfigurationError):
        cache.clear("Bad Kind")


def test_clear_with_a_kind_keeps_other_kinds_unflushed_reads(
    cache: AssetCache, store: Storage, clock: FakeClock
) -> None:
    old, new = card(1), card(2)
    cache.put(old, bytes(10), "image/png")
    clock.advance(SECOND)
    cache.put(new, bytes(10), "image/png")
    clock.advance(SECOND)
    assert cache.get(old) is not None  # old is now the most recently used social card
    cache.clear("font")
    assert cache.stats().hits == 1
    cache.evict(10)
    assert stored_keys(store) == {old}


# -- the CLI -------------------------------------------------------------------------------------
def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["cache", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def cli_template(empty_db: Path) -> Path:
    """Two social cards (600 B read last, 410 B) and one 30 B font that expired in 2020."""
    path = empty_db.with_name("cli.duckdb")
    shutil.copyfile(empty_db, path)
    clock = FakeClock(datetime(2020, 1, 1, tzinfo=UTC))
    with Storage.open(str(path), create=False) as store:
        store.ensure_schema()
        with AssetCache(store, flush_interval=NEVER, clock=clock) as cache:
            cache.put(key_for("font", 1, n=0), bytes(30), "font/ttf", ttl=timedelta(days=1))
            clock.advance(SECOND)
            cache.put(card(0), bytes(600), "image/png")
            clock.advance(SECOND)
            cache.put(card(1), bytes(410), "image/png")
            clock.advance(SECOND)
            assert cache.get(card(1)) is not None
            clock.advance(SECOND)
            assert cache.get(card(0)) is not None
            assert cache.get(card(0)) is not None
    return path


@pytest.fixture
def cli_db(cli_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "cli.duckdb"
    shutil.copyfile(cli_template, path)
    return path


def cli_keys(path: Path) -> set[str]:
    with Storage.open(str(path), create=False) as store:
        return stored_keys(store)


def test_cli_stats_prints_the_cache_stats_json(cli_db: Path) -> None:
    code, out, err = invoke("stats", "--db", str(cli_db), "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "ok": True,
        "entries": 3,
        "bytes": 1040,
        "hits": 3,
        "expired": 1,
        "budget_bytes": None,
        "by_kind": {
            "font": {"entries": 1, "bytes": 30, "hits": 0, "expired": 1},
            "social_card": {"entries": 2, "bytes": 1010, "hits": 3, "expired": 0},
        },
        "session_hits": 0,
        "session_misses": 0,
    }
    code, out, _ = invoke("stats", "--kind", "font", "--db", str(cli_db), "--json")
    assert code == 0 and json.loads(out)["by_kind"].keys() == {"font"}
    code, out, _ = invoke("stats", "--db", str(cli_db))
    assert code == 0 and "social_card" in out and "total" in out and "1010 B" in out


@pytest.mark.parametrize(
    ("budget", "evicted", "left"),
    [("100B", 2, 0), ("1KB", 1, 600), ("1KiB", 0, 1010), ("2KB", 0, 1010)],
)
def test_cli_evict_reads_the_budget_and_keeps_the_most_recently_used(
    cli_db: Path, budget: str, evicted: int, left: int
) -> None:
    code, out, err = invoke("evict", "--budget", budget, "--db", str(cli_db), "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "ok": True,
        "expired": 1,
        "evicted": evicted,
        "bytes_freed": 1040 - left,
        "bytes_left": left,
    }
    kept = {card(0), card(1)} if evicted == 0 else {card(0)} if evicted == 1 else set()
    assert cli_keys(cli_db) == kept


def test_cli_evict_without_a_budget_drops_only_expired_entries(cli_db: Path) -> None:
    code, out, _ = invoke("evict", "--db", str(cli_db))
    assert code == 0 and "dropped 1 expired and 0 least recently used" in out
    assert cli_keys(cli_db) == {card(0), card(1)}


def test_cli_evict_with_a_kind_leaves_other_kinds(cli_db: Path) -> None:
    args = ("evict", "--kind", "social_card", "--budget", "1KB", "--db", str(cli_db), "--json")
    code, out, _ = invoke(*args)
    assert code == 0
    assert json.loads(out) == {
        "ok": True,
        "expired": 0,
        "evicted": 1,
        "bytes_freed": 410,
        "bytes_left": 600,
    }
    assert cli_keys(cli_db) == {card(0), key_for("font", 1, n=0)}


def test_cli_clear_by_kind_then_all(cli_db: Path) -> None:
    code, out, _ = invoke("clear", "--kind", "font", "--db", str(cli_db), "--json")
    assert code == 0 and json.loads(out) == {"ok": True, "removed": 1, "kind": "font"}
    assert cli_keys(cli_db) == {card(0), card(1)}
    code, out, _ = invoke("clear", "--db", str(cli_db), "--json")
    assert code == 0 and json.loads(out) == {"ok": True, "removed": 2, "kind": None}
    assert cli_keys(cli_db) == set()
    code, out, _ = invoke("clear", "--db", str(cli_db))
    assert code == 0 and "removed 0 cached asset(s)" in out


@pytest.mark.parametrize("budget", ["lots", "-5", "1XB", "", "5i", "0.5B"])
def test_cli_evict_with_an_unreadable_budget_exits_2_and_removes_nothing(
    cli_db: Path, budget: str
) -> None:
    before = cli_keys(cli_db)
    code, out, err = invoke("evict", "--budget", budget, "--db", str(cli_db))
    assert code == 2 and out == ""
    assert err.startswith("error: cannot read the size") and err.count("\n") == 1
    assert cli_keys(cli_db) == before  # not even the expired font went


def test_cli_an_unreadable_budget_with_json_reports_a_json_error(cli_db: Path) -> None:
    code, out, _ = invoke("evict", "--budget", "lots", "--db", str(cli_db), "--json")
    assert code == 2
    answer = json.loads(out)
    assert answer["ok"] is False and answer["error"]["type"] == "ConfigurationError"
    assert "lots" in answer["error"]["message"]


def test_cli_a_bad_kind_exits_2(cli_db: Path) -> None:
    code, _, err = invoke("stats", "--kind", "Not A Kind", "--db", str(cli_db))
    assert code == 2 and "kind" in err and err.count("\n") == 1


@pytest.mark.parametrize("command", [["stats"], ["evict", "--budget", "1KB"], ["clear"]])
def test_cli_a_missing_database_is_an_error_and_is_not_created(
    tmp_path: Path, command: list[str]
) -> None:
    missing = tmp_path / "nowhere.duckdb"
    code, out, err = invoke(*command, "--db", str(missing))
    assert code == 1 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not missing.exists()
    assert list(tmp_path.iterdir()) == []
