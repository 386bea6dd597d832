"""Write a thread's documents as an MkDocs site: Markdown with YAML front matter, cards, media.

Layout under the site folder: ``mkdocs.yml``, ``docs/index.md``, and ``docs/posts``,
``docs/journal``, ``docs/profiles``, ``docs/media``, each with an ``index.md``; a post's or
journal's card is the PNG beside its page. The site is made from the database alone, so it can
be written again at any time; a file whose bytes would not change is not touched.

The site folder is the user's too. A manifest (``.egregora-site.json``) records the hash of each
file written; a file that is there but was not written by egregora, or was edited since, is
never replaced: the write is refused before anything changes, naming the file and the fix. A
page egregora wrote that is no longer made (its document was renamed by a rekey, say) is
removed, unless it was edited since: then it is left to the user.

Everything from the chat is text: titles, summaries, tags and names go through
``markup.chat_markdown`` in pages and ``markup.html_text`` in front matter and ``mkdocs.yml``
(MkDocs puts those values into HTML as they are). Media files are published under their
document's id, never under the name the export gave them, and keep their extension only when it
is a plain media or document type: anything else (a page, a script, an SVG) is published as
``.bin``, so it is only ever downloaded and never replaces a generated page. A file's name as
pages show it is one line of visible characters, bounded in length.

Each file is written as a draft (``.draft-<pid>-<random>``) renamed over it. Every write first
removes, anywhere under the site folder, drafts whose writer is gone; a folder that cannot be
written, or a full disk, ends the write with one line naming the folder and the fix, and the
next write after the fix takes up where this one stopped.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from egregora.drafts import PREFIX, new_draft, remove_abandoned_drafts
from egregora.errors import ConfigurationError, EgregoraError, disk_full
from egregora.etl.formats import EXTENSIONS
from egregora.pseudonyms import member
from egregora.runner.cards import avatar
from egregora.runner.markup import chat_markdown, html_text
from egregora.storage.store import Storage

MANIFEST = ".egregora-site.json"
BLOG = "docs/blog"  # Material's blog plugin: its index, authors and posts/ under it
POSTS = f"{BLOG}/posts"
# Cards beside the posts folder: the blog plugin publishes what is in posts/ elsewhere.
CARDS = f"{BLOG}/cards"
SITE_CARD = "docs/card.png"  # the home page's and the feed's image
THEME_OVERRIDE = "overrides/main.html"
# Where `egregora site serve` (and `mkdocs serve`) show the site, when no --site-url is given.
PREVIEW_URL = "http://127.0.0.1:8000/"
IMAGES = {"image"}
Card = Callable[[str, str], bytes]  # (title, date text) -> PNG
# A media document's row -> the file's bytes, a chunk at a time (``MediaFiles.chunks``).
Media = Callable[[Mapping[str, Any]], Iterator[bytes]]
CHUNK = 1 << 20  # bytes of a file on disk hashed at a time


@dataclass(frozen=True)
class Streamed:
    """A file's content known by its SHA-256 and read only when it is written, a chunk at a
    time: a site's videos are never held in memory, and not read at all when in place."""

    digest: str
    chunks: Callable[[], Iterator[bytes]]


Content = bytes | Streamed
Shown = Callable[[str], str]  # a file's name as the export gave it -> as pages may show it

# Documents a browser downloads or shows as themselves; with the export's media types (images,
# video, audio) the only extensions a published media file keeps. Pages (.md, .html), vector
# images (.svg) and scripts would be rendered or run as part of the site.
DOCUMENT_EXTENSIONS = (
    "pdf",
    "doc",
    "docx",
    "odt",
    "rtf",
    "xls",
    "xlsx",
    "ods",
    "ppt",
    "pptx",
    "odp",
    "epub",
)
PUBLISHED_EXTENSIONS = frozenset((*EXTENSIONS, *DOCUMENT_EXTENSIONS))
NEUTRAL_SUFFIX = ".bin"  # every other file: only ever downloaded
SHOWN_LENGTH = 120  # characters of a file's name a page shows, the ellipsis included
_KEEP_FORMAT = frozenset("\u200c\u200d")  # ZWNJ and ZWJ: scripts and emoji need them
_HIDDEN = frozenset(("Cc", "Cf", "Cs", "Zl", "Zp"))  # controls, bidi marks, line breaks


class SiteError(EgregoraError):
    """The site folder holds a file egregora did not write (or one edited since)."""

    exit_code = 2


@dataclass(frozen=True)
class SiteResult:
    folder: Path
    files: int  # files the site has
    written: int  # files written now (new or changed)


def site_address(text: str) -> str:
    """``text`` as the address a site is published at: an http(s) URL with a host, ending in
    ``/``. It goes into ``mkdocs.yml``, the feed and every page's head, so characters that
    would end an HTML attribute or a YAML string are refused."""
    url = text.strip()
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or any(c in url for c in "?#\"'<>`\\ ")  # a query, a fragment, or an attribute's end
    ):
        raise ConfigurationError(
            f"--site-url {text!r} is not the address of a site; give one such as "
            "https://example.org/family/ (http or https, a host, no query)"
        )
    return url if url.endswith("/") else url + "/"


def card_date(value: date | None) -> str:
    return value.strftime("%d %B %Y").lstrip("0") if value else ""


def write_site(
    store: Storage,
    label: str,
    folder: Path,
    site_name: str,
    card: Card,
    media: Media,
    shown: Shown,
    site_url: str = PREVIEW_URL,
) -> SiteResult:
    """Write the site of the thread labelled ``label`` into ``folder``; ``card`` gives a
    document's card, ``media`` a media document's bytes (from wherever the database keeps
    them: ``MediaFiles.read``), ``shown`` gives a media file's name as pages show it
    (without any member's name or number), and ``site_url`` is where the site is published
    (its feed and its pages' ``og:image`` are absolute addresses under it)."""
    docs = {kind: _read(store, label, kind) for kind in ("post", "journal", "profile", "media")}
    for row in docs["media"]:
        row["published"] = media_file(row)
        row["shown"] = shown_name(shown(row["filename"] or "")) or row["published"]
    files: dict[str, Content] = {
        "mkdocs.yml": _mkdocs(site_name, site_address(site_url)),
        THEME_OVERRIDE: _THEME_OVERRIDE.encode(),
        SITE_CARD: card(site_name, ""),
    }
    for row in docs["post"]:
        files[f"{POSTS}/{row['slug']}.md"] = _post_page(row, docs["media"])
        files[f"{CARDS}/{row['slug']}.png"] = card(row["title"], card_date(row["date"]))
    authors = sorted({member(a) for row in docs["post"] for a in row["authors"] or []})
    files[f"{BLOG}/.authors.yml"] = _authors(authors)
    for name in authors:
        files[f"{BLOG}/avatars/{name}.png"] = avatar(name)
    for row in docs["journal"]:
        name = _journal_name(row)
        files[f"docs/journal/{name}.md"] = _journal_page(row, docs["media"])
        files[f"docs/journal/{name}.png"] = card(row["title"], card_date(row["date"]))
    for row in docs["profile"]:
        files[f"docs/profiles/{row['subject_uuid']}.md"] = _profile_page(row)
    for row in docs["media"]:
        files[f"docs/media/{row['published']}"] = Streamed(
            str(row["source_checksum"]), functools.partial(media, row)
        )
    files.update(_indexes(site_name, site_address(site_url), docs))
    return _commit(folder, files)


def media_file(row: Mapping[str, Any]) -> str:
    """The name a media file is published under: its document's id and its extension when
    that is a plain media or document type, else ``.bin`` (the export's own name may hold
    anything, a person's name, a page of markup or a script)."""
    extension = PurePosixPath(str(row["filename"] or "")).suffix.lower().removeprefix(".")
    suffix = f".{extension}" if extension in PUBLISHED_EXTENSIONS else NEUTRAL_SUFFIX
    return str(row["id"]) + suffix


def shown_name(name: str) -> str:
    """A file's name as one line of visible text: controls, line and paragraph separators and
    bidi marks become spaces (a line break would end a list item and start Markdown of the
    sender's), runs of spaces one, and a long name is cut with an ellipsis."""
    flat = " ".join("".join(map(_visible, name)).split())
    if len(flat) <= SHOWN_LENGTH:
        return flat
    return flat[: SHOWN_LENGTH - 1].rstrip() + "\u2026"


def _visible(char: str) -> str:
    """``char``, or a space for a character that is not seen or moves the text around it."""
    if char in _KEEP_FORMAT:
        return char
    code = ord(char)
    if unicodedata.category(char) in _HIDDEN or 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE:
        return " "
    return char


# -- reading --------------------------------------------------------------------------------
COLUMNS = (
    "id",
    "doc_type",
    "created_at",
    "title",
    "slug",
    "content",
    "summary",
    "date",
    "authors",
    "tags",
    "subject_uuid",
    "filename",
    "mime_type",
    "media_type",
    "window_start",
    "window_end",
    "window_signature",
    "source_checksum",  # a media file's SHA-256, by which its bytes are found and checked
    "extensions",
)


def _read(store: Storage, label: str, doc_type: str) -> list[dict[str, Any]]:
    query = store.documents.of_thread(label, doc_type).select(*COLUMNS)
    rows: list[dict[str, Any]] = store.to_pyarrow(query.order_by("id")).to_pylist()
    for row in rows:
        row["extensions"] = json.loads(row["extensions"] or "{}")
    if doc_type in ("post", "journal"):
        rows.sort(key=lambda r: (r["window_start"], r["id"]))
    return rows


# -- pages ----------------------------------------------------------------------------------
def _front_matter(fields: Mapping[str, Any]) -> str:
    """YAML front matter; every value is written as JSON, which YAML reads as it is, and every
    text in it is HTML-escaped: MkDocs themes put page titles and descriptions into HTML as
    they are."""
    lines = ["---"]
    for key, value in fields.items():
        if value is None:
            continue
        lines.append(f"{key}: {_yaml(value)}")
    lines.append("---")
    return "\n".join(lines) + "\n\n"


def _yaml(value: Any) -> str:
    if isinstance(value, datetime):
        return json.dumps(value.isoformat())
    if isinstance(value, date):
        return value.isoformat()  # a YAML date, as MkDocs blog plugins expect
    return json.dumps(_escaped(value), ensure_ascii=False)


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return html_text(value)
    if isinstance(value, Mapping):
        return {k: _escaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escaped(v) for v in value]
    return value


def _journal_name(row: Mapping[str, Any]) -> str:
    return str(row["id"]).removeprefix("journal-")


def _media_section(
    ids: Iterable[str], media: list[dict[str, Any]], root: str, heading: str = "Media"
) -> list[str]:
    """The media of a page whose folder is ``root`` (``../``, ``../../``) under docs/."""
    by_id = {row["id"]: row for row in media}
    lines = []
    for media_id in ids:
        row = by_id.get(media_id)
        if row is None:
            continue
        name, target = chat_markdown(row["shown"]), f"{root}media/{row['published']}"
        if row["media_type"] in IMAGES:
            lines.append(f"![{name}]({target})")
        else:
            lines.append(f"- [{name}]({target}) ({row['media_type']})")
    return ["", f"## {heading}", "", *lines] if lines else []


def _excerpt(content: str) -> list[str]:
    """``content`` with the blog's excerpt marker after its first paragraph (the summary):
    the posts index shows each post down to it."""
    first, _, rest = content.strip().partition("\n\n")
    return [first, "", "<!-- more -->", *(["", rest] if rest else [])]


def _post_page(row: Mapping[str, Any], media: list[dict[str, Any]]) -> bytes:
    ext = row["extensions"]
    head = _front_matter(
        {
            "title": row["title"],
            "date": row["date"],
            "slug": row["slug"],
            "description": row["summary"],
            "authors": [member(a) for a in row["authors"] or []],
            "tags": row["tags"] or [],
            # From the docs folder: the feed and og:image make it an address under site_url.
            "image": f"{CARDS.removeprefix('docs/')}/{row['slug']}.png",
            "window_start": row["window_start"],
            "window_end": row["window_end"],
            "egregora": {"id": row["id"], "window_signature": row["window_signature"]},
        }
    )
    journal = ext.get("journal_id", "").removeprefix("journal-")
    title = chat_markdown(row["title"])
    body = [f"# {title}", "", f"![](../cards/{row['slug']}.png)", "", *_excerpt(row["content"])]
    body += _media_section(ext.get("media", []), media, "../../")
    if journal:
        body += ["", f"[The journal of these messages](../../journal/{journal}.md)"]
    page = head + "\n".join(body) + "\n"
    return page.encode()


def _journal_page(row: Mapping[str, Any], media: list[dict[str, Any]]) -> bytes:
    ext = row["extensions"]
    name = _journal_name(row)
    head = _front_matter(
        {
            "title": row["title"],
            "date": row["date"],
            "description": row["summary"],
            "authors": [member(a) for a in row["authors"] or []],
            "image": f"journal/{name}.png",
            "window_start": row["window_start"],
            "window_end": row["window_end"],
            "messages": ext.get("messages"),
            "egregora": {"id": row["id"], "window_signature": row["window_signature"]},
        }
    )
    title = chat_markdown(row["title"])
    body = [f"# {title}", "", f"![]({name}.png)", "", row["content"].rstrip()]
    body += _media_section(ext.get("media", []), media, "../", "Gallery")
    post = ext.get("post_id", "").removeprefix("post-")
    if post:
        body += ["", f"[The post of these messages](../blog/posts/{post.lower()}.md)"]
    page = head + "\n".join(body) + "\n"
    return page.encode()


def _profile_page(row: Mapping[str, Any]) -> bytes:
    ext = row["extensions"]
    head = _front_matter(
        {
            "title": row["title"],
            "description": row["summary"],
            "first_seen": ext.get("first_seen"),
            "last_seen": ext.get("last_seen"),
            "messages": ext.get("messages"),
            "egregora": {"id": row["id"], "subject_uuid": row["subject_uuid"]},
        }
    )
    page = f"{head}# {chat_markdown(row['title'])}\n\n{row['content'].rstrip()}\n"
    return page.encode()


def _indexes(
    site_name: str, site_url: str, docs: Mapping[str, list[dict[str, Any]]]
) -> dict[str, bytes]:
    posts = sorted(docs["post"], key=lambda r: (r["date"], r["id"]), reverse=True)
    journals = sorted(docs["journal"], key=lambda r: (r["date"], r["id"]), reverse=True)
    profiles = sorted(docs["profile"], key=lambda r: r["title"])
    md = chat_markdown
    post_lines = [
        f"- {r['date']}: [{md(r['title'])}]({r['slug']}.md) — {md(r['summary'] or '')}"
        for r in posts[:10]
    ]
    journal_lines = [f"- [{md(r['title'])}]({_journal_name(r)}.md)" for r in journals]
    profile_lines = [
        f"- [{md(r['title'])}]({r['subject_uuid']}.md): {md(r['summary'] or '')}" for r in profiles
    ]
    summary = (
        f"{len(posts)} posts, {len(journals)} journal pages, {len(profiles)} members, "
        f"{len(docs['media'])} media files."
    )
    head = _front_matter({"description": summary, "image": SITE_CARD.removeprefix("docs/")})
    home = [
        f"# {md(site_name)}",
        "",
        summary,
        "",
        "## Latest posts",
        "",
        *[line.replace("](", "](blog/posts/", 1) for line in post_lines[:10]],
        "",
        f"[Every post](blog/index.md) · [Tags](tags.md) · [Feed]({site_url}{FEED})",
    ]

    def page(title: str, lines: list[str]) -> bytes:
        return ("\n".join([f"# {title}", "", *(lines or ["Nothing yet."])]) + "\n").encode()

    return {
        "docs/index.md": (head + "\n".join(home) + "\n").encode(),
        f"{BLOG}/index.md": b"# Posts\n",  # the blog plugin lists the posts, a page at a time
        "docs/tags.md": b"# Tags\n\n<!-- material/tags -->\n",
        "docs/journal/index.md": page("Journal", journal_lines),
        "docs/profiles/index.md": page("Members", profile_lines),
        "docs/media/index.md": page("Media", _gallery(docs["media"], docs["journal"])),
    }


def _iso_day(label: Any) -> date | None:
    """A window label that is a day (``2024-05-07``) as that day; None for any other."""
    try:
        return date.fromisoformat(label) if isinstance(label, str) and len(label) == 10 else None
    except ValueError:
        return None


def _gallery(media: list[dict[str, Any]], journals: list[dict[str, Any]]) -> list[str]:
    """The media page: a section per day, newest first; images shown, other files linked.
    A file's day is its window's, in the chat's zone: its journal's date, else the window's
    label when that is a day. Files no message sent come last, under "Other files"."""
    window_day = {row["id"]: row["date"] for row in journals}
    days: dict[date | None, list[dict[str, Any]]] = {}
    for row in sorted(media, key=lambda r: (r["created_at"], r["id"])):
        ext = row["extensions"]
        day = window_day.get(ext.get("journal_id")) or _iso_day(ext.get("window"))
        days.setdefault(day, []).append(row)
    lines: list[str] = []
    for day in sorted(days, key=lambda d: (d is not None, d), reverse=True):
        lines += ["", f"## {card_date(day) or 'Other files'}"]
        images = [r for r in days[day] if r["media_type"] in IMAGES]
        others = [r for r in days[day] if r["media_type"] not in IMAGES]
        if images:  # HTML thumbnails in one paragraph, each name escaped as an attribute
            lines.append("")
            lines += [
                f'<a href="{r["published"]}"><img src="{r["published"]}" '
                f'alt="{html_text(r["shown"])}" width="240" loading="lazy"></a>'
                for r in images
            ]
        if others:  # then the other files, a list apart from the paragraph
            lines.append("")
            lines += [
                f"- [{chat_markdown(r['shown'])}]({r['published']}) ({r['media_type']})"
                for r in others
            ]
    return lines


def _mkdocs(site_name: str, site_url: str) -> bytes:
    """Material for MkDocs with its blog (posts, archive, pagination, authors) and tags, and
    a feed of the posts; every value written as JSON, which YAML reads as it is."""
    nav = [
        ("Home", "index.md"),
        ("Posts", "blog/index.md"),
        ("Journal", "journal/index.md"),
        ("Members", "profiles/index.md"),
        ("Media", "media/index.md"),
        ("Tags", "tags.md"),
    ]
    name = json.dumps(html_text(site_name), ensure_ascii=False)
    lines = [
        f"site_name: {name}",
        f"site_url: {json.dumps(site_url)}",
        "docs_dir: docs",
        "theme:",
        "  name: material",
        "  custom_dir: overrides",  # og:image and the feed's link in every page's head
        "  features: [navigation.tabs, navigation.footer]",
        "plugins:",
        "  - search",
        "  - blog:",
        "      blog_dir: blog",
        "      blog_toc: true",
        "      post_date_format: long",
        "      post_url_format: '{date}/{slug}'",
        "      pagination_per_page: 10",
        "      archive_date_format: MMMM yyyy",
        "  - tags",
        "  - rss:",
        "      match_path: 'blog/posts/.*'",
        "      use_git: false",  # the site is not a repository: dates come from the posts
        "      date_from_meta: {as_creation: date}",
        "      categories: [tags]",
        f"      feed_title: {name}",
        f"      image: {json.dumps(site_url + SITE_CARD.removeprefix('docs/'))}",
        "nav:",
        *[f"  - {title}: {target}" for title, target in nav],
        "not_in_nav: |",  # pages are reached from their section's index
        *[f"  /{section}/*.md" for section in ("journal", "profiles")],
    ]
    return ("\n".join(lines) + "\n").encode()


def _authors(names: Iterable[str]) -> bytes:
    """The blog's ``.authors.yml``: each post's authors by pseudonym, with a drawn avatar."""
    lines = ["authors:"]
    for name in names:
        lines += [
            f"  {name}:",
            f"    name: {json.dumps(name)}",
            '    description: "Member"',
            f"    avatar: {json.dumps(f'blog/avatars/{name}.png')}",
        ]
    return ("\n".join(lines) + "\n").encode()


FEED = "feed_rss_created.xml"  # the feed plugin's name for the newest posts first
# Every page's head: the card as og:image (absolute under site_url, as social sites need it)
# and the feed's address. Titles and descriptions come from front matter, escaped already.
_THEME_OVERRIDE = (
    """{% extends "base.html" %}
{% block extrahead %}
  {{ super() }}
  <link rel="alternate" type="application/rss+xml" title="{{ config.site_name }}"
        href="{{ config.site_url }}"""
    + FEED
    + """">
  {% if page and page.meta %}
    <meta property="og:type" content="{{ 'article' if page.meta.date else 'website' }}">
    <meta property="og:title" content="{{ page.meta.title or config.site_name }}">
    {% if page.meta.description %}
      <meta property="og:description" content="{{ page.meta.description }}">
    {% endif %}
    {% if page.meta.image %}
      <meta property="og:image" content="{{ config.site_url }}{{ page.meta.image }}">
      <meta name="twitter:card" content="summary_large_image">
    {% endif %}
  {% endif %}
{% endblock %}
"""
)


# -- writing --------------------------------------------------------------------------------
def _digest(content: Content) -> str:
    if isinstance(content, Streamed):
        return content.digest
    return hashlib.sha256(content).hexdigest()


def _file_digest(path: Path) -> str:
    """The SHA-256 of the file at ``path``, read a chunk at a time."""
    hashed = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            hashed.update(chunk)
    return hashed.hexdigest()


def _commit(folder: Path, files: Mapping[str, Content]) -> SiteResult:
    """Check every target first, then write the files that change, then the manifest.

    While files are being replaced the manifest lists each one's old and new hash, so a
    write killed half-way (or stopped by a full disk) is taken up again by the next one
    instead of refused.
    """
    manifest_path = folder / MANIFEST
    with _writing(folder):
        check_site_folder(folder)
        known = _manifest(manifest_path)
        changes = _changes(folder, files, known)
        remove_abandoned_drafts(folder)
        digests = {relative: _digest(content) for relative, content in sorted(files.items())}
        if changes:
            during = {r: sorted({*known.get(r, ()), digests.get(r, "")} - {""}) for r in known}
            during.update({r: sorted({*known.get(r, ()), digests[r]}) for r in changes})
            _save_manifest(manifest_path, during)
            for relative, content in changes.items():
                _replace_file(folder / PurePosixPath(relative), content)
        _remove_no_longer_made(folder, known, digests)
        final = {r: [d] for r, d in digests.items()}
        if final != known:
            _save_manifest(manifest_path, final)
    return SiteResult(folder=folder, files=len(files), written=len(changes))


def _changes(
    folder: Path, files: Mapping[str, Content], known: Mapping[str, list[str]]
) -> dict[str, Content]:
    """The files whose bytes change; refused whole if one of them is not egregora's to
    replace (not written by it, or edited since)."""
    changes: dict[str, Content] = {}
    for relative, content in files.items():
        target = folder / PurePosixPath(relative)
        if not target.exists():
            changes[relative] = content
            continue
        present = _file_digest(target)
        if present == _digest(content):
            continue  # already there, as it would be written
        if present not in known.get(relative, ()):
            why = (
                "was edited since egregora wrote it"
                if relative in known
                else ("was not written by egregora")
            )
            raise SiteError(
                f"{target} {why}; egregora does not replace it. Move it out of the site "
                "folder (or choose another --site) and run again; nothing was written"
            )
        changes[relative] = content
    return changes


def _remove_no_longer_made(
    folder: Path, known: Mapping[str, list[str]], made: Mapping[str, str]
) -> None:
    """Remove the files egregora wrote (the manifest says so, and their bytes are still the
    ones it wrote) that are no longer made: a page renamed by a rekey must not stay behind
    under its old pseudonyms. An edited one is the user's now, and is left where it is."""
    for relative, written in known.items():
        target = folder / PurePosixPath(relative)
        if relative not in made and target.is_file() and _file_digest(target) in written:
            target.unlink()
            _remove_empty_parents(target.parent, folder)


def _remove_empty_parents(start: Path, folder: Path) -> None:
    """Remove ``start`` and its parents below ``folder`` while they are empty (a section an
    earlier layout had, say); a folder holding anything, the user's files too, stays."""
    while start != folder and folder in start.parents:
        try:
            start.rmdir()
        except OSError:
            return  # not empty (or not ours to remove): it stays
        start = start.parent


def check_site_folder(folder: Path) -> None:
    """Refuse, before anything is written, a site folder that is a file or lies under one, or
    that holds files but is no egregora site (it has no manifest): a project's folder, a
    home, the folder an export lies in. An empty or new folder, or a site egregora made, is
    written."""
    blocker = _file_in_the_way(folder)
    if blocker == folder:
        raise SiteError(f"{folder} is a file, not a folder; choose another --site")
    if blocker is not None:
        raise SiteError(
            f"cannot make the site folder {folder}: {blocker} is a file, not a folder; move "
            "it away or choose another --site"
        )
    held = folder.is_dir() and any(not p.name.startswith(PREFIX) for p in folder.iterdir())
    if held and not (folder / MANIFEST).exists():
        raise SiteError(
            f"{folder} holds files and is not a site egregora made (it has no {MANIFEST}); "
            "give --site an empty or new folder; nothing was written"
        )


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest of ``path`` and its parents that exists, when it is not a folder."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


@contextmanager
def _writing(folder: Path) -> Iterator[None]:
    """An operating system's refusal while the site is written, as one line naming the
    folder and the fix (the draft of the file being written is already gone)."""
    try:
        yield
    except OSError as exc:
        raise _cannot_write(folder, exc) from exc


def _cannot_write(folder: Path, exc: OSError) -> EgregoraError:
    """The error for ``exc``; it names the folder the draft was in, never the draft, which
    is gone by now."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return disk_full(folder, OSError(exc.errno, exc.strerror))
    where = Path(exc.filename) if exc.filename else folder
    if where.name.startswith(PREFIX):
        where = where.parent
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        blocker = _file_in_the_way(where) or where
        return SiteError(
            f"cannot write the site into {folder}: {blocker} is a file where a folder should "
            "be; move it away or choose another --site"
        )
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return SiteError(
            f"cannot write the site into {folder}: {reason} ({where}); make the folder "
            "writable or choose another --site"
        )
    return SiteError(
        f"cannot write the site into {folder}: {reason} ({where}); fix that or choose "
        "another --site, and run again"
    )


def _manifest(path: Path) -> dict[str, list[str]]:
    """path -> the hashes egregora wrote there (two while a write was under way)."""
    if not path.is_file():
        return {}
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
        return {str(k): [str(d) for d in v] for k, v in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SiteError(
            f"{path} is not egregora's site manifest ({exc}); move it away, or choose "
            "another --site folder"
        ) from exc


def _save_manifest(path: Path, files: Mapping[str, list[str]]) -> None:
    text = json.dumps({"generator": "egregora", "files": dict(sorted(files.items()))}, indent=1)
    _replace_file(path, (text + "\n").encode())


def _replace_file(target: Path, content: Content) -> None:
    """Write ``target`` whole or not at all (a draft renamed over it): readers never see
    half a page. Only files egregora wrote, as its manifest says, are ever replaced. The
    draft names its writer's pid, so a later write knows whether it was abandoned."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, draft = new_draft(target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            if isinstance(content, Streamed):
                for chunk in content.chunks():  # a damaged file raises before the rename
                    out.write(chunk)
            else:
                out.write(content)
        os.replace(draft, target)
    except BaseException:
        Path(draft).unlink(missing_ok=True)
        raise
