"""Open an export as WhatsApp writes it: a .zip (chat text plus media files) or the bare .txt.

Everything is checked before anything is written: entry names (no absolute paths, no ``..``),
the expanded size and compression ratio (zip bombs), the presence of the chat text, and its
encoding. The zip's list of files is read once, and kept open with the export (``close``, or
``with open_export(...)``): media bytes are read lazily through it, a chunk at a time, and
counted as they are read, since a zip's sizes can lie. Reading a file costs its own bytes, never
the archive's list again, so 100,000 small files cost 100 times 1,000.
"""

from __future__ import annotations

import codecs
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO

import pyarrow as pa

from egregora.errors import EgregoraError

MAX_EXPANDED = 8 << 30  # all entries together, expanded
MAX_RATIO = 200  # expanded / compressed, for any entry larger than RATIO_FLOOR
RATIO_FLOOR = 1 << 20
MAX_ENTRIES = 100_000
CHUNK = 1 << 20
# iOS names the text _chat.txt; Android "WhatsApp Chat with NAME.txt" (PT: "Conversa do
# WhatsApp com NAME.txt").
_CHAT_NAME = re.compile(
    r"(?:_chat|WhatsApp Chat with (?P<en>.+)|Conversa do WhatsApp com (?P<pt>.+))\.txt",
    re.IGNORECASE,
)


_EXPORT_NAME = re.compile(
    r"(?:WhatsApp Chat (?:with|-)|Conversa do WhatsApp com|Conversa do WhatsApp -)"
    r"\s+(?P<name>.+?)\.(?:txt|zip)",
    re.IGNORECASE,
)


class UnsafeArchiveError(EgregoraError):
    """The archive could write outside its folder or expand beyond reason."""

    exit_code = 2


class ExportFileError(EgregoraError):
    """The file is not an export that can be read (no chat text, not UTF-8, not a zip)."""

    exit_code = 2


class _Zip:
    """An archive's zip, opened (and its list of files read) once for every media file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None

    def open(self, info: zipfile.ZipInfo) -> IO[bytes]:
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.path)
        return self._zip.open(info)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None


@dataclass(frozen=True)
class MediaFile:
    """A media file inside the archive; ``chunks()`` reads it, checking its real size."""

    archive: Path
    name: str  # the file name as messages refer to it
    member: str  # the path inside the zip
    size: int
    _info: zipfile.ZipInfo = field(repr=False, compare=False)
    _zip: _Zip = field(repr=False, compare=False)

    @property
    def where(self) -> str:
        return f"{self.archive}:{self.member}"

    def chunks(self) -> Iterator[bytes]:
        """The file's bytes, ``CHUNK`` at a time (a file is never held whole)."""
        total = 0
        try:
            with self._zip.open(self._info) as stream:
                while chunk := stream.read(CHUNK):
                    total += len(chunk)
                    if total > self.size:
                        raise UnsafeArchiveError(
                            f"{self.archive}: {self.member} expands beyond the {self.size} "
                            "bytes its header declares; the archive is corrupt or hostile, "
                            "nothing was written"
                        )
                    yield chunk
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise ExportFileError(
                f"{self.archive}: {self.member} cannot be read ({exc}); the archive is damaged, "
                "export the chat again; nothing was written"
            ) from exc


@dataclass
class Export:
    """The chat text, the chat's name as the export gives it, and the media files (read
    through the archive, open until ``close``)."""

    path: Path
    text: bytes  # UTF-8, checked
    chat_name: str
    media: tuple[MediaFile, ...]
    _zip: _Zip | None = field(default=None, repr=False, compare=False)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def take_text(self) -> bytes:
        """The chat text, handed over: the export lets go of it (``text`` is empty after), so
        a large chat's text is freed as soon as it is parsed, not held through the writes."""
        text, self.text = self.text, b""
        return text

    def __enter__(self) -> Export:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


ZIP_MAGIC = b"PK\x03\x04"  # how every zip's first entry begins


def check_export_path(path: Path) -> None:
    """Refuse a path that is no file at all, before anything is opened or written."""
    if not path.exists():
        raise ExportFileError(f"{path} does not exist; give the path of the exported .zip or .txt")
    if path.is_dir():
        raise ExportFileError(f"{path} is a folder; give the exported .zip or the chat's .txt")


def open_export(path: Path) -> Export:
    """Read ``path`` (a .zip or a .txt) and check it; raise naming the cause and the fix."""
    check_export_path(path)
    if zipfile.is_zipfile(path):
        return _open_zip(path)
    with path.open("rb") as head:
        if head.read(4) == ZIP_MAGIC:
            # A zip whose end (its list of files) is missing: cut short by a transfer or a
            # full disk. It is not text, whatever its bytes would decode to.
            raise ExportFileError(
                f"{path} is a damaged zip: it begins as one but its list of files is missing "
                "(cut short while copying?); copy or export the chat again"
            )
    return Export(path, decode(path.read_bytes(), str(path)), _chat_name(path.name), ())


def _open_zip(path: Path) -> Export:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            _check_members(path, infos)
            chat = _chat_member(path, infos)
            if chat.file_size > MAX_EXPANDED:
                raise UnsafeArchiveError(f"{path}: the chat text is too large to be a chat")
            raw = zf.read(chat)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ExportFileError(
            f"{path} is not a readable zip ({exc}); export the chat again"
        ) from exc
    archive = _Zip(path)
    media = tuple(
        MediaFile(path, _media_name(i), i.filename, i.file_size, i, archive)
        for i in infos
        if i is not chat and _media_name(i)
    )
    name = _zip_chat_name(path, chat)
    return Export(path, decode(raw, f"{path}:{chat.filename}"), name, media, archive)


def chat_name_of(path: Path) -> str:
    """The chat's name, as ``open_export`` gives it, from the file names alone (the chat's
    text is not read): what a run checks its thread's settings by before it writes."""
    check_export_path(path)
    if not zipfile.is_zipfile(path):
        return _chat_name(path.name)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ExportFileError(
            f"{path} is not a readable zip ({exc}); export the chat again"
        ) from exc
    return _zip_chat_name(path, _chat_member(path, infos))


def _zip_chat_name(path: Path, chat: zipfile.ZipInfo) -> str:
    # iOS names the text _chat.txt: then the zip's own name names the chat.
    return _named_export(chat.filename) or _chat_name(path.name)


def _media_name(info: zipfile.ZipInfo) -> str:
    """The name messages refer to a media entry by; "" for an entry that is no media file
    (hidden, like macOS's ``.DS_Store``, or nameless, like ``.`` or ``dir/``)."""
    name = PurePosixPath(info.filename.replace("\\", "/")).name
    return "" if not name or name.startswith(".") else name


def _check_members(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    if len(infos) > MAX_ENTRIES:
        raise UnsafeArchiveError(
            f"{path} holds {len(infos)} files, more than the {MAX_ENTRIES} an export has; "
            "nothing was written"
        )
    for info in infos:
        name = info.filename.replace("\\", "/")
        parts = PurePosixPath(name).parts
        if name.startswith("/") or re.match(r"[A-Za-z]:", name) or ".." in parts:
            raise UnsafeArchiveError(
                f"{path} has an entry {info.filename!r} that points outside the archive "
                "(an absolute path or '..'); it is not a WhatsApp export, nothing was written"
            )
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise UnsafeArchiveError(
                f"{path}: {info.filename} expands {info.file_size // max(info.compress_size, 1)}"
                f" times (more than {MAX_RATIO}x): a zip bomb, not an export; nothing was written"
            )
    expanded = sum(i.file_size for i in infos)
    if expanded > MAX_EXPANDED:
        raise UnsafeArchiveError(
            f"{path} expands to {expanded} bytes, more than the {MAX_EXPANDED} allowed; "
            "nothing was written"
        )


def _chat_member(path: Path, infos: list[zipfile.ZipInfo]) -> zipfile.ZipInfo:
    texts = [i for i in infos if i.filename.lower().endswith(".txt")]
    named = [i for i in texts if _CHAT_NAME.fullmatch(PurePosixPath(i.filename).name)]
    candidates = named or texts
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ExportFileError(
            f"{path} holds no chat text (no .txt file); export the chat from WhatsApp "
            "(More > Export chat) and ingest that zip"
        )
    names = ", ".join(i.filename for i in candidates)
    raise ExportFileError(f"{path} holds several chat texts ({names}); ingest one export at a time")


def _named_export(filename: str) -> str | None:
    """The chat's name in an export's file name ("WhatsApp Chat with Family.txt", "WhatsApp
    Chat - Family.zip", "Conversa do WhatsApp com Família.txt"), if it has one."""
    found = _EXPORT_NAME.fullmatch(PurePosixPath(filename).name)
    return found.group("name").strip() if found else None


def _chat_name(filename: str) -> str:
    """The chat's name from the export's file name, or the file name without extension."""
    stem = PurePosixPath(filename).name.rsplit(".", 1)[0].strip()
    return _named_export(filename) or (stem if stem and stem != "_chat" else "chat")


def decode(raw: bytes, name: str) -> bytes:
    """The chat text as checked UTF-8 bytes (a byte-order mark is dropped; UTF-16 with its mark
    is read too)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16").encode()
        except UnicodeDecodeError as exc:
            raise ExportFileError(f"{name} starts as UTF-16 but is not: {exc.reason}") from exc
    unmarked = _utf16_without_mark(raw)
    if unmarked is not None:
        try:
            return raw.decode(unmarked).encode()
        except UnicodeDecodeError as exc:
            raise ExportFileError(
                f"{name} looks like {unmarked.upper()} text without its byte-order mark, but "
                f"is not ({exc.reason}); export the chat again"
            ) from exc
    raw = raw.removeprefix(codecs.BOM_UTF8)
    if is_utf8(raw):
        return raw
    try:
        raw.decode("utf-8")  # only to say where the text breaks
    except UnicodeDecodeError as exc:
        raise ExportFileError(
            f"{name} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "export the chat again, or convert it first (iconv -f LATIN1 -t UTF-8)"
        ) from exc
    return raw


def _utf16_without_mark(raw: bytes) -> str | None:
    """``utf-16-le`` or ``utf-16-be`` when the text's start is plainly UTF-16 without its mark:
    a chat never holds a NUL byte, and UTF-16 puts one in every other byte of Latin text."""
    sample = raw[:4096]
    if len(sample) < 8 or len(sample) % 2:
        sample = sample[: len(sample) - len(sample) % 2]
    if len(sample) < 8:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) >= 0.9 * len(odd) and even.count(0) == 0:
        return "utf-16-le"
    if even.count(0) >= 0.9 * len(even) and odd.count(0) == 0:
        return "utf-16-be"
    return None


def is_utf8(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8 (checked by Arrow, without building a Python str)."""
    return utf8_array(data) is not None


def utf8_array(data: bytes) -> pa.Array | None:
    """``data`` as a one-element Arrow string array (``large_string`` only when it holds 2 GiB
    or more), or None when it is not valid UTF-8. The bytes are not copied."""
    small = len(data) < 1 << 31
    kind, width = (pa.string(), pa.int32()) if small else (pa.large_string(), pa.int64())
    offsets = pa.array([0, len(data)], width).buffers()[1]
    whole = pa.Array.from_buffers(kind, 1, [None, offsets, pa.py_buffer(data)])
    try:
        whole.validate(full=True)
    except pa.ArrowInvalid:
        return None
    return whole
