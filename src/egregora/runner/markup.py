"""The one place where chat text becomes Markdown or HTML text.

Everything a chat carries (messages, notices, file names, the group's name) is written by
whoever is in the group, and MkDocs neither sanitises Markdown nor autoescapes its templates.
So chat text reaches a page only through these functions: ``chat_markdown`` for text that must
render as itself, ``html_text`` for values MkDocs puts into HTML as they are (titles, the site
name), and ``sanitize_markdown`` for Markdown a writer produced after reading hostile text.

They target Python-Markdown with MkDocs' default extensions (toc, tables, fenced_code).
"""

from __future__ import annotations

import html
import re
import unicodedata
from bisect import bisect_right
from urllib.parse import quote, unquote

__all__ = ["chat_markdown", "clean_text", "html_text", "one_line", "sanitize_markdown"]

# Joiners stay: ZWJ builds emoji sequences, ZWNJ is part of Persian and Indic spelling.
_KEEP_FORMAT = frozenset("\u200c\u200d")
_LINE_BREAKS = frozenset("\n\u2028\u2029")
_ASCII_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

# What may stay as it is inside a link target; the rest is percent-encoded, so a target can
# neither end its autolink or link early nor reach Markdown that runs before links.
_URL_SAFE = "-._~:/?#@!$&'*+,;="
_TARGET_SAFE = "-._~:/?#@!$&*+,;="
_SAFE_SCHEMES = frozenset({"http", "https", "mailto"})

# Explicit letter classes rather than re.IGNORECASE, under which [a-z] also matches U+017F
# (long s) and U+212A (Kelvin sign): "http\u017f://" would pass for a link here, and
# Python-Markdown, which does not take it for one, would read it as raw HTML.
_WEB = r"[Hh][Tt][Tt][Pp][Ss]?://"
_MAILBOX = r"[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_CHAT_URL = re.compile(
    rf"(?<![^\W_])(?:(?P<web>{_WEB}[^\s<>\"`]+)"
    rf"|(?P<mailto>[Mm][Aa][Ii][Ll][Tt][Oo]:)(?P<mail>{_MAILBOX}))"
)
_TRAILING = ".,;:!?'\"*_~"
# Python-Markdown writes an entity inside a link's text as an entity, so its `;` is encoded.
_ENTITY_END = re.compile(r"(&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z0-9]+));")
_OPENERS = {")": "(", "]": "[", "}": "{"}

_CHAT_ESCAPES = str.maketrans(
    {
        "\\": "\\\\",
        "`": "&#96;",
        "*": "\\*",
        "_": "\\_",
        "[": "\\[",
        "]": "\\]",
        "(": "\\(",
        ")": "\\)",
        "!": "\\!",
        "#": "\\#",
        "<": "&lt;",
        ">": "&gt;",
        "&": "&amp;",
        "|": "&#124;",
        "~": "&#126;",
        "{": "&#123;",
        "}": "&#125;",
    }
)
_ORDERED_MARKER = re.compile(r"\d+(?=\.)")

# A `<` may stay only where Python-Markdown reads an autolink whose scheme is safe.
_SAFE_AUTOLINK = re.compile(rf"<(?:{_WEB}[A-Za-z0-9{re.escape(_URL_SAFE)}%]*|mailto:{_MAILBOX})>")
_FENCE_OPEN = re.compile(r"(?P<fence>`{3,}|~{3,})(?P<info>.*)")
_FENCE_CLOSE = re.compile(r"(`{3,}|~{3,})[ ]*")
_FENCE_LIKE = re.compile(r"^(?:`(?=``)|~(?=~~))", re.MULTILINE)
_LANG = re.compile(r"[A-Za-z0-9_+#-]+(?:\.[A-Za-z0-9_+#-]+)*")
_TARGET_CHAR = r"[^\s()<>\\\"'`]"
_LINK_TARGET = re.compile(
    r"\([ ]*(?:<(?P<angle>[^<>\n\\`]*)>"
    rf"|(?P<bare>(?:{_TARGET_CHAR}|\({_TARGET_CHAR}*\))*))"
    r"(?:[ ]+(?:\"[^\"\n]*\"|'[^'\n]*'))?[ ]*\)"
)
# Longer targets are refused rather than decoded, so hostile text costs linear time.
_REFERENCE_TARGET = re.compile(r"[ ]*(\S{0,2048})(\S?)")
_SCHEME_END = re.compile(r"[/?#]")


def _clean_char(char: str) -> str:
    if char in _LINE_BREAKS:
        return "\n"
    if char == "\t":
        return " "
    category = unicodedata.category(char)
    if category in ("Cc", "Cs") or (category == "Cf" and char not in _KEEP_FORMAT):
        return ""
    code = ord(char)
    if 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE:  # noncharacters
        return ""
    return char


def clean_text(text: str) -> str:
    """``text`` without what can hide or disguise it: control characters, bidi overrides and
    other invisible format characters, surrogates and noncharacters. Line breaks become
    ``\\n`` and tabs spaces; ZWJ and ZWNJ stay so emoji and scripts that need them survive."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.isascii():
        return _ASCII_CONTROLS.sub("", text.replace("\t", " "))
    return "".join(map(_clean_char, text))


def one_line(text: str) -> str:
    """``clean_text`` on one line: every run of whitespace, line breaks included, is a space."""
    return " ".join(clean_text(text).split())


def html_text(text: str) -> str:
    """``text`` on one line and HTML-escaped, for values MkDocs puts into HTML unescaped."""
    return html.escape(one_line(text), quote=True)


def _trim_url(url: str) -> str:
    """``url`` without the punctuation that more likely ends the sentence around it."""
    counts = {char: url.count(char) for char in "()[]{}"}
    end = len(url)
    while end:
        last = url[end - 1]
        if last in _OPENERS and counts[last] > counts[_OPENERS[last]]:
            counts[last] -= 1
        elif last not in _TRAILING:
            break
        end -= 1
    return url[:end]


def _chat_text(text: str) -> str:
    return text.translate(_CHAT_ESCAPES)


def _chat_line(line: str) -> str:
    """One line of chat text as Markdown that renders as that text and nothing else."""
    parts: list[str] = []
    pos = 0
    for m in _CHAT_URL.finditer(line):
        if m.group("web") is not None:
            url = _trim_url(m.group("web"))
            if len(url) <= url.index("://") + 3:
                continue
            parts.append(_chat_text(line[pos : m.start()]))
            encoded = _ENTITY_END.sub(r"\1%3B", quote(url, safe=_URL_SAFE + "%"))
            parts.append(f"<{encoded}>")
            pos = m.start() + len(url)
        else:
            # The automail form renders the address alone, so the scheme stays as text.
            parts.append(_chat_text(line[pos : m.start("mail")]))
            parts.append(f"<{m.group('mail')}>")
            pos = m.end()
    parts.append(_chat_text(line[pos:]))
    out = "".join(parts)
    # Block markers only count at the start of a line; everything else is escaped above.
    first = line[0]
    if first in "-+":
        return "\\" + out
    if first == "=":
        return "&#61;" + out[1:]
    marker = _ORDERED_MARKER.match(out)
    if marker:
        return f"{marker.group()}\\{out[marker.end() :]}"
    return out


def chat_markdown(text: str) -> str:
    """Markdown that renders as exactly ``text``: inline text, one output line per non-blank
    line, with http(s) and mailto URLs as autolinks. Each line also stays inert when a caller
    prefixes it with ``> `` or ``- ``."""
    lines = (" ".join(raw.split()) for raw in clean_text(text).split("\n"))
    return "\n".join(_chat_line(line) for line in lines if line)


def _decoded(target: str) -> str:
    value = target
    for _ in range(5):
        decoded = unquote(html.unescape(value))
        if decoded == value:
            break
        value = decoded
    return "".join(c for c in value if not c.isspace() and unicodedata.category(c)[0] != "C")


def _target_is_safe(target: str) -> bool:
    """Whether a link target, decoded the ways a browser or an attacker might, has no scheme
    (a relative target) or one of http, https and mailto."""
    head = _SCHEME_END.split(_decoded(target), maxsplit=1)[0]
    if ":" not in head:
        return True
    return head.split(":", 1)[0].lower() in _SAFE_SCHEMES


def _links(text: str) -> str:
    """Inline links and images: a safe target is rewritten percent-encoded and without title,
    any other ``](`` loses its ``(`` to an escape so nothing there becomes a link."""
    parts: list[str] = []
    pos = 0
    while (at := text.find("](", pos)) >= 0:
        parts.append(text[pos : at + 1])
        m = _LINK_TARGET.match(text, at + 1)
        if m:
            angle = m.group("angle")
            target = angle.strip() if angle is not None else m.group("bare")
            if _target_is_safe(target):
                parts.append(f"({quote(target, safe=_TARGET_SAFE + '%')})")
                pos = m.end()
                continue
        parts.append("\\")
        pos = at + 1
    parts.append(text[pos:])
    return "".join(parts)


def _references(text: str) -> str:
    """Reference definitions (``[id]: target``): an unsafe or hidden target (on the next
    line) turns the ``:`` into an entity, which Python-Markdown does not read as one."""
    parts: list[str] = []
    pos = 0
    while (at := text.find("]:", pos)) >= 0:
        parts.append(text[pos : at + 1])
        m = _REFERENCE_TARGET.match(text, at + 2)
        target = m.group(1) if m and not m.group(2) else ""
        safe = bool(target) and _target_is_safe(target.lstrip("<").rstrip(">"))
        parts.append(":" if safe else "&#58;")
        pos = at + 2
    parts.append(text[pos:])
    return "".join(parts)


def _escape_html(text: str) -> str:
    """Every ``<`` but those of safe autolinks as ``&lt;``, braces (attribute lists) as entities."""
    parts: list[str] = []
    pos = 0
    while (at := text.find("<", pos)) >= 0:
        parts.append(text[pos:at])
        m = _SAFE_AUTOLINK.match(text, at)
        if m:
            parts.append(m.group())
            pos = m.end()
        else:
            parts.append("&lt;")
            pos = at + 1
    parts.append(text[pos:])
    return "".join(parts).replace("{", "&#123;").replace("}", "&#125;")


def _sanitize_prose(text: str) -> str:
    """Markdown outside code blocks, with its structure kept and its HTML and links made safe."""
    text = _FENCE_LIKE.sub(lambda m: "\\`" if m.group() == "`" else "&#126;", text)
    text = text.replace("[TOC]", "\\[TOC]")
    return _escape_html(_references(_links(text)))


def _code_block(info: str, body: list[str]) -> list[str]:
    """A fenced code block in the one form Python-Markdown is sure to read as one: backticks
    longer than any run that opens a line of the code, and a bare language name."""
    longest = max((len(line) - len(line.lstrip("`")) for line in body), default=0)
    fence = "`" * max(3, longest + 1)
    token = info.strip().lstrip("{").lstrip(".").split(" ")[0].rstrip("}")
    lang = token if _LANG.fullmatch(token) else ""
    return [fence + lang, *body, fence]


class _Fences:
    """Where each fenced code block closes, found without rescanning the text per opener."""

    def __init__(self, lines: list[str]) -> None:
        self._closers = [
            (j, m.group(1)[0], len(m.group(1)))
            for j, line in enumerate(lines)
            if (m := _FENCE_CLOSE.fullmatch(line))
        ]
        self._starts = [j for j, _, _ in self._closers]
        # An opener that found no closer: later ones as long, with that mark, find none either.
        self._unclosed: dict[str, int] = {}

    def close(self, opener: int, fence: str) -> int | None:
        mark, size = fence[0], len(fence)
        if size >= self._unclosed.get(mark, size + 1):
            return None
        for k in range(bisect_right(self._starts, opener), len(self._closers)):
            j, found, length = self._closers[k]
            if found == mark and length >= size:
                return j
        self._unclosed[mark] = min(size, self._unclosed.get(mark, size))
        return None


def sanitize_markdown(text: str) -> str:
    """A writer's Markdown with its structure kept but nothing that becomes live HTML or an
    unsafe link: stray ``<`` and braces are escaped, link and reference targets other than
    relative, http, https and mailto are disarmed, and fenced code is rewritten so that
    Python-Markdown and this function agree on where it starts and ends."""
    lines = clean_text(text).split("\n")
    fences = _Fences(lines)
    out: list[str] = []
    prose: list[str] = []
    i = 0
    while i < len(lines):
        m = _FENCE_OPEN.fullmatch(lines[i])
        if m and not (m.group("fence")[0] == "`" and "`" in m.group("info")):
            end = fences.close(i, m.group("fence"))
            if end is not None:
                if prose:
                    out.append(_sanitize_prose("\n".join(prose)))
                    prose = []
                out.extend(_code_block(m.group("info"), lines[i + 1 : end]))
                i = end + 1
                continue
        prose.append(lines[i])
        i += 1
    if prose:
        out.append(_sanitize_prose("\n".join(prose)))
    return "\n".join(out)
