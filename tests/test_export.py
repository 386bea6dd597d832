"""``egregora export TABLE``: a table as a Parquet or CSV file, on either engine."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

from egregora.cli.app import app
from egregora.schema.catalog import CATALOG
from egregora.storage import Storage
from tests.conftest import Demo


def _export(demo: Demo, *args: str) -> Result:
    return CliRunner().invoke(app, ["export", *args, "--db", demo.db])


def _stored(demo: Demo, table: str) -> list[dict[str, object]]:
    with Storage.open(demo.db, read_only=True) as store:
        rows: list[dict[str, object]] = store.to_pyarrow(store.table(table)).to_pylist()
    return rows


@pytest.mark.parametrize("table", [t.name for t in CATALOG])
def test_every_table_exports_as_parquet_row_for_row(demo: Demo, table: str, tmp_path: Path) -> None:
    out = tmp_path / f"{table}.parquet"
    done = _export(demo, table, "--out", str(out), "--json")
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    written = pq.read_table(out)
    assert summary == {
        "ok": True,
        "table": table,
        "path": str(out),
        "format": "parquet",
        "rows": written.num_rows,
        "bytes": out.stat().st_size,
    }
    assert written.column_names == [c.name for c in CATALOG[table].columns]
    key = CATALOG[table].primary_key
    order = (lambda row: tuple(str(row[k]) for k in key)) if key else repr
    assert sorted(written.to_pylist(), key=order) == sorted(_stored(demo, table), key=order)


def test_csv_writes_lists_as_json_and_keeps_every_row(demo: Demo, tmp_path: Path) -> None:
    out = tmp_path / "documents.csv"
    done = _export(demo, "documents", "--format", "csv", "--out", str(out))
    assert done.exit_code == 0, done.output
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    stored = {r["id"]: r for r in _stored(demo, "documents")}
    assert len(rows) == len(stored) > 0
    for row in rows:
        authors = stored[row["id"]]["authors"]
        assert (json.loads(row["authors"]) if row["authors"] else None) == authors


def test_the_default_file_is_named_after_the_table_and_format(
    demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _export(demo, "messages", "--format", "csv").exit_code == 0
    assert [p.name for p in tmp_path.iterdir()] == ["messages.csv"]
    assert (tmp_path / "messages.csv").stat().st_mode & 0o044 == 0o044  # readable by others


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["nope"], "no table 'nope' in the catalog"),
        (["media_parts", "--format", "csv"], "which CSV cannot hold"),
        (["runs", "--out", "{tmp}/missing/runs.parquet"], "create it first"),
        (
            ["runs", "--out", "{tmp}/taken.parquet"],
            "exists; choose another --out, or pass --replace",
        ),
    ],
    ids=["unknown-table", "binary-as-csv", "no-folder", "existing-file"],
)
def test_refusals_write_nothing(demo: Demo, tmp_path: Path, args: list[str], said: str) -> None:
    taken = tmp_path / "taken.parquet"
    taken.write_bytes(b"mine")
    before = sorted(p.name for p in tmp_path.iterdir())
    done = _export(demo, *[a.format(tmp=tmp_path) for a in args], "--json")
    assert done.exit_code == 2, done.output
    assert said in json.loads(done.stdout.splitlines()[0])["error"]["message"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no draft, no file
    assert taken.read_bytes() == b"mine"


def test_replace_writes_over_an_existing_file(demo: Demo, tmp_path: Path) -> None:
    out = tmp_path / "runs.parquet"
    out.write_bytes(b"old")
    assert _export(demo, "runs", "--out", str(out), "--replace").exit_code == 0
    assert pq.read_table(out).num_rows == len(_stored(demo, "runs"))
