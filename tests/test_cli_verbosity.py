"""``egregora -q`` prints nothing but errors; ``egregora -v`` prints each step and tracebacks."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from egregora.cli.app import app
from egregora.runner.demo import TIMEZONE, sample_export
from tests.support import egregora_process


def _egregora(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return egregora_process(*args, cwd=cwd)


def test_quiet_prints_nothing_but_json_and_errors(tmp_path: Path) -> None:
    export = sample_export(tmp_path / "export")
    done = _egregora("-q", "run", str(export), "--tz", TIMEZONE, "--db", "q.duckdb", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")  # no summary, no progress bars
    loud = _egregora("run", str(export), "--tz", TIMEZONE, "--db", "q.duckdb", cwd=tmp_path)
    assert "documents:" in loud.stdout  # the summary the quiet run did not print
    shown = _egregora("-q", "runs", "list", "--db", "q.duckdb", "--json", cwd=tmp_path)
    assert json.loads(shown.stdout)["ok"] is True
    refused = _egregora("-q", "run", "missing.zip", "--db", "q.duckdb", cwd=tmp_path)
    assert refused.returncode == 2 and "missing.zip does not exist" in refused.stderr


def test_verbose_prints_each_step_and_the_traceback_of_an_error(tmp_path: Path) -> None:
    export = sample_export(tmp_path / "export")
    done = _egregora("-v", "run", str(export), "--tz", TIMEZONE, "--db", "v.duckdb", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "ingest: parsing messages" in done.stderr and "ingest: writing" in done.stderr
    refused = _egregora("-v", "run", "missing.zip", "--db", "v.duckdb", cwd=tmp_path)
    assert refused.returncode == 2
    assert "Traceback" in refused.stderr and "ExportFileError" in refused.stderr
    assert refused.stderr.rstrip().splitlines()[-1].startswith("error: missing.zip")
    plain = _egregora("run", "missing.zip", "--db", "v.duckdb", cwd=tmp_path)
    assert "Traceback" not in plain.stderr


def test_quiet_and_verbose_together_are_a_usage_error() -> None:
    done = CliRunner().invoke(app, ["-q", "-v", "runs", "list", "--json"])
    assert done.exit_code == 2
    assert json.loads(done.stdout)["error"]["message"] == "give --quiet or --verbose, not both"
