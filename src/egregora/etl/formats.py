"""What a WhatsApp export line looks like: headers, attachments, omitted media.

A message starts a line with its date and time, in one of these layouts:
  Android  ``12/01/2024, 10:00 - Name: text``       (also ``12.01.24 10:00 - ``, and
           ``26/09/2019 à 22:39 - `` in French)
  iOS      ``[12/01/2024, 10:00:00] Name: text``    (Arabic phones: ``[18/3/2022، 14:56:01] ``)
  year first  ``2019/01/30, 20:49 - ``, ``2019-10-20, 10:16 - ``, ``[2019-04-16 02:09] ``
  time first  ``[14:56:01, 3/18/22] `` (iOS in Vietnamese)
with a 24-hour or 12-hour clock: ``10:00 PM``, ``10:00 pm``, ``10:00 p. m.``, ``00:08 a. m.``
(midnight, as Spanish phones write it), ``10:00 nachm.``, ``10:00 م``, ``下午10:00``,
``오후 10:00``, often with a narrow no-break space before the marker.
Phones put invisible direction marks anywhere in a line; they are removed before matching.
Lines that do not start with a header continue the message above. System notices are in
``egregora.etl.notices``.
"""

from __future__ import annotations

import re

# Direction marks phones insert (LRM, RLM, embeddings, isolates) are removed everywhere, and
# no-break spaces (U+00A0, the narrow U+202F before AM/PM) read as plain spaces.
MARKS = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
NO_BREAK_SPACES = "\u00a0\u202f\u2007"
_ODD = re.compile(f"[{MARKS}{NO_BREAK_SPACES}]")
# iOS writes a system notice as "Group: <LRM>notice"; before marks go, that LRM becomes this
# separator character, which tells the notice from a message saying the same words.
IOS_NOTICE = "\x1e"


def clean(text: str) -> str:
    """Text with line ends as \\n, direction marks removed and no-break spaces plain."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace(": \u200e", ": " + IOS_NOTICE)
    return _ODD.sub(lambda m: "" if m.group() in MARKS else " ", text)


# The headers, for pyarrow's RE2 kernels (no conditionals there): ``open`` and ``close`` must
# agree, "[" with "] " (iOS) and nothing with " - " (Android); ``parse_export`` checks that.
# Every layout names the same groups; ``a`` and ``b`` are day and month in either order
# (year-first dates are always year, month, day). A file is written in one layout.
# A comma, an Arabic comma, " à" (French Android) or nothing between date and time.
_COMMA = "(?:[,\u060c]| \u00e0)?"
_DATE = r"(?P<a>\d{1,2})[/.\-](?P<b>\d{1,2})[/.\-](?P<year>\d{4}|\d{2})"
_YEAR_FIRST_DATE = r"(?P<year>\d{4})[/.\-](?P<a>\d{1,2})[/.\-](?P<b>\d{1,2})"
# A 12-hour clock's marker, before the time (CJK, Korean) or after it (the rest).
_BEFORE = "(?:(?P<before>\u4e0a\u5348|\u4e0b\u5348|\uc624\uc804|\uc624\ud6c4) ?)?"
_AFTER = (
    "(?: ?(?P<ampm>[AaPp]\\.? ?[Mm]\\.?|vorm\\.|nachm\\.|\u0635|\u0645"
    "|\u4e0a\u5348|\u4e0b\u5348|\uc624\uc804|\uc624\ud6c4))?"
)
_TIME = _BEFORE + r"(?P<hour>\d{1,2})[:.](?P<minute>\d{2})(?:[:.](?P<second>\d{2}))?" + _AFTER
CLOSES = "\\] | [-\u2013] "  # how a header ends; its first match in a header line is the end
_CLOSE = f"(?P<close>{CLOSES})"
HEADER = rf"^(?P<open>\[?){_DATE}{_COMMA} +{_TIME}{_CLOSE}"
YEAR_FIRST_HEADER = rf"^(?P<open>\[?){_YEAR_FIRST_DATE}{_COMMA} +{_TIME}{_CLOSE}"
TIME_FIRST_HEADER = rf"^(?P<open>\[){_TIME}{_COMMA} +{_DATE}{_CLOSE}"
# Markers of an afternoon time, as ``ampm`` or ``before`` hold them.
PM = "^[Pp]|^nachm|^\u0645$|^\u4e0b\u5348$|^\uc624\ud6c4$"
IOS_CLOSE = "] "
# A line holding one of these needs `clean` before it can be matched (or holds IOS_NOTICE).
ODD_CHARACTERS = f"[{MARKS}{NO_BREAK_SPACES}{IOS_NOTICE}]"

MAX_NAME = 100  # "Name: text": a name has no colon or line break, and is not longer than this
# The longest message (all its lines) an export may hold. WhatsApp cuts a message at 65,536
# characters, at most 256 KiB of UTF-8; a longer one is a damaged or made-up file, refused
# before it costs gigabytes of memory.
MAX_MESSAGE_BYTES = 1 << 20

# Attachments: "<attached: NAME>" (iOS, where a document may be preceded by its title and page
# count, "Resume.pdf • 2 pages <attached: 00000047-Resume.pdf>", or its title alone) and
# "NAME (file attached)"
# (Android), in every language below; an optional caption follows on the next lines.
_ATTACHED_IOS = (
    "attached|anexado|adjunto|joint|pi[èe]ce jointe|angeh[äa]ngt|Anhang|allegato|bijgevoegd"
    "|bijlage|прикреплено|вложение"
)
_ATTACHED_ANDROID = (
    "file attached|arquivo anexado|ficheiro anexado|archivo adjunto|fichier joint"
    "|Datei angeh[äa]ngt|file allegato|bestand bijgevoegd|файл прикреплен|файл добавлен"
)
ATTACHED = re.compile(
    rf"(?:(?:[^\n<]* )?<(?:{_ATTACHED_IOS}): (?P<ios>[^>\n]+)>"
    rf"|(?P<android>[^\n]+?) \((?:{_ATTACHED_ANDROID})\))"
    r"(?:\n(?P<caption>.*))?\Z",
    re.DOTALL | re.IGNORECASE,
)
# Media the export left out: no file to link. Android writes "<Media omitted>"; iOS names the
# kind ("image omitted"), which tells the media type, after a document's title and page count
# as for attachments ("Resume.pdf • 2 pages document omitted").
_OMITTED_ANY = (
    "Media omitted|M[íi]dia oculta|M[íi]dia omitida|Multim[ée]dia omitido|Multimedia omitido"
    "|Archivo omitido|Medien ausgeschlossen|Medien weggelassen|M[ée]dias omis|Fichier omis"
    "|Media omess[io]|Media weggelaten|Ficheiro n[ãa]o revelado|Без медиафайлов|Файл пропущен"
)
_OMITTED_KINDS = {
    "image": "image|imagem|imagen|Bild|immagine|afbeelding|изображение|sticker|figurinha"
    "|autocollant|стикер",
    "video": "video|v[íi]d[ée]o|GIF|видео",
    "audio": "audio|[áa]udio|ficheiro de [áa]udio|аудио(?:файл)?",
    "document": "document|documento|Dokument|документ",
}
_OMITTED_WORDS = (
    "omitted|omitid[oa]|ocultad[oa]|omis|omise?|absente?|retir[ée]|weggelassen|ausgeschlossen"
    "|omess[oa]|esclus[oa]|non inclus[oa]|manquante?|n[ãa]o revelad[oa]|weggelaten|отсутствует"
    "|пропущен[оа]?|не добавлен"
)
OMITTED = re.compile(
    rf"(?:<(?:{_OMITTED_ANY})>"
    rf"|(?:[^\n<\u2022]* \u2022 [^\n<\u2022]*)?(?P<kind>{'|'.join(_OMITTED_KINDS.values())})"
    rf" (?:{_OMITTED_WORDS}))"
    r"(?:\n(?P<caption>.*))?\Z",
    re.IGNORECASE | re.DOTALL,
)
_OMITTED_TYPE = [
    (re.compile(f"(?:{words})\\Z", re.IGNORECASE), t) for t, words in _OMITTED_KINDS.items()
]
# For pyarrow's RE2: text that may be an attachment or omitted media (a closer look decides).
MAY_BE_MEDIA = "\\(|<|\u2022|" + _OMITTED_WORDS


def omitted_type(kind: str | None) -> str | None:
    """The media type an omitted-media line names ("image omitted": image), if it names one."""
    if kind is None:
        return None
    return next((t for pattern, t in _OMITTED_TYPE if pattern.match(kind)), None)


_MEDIA_TYPES = {
    "image": ("jpg", "jpeg", "png", "gif", "webp", "heic", "heif", "bmp", "tif", "tiff"),
    "video": ("mp4", "mov", "3gp", "avi", "mkv", "webm", "m4v"),
    "audio": ("opus", "ogg", "oga", "mp3", "m4a", "aac", "wav", "amr", "flac"),
}
_BY_EXTENSION = {ext: kind for kind, exts in _MEDIA_TYPES.items() for ext in exts}


# One-line Android forms for pyarrow's RE2, read column by column; `ATTACHED` and `OMITTED`
# read every other form (captions, iOS) one entry at a time, with the same verdicts.
ANDROID_ATTACHED_LINE = rf"(?i)^(?P<file>.+?) \((?:{_ATTACHED_ANDROID})\)$"
OMITTED_LINE = rf"(?i)^<(?:{_OMITTED_ANY})>$"
EXTENSIONS = tuple(_BY_EXTENSION)
EXTENSION_TYPES = tuple(_BY_EXTENSION.values())


def media_type(filename: str) -> str:
    """image, video, audio or document, from the file's extension."""
    _, dot, ext = filename.rpartition(".")
    return _BY_EXTENSION.get(ext.lower(), "document") if dot else "document"
