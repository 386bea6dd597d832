"""A generated git repository for the git cases: built once with ``git fast-import``, cached.

The history is made up but shaped like a real project's: a first-parent chain of ``commits``
commits on ``main`` that grows to ``files`` live files, each commit touching a few of them
with a heavy-tailed preference for hot files, some adds, deletes, renames (now and then a
whole directory), a few binary files and paths with spaces and non-ASCII letters, and now
and then a topic branch merged back with ``--no-ff`` (its commits stay off the first-parent
chain). Committer dates mostly grow but some go backwards, as clock skew and rebases leave
them. Everything comes from one seeded ``random.Random``, so a spec always yields the same
repository; the repository and a manifest are cached under ``benchmarks/.cache/`` keyed by
the spec and the generator's version, and a second run reuses them.
"""

from __future__ import annotations

import bisect
import itertools
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from benchmarks.cache import CACHE, load_manifest, save_manifest
from benchmarks.harness import require
from egregora.git.command import CONFIG, git_env

# Bump when the generator changes what it writes: the cache key includes it.
GENERATOR_VERSION = 1
BRANCH = "main"
TOPIC = "topic"

# The smallest repository (what --quick builds); larger --rows scale it up (see spec_for).
QUICK_COMMITS, QUICK_FILES = 5_000, 1_000
ROWS_PER_COMMIT, ROWS_PER_FILE = 20, 200  # 1,000,000 rows: 50,000 commits, 5,000 files

START = 1_400_000_000  # 2014-05-13, the first commit's date (Unix seconds)
SPAN = 10 * 365 * 86_400  # the history covers about ten years
BACKWARDS = 0.03  # share of commits whose committer date goes back before the previous one
DELETE, RENAME, DIR_RENAME, BURST = 0.02, 0.015, 0.0005, 0.003  # per commit
BINARY = 0.01  # share of new files that are binary (numstat prints "-" for them)
ODD_NAMES = 0.01  # share of new files whose names hold spaces and non-ASCII letters
HOTNESS = 1.16  # Pareto shape of the per-file weights: about 80% of edits hit 20% of files
MIN_LIVE = 50

WORDS = (
    *("alpha", "beta", "gamma", "delta", "state", "cache", "query", "index", "table", "value"),
    *("error", "event", "parse", "render", "write", "read", "check", "merge", "split", "join"),
    *("count", "limit", "order", "group", "field", "record", "token", "stream"),
)
TIMEZONES = ("+0000", "+0100", "+0200", "-0300", "-0500", "-0800", "+0530", "+0900")
AUTHORS = tuple(
    (name, f"{name.split()[0].lower()}.{i}@example.org")
    for i, name in enumerate(
        [
            "Ada Lovelace",
            "Grace Hopper",
            "Linus Torvalds",
            "Margaret Hamilton",
            "Dennis Ritchie",
            "Barbara Liskov",
            "Ken Thompson",
            "Frances Allen",
            "José Valim",
            "Łukasz Langa",
            "Zoë Müller",
            "Søren Kierkegaard",
            "Chen Wei",
            "Fatima Zahra",
            "Ola Nordmann",
            "Priya Raman",
        ]
        * 3  # 48 authors (ids differ), drawn with a heavy tail too
    )
)


@dataclass(frozen=True)
class RepoSpec:
    """What to generate; every field is part of the cache key."""

    commits: int  # first-parent commits on main (merge commits included)
    files: int  # files live at the tip
    seed: int = 20_240_501
    merge_every: int = 200  # a merged topic branch about every this many commits (0: none)

    @property
    def key(self) -> str:
        return (
            f"repo-v{GENERATOR_VERSION}-c{self.commits}-f{self.files}"
            f"-s{self.seed}-m{self.merge_every}"
        )


def spec_for(rows: int) -> RepoSpec:
    """The repository for ``rows``: 5,000 commits and 1,000 files at least (``--quick``),
    50,000 and 5,000 at the default 1,000,000 rows."""
    return RepoSpec(
        commits=max(QUICK_COMMITS, rows // ROWS_PER_COMMIT),
        files=max(QUICK_FILES, rows // ROWS_PER_FILE),
    )


@dataclass
class Manifest:
    """What the generator knows about the repository, kept beside it in the cache."""

    spec: dict[str, int]
    generator_version: int
    path: str  # the bare repository
    tip: str
    first_parent_commits: int
    all_commits: int
    first_date: int
    last_date: int
    live: list[str]  # paths at the tip
    gone: list[str]  # paths that existed once and not at the tip (deleted or renamed away)
    stats: dict[str, int]
    stream_bytes: int
    build_s: float
    repo_bytes: int

    def save(self, folder: Path) -> None:
        save_manifest(folder, asdict(self))

    @classmethod
    def load(cls, folder: Path) -> Manifest | None:
        raw = load_manifest(folder)
        if raw is None:
            return None
        manifest = cls(**raw)
        manifest.path = str(folder / "repo.git")  # the cache may have moved
        return manifest


def repository(spec: RepoSpec, *, log: IO[str] = sys.stderr) -> Manifest:
    """The generated repository for ``spec``: from the cache, or built (and cached) now."""
    folder = CACHE / spec.key
    manifest = Manifest.load(folder)
    if manifest is not None and Path(manifest.path).is_dir():
        return manifest
    print(
        f"  building a git repository of {spec.commits:,} commits and {spec.files:,} files "
        f"with git fast-import (cached in {folder}) ...",
        file=log,
    )
    CACHE.mkdir(parents=True, exist_ok=True)
    # Build beside the final place and rename, so an interrupted build is never reused.
    partial = CACHE / f"{spec.key}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        manifest = _build(spec, partial)
        manifest.save(partial)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    manifest.path = str(folder / "repo.git")
    print(
        f"  built in {manifest.build_s:.1f} s: {manifest.all_commits:,} commits "
        f"({manifest.first_parent_commits:,} first-parent), {len(manifest.live):,} files at the "
        f"tip, {manifest.repo_bytes / 1e6:.1f} MB",
        file=log,
    )
    return manifest


def git_command(repo: str | Path, *args: str) -> list[str]:
    """git in ``repo`` with the configuration overrides the project's own git calls use."""
    return ["git", "-C", str(repo), *CONFIG, *args]


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        git_command(repo, *args), capture_output=True, env=git_env(), check=False, text=True
    )
    require(proc.returncode == 0, f"git {args[0]} failed in {repo}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def _build(spec: RepoSpec, folder: Path) -> Manifest:
    started = time.perf_counter()
    repo = folder / "repo.git"
    subprocess.run(
        ["git", "init", "--quiet", "--bare", f"--initial-branch={BRANCH}", str(repo)],
        env=git_env(),
        check=True,
    )
    generator = _Generator(spec)
    proc = subprocess.Popen(
        git_command(repo, "fast-import", "--quiet", "--done"), stdin=subprocess.PIPE, env=git_env()
    )
    assert proc.stdin is not None
    written = 0
    try:
        for chunk in generator.stream():
            proc.stdin.write(chunk)
            written += len(chunk)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # fast-import stopped; its exit status says why
    require(proc.wait() == 0, f"git fast-import failed with status {proc.returncode}")
    # A repository as a clone or `git gc` leaves it: one pack, a commit-graph (no Bloom filters).
    _git(repo, "gc", "--quiet")
    tip = _git(repo, "rev-parse", BRANCH)
    first_parent = int(_git(repo, "rev-list", "--first-parent", "--count", BRANCH))
    every = int(_git(repo, "rev-list", "--count", "--all"))
    require(
        first_parent == spec.commits,
        f"the generated history has {first_parent} first-parent commits, wanted {spec.commits}",
    )
    size = sum(p.stat().st_size for p in repo.rglob("*") if p.is_file())
    return Manifest(
        spec=asdict(spec),
        generator_version=GENERATOR_VERSION,
        path=str(repo),
        tip=tip,
        first_parent_commits=first_parent,
        all_commits=every,
        first_date=min(generator.dates),
        last_date=max(generator.dates),
        live=sorted(generator.contents),
        gone=sorted(generator.gone - generator.contents.keys()),
        stats=dict(generator.stats),
        stream_bytes=written,
        build_s=time.perf_counter() - started,
        repo_bytes=size,
    )


def _quote(path: str) -> bytes:
    """A path as fast-import reads it: C-style quoted, so spaces and quotes are safe."""
    escaped = path.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'.encode()


@dataclass
class _Topic:
    """A topic branch: what it changed (final contents), and when main merges it."""

    tip: int  # mark of its last commit
    merge_at: int  # the first-parent index of the merge commit
    changed: dict[str, list[str]] = field(default_factory=dict)
    added: set[str] = field(default_factory=set)


class _Generator:
    """Writes the fast-import stream and keeps what the manifest needs."""

    def __init__(self, spec: RepoSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.contents: dict[str, list[str]] = {}  # live path -> lines
        self.live: list[str] = []
        self.weights: list[float] = []
        self.cumulative: list[float] | None = None
        self.gone: set[str] = set()
        self.names = itertools.count(1)
        self.marks = itertools.count(1)
        self.clock = START
        self.gap = SPAN / spec.commits
        self.dates: list[int] = []
        self.pending: list[bytes] = []  # topic commits, written right after the branch point
        self.stats: dict[str, int] = {
            "adds": 0,
            "modifies": 0,
            "deletes": 0,
            "renames": 0,
            "dir_renames": 0,
            "merges": 0,
            "topic_commits": 0,
            "backward_dates": 0,
        }
        self.author_weights = list(
            itertools.accumulate(self.rng.paretovariate(HOTNESS) for _ in AUTHORS)
        )

    # -- the live files -------------------------------------------------------------------------
    def _add(self, path: str, lines: list[str]) -> None:
        self.contents[path] = lines
        self.live.append(path)
        self.weights.append(self.rng.paretovariate(HOTNESS))
        self.cumulative = None

    def _remove(self, path: str) -> None:
        index = self.live.index(path)
        del self.live[index], self.weights[index], self.contents[path]
        self.gone.add(path)
        self.cumulative = None

    def _hot(self) -> str:
        """A live file, hot ones more often."""
        if self.cumulative is None:
            self.cumulative = list(itertools.accumulate(self.weights))
        point = self.rng.random() * self.cumulative[-1]
        return self.live[bisect.bisect_right(self.cumulative, point)]

    def _new_path(self, folder: str | None = None) -> str:
        n = next(self.names)
        rng = self.rng
        if folder is None:
            folder = f"src/pkg{rng.randrange(40)}/mod{rng.randrange(8)}"
            if rng.random() < 0.2:
                folder = f"tests/pkg{rng.randrange(40)}"
            elif rng.random() < 0.1:
                folder = f"docs/section {rng.randrange(12)}"
        if rng.random() < BINARY:
            return f"assets/img_{n}.bin"
        if rng.random() < ODD_NAMES:
            return f"{folder}/notes {n} \u2013 résumé d'été.md"
        return f"{folder}/file_{n}.{rng.choice(('py', 'py', 'py', 'md', 'json', 'txt'))}"

    def _new_lines(self, path: str) -> list[str]:
        rng = self.rng
        lines = [f"# {path}"]
        for i in range(rng.randint(8, 40)):
            lines.append(f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.randrange(10_000)} {i}")
        return lines

    def _edit(self, lines: list[str]) -> list[str]:
        rng = self.rng
        out = list(lines)
        for _ in range(rng.randint(1, 3)):
            where = rng.randrange(1, len(out) + 1)
            roll = rng.random()
            text = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.randrange(10_000)} edited"
            if roll < 0.5 and where < len(out):
                out[where] = text
            elif roll < 0.8 or len(out) < 6:
                out.insert(where, text)
            elif where < len(out):
                del out[where]
        return out

    @staticmethod
    def _blob(path: str, lines: list[str]) -> bytes:
        data = ("\n".join(lines) + "\n").encode()
        if path.endswith(".bin"):
            data = b"\x89BIN\x00\x00\x01" + data  # a NUL: git treats it as binary
        return b"M 100644 inline " + _quote(path) + b"\ndata %d\n" % len(data) + data + b"\n"

    # -- commits --------------------------------------------------------------------------------
    def _date(self) -> int:
        rng = self.rng
        self.clock += int(rng.expovariate(1 / self.gap)) + 1
        when = self.clock
        if rng.random() < BACKWARDS:
            when -= rng.randint(60, 3 * 86_400)
            self.stats["backward_dates"] += 1
        return when

    def _header(self, ref: str, mark: int, when: int, message: str) -> bytes:
        rng = self.rng
        name, email = AUTHORS[
            bisect.bisect_right(self.author_weights, rng.random() * self.author_weights[-1])
        ]
        zone = rng.choice(TIMEZONES)
        authored = when - int(rng.expovariate(1 / 86_400))
        text = message.encode()
        return (
            (
                f"commit refs/heads/{ref}\nmark :{mark}\n"
                f"author {name} <{email}> {authored} {zone}\n"
                f"committer {name} <{email}> {when} {zone}\n"
            ).encode()
            + b"data %d\n" % len(text)
            + text
            + b"\n"
        )

    def _changes(self, target: int) -> list[bytes]:
        """One ordinary commit's file commands: deletes and renames, adds up to ``target``
        live files, then edits of hot files."""
        rng = self.rng
        out: list[bytes] = []
        touched: set[str] = set()
        if rng.random() < DELETE and len(self.live) > MIN_LIVE:
            path = self.live[rng.randrange(len(self.live))]
            self._remove(path)
            out.append(b"D " + _quote(path) + b"\n")
            touched.add(path)
            self.stats["deletes"] += 1
        if rng.random() < RENAME and len(self.live) > MIN_LIVE:
            old = self.live[rng.randrange(len(self.live))]
            if old not in touched:
                new = self._moved_name(old)
                out += self._rename(old, new)
                touched |= {old, new}
        if rng.random() < DIR_RENAME:
            out += self._rename_folder(touched)
        adds = max(0, target - len(self.live))
        folder = None
        if rng.random() < BURST:
            adds += rng.randint(3, 10)
            folder = f"src/feature{next(self.names)}"
        for _ in range(adds):
            path = self._new_path(folder)
            self._add(path, self._new_lines(path))
            out.append(self._blob(path, self.contents[path]))
            touched.add(path)
            self.stats["adds"] += 1
        edits = 1 + min(int(rng.expovariate(0.8)), 7)
        for _ in range(edits if out == [] else edits - 1):
            path = self._hot()
            if path in touched:
                continue
            self.contents[path] = self._edit(self.contents[path])
            out.append(self._blob(path, self.contents[path]))
            touched.add(path)
            self.stats["modifies"] += 1
        return out

    def _moved_name(self, old: str) -> str:
        folder, _, base = old.rpartition("/")
        if self.rng.random() < 0.5:
            return f"{folder}/moved_{next(self.names)}_{base}"
        return f"src/pkg{self.rng.randrange(40)}/moved{next(self.names)}/{base}"

    def _rename(self, old: str, new: str) -> list[bytes]:
        """R, sometimes with a small edit (similar enough that git -M still sees a rename)."""
        lines = self.contents[old]
        self._remove(old)
        self._add(new, lines)
        out = [b"R " + _quote(old) + b" " + _quote(new) + b"\n"]
        if self.rng.random() < 0.3 and len(lines) >= 12:
            self.contents[new] = [*lines[:-1], lines[-1] + " renamed"]
            out.append(self._blob(new, self.contents[new]))
        self.stats["renames"] += 1
        return out

    def _rename_folder(self, touched: set[str]) -> list[bytes]:
        folder = self._hot().rpartition("/")[0]
        inside = [p for p in self.live if p.rpartition("/")[0] == folder and p not in touched]
        if not inside or len(inside) > 40:
            return []
        target = f"{folder}_v{next(self.names)}"
        out: list[bytes] = []
        for path in inside:
            new = target + path[len(folder) :]
            out += self._rename(path, new)
            touched |= {path, new}
        self.stats["dir_renames"] += 1
        return out

    def _branch(self, base: int, index: int, when: int) -> _Topic:
        """A topic branch of 1-4 commits off main's commit ``base``, merged a few commits on."""
        rng = self.rng
        topic = _Topic(tip=base, merge_at=min(index + rng.randint(1, 6), self.spec.commits - 2))
        for _ in range(rng.randint(1, 4)):
            mark = next(self.marks)
            when += rng.randint(60, 3_600)
            out = [self._header(TOPIC, mark, when, f"topic work {mark}\n")]
            out.append(b"from :%d\n" % topic.tip)
            for _ in range(rng.randint(1, 3)):
                path = self._hot()
                lines = topic.changed.get(path, self.contents[path])
                topic.changed[path] = self._edit(lines)
                out.append(self._blob(path, topic.changed[path]))
            if rng.random() < 0.2:
                path = self._new_path()
                topic.changed[path] = self._new_lines(path)
                topic.added.add(path)
                out.append(self._blob(path, topic.changed[path]))
            topic.tip = mark
            self.stats["topic_commits"] += 1
            self.pending.append(b"".join(out) + b"\n")
        return topic

    def _merge(self, topic: _Topic) -> list[bytes]:
        """The merge's changes against main: the topic's files (main's deletes/renames win)."""
        out: list[bytes] = []
        for path, lines in topic.changed.items():
            if path in self.contents:
                self.contents[path] = lines
            elif path in topic.added:
                self._add(path, lines)
            else:  # main deleted or renamed it since the topic branched off: main's choice wins
                continue
            out.append(self._blob(path, lines))
        self.stats["merges"] += 1
        return out

    def stream(self) -> Iterator[bytes]:
        """The fast-import stream, commit by commit."""
        spec, rng = self.spec, self.rng
        initial = max(MIN_LIVE, spec.files // 10)
        topic: _Topic | None = None
        yield b"feature done\n"
        previous = 0
        for index in range(spec.commits):
            when = self._date()
            self.dates.append(when)
            mark = next(self.marks)
            target = initial + (spec.files - initial) * index // max(1, spec.commits - 1)
            if topic is not None and index == topic.merge_at:
                changes = self._merge(topic)
                header = self._header(BRANCH, mark, when, f"Merge branch '{TOPIC}' ({mark})\n")
                parents = b"from :%d\nmerge :%d\n" % (previous, topic.tip)
                topic = None
            else:
                changes = self._changes(target if index else initial)
                header = self._header(BRANCH, mark, when, f"change {index}\n")
                parents = b"from :%d\n" % previous if previous else b""
            yield header + parents + b"".join(changes) + b"\n"
            previous = mark
            if (
                topic is None
                and spec.merge_every
                and 0 < index < spec.commits - 3
                and rng.random() < 1 / spec.merge_every
            ):
                topic = self._branch(mark, index, when)
                yield from self.pending
                self.pending.clear()
        yield b"done\n"
