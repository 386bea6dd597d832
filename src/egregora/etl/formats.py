"""What a WhatsApp export line looks like: headers, system notices, attachments (EN and PT).

A message starts a line with its date and time, in one of these layouts:
  Android  ``12/01/2024, 10:00 - Name: text``       (also ``12.01.24 10:00 - ``)
  iOS      ``[12/01/2024, 10:00:00] Name: text``    (Arabic phones: ``[18/3/2022، 14:56:01] ``)
  year first  ``2019/01/30, 20:49 - ``, ``2019-10-20, 10:16 - ``, ``[2019-04-16 02:09] ``
  time first  ``[14:56:01, 3/18/22] `` (iOS in Vietnamese)
with a 24-hour or 12-hour clock: ``10:00 PM``, ``10:00 pm``, ``10:00 p. m.``, ``00:08 a. m.``
(midnight, as Spanish phones write it), ``10:00 nachm.``, ``10:00 م``, ``下午10:00``,
``오후 10:00``, often with a narrow no-break space before the marker.
Phones put invisible direction marks anywhere in a line; they are removed before matching.
Lines that do not start with a header continue the message above.
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
_COMMA = "[,\u060c]?"  # a comma, an Arabic comma, or nothing between date and time
_DATE = r"(?P<a>\d{1,2})[/.\-](?P<b>\d{1,2})[/.\-](?P<year>\d{4}|\d{2})"
_YEAR_FIRST_DATE = r"(?P<year>\d{4})[/.\-](?P<a>\d{1,2})[/.\-](?P<b>\d{1,2})"
# A 12-hour clock's marker, before the time (CJK, Korean) or after it (the rest).
_BEFORE = "(?:(?P<before>\u4e0a\u5348|\u4e0b\u5348|\uc624\uc804|\uc624\ud6c4) ?)?"
_AFTER = (
    "(?: ?(?P<ampm>[AaPp]\\.? ?[Mm]\\.?|vorm\\.|nachm\\.|\u0635|\u0645"
    "|\u4e0a\u5348|\u4e0b\u5348|\uc624\uc804|\uc624\ud6c4))?"
)
_TIME = _BEFORE + r"(?P<hour>\d{1,2})[:.](?P<minute>\d{2})(?:[:.](?P<second>\d{2}))?" + _AFTER
_CLOSE = "(?P<close>\\] | [-\u2013] )"
HEADER = rf"^(?P<open>\[?){_DATE}{_COMMA} +{_TIME}{_CLOSE}"
YEAR_FIRST_HEADER = rf"^(?P<open>\[?){_YEAR_FIRST_DATE}{_COMMA} +{_TIME}{_CLOSE}"
TIME_FIRST_HEADER = rf"^(?P<open>\[){_TIME}{_COMMA} +{_DATE}{_CLOSE}"
# Markers of an afternoon time, as ``ampm`` or ``before`` hold them.
PM = "^[Pp]|^nachm|^\u0645$|^\u4e0b\u5348$|^\uc624\ud6c4$"
IOS_CLOSE = "] "
# A line holding one of these needs `clean` before it can be matched.
ODD_CHARACTERS = f"[{MARKS}{NO_BREAK_SPACES}]"

MAX_NAME = 100  # "Name: text": a name has no colon or line break, and is not longer than this

# Whole-notice patterns, English and Portuguese. An actor (a name, "You", "Você") has no colon,
# so a message such as "Ana: I added salt" never reads as a notice.
_ACTOR = r"[^:\n]{1,100}?"
_NOTICES = [
    # end-to-end encryption
    r"Messages and calls are end-to-end encrypted\b.*",
    r"Messages to this (?:group|chat) are now secured with end-to-end encryption\b.*",
    r"As mensagens e (?:as )?chamadas s[ãa]o protegidas com a criptografia de ponta a ponta\b.*",
    r"As mensagens (?:deste grupo|desta conversa) agora est[ãa]o protegidas\b.*",
    # creating, joining, leaving, removing
    rf"{_ACTOR} created (?:group|this group)\b.*",
    rf"{_ACTOR} criou (?:o grupo|este grupo)\b.*",
    rf"{_ACTOR} added .+",
    rf"{_ACTOR} adicionou .+",
    rf"{_ACTOR} removed .+",
    rf"{_ACTOR} removeu .+",
    rf"{_ACTOR} left",
    rf"{_ACTOR} saiu",
    rf"{_ACTOR} joined using this group's invite link",
    rf"{_ACTOR} entrou usando o link de convite(?: deste grupo)?",
    rf"{_ACTOR} joined from the community",
    # group changes
    rf"{_ACTOR} changed the (?:subject|group name)\b.*",
    rf"{_ACTOR} (?:mudou|alterou) o (?:assunto|nome do grupo|nome)\b.*",
    rf"{_ACTOR} changed (?:this group's|the group) (?:icon|description|settings)\b.*",
    rf"{_ACTOR} deleted this group's icon",
    rf"{_ACTOR} (?:mudou|alterou|apagou) a (?:imagem|descri[çc][ãa]o|foto)"
    r" (?:deste grupo|do grupo)\b.*",
    rf"{_ACTOR} (?:mudou|alterou) as configura[çc][õo]es (?:deste grupo|do grupo)\b.*",
    r"You're now an admin",
    r"Voc[êe] agora [ée] (?:um )?admin\b.*",
    # disappearing messages
    rf"{_ACTOR} turned (?:on|off) disappearing messages\b.*",
    r"Disappearing messages were turned (?:on|off)\b.*",
    rf"{_ACTOR} (?:ativou|desativou) as mensagens tempor[áa]rias\b.*",
    r"As mensagens tempor[áa]rias foram (?:ativadas|desativadas)\b.*",
    # numbers and security codes
    rf"{_ACTOR} changed (?:their|your) phone number\b.*",
    rf"{_ACTOR} (?:mudou|alterou) (?:seu|o) n[úu]mero de telefone\b.*",
    r"Your security code with .+ changed\b.*",
    r"O c[óo]digo de seguran[çc]a (?:de|com) .+ (?:mudou|foi alterado)\b.*",
]
NOTICE = re.compile("(?:" + "|".join(_NOTICES) + r")\Z", re.IGNORECASE | re.DOTALL)

# Attachments: "<attached: NAME>" (iOS), "NAME (file attached)" (Android), in EN and PT; an
# optional caption follows on the next lines.
ATTACHED = re.compile(
    r"(?:<(?:attached|anexado): (?P<ios>[^>\n]+)>"
    r"|(?P<android>[^\n]+?) \((?:file attached|arquivo anexado)\))"
    r"(?:\n(?P<caption>.*))?\Z",
    re.DOTALL,
)
# Media the export left out: no file to link.
OMITTED = re.compile(
    r"(?:<Media omitted>|<M[íi]dia oculta>|<M[íi]dia omitida>"
    r"|(?:image|video|audio|sticker|GIF|document) omitted"
    r"|(?:imagem|v[íi]deo|[áa]udio|figurinha|documento|GIF) (?:ocultad[oa]|omitid[oa]))\Z",
    re.IGNORECASE,
)

_MEDIA_TYPES = {
    "image": ("jpg", "jpeg", "png", "gif", "webp", "heic", "heif", "bmp", "tif", "tiff"),
    "video": ("mp4", "mov", "3gp", "avi", "mkv", "webm", "m4v"),
    "audio": ("opus", "ogg", "oga", "mp3", "m4a", "aac", "wav", "amr", "flac"),
}
_BY_EXTENSION = {ext: kind for kind, exts in _MEDIA_TYPES.items() for ext in exts}


def media_type(filename: str) -> str:
    """image, video, audio or document, from the file's extension."""
    _, dot, ext = filename.rpartition(".")
    return _BY_EXTENSION.get(ext.lower(), "document") if dot else "document"
