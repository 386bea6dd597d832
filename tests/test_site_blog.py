"""The site reads like a blog: Material for MkDocs' blog with dates, authors (pseudonyms),
tags, archive and pages of ten posts, a feed, and each post's card as its ``og:image``.

Every test reads what ``mkdocs build --strict`` makes of the demo's site, as a reader's browser
or feed reader would get it.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from egregora.runner.site import PREVIEW_URL
from tests.conftest import Demo
from tests.support import egregora_process, mkdocs_build

OG_IMAGE = re.compile(r'<meta property="og:image" content="([^"]*)">')
TIME = re.compile(r'<time datetime="([^"]*)"')


def front_matter(page: Path) -> dict[str, Any]:
    head = page.read_text(encoding="utf-8")[4:].split("\n---\n", 1)[0]
    fields: dict[str, Any] = yaml.safe_load(head)
    return fields


@pytest.fixture(scope="module")
def built(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's site as ``mkdocs build --strict`` makes it."""
    out = tmp_path_factory.mktemp("built")
    assert mkdocs_build(demo.folder / "site", out)
    return out


def posts(demo: Demo) -> Iterator[tuple[dict[str, Any], str]]:
    """Each post's front matter and the path its page is built at."""
    for page in sorted((demo.folder / "site" / "docs" / "blog" / "posts").glob("*.md")):
        fields = front_matter(page)
        yield fields, f"blog/{fields['date']:%Y/%m/%d}/{fields['slug']}/index.html"


def local(url: str, site_url: str, built: Path) -> Path:
    """The built file an absolute address of the site names."""
    assert url.startswith(site_url), url
    path = built / url.removeprefix(site_url)
    return path / "index.html" if url.endswith("/") else path


def test_a_post_page_carries_its_date_authors_and_card(demo: Demo, built: Path) -> None:
    found = list(posts(demo))
    assert len(found) == 20
    for fields, where in found:
        page = (built / where).read_text(encoding="utf-8")
        dated = TIME.search(page)
        assert dated is not None and dated[1].startswith(str(fields["date"]))
        for author in fields["authors"]:
            assert author.startswith("member-")
            assert f'alt="{author}"' in page  # the avatar
            assert re.search(rf"<strong>\s*{author}\s*</strong>", page), author  # the name
        (image,) = OG_IMAGE.findall(page)
        assert image == f"{PREVIEW_URL}blog/cards/{fields['slug']}.png"
        assert local(image, PREVIEW_URL, built).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        description = html.unescape(fields["description"])
        assert f'<meta name="description" content="{html.escape(description)}">' in page


def test_the_feed_lists_every_post_with_its_page_and_card(demo: Demo, built: Path) -> None:
    channel = ET.parse(built / "feed_rss_created.xml").getroot().find("channel")
    assert channel is not None
    items = channel.findall("item")
    by_title = {html.unescape(f["title"]): f for f, _ in posts(demo)}
    assert sorted(i.findtext("title") or "" for i in items) == sorted(by_title)
    for item in items:
        fields = by_title[item.findtext("title") or ""]
        link = item.findtext("link") or ""
        assert local(link, PREVIEW_URL, built).is_file()
        assert item.findtext("pubDate", "").startswith(f"{fields['date']:%a, %d %b %Y}")
        assert sorted(a.text or "" for a in item.findall("author")) == sorted(fields["authors"])
        enclosure = item.find("enclosure")
        assert enclosure is not None and enclosure.get("type") == "image/png"
        assert local(enclosure.get("url", ""), PREVIEW_URL, built).is_file()


def test_posts_come_ten_a_page_with_an_archive_and_tags(demo: Demo, built: Path) -> None:
    first = (built / "blog" / "index.html").read_text(encoding="utf-8")
    second = (built / "blog" / "page" / "2" / "index.html").read_text(encoding="utf-8")
    assert first.count('class="md-post md-post--excerpt"') == 10
    assert second.count('class="md-post md-post--excerpt"') == 10
    assert (built / "blog" / "archive" / "2024" / "index.html").is_file()
    tags = (built / "tags" / "index.html").read_text(encoding="utf-8")
    for fields, _ in posts(demo):
        for tag in fields["tags"]:
            assert f">{tag}<" in tags, tag


def test_the_authors_file_names_pseudonyms_with_drawn_avatars(demo: Demo, built: Path) -> None:
    blog = demo.folder / "site" / "docs" / "blog"
    authors = yaml.safe_load((blog / ".authors.yml").read_text(encoding="utf-8"))["authors"]
    written = {a for fields, _ in posts(demo) for a in fields["authors"]}
    assert set(authors) == written
    for key, author in authors.items():
        assert author["name"] == key and key.startswith("member-")
        assert (demo.folder / "site" / "docs" / author["avatar"]).read_bytes()[:4] == b"\x89PNG"


def test_the_media_page_has_a_section_per_day(demo: Demo, built: Path) -> None:
    page = (demo.folder / "site" / "docs" / "media" / "index.md").read_text(encoding="utf-8")
    days = re.findall(r"^## (.+)$", page, flags=re.M)
    assert days and len(days) == len(set(days))
    shown = (built / "media" / "index.html").read_text(encoding="utf-8")
    assert shown.count("<h2") == len(days) and shown.count('loading="lazy"') > 0


def test_a_site_url_places_the_feed_and_cards_there(demo_copy: Demo, tmp_path: Path) -> None:
    site, address = tmp_path / "site", "https://example.org/family"
    done = egregora_process(
        "site", "build", "--db", demo_copy.db, "--site", str(site), "--site-url", address
    )
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load((site / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["site_url"] == address + "/"
    out = tmp_path / "built"
    mkdocs_build(site, out)
    feed = (out / "feed_rss_created.xml").read_text(encoding="utf-8")
    assert "127.0.0.1" not in feed and feed.count(f"<link>{address}/blog/") == 20
    page = next((out / "blog" / "2024").rglob("index.html"))
    assert all(u.startswith(f"{address}/blog/cards/") for u in OG_IMAGE.findall(page.read_text()))


@pytest.mark.parametrize(
    "address",
    [
        "javascript:alert(1)",
        "ftp://example.org/",
        "https://",
        'https://x.org/"onload="a',
        "x",
        "https://x.org/?q=1",
    ],
)
def test_an_address_that_is_no_sites_is_refused_before_anything_is_written(
    demo_copy: Demo, tmp_path: Path, address: str
) -> None:
    site = tmp_path / "site"
    for command in (["site", "build"], ["run", str(next(demo_copy.folder.glob("*.zip")))]):
        done = egregora_process(
            *command, "--db", demo_copy.db, "--site", str(site), "--site-url", address, "--json"
        )
        assert done.returncode == 2, done.stdout + done.stderr
        error = json.loads(done.stdout)["error"]
        assert "is not the address of a site" in error["message"], error
        assert not site.exists()


def test_a_site_of_the_earlier_layout_loses_its_old_pages_and_folders(
    demo_copy: Demo, tmp_path: Path
) -> None:
    """Sites written before the blog kept posts in docs/posts/: a new write removes what
    egregora wrote there, and the folder once empty; a file of the user's stays, folder and all."""
    site = demo_copy.folder / "site"
    manifest_path = site / ".egregora-site.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    old = {"docs/posts/chat-2024-05-14.md": b"# an old post\n", "docs/posts/x.png": b"\x89PNG"}
    for relative, content in old.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_bytes(content)
        manifest["files"][relative] = [hashlib.sha256(content).hexdigest()]
    mine = site / "docs" / "notes" / "mine.md"
    mine.parent.mkdir(parents=True)
    mine.write_text("my notes\n", encoding="utf-8")
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    done = egregora_process("site", "build", "--db", demo_copy.db, "--site", str(site))
    assert done.returncode == 0, done.stderr
    assert not (site / "docs" / "posts").exists()
    assert mine.read_text(encoding="utf-8") == "my notes\n"
