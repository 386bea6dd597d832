"""The sample export `egregora demo` runs on: a synthetic group chat shipped in the package.

``sample/`` holds the chat text (an Android export: byte-order mark, direction marks,
multi-line messages, attachments, omitted media, system notices, links) and its media files,
all written for this project. ``sample_export`` packs them into the zip a phone would make.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from egregora.errors import ConfigurationError

SAMPLE = Path(__file__).resolve().parent / "sample"
CHAT_NAME = "Trip Planners"
EXPORT_NAME = f"WhatsApp Chat with {CHAT_NAME}.zip"
TIMEZONE = "Europe/Lisbon"  # the zone the sample's times were written in
_STAMP = (2024, 6, 1, 12, 0, 0)  # fixed entry times: the same files give the same zip


def sample_zip() -> bytes:
    """The sample as a WhatsApp .zip: the chat text and the media files at its top level."""
    files = sorted(p for p in SAMPLE.iterdir() if p.is_file() and not p.name.startswith("."))
    if not any(p.suffix == ".txt" for p in files):
        raise ConfigurationError(f"the sample export is missing from {SAMPLE}; reinstall egregora")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for path in files:
            info = zipfile.ZipInfo(path.name, date_time=_STAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return out.getvalue()


def sample_export(folder: Path) -> Path:
    """Write the sample zip into ``folder`` (unless it is there already) and return its path.

    A different file of that name is the user's, and is left alone.
    """
    content = sample_zip()
    target = folder / EXPORT_NAME
    if target.exists():
        if target.read_bytes() == content:
            return target
        raise ConfigurationError(
            f"{target} exists and is not egregora's sample export; move it, or give "
            "`egregora demo` another folder"
        )
    folder.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    return target
