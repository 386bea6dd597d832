"""Social cards: a 1200x630 PNG per post and journal (title, date, site name), drawn with Pillow.

Text is drawn in Noto Sans, shipped by the ``fontpkg-noto-sans`` package: it covers Latin (every
European language), Greek and Cyrillic. A character it lacks (Chinese, Arabic, emoji) is drawn
in a font of this machine that has it, found by fontconfig, so a title keeps its letters where
the machine can draw them; only a character no font here has is drawn as Noto's missing-glyph
box.

Cards are made through the asset cache under a key of everything that shapes their pixels (the
texts, the size, this renderer's version, Pillow's and the font's), so a card is drawn once and
a second run finds it.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib.metadata import version

import fontpkg  # type: ignore[import-untyped]
import PIL
from fontTools.ttLib import TTFont  # type: ignore[import-untyped]
from PIL import Image, ImageDraw, ImageFont

from egregora.assets import AssetCache, NewAsset, key_for
from egregora.runner.markup import one_line

KIND = "social_card"
FAMILY = "Noto Sans"  # from the fontpkg-noto-sans package
TITLE_WEIGHT, TEXT_WEIGHT = 700, 400
VERSION = f"2+pillow{PIL.__version__}+noto{version('fontpkg-noto-sans')}"
WIDTH, HEIGHT = 1200, 630
MARGIN = 80
CONTENT_TYPE = "image/png"
BATCH = 64  # cards stored per write
# Dark backgrounds with light text; a card's colour follows its site, so a site's cards match.
PALETTE = ((0x1F, 0x3A, 0x5F), (0x2E, 0x4A, 0x3B), (0x4A, 0x2E, 0x4A), (0x5C, 0x3A, 0x1E))
INK = (0xF5, 0xF1, 0xE8)
MUTED = (0xC9, 0xC3, 0xB6)


def card_key(title: str, date: str, site: str) -> str:
    title, site = one_line(title), one_line(site)  # as the card draws them
    return key_for(KIND, VERSION, title=title, date=date, site=site, size=[WIDTH, HEIGHT])


def ensure_cards(
    cache_: AssetCache,
    cards: Iterable[tuple[str, str]],
    site: str,
    advance: Callable[[int], None] = lambda _: None,
) -> int:
    """Make sure the cache holds the card of every (title, date); return how many were drawn.

    Missing cards are drawn on every core (Pillow lets go of the GIL while it encodes) and
    stored ``BATCH`` at a time, one write per batch.
    """
    drawn = 0
    missing: dict[str, tuple[str, str]] = {}
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:

        def draw() -> None:
            nonlocal drawn
            keys = list(missing)
            images = pool.map(lambda key: render_card(*missing[key], site), keys)
            assets = [
                NewAsset(
                    key,
                    image,
                    CONTENT_TYPE,
                    metadata={"title": missing[key][0], "date": missing[key][1], "site": site},
                )
                for key, image in zip(keys, images, strict=True)
            ]
            drawn += len(cache_.put_many(assets))
            advance(len(keys))
            missing.clear()

        for title, date in cards:
            key = card_key(title, date, site)
            if key in missing or cache_.get(key) is not None:
                advance(1)
            else:
                missing[key] = (title, date)
            if len(missing) == BATCH:
                draw()
        if missing:
            draw()
    return drawn


def card(cache_: AssetCache, title: str, date: str, site: str) -> tuple[bytes, bool]:
    """The card's PNG bytes, and whether it was drawn now (False: the cache had it)."""
    key = card_key(title, date, site)
    found = cache_.get(key)
    if found is not None:
        return found.content, False
    content = render_card(title, date, site)
    cache_.put(key, content, CONTENT_TYPE, metadata={"title": title, "date": date, "site": site})
    return content, True


def render_card(title: str, date: str, site: str) -> bytes:
    """A PNG of ``title`` (wrapped, shrunk to fit), ``date`` and ``site`` on a plain ground;
    chat text is drawn as plain text, without control or direction-override characters."""
    title, site = one_line(title), one_line(site)
    shade = PALETTE[hashlib.sha256(site.encode()).digest()[0] % len(PALETTE)]
    image = Image.new("RGB", (WIDTH, HEIGHT), shade)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, HEIGHT - 14, WIDTH, HEIGHT), fill=MUTED)
    size, lines = _fit(title, WIDTH - 2 * MARGIN, 330)
    y = MARGIN + 40
    for line in lines:
        _draw_text(draw, (MARGIN, y), line, size, TITLE_WEIGHT, INK)
        y += int(size * 1.2)
    _draw_text(draw, (MARGIN, MARGIN - 20), site, 34, TEXT_WEIGHT, MUTED)
    _draw_text(draw, (MARGIN, HEIGHT - MARGIN - 50), date, 34, TEXT_WEIGHT, INK)
    out = io.BytesIO()
    image.save(out, format="PNG")  # zlib level 6: optimize=True costs 2.3x for 5% fewer bytes
    return out.getvalue()


# -- fonts ----------------------------------------------------------------------------------
FontFile = tuple[str, int]  # a font file and the font's index in it (a collection has several)


@cache
def _noto() -> FontFile:
    return str(fontpkg.path(FAMILY)), 0


@cache
def _characters(font: FontFile) -> frozenset[int]:
    """The code points ``font`` has a glyph for."""
    with TTFont(font[0], lazy=True, fontNumber=font[1]) as opened:
        return frozenset(opened.getBestCmap() or {})


@cache
def _fallback(char: str) -> FontFile | None:
    """A font of this machine with a glyph for ``char`` (fontconfig's choice), or None: no
    fontconfig, or no font here has it (the card then draws Noto's box for it)."""
    fc_match = shutil.which("fc-match")
    if fc_match is None:
        return None
    try:
        found = subprocess.run(
            [fc_match, "--format=%{file}\t%{index}", f":charset={ord(char):x}"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        path, _, index = found.partition("\t")
        font = (path, int(index or 0))
        return font if path and ord(char) in _characters(font) else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None  # fontconfig answered nothing usable: no fallback, as without it


def _runs(text: str) -> list[tuple[FontFile, str]]:
    """``text`` cut into runs of (font file, characters), each drawn with the first font that
    has its characters: Noto Sans, else this machine's fallback, else Noto's box."""
    noto = _noto()
    covered = _characters(noto)
    runs: list[tuple[FontFile, str]] = []
    for char in text:
        font = noto
        if ord(char) not in covered and not char.isspace():
            font = _fallback(char) or noto
        if runs and runs[-1][0] == font:
            runs[-1] = (font, runs[-1][1] + char)
        else:
            runs.append((font, char))
    return runs


@cache
def _font(file: FontFile, size: int, weight: int) -> ImageFont.FreeTypeFont:
    font = ImageFont.truetype(file[0], size, index=file[1])
    try:
        axes = font.get_variation_axes()
    except OSError:
        return font  # not a variable font: its one weight
    font.set_variation_by_axes(
        [float(weight if axis["name"] == b"Weight" else axis["default"] or 0) for axis in axes]
    )
    return font


def _length(text: str, size: int, weight: int = TITLE_WEIGHT) -> float:
    return sum(_font(path, size, weight).getlength(run) for path, run in _runs(text))


def _draw_text(
    draw: ImageDraw.ImageDraw,
    at: tuple[int, int],
    text: str,
    size: int,
    weight: int,
    fill: tuple[int, int, int],
) -> None:
    x, y = at
    for path, run in _runs(text):
        font = _font(path, size, weight)
        draw.text((x, y), run, font=font, fill=fill)
        x += int(font.getlength(run))


def _fit(text: str, width: int, height: int) -> tuple[int, list[str]]:
    """The largest font size (72 down to 28) at which ``text`` wraps into the box."""
    for size in range(72, 27, -4):
        lines = _wrap(text, size, width)
        if len(lines) * size * 1.2 <= height:
            return size, lines
    lines = _wrap(text, 28, width)
    keep = int(height // (28 * 1.2))
    if len(lines) > keep:
        lines = [*lines[: keep - 1], lines[keep - 1] + " …"]
    return 28, lines


def _wrap(text: str, size: int, width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}".strip()
        if current and _length(trial, size) > width:
            lines.append(current)
            current = word
        else:
            current = trial
    if current:
        lines.append(current)
    return lines or [""]


def avatar(name: str) -> bytes:
    """A member's avatar for the blog: a disc in a colour of their pseudonym, with its first
    two characters after ``member-`` (a pseudonym, never a name)."""
    size = 96
    digest = hashlib.sha256(name.encode()).digest()
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((0, 0, size - 1, size - 1), fill=PALETTE[digest[0] % len(PALETTE)])
    letters = name.removeprefix("member-")[:2].upper()
    draw.text(
        (size / 2, size / 2), letters, font=_font(_noto(), 40, TITLE_WEIGHT), fill=INK, anchor="mm"
    )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
