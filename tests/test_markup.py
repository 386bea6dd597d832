"""Chat text renders as itself and writer Markdown as allowlisted structure, never as live HTML.

Every check renders with Python-Markdown and MkDocs' default extensions, then reads the HTML
back with ``html.parser``: what a browser would build is what is asserted on.
"""

from __future__ import annotations

import html
import re
import unicodedata
from html.parser import HTMLParser
from urllib.parse import unquote

import markdown  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egregora.runner.markup import (
    chat_markdown,
    clean_text,
    html_text,
    one_line,
    sanitize_markdown,
)

EXTENSIONS = ["toc", "tables", "fenced_code"]
# Sites often add attr_list, which turns `{: ...}` into attributes, event handlers included.
WITH_ATTR_LIST = [*EXTENSIONS, "attr_list"]
SAFE_SCHEMES = {"http", "https", "mailto"}
BIDI = set("\u200e\u200f\u061c") | {chr(c) for c in range(0x202A, 0x202F)}
BIDI |= {chr(c) for c in range(0x2066, 0x206A)}
CHAT_TAGS = {"p", "a", "br"}
CHAT_ATTRIBUTES = {"href"}
WRITER_TAGS = {
    "p", "a", "img", "em", "strong", "code", "pre", "ul", "ol", "li", "blockquote", "hr", "br",
    "table", "thead", "tbody", "tr", "th", "td", "h1", "h2", "h3", "h4", "h5", "h6",
}  # fmt: skip
WRITER_ATTRIBUTES = {"href", "src", "alt", "title", "id", "class", "start", "style"}
# The tables extension writes column alignment as a style; nothing else may.
ALIGN_STYLE = re.compile(r"text-align: (?:left|right|center);")

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    '<iframe src="https://evil.example/">',
    "<style>body{display:none}</style>",
    "[x](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    "javascript&#58;alert(1)",
    "[x](&#106;avascript:alert(1))",
    "[x]( javascript:alert(1))",
    "[x](<javascript:alert(1)>)",
    "![x](javascript:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD4=)",
    "[x](vbscript:msgbox(1)) [y](file:///etc/passwd)",
    "[x](java%0Ascript:alert(1))",
    "<javascript:alert(1)>",
    "<JAVASCRIPT:alert(1)>",
    "<javascript://%0Aalert(1)>",
    "[x][r]\n\n[r]: javascript:alert(1)",
    "[x][r]\n\n[r]:\n  javascript:alert(1)",
    "> [x][r]\n>\n> [r]: <javascript:alert(1)>",
    "<!-- x",
    "a <!-- hidden --> b",
    "```",
    "```\nswallowed <b>bold</b>",
    "~~~\n<script>x</script>",
    "</div></article>",
    "a | b\n--|--\n1 | 2",
    "| a | b |\n|---|:-:|\n| 1 | 2 |",
    "# Title",
    "Title\n===",
    "Title\n---",
    "1. item",
    "2) item",
    "- item",
    "+ item",
    "* item",
    "---",
    "***",
    "___",
    "    indented code",
    "\tindented code",
    "> quoted",
    "{: onclick=alert(1)}",
    "paragraph\n{: onclick=alert(1) style=x }",
    "# Title {: onclick=alert(1) }",
    "*text*{: onclick=alert(1) }",
    "<div markdown=1>*x*</div>",
    "<https://evil.example/x/onmouseover=alert(1)>",
    "<a@b.example> <mailto:x>",
    "[TOC]",
    "\x00\x1b[31mred\x1b[0m",
    "\u202egnp.exe",
    "a\u2066b\u2069c\u200fd",
    "line one\r\nline two\rline three",
    "trailing  \nbreak",
    "*emphasis* _em_ **strong** `code` ~~strike~~",
    "\\*not escaped\\*",
    "&amp; &lt;b&gt; &#60;script&#62; &copy",
    "<![CDATA[x]]> <?php x ?> <!DOCTYPE html>",
]
URLS = [
    "see https://example.com/a_b?q=1&x=(2).",
    "(https://en.wikipedia.org/wiki/Foo_(bar))",
    "write to mailto:someone@example.org, thanks",
    "HTTPS://EXAMPLE.COM/UPPER and http://x.example/é?a=<b>",
    "https://x.example/?a=1&amp;b=&#106;&c",
]
WRITER_STRUCTURE = """\
## Highlights

> A quote, kept as a quote.

- <https://x.org>
- [site](https://x.org/page_(1)) and [home](index.md)
- **bold** and *em* and `code`

Then:

1. first
2. second

| who | what |
|:----|-----:|
| a   | b    |

![card](post.png)

---

```python
print("<b>")
```
"""

# Pieces that mean something to Markdown or HTML, so random strings hit the edge cases.
PIECES = [
    "<", ">", "&", "[", "]", "(", ")", "javascript:", "http://", "https://", "mailto:", "#",
    "`", "*", "_", "|", "{", "}", "\\", "\n", "-", "+", "=", "!", ";", "&#", "&#106;", ":",
    "'", '"', "~", ".", "@", "/", "1", "a", "b", "x", "é", " ", "  ", "\t", "script",
    "onerror=", "x.org", "a@b.org", "HTTP://", "\u017f", "\u212a", "\u00a0", "\u2028", "\u0661",
]  # fmt: skip
WRITER_PIECES = [
    *PIECES, "%", "%6A", "```", "~~~", "\n```\n", "> ", "- ", "1. ", "# ", "](", "]: ", "![",
    "\n\n", "    ", "|--|", "[TOC]", "<!--", "-->", "<https://x.org>", "<mailto:a@b.org>",
    "<div>", "</div>", "<a href=", "{:", "&#58;", "\u202e",
]  # fmt: skip
hostile_text = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)
writer_text = st.lists(st.sampled_from(WRITER_PIECES), max_size=50).map("".join)
any_text = st.text(max_size=200)


class Page(HTMLParser):
    """The tags, attributes, comments and visible text of rendered HTML."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.other: list[str] = []
        self.chunks: list[tuple[str, bool]] = []
        self._links = 0
        self.feed(source)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "a":
            self._links += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._links -= 1

    def handle_data(self, data: str) -> None:
        self.chunks.append((data, self._links > 0))

    def handle_comment(self, data: str) -> None:
        self.other.append(f"comment {data!r}")

    def handle_decl(self, decl: str) -> None:
        self.other.append(f"declaration {decl!r}")

    def handle_pi(self, data: str) -> None:
        self.other.append(f"processing instruction {data!r}")

    def unknown_decl(self, data: str) -> None:
        self.other.append(f"declaration {data!r}")

    @property
    def names(self) -> set[str]:
        return {tag for tag, _ in self.tags}

    def visible(self) -> str:
        """The text a reader sees, whitespace collapsed; link texts percent-decoded."""
        text = "".join(unquote(data) if in_link else data for data, in_link in self.chunks)
        return " ".join(text.split())


def render(text: str, extensions: list[str] = EXTENSIONS) -> Page:
    rendered: str = markdown.markdown(text, extensions=extensions)
    return Page(rendered)


def scheme(url: str) -> str | None:
    """The scheme a browser reads in ``url`` (entities already decoded), or None if relative."""
    value = re.sub(r"[\t\n\r]", "", url).strip("".join(map(chr, range(0x21))))
    m = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", value)
    return m.group(1).lower() if m else None


def assert_inert(page: Page, tags: set[str], attributes: set[str], *, relative_ok: bool) -> None:
    """Only allowed tags and attributes, no event handlers or styles, no comments, only
    http(s) and mailto URLs (and relative ones when ``relative_ok``)."""
    assert page.names <= tags, page.tags
    assert not page.other
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert name in attributes and not name.startswith("on"), (tag, attrs)
            if name == "style":
                assert tag in ("th", "td") and ALIGN_STYLE.fullmatch(value or ""), (tag, attrs)
            if name in ("href", "src"):
                assert value is not None, (tag, attrs)
                found = scheme(value)
                if found is None:
                    assert relative_ok, (tag, attrs)
                else:
                    assert found in SAFE_SCHEMES, (tag, attrs)


def assert_chat_renders(text: str) -> None:
    """``chat_markdown(text)`` renders as the text alone, bare, quoted and as list items."""
    md = chat_markdown(text)
    # Each line collapsed, the lines joined by whitespace: ``one_line`` of the whole text.
    expected = one_line(text)
    page = render(md)
    assert_inert(page, CHAT_TAGS, CHAT_ATTRIBUTES, relative_ok=False)
    assert page.visible() == expected, md
    if md:
        quoted = render("\n".join(f"> {line}" for line in md.split("\n")))
        assert_inert(quoted, CHAT_TAGS | {"blockquote"}, CHAT_ATTRIBUTES, relative_ok=False)
        assert quoted.visible() == expected, md
        listed = render("\n".join(f"- {line}" for line in md.split("\n")))
        assert_inert(listed, CHAT_TAGS | {"ul", "li"}, CHAT_ATTRIBUTES, relative_ok=False)
        assert listed.visible() == expected, md
        assert len([t for t, _ in listed.tags if t == "li"]) == len(md.split("\n"))


# chat_markdown


@pytest.mark.parametrize("payload", HOSTILE + URLS)
def test_chat_payload_renders_as_its_text(payload: str) -> None:
    assert_chat_renders(payload)


@pytest.mark.parametrize("payload", HOSTILE)
def test_payloads_stay_inert_with_attr_list(payload: str) -> None:
    chat = render(chat_markdown(payload), WITH_ATTR_LIST)
    assert_inert(chat, CHAT_TAGS, CHAT_ATTRIBUTES, relative_ok=False)
    writer = render(sanitize_markdown(payload), WITH_ATTR_LIST)
    assert_inert(writer, WRITER_TAGS, WRITER_ATTRIBUTES, relative_ok=True)


def test_chat_payloads_make_no_links() -> None:
    for payload in (p for p in HOSTILE if "https:" not in p):
        assert "a" not in render(chat_markdown(payload)).names, payload


def test_chat_urls_become_links_without_their_punctuation() -> None:
    page = render(chat_markdown(" ".join(URLS)))
    hrefs = [attrs["href"] for tag, attrs in page.tags if tag == "a"]
    assert hrefs == [
        "https://example.com/a_b?q=1&x=%282%29",
        "https://en.wikipedia.org/wiki/Foo_%28bar%29",
        "mailto:someone@example.org",
        "HTTPS://EXAMPLE.COM/UPPER",
        "http://x.example/%C3%A9?a=",
        "https://x.example/?a=1&amp%3Bb=&#106%3B&c",
    ]


def test_chat_keeps_line_breaks_as_lines() -> None:
    md = chat_markdown("# one\n\n\n  - two  \n3. three\n")
    assert md.split("\n") == ["\\# one", "\\- two", "3\\. three"]


def test_chat_escaping_twice_shows_the_escapes() -> None:
    once = chat_markdown("*a* <b> [c](d)")
    assert render(chat_markdown(once)).visible() == once


def test_chat_markdown_of_nothing_is_empty() -> None:
    assert chat_markdown("") == ""
    assert chat_markdown(" \n\t\n\x00 ") == ""


@settings(max_examples=300, deadline=None)
@given(st.one_of(hostile_text, any_text.map(lambda s: s.replace("%", ""))))
def test_chat_markdown_renders_as_the_text(text: str) -> None:
    assert_chat_renders(text)


@settings(max_examples=300, deadline=None)
@given(st.one_of(hostile_text, any_text))
def test_chat_markdown_lines_are_never_blank(text: str) -> None:
    md = chat_markdown(text)
    assert md == "" or all(line and line == line.strip() for line in md.split("\n"))


# sanitize_markdown


@pytest.mark.parametrize("payload", HOSTILE + URLS)
def test_sanitized_payload_is_inert(payload: str) -> None:
    assert_inert(
        render(sanitize_markdown(payload)), WRITER_TAGS, WRITER_ATTRIBUTES, relative_ok=True
    )


@pytest.mark.parametrize(
    "payload",
    [
        "[x](javascript:alert(1))",
        "[x](&#106;avascript:alert(1))",
        "[x](<javascript:alert(1)>)",
        "![x](javascript:alert(1))",
        "[x][r]\n\n[r]: javascript:alert(1)",
        "<JAVASCRIPT:alert(1)>",
    ],
)
def test_sanitized_unsafe_links_make_no_element(payload: str) -> None:
    names = render(sanitize_markdown(payload)).names
    assert not names & {"a", "img"}, names


def test_sanitize_keeps_a_writers_structure() -> None:
    page = render(sanitize_markdown(WRITER_STRUCTURE))
    assert_inert(page, WRITER_TAGS, WRITER_ATTRIBUTES, relative_ok=True)
    assert {"h2", "blockquote", "ul", "ol", "li", "strong", "em", "code", "pre", "table", "th"} <= (
        page.names
    )
    assert {"img", "hr", "td"} <= page.names
    links = [attrs.get("href") for tag, attrs in page.tags if tag == "a"]
    assert links == ["https://x.org", "https://x.org/page_%281%29", "index.md"]
    assert ("img", {"alt": "card", "src": "post.png"}) in page.tags
    assert ("code", {"class": "language-python"}) in page.tags
    assert 'print("<b>")' in page.visible()


def test_sanitize_leaves_clean_markdown_alone() -> None:
    clean = "## Highlights\n\n> quote\n\n- <https://x.org>\n\n[site](https://x.org) **bold**"
    assert sanitize_markdown(clean) == clean


def test_sanitize_closes_no_fence_it_did_not_open() -> None:
    page = render(sanitize_markdown("intro\n\n```\n<b>swallowed</b>\n\n## After"))
    assert "pre" not in page.names
    assert "h2" in page.names


def test_sanitize_code_blocks_keep_their_text() -> None:
    page = render(sanitize_markdown("~~~ {.sh onclick=x}\n```\n<i>x</i> {y}\n~~~\nafter"))
    assert [t for t, _ in page.tags] == ["pre", "code", "p"]
    assert page.tags[1] == ("code", {"class": "language-sh"})
    assert page.visible() == "``` <i>x</i> {y} after"


@settings(max_examples=300, deadline=None)
@given(st.one_of(writer_text, hostile_text, any_text))
def test_sanitized_markdown_is_inert(text: str) -> None:
    sanitized = sanitize_markdown(text)
    for extensions in (EXTENSIONS, WITH_ATTR_LIST):
        page = render(sanitized, extensions)
        assert_inert(page, WRITER_TAGS, WRITER_ATTRIBUTES, relative_ok=True)


# html_text, one_line, clean_text


@settings(max_examples=300, deadline=None)
@given(st.one_of(hostile_text, any_text))
def test_html_text_is_escaped_one_line(text: str) -> None:
    escaped = html_text(text)
    assert not set(escaped) & set('<>"')
    assert html.unescape(escaped) == one_line(text)


@settings(max_examples=300, deadline=None)
@given(st.one_of(hostile_text, any_text))
def test_one_line_has_nothing_hidden(text: str) -> None:
    line = one_line(text)
    assert "\n" not in line
    assert line == line.strip() and "  " not in line
    for char in line:
        category = unicodedata.category(char)
        assert category not in ("Cc", "Cs", "Zl", "Zp"), repr(char)
        assert category != "Cf" or char in "\u200c\u200d", repr(char)
        assert char not in BIDI, repr(char)


def test_html_text_escapes_markup() -> None:
    assert html_text(' <b a="1">&\n x\'') == "&lt;b a=&quot;1&quot;&gt;&amp; x&#x27;"


def test_clean_text_removes_controls_and_bidi() -> None:
    assert clean_text("a\x00b\x1b[0mc\x7f") == "ab[0mc"
    assert clean_text("\u202egnp.exe") == "gnp.exe"
    assert clean_text("a\u2066b\u2069\u200e\u200f\u061c\ufeff\u200bc") == "abc"
    assert clean_text("x\ud800y\ufdd0z\U0010ffff") == "xyz"


def test_clean_text_keeps_text_emoji_and_lines() -> None:
    assert clean_text("👩\u200d💻 ok") == "👩\u200d💻 ok"
    assert clean_text("❤\ufe0f") == "❤\ufe0f"
    assert clean_text("a\r\nb\rc\u2028d\ne\tf") == "a\nb\nc\nd\ne f"
    assert clean_text("Ação, 東京, مرحبا") == "Ação, 東京, مرحبا"


def test_one_line_collapses_whitespace() -> None:
    assert one_line("  a \n\n b\t\u00a0c\u3000 ") == "a b c"
    assert one_line("\x00\u202e") == ""
