"""Git resync case: a history force-pushed over its last five commits, synced again through the
command line, against a first sync of the whole history the same way.

``git_resync_force_push`` times ``python -m egregora git sync REPO --json`` as a subprocess
(interpreter start-up and imports included, as a user waits for it) on a database already
synced at the branch's original tip, after the branch was moved to a rewritten tip: the last
five first-parent commits replaced by five others (edits, renames and adds), as a force-push
leaves it. The baseline is the same command on a fresh database at head: a first sync of the
whole 2,600-commit history. Its size is fixed by what it measures, whatever ``--rows`` says.

The repository is the generator's (``git_repo.py``, cached); the case works on a private
working clone of it, where the five new commits are made once and the branch is moved between
the two tips with ``git update-ref``, so the cache is never changed. Every command gets a
database of its own (``Databases.template``: made, migrated to head and, for the case, synced
at the original tip in this process, all untimed; dropped after the command), named in
``EGREGORA_DB`` as ``--db`` would name it, so a password never shows in the process list.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa

from benchmarks.databases import Build, Databases
from benchmarks.git_repo import BRANCH, QUICK_FILES, Manifest, RepoSpec, git_command, repository
from benchmarks.harness import Benchmark, require, timed
from egregora import __version__
from egregora.backends.url import ENV_VAR
from egregora.git.command import git_env
from egregora.git.sync import SyncResult, sync_repository
from egregora.storage.store import Storage

SPEC = RepoSpec(commits=2_600, files=QUICK_FILES)  # the history the claim is about
REWRITTEN = 5  # first-parent commits the force-push replaces
FULL_ROWS = 1_000_000  # the default --rows: the extras are timed too; fewer rows (--quick): not
SEED = 5_150
EDITS_PER_COMMIT = 3
TIMEOUT_S = 900.0  # a budget for a stuck command, not a speed limit
TAIL = 3_000  # characters of a failed command's stderr kept in the error
ORDER = [("commit_sha", "ascending"), ("path", "ascending")]  # git_commits' key in a repo
IDENTITY = {
    "GIT_AUTHOR_NAME": "Rewriting Author",
    "GIT_AUTHOR_EMAIL": "rewriter@example.org",
    "GIT_COMMITTER_NAME": "Rewriting Author",
    "GIT_COMMITTER_EMAIL": "rewriter@example.org",
}


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """git in the working clone, with the project's overrides; its stdout, stripped."""
    proc = subprocess.run(
        git_command(repo, *args),
        capture_output=True,
        env={**git_env(), **(env or {})},
        check=False,
        text=True,
    )
    require(proc.returncode == 0, f"git {args[0]} failed in {repo}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def _clone(manifest: Manifest, where: Path) -> Path:
    """A private working clone of the cached repository (the cache itself is never written)."""
    proc = subprocess.run(
        ["git", "clone", "--quiet", manifest.path, str(where)],
        capture_output=True,
        env=git_env(),
        check=False,
        text=True,
    )
    require(proc.returncode == 0, f"git clone of {manifest.path} failed: {proc.stderr.strip()}")
    tip = _git(where, "rev-parse", BRANCH)
    require(tip == manifest.tip, f"the clone's {BRANCH} is at {tip}, the cache's at {manifest.tip}")
    return where


def _force_push(repo: Path, last_date: int) -> str:
    """Replace the last ``REWRITTEN`` first-parent commits of the checked-out branch by as
    many new ones, each editing, renaming and adding files; the new tip."""
    rng = random.Random(SEED)
    _git(repo, "reset", "--quiet", "--hard", f"HEAD~{REWRITTEN}")
    for i in range(REWRITTEN):
        files = _git(repo, "ls-files").splitlines()
        edited = rng.sample(files, EDITS_PER_COMMIT + 1)
        for path in edited[:EDITS_PER_COMMIT]:
            with (repo / path).open("a", encoding="utf-8") as out:
                out.write(f"rewritten after the force-push, commit {i}\n")
        moved = edited[-1]
        _git(repo, "mv", moved, str(Path(moved).parent / f"moved_{i}_{Path(moved).name}"))
        added = repo / "src" / "rewritten" / f"module_{i}.py"
        added.parent.mkdir(parents=True, exist_ok=True)
        added.write_text("".join(f"value_{i}_{n} = {n}\n" for n in range(20)), encoding="utf-8")
        _git(repo, "add", "--all")
        when = f"@{last_date + 3_600 * (i + 1)} +0000"
        dates = {"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
        _git(repo, "commit", "--quiet", "-m", f"rewritten change {i}", env=IDENTITY | dates)
    return _git(repo, "rev-parse", "HEAD")


def _move_branch(repo: Path, to: str) -> None:
    """Point the tracked branch at ``to`` (the working tree is left as it is: sync reads git)."""
    _git(repo, "update-ref", f"refs/heads/{BRANCH}", to)


def _stored(store: Storage, repo_id: str) -> pa.Table:
    """The repository's git_commits rows, in key order."""
    commits = store.table("git_commits")
    return store.to_pyarrow(commits.filter(commits.repo_id == repo_id)).sort_by(ORDER)


def _last_synced(store: Storage, repo_id: str) -> str | None:
    repos = store.table("git_repos")
    found = store.to_pyarrow(repos.filter(repos.repo_id == repo_id)).to_pylist()
    return found[0]["last_synced_commit"] if found else None


def _keys(rows: pa.Table) -> set[tuple[Any, ...]]:
    return set(zip(*(rows[name].to_pylist() for name in rows.column_names), strict=True))


def _difference(got: pa.Table, want: pa.Table) -> str:
    """How two row sets differ, in a few words."""
    have, wanted = _keys(got), _keys(want)
    missing, extra = sorted(wanted - have, key=repr), sorted(have - wanted, key=repr)
    return (
        f"{got.num_rows} rows against {want.num_rows}: {len(missing)} missing "
        f"(first {missing[:1]}), {len(extra)} not wanted (first {extra[:1]})"
    )


class GitResyncForcePush(Benchmark):
    """``egregora git sync`` after a five-commit force-push against a first sync, both as
    commands."""

    name = "git_resync_force_push"
    baseline = "full_sync_command"
    base_note = (
        "A generated repository (git_repo.py; cached): {commits:,} first-parent commits "
        "({all:,} in all), {files:,} files at the tip, in a private working clone where the "
        "last {rewritten} first-parent commits are replaced once by {rewritten} others (edits, "
        "renames and adds; {changes} file changes), as a force-push leaves them. Case: `python "
        "-m egregora git sync REPO --json` as a subprocess, timed from start to exit "
        "(interpreter start-up and imports included), on a {db} synced at the original tip "
        "(a new one per repetition: made, migrated and synced in this process, untimed), after "
        "`git update-ref` moved the branch to the rewritten tip; its JSON must say rewritten, "
        "and its git_commits rows must equal those of a fresh full sync of the rewritten tip. "
        "The resyncs read {read} commits (new_commits). Baseline: the same command on a fresh "
        "{db} at head (migrated untimed): a first sync of the rewritten history, its rows "
        "checked the same way. The database is named in EGREGORA_DB, the default of --db. "
        "{extras}The rows column holds first-parent commits. Goal: ratio <= 0.5."
    )
    extras_note = (
        "Extras: version_command (`python -m egregora --version`: the interpreter and the "
        "command line's imports), noop_sync_command (the same sync command again on the "
        "baseline's database, which finds nothing new), and resync_in_process and "
        "full_sync_in_process (the case's and the baseline's sync_repository call in this "
        "process, imports done: the sync's own cost). "
    )

    def __init__(self, data: pa.Table, databases: Databases) -> None:
        super().__init__(SPEC.commits)
        self.dbs = databases
        self.engine = databases.engine
        self.with_extras = data.num_rows >= FULL_ROWS
        self.note = self.base_note
        self.manifest: Manifest | None = None
        self.folder: Path | None = None
        self.repo: Path | None = None
        self.original = self.rewritten = ""
        self.repo_id = ""
        self.all_commits = 0  # reachable from the rewritten tip, merged topic commits included
        self.expected: pa.Table | None = None  # a fresh full sync of the rewritten tip
        self.made = 0  # databases made so far, for their keys
        self.read: list[int] = []  # new_commits of each resync
        self.synced: str | None = None  # the baseline's database, for noop_sync_command

    # -- preparing --------------------------------------------------------------------------
    def prepare(self) -> None:
        self.manifest = manifest = repository(SPEC)
        self.folder = Path(tempfile.mkdtemp(prefix="egregora-bench-resync-"))
        self.repo = repo = _clone(manifest, self.folder / "repo")
        self.original = manifest.tip
        self.rewritten = _force_push(repo, manifest.last_date)
        fork = _git(repo, "rev-parse", f"{self.original}~{REWRITTEN}")
        base = _git(repo, "merge-base", self.original, self.rewritten)
        count = int(_git(repo, "rev-list", "--first-parent", "--count", self.rewritten))
        self.all_commits = int(_git(repo, "rev-list", "--count", self.rewritten))
        require(
            base == fork and count == SPEC.commits,
            f"the rewritten tip forks at {base} with {count} first-parent commits; wanted "
            f"{fork} ({self.original}~{REWRITTEN}) and {SPEC.commits}",
        )
        with self.dbs.migrated() as store:
            result = sync_repository(store, repo)
            require(
                result.commits == result.new_commits == SPEC.commits and not result.rewritten,
                f"a fresh sync of the rewritten tip gave {result}",
            )
            self.repo_id = result.repo_id
            self.expected = _stored(store, self.repo_id)
        self._check_rewrite(self.expected)
        # The command line must start and name this version (this also warms its imports).
        version = self._command(["--version"], None)[1].strip()
        require(version == __version__, f"`egregora --version` printed {version!r}")
        self._describe()

    def _check_rewrite(self, rows: pa.Table) -> None:
        """The new commits edit, rename and add files."""
        seq, kinds = rows["chain_seq"].to_pylist(), rows["change_type"].to_pylist()
        top = {kind for kind, s in zip(kinds, seq, strict=True) if s > SPEC.commits - REWRITTEN}
        require(
            {"A", "M", "R"} <= top,
            f"the rewritten commits change files by {sorted(top)}; wanted A, M and R",
        )

    def _describe(self) -> None:
        manifest, expected = self.manifest, self.expected
        assert manifest is not None and expected is not None
        seq = expected["chain_seq"].to_pylist()
        changes = sum(1 for s in seq if s > SPEC.commits - REWRITTEN)
        self.note = self.base_note.format(
            commits=SPEC.commits,
            all=self.all_commits,
            files=len(manifest.live),
            rewritten=REWRITTEN,
            changes=changes,
            db=self.dbs.described,
            read=", ".join(f"{n:,}" for n in self.read) or "(none yet)",
            extras=self.extras_note if self.with_extras else "",
        )

    # -- the commands -----------------------------------------------------------------------
    def _command(self, args: list[str], location: str | None) -> tuple[float, str]:
        """``python -m egregora ARGS`` to its end, on the database ``location``: its seconds
        and its stdout (a failure, with its stderr, fails the case)."""
        assert self.folder is not None
        command = [sys.executable, "-m", "egregora", *args]
        env = dict(os.environ)
        if location is not None:
            env[ENV_VAR] = location
        done: list[subprocess.CompletedProcess[str]] = []

        def run() -> None:
            done.append(
                subprocess.run(
                    command,
                    cwd=self.folder,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=TIMEOUT_S,
                    check=False,
                )
            )

        seconds = timed(run)
        proc = done[0]
        shown = " ".join(["egregora", *args])
        require(proc.returncode == 0, f"{shown} exited {proc.returncode}: {proc.stderr[-TAIL:]}")
        return seconds, proc.stdout

    def _sync(self, location: str) -> tuple[float, dict[str, Any]]:
        """``egregora git sync REPO --json`` on ``location``: its seconds and its result."""
        expected = self.expected
        assert expected is not None
        seconds, out = self._command(["git", "sync", str(self.repo), "--json"], location)
        result: dict[str, Any] = json.loads(out)
        require(
            result["repo_id"] == self.repo_id
            and result["commits"] == SPEC.commits
            and result["file_changes"] == expected.num_rows,
            f"git sync reported {result}; wanted {SPEC.commits} first-parent commits of "
            f"{self.repo_id}",
        )
        return seconds, result

    def _check_rows(self, location: str) -> None:
        """The database holds what a fresh full sync of the rewritten tip stores."""
        expected = self.expected
        assert expected is not None
        with self.dbs.open(location) as store:
            rows = _stored(store, self.repo_id)
            last = _last_synced(store, self.repo_id)
        require(last == self.rewritten, f"the database was synced at {last}")
        require(
            rows.equals(expected),
            f"git_commits differs from a fresh sync: {_difference(rows, expected)}",
        )

    def _database(self, build: Build | None = None) -> str:
        """A new database at head (filled by ``build``, if given), closed: one per command."""
        self.made += 1
        return self.dbs.template(f"resync{self.made}", build)

    def _synced_at_original(self) -> str:
        """A new database synced (in this process) while the branch is at its original tip;
        the branch is back at the rewritten tip when it returns."""
        repo = self.repo
        assert repo is not None

        def sync(store: Storage) -> None:
            result = sync_repository(store, repo)
            require(
                result.commits == result.new_commits == SPEC.commits and not result.rewritten,
                f"the sync at the original tip gave {result}",
            )

        _move_branch(repo, self.original)
        try:
            return self._database(sync)
        finally:
            _move_branch(repo, self.rewritten)

    # -- the sides ----------------------------------------------------------------------------
    def time_case(self) -> float:
        location = self._synced_at_original()
        try:
            seconds, result = self._sync(location)
            require(result["rewritten"] is True, f"the resync did not say rewritten: {result}")
            self._check_rows(location)
        finally:
            self.dbs.drop(location)
        self.read.append(int(result["new_commits"]))
        self._describe()
        return seconds

    def time_baseline(self) -> float:
        location = self._database()
        keep = False
        try:
            seconds, result = self._sync(location)
            require(
                result["new_commits"] == SPEC.commits and result["rewritten"] is False,
                f"a first sync reported {result}",
            )
            self._check_rows(location)
            keep = self.with_extras
        finally:
            if not keep:
                self.dbs.drop(location)
        if keep:
            self._forget_synced()
            self.synced = location
        return seconds

    def time_extras(self) -> dict[str, float]:
        if self.synced is None:
            return {}
        try:
            noop, result = self._sync(self.synced)
            require(
                result["new_commits"] == 0 and result["rewritten"] is False,
                f"a sync with nothing new reported {result}",
            )
        finally:
            self._forget_synced()
        version, _ = self._command(["--version"], None)
        return {
            "version_command": version,
            "noop_sync_command": noop,
            "resync_in_process": self._in_process(self._synced_at_original(), SPEC.commits),
            "full_sync_in_process": self._in_process(self._database(), 0),
        }

    def _in_process(self, location: str, synced: int) -> float:
        """``sync_repository`` in this process (imports done) on ``location``, where
        ``synced`` commits of the original tip are stored: the sync's own time."""
        repo = self.repo
        assert repo is not None
        try:
            with self.dbs.open(location) as store:
                results: list[SyncResult] = []
                seconds = timed(lambda: results.append(sync_repository(store, repo)))
            result = results[0]
            require(
                result.rewritten == bool(synced) and result.commits == SPEC.commits,
                f"the sync in this process gave {result}",
            )
            self._check_rows(location)
        finally:
            self.dbs.drop(location)
        return seconds

    def _forget_synced(self) -> None:
        if self.synced is not None:
            self.dbs.drop(self.synced)
        self.synced = None

    def close(self) -> None:
        self._forget_synced()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = self.repo = None
        self.expected = None
