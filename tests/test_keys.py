"""Keyed pseudonyms: one secret per database, agreement only by choice, and rekeys that keep a
database's documents and pages consistent (DuckDB, and PostgreSQL when a server is named)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from egregora.cli.app import app
from egregora.ddl import statements as sql
from egregora.errors import ConfigurationError, MigrationError
from egregora.etl import ingest_export
from egregora.migrations.executor import DuckDBExecutor, Executor
from egregora.migrations.keyed import read_key
from egregora.pseudonyms import ENV, Pseudonyms, key_id
from egregora.runner import RunOptions, run_pipeline
from egregora.runner.demo import TIMEZONE, sample_export
from egregora.runner.rekey import rekey_database
from egregora.storage import DatabaseURL, Storage, migrate_database
from egregora.storage.setup import open_executor
from tests.samples import valid_rows
from tests.support import SHARED_KEY, copy_database, insert_sql, mkdocs_build

runner = CliRunner()
FIXTURES = Path(__file__).parent / "fixtures" / "whatsapp"
OTHER_KEY = "0ddba11" + "0" * 57


@pytest.fixture(autouse=True)
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key from the environment unless a test gives one."""
    monkeypatch.delenv(ENV, raising=False)


def authors(db: Path) -> dict[str, str]:
    with Storage.open(str(db), read_only=True) as store:
        rows = store.to_pyarrow(store.table("messages").select("author_raw", "author_uuid"))
    return {r["author_raw"]: r["author_uuid"] for r in rows.to_pylist() if r["author_raw"]}


def ingest_fresh(folder: Path) -> Path:
    db = folder / "egregora.duckdb"
    with Storage.open(str(db)) as store:
        store.ensure_schema()
        ingest_export(store, FIXTURES / "family_short.txt", tz="UTC", thread="Family")
    return db


def test_fresh_databases_without_a_key_do_not_agree(tmp_path: Path) -> None:
    first, second = ingest_fresh(tmp_path / "a"), ingest_fresh(tmp_path / "b")
    a, b = authors(first), authors(second)
    assert set(a) == set(b) and len(a) == 3
    assert not set(a.values()) & set(b.values())
    for db in (first, second):
        with Storage.open(str(db), read_only=True) as store:
            stored = read_key(_executor(store))
        assert stored is not None and stored.origin == "generated"


def test_databases_given_the_same_key_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, SHARED_KEY)
    first, second = ingest_fresh(tmp_path / "a"), ingest_fresh(tmp_path / "b")
    assert authors(first) == authors(second)
    expected = Pseudonyms(bytes.fromhex(SHARED_KEY))
    assert authors(first) == {n: expected.author("whatsapp", "family", n) for n in authors(first)}
    shown = runner.invoke(app, ["db", "key", "--db", str(first), "--json"])
    assert shown.exit_code == 0, shown.output
    described = json.loads(shown.stdout)
    assert described["key_id"] == key_id(bytes.fromhex(SHARED_KEY)) and "secret" not in described
    assert described["origin"] == "given"
    revealed = runner.invoke(app, ["db", "key", "--reveal", "--db", str(first), "--json"])
    assert json.loads(revealed.stdout)["secret"] == SHARED_KEY


def test_a_key_that_is_not_the_databases_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = ingest_fresh(tmp_path)
    before = authors(db)
    monkeypatch.setenv(ENV, OTHER_KEY)
    with (
        Storage.open(str(db)) as store,
        pytest.raises(ConfigurationError, match="egregora db rekey"),
    ):
        ingest_export(store, FIXTURES / "family_long.txt", tz="UTC", thread="Family")
    assert authors(db) == before
    result = runner.invoke(app, ["ingest", str(FIXTURES / "family_long.txt"), "--db", str(db)])
    assert result.exit_code != 0 and "egregora db rekey" in result.output
    monkeypatch.setenv(ENV, "not hex")
    result = runner.invoke(app, ["ingest", str(FIXTURES / "family_long.txt"), "--db", str(db)])
    assert result.exit_code != 0 and "hexadecimal digits" in result.output


# -- a rekey keeps documents and pages consistent -------------------------------------------
def site_files(site: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(site)): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()
    }


def documents(db: Path) -> list[dict[str, Any]]:
    with Storage.open(str(db), read_only=True) as store:
        table = store.table("documents").drop("created_by_run").order_by("id")
        return list(store.to_pyarrow(table).to_pylist())


def run_demo(folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    export = sample_export(folder)
    with Storage.open(str(folder / "egregora.duckdb")) as store:
        store.ensure_schema()
        summary = run_pipeline(store, export, RunOptions(tz=TIMEZONE, site=folder / "site"))
    return summary.summary()


def test_a_rekeyed_database_keeps_its_documents_and_pages_consistent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rekeyed = tmp_path / "rekeyed"
    run_demo(rekeyed)  # a random key
    db = rekeyed / "egregora.duckdb"
    old = documents(db)
    old_members = {a for d in old for a in d["authors"] or []}
    # A page the user edited is theirs: a rekey renames its page, but leaves the edited one.
    edited = next((rekeyed / "site" / "docs" / "profiles").glob("*-*.md"))
    edited.write_text("my notes\n", encoding="utf-8")
    monkeypatch.setenv(ENV, SHARED_KEY)
    result = runner.invoke(app, ["db", "rekey", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    assert done["key_id"] == key_id(bytes.fromhex(SHARED_KEY)) and done["origin"] == "given"
    assert done["threads"] == 1 and done["members"] >= len(old_members)
    # Nothing is left to remake: every document was moved to the new key as it is.
    again = run_demo(rekeyed)
    assert again["new_documents"] == 0 and again["cards_rendered"] == 0
    # A database given the same key from the start holds the same documents and site.
    fresh = tmp_path / "fresh"
    run_demo(fresh)
    assert documents(db) == documents(fresh / "egregora.duckdb")
    assert edited.read_text(encoding="utf-8") == "my notes\n"
    edited.unlink()
    assert site_files(rekeyed / "site") == site_files(fresh / "site")
    # No old pseudonym is left anywhere, and the pages' links all lead somewhere.
    text = "\n".join(c.decode("utf-8", "replace") for c in site_files(rekeyed / "site").values())
    assert not any(member in text for member in old_members)
    assert not any(f"member-{member[:8]}" in text for member in old_members)
    assert mkdocs_build(rekeyed / "site", tmp_path / "built")


def test_a_document_of_an_older_recipe_is_made_again(tmp_path: Path, empty_db: Path) -> None:
    db = copy_database(empty_db, tmp_path / "egregora.duckdb")
    options = RunOptions(tz="UTC", thread="Family")
    with Storage.open(str(db)) as store:
        first = run_pipeline(store, FIXTURES / "family_short.txt", options)
        made = store.to_pyarrow(store.table("documents")).to_pylist()
        store.con.execute(
            "UPDATE documents SET extensions = json_object('thread', "
            "extensions->>'thread') WHERE doc_type = 'journal'"
        )
        again = run_pipeline(store, FIXTURES / "family_short.txt", options)
        remade = store.to_pyarrow(store.table("documents")).to_pylist()
    assert first.windows_written == again.windows_written == first.windows
    assert len(remade) == len(made)  # made again in place, not beside


# -- migration 0008 and rekeys, on both engines ---------------------------------------------
def legacy(thread_id: str, name: str) -> str:
    """The pseudonym before migration 0008: UUID5 of public inputs, which anyone can compute."""
    namespace = uuid.UUID("6f1c4a52-8f0e-5b7a-9d0c-3e2b1a4f5c6d")
    return str(uuid.uuid5(namespace, f"whatsapp\x1f{thread_id}\x1f{name}"))


ANA, BIA = legacy("family", "Ana Sousa"), legacy("family", "Bia Costa")
T = datetime(2024, 3, 14, 10, tzinfo=UTC)


def rows_at_0007() -> dict[str, list[dict[str, Any]]]:
    """What a database at 0007 held after a run: pseudonyms of the old recipe, documents
    labelled with the thread's id."""
    ext = {"thread_id": "family"}
    message = {"source": "whatsapp", "thread_id": "family", "ts": T, "kind": "text"}
    return {
        "messages": [
            dict(message, event_id="e1", seq=0, author_raw="Ana Sousa", author_uuid=ANA, text="oi"),
            dict(
                message, event_id="e2", seq=1, author_raw="Bia Costa", author_uuid=BIA, text="@Ana"
            ),
            dict(message, event_id="e3", seq=2, kind="system", text="Ana Sousa added Bia Costa"),
        ],
        "documents": [
            {
                "id": "journal-family-2024-03-14",
                "doc_type": "journal",
                "created_at": T,
                "title": "Journal",
                "content": f"- member-{ANA[:8]}: 1 message\n- member-{BIA[:8]}: 1 message\n",
                "authors": [ANA, BIA],
                "window_start": T,
                "window_end": T + timedelta(days=1),
                "window_signature": "sig",
                "extensions": json.dumps(
                    {**ext, "post_id": "post-family-2024-03-14", "per_author": {ANA: 1, BIA: 1}}
                ),
            },
            {
                "id": "post-family-2024-03-14",
                "doc_type": "post",
                "created_at": T,
                "title": "Oi",
                "slug": "family-2024-03-14",
                "status": "published",
                "date": T.date(),
                "content": f"> oi\n>\n> — member-{ANA[:8]}, 10:00\n",
                "authors": [ANA, BIA],
                "extensions": json.dumps({**ext, "journal_id": "journal-family-2024-03-14"}),
            },
            {
                "id": f"profile-family-{ANA}",
                "doc_type": "profile",
                "created_at": T,
                "title": f"member-{ANA[:8]}",
                "subject_uuid": ANA,
                "authors": [ANA],
                "extensions": json.dumps(ext),
            },
            {
                "id": "media-1",
                "doc_type": "media",
                "created_at": T,
                "filename": "IMG-1.jpg",
                "media_type": "image",
                "extensions": json.dumps(
                    {**ext, "journal_id": "journal-family-2024-03-14", "path": "media/x.jpg"}
                ),
            },
        ],
        "annotations": [
            {
                "annotation_id": "a1",
                "document_id": "journal-family-2024-03-14",
                "author": "editor",
                "content": "check",
                "created_at": T,
            }
        ],
        "tasks": [
            dict(
                valid_rows()["tasks"][0],
                run_id=None,
                task_type="profile",
                payload=json.dumps({"thread_id": "family", "author_uuid": ANA}),
                dedupe_key=f"profile:family:{ANA}:sig",
            )
        ],
    }


def _executor(store: Storage) -> Executor:
    return DuckDBExecutor(store.con)


def read(url: DatabaseURL, table: str, columns: list[str]) -> list[dict[str, Any]]:
    with open_executor(url, write=False) as executor:
        found = executor.query(
            sql.select_rows(table, columns, executor.dialect, order_by=[columns[0]])
        )
    rows = [dict(zip(columns, r, strict=True)) for r in found]
    for row in rows:
        for name in ("extensions", "payload"):
            if isinstance(row.get(name), str):
                row[name] = json.loads(row[name])
    return rows


def check_keyed(url: DatabaseURL, keyed: Pseudonyms, old_ana: str, old_label: str) -> None:
    """Every pseudonym the database stores is ``keyed``'s; none of ``old_ana``'s is left."""
    label = keyed.thread("whatsapp", "family")
    ana, bia = (keyed.author("whatsapp", "family", n) for n in ("Ana Sousa", "Bia Costa"))
    messages = read(url, "messages", ["event_id", "author_uuid"])
    assert [m["author_uuid"] for m in messages] == [ana, bia, None]
    docs = {
        d["id"]: d
        for d in read(url, "documents", ["id", "slug", "title", "content", "authors", "extensions"])
    }
    journal, post = f"journal-{label}-2024-03-14", f"post-{label}-2024-03-14"
    assert set(docs) == {journal, post, f"profile-{label}-{ana}", "media-1"}
    assert docs[journal]["authors"] == [ana, bia]
    assert f"member-{ana[:8]}: 1 message" in docs[journal]["content"]
    assert docs[journal]["extensions"]["per_author"] == {ana: 1, bia: 1}
    assert docs[journal]["extensions"]["post_id"] == post
    assert docs[post]["slug"] == f"{label}-2024-03-14"
    assert docs[post]["extensions"]["journal_id"] == journal
    assert docs[f"profile-{label}-{ana}"]["title"] == f"member-{ana[:8]}"
    assert docs["media-1"]["extensions"]["journal_id"] == journal
    assert all(d["extensions"]["thread"] == label for d in docs.values())
    assert not any("thread_id" in d["extensions"] for d in docs.values())
    everything = json.dumps([list(docs.values()), messages], default=str)
    assert old_ana not in everything and f"member-{old_ana[:8]}" not in everything
    assert f"{old_label}-" not in everything
    (note,) = read(url, "annotations", ["annotation_id", "document_id"])
    assert note["document_id"] == journal
    (task,) = read(url, "tasks", ["task_id", "payload", "dedupe_key"])
    assert task["payload"]["author_uuid"] == ana and ana in task["dedupe_key"]


def test_migration_0008_keys_a_database_and_a_rekey_moves_it_again(
    url: DatabaseURL, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate_database(url, target="0007")
    with open_executor(url, write=True) as executor:
        executor.begin()
        for table, rows in rows_at_0007().items():
            for row in rows:
                executor.execute(insert_sql(table, row, executor.dialect), list(row.values()))
        executor.commit()
    monkeypatch.setenv(ENV, SHARED_KEY)
    assert migrate_database(url, target="0008").applied == ("0008",)
    first = Pseudonyms(bytes.fromhex(SHARED_KEY))
    check_keyed(url, first, ANA, "family")
    with pytest.raises(MigrationError, match="run `egregora db migrate` first"):
        rekey_database(url)  # a rekey works on the latest schema only
    migrate_database(url)
    # A rekey (to a new random key: the environment's is the database's already) moves every
    # pseudonym again, in one transaction.
    monkeypatch.delenv(ENV)
    moved = rekey_database(url)
    assert moved.old_key_id == first.key_id and moved.origin == "generated"
    with open_executor(url, write=False) as executor:
        stored = read_key(executor)
    assert stored is not None and stored.key_id == moved.key_id != first.key_id
    check_keyed(
        url,
        stored.pseudonyms,
        first.author("whatsapp", "family", "Ana Sousa"),
        first.thread("whatsapp", "family"),
    )
    # Rekeying to the key it has changes nothing.
    same = rekey_database(url, stored.secret)
    assert (same.key_id, same.members) == (stored.key_id, 0)
    check_keyed(
        url,
        stored.pseudonyms,
        first.author("whatsapp", "family", "Ana Sousa"),
        first.thread("whatsapp", "family"),
    )
