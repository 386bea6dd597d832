"""``egregora db history``: every migration, applied or pending, edited or unknown."""

from __future__ import annotations

import dataclasses
import json

from typer.testing import CliRunner

from egregora import __version__
from egregora.cli.app import app
from egregora.migrations.engine import history
from egregora.migrations.registry import shipped_migrations
from egregora.storage import DatabaseURL
from egregora.storage.setup import open_executor
from tests.support import db_arg


def test_history_lists_applied_then_pending_migrations(url: DatabaseURL) -> None:
    shipped = shipped_migrations()
    half = shipped[len(shipped) // 2].id
    db = db_arg(url)
    migrated = CliRunner().invoke(app, ["db", "migrate", "--to", half, "--db", db])
    assert migrated.exit_code == 0, migrated.output
    done = CliRunner().invoke(app, ["db", "history", "--db", db, "--json"])
    assert done.exit_code == 0, done.output
    listed = json.loads(done.stdout)["migrations"]
    assert [m["id"] for m in listed] == [m.id for m in shipped]
    assert [m["description"] for m in listed] == [m.description for m in shipped]
    assert [m["state"] for m in listed] == [
        "applied" if m.id <= half else "pending" for m in shipped
    ]
    first = listed[0]
    assert first["applied_by"]["egregora_version"] == __version__ and first["duration_ms"] >= 0
    assert "applied_at" not in listed[-1]
    shown = CliRunner().invoke(app, ["db", "history", "--db", db]).output.splitlines()
    assert len(shown) == len(shipped)
    assert shown[0].startswith(f"{shipped[0].id}  applied") and "not applied" in shown[-1]


def test_history_names_edited_and_unknown_migrations(url: DatabaseURL) -> None:
    assert CliRunner().invoke(app, ["db", "init", "--db", db_arg(url)]).exit_code == 0
    shipped = shipped_migrations()
    edited = dataclasses.replace(shipped[1], source=shipped[1].source + b"\n# changed\n")
    chain = (shipped[0], edited, *shipped[2:-1])  # the last one unknown to this code
    with open_executor(url, write=False) as executor:
        states = {e.id: e.state for e in history(executor, migrations=chain)}
    assert states[shipped[1].id] == "edited" and states[shipped[-1].id] == "unknown"
    assert {states[m.id] for m in (shipped[0], *shipped[2:-1])} == {"applied"}
