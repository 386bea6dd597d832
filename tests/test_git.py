"""The git time machine against real repositories, with git itself as the oracle.

Each answer of the resolver must be what ``git log -1 --first-parent --before=@T REF -- PATH``
prints, so the tests build repositories with the awkward parts of real history (renames,
deletes and re-adds, merges, committer dates that go backwards, odd file names) and compare
every answer on a dense grid of times with git's.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import pytest

from egregora.errors import ConfigurationError, GitError, NotSyncedError
from egregora.git import (
    GitHistoryResolver,
    LookupCache,
    Resolution,
    SyncResult,
    parse_at,
    sync_repository,
)
from egregora.storage import DatabaseURL
from egregora.storage.store import Storage
from tests.conftest import Databases
from tests.gitrepo import T0, GitRepo
from tests.support import FakeClock, db_arg

REF = "main"
MISSING = "never/existed.txt"
CACHE_T0 = datetime(2030, 1, 1, tzinfo=UTC)  # where the lookup caches' fake clocks start
Probe = tuple[str, int]  # (path, Unix seconds)
Oracle = dict[Probe, str | None]
Row = dict[str, Any]

# Names git and the log parser find awkward: unicode, spaces, quotes, newlines, tabs, pathspec
# magic (the oracle runs with --literal-pathspecs, the resolver matches paths exactly).
ACCENTED = "ação/ñ.md"
ACCENTED_NEW = "ação/ñ2.md"
JAPANESE = "日本.txt"
QUOTED = 'dir with space/file "quoted".txt'
NEWLINE = "line\nbreak.txt"
LEADING_NEWLINE = "\nlead.txt"
TAB = "tab\there.txt"
MAGIC = ":magic*[x].md"


def utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def lines(tag: str, n: int = 40) -> str:
    """A text long enough that a small edit keeps it similar (git still sees a rename)."""
    return "".join(f"{tag} line {i}\n" for i in range(n))


def open_store(url: DatabaseURL) -> Storage:
    store = Storage.open(db_arg(url))
    store.ensure_schema()
    return store


def probe_table(probes: list[Probe]) -> pa.Table:
    return pa.table(
        {
            "path": pa.array([p for p, _ in probes], pa.string()),
            "at": pa.array([utc(t) for _, t in probes], pa.timestamp("us", tz="UTC")),
        }
    )


def grid_times(repo: GitRepo, ref: str) -> list[int]:
    """Every committer and author date, each ±1 s, and times before and after all history."""
    dates = repo.all_dates(ref)
    times = {d + k for d in dates for k in (-1, 0, 1)}
    times |= {min(dates) - 86_400, max(dates) + 86_400}
    return sorted(times)


def touched_paths(repo: GitRepo) -> list[str]:
    """Every path any commit of any branch touched, old names of renames included."""
    paths: set[str] = set()
    for sha in repo.git("rev-list", "--all").split():
        for change in repo.changes(sha):
            paths |= {change.path, change.old_path or change.path}
    return sorted(paths)


def oracle(repo: GitRepo, ref: str, probes: list[Probe], *, follow: bool = False) -> Oracle:
    """git's answer for every probe (a few git processes at a time: this is the slow part)."""

    def ask(probe: Probe) -> str | None:
        return repo.last_change(ref, probe[0], probe[1], follow=follow)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(probes, pool.map(ask, probes), strict=True))


def stored_rows(store: Storage, repo_id: str) -> list[Row]:
    """The repository's git_commits rows in a fixed order, every column."""
    commits = store.table("git_commits")
    mine = commits.filter(commits.repo_id == repo_id).order_by(["chain_seq", "path"])
    rows: list[Row] = store.to_pyarrow(mine).to_pylist()
    return rows


def expected_rows(repo: GitRepo, ref: str, repo_id: str) -> list[Row]:
    """The git_commits rows git's plumbing implies: first-parent chain, diff-tree -M per commit."""
    rows: list[Row] = []
    for seq, sha in enumerate(repo.chain(ref), start=1):
        committed, authored, name, email = repo.dates(sha)
        for change in repo.changes(sha):
            rows.append(
                {
                    "repo_id": repo_id,
                    "commit_sha": sha,
                    "chain_seq": seq,
                    "path": change.path,
                    "old_path": change.old_path,
                    "change_type": change.change_type,
                    "committed_at": utc(committed),
                    "authored_at": utc(authored),
                    "author_name": name,
                    "author_email": email,
                    "additions": change.additions,
                    "deletions": change.deletions,
                }
            )
    return sorted(rows, key=lambda r: (r["chain_seq"], r["path"]))


def cache_rows(store: Storage, repo_id: str | None = None) -> list[Row]:
    cache = store.table("git_lookup_cache")
    if repo_id is not None:
        cache = cache.filter(cache.repo_id == repo_id)
    rows: list[Row] = store.to_pyarrow(cache.order_by(["repo_id", "path", "at"])).to_pylist()
    return rows


def mismatches(expected: Oracle, got: dict[Probe, str | None]) -> list[str]:
    """One readable line per probe whose answer differs from git's."""
    return [
        f"{path!r} @{at} (T0{at - T0:+d}): git {sha} resolver {got.get((path, at))}"
        for (path, at), sha in expected.items()
        if got.get((path, at)) != sha
    ]


# ---------------------------------------------------------------------------------------------
# The history under test.


def build_history(root: Path) -> GitRepo:
    """One branch with every awkward shape of history the resolver must get right."""
    repo = GitRepo(root)
    repo.write("README.md", "hello\n")
    repo.write(ACCENTED, lines("accent"))
    repo.write(QUOTED, "quoted\n")
    repo.write("docs/a.md", lines("docs"))
    repo.write("bin.dat", bytes(range(256)) * 4)
    repo.write("tc", "a regular file that becomes a symlink\n")
    repo.write(TAB, "tab\n")
    repo.commit("root", T0, T0 - 1_000, author="Zoë Ünïcode <zoe@example.com>")
    repo.write("README.md", "hello\nworld\n")
    repo.write(JAPANESE, "こんにちは\n")
    repo.write(NEWLINE, "newline\n")
    repo.commit("add japanese and newline", T0 + 100)
    repo.move("docs/a.md", "docs/b.md")
    repo.commit("pure rename, dated before its parent", T0 + 50)
    repo.move(ACCENTED, ACCENTED_NEW)
    repo.write(ACCENTED_NEW, lines("accent") + "one more line\n")
    repo.write("bin.dat", bytes(range(255, -1, -1)) * 4)
    repo.commit("rename with an edit, binary change", T0 + 200, T0 + 10)
    repo.remove(JAPANESE)
    repo.commit("delete japanese, same date as parent", T0 + 200)
    repo.commit("empty", T0 + 300, allow_empty=True)
    repo.checkout("-b", "side")
    repo.write("side.txt", "side\n")
    repo.write("README.md", "hello\nworld\nfrom side\n")
    repo.commit("side one", T0 + 310)
    repo.write(QUOTED, "quoted\nchanged on side\n")
    repo.commit("side two, dated far back", T0 + 150)
    repo.checkout(REF)
    repo.write(JAPANESE, "また\n")
    repo.write(NEWLINE, "newline\nagain\n")
    repo.commit("re-add japanese", T0 + 320)
    repo.merge("side", "merge side", T0 + 400)
    repo.write("side.txt", "side\nedited on main\n")
    repo.remove("docs/b.md")
    repo.commit("delete the renamed file, dated back", T0 + 250)
    repo.write("docs/a.md", lines("brand new a"))
    repo.write(LEADING_NEWLINE, "lead\n")
    repo.write(MAGIC, "magic\n")
    repo.commit("re-add the old name", T0 + 250)
    repo.symlink("tc", "README.md")
    repo.write(TAB, "tab\nedited\n")
    repo.commit("type change, authored after committed", T0 + 500, T0 + 900)
    repo.move("docs/a.md", "docs/c.md")
    repo.write("docs/c.md", lines("brand new a") + "tail\n")
    repo.write("bin.dat", bytes(range(128)) * 8)
    repo.remove(LEADING_NEWLINE)
    repo.commit("rename the re-added file", T0 + 600)
    repo.write("README.md", "bye\n")
    repo.commit("same date as parent", T0 + 600)
    return repo


@dataclass(frozen=True)
class Synced:
    repo: GitRepo
    store: Storage
    result: SyncResult
    probes: list[Probe]
    expected: Oracle


@pytest.fixture(scope="module")
def history(
    tmp_path_factory: pytest.TempPathFactory, engine: str, databases: Databases
) -> Iterator[Synced]:
    """The history synced into a database, the dense probe grid and git's answers for it."""
    root = tmp_path_factory.mktemp("history")
    repo = build_history(root / "history")
    paths = [*touched_paths(repo), MISSING]
    probes = [(p, t) for p in paths for t in grid_times(repo, REF)]
    expected = oracle(repo, REF, probes)
    with open_store(databases.new(engine)) as store:
        result = sync_repository(store, repo.root)
        yield Synced(repo, store, result, probes, expected)


# ---------------------------------------------------------------------------------------------
# Sync and lookups on the full history.


def test_sync_stores_what_git_plumbing_reports(history: Synced) -> None:
    """Every git_commits row (types, old paths, line counts, dates, authors, chain position)."""
    repo, store, result = history.repo, history.store, history.result
    chain = repo.chain(REF)
    assert result.commits == len(chain) == result.new_commits
    assert not result.rewritten
    got = stored_rows(store, result.repo_id)
    want = expected_rows(repo, REF, result.repo_id)
    assert got == want
    assert result.file_changes == len(want)
    side = set(repo.git("rev-list", "side").split()) - set(chain)
    assert len(side) == 2 and not side & {r["commit_sha"] for r in got}
    # The empty commit has no row but keeps its place: the chain has a gap there.
    assert len({r["chain_seq"] for r in got}) == len(chain) - 1
    assert {r["path"] for r in got} >= {NEWLINE, LEADING_NEWLINE, TAB, MAGIC, QUOTED}
    binary = [r for r in got if r["path"] == "bin.dat"]
    assert binary and all(r["additions"] is None for r in binary)
    # The grid probes the awkward names themselves (not, say, a newline-stripped copy).
    assert set(history.probes) >= {(p, T0) for p in (LEADING_NEWLINE, NEWLINE, ACCENTED, MAGIC)}


def test_refs_are_recorded(history: Synced) -> None:
    """git_refs holds every branch where it points, so a caller can see what was synced."""
    refs = history.store.table("git_refs")
    mine = refs.filter(refs.repo_id == history.result.repo_id)
    got = {r["ref_name"]: r["commit_sha"] for r in history.store.to_pyarrow(mine).to_pylist()}
    repo = history.repo
    assert got == {
        "refs/heads/main": repo.git("rev-parse", "main"),
        "refs/heads/side": repo.git("rev-parse", "side"),
    }


def test_resolve_matches_git_log_on_a_dense_grid(history: Synced) -> None:
    """One lookup per probe: the commit git log -1 --first-parent --before names, or None."""
    resolver = GitHistoryResolver(history.store)
    answers = {(p, t): resolver.resolve(history.repo.root, p, utc(t)) for p, t in history.probes}
    got = {probe: answer.commit_sha for probe, answer in answers.items()}
    assert not any(a.exists or a.change_type for a in answers.values() if a.commit_sha is None)
    wrong = mismatches(history.expected, got)
    assert not wrong, f"{len(wrong)} of {len(got)} probes differ:\n" + "\n".join(wrong[:40])
    # The grid reaches every commit of the chain that changed something.
    answered = {sha for sha in history.expected.values() if sha}
    assert answered == {r["commit_sha"] for r in stored_rows(history.store, history.result.repo_id)}


def test_resolve_many_matches_git_log_and_resolve(history: Synced) -> None:
    """All probes in one query: git's commits, in probe order, and the same rows resolve gives."""
    resolver = GitHistoryResolver(history.store)
    probes = [*history.probes, *history.probes[::5]]  # some probes twice
    random.Random(7).shuffle(probes)
    table = resolver.resolve_many(history.result.repo_id, probe_table(probes))
    assert table.column_names == [
        "path",
        "at",
        "commit_sha",
        "change_type",
        "committed_at",
        "found_path",
    ]
    rows = table.to_pylist()
    assert [(r["path"], int(r["at"].timestamp())) for r in rows] == probes
    got = {(r["path"], int(r["at"].timestamp())): r["commit_sha"] for r in rows}
    wrong = mismatches(history.expected, got)
    assert not wrong, f"{len(wrong)} of {len(got)} probes differ:\n" + "\n".join(wrong[:40])
    # A sample is enough here: resolve itself was checked against git on every probe.
    for row in rows[:: max(1, len(rows) // 300)]:
        answer = Resolution(**row)
        assert resolver.resolve(history.repo.root, answer.path, answer.at) == answer


def test_resolve_many_edge_inputs(history: Synced) -> None:
    """No probes give no rows with the result's columns; times in another zone are instants."""
    resolver = GitHistoryResolver(history.store)
    repo_id = history.result.repo_id
    empty = resolver.resolve_many(repo_id, probe_table([]))
    assert empty.num_rows == 0 and empty.column_names[:3] == ["path", "at", "commit_sha"]
    probes = history.probes[::11]
    tokyo = probe_table(probes).set_column(
        1, "at", probe_table(probes)["at"].cast(pa.timestamp("s", tz="Asia/Tokyo"))
    )
    rows = resolver.resolve_many(repo_id, tokyo).to_pylist()
    assert [r["commit_sha"] for r in rows] == [history.expected[p] for p in probes]


def test_resolve_many_accepts_ibis_probes(history: Synced) -> None:
    """Probes as an Ibis table: an in-memory one, and one computed from the store's own tables."""
    resolver = GitHistoryResolver(history.store)
    probes = history.probes[::7]
    table = resolver.resolve_many(history.result.repo_id, ibis.memtable(probe_table(probes)))
    got = [(r["path"], int(r["at"].timestamp()), r["commit_sha"]) for r in table.to_pylist()]
    assert got == [(p, t, history.expected[(p, t)]) for p, t in probes]

    commits = history.store.table("git_commits")
    mine = commits.filter(commits.repo_id == history.result.repo_id)
    derived = mine.select("path", at=mine.committed_at - ibis.interval(seconds=1))
    rows = resolver.resolve_many(history.result.repo_id, derived).to_pylist()
    assert len(rows) == history.result.file_changes
    for r in rows:
        t = int(r["at"].timestamp())
        assert r["commit_sha"] == history.repo.last_change(REF, r["path"], t), (r["path"], t)


def test_change_type_and_exists_match_git(history: Synced) -> None:
    """The change type agrees with git's name-status: D for deleted or renamed away, A for new."""
    resolver = GitHistoryResolver(history.store)
    repo = history.repo
    first: dict[tuple[str, str], int] = {}
    for (path, at), sha in history.expected.items():
        if sha is not None:
            first.setdefault((path, sha), at)
    seen: set[str] = set()
    wrong: list[str] = []
    for (path, sha), at in first.items():
        answer = resolver.resolve(history.result.repo_id, path, utc(at))
        git_status = repo.name_status(REF, path, at)
        full = {c.path: c.change_type for c in repo.changes(sha)}
        renamed_away = {c.old_path for c in repo.changes(sha) if c.change_type == "R"}
        exact = full.get(path, "D" if path in renamed_away else None)
        allowed = {"A", "R"} if git_status == "A" else {git_status}
        if answer.change_type != exact or answer.change_type not in allowed:
            wrong.append(f"{path!r} @{at}: git {git_status}/{exact}, got {answer.change_type}")
        if answer.exists != (git_status != "D"):
            wrong.append(f"{path!r} @{at}: git {git_status}, exists={answer.exists}")
        assert answer.found_path == path
        assert answer.committed_at == utc(repo.dates(sha)[0])
        seen.add(str(answer.change_type))
    assert not wrong, "\n".join(wrong)
    assert seen == {"A", "M", "D", "R", "T"}  # the history exercises every kind of change


def test_exists_through_delete_rename_and_re_add(history: Synced) -> None:
    """Spot checks a reader can follow: a path's life and death along the dated history."""
    resolver = GitHistoryResolver(history.store)
    repo_id = history.result.repo_id

    def state(path: str, at: int) -> tuple[str | None, bool]:
        answer = resolver.resolve(repo_id, path, utc(at))
        return answer.change_type, answer.exists

    assert state(JAPANESE, T0 + 99) == (None, False)
    assert state(JAPANESE, T0 + 100) == ("A", True)
    just_before = utc(T0 + 100) - timedelta(microseconds=1)
    assert resolver.resolve(repo_id, JAPANESE, just_before).commit_sha is None
    assert state(JAPANESE, T0 + 200) == ("D", False)
    assert state(JAPANESE, T0 + 320) == ("A", True)
    # docs/a.md: renamed away at T0+50 (a commit dated before its parent), re-added at T0+250.
    assert state("docs/a.md", T0 + 49) == ("A", True)
    assert state("docs/a.md", T0 + 50) == ("D", False)
    assert state("docs/a.md", T0 + 250) == ("A", True)
    assert state("docs/a.md", T0 + 600) == ("D", False)
    assert state("docs/b.md", T0 + 100) == ("R", True)
    # The side branch changed QUOTED at T0+150, but only the merge at T0+400 is on the chain.
    assert resolver.resolve(repo_id, QUOTED, utc(T0 + 399)).committed_at == utc(T0)
    assert resolver.resolve(repo_id, QUOTED, utc(T0 + 400)).committed_at == utc(T0 + 400)
    assert state(MISSING, T0 + 10**6) == (None, False)


def test_resolve_takes_any_time_zone_and_repo_spelling(history: Synced) -> None:
    """An aware time in any zone names one instant; a repo is its id or any path inside it."""
    resolver = GitHistoryResolver(history.store)
    repo_id = history.result.repo_id
    at = T0 + 250
    plus_two = utc(at).astimezone(timezone(timedelta(hours=2)))
    want = resolver.resolve(repo_id, "side.txt", utc(at))
    assert want.commit_sha == history.expected[("side.txt", at)]
    assert resolver.resolve(repo_id, "side.txt", plus_two) == want
    assert resolver.resolve(history.repo.root / "docs", "side.txt", utc(at)) == want
    assert resolver.repo_id(str(history.repo.root)) == repo_id
    assert parse_at("2023-11-15T00:17:30+02:00") == utc(at)
    assert parse_at(f"@{at}") == utc(at)


# ---------------------------------------------------------------------------------------------
# Following renames.


def build_renames(root: Path) -> GitRepo:
    """a.txt -> b.txt -> c.txt with edits between, a new a.txt after, dates partly backwards."""
    repo = GitRepo(root)
    repo.write("a.txt", lines("alpha"))
    repo.write("other.txt", "other\n")
    repo.commit("add a", T0)
    repo.write("a.txt", lines("alpha") + "edit 1\n")
    repo.commit("edit a", T0 + 100)
    repo.move("a.txt", "b.txt")
    repo.commit("a -> b", T0 + 200)
    repo.write("b.txt", lines("alpha") + "edit 1\nedit 2\n")
    repo.write("a.txt", "a brand new, unrelated a\n")
    repo.commit("edit b, new a", T0 + 300)
    repo.move("b.txt", "c.txt")
    repo.write("c.txt", lines("alpha") + "edit 1\nedit 2\nedit 3\n")
    repo.commit("b -> c with an edit, dated back", T0 + 150)
    repo.write("c.txt", lines("alpha") + "edit 1\nedit 2\nedit 3\nedit 4\n")
    repo.write("other.txt", "other\nmore\n")
    repo.commit("edit c", T0 + 400)
    repo.write("a.txt", "a brand new, unrelated a\nedited\n")
    repo.commit("edit new a", T0 + 500)
    return repo


@pytest.fixture(scope="module")
def renames(
    tmp_path_factory: pytest.TempPathFactory, engine: str, databases: Databases
) -> Iterator[tuple[GitRepo, Storage, str]]:
    root = tmp_path_factory.mktemp("renames")
    repo = build_renames(root / "renames")
    with open_store(databases.new(engine)) as store:
        yield repo, store, sync_repository(store, repo.root).repo_id


def test_follow_renames_matches_git_log_follow(renames: tuple[GitRepo, Storage, str]) -> None:
    """With follow_renames, the answer is the first commit of the path's followed history
    (``git log --follow --first-parent REF -- PATH``) dated at or before T.

    Not ``git log -1 --follow --before=T``: git skips commits dated after T before it looks
    for renames, so it never follows a rename made after T and always answers like a plain
    lookup; the option exists to see a file's history before it got its name.
    """
    repo, store, repo_id = renames
    paths = ("a.txt", "b.txt", "c.txt", "other.txt", MISSING)
    probes = [(p, t) for p in paths for t in grid_times(repo, REF)]
    histories = {p: repo.follow_log(REF, p) if p != MISSING else [] for p in paths}
    expected = {(p, t): next((sha for sha, ct in histories[p] if ct <= t), None) for p, t in probes}
    assert any(expected[k] != repo.last_change(REF, k[0], k[1]) for k in probes[::7]), (
        "the scenario must have probes where following a rename changes the answer"
    )
    resolver = GitHistoryResolver(store)
    many = resolver.resolve_many(repo_id, probe_table(probes), follow_renames=True).to_pylist()
    got_many = {(r["path"], int(r["at"].timestamp())): r["commit_sha"] for r in many}
    sample = probes[::3]  # each single lookup runs the batch query: a sample keeps this quick
    got_one = {
        (p, t): resolver.resolve(repo_id, p, utc(t), follow_renames=True).commit_sha
        for p, t in sample
    }
    wrong = mismatches(expected, got_many)
    wrong += mismatches({p: expected[p] for p in sample}, got_one)
    assert not wrong, f"{len(wrong)} answers differ from git's:\n" + "\n".join(wrong)


def test_follow_renames_spot_checks(renames: tuple[GitRepo, Storage, str]) -> None:
    """A rename answers for its new name; a re-created old name is a new file of its own."""
    repo, store, repo_id = renames
    resolver = GitHistoryResolver(store)
    chain = repo.chain(REF)
    at_rename = resolver.resolve(repo_id, "c.txt", utc(T0 + 349), follow_renames=True)
    assert (at_rename.commit_sha, at_rename.change_type) == (chain[4], "R")
    assert at_rename.found_path == "c.txt" and at_rename.exists
    new_a = resolver.resolve(repo_id, "a.txt", utc(T0 + 350), follow_renames=True)
    assert (new_a.commit_sha, new_a.change_type, new_a.found_path) == (chain[3], "A", "a.txt")
    gone = resolver.resolve(repo_id, "b.txt", utc(T0 + 10_000), follow_renames=True)
    assert (gone.commit_sha, gone.change_type, gone.exists) == (chain[4], "D", False)


# ---------------------------------------------------------------------------------------------
# Incremental sync, several repositories, rewritten history.


def small_repo(root: Path, name: str = "small", start: int = T0) -> GitRepo:
    repo = GitRepo(root / name)
    repo.write("a.txt", lines("a"))
    repo.write("b.txt", "b\n")
    repo.commit("one", start)
    repo.write("a.txt", lines("a") + "more\n")
    repo.commit("two", start + 100)
    repo.write("c.txt", "c\n")
    repo.commit("three", start + 200)
    repo.write("b.txt", "b\nb\n")
    repo.commit("four", start + 300)
    return repo


def full_sync_rows(repo: GitRepo, db: DatabaseURL, ref: str | None = None) -> list[Row]:
    """The rows a first, full sync into a new database stores."""
    with open_store(db) as fresh:
        result = sync_repository(fresh, repo.root, ref)
        assert result.new_commits == result.commits and not result.rewritten
        return stored_rows(fresh, result.repo_id)


def test_incremental_sync_reads_only_new_commits(
    tmp_path: Path, new_url: Callable[[], DatabaseURL]
) -> None:
    """A second sync reads just the new first-parent commits and ends with a full sync's rows."""
    repo = small_repo(tmp_path)
    with open_store(new_url()) as store:
        first = sync_repository(store, repo.root)
        assert (first.commits, first.new_commits, first.rewritten) == (4, 4, False)
        repo.write("a.txt", lines("a") + "more\nand more\n")
        repo.commit("five, dated before everything", T0 - 500)
        repo.checkout("-b", "topic")
        repo.write("t.txt", "topic\n")
        repo.commit("topic one", T0 + 1_000)
        repo.move("c.txt", "d.txt")
        repo.commit("topic two", T0 + 1_100)
        repo.checkout(REF)
        repo.merge("topic", "merge topic", T0 + 1_200)
        repo.remove("b.txt")
        repo.commit("seven", T0 + 1_300)
        second = sync_repository(store, repo.root)
        assert (second.commits, second.new_commits, second.rewritten) == (7, 3, False)
        rows = stored_rows(store, second.repo_id)
        assert rows == full_sync_rows(repo, new_url())
        assert rows == expected_rows(repo, REF, second.repo_id)
        assert second.file_changes == len(rows)
        third = sync_repository(store, repo.root)
        assert (third.commits, third.new_commits, third.file_changes) == (7, 0, len(rows))
        assert not third.rewritten
        assert stored_rows(store, second.repo_id) == rows
        again = sync_repository(store, repo.root, full=True)
        assert (again.new_commits, again.rewritten) == (7, False)
        assert stored_rows(store, second.repo_id) == rows
        # Commits without changes add no rows but still move the chain on.
        repo.commit("empty", T0 + 1_400, allow_empty=True)
        empty = sync_repository(store, repo.root)
        assert (empty.commits, empty.new_commits, empty.file_changes) == (8, 1, len(rows))
        repo.write("b.txt", "back\n")
        repo.commit("nine", T0 + 1_500)
        assert sync_repository(store, repo.root).new_commits == 1
        assert stored_rows(store, second.repo_id) == expected_rows(repo, REF, second.repo_id)


def test_several_repositories_share_one_database(
    tmp_path: Path, new_url: Callable[[], DatabaseURL]
) -> None:
    """Two repositories and two refs of one repository: separate ids, independent answers."""
    one = small_repo(tmp_path, "one")
    two = build_renames(tmp_path / "two")
    one.checkout("-b", "feature", "HEAD~2")
    one.write("a.txt", "feature rewrote a\n")
    one.commit("feature", T0 + 150)
    one.checkout(REF)
    with open_store(new_url()) as store:
        ids = {
            ("one", REF): sync_repository(store, one.root).repo_id,
            ("two", REF): sync_repository(store, two.root).repo_id,
            ("one", "feature"): sync_repository(store, one.root, "feature").repo_id,
        }
        assert len(set(ids.values())) == 3
        resolver = GitHistoryResolver(store)
        repos = {"one": one, "two": two}
        for (name, ref), repo_id in ids.items():
            repo = repos[name]
            paths = ["a.txt", "b.txt", "c.txt", MISSING]
            probes = [(p, t) for p in paths for t in grid_times(repo, ref)]
            expected = oracle(repo, ref, probes)
            rows = resolver.resolve_many(repo_id, probe_table(probes)).to_pylist()
            got = {(r["path"], int(r["at"].timestamp())): r["commit_sha"] for r in rows}
            assert not mismatches(expected, got), (name, ref, mismatches(expected, got))
            assert stored_rows(store, repo_id) == expected_rows(repo, ref, repo_id)
        with pytest.raises(ConfigurationError, match="--ref"):
            resolver.repo_id(one.root)  # synced for two refs: which one is ambiguous
        assert resolver.repo_id(one.root, "feature") == ids[("one", "feature")]
        assert resolver.repo_id(two.root) == ids[("two", REF)]


def rewrite_by_reset(repo: GitRepo) -> None:
    repo.git("reset", "-q", "--hard", "HEAD~2")
    repo.write("a.txt", "rewritten\n")
    repo.commit("new five", T0 + 400)
    repo.write("z.txt", "z\n")
    repo.commit("new six", T0 + 500)


def rewrite_by_amend(repo: GitRepo) -> None:
    repo.write("c.txt", "amended\n")
    repo.commit("four, amended", T0 + 301, amend=True)


def rewrite_and_collect(repo: GitRepo) -> None:
    """A reset whose lost commits are garbage-collected: the last synced commit is gone."""
    rewrite_by_reset(repo)
    repo.git("reflog", "expire", "--expire=now", "--all")
    repo.git("gc", "-q", "--prune=now")


def merge_old_tip_back(repo: GitRepo) -> None:
    """The old tip becomes a second parent: still an ancestor, but off the first-parent chain."""
    old = repo.head()
    repo.git("reset", "-q", "--hard", "HEAD~2")
    repo.write("b.txt", "rewritten b\n")
    repo.commit("diverge", T0 + 400)
    repo.git("merge", "-q", "--no-ff", "--no-edit", "-X", "ours", old)


@pytest.mark.parametrize(
    "rewrite",
    [rewrite_by_reset, rewrite_by_amend, rewrite_and_collect, merge_old_tip_back],
    ids=["reset", "amend", "reset-and-gc", "old-tip-merged-back"],
)
def test_rewritten_history_is_resynced(
    tmp_path: Path, rewrite: Callable[[GitRepo], None], new_url: Callable[[], DatabaseURL]
) -> None:
    """A rewrite replaces the repository's rows above the fork point, reading only the new
    chain's commits above it, and drops its cached answers, no one else's."""
    repo = small_repo(tmp_path)
    other = small_repo(tmp_path, "other", T0 + 7)
    with open_store(new_url()) as store:
        repo_id = sync_repository(store, repo.root).repo_id
        other_id = sync_repository(store, other.root).repo_id
        resolver = GitHistoryResolver(store, cache=LookupCache(store))
        for rid in (repo_id, other_id):
            for path in ("a.txt", "b.txt", "zzz.txt"):
                resolver.resolve(rid, path, utc(T0 + 10_000))
        assert resolver.cache is not None
        resolver.cache.flush()
        kept = cache_rows(store, other_id)
        assert len(cache_rows(store, repo_id)) == len(kept) == 3
        old_chain = repo.chain(REF)
        rewrite(repo)
        new_chain = repo.chain(REF)
        pairs = zip([*old_chain, ""], new_chain, strict=False)
        shared = next(i for i, (old, new) in enumerate(pairs) if old != new)
        result = sync_repository(store, repo.root)
        assert result.rewritten
        assert result.commits == len(new_chain)
        assert 0 < result.new_commits == len(new_chain) - shared < len(new_chain)
        rows = stored_rows(store, repo_id)
        assert rows == full_sync_rows(repo, new_url())
        assert rows == expected_rows(repo, REF, repo_id)
        assert cache_rows(store, repo_id) == []
        assert cache_rows(store, other_id) == kept
        assert stored_rows(store, other_id) == expected_rows(other, REF, other_id)


# ---------------------------------------------------------------------------------------------
# The lookup cache.


@pytest.fixture
def small(
    tmp_path: Path, new_url: Callable[[], DatabaseURL]
) -> Iterator[tuple[GitRepo, Storage, str]]:
    repo = small_repo(tmp_path)
    with open_store(new_url()) as store:
        yield repo, store, sync_repository(store, repo.root).repo_id


def cache_answers(store: Storage, repo_id: str, probes: set[Probe]) -> None:
    """Resolve ``probes`` through a cache and write the answers to git_lookup_cache."""
    with LookupCache(store) as cache:
        resolver = GitHistoryResolver(store, cache=cache)
        for path, at in probes:
            resolver.resolve(repo_id, path, utc(at))
    assert cached_probes(store) == probes


def cached_probes(store: Storage) -> set[Probe]:
    return {(r["path"], int(r["at"].timestamp())) for r in cache_rows(store)}


def assert_cache_is_right(repo: GitRepo, store: Storage, repo_id: str) -> None:
    """Every cached answer still is git's, read back through a cache."""
    resolver = GitHistoryResolver(store, cache=LookupCache(store))
    for path, at in cached_probes(store):
        assert resolver.resolve(repo_id, path, utc(at)).commit_sha == repo.last_change(
            REF, path, at
        ), (path, at)
    assert resolver.cache is not None and resolver.cache.misses == 0


def test_sync_drops_the_cached_answers_new_commits_change(
    small: tuple[GitRepo, Storage, str],
) -> None:
    """A new commit drops the answers for the paths it touches (old names of renames too, and
    the directories holding them) from its date on; other answers, and earlier times, stay."""
    repo, store, repo_id = small
    cache_answers(
        store,
        repo_id,
        {
            ("c.txt", T0 + 5_000),  # renamed away by the new commit: changes
            ("d.txt", T0 + 5_000),  # created by that rename: changes
            ("c.txt", T0 + 1_499),  # before the new commit's date: unchanged
            ("b.txt", T0 + 5_000),  # untouched: stays
            ("docs", T0 + 5_000),  # a directory the new commit adds a file to: changes
            ("docs/", T0 + 5_000),  # the same, as a directory only: changes
            ("docs", T0 + 1_499),  # before: unchanged
        },
    )
    repo.move("c.txt", "d.txt")
    repo.write("docs/new.md", "new\n")
    repo.commit("rename c, add docs/new.md", T0 + 1_500)
    result = sync_repository(store, repo.root)
    assert (result.new_commits, result.rewritten) == (1, False)
    assert cached_probes(store) == {
        ("c.txt", T0 + 1_499),
        ("b.txt", T0 + 5_000),
        ("docs", T0 + 1_499),
    }
    assert_cache_is_right(repo, store, repo_id)


def test_sync_keeps_answers_dated_before_the_commit_touching_their_path(
    small: tuple[GitRepo, Storage, str],
) -> None:
    """With several new commits, each commit's own date bounds what it invalidates: an answer
    for a.txt before a.txt's new commit stays, though another new commit is older."""
    repo, store, repo_id = small
    cache_answers(
        store,
        repo_id,
        {
            ("a.txt", T0 + 5_000),  # a later commit modifies a.txt: changes
            ("a.txt", T0 + 2_999),  # before that commit's date: unchanged
            ("c.txt", T0 + 1_600),  # renamed away by a commit dated back to T0+1500: changes
            ("b.txt", T0 + 1_700),  # untouched, after the earliest new commit: stays
        },
    )
    repo.write("a.txt", "changed\n")
    repo.commit("touch a", T0 + 3_000)
    repo.move("c.txt", "d.txt")
    repo.commit("rename c, dated back", T0 + 1_500)
    assert sync_repository(store, repo.root).new_commits == 2
    assert cached_probes(store) == {("a.txt", T0 + 2_999), ("b.txt", T0 + 1_700)}
    assert_cache_is_right(repo, store, repo_id)


def test_cached_resolver_answers_like_the_uncached_one(small: tuple[GitRepo, Storage, str]) -> None:
    """A hit, from memory or from the table, is the same Resolution a fresh lookup gives."""
    repo, store, repo_id = small
    plain = GitHistoryResolver(store)
    probes = [(p, t) for p in ("a.txt", "b.txt", "c.txt", MISSING) for t in grid_times(repo, REF)]
    want = [plain.resolve(repo_id, p, utc(t)) for p, t in probes]
    cache = LookupCache(store, flush_every=10_000)
    cached = GitHistoryResolver(store, cache=cache)
    assert [cached.resolve(repo_id, p, utc(t)) for p, t in probes] == want  # misses
    assert [cached.resolve(repo_id, p, utc(t)) for p, t in probes] == want  # hits, in memory
    cache.flush()
    reread = GitHistoryResolver(store, cache=LookupCache(store))
    assert [reread.resolve(repo_id, p, utc(t)) for p, t in probes] == want  # hits, from the table
    assert reread.cache is not None
    assert (reread.cache.hits, reread.cache.misses) == (len(probes), 0)


def test_cache_counts_hits_and_writes_them_on_flush(small: tuple[GitRepo, Storage, str]) -> None:
    """Hits and misses are counted; the table gets the answers and hit counts only on flush."""
    _, store, repo_id = small
    cache = LookupCache(store, flush_every=100)
    resolver = GitHistoryResolver(store, cache=cache)
    for _ in range(3):
        resolver.resolve(repo_id, "a.txt", utc(T0 + 150))
    resolver.resolve(repo_id, "b.txt", utc(T0 + 150))
    assert (cache.hits, cache.misses) == (2, 2)
    assert cache_rows(store) == []  # nothing written before a flush
    cache.flush()
    hits = {r["path"]: r["hits"] for r in cache_rows(store)}
    assert hits == {"a.txt": 2, "b.txt": 0}
    again = LookupCache(store)
    GitHistoryResolver(store, cache=again).resolve(repo_id, "b.txt", utc(T0 + 150))
    assert (again.hits, again.misses) == (1, 0)
    again.close()
    assert {r["path"]: r["hits"] for r in cache_rows(store)} == {"a.txt": 2, "b.txt": 1}
    few = LookupCache(store, flush_every=2)  # flushes by itself once two changes are staged
    GitHistoryResolver(store, cache=few).resolve(repo_id, "c.txt", utc(T0 + 250))
    assert len(cache_rows(store)) == 2
    GitHistoryResolver(store, cache=few).resolve(repo_id, MISSING, utc(T0 + 250))
    assert len(cache_rows(store)) == 4


def test_cache_ttl_expires_answers(small: tuple[GitRepo, Storage, str]) -> None:
    """An answer older than the TTL is a miss and is evicted; one no older is a hit."""
    _, store, repo_id = small
    clock = FakeClock(CACHE_T0)
    with LookupCache(store, clock=clock) as cache:
        GitHistoryResolver(store, cache=cache).resolve(repo_id, "a.txt", utc(T0 + 150))
    ttl = timedelta(hours=1)
    clock.advance(ttl)  # exactly one TTL old: still an answer
    fresh = LookupCache(store, ttl=ttl, clock=clock)
    hit = fresh.get(repo_id, "a.txt", utc(T0 + 150))
    assert hit is not None and hit.commit_sha is not None
    assert fresh.evict() == 0 and len(cache_rows(store)) == 1
    clock.advance(timedelta(microseconds=1))  # now older than the TTL
    stale = LookupCache(store, ttl=ttl, clock=clock)
    assert stale.get(repo_id, "a.txt", utc(T0 + 150)) is None
    assert (stale.hits, stale.misses) == (0, 1)
    assert fresh.get(repo_id, "a.txt", utc(T0 + 150)) is None  # its copy in memory aged too
    assert (fresh.hits, fresh.misses) == (1, 1)
    assert stale.evict() == 1
    assert cache_rows(store) == []


def test_cache_evicts_least_recently_used_beyond_max_rows(
    small: tuple[GitRepo, Storage, str],
) -> None:
    """Beyond max_rows the rows read longest ago go first; a hit makes a row recent again."""
    _, store, repo_id = small
    clock = FakeClock(CACHE_T0)
    resolver = GitHistoryResolver(store, cache=LookupCache(store, clock=clock))
    paths = ["p1", "p2", "p3", "p4", "p5"]
    for path in paths:
        resolver.resolve(repo_id, path, utc(T0))
        clock.advance(timedelta(seconds=1))
    assert resolver.cache is not None
    resolver.cache.flush()
    assert [r["last_accessed_at"] for r in cache_rows(store)] == [
        CACHE_T0 + timedelta(seconds=n) for n in range(5)
    ]
    small_cache = LookupCache(store, max_rows=3, clock=clock)
    for path in ("p2", "p1"):
        assert small_cache.get(repo_id, path, utc(T0)) is not None
        clock.advance(timedelta(seconds=1))
    small_cache.flush()
    assert [r["path"] for r in cache_rows(store)] == ["p1", "p2", "p5"]
    assert {r["path"]: r["hits"] for r in cache_rows(store)} == {"p1": 1, "p2": 1, "p5": 0}
    assert small_cache.evict() == 0
    assert small_cache.clear(repo_id) == 3 and cache_rows(store) == []


def test_a_cache_kept_across_a_sync_forgets_changed_answers(
    small: tuple[GitRepo, Storage, str],
) -> None:
    """A resolver that outlives a sync must not answer from, or write back, a stale answer."""
    repo, store, repo_id = small
    cache = LookupCache(store)
    resolver = GitHistoryResolver(store, cache=cache)
    before = resolver.resolve(repo_id, "a.txt", utc(T0 + 5_000))
    cache.flush()
    resolver.resolve(repo_id, "a.txt", utc(T0 + 5_000))  # a hit, staged for the next flush
    repo.write("a.txt", "changed\n")
    new = repo.commit("touch a", T0 + 3_000)
    sync_repository(store, repo.root)
    after = resolver.resolve(repo_id, "a.txt", utc(T0 + 5_000))
    assert before.commit_sha != new
    assert after.commit_sha == new
    cache.flush()
    assert [r["commit_sha"] for r in cache_rows(store, repo_id)] == [new]


# ---------------------------------------------------------------------------------------------
# Errors.


def test_sync_refuses_a_directory_that_is_not_a_repository(
    tmp_path: Path, new_url: Callable[[], DatabaseURL]
) -> None:
    """The message names the directory and says it is not a repository."""
    plain = tmp_path / "plain"
    plain.mkdir()
    with open_store(new_url()) as store:
        with pytest.raises(GitError, match=r"not (inside )?a git repository") as caught:
            sync_repository(store, plain)
        assert str(plain) in str(caught.value)
        with pytest.raises(GitError, match="does not exist"):
            sync_repository(store, tmp_path / "nowhere")
        assert store.to_pyarrow(store.table("git_repos")).num_rows == 0


def test_detached_head_needs_a_ref(tmp_path: Path, new_url: Callable[[], DatabaseURL]) -> None:
    """Without a branch to follow, sync asks for --ref; with one, it syncs that ref."""
    repo = small_repo(tmp_path)
    repo.checkout("--detach", "HEAD~1")
    with open_store(new_url()) as store:
        with pytest.raises(GitError, match="--ref"):
            sync_repository(store, repo.root)
        with pytest.raises(GitError):
            sync_repository(store, repo.root, "no-such-branch")
        result = sync_repository(store, repo.root, REF)
        assert result.commits == 4


def test_lookups_in_unsynced_repositories_are_refused(
    small: tuple[GitRepo, Storage, str], tmp_path: Path
) -> None:
    """An unknown id or a repository that was never synced raises NotSyncedError."""
    _, store, _ = small
    never = small_repo(tmp_path, "never")
    resolver = GitHistoryResolver(store)
    for repo in (never.root, "no-such-repo-id"):
        with pytest.raises(NotSyncedError, match="sync"):
            resolver.resolve(repo, "a.txt", utc(T0))
        with pytest.raises(NotSyncedError):
            resolver.resolve_many(repo, probe_table([("a.txt", T0)]))


def test_times_without_a_zone_are_refused(small: tuple[GitRepo, Storage, str]) -> None:
    """A naive time names no instant: resolve, resolve_many and parse_at all refuse it."""
    _, store, repo_id = small
    resolver = GitHistoryResolver(store)
    with pytest.raises(ConfigurationError, match="time zone"):
        resolver.resolve(repo_id, "a.txt", datetime(2024, 1, 1))
    naive = pa.table(
        {"path": ["a.txt"], "at": pa.array([datetime(2024, 1, 1)], pa.timestamp("us"))}
    )
    with pytest.raises(ConfigurationError, match="time zone"):
        resolver.resolve_many(repo_id, naive)
    with pytest.raises(ConfigurationError, match="offset"):
        parse_at("2024-05-01T12:00:00")
    with pytest.raises(ConfigurationError):
        parse_at("@soon")


def test_git_failure_messages_are_one_line(
    tmp_path: Path, new_url: Callable[[], DatabaseURL]
) -> None:
    """A failing git command surfaces as a GitError whose message names the command."""
    repo = small_repo(tmp_path)
    with open_store(new_url()) as store:
        with pytest.raises(GitError) as caught:
            sync_repository(store, repo.root, "refs/heads/../nope")
        assert "\n" not in str(caught.value)
