"""What a run publishes: no live markup from the chat, and no member's name or phone number.

Sites are made by `egregora run` from exports written here and built with `mkdocs build`; the
checks read every file the run wrote and every page MkDocs built from them.
"""

from __future__ import annotations

import html
import re
import zipfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from egregora.cli.app import app
from egregora.pseudonyms import thread_slug
from egregora.storage import Storage
from tests.support import copy_database, mkdocs_build

runner = CliRunner()
MARK = "PWNED"  # in every attack, so what reaches the HTML can be told from the theme's own
SAFE_SCHEMES = ("http", "https", "mailto")
# Elements no chat text may ever become (the theme uses none of them; its search form aside).
# The theme draws its icons as inline <svg>: an <svg> made of chat text would carry an on...=
# attribute or the chat's mark in one, both refused below.
FORBIDDEN = {"iframe", "object", "embed", "math", "base", "frame", "frameset"}
# Attributes that may hold chat text, escaped: a page's description, a picture's alt text,
# a heading's id (lower case), a safe link.
# Attributes whose value is only ever text (aria-label: what a screen reader reads aloud).
TEXT_ATTRIBUTES = {"content", "title", "alt", "href", "id", "aria-label"}


# -- exports and sites ----------------------------------------------------------------------
def write_export(
    path: Path, chat_name: str, lines: list[str], media: dict[str, bytes] | None = None
) -> Path:
    """A WhatsApp zip: the chat text under the name phones give it, and its media files."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"WhatsApp Chat with {chat_name}.txt", "\n".join(lines) + "\n")
        for name, content in (media or {}).items():
            archive.writestr(name, content)
    return path


def run_site(db: Path, export: Path, site: Path, *args: str) -> None:
    command = ["run", str(export), "--tz", "UTC", "--site", str(site), "--db", str(db), *args]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output


def generated(site: Path) -> Iterator[tuple[Path, str]]:
    """Every file of the site as text (binary files decoded leniently: a name in a PNG's
    metadata or a copied file counts too)."""
    for path in sorted(site.rglob("*")):
        if path.is_file():
            yield path, path.read_bytes().decode("utf-8", errors="replace")


# -- built HTML -----------------------------------------------------------------------------
class Page(HTMLParser):
    """The tags, attributes and text of one built page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.ends: list[str] = []
        self.text: list[str] = []
        self.script: list[str] = []
        self._in: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        self._in.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        self.ends.append(tag)
        if tag in self._in:
            while self._in and self._in.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if self._in and self._in[-1] in ("script", "style"):
            self.script.append(data)
        else:
            self.text.append(data)


def scheme(url: str) -> str | None:
    """The scheme a browser would read in ``url`` (entities, spaces and controls removed)."""
    cleaned = re.sub(r"[\x00-\x20\x7f]+", "", html.unescape(url)).lower()
    found = re.match(r"([a-z][a-z0-9+.\-]*):", cleaned)
    return found.group(1) if found else None


def check_page(path: Path) -> str:
    """Refuse any live markup made from chat text in one built page; return its text."""
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    where = str(path)
    for tag, attrs in page.tags:
        assert tag not in FORBIDDEN, f"{where}: <{tag}>"
        for name, value in attrs:
            assert not name.startswith("on"), f"{where}: <{tag} {name}=...>"
            value = value or ""
            if name in ("href", "src", "action", "formaction", "data", "poster", "srcset"):
                assert scheme(value) in (None, *SAFE_SCHEMES), f"{where}: {name}={value!r}"
            if MARK in value:
                assert name in TEXT_ATTRIBUTES, f"{where}: <{tag} {name}={value!r}>"
    assert not any(MARK in s for s in page.script), f"{where}: chat text in a script or style"
    starts = sum(1 for tag, _ in page.tags if tag == "div")
    assert starts == page.ends.count("div"), f"{where}: unbalanced <div>s"
    return "".join(page.text)


# Every field a member of the group controls: their name, the group's name (and so the site's),
# messages, notices, attachment names, and links.
ATTACKS = [
    f"<script>alert('{MARK}-1')</script> fish",
    f"<img src=x onerror=alert('{MARK}-2')> fish",
    f"[click fish](javascript:alert('{MARK}-3'))",
    f"<a href=\"javascript:alert('{MARK}-4')\">fish</a>",
    f"</div></article></div> fish {MARK}-5",
    f"fish <svg onload=alert('{MARK}-6')>",
    f"[fish][x]\n\n[x]: javascript:alert('{MARK}-7')",
    f"fish <iframe src=javascript:alert('{MARK}-8')></iframe>",
    f"fish [x](&#106;avascript:alert('{MARK}-9'))",
    f"fish <JAVASCRIPT:alert('{MARK}-10')> <a href=' javascript:x'>{MARK}-11</a>",
    f"# fish heading {MARK}-12\n---\n| a | b |\n|---|---|\n| {MARK} | fish |",
    f"```\nfish {MARK}-13",
    f"fish {{: onclick=alert('{MARK}-14') }} <!-- {MARK}-15",
    f"fish \x1b[31m \x07 \u202e{MARK}-16 <style>body{{display:none}}</style>",
    f"fish <b onmouseover=alert('{MARK}-17')>bold</b> <div markdown=1>{MARK}-18</div>",
    f"fish https://example.com/a?q=<script>{MARK}-19</script>&x=`y` mailto:fish@example.com",
]


def hostile_export(path: Path) -> Path:
    authors = [f"<b onclick=alert('{MARK}-a')>Eve</b>", "Mallory ](x) <i>[y]", "Trent"]
    lines = [
        f"01/05/2024, 09:00 - {authors[0]} created group \"<svg onload=alert('{MARK}-g')>\"",
        f'01/05/2024, 09:01 - {authors[0]} changed the subject from "a" to '
        f"\"<script>alert('{MARK}-s')</script>\"",
        f"01/05/2024, 09:02 - <img src=x onerror=alert('{MARK}-n')> is a notice of no known shape",
    ]
    for day, attack in enumerate(ATTACKS, start=2):
        first, *rest = attack.split("\n")
        for n, author in enumerate(authors):
            lines.append(f"{day:02d}/05/2024, 10:0{n} - {author}: {first}")
            lines += rest
    media_name = f"<img src=x onerror=alert('{MARK}-m')>.jpg"
    lines.append(f"28/05/2024, 10:00 - Trent: {media_name} (file attached)")
    group = f"<svg onload=alert('{MARK}-name')> \x1b[1m \u202e"
    return write_export(path, group, lines, {media_name: b"\xff\xd8\xff\xe0 fish \xff\xd9"})


def test_a_hostile_chat_builds_a_site_without_live_markup(tmp_path: Path, empty_db: Path) -> None:
    db = copy_database(empty_db, tmp_path / "db" / "egregora.duckdb")
    site = tmp_path / "site"
    run_site(db, hostile_export(tmp_path / "hostile.zip"), site)
    config = yaml.safe_load((site / "mkdocs.yml").read_text(encoding="utf-8"))
    assert MARK in config["site_name"] and "<" not in config["site_name"]
    assert not re.search(r"[\x00-\x1f\u202e]", config["site_name"])
    pages = mkdocs_build(site, tmp_path / "built")
    assert len(pages) > len(ATTACKS)
    texts = [check_page(page) for page in pages]
    shown = "\n".join(texts)
    # The attacks are on the pages, as text: every one of the highlighted payloads.
    for n in (1, 2, 5, 6, 12, 16, 19):
        assert f"{MARK}-{n}" in shown, n
    assert f"<script>alert('{MARK}-1')</script>" in shown
    # The group's name is the site's, as text, on every page.
    assert all(f"<svg onload=alert('{MARK}-name')>" in text for text in texts)


# -- names and numbers ----------------------------------------------------------------------
MEMBERS = ["Inês Gonçalves", "José Antônio", "+1 202-555-0147", "+55 11 91234-5678", "Zoë"]
PHONES = ["+1 202-555-0147", "+55 11 91234-5678", "+44 7700 900123", "+351 912 345 678"]
NAMED_EXPORT = [
    "01/05/2024, 09:00 - Messages and calls are end-to-end encrypted. No one outside of this "
    "chat, not even WhatsApp, can read or listen to them. Tap to learn more.",
    '01/05/2024, 09:01 - Inês Gonçalves created group "Zoë e José"',
    "01/05/2024, 09:02 - Inês Gonçalves added José Antônio, Zoë and +1 202-555-0147",
    "01/05/2024, 09:03 - Inês Gonçalves added +44 7700 900123",
    "01/05/2024, 09:04 - +55 11 91234-5678 joined using this group's invite link",
    '01/05/2024, 09:05 - Inês Gonçalves changed the subject from "Zoë e José" to "José\'s 40"',
    "01/05/2024, 09:06 - Inês Gonçalves: @José Antônio can you bring the fish?",
    "01/05/2024, 09:07 - José Antônio: @12025550147 fish tonight, ask Inês Gonçalves",
    "01/05/2024, 09:08 - +1 202-555-0147: fish is fine, call +351 912 345 678 for the boat",
    "01/05/2024, 09:09 - +55 11 91234-5678: @447700900123 fish? Zoë says yes",
    "01/05/2024, 09:10 - Zoë: Inês fish fish, José bring wine",
    "02/05/2024, 10:00 - Zoë: IMG-20240502-WA0001.jpg (file attached)",
    "02/05/2024, 10:01 - José Antônio left",
    "02/05/2024, 10:02 - Your security code with Zoë changed. Tap to learn more.",
    "02/05/2024, 10:03 - +1 202-555-0147 changed their phone number to a new number. Tap to "
    "message or add the new number.",
    "02/05/2024, 10:04 - Inês Gonçalves removed +55 11 91234-5678",
]


def phone_pattern(number: str) -> re.Pattern[str]:
    """The number's last nine digits, with any separators between them."""
    digits = re.sub(r"\D", "", number)[-9:]
    return re.compile(r"\D{0,3}".join(digits))


def leaks(text: str, names: set[str], phones: set[str]) -> list[str]:
    """The names (and their slugs) and phone numbers found in ``text``."""
    lowered = text.lower()
    found = [n for n in names if n.lower() in lowered or thread_slug(n) in lowered]
    return found + [p for p in phones if phone_pattern(p).search(text)]


def check_no_names(db: Path, site: Path, out: Path, names: set[str], phones: set[str]) -> None:
    with Storage.open(str(db), read_only=True) as store:
        messages = store.to_pyarrow(store.table("messages")).to_pylist()
        documents = store.to_pyarrow(store.table("documents")).to_pylist()
    names |= {m["author_raw"] for m in messages if m["author_raw"] and m["author_raw"][0] != "+"}
    phones |= {m["author_raw"] for m in messages if m["author_raw"] and m["author_raw"][0] == "+"}
    assert names and phones
    for doc in documents:
        if doc["doc_type"] == "media":
            continue  # the export's own file, kept for the site to serve under its id
        text = " ".join(str(v) for v in doc.values() if v is not None)
        assert not leaks(text, names, phones), (doc["id"], leaks(text, names, phones))
    files = list(generated(site))
    assert len(files) > 10
    for path, text in files:
        assert not leaks(text, names, phones), (path, leaks(text, names, phones))
    for page in mkdocs_build(site, out):
        text = page.read_text(encoding="utf-8")
        assert not leaks(text, names, phones), (page, leaks(text, names, phones))


def test_no_name_or_number_is_published_from_notices_mentions_and_phone_authors(
    tmp_path: Path, empty_db: Path
) -> None:
    export = write_export(
        tmp_path / "named.zip",
        "Inês Gonçalves",  # a one-to-one chat is named after the contact
        NAMED_EXPORT,
        {"IMG-20240502-WA0001.jpg": b"\xff\xd8\xff\xe0 photo \xff\xd9"},
    )
    db = copy_database(empty_db, tmp_path / "db" / "egregora.duckdb")
    site = tmp_path / "site"
    run_site(db, export, site, "--date-order", "dmy")
    names = {m for m in MEMBERS if not m.startswith("+")}
    check_no_names(db, site, tmp_path / "built", names, set(PHONES))
    config = yaml.safe_load((site / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["site_name"] == "Chat journal"
    journal = "\n".join(p.read_text(encoding="utf-8") for p in (site / "docs/journal").glob("*.md"))
    assert "added member-" in journal and "Messages are end-to-end encrypted." in journal


@pytest.mark.parametrize(
    "fixture",
    ["system_android_en.txt", "system_android_pt.txt", "system_ios_en.txt", "system_ios_pt.txt"],
)
def test_no_name_is_published_from_the_notices_of_each_phone(
    tmp_path: Path, empty_db: Path, fixture: str
) -> None:
    source = Path(__file__).parent / "fixtures" / "whatsapp" / fixture
    lines = source.read_text(encoding="utf-8-sig").splitlines()
    export = write_export(tmp_path / "chat.zip", "Family", lines)
    db = copy_database(empty_db, tmp_path / "db" / "egregora.duckdb")
    site = tmp_path / "site"
    run_site(db, export, site)
    with Storage.open(str(db), read_only=True) as store:
        texts = [t for t in store.to_pyarrow(store.table("messages"))["text"].to_pylist() if t]
    # The people the notices name, whether or not they ever wrote.
    named = {n for n in ("Ana Sousa", "Bia Costa", "Caio Lima") if any(n in t for t in texts)}
    check_no_names(db, site, tmp_path / "built", named, {"+351 912 345 678", "+1 202-555-0147"})


def test_the_sample_chat_publishes_no_name(tmp_path: Path, demo_folder: Path) -> None:
    site = demo_folder / "site"
    check_no_names(demo_folder / "egregora.duckdb", site, tmp_path / "built", set(), set())
