"""``egregora git``: sync a repository's history, then ask which version was current when."""

from __future__ import annotations

import csv
import io
import sys
from base64 import b64encode
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from egregora.cli.output import DbOption, JsonOption, console, emit_json, fail, reported_errors
from egregora.errors import ConfigurationError, MissingVersionError

if TYPE_CHECKING:
    from egregora.git import GitHistoryResolver

app = typer.Typer(help="The git time machine: which version of a file was current at time T.")

RefOption = Annotated[
    str | None,
    typer.Option("--ref", help="Branch or tag whose history is tracked (default: HEAD's branch)."),
]
FollowOption = Annotated[
    bool, typer.Option("--follow", help="Continue a renamed path's history into its old name.")
]
CSV_FIELDS = ("path", "at", "commit_sha", "change_type")


@app.command()
def sync(
    repo: Annotated[Path, typer.Argument(help="A path inside the git repository.")],
    ref: RefOption = None,
    full: Annotated[
        bool, typer.Option("--full", help="Read the whole history again and replace it.")
    ] = False,
    no_line_counts: Annotated[
        bool,
        typer.Option(
            "--no-line-counts",
            help="Store no added/deleted line counts: git reads no file contents but those "
            "rename detection compares (a partial clone syncs without fetching every file).",
        ),
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Read the ref's first-parent history into the database (only new commits after the first)."""
    from egregora.git import sync_repository
    from egregora.storage.store import Storage

    counts = not no_line_counts
    with reported_errors(as_json), Storage.open(db) as store:
        store.ensure_schema()
        if as_json:
            result = sync_repository(store, repo, ref, full=full, line_counts=counts)
        else:
            with console.status(f"reading the history of {repo}"):
                result = sync_repository(store, repo, ref, full=full, line_counts=counts)
    if as_json:
        emit_json(result.to_dict())
        return
    what = "rewritten history re-synced" if result.rewritten else "synced"
    console.print(
        f"{result.repo_id}: {what}; {result.new_commits} new commit(s) read, "
        f"{result.commits} on the first-parent history, {result.file_changes} file changes stored",
        highlight=False,
    )


@app.command()
def resolve(
    repo: Annotated[str, typer.Argument(help="A synced repository: its path or its repo_id.")],
    path: Annotated[str | None, typer.Argument(help="The file's path in the repository.")] = None,
    at: Annotated[
        str | None,
        typer.Argument(help="ISO-8601 time with an offset, or @UNIX_SECONDS (as git accepts)."),
    ] = None,
    batch: Annotated[
        Path | None,
        typer.Option("--batch", help="CSV file with columns path,at: answer every row at once."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="With --batch: write the answers here instead of stdout."),
    ] = None,
    ref: RefOption = None,
    follow: FollowOption = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the commit that last changed PATH at or before AT (git log -1 --before=AT -- PATH)."""
    from egregora.git import GitHistoryResolver, parse_at
    from egregora.storage.store import Storage

    with reported_errors(as_json):
        if batch is None and (path is None or at is None):
            raise ConfigurationError("give PATH and AT, or --batch probes.csv")
        if batch is not None and (path is not None or at is not None):
            raise ConfigurationError("give either PATH and AT or --batch, not both")
        when = parse_at(at) if at is not None else None  # refused before the database opens
        with Storage.open(db, read_only=True) as store:
            resolver = GitHistoryResolver(store)
            repo_id = resolver.repo_id(repo, ref)
            if batch is not None:
                _resolve_batch(resolver, repo_id, batch, out, follow, as_json)
                return
            assert path is not None and when is not None
            answer = resolver.resolve(repo_id, path, when, follow_renames=follow)
    if as_json:
        emit_json({"ok": answer.commit_sha is not None, "repo_id": repo_id, **answer.to_dict()})
    if answer.commit_sha is None:
        fail(f"no commit changed {path!r} at or before {at}; it did not exist yet", code=1)
    if not as_json:
        typer.echo(answer.commit_sha)
        if answer.change_type == "D":
            console.print(f"note: that commit deleted {answer.found_path}", highlight=False)


@app.command()
def show(
    repo: Annotated[str, typer.Argument(help="A synced repository: its path or its repo_id.")],
    path: Annotated[str, typer.Argument(help="The file's path in the repository.")],
    at: Annotated[str, typer.Argument(help="ISO-8601 time with an offset, or @UNIX_SECONDS.")],
    ref: RefOption = None,
    follow: FollowOption = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print PATH as it was at AT (exit 1 when it did not exist then)."""
    from egregora.git import GitHistoryResolver, parse_at
    from egregora.git.repository import file_at
    from egregora.storage.store import Storage

    with reported_errors(as_json):
        when = parse_at(at)  # refused before the database opens
        with Storage.open(db, read_only=True) as store:
            resolver = GitHistoryResolver(store)
            repo_id = resolver.repo_id(repo, ref)
            answer = resolver.resolve(repo_id, path, when, follow_renames=follow)
            if not answer.exists or answer.commit_sha is None or answer.found_path is None:
                why = "was deleted by then" if answer.commit_sha else "did not exist yet"
                raise MissingVersionError(f"{path!r} {why} at {at}; nothing to show")
            content = file_at(store, repo_id, answer.commit_sha, answer.found_path)
    if as_json:
        emit_json({"repo_id": repo_id, **answer.to_dict(), **_as_text(content)})
        return
    sys.stdout.buffer.write(content)
    sys.stdout.flush()


def _as_text(content: bytes) -> dict[str, str | int]:
    """A file's bytes for a JSON object: as text when they are UTF-8, else base64."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return {"bytes": len(content), "encoding": "base64", "content": b64encode(content).decode()}
    return {"bytes": len(content), "encoding": "utf-8", "content": text}


def _resolve_batch(
    resolver: GitHistoryResolver,
    repo_id: str,
    batch: Path,
    out: Path | None,
    follow: bool,
    as_json: bool,
) -> None:
    import pyarrow as pa

    paths, stamps, texts = _read_probes(batch)
    probes = pa.table({"path": pa.array(paths, pa.string()), "at": pa.array(stamps)})
    answers = resolver.resolve_many(repo_id, probes, follow_renames=follow)
    shas = answers["commit_sha"].to_pylist()
    changes = answers["change_type"].to_pylist()
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for row in zip(paths, texts, shas, changes, strict=True):
        writer.writerow(["" if v is None else v for v in row])
    if out is not None:
        out.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    elif not as_json:
        sys.stdout.write(buffer.getvalue())
    if as_json:
        found = sum(s is not None for s in shas)
        emit_json(
            {
                "repo_id": repo_id,
                "probes": len(paths),
                "resolved": found,
                "missing": len(paths) - found,
                "out": str(out) if out is not None else None,
            }
        )


def _read_probes(batch: Path) -> tuple[list[str], list[object], list[str]]:
    from egregora.git import parse_at

    try:
        text = batch.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read {batch}: {exc}; pass a UTF-8 CSV file") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None or not {"path", "at"} <= set(reader.fieldnames):
        raise ConfigurationError(f"{batch} needs a header with columns path and at")
    paths: list[str] = []
    stamps: list[object] = []
    texts: list[str] = []
    for line, row in enumerate(reader, start=2):
        try:
            stamps.append(parse_at(row["at"] or ""))
        except ConfigurationError as exc:
            raise ConfigurationError(f"{batch}, line {line}: {exc}") from None
        paths.append(row["path"] or "")
        texts.append(row["at"] or "")
    return paths, stamps, texts
