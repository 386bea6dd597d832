"""`egregora db verify --deep`: every row of every table read, so damaged data is found by the
check and not in the middle of a run.

The damaged databases are real DuckDB files whose bytes were flipped inside a table's data
blocks. DuckDB checksums each 256 KiB block when it reads it, and the schema check reads only
the catalog: plain `db verify` passes such a file (that is its limit), `--deep` does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import duckdb
import psycopg
import pytest
from psycopg import sql as pgsql
from typer.testing import CliRunner

from egregora.backends import DatabaseURL
from egregora.cli.app import app
from egregora.schema.catalog import CATALOG
from egregora.schema.tables.media import MEDIA_PART_BYTES, MEDIA_PARTS
from egregora.storage import Storage
from egregora.storage.integrity import BINARY_ROWS_PER_BATCH
from tests.support import copy_database, db_arg

runner = CliRunner()
# ibis 12 streams DuckDB results through a call DuckDB 1.5 deprecates; nothing of ours.
pytestmark = pytest.mark.filterwarnings("ignore:fetch_record_batch:DeprecationWarning")

# DuckDB's file: a header of three 4 KiB blocks, then blocks of 256 KiB, each checksummed.
HEADER_BYTES = 3 * 4096
BLOCK_BYTES = 256 * 1024
DAMAGED = ("messages", "runs")
START = datetime(2026, 1, 5, tzinfo=UTC)


def _runs(count: int) -> list[dict[str, Any]]:
    return [
        {
            "run_id": f"run-{i}",
            "stage": "ingest",
            "status": "failed",
            "started_at": START + timedelta(minutes=i),
            "error": secrets.token_hex(100),  # incompressible: the table spans many blocks
        }
        for i in range(count)
    ]


def _messages(count: int) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"ev-{i}",
            "source": "whatsapp",
            "thread_id": "group",
            "seq": i,
            "ts": START + timedelta(seconds=i),
            "kind": "text",
            "author_raw": "Ana",
            "author_uuid": "u1",
            "text": secrets.token_hex(100),
            "media_omitted": False,
        }
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory, empty_db: Path) -> Path:
    """A DuckDB file at the latest schema whose messages and runs span many blocks each."""
    path = copy_database(empty_db, tmp_path_factory.mktemp("filled") / "egregora.duckdb")
    with Storage.open(str(path)) as store:
        store.write("runs", _runs(20_000))
        store.write("messages", _messages(40_000))
    assert not Path(f"{path}.wal").exists()  # all of it in the file, checkpointed
    assert path.stat().st_size > 20 * BLOCK_BYTES
    return path


def _blocks(path: Path) -> dict[str, set[int]]:
    """The data blocks of each table (DuckDB's own account of where its segments lie)."""
    with duckdb.connect(str(path), read_only=True) as con:
        return {
            table.name: {
                row[0]
                for row in con.execute(
                    "SELECT DISTINCT block_id FROM pragma_storage_info(?) WHERE block_id >= 0",
                    [table.name],
                ).fetchall()
            }
            for table in CATALOG
        }


def _readable(path: Path, table: str) -> bool:
    with duckdb.connect(str(path), read_only=True) as con:
        try:
            con.table(table).fetchall()
        except duckdb.Error:
            return False
    return True


def _flip(path: Path, offset: int, count: int = 16) -> None:
    with path.open("r+b") as file:
        file.seek(offset)
        flipped = bytes(b ^ 0xFF for b in file.read(count))
        file.seek(offset)
        file.write(flipped)


def damage(path: Path, table: str) -> None:
    """Flip bytes in the middle of one of ``table``'s own data blocks (the one nearest the
    middle of the file; none shared with another table) so that reading ``table`` fails."""
    blocks = _blocks(path)
    others = set().union(*(ids for name, ids in blocks.items() if name != table))
    middle = path.stat().st_size // 2
    pristine = path.read_bytes()
    for block in sorted(blocks[table] - others, key=lambda b: abs(b * BLOCK_BYTES - middle)):
        _flip(path, HEADER_BYTES + block * BLOCK_BYTES + BLOCK_BYTES // 2)
        if not _readable(path, table):
            return
        path.write_bytes(pristine)  # that spot held no data: try the next block
    pytest.fail(f"no block of {table} fails to read after flipping its middle bytes")


@pytest.fixture
def damaged(filled: Path, tmp_path: Path) -> Path:
    path = copy_database(filled, tmp_path / "egregora.duckdb")
    for table in DAMAGED:
        damage(path, table)
    return path


def _egregora(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "egregora", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "80"},
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_plain_verify_passes_damaged_data_deep_names_each_damaged_table(damaged: Path) -> None:
    before = _digest(damaged)
    # The schema check reads the catalog only: flipped data bytes pass it (its known limit).
    plain = _egregora("db", "verify", "--db", str(damaged))
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "matches the catalog" in plain.stdout

    deep = _egregora("db", "verify", "--deep", "--db", str(damaged))
    assert deep.returncode == 1, deep.stdout + deep.stderr
    assert "Traceback" not in deep.stdout + deep.stderr
    assert deep.stderr == ""
    lines = deep.stdout.splitlines()
    damage_lines = [line for line in lines if line.startswith("  - ")]
    assert len(damage_lines) == len(DAMAGED), deep.stdout  # one line per damaged table
    for table, line in zip(sorted(DAMAGED), sorted(damage_lines), strict=True):
        assert line.startswith(f"  - {table}: "), line
        assert "checksum" in line, line  # the engine's own message
    assert "2 table(s) could not be read whole" in deep.stdout
    assert "pseudonym_keys 1" in deep.stdout  # the healthy ones, with their rows

    assert _digest(damaged) == before  # verify changes nothing, not even one byte
    assert not Path(f"{damaged}.wal").exists()


def test_deep_json_reports_the_damage_and_the_healthy_tables_rows(damaged: Path) -> None:
    before = _digest(damaged)
    done = _egregora("db", "verify", "--deep", "--json", "--db", str(damaged))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr == ""
    payload = json.loads(done.stdout)  # one JSON object, nothing else on stdout
    assert payload["ok"] is False
    assert payload["differences"] == []
    assert sorted(d["table"] for d in payload["damaged"]) == sorted(DAMAGED)
    assert all("Corrupt database file" in d["error"] for d in payload["damaged"])
    healthy = {t.name for t in CATALOG} - set(DAMAGED)
    assert set(payload["rows"]) == healthy
    assert payload["rows"]["pseudonym_keys"] == 1
    assert payload["rows"]["schema_migrations"] > 0
    assert _digest(damaged) == before


def test_deep_reads_a_multi_block_file_whole_when_nothing_is_damaged(filled: Path) -> None:
    before = _digest(filled)
    result = runner.invoke(app, ["db", "verify", "--deep", "--json", "--db", str(filled)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ok"] is True and payload["damaged"] == []
    assert payload["rows"]["messages"] == 40_000 and payload["rows"]["runs"] == 20_000
    assert _digest(filled) == before


def _parts(count: int) -> list[dict[str, Any]]:
    digest = hashlib.sha256(b"a file").hexdigest()
    return [{"digest": digest, "part": i, "content": os.urandom(64 * 1024)} for i in range(count)]


def test_deep_passes_a_healthy_database_on_each_engine(
    new_url: Callable[[], DatabaseURL],
) -> None:
    url = new_url()
    parts = BINARY_ROWS_PER_BATCH * 2 + 3  # media parts are read a few at a time
    with Storage.open(db_arg(url)) as store:
        store.write("runs", _runs(30))
        store.write("messages", _messages(120))
        store.write(MEDIA_PARTS.name, _parts(parts))
        counts = {t.name: int(store.execute(store.table(t.name).count())) for t in CATALOG}
    assert counts["media_parts"] == parts and counts["messages"] == 120

    result = runner.invoke(app, ["db", "verify", "--deep", "--json", "--db", db_arg(url)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload == {"ok": True, "differences": [], "damaged": [], "rows": counts}

    human = runner.invoke(app, ["db", "verify", "--deep", "--db", db_arg(url)])
    assert human.exit_code == 0, human.output
    assert f"read every row of {len(CATALOG)} tables" in human.stdout
    assert "messages 120" in human.stdout and f"media_parts {parts}" in human.stdout


def test_plain_verify_reads_no_rows(damaged: Path) -> None:
    """Without --deep the output and the JSON keys are those of the schema check alone."""
    result = runner.invoke(app, ["db", "verify", "--json", "--db", str(damaged)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"ok": True, "differences": []}


_READ_AND_MEASURE = """
import json, resource, sys
from egregora.backends import DatabaseURL
from egregora.storage import Storage
from egregora.storage.integrity import read_every_row

def peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

with Storage.open(sys.argv[1], read_only=True) as store:  # every library loaded and used once
    table = store.table("media_parts")
    store.ibis.to_pyarrow_batches(table.limit(1)).read_all()
before = peak()
rows = read_every_row(DatabaseURL.parse(sys.argv[1])).to_dict()["rows"]
print(json.dumps({"grew": peak() - before, "parts": rows["media_parts"]}))
"""


def test_reading_media_parts_holds_a_few_parts_not_the_table(pg_url: DatabaseURL) -> None:
    """Media parts are 4 MiB each on the engine that keeps media in the database: reading
    120 MiB of them grows the process by much less than the table."""
    digest = hashlib.sha256(b"a video").hexdigest()
    with Storage.open(db_arg(pg_url)) as store:
        store.ensure_schema()
        for first in range(0, 30, 5):
            store.write(
                MEDIA_PARTS.name,
                [
                    {"digest": digest, "part": i, "content": os.urandom(MEDIA_PART_BYTES)}
                    for i in range(first, first + 5)
                ],
            )
    done = subprocess.run(
        [sys.executable, "-c", _READ_AND_MEASURE, db_arg(pg_url)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout)
    assert measured["parts"] == 30
    # Read whole, the table would cost several times its 120 MiB (16 parts at once: 300 MiB).
    assert measured["grew"] < 30 * MEDIA_PART_BYTES * 3 // 4, measured


def test_each_table_is_read_on_its_own_after_another_fails(pg_url: DatabaseURL) -> None:
    """An engine's error stops one table's reading, not the others' (here a role that may
    not read runs: the server refuses that table alone)."""
    with Storage.open(db_arg(pg_url)) as store:
        store.ensure_schema()
        store.write("runs", _runs(3))
        store.write("messages", _messages(5))
    parts = urlsplit(db_arg(pg_url))
    schema = parse_qs(parts.query)["options"][0].split("=", 1)[1]
    role = f"egregora_reader_{secrets.token_hex(6)}"
    with psycopg.connect(urlunsplit(parts._replace(query="")), autocommit=True) as admin:
        admin.execute(pgsql.SQL("CREATE ROLE {} LOGIN").format(pgsql.Identifier(role)))
        try:
            admin.execute(
                pgsql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                    pgsql.Identifier(schema), pgsql.Identifier(role)
                )
            )
            for table in CATALOG:
                if table.name != "runs":
                    admin.execute(
                        pgsql.SQL("GRANT SELECT ON {} TO {}").format(
                            pgsql.Identifier(schema, table.name), pgsql.Identifier(role)
                        )
                    )
            reader = urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))
            result = runner.invoke(app, ["db", "verify", "--deep", "--json", "--db", reader])
        finally:
            admin.execute(pgsql.SQL("DROP OWNED BY {}").format(pgsql.Identifier(role)))
            admin.execute(pgsql.SQL("DROP ROLE {}").format(pgsql.Identifier(role)))
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    assert payload["differences"] == []  # the schema check needs no right to read rows
    assert [d["table"] for d in payload["damaged"]] == ["runs"]
    assert "permission denied" in payload["damaged"][0]["error"]
    assert payload["rows"]["messages"] == 5 and len(payload["rows"]) == len(CATALOG) - 1
