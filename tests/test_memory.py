"""Peak memory of an ingest, through the command line: bounded by the export's messages at a
few hundred bytes each, and not by the size of its media files, which are streamed.

Each ingest runs in a child process that reports its own peak resident size when it exits
(``VmHWM``, the high-water mark of its own memory; ``ru_maxrss`` would not do: Linux carries it
across ``exec`` from the parent, here the test run itself).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.etl import export

from tests.conftest import Place

LIMIT_MB = 450
# The command line, run in this process so that its peak is its own.
_CHILD = """
import atexit, sys
def peak():
    with open("/proc/self/status") as status:
        found = [line.split()[1] for line in status if line.startswith("VmHWM:")]
    print("peak", found[0], file=sys.stderr)
atexit.register(peak)
from egregora.cli.app import main
sys.argv = ["egregora", *sys.argv[1:]]
main()
"""


def ingest_peak_mb(path: Path, db: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, "ingest", str(path), "--db", db, "--tz", "UTC"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    peak = [line for line in done.stderr.splitlines() if line.startswith("peak ")]
    return int(peak[-1].split()[1]) / 1024  # VmHWM is in KiB


def test_an_ingest_of_250000_messages_peaks_under_450_mb(tmp_path: Path) -> None:
    chat = Path(export(250_000).path)
    peak = ingest_peak_mb(chat, str(tmp_path / "x.duckdb"))
    assert peak <= LIMIT_MB, f"{peak:.0f} MB"


def video_export(folder: Path, megabytes: int) -> Path:
    """A zip whose chat sends one video of ``megabytes`` random MiB (stored, as phones do)."""
    path = folder / f"WhatsApp Chat with Video {megabytes}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        with archive.open("VID-20240113-WA0001.mp4", "w", force_zip64=True) as video:
            for _ in range(megabytes):
                video.write(os.urandom(1 << 20))
        archive.writestr(
            "WhatsApp Chat with Video.txt",
            "13/01/2024, 10:00 - Ana: VID-20240113-WA0001.mp4 (file attached)\n",
        )
    return path


def test_a_300_mb_video_costs_about_the_memory_of_a_1_mb_one(
    tmp_path: Path, new_place: Callable[[], Place]
) -> None:
    """Its bytes go to the media folder (DuckDB) or into media_parts (PostgreSQL) a chunk at a
    time: the peak is the same, give or take a few parts, as for a video of 1 MB."""
    small = ingest_peak_mb(video_export(tmp_path, 1), str(new_place()))
    large = ingest_peak_mb(video_export(tmp_path, 300), str(new_place()))
    assert large <= LIMIT_MB and large - small < 100, f"{large:.0f} MB against {small:.0f} MB"
