"""The site writer against what it cannot trust: media file names a member chose, a writer killed
half-way, a folder it cannot write and a disk with no room left.

A media file keeps its extension only when that is a plain media or document type, so nobody's
page or script is ever published as one; a file's name reaches a page as one bounded line; a
draft left by a dead writer is cleared by the next write; and a refusal of the operating system
ends the write with one line naming the folder and the fix, after which the next write, once the
cause is gone, writes the same site a roomy disk gets.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import markdown  # type: ignore[import-untyped]
import pytest
from typer.testing import CliRunner

from egregora.cli.app import app
from egregora.runner import RunOptions, run_pipeline
from egregora.runner.site import MANIFEST, SHOWN_LENGTH, media_file, shown_name
from egregora.storage import Storage
from tests.conftest import Demo, Place
from tests.support import mounted_tmpfs

TZ = "America/Sao_Paulo"
HEADING = "\n# Heading\n<script>"
LONG = "L" * 300
# A member's files as an export may carry them, and the extension each is published with.
FILES = {
    "index.md": (b"# Not the index\n", ".bin"),
    "notes.MD": (b"[click](javascript:alert(1))\n", ".bin"),
    "page.html": (b"<script>alert(1)</script>", ".bin"),
    "x.htm": (b"<script>alert(2)</script>", ".bin"),
    "x.svg": (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(3)"/>', ".bin"),
    "a.js": (b"alert(4)", ".bin"),
    "README": (b"no extension", ".bin"),
    HEADING: (b"a name that starts Markdown", ".bin"),
    LONG: (b"a long name", ".bin"),
    "photo.JPG": (b"\xff\xd8\xff\xe0 a photo", ".jpg"),
    "clip.mp4": (b"\x00\x00\x00\x18ftypmp42", ".mp4"),
    "Recipe.pdf": (b"%PDF-1.4 a recipe", ".pdf"),
}
CHAT = "".join(
    f"14/03/2024, 10:0{i} - {who}: {name} (file attached)\n"
    for i, (who, name) in enumerate(
        [("Ana Sousa", "index.md"), ("Bia Costa", "page.html"), ("Ana Sousa", "photo.JPG")]
    )
)
# Only the folder matters to these; the engine is the same on both.
ON_DUCKDB = pytest.mark.parametrize("demo", ["duckdb"], indirect=True)
runner = CliRunner()


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by its relative path, with its bytes."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def drafts(folder: Path) -> list[Path]:
    return sorted(folder.rglob(".draft-*"))


def dead_pid() -> int:
    """The pid of a process that has just ended."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def site_build(db: str, site: Path) -> subprocess.CompletedProcess[str]:
    """``egregora site build`` as a user runs it: its own process, stderr apart."""
    return subprocess.run(
        [sys.executable, "-m", "egregora", "site", "build", "--db", db, "--site", str(site)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "400"},
    )


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def build(demo: Demo, site: Path) -> None:
    result = runner.invoke(app, ["site", "build", "--db", demo.db, "--site", str(site), "--json"])
    assert result.exit_code == 0, result.output


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mounts a tmpfs with the given options on a fresh folder; unmounted afterwards. Skips
    with the reason where mounting is not permitted (it needs root)."""
    numbers = itertools.count()
    with ExitStack() as mounts:

        def mount(options: str) -> Path:
            where = tmp_path / f"tmpfs-{next(numbers)}"
            return mounts.enter_context(mounted_tmpfs(where, options))

        yield mount


# -- published names -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("filename", "suffix"),
    [
        ("index.md", ".bin"),
        ("notes.MD", ".bin"),
        ("page.html", ".bin"),
        ("x.htm", ".bin"),
        ("x.xhtml", ".bin"),
        ("x.svg", ".bin"),
        ("a.js", ".bin"),
        ("photo.jpg.html", ".bin"),
        (".", ".bin"),
        ("x.", ".bin"),
        (LONG, ".bin"),
        ("README", ".bin"),
        (None, ".bin"),
        ("photo.JPG", ".jpg"),
        ("page.html.png", ".png"),
        ("L" * 296 + ".jpg", ".jpg"),
        ("clip.mp4", ".mp4"),
        ("voice.opus", ".opus"),
        ("Recipe.pdf", ".pdf"),
        ("Budget.XLSX", ".xlsx"),
    ],
)
def test_a_media_file_keeps_only_a_plain_media_or_document_extension(
    filename: str | None, suffix: str
) -> None:
    assert media_file({"id": "media-0f", "filename": filename}) == "media-0f" + suffix


@pytest.mark.parametrize(
    "hidden",
    [
        *("\n", "\r\n", "\t", "\x00", "\x1b", "\x7f", "\x85", "\x9b"),  # C0, DEL and C1
        *("\u2028", "\u2029"),  # line and paragraph separators
        *("\u202e", "\u2066", "\u200e", "\ufeff"),  # bidi controls, a byte-order mark
        "\ufffe",  # a noncharacter
    ],
)
def test_a_shown_name_has_no_control_or_line_break(hidden: str) -> None:
    assert shown_name(f"a{hidden}b") == "a b"


def test_a_shown_name_is_one_bounded_line() -> None:
    assert shown_name(HEADING) == "# Heading <script>"
    assert shown_name("  two   spaces ") == "two spaces"
    assert shown_name("\U0001f469\u200d\U0001f4bb team") == "\U0001f469\u200d\U0001f4bb team"
    cut = shown_name(LONG)
    assert len(cut) == SHOWN_LENGTH and cut == "L" * (SHOWN_LENGTH - 1) + "\u2026"
    assert shown_name("L" * SHOWN_LENGTH) == "L" * SHOWN_LENGTH


def test_hostile_media_names_publish_only_inert_files_and_one_line_each(
    tmp_path: Path, place: Place
) -> None:
    export = tmp_path / "WhatsApp Chat with Family.zip"
    with zipfile.ZipFile(export, "w") as archive:
        archive.writestr("WhatsApp Chat with Family.txt", CHAT)
        for name, (content, _) in FILES.items():
            archive.writestr(name, content)
    site = tmp_path / "site"
    with Storage.open(str(place)) as store:
        run_pipeline(store, export, RunOptions(tz=TZ, site=site))
        table = store.table("documents")
        media = store.to_pyarrow(table.filter(table.doc_type == "media")).to_pylist()
    assert sorted(row["filename"] for row in media) == sorted(FILES)
    published = {row["filename"]: media_file(row) for row in media}
    folder = site / "docs" / "media"
    assert {p.name for p in folder.iterdir()} == {"index.md", *published.values()}
    for name, (content, suffix) in FILES.items():
        assert published[name].endswith(suffix), name
        assert (folder / published[name]).read_bytes() == content
    # No page, script or vector image of a member's anywhere in what MkDocs publishes.
    docs = site / "docs"
    pages = [p.relative_to(docs).as_posix() for p in docs.rglob("*.md")]
    assert all(not p.startswith("media/") for p in pages if p != "media/index.md")
    assert not [p for p in docs.rglob("*") if p.suffix.lower() in (".html", ".htm", ".svg", ".js")]

    index = (folder / "index.md").read_text(encoding="utf-8")
    lines = index.splitlines()
    sections = [line for line in lines if line.startswith("#")]
    # The files the chat sent on their day; those no message sent apart, last.
    assert sections == ["# Media", "## 14 March 2024", "## Other files"]
    entries = [line for line in lines if line and not line.startswith("#")]
    assert len(entries) == len(FILES)  # one line each
    for file in published.values():
        (line,) = [line for line in entries if file in line]
        if file.endswith(".jpg"):  # an image: shown, its name an escaped attribute
            assert line.startswith(f'<a href="{file}"><img src="{file}" alt="'), line
        else:
            assert line.startswith("- [") and line.endswith(")"), line
    heading = next(line for line in entries if published[HEADING] in line)
    assert heading.startswith(f"- [\\# Heading &lt;script&gt;]({published[HEADING]})")
    long_line = next(line for line in entries if published[LONG] in line)
    assert f"[{'L' * (SHOWN_LENGTH - 1)}\u2026]" in long_line
    rendered = markdown.markdown(index)
    assert rendered.count("<h1>") == 1 and rendered.count("<h2") == 2
    assert "<script" not in rendered
    (post_page,) = [p for p in (docs / "blog" / "posts").glob("*.md")]
    post = post_page.read_text(encoding="utf-8")
    for name in ("index.md", "page.html", "photo.JPG"):
        assert f"(../../media/{published[name]})" in post


# -- drafts ------------------------------------------------------------------------------------
@ON_DUCKDB
def test_the_next_write_clears_drafts_of_dead_writers_and_keeps_live_ones(
    demo_copy: Demo,
) -> None:
    site = demo_copy.folder / "site"
    dead, live = dead_pid(), os.getpid()
    hour_ago, two_days_ago = time.time() - 3700, time.time() - 2 * 86400
    made = {
        "docs/blog/posts/.draft-{dead}-abcd1234": None,  # its writer died
        "elsewhere/deeper/.draft-{dead}-9z_x0000": None,  # anywhere under the site
        "docs/media/.draft-{live}-abcd1234": None,  # its writer runs
        "docs/.draft-{live}-old_0000": two_days_ago,  # untouched for days: a reused pid
        ".draft-k2x_9abc": hour_ago,  # an earlier version's draft, no pid, old
        "docs/journal/.draft-new_9abc": None,  # the same, written a moment ago
        "docs/.draft-notes.txt": two_days_ago,  # not a name egregora gives a draft
        "docs/.draft-{dead}-abcd1234.txt": two_days_ago,  # nor this
    }
    paths = {}
    for pattern, mtime in made.items():
        path = site / pattern.format(dead=dead, live=live)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a page")
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        paths[pattern] = path
    before = {p: p.read_bytes() for p in site.rglob("*") if p.is_file() and p.name[0] != "."}
    build(demo_copy, site)
    gone = {
        "docs/blog/posts/.draft-{dead}-abcd1234",
        "elsewhere/deeper/.draft-{dead}-9z_x0000",
        "docs/.draft-{live}-old_0000",
        ".draft-k2x_9abc",
    }
    assert {p for p, path in paths.items() if not path.exists()} == gone
    assert {p: p.read_bytes() for p in before} == before  # the site itself is untouched


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from egregora.runner.publish import build_site
from egregora.storage import Storage

media = Path(sys.argv[2]) / "docs" / "media"
replace = os.replace

def killed_before_media(draft, target):
    if Path(target).parent == media:
        os.kill(os.getpid(), signal.SIGKILL)  # between writing the draft and renaming it
    replace(draft, target)

os.replace = killed_before_media
with Storage.open(sys.argv[1]) as store:
    build_site(store, Path(sys.argv[2]))
"""


def test_a_writer_killed_mid_file_leaves_a_draft_the_next_write_removes(
    demo_copy: Demo, tmp_path: Path
) -> None:
    site, roomy = tmp_path / "site", tmp_path / "roomy"
    args = [sys.executable, "-c", KILLED_WRITER, demo_copy.db, str(site)]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL, err.decode()
    (left,) = drafts(site)
    assert left.parent == site / "docs" / "media"
    assert re.fullmatch(rf"\.draft-{child.pid}-[a-z0-9_]{{8}}", left.name)
    build(demo_copy, site)
    build(demo_copy, roomy)
    assert drafts(site) == []
    assert tree(site) == tree(roomy)


# -- folders it cannot write ---------------------------------------------------------------------
@ON_DUCKDB
def test_a_site_under_a_file_is_one_line_naming_the_file(demo_copy: Demo, tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine\n", encoding="utf-8")
    done = site_build(demo_copy.db, blocker / "site")
    line = one_error_line(done)
    assert done.returncode == 2
    assert f"cannot make the site folder {blocker / 'site'}: {blocker} is a file" in line
    assert "choose another --site" in line
    assert blocker.read_text(encoding="utf-8") == "mine\n"


@ON_DUCKDB
def test_a_read_only_site_folder_is_one_line_naming_it(
    demo_copy: Demo, tmpfs: Callable[[str], Path]
) -> None:
    site = tmpfs("ro,size=1m")
    done = site_build(demo_copy.db, site)
    line = one_error_line(done)
    assert done.returncode == 2
    assert f"cannot write the site into {site}: Read-only file system ({site})" in line
    assert "make the folder writable or choose another --site" in line
    assert list(site.iterdir()) == []


def test_a_full_disk_is_one_line_and_the_next_write_after_freeing_space_finishes_the_site(
    demo_copy: Demo, tmp_path: Path, tmpfs: Callable[[str], Path]
) -> None:
    roomy = tmp_path / "roomy"
    build(demo_copy, roomy)
    disk = tmpfs("size=4m")
    room = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    assert sum(map(len, tree(roomy).values())) > 512 * 1024  # the site needs more than is left
    filler = disk / "filler"
    filler.write_bytes(b"\0" * (room - 512 * 1024))
    site = disk / "site"
    done = site_build(demo_copy.db, site)
    line = one_error_line(done)
    assert done.returncode == 1
    assert line.startswith(f"error: the disk holding {site} is full (")
    assert "free some space there" in line
    assert drafts(disk) == []
    manifest = json.loads((site / MANIFEST).read_text(encoding="utf-8"))
    assert set(tree(site)) - {MANIFEST} <= set(manifest["files"])  # what it wrote is its own
    assert tree(site) != tree(roomy)
    filler.unlink()
    assert site_build(demo_copy.db, site).returncode == 0
    assert tree(site) == tree(roomy)
