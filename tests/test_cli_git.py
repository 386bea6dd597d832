"""``egregora git sync`` and ``egregora git resolve``: output, exit codes and CSV round trips."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from egregora.cli.app import app
from egregora.storage import DatabaseURL, Storage
from tests.support import db_arg

runner = CliRunner()
T0 = 1_700_000_000
# Paths a CSV must quote: a comma, a double quote, a newline, spaces and unicode.
TRICKY = ("a,b.md", 'say "hi".txt', "two\nlines.txt", "spaced name/ção.md")


def _git(repo: Path, *args: str, when: int = T0) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_DATE": f"@{when} +0000",
        "GIT_COMMITTER_DATE": f"@{when} +0000",
        "GIT_AUTHOR_NAME": "Ana",
        "GIT_AUTHOR_EMAIL": "ana@example.org",
        "GIT_COMMITTER_NAME": "Ana",
        "GIT_COMMITTER_EMAIL": "ana@example.org",
    }
    done = subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True)
    return done.stdout.decode().strip()


@pytest.fixture
def where(url: DatabaseURL) -> str:
    """The ``--db`` value of an empty database, on each engine."""
    return db_arg(url)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Two commits: every tricky path added at T0, the first one edited at T0 + 100."""
    root = tmp_path / "site"
    root.mkdir()
    _git(root, "-c", "init.defaultBranch=main", "init", "-q")
    for name in TRICKY:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name, encoding="utf-8")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "add")
    (root / TRICKY[0]).write_text("changed", encoding="utf-8")
    _git(root, "commit", "-q", "-am", "edit", when=T0 + 100)
    return root


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_sync_prints_its_summary_and_is_incremental(repo: Path, where: str) -> None:
    code, out, _ = _run("git", "sync", str(repo), "--db", where, "--json")
    first = json.loads(out)
    assert code == 0
    assert set(first) == {"ok", "repo_id", "commits", "file_changes", "new_commits", "rewritten"}
    assert (first["commits"], first["file_changes"], first["new_commits"]) == (2, 5, 2)
    assert first["rewritten"] is False
    code, out, _ = _run("git", "sync", str(repo), "--db", where, "--json")
    assert json.loads(out) == {**first, "new_commits": 0}


def test_sync_full_reads_the_whole_history_again_and_answers_the_same(
    repo: Path, where: str
) -> None:
    db = ("--db", where)
    first = json.loads(_run("git", "sync", str(repo), *db, "--json")[1])
    at = f"@{T0 + 100}"
    answers = [_run("git", "resolve", str(repo), name, at, *db) for name in TRICKY]
    # A cached answer: a plain resync that reads no commit keeps it, --full drops it.
    with Storage.open(where) as store:
        store.write("git_lookup_cache", [_cached(first["repo_id"])])
    stored = _commit_rows(where)
    code, out, _ = _run("git", "sync", str(repo), *db, "--json")
    assert code == 0 and json.loads(out) == {**first, "new_commits": 0}
    assert _cached_paths(where) == ["elsewhere.md"]
    code, out, _ = _run("git", "sync", str(repo), "--full", *db, "--json")
    assert code == 0
    assert json.loads(out) == first  # both commits read again, the same rows stored
    assert (first["new_commits"], first["rewritten"]) == (2, False)
    assert _commit_rows(where) == stored
    assert _cached_paths(where) == []
    assert [_run("git", "resolve", str(repo), name, at, *db) for name in TRICKY] == answers
    code, out, _ = _run("git", "sync", str(repo), "--full", *db)
    assert code == 0
    assert " ".join(out.split()) == (
        f"{first['repo_id']}: synced; 2 new commit(s) read, 2 on the first-parent history, "
        "5 file changes stored"
    )


def _cached(repo_id: str) -> dict[str, object]:
    at = datetime.fromtimestamp(T0 + 50, UTC)
    return {
        "repo_id": repo_id,
        "path": "elsewhere.md",
        "at": at,
        "resolved_at": at,
        "last_accessed_at": at,
        "hits": 0,
    }


def _commit_rows(where: str) -> list[dict[str, object]]:
    with Storage.open(where, read_only=True) as store:
        commits = store.table("git_commits")
        rows: list[dict[str, object]] = store.to_pyarrow(
            commits.order_by(["chain_seq", "path"])
        ).to_pylist()
    return rows


def _cached_paths(where: str) -> list[str]:
    with Storage.open(where, read_only=True) as store:
        cache = store.table("git_lookup_cache")
        return [str(p) for p in store.to_pyarrow(cache.order_by("path").path).to_pylist()]


def test_resolve_prints_the_commit_and_fails_clearly_before_the_first(
    repo: Path, where: str
) -> None:
    assert _run("git", "sync", str(repo), "--db", where)[0] == 0
    head = _git(repo, "rev-parse", "HEAD")
    first = _git(repo, "rev-parse", "HEAD~1")
    db = ("--db", where)
    assert _run("git", "resolve", str(repo), TRICKY[0], f"@{T0 + 100}", *db)[:2] == (0, head + "\n")
    iso = "2023-11-14T22:14:59+00:00"  # T0 + 99 s, written as ISO-8601
    assert _run("git", "resolve", str(repo), TRICKY[0], iso, *db)[:2] == (0, first + "\n")
    code, out, err = _run("git", "resolve", str(repo), TRICKY[0], f"@{T0 - 1}", *db)
    assert code == 1 and out == "" and "no commit changed" in err and err.count("\n") == 1
    code, out, _ = _run("git", "resolve", str(repo), TRICKY[1], f"@{T0}", *db, "--json")
    answer = json.loads(out)
    assert code == 0 and answer["commit_sha"] == first and answer["change_type"] == "A"
    assert answer["exists"] is True
    code, _, err = _run("git", "resolve", str(repo), TRICKY[0], "2023-11-14 22:00", *db)
    assert code == 2 and "no UTC offset" in err


def test_batch_resolve_round_trips_paths_csv_must_quote(
    repo: Path, where: str, tmp_path: Path
) -> None:
    assert _run("git", "sync", str(repo), "--db", where)[0] == 0
    head = _git(repo, "rev-parse", "HEAD")
    first = _git(repo, "rev-parse", "HEAD~1")
    probes = tmp_path / "probes.csv"
    with probes.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "at"])
        for name in TRICKY:
            writer.writerow([name, f"@{T0 + 100}"])
        writer.writerow(["never.md", f"@{T0 + 100}"])
        writer.writerow([TRICKY[0], f"@{T0 - 5}"])
    out = tmp_path / "answers.csv"
    code, printed, _ = _run(
        "git", "resolve", str(repo), "--batch", str(probes), "--out", str(out),
        "--db", where, "--json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(printed)["probes"] == 6 and json.loads(printed)["missing"] == 2
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
    assert [r["path"] for r in rows] == [*TRICKY, "never.md", TRICKY[0]]
    assert [r["commit_sha"] for r in rows] == [head, first, first, first, "", ""]
    assert [r["change_type"] for r in rows] == ["M", "A", "A", "A", "", ""]
    assert rows[0]["at"] == f"@{T0 + 100}"


def test_bad_input_names_the_fix(repo: Path, where: str, tmp_path: Path) -> None:
    code, _, err = _run("git", "sync", str(tmp_path / "nothing"), "--db", where)
    assert code == 1 and "does not exist" in err
    plain = tmp_path / "plain"
    plain.mkdir()
    code, _, err = _run("git", "sync", str(plain), "--db", where)
    assert code == 1 and "not inside a git repository" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    _git(empty, "init", "-q")
    code, _, err = _run("git", "sync", str(empty), "--db", where)
    assert code == 1 and "has no commits yet" in err
    code, _, err = _run("git", "sync", str(repo), "--ref", "nope", "--db", where)
    assert code == 1 and "'nope' is not a branch or tag" in err
    with Storage.open(where, read_only=True) as store:  # refused syncs wrote nothing
        for table in ("git_repos", "git_commits", "git_refs"):
            assert store.execute(store.table(table).count()) == 0, table
    assert _run("git", "sync", str(repo), "--db", where)[0] == 0
    code, _, err = _run("git", "resolve", "elsewhere", "a.md", "@1", "--db", where)
    assert code == 1 and "git sync" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("path,at\na.md,yesterday\n", encoding="utf-8")
    out = tmp_path / "answers.csv"
    code, _, err = _run(
        "git", "resolve", str(repo), "--batch", str(bad), "--out", str(out), "--db", where
    )
    assert code == 2 and "line 2" in err and not out.exists()
    code, _, err = _run("git", "resolve", str(repo), "--db", where)
    assert code == 2 and "--batch" in err


def test_show_prints_the_file_as_it_was(repo: Path, where: str) -> None:
    assert _run("git", "sync", str(repo), "--db", where)[0] == 0
    db = ("--db", where)
    assert _run("git", "show", str(repo), TRICKY[0], f"@{T0 + 99}", *db)[:2] == (0, TRICKY[0])
    assert _run("git", "show", str(repo), TRICKY[0], f"@{T0 + 100}", *db)[:2] == (0, "changed")
    code, out, err = _run("git", "show", str(repo), TRICKY[0], f"@{T0 - 1}", *db)
    assert code == 1 and out == "" and "did not exist yet" in err


def test_show_json_gives_the_answer_and_the_file(repo: Path, where: str) -> None:
    assert _run("git", "sync", str(repo), "--db", where)[0] == 0
    db = ("--db", where)
    code, out, _ = _run("git", "show", str(repo), TRICKY[0], f"@{T0 + 100}", *db, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["found_path"] == TRICKY[0] and shown["exists"] is True
    assert (shown["encoding"], shown["content"], shown["bytes"]) == ("utf-8", "changed", 7)
    resolved = json.loads(
        _run("git", "resolve", str(repo), TRICKY[0], f"@{T0 + 100}", *db, "--json")[1]
    )
    assert shown["commit_sha"] == resolved["commit_sha"]
    code, out, _ = _run("git", "show", str(repo), TRICKY[0], f"@{T0 - 1}", *db, "--json")
    assert code == 1 and json.loads(out)["ok"] is False
    assert "did not exist yet" in json.loads(out)["error"]["message"]


def test_show_json_gives_bytes_that_are_not_text_as_base64(tmp_path: Path, where: str) -> None:
    root = tmp_path / "bin"
    root.mkdir()
    _git(root, "-c", "init.defaultBranch=main", "init", "-q")
    (root / "card.png").write_bytes(b"\x89PNG\xff\x00")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "add")
    assert _run("git", "sync", str(root), "--db", where)[0] == 0
    code, out, _ = _run("git", "show", str(root), "card.png", f"@{T0 + 1}", "--db", where, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["encoding"] == "base64"
    assert base64.b64decode(shown["content"]) == b"\x89PNG\xff\x00"
