"""The git time machine at its edges, with git itself as the oracle, on both engines.

The oracle is git run with no configuration at all (``tests.gitrepo``). A user's or a
repository's git configuration, or a stray ``GIT_DIR``, must not change what a sync stores.
``follow_renames`` walks exactly as ``git log --first-parent --follow`` does, copies and a copy
renamed back over its deleted original included. A path is git's literal pathspec: a file, or
a directory standing for every file under it. A sync without line counts reads no file
contents it does not need, so partial clones and repositories missing a blob still sync.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from benchmarks.git_repo import BRANCH, RepoSpec, repository
from typer.testing import CliRunner

from egregora.cli.app import app
from egregora.errors import GitError
from egregora.git import GitHistoryResolver, sync_repository
from egregora.storage.store import Storage
from tests.conftest import Databases
from tests.gitrepo import T0, GitRepo
from tests.support import db_arg
from tests.test_git import (
    MISSING,
    REF,
    Oracle,
    Probe,
    Row,
    expected_rows,
    grid_times,
    lines,
    mismatches,
    open_store,
    oracle,
    probe_table,
    stored_rows,
    touched_paths,
    utc,
)

Answers = dict[Probe, str | None]


# ---------------------------------------------------------------------------------------------
# Shared helpers.


def follow_oracle(repo: GitRepo, probes: list[Probe], ref: str = REF) -> Oracle:
    """Per probe, the first commit of ``git log --first-parent --follow REF -- PATH`` (walk
    order, newest first along first parents) dated at or before the probe's time."""
    walks = {path: repo.follow_log(ref, path) for path in {p for p, _ in probes}}
    return {(p, t): next((sha for sha, ct in walks[p] if ct <= t), None) for p, t in probes}


def walk_times(repo: GitRepo, ref: str = REF) -> list[int]:
    """Every commit's date and the second before it, and times before and after all history."""
    dates = repo.committer_dates(ref)
    times = {d - k for d in dates for k in (0, 1)}
    return sorted(times | {min(dates) - 86_400, max(dates) + 86_400})


def batch(
    resolver: GitHistoryResolver, repo_id: str, probes: list[Probe], *, follow: bool = False
) -> Answers:
    """``resolve_many`` over every probe in one call, keyed by probe."""
    table = resolver.resolve_many(repo_id, probe_table(probes), follow_renames=follow)
    return {(r["path"], int(r["at"].timestamp())): r["commit_sha"] for r in table.to_pylist()}


def single(
    resolver: GitHistoryResolver, repo_id: str, probes: list[Probe], *, follow: bool = False
) -> Answers:
    """One ``resolve`` per probe."""
    return {
        (p, t): resolver.resolve(repo_id, p, utc(t), follow_renames=follow).commit_sha
        for p, t in probes
    }


def reaching_back(expected: Oracle, limit: int) -> list[Probe]:
    """For single followed lookups (each costs a query per rename generation): per path, the
    earliest probe git answers, where following reaches furthest back; at most ``limit``,
    spread over the paths."""
    earliest: dict[str, Probe] = {}
    for (path, at), sha in sorted(expected.items(), key=lambda item: item[0][1]):
        if sha is not None:
            earliest.setdefault(path, (path, at))
    picked = [earliest[path] for path in sorted(earliest)]
    return picked[:: max(1, -(-len(picked) // limit))]


def assert_no_mismatch(expected: Oracle, got: Answers, what: str) -> None:
    wrong = mismatches(expected, got)
    assert not wrong, f"{what}: {len(wrong)} of {len(expected)} probes differ from git:\n" + (
        "\n".join(wrong[:40])
    )


def rows_for(repo_id: str, rows: list[Row], *, line_counts: bool = True) -> list[Row]:
    """Expected rows (computed under another repo_id) for ``repo_id``, counts dropped if asked."""
    if line_counts:
        return [{**row, "repo_id": repo_id} for row in rows]
    return [{**row, "repo_id": repo_id, "additions": None, "deletions": None} for row in rows]


def table_count(store: Storage, table: str) -> int:
    return int(store.execute(store.table(table).count()))


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout


# ---------------------------------------------------------------------------------------------
# 1. A hostile git configuration and environment change no answer.

ZOE = "Zoë Ćwik <zoe@example.com>"  # not representable in ISO-8859-1: git keeps its UTF-8
JOSE = "José Müller <jose@example.com>"  # representable: a re-encoding would change its bytes
SPACED = "dir with space/naïve café.txt"
CRLF = "crlf.txt"
# Line counts for this edit differ between diff algorithms: myers 4+/2-, histogram 5+/3-.
ALGO, ALGO_OLD, ALGO_NEW = "algo.txt", "e\na\nc\na\nd\n", "d\nd\nb\na\nd\na\nd\n"
SUBMODULE = "vendor/sub"
HOSTILE = {
    "log.showRoot": "false",
    "diff.renames": "copies",
    "diff.noprefix": "true",
    "diff.mnemonicPrefix": "true",
    "diff.relative": "true",
    "core.quotePath": "true",
    "color.ui": "always",
    "log.follow": "true",
    "format.pretty": "format:%h %s",
    "i18n.logOutputEncoding": "ISO-8859-1",
    "diff.algorithm": "histogram",
    "log.abbrevCommit": "true",
    "log.decorate": "full",
    "diff.renameLimit": "1",
    "diff.ignoreSubmodules": "all",
    "log.showSignature": "true",
    "core.abbrev": "7",
}


def crlf(n: int) -> str:
    return "".join(f"windows line {i}\r\n" for i in range(n))


def build_hostile(root: Path) -> GitRepo:
    """Renames (one pure, three with edits in one commit), a copy, a delete, a --no-ff merge,
    a submodule, CRLF text, non-ASCII names and authors, a commit dated back."""
    repo = GitRepo(root)
    repo.write("README.md", lines("readme"))
    repo.write("docs/guide.md", lines("guide"))
    repo.write(SPACED, lines("café"))
    repo.write(CRLF, crlf(10))
    repo.write(ALGO, ALGO_OLD)
    for name in "abc":
        repo.write(f"src/{name}.py", lines(f"module {name}"))
    repo.write("日本語.md", "こんにちは\n")
    root_sha = repo.commit("the root commit adds every file", T0, T0 - 500, author=ZOE)
    repo.move("docs/guide.md", "docs/manual.md")
    repo.write(ALGO, ALGO_NEW)
    repo.gitlink(SUBMODULE, root_sha)
    repo.commit("pure rename, an edit diff algorithms count differently", T0 + 100, author=JOSE)
    for name in "abc":  # three inexact renames: more than a rename limit of 1 allows
        repo.move(f"src/{name}.py", f"lib/{name}.py")
        repo.write(f"lib/{name}.py", lines(f"module {name}") + "edited\n")
    repo.write(CRLF, crlf(12))
    repo.commit("three renames with edits", T0 + 200)
    repo.write("README.md", lines("readme") + "changed\n")
    repo.write("README.copy.md", lines("readme"))  # a copy of a file this commit modifies
    repo.commit("a copy, dated back", T0 + 50, author=ZOE)
    repo.remove("日本語.md")
    repo.commit("delete", T0 + 300)
    repo.checkout("-b", "topic")
    repo.write(SPACED, lines("café") + "from the topic\n")
    repo.write("topic.txt", "topic\n")
    repo.commit("topic one", T0 + 320, author=JOSE)
    repo.move("README.copy.md", "docs/README copy.md")
    repo.commit("topic two", T0 + 330)
    repo.checkout(REF)
    repo.write(CRLF, crlf(13))
    repo.commit("main moves on", T0 + 340)
    repo.merge("topic", "merge topic", T0 + 400)
    repo.gitlink(SUBMODULE, repo.head())
    repo.write("lib/a.py", lines("module a") + "edited\nagain\n")
    repo.commit("last", T0 + 500, author=ZOE)
    return repo


@dataclass(frozen=True)
class Pristine:
    """The hostile-test history and git's answers for it, all computed with no configuration."""

    repo: GitRepo
    rows: list[Row]  # the expected git_commits rows, under repo_id ""
    probes: list[Probe]
    plain: Oracle
    follow: Oracle


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Pristine:
    repo = build_hostile(tmp_path_factory.mktemp("hostile") / "repo")
    paths = [*touched_paths(repo), MISSING]
    probes = [(p, t) for p in paths for t in grid_times(repo, REF)]
    rows = expected_rows(repo, REF, "")
    return Pristine(repo, rows, probes, oracle(repo, REF, probes), follow_oracle(repo, probes))


def test_the_hostile_history_exercises_what_the_settings_would_change(pristine: Pristine) -> None:
    """The scenario holds what each hostile setting alters: root-commit rows, renames with
    edits, a submodule, a Latin-1-representable author, counts the algorithms disagree on."""
    rows = pristine.rows
    first = pristine.repo.chain(REF)[0]
    assert sum(r["commit_sha"] == first for r in rows) == 9
    assert sum(r["change_type"] == "R" and r["path"].startswith("lib/") for r in rows) == 3
    assert {r["path"] for r in rows} >= {SUBMODULE, SPACED, CRLF, "日本語.md"}
    assert {r["author_name"] for r in rows} >= {"Zoë Ćwik", "José Müller"}
    algo = next(r for r in rows if r["path"] == ALGO and r["change_type"] == "M")
    assert (algo["additions"], algo["deletions"]) == (4, 2)
    assert any(p[0] == "docs/manual.md" for p in pristine.probes)
    assert any(pristine.follow[p] != pristine.plain[p] for p in pristine.probes)


def write_config(target: Path, settings: dict[str, str]) -> None:
    """Write ``settings`` into the git configuration file ``target``."""
    for key, value in settings.items():
        subprocess.run(["git", "config", "--file", str(target), key, value], check=True)


def users_git(root: Path, *args: str) -> str:
    """git as the user runs it: with the (patched) environment and every configuration file."""
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)
    return done.stdout.decode().strip()


def assert_answers_are_gits(store: Storage, repo_id: str, pristine: Pristine) -> None:
    """Single, batch and followed lookups over the whole grid equal git's answers."""
    resolver = GitHistoryResolver(store)
    assert_no_mismatch(pristine.plain, single(resolver, repo_id, pristine.probes), "resolve")
    assert_no_mismatch(pristine.plain, batch(resolver, repo_id, pristine.probes), "resolve_many")
    followed = batch(resolver, repo_id, pristine.probes, follow=True)
    assert_no_mismatch(pristine.follow, followed, "resolve_many follow")
    sample = reaching_back(pristine.follow, 6)
    followed_one = single(resolver, repo_id, sample, follow=True)
    assert_no_mismatch({p: pristine.follow[p] for p in sample}, followed_one, "resolve follow")


@pytest.mark.parametrize("where", ["global", "repository"])
def test_hostile_git_configuration_changes_no_stored_row_or_answer(
    where: str,
    pristine: Pristine,
    engine: str,
    databases: Databases,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With every setting that alters git log's output set in ~/.gitconfig (or .git/config),
    the stored rows and the lookups equal git's with no configuration at all."""
    root = tmp_path / "repo"
    shutil.copytree(pristine.repo.root, root, symlinks=True)
    home, xdg = tmp_path / "home", tmp_path / "xdg"
    home.mkdir()
    xdg.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    write_config(home / ".gitconfig" if where == "global" else root / ".git" / "config", HOSTILE)
    assert users_git(root, "config", "diff.renameLimit") == "1"  # the settings are in effect
    head = users_git(root, "rev-parse", "--short=7", "HEAD")
    assert users_git(root, "log", "-1") == f"{head} last"  # format.pretty, core.abbrev too
    with open_store(databases.new(engine)) as store:
        result = sync_repository(store, root)
        assert stored_rows(store, result.repo_id) == rows_for(result.repo_id, pristine.rows)
        assert_answers_are_gits(store, result.repo_id, pristine)


def test_git_dir_in_the_environment_does_not_redirect_the_sync(
    pristine: Pristine,
    engine: str,
    databases: Databases,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GIT_DIR and GIT_WORK_TREE naming another repository (as inside a hook) are ignored:
    the repository passed is the one synced and looked up."""
    decoy = GitRepo(tmp_path / "decoy")
    decoy.write("decoy.txt", "not this one\n")
    decoy.commit("decoy", T0 + 7)
    monkeypatch.setenv("GIT_DIR", str(decoy.root / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(decoy.root))
    assert users_git(pristine.repo.root, "log", "-1", "--format=%s") == "decoy"  # redirected
    with open_store(databases.new(engine)) as store:
        result = sync_repository(store, pristine.repo.root)
        assert stored_rows(store, result.repo_id) == rows_for(result.repo_id, pristine.rows)
        assert GitHistoryResolver(store).repo_id(pristine.repo.root) == result.repo_id
        assert_answers_are_gits(store, result.repo_id, pristine)


def test_configuration_files_are_still_read_for_safe_directory(
    pristine: Pristine,
    engine: str,
    databases: Databases,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A repository another user owns is refused by git as dubious unless the user's
    ~/.gitconfig lists it in safe.directory: the sync reads that file like git does."""
    root = tmp_path / "repo"
    shutil.copytree(pristine.repo.root, root, symlinks=True)
    subprocess.run(["chown", "-R", "65534:65534", str(root)], check=True)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    with open_store(databases.new(engine)) as store:
        with pytest.raises(GitError, match=r"another user owns it.*safe\.directory") as refused:
            sync_repository(store, root)
        assert "\n" not in str(refused.value)
        write_config(home / ".gitconfig", {"safe.directory": str(root)})
        result = sync_repository(store, root)
        assert stored_rows(store, result.repo_id) == rows_for(result.repo_id, pristine.rows)


# ---------------------------------------------------------------------------------------------
# 2. follow_renames is git's own --follow walk.


@dataclass(frozen=True)
class Followed:
    repo: GitRepo
    store: Storage
    repo_id: str
    probes: list[Probe]
    expected: Oracle


def synced_followed(
    repo: GitRepo, databases: Databases, engine: str, probes: list[Probe], ref: str = REF
) -> Iterator[Followed]:
    """Sync ``repo`` into a fresh database and pair it with git's followed answers."""
    expected = follow_oracle(repo, probes, ref)
    with open_store(databases.new(engine)) as store:
        repo_id = sync_repository(store, repo.root, ref).repo_id
        yield Followed(repo, store, repo_id, probes, expected)


def build_follow(root: Path) -> tuple[GitRepo, dict[str, str]]:
    """Every shape of history --follow walks through; returns the repo and named commits."""
    repo = GitRepo(root)
    sha: dict[str, str] = {}
    for name in ("a.txt", "plain.txt", "edited.txt", "orig.txt", "keep.txt", "gone.txt"):
        repo.write(name, lines(name))
    for name in ("top.txt", "x.txt", "y.txt", "m.txt", "olddir/1.md", "olddir/2.md"):
        repo.write(name, lines(name))
    sha["root"] = repo.commit("root", T0)
    repo.move("plain.txt", "plain2.txt")
    repo.move("edited.txt", "edited2.txt")
    repo.write("edited2.txt", lines("edited.txt") + "edit\n")
    sha["renames"] = repo.commit("a pure rename and a rename with an edit", T0 + 100)
    repo.move("a.txt", "b.txt")
    repo.write("copy.txt", lines("orig.txt"))  # a copy of a file this commit leaves unchanged
    repo.write("twin.txt", lines("keep.txt"))
    sha["copies"] = repo.commit("a -> b; two copies", T0 + 200)
    repo.move("b.txt", "c.txt")
    repo.write("c.txt", lines("a.txt") + "edit\n")
    repo.write("orig.txt", lines("orig.txt") + "the original goes on\n")
    sha["chain"] = repo.commit("b -> c with an edit, the original edited, dated back", T0 + 150)
    repo.remove("keep.txt")
    repo.remove("gone.txt")
    repo.move("top.txt", "newdir/deep/top.txt")
    sha["deletes"] = repo.commit("delete keep and gone, rename into a new folder", T0 + 300)
    repo.move("twin.txt", "keep.txt")
    repo.move("x.txt", "swap.tmp")
    repo.move("y.txt", "x.txt")
    repo.move("swap.tmp", "y.txt")
    sha["back"] = repo.commit("the copy renamed back to the deleted name; a swap", T0 + 250)
    repo.move("olddir/1.md", "newdir2/1.md")
    repo.move("olddir/2.md", "newdir2/2.md")
    repo.write("gone.txt", "a new file under an old name\n")
    sha["dir"] = repo.commit("a directory renamed, gone re-added", T0 + 400)
    repo.checkout("-b", "topic")
    repo.move("m.txt", "m2.txt")
    repo.write("m2.txt", lines("m.txt") + "topic edit\n")
    repo.commit("topic: m -> m2", T0 + 420)
    repo.write("m2.txt", lines("m.txt") + "topic edit\nmore\n")
    repo.commit("topic: edit m2, dated back", T0 + 380)
    repo.checkout(REF)
    repo.write("copy.txt", lines("orig.txt") + "the copy goes on\n")
    repo.write("c.txt", lines("a.txt") + "edit\nedit\n")
    sha["edits"] = repo.commit("edit the copy and c", T0 + 410)
    sha["merge"] = repo.merge("topic", "merge topic", T0 + 450)
    repo.write("keep.txt", lines("keep.txt") + "kept\n")
    repo.write("gone.txt", "a new file under an old name\nedited\n")
    sha["last"] = repo.commit("edit keep and gone, dated back", T0 + 440)
    return repo, sha


@pytest.fixture(scope="module")
def follow_history(
    tmp_path_factory: pytest.TempPathFactory, engine: str, databases: Databases
) -> Iterator[tuple[Followed, dict[str, str]]]:
    repo, sha = build_follow(tmp_path_factory.mktemp("follow") / "repo")
    probes = [(p, t) for p in [*touched_paths(repo), MISSING] for t in walk_times(repo)]
    for followed in synced_followed(repo, databases, engine, probes):
        yield followed, sha


def test_follow_scenario_is_what_git_follows(
    follow_history: tuple[Followed, dict[str, str]],
) -> None:
    """git's own walks, spelled out: a copy continues into its source, and a copy renamed back
    over its deleted original continues through the copy into the original's history."""
    followed, sha = follow_history
    repo = followed.repo

    def walk(path: str) -> list[str]:
        return [s for s, _ in repo.follow_log(REF, path)]

    assert walk("copy.txt") == [sha["edits"], sha["copies"], sha["root"]]
    assert walk("keep.txt") == [sha["last"], sha["back"], sha["copies"], sha["root"]]
    assert walk("c.txt") == [sha["edits"], sha["chain"], sha["copies"], sha["root"]]
    assert walk("m2.txt") == [sha["merge"], sha["root"]]
    assert walk("newdir2/1.md") == [sha["dir"], sha["root"]]
    assert walk(MISSING) == []
    # Following changes answers: before the copy, copy.txt answers with its source's commit.
    assert followed.expected[("copy.txt", T0 + 199)] == sha["root"]
    assert repo.last_change(REF, "copy.txt", T0 + 199) is None


def test_follow_resolve_many_equals_git_follow_on_every_probe(
    follow_history: tuple[Followed, dict[str, str]],
) -> None:
    """Every path that ever existed, at every commit's date and the second before it."""
    f, _ = follow_history
    got = batch(GitHistoryResolver(f.store), f.repo_id, f.probes, follow=True)
    assert_no_mismatch(f.expected, got, "resolve_many follow")


def test_follow_resolve_equals_git_follow_for_every_path(
    follow_history: tuple[Followed, dict[str, str]],
) -> None:
    """One lookup at a time, for every path: at its earliest answered time (where following
    reaches furthest back) and the second before it."""
    f, _ = follow_history
    probes = [(p, t - k) for p, t in reaching_back(f.expected, 1_000) for k in (0, 1)]
    assert len(probes) >= 40
    got = single(GitHistoryResolver(f.store), f.repo_id, probes, follow=True)
    assert_no_mismatch(follow_oracle(f.repo, probes), got, "resolve follow")


def test_followed_sources_are_kept_and_answer_without_the_repository(
    tmp_path: Path, engine: str, databases: Databases
) -> None:
    """git is asked once per adding commit a followed lookup crosses; the answers are kept in
    git_follow_sources, so the same lookups answer after the repository moved away, and one
    that needs a commit never asked about says why in one line."""
    repo, _ = build_follow(tmp_path / "repo")
    probes = [(p, t) for p in ("keep.txt", "c.txt") for t in walk_times(repo)]
    expected = follow_oracle(repo, probes)
    with open_store(databases.new(engine)) as store:
        repo_id = sync_repository(store, repo.root).repo_id
        first = batch(GitHistoryResolver(store), repo_id, probes, follow=True)
        assert_no_mismatch(expected, first, "asked of git")
        kept = store.to_pyarrow(store.table("git_follow_sources")).to_pylist()
        found = {(r["path"], r["change_type"], r["source_path"]) for r in kept}
        assert {("keep.txt", "R", "twin.txt"), ("twin.txt", "C", "keep.txt")} <= found
        repo.root.rename(tmp_path / "moved")
        fresh = GitHistoryResolver(store)
        assert_no_mismatch(expected, batch(fresh, repo_id, probes, follow=True), "kept")
        with pytest.raises(GitError, match="no longer exists") as refused:
            fresh.resolve(repo_id, "copy.txt", utc(T0 + 10_000), follow_renames=True)
        assert "\n" not in str(refused.value)


def build_random(root: Path, seed: int, commits: int) -> GitRepo:
    """A seeded random history: adds, edits, renames (some with edits), copies, deletes and
    re-adds under a small pool of names, committer dates that sometimes go backwards."""
    rng = random.Random(seed)
    repo = GitRepo(root)
    pool = [f"{folder}n{i}.txt" for folder in ("", "d1/", "d2/", "d1/deep/") for i in range(5)]
    live: dict[str, str] = {}
    serial = 0
    when = T0

    def fresh() -> str:
        nonlocal serial
        serial += 1
        return "".join(f"file {serial} line {i}\n" for i in range(12))

    for n in range(commits):
        touched: set[str] = set()
        for _ in range(rng.randint(1, 3)):
            free = [p for p in pool if p not in live and p not in touched]
            mine = [p for p in live if p not in touched]
            op = rng.choice(["add", "edit", "edit", "rename", "copy", "delete"])
            if op == "add" or not mine or (op in ("rename", "copy") and not free):
                if not free:
                    continue
                path = rng.choice(free)
                live[path] = fresh()
                repo.write(path, live[path])
                touched.add(path)
            elif op == "edit":
                path = rng.choice(mine)
                live[path] += f"edit {n}\n"
                repo.write(path, live[path])
                touched.add(path)
            elif op == "delete" and len(live) > 3:
                path = rng.choice(mine)
                del live[path]
                repo.remove(path)
                touched.add(path)
            elif op == "rename":
                old, new = rng.choice(mine), rng.choice(free)
                repo.move(old, new)
                live[new] = live.pop(old)
                if rng.random() < 0.4:
                    live[new] += f"renamed {n}\n"
                    repo.write(new, live[new])
                touched |= {old, new}
            elif op == "copy":
                source, new = rng.choice(mine), rng.choice(free)
                live[new] = live[source] + (f"copied {n}\n" if rng.random() < 0.3 else "")
                repo.write(new, live[new])
                touched.add(new)
        if not touched:
            repo.write(pool[0], fresh())
            live[pool[0]] = (repo.root / pool[0]).read_text(encoding="utf-8")
        backwards = rng.random() < 0.15
        when = when - rng.randint(1, 900) if backwards else when + rng.randint(10, 300)
        repo.commit(f"change {n}", when)
    return repo


@pytest.fixture(scope="module")
def random_history(
    tmp_path_factory: pytest.TempPathFactory, engine: str, databases: Databases
) -> Iterator[Followed]:
    repo = build_random(tmp_path_factory.mktemp("random") / "repo", seed=2024, commits=90)
    probes = [(p, t) for p in [*touched_paths(repo), MISSING] for t in walk_times(repo)]
    yield from synced_followed(repo, databases, engine, probes)


def test_follow_equals_git_on_a_seeded_random_history(random_history: Followed) -> None:
    """All probes in one batch, and a sample one at a time: 0 differences from git's walk."""
    f = random_history
    renames = f.repo.renames(REF)
    assert len(renames) >= 10, "the history must hold renames to follow"
    assert len({p for p, _ in f.probes}) >= 15
    resolver = GitHistoryResolver(f.store)
    assert_no_mismatch(f.expected, batch(resolver, f.repo_id, f.probes, follow=True), "batch")
    sample = reaching_back(f.expected, 20)
    got = single(resolver, f.repo_id, sample, follow=True)
    assert_no_mismatch({p: f.expected[p] for p in sample}, got, "single")


@pytest.fixture(scope="module")
def generated_history(
    tmp_path_factory: pytest.TempPathFactory, engine: str, databases: Databases
) -> Iterator[Followed]:
    """A small repository from the benchmarks' generator (built in a temporary folder, not the
    benchmarks' cache), probed on up to 40 paths renamed away or renamed to."""
    folder = tmp_path_factory.mktemp("generated")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("benchmarks.git_repo.CACHE", folder)
        manifest = repository(RepoSpec(commits=1_500, files=120, seed=11), log=io.StringIO())
    repo = GitRepo.existing(Path(manifest.path))
    renamed = sorted({name for pair in repo.renames(BRANCH) for name in pair})
    rng = random.Random(5)
    paths = rng.sample(renamed, min(40, len(renamed)))
    probes: list[Probe] = []
    for path in paths:
        dates = {ct for _, ct in repo.follow_log(BRANCH, path)}
        times = {d - k for d in dates for k in (0, 1)}
        times |= {rng.randint(manifest.first_date, manifest.last_date) for _ in range(10)}
        times |= {manifest.first_date - 1, manifest.last_date + 1}
        probes += [(path, t) for t in sorted(times)]
    yield from synced_followed(repo, databases, engine, probes, BRANCH)


def test_follow_equals_git_on_renamed_paths_of_a_generated_history(
    generated_history: Followed,
) -> None:
    """Renamed paths of a realistically shaped history (1,500 commits, merges, dates going
    backwards, directory renames): batch and a sample of single lookups equal git's walk."""
    f = generated_history
    assert len({p for p, _ in f.probes}) >= 20, "the generated history must hold renames"
    assert sum(sha is not None for sha in f.expected.values()) > len(f.probes) // 2
    resolver = GitHistoryResolver(f.store)
    assert_no_mismatch(f.expected, batch(resolver, f.repo_id, f.probes, follow=True), "batch")
    sample = reaching_back(f.expected, 20)
    got = single(resolver, f.repo_id, sample, follow=True)
    assert_no_mismatch({p: f.expected[p] for p in sample}, got, "single")


# ---------------------------------------------------------------------------------------------
# 3. A path is git's literal pathspec: a file, or a directory and every file under it.

GLOBS = ("a*b.txt", "q?.md", "[x].txt", "*")
GLOB_MATCHES = ("aXb.txt", "qz.md", "x.txt")  # what the glob names would match as patterns
COLON = ":colon.md"
DIRECTORIES = (
    "docs",
    "docs/",
    "docs/guide",
    "docs/guide/",
    "docs/guide/deep",
    "docs/guide/deep/",
    "gone",
    "gone/",
    "notes",
    "notes/",
    "tree",
    "tree/",
    "with space",
)
NOT_DIRECTORIES = ("doc", "docs/gui", "gon", "docs/guide/dee")  # prefixes, not components


def build_pathspec(root: Path) -> GitRepo:
    """Directories at several depths, a file that becomes a directory and one the other way,
    a directory deleted entirely, glob characters, spaces and a leading colon in names."""
    repo = GitRepo(root)
    for name in (
        "docs/index.md",
        "docs/guide/intro.md",
        "docs/guide/deep/x.md",
        *GLOBS,
        *GLOB_MATCHES,
        "with space/file name.txt",
        COLON,
        "notes",
        "tree/leaf.md",
        "gone/one.md",
        "gone/two.md",
    ):
        repo.write(name, lines(name))
    repo.commit("root", T0)
    repo.write("docs/guide/intro.md", "intro edited\n")
    repo.commit("edit deep in docs", T0 + 100)
    for name in (*GLOB_MATCHES, "docs/index.md"):
        repo.write(name, "what a glob would match\n")
    repo.commit("edit what the glob names would match", T0 + 200)
    repo.write("a*b.txt", "edited\n")
    repo.remove("gone/one.md")
    repo.commit("edit a*b.txt; one of two files of gone/ deleted, dated back", T0 + 150)
    repo.remove("notes")
    repo.write("notes/a.md", "notes is a directory now\n")
    repo.remove("tree/leaf.md")
    repo.write("tree", "tree is a file now\n")
    repo.commit("a file becomes a directory, a directory a file", T0 + 300)
    repo.remove("gone/two.md")
    repo.write("*", "star edited\n")
    repo.commit("the last file of gone/ deleted", T0 + 400)
    repo.write("docs/guide/deep/x.md", "deep edited\n")
    repo.write(COLON, "colon edited\n")
    repo.write("with space/file name.txt", "spaced edited\n")
    repo.commit("edit deep, colon and spaced", T0 + 500)
    repo.remove("docs/guide/deep/x.md")
    repo.commit("docs/guide/deep deleted, docs/guide stays", T0 + 600)
    repo.write("q?.md", "question edited\n")
    repo.commit("edit q?.md, dated back", T0 + 350)
    return repo


@dataclass(frozen=True)
class Pathspecs:
    repo: GitRepo
    store: Storage
    repo_id: str
    probes: list[Probe]
    expected: Oracle


@pytest.fixture(scope="module")
def pathspecs(
    tmp_path_factory: pytest.TempPathFactory, engine: str, databases: Databases
) -> Iterator[Pathspecs]:
    repo = build_pathspec(tmp_path_factory.mktemp("pathspec") / "repo")
    paths = [*touched_paths(repo), *DIRECTORIES, *NOT_DIRECTORIES, MISSING]
    probes = [(p, t) for p in paths for t in grid_times(repo, REF)]
    with open_store(databases.new(engine)) as store:
        repo_id = sync_repository(store, repo.root).repo_id
        yield Pathspecs(repo, store, repo_id, probes, oracle(repo, REF, probes))


def test_pathspec_oracle_sees_directories_and_literal_names(pathspecs: Pathspecs) -> None:
    """git's answers the lookups must give: a directory answers with its files' commits,
    ``docs/`` does not match a file ``docs``, a prefix is no directory, globs are literal."""
    expected, repo = pathspecs.expected, pathspecs.repo
    chain = repo.chain(REF)
    end = max(t for _, t in pathspecs.probes)
    assert expected[("docs", end)] == expected[("docs/", end)] == chain[7]
    assert expected[("docs/guide", T0 + 150)] == chain[1]
    assert all(expected[(p, end)] is None for p in NOT_DIRECTORIES)
    assert expected[("notes", T0 + 299)] == chain[0]  # the file
    assert expected[("notes/", T0 + 299)] is None  # the file "notes" is not the directory
    assert expected[("notes", T0 + 300)] == expected[("notes/", T0 + 300)] == chain[4]
    assert expected[("a*b.txt", T0 + 201)] == chain[3]  # not aXb.txt's commit
    assert expected[("*", T0 + 299)] == chain[0]  # not every file's


def test_directories_and_literal_paths_resolve_like_git(pathspecs: Pathspecs) -> None:
    """One lookup per probe equals ``git log -1 --first-parent --before -- ':(literal)PATH'``."""
    p = pathspecs
    got = single(GitHistoryResolver(p.store), p.repo_id, p.probes)
    assert_no_mismatch(p.expected, got, "resolve")


def test_directories_and_literal_paths_resolve_many_like_git(pathspecs: Pathspecs) -> None:
    """The same probes in one batch."""
    p = pathspecs
    got = batch(GitHistoryResolver(p.store), p.repo_id, p.probes)
    assert_no_mismatch(p.expected, got, "resolve_many")


def test_directory_answers_exist_while_a_file_remains_under_them(pathspecs: Pathspecs) -> None:
    """``exists`` is whether ``git ls-tree -r SHA -- PATH`` lists anything at the answer's
    commit (False once every file under a directory is gone), and ``found_path`` is the path
    as asked without a trailing slash."""
    p = pathspecs
    resolver = GitHistoryResolver(p.store)
    wrong: list[str] = []
    in_tree: dict[tuple[str, str], bool] = {}
    for (path, at), sha in p.expected.items():
        if path not in DIRECTORIES:
            continue
        answer = resolver.resolve(p.repo_id, path, utc(at))
        if sha is None:
            continue
        key = (sha, path)
        if key not in in_tree:
            in_tree[key] = p.repo.tree_has(sha, path)
        if answer.exists != in_tree[key]:
            wrong.append(f"{path!r} @T0{at - T0:+d}: git lists {in_tree[key]}, {answer.exists}")
        if answer.found_path != path.rstrip("/"):
            wrong.append(f"{path!r} @T0{at - T0:+d}: found_path {answer.found_path!r}")
    assert not wrong, "\n".join(wrong[:40])
    assert set(in_tree.values()) == {True, False}  # both states are probed


def test_cli_resolves_a_directory_like_git(
    pathspecs: Pathspecs, engine: str, databases: Databases
) -> None:
    """``egregora git sync`` then ``egregora git resolve REPO docs AT --json`` print git's
    commit for a directory (a database of its own: the fixture's stays open meanwhile)."""
    p = pathspecs
    db = ("--db", db_arg(databases.new(engine)))
    root = str(p.repo.root)
    assert cli("git", "sync", root, *db)[0] == 0
    end = max(t for _, t in p.probes)
    for path, at in [("docs", T0 + 150), ("docs", end), ("docs/guide/", T0 + 501)]:
        code, out = cli("git", "resolve", root, path, f"@{at}", *db, "--json")
        want = p.expected[(path, at)]
        assert want is not None and code == 0, out
        assert json.loads(out)["commit_sha"] == want, (path, at)
    code, out = cli("git", "resolve", root, "doc", f"@{end}", *db)
    assert code == 1 and out == ""  # "doc" is not the directory docs


def directory_rows(store: Storage, repo_id: str) -> list[Row]:
    dirs = store.table("git_directory_changes")
    mine = dirs.filter(dirs.repo_id == repo_id).order_by(["chain_seq", "path"])
    rows: list[Row] = store.to_pyarrow(mine).to_pylist()
    return rows


def fresh_directory_rows(repo: GitRepo, databases: Databases, engine: str) -> list[Row]:
    with open_store(databases.new(engine)) as fresh:
        return directory_rows(fresh, sync_repository(fresh, repo.root).repo_id)


def test_directory_rows_of_later_syncs_equal_a_full_syncs(
    tmp_path: Path, engine: str, databases: Databases
) -> None:
    """Directory rows count on from the stored ones: after syncs that each read a few new
    commits, after a force-push re-read from its fork point, and for a repository whose rows
    predate directories (filled in by its next sync), they equal a fresh full sync's."""
    repo = build_pathspec(tmp_path / "repo")
    chain = repo.chain(REF)
    with open_store(databases.new(engine)) as store:
        for step in (2, 5, len(chain)):
            repo.git("update-ref", f"refs/heads/{REF}", chain[step - 1])
            repo_id = sync_repository(store, repo.root).repo_id
            assert directory_rows(store, repo_id) == fresh_directory_rows(repo, databases, engine)
        repo.checkout("-B", REF, chain[4])  # five commits rewritten: a file into the fork's dir
        repo.remove("tree")
        repo.write("tree/again.md", "tree is a directory again\n")
        repo.commit("rewritten: tree a directory again", T0 + 700)
        repo.remove("docs/guide/intro.md")
        repo.commit("rewritten: docs/guide loses a file", T0 + 800)
        result = sync_repository(store, repo.root)
        assert result.rewritten and result.new_commits == 2
        rows = directory_rows(store, repo_id)
        assert rows == fresh_directory_rows(repo, databases, engine)
        assert {r["change_type"] for r in rows} == {"A", "M", "D"}
        store.delete("git_directory_changes", lambda t: t.repo_id == repo_id)
        assert sync_repository(store, repo.root).new_commits == 0
        assert directory_rows(store, repo_id) == rows


# ---------------------------------------------------------------------------------------------
# 4. Syncing without line counts: partial clones and missing objects.


def test_sync_without_line_counts_stores_null_counts_and_the_same_rows(
    pristine: Pristine, engine: str, databases: Databases
) -> None:
    """``line_counts=False`` (and ``--no-line-counts``) store every row a full sync stores,
    with NULL additions and deletions."""
    with open_store(databases.new(engine)) as store:
        result = sync_repository(store, pristine.repo.root, line_counts=False)
        want = rows_for(result.repo_id, pristine.rows, line_counts=False)
        assert stored_rows(store, result.repo_id) == want
        assert result.file_changes == len(want)
    url = databases.new(engine)
    code, out = cli("git", "sync", str(pristine.repo.root), "--no-line-counts", "--db", db_arg(url))
    assert code == 0, out
    with open_store(url) as store:
        assert stored_rows(store, result.repo_id) == want


def build_origin(root: Path) -> GitRepo:
    """Twenty files edited over eight commits (many blobs), one rename with an edit."""
    repo = GitRepo(root)
    for i in range(20):
        repo.write(f"f{i:02}.txt", lines(f"file {i}"))
    repo.write("moved.txt", lines("moved"))
    repo.commit("root", T0)
    for n in range(1, 9):
        for i in range(n % 3, 20, 3):
            repo.write(
                f"f{i:02}.txt", lines(f"file {i}") + "".join(f"edit {k}\n" for k in range(n))
            )
        if n == 4:
            repo.move("moved.txt", "sub/moved.txt")
            repo.write("sub/moved.txt", lines("moved") + "edited\n")
        repo.commit(f"edit {n}", T0 + 100 * n)
    repo.git("config", "uploadpack.allowFilter", "true")
    return repo


def test_a_partial_clone_syncs_without_fetching_every_blob(
    engine: str, databases: Databases, tmp_path: Path
) -> None:
    """A blobless clone syncs with line_counts=False: the rows are the origin's (no counts)
    and most blobs are still missing afterwards (only rename detection's were fetched)."""
    origin = build_origin(tmp_path / "origin")
    want = expected_rows(origin, REF, "")
    clone_root = tmp_path / "clone"
    origin.git(
        "clone",
        "-q",
        "--filter=blob:none",
        "--no-checkout",
        f"file://{origin.root}",
        str(clone_root),
    )
    clone = GitRepo.existing(clone_root)
    before = clone.missing_objects()
    assert before >= 60
    with open_store(databases.new(engine)) as store:
        result = sync_repository(store, clone_root, line_counts=False)
        rows = stored_rows(store, result.repo_id)
    after = clone.missing_objects()
    # Only the two blobs of the rename with an edit are needed (and a little slack).
    assert after >= before - 4, f"{before - after} of {before} missing blobs were fetched"
    assert rows == rows_for(result.repo_id, want, line_counts=False)


def test_a_missing_blob_fails_the_default_sync_clearly_and_writes_nothing(
    engine: str, databases: Databases, tmp_path: Path
) -> None:
    """With one blob deleted, the default sync raises a one-line GitError naming the object
    and the ways out (fetch it, or --no-line-counts) and stores nothing; line_counts=False
    then syncs, since that blob belongs to a file that is only ever modified."""
    repo = GitRepo(tmp_path / "damaged")
    repo.write("notes.txt", lines("notes"))
    repo.write("old.txt", lines("old"))
    repo.commit("root", T0)
    repo.write("notes.txt", lines("notes") + "second\n")
    edited = repo.commit("edit notes", T0 + 100)
    repo.write("notes.txt", lines("notes") + "second\nthird\n")
    repo.move("old.txt", "new.txt")
    repo.write("new.txt", lines("old") + "renamed\n")
    repo.commit("edit notes again, rename with an edit", T0 + 200)
    want = expected_rows(repo, REF, "")
    blob = repo.git("rev-parse", f"{edited}:notes.txt")
    loose = repo.root / ".git" / "objects" / blob[:2] / blob[2:]
    assert loose.is_file()
    loose.unlink()
    assert repo.missing_objects() == 1
    with open_store(databases.new(engine)) as store:
        with pytest.raises(GitError) as caught:
            sync_repository(store, repo.root)
        message = str(caught.value)
        assert "\n" not in message and blob in message, message
        assert "--no-line-counts" in message and "fetch" in message, message
        assert table_count(store, "git_commits") == table_count(store, "git_repos") == 0
        result = sync_repository(store, repo.root, line_counts=False)
        assert stored_rows(store, result.repo_id) == rows_for(
            result.repo_id, want, line_counts=False
        )
