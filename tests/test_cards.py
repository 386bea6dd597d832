"""Social cards draw the letters of every European language, Greek and Cyrillic, never the
missing-glyph box: Pillow's bundled font drew "abraço" as "abra□o".

A title of letters is compared with the same title in characters no font has (private-use code
points): both are boxes in a font without those letters, so the cards are equal exactly when
the letters were drawn as boxes.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFont

from egregora.runner.cards import HEIGHT, WIDTH, render_card

NO_GLYPH = "\U000f0000"  # a private-use code point: no font of any machine draws it
LETTERS = ["ç", "ø", "λ", "Ж", "ß", "ã", "é", "Ő", "ł", "\u0131", "ğ", "Ω", "щ", "є"]


def pixels(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.size == (WIDTH, HEIGHT)
    return image.convert("RGB")


def differs(a: Image.Image, b: Image.Image) -> bool:
    return ImageChops.difference(a, b).getbbox() is not None


@pytest.mark.parametrize("letter", LETTERS)
def test_a_cards_letter_is_drawn_not_the_box(letter: str) -> None:
    drawn = pixels(render_card(f"a{letter}b", "7 December 2026", "Família"))
    boxed = pixels(render_card(f"a{NO_GLYPH}b", "7 December 2026", "Família"))
    assert differs(drawn, boxed), f"{letter!r} was drawn as the missing-glyph box"


def test_the_comparison_catches_a_font_without_the_letters() -> None:
    """The test above fails on a font that lacks the letters: Pillow's bundled one."""
    font = ImageFont.load_default(size=60)

    def draw(text: str) -> Image.Image:
        image = Image.new("RGB", (400, 100), "white")
        ImageDraw.Draw(image).text((10, 10), text, font=font, fill="black")
        return image

    assert not differs(draw("aЖb"), draw(f"a{NO_GLYPH}b"))  # both boxes
    assert differs(draw("aab"), draw(f"a{NO_GLYPH}b"))


def test_a_title_in_every_script_draws_and_differs_by_its_letters() -> None:
    title = "Um abraço à Ana: søster, λόγος, Жизнь"
    first = render_card(title, "7 December 2026", "Família")
    assert first == render_card(title, "7 December 2026", "Família")  # the same pixels again
    assert differs(pixels(first), pixels(render_card(title.upper(), "7 December 2026", "Família")))
