"""Database paths that cannot be made: one line naming the path and the fix, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_a_database_under_a_file_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes").write_text("a file, not a folder\n")
    done = subprocess.run(
        [sys.executable, "-m", "egregora", "db", "init", "--db", "notes/sub/x.duckdb"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # no traceback
    assert "cannot create the database notes/sub/x.duckdb" in lines[0], lines[0]
    assert "Not a directory" in lines[0] and "--db" in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]  # nothing else was made
