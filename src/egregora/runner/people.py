"""Chat text without the people in it: names, mentions and phone numbers become pseudonyms.

An export names members everywhere: as authors, in mentions (``@Ana Silva``, ``@12025550147``),
in the words of a message ("ask Ana"), in phone numbers and in system notices ("Ana added
Bruno"). Everything a writer sees passes through ``People`` first, so a post can only name a
member as ``member-xxxxxxxx``. Notices are rewritten from a closed list of shapes; one that is
not understood is replaced whole, because its words may hold anything.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from egregora.etl.formats import IOS_NOTICE, MAX_NAME, clean
from egregora.pseudonyms import canonical_name, is_phone, member

SHARED = "a member"  # a given name that more than one member has
PHONE = "(phone number)"  # a phone number that is no known member's
UNKNOWN_NOTICE = "A system notice."
ENCRYPTED = "Messages are end-to-end encrypted."
MAX_PHONE_DIGITS = 15  # E.164
_MIN_PHONE_DIGITS = 7  # with a "+" or after "@"
_MIN_BARE_DIGITS = 9  # without a "+": fewer are prices, dates, codes
_STRAIGHT_DIGITS = 10  # without "+" and without separators
_MAX_LISTED = 4  # pieces of a notice's list that one name may span ("Castro e Silva")
_YOU = frozenset({"you", "você", "voce"})
_Trie: TypeAlias = dict[str, "_Trie"]

_LETTERS = re.compile(r"[^\W\d_]{3,}")  # the words `words` gives: letters of any script
_GIVEN = re.compile(r"[^\W\d_]{2,}(?:['\u2019\-][^\W\d_]+)*")  # a given name worth matching alone
# A word of a mention that names no known member: letters first, then letters or digits.
_WORD = r"[^\W\d_][^\W_]*(?:['\u2019\-][^\W\d_][^\W_]*)*"
_WORD_RE = re.compile(_WORD)
_RUN = re.compile(rf"{_WORD}(?: {_WORD}){{0,3}}")
_AT_NUMBER = re.compile(r"\+?\d+(?:[ \-]\d{2,})*")
# Digit groups joined by one phone-style separator each: "(11) 91234-5678", "202.555.0147".
_NUMBER = re.compile(r"\+? ?\(?\d+(?:\)?[ .\-]?\(?\d+)*")
_DIGITS = re.compile(r"\d+")
_DATE = re.compile(
    r"\d{4}[-./]\d{1,2}[-./]\d{1,2}(?!\d)|\d{1,2}[-./]\d{1,2}[-./](?:\d{4}|\d{2})(?!\d)"
)
_TIME = re.compile(r":\d")
_NOT_PHONE = re.compile(r"\d{1,3}(?:\.\d{3})+|\d{1,3}(?:\.\d{1,3}){3}")  # 1.000.000, an IPv4
_PHONE_LINK = re.compile(
    r"(?:tel:|(?:https?://)?(?:www\.)?(?:wa\.me/|api\.whatsapp\.com/send/?\?phone=))"
    r"(?P<number>\+?[\d\-.()]*\d)",
    re.IGNORECASE,
)
_TRAILING = ".,;:!?)]}'\"\u201d\u2019"  # punctuation after a link that is not part of it
_SCAN_START = r"(?P<url>(?:https?://|mailto:|tel:|(?<![\w.])(?:www\.)?wa\.me/)\S+)"
_SCAN_END = (
    r"|(?P<at>(?<![^\W_])@)"
    r"|(?P<plus>\+)(?= ?\(?\d)"
    r"|(?P<num>(?<![\w+])(?<!\d[:/.,])\(?\d)"
)
_GAP = r"[\s_]+"  # between the words of a name, as a text may write it
_GAP_RE = re.compile(_GAP)
_OUTSIDE = r"(?<![^\W_])"  # not right after a letter or digit
_AFTER = r"(?![^\W_])"  # not right before a letter or digit


# -- system notices ----------------------------------------------------------------------------
_A = r"(?P<actor>[^:\n]{1,100}?)"
_O = r"(?P<objects>.+?)"
_APOSTROPHE = "['\u2019]"
_TURNED = "Disappearing messages were turned {state}"
_SECURITY = "The security code with {object} changed"
_NEW_NUMBER = "{actor} changed {their} phone number to {object}"
_SHAPES: list[tuple[str, str]] = [
    (r"Messages and calls are end-to-end encrypted\b.*", ENCRYPTED),
    (r"Messages to this (?:group|chat) are now secured with end-to-end encryption\b.*", ENCRYPTED),
    (
        r"As mensagens e (?:as )?chamadas s[ãa]o protegidas com a criptografia de ponta a ponta"
        r"\b.*",
        ENCRYPTED,
    ),
    (r"As mensagens (?:deste grupo|desta conversa) agora est[ãa]o protegidas\b.*", ENCRYPTED),
    (rf"You{_APOSTROPHE}re now an admin", "You're now an admin"),
    (r"Voc[êe] agora [ée] (?:um )?admin\b.*", "You're now an admin"),
    (r"Disappearing messages were turned (?P<state>on|off)\b.*", _TURNED),
    (r"As mensagens tempor[áa]rias foram (?P<state>ativadas|desativadas)\b.*", _TURNED),
    (r"Your security code with (?P<object>.+?) changed\b.*", _SECURITY),
    (
        r"O c[óo]digo de seguran[çc]a (?:de|com) (?P<object>.+?) (?:mudou|foi alterado)\b.*",
        _SECURITY,
    ),
    (rf"{_A} created (?:group|this group)\b.*", "{actor} created the group"),
    (rf"{_A} criou (?:o grupo|este grupo)\b.*", "{actor} created the group"),
    (rf"{_A} added {_O}", "{actor} added {objects}"),
    (rf"{_A} adicionou {_O}", "{actor} added {objects}"),
    (rf"{_A} removed {_O}", "{actor} removed {objects}"),
    (rf"{_A} removeu {_O}", "{actor} removed {objects}"),
    (rf"{_A} left", "{actor} left"),
    (rf"{_A} saiu", "{actor} left"),
    (
        rf"{_A} joined using this group{_APOSTROPHE}s invite link",
        "{actor} joined using this group's invite link",
    ),
    (
        rf"{_A} entrou usando o link de convite(?: deste grupo)?",
        "{actor} joined using this group's invite link",
    ),
    (rf"{_A} joined from the community", "{actor} joined from the community"),
    (rf"{_A} changed the (?:subject|group name)\b.*", "{actor} changed the group name"),
    (
        rf"{_A} (?:mudou|alterou) o (?:assunto|nome do grupo|nome)\b.*",
        "{actor} changed the group name",
    ),
    (
        rf"{_A} changed (?:this group{_APOSTROPHE}s|the group) "
        r"(?P<thing>icon|description|settings)\b.*",
        "{actor} changed this group's {thing}",
    ),
    (rf"{_A} deleted this group{_APOSTROPHE}s icon", "{actor} deleted this group's icon"),
    (
        rf"{_A} (?P<verb>mudou|alterou|apagou) a (?P<thing>imagem|descri[çc][ãa]o|foto)"
        r" (?:deste grupo|do grupo)\b.*",
        "{actor} {verb} this group's {thing}",
    ),
    (
        rf"{_A} (?:mudou|alterou) as configura[çc][õo]es (?:deste grupo|do grupo)\b.*",
        "{actor} changed this group's settings",
    ),
    (
        rf"{_A} turned (?P<state>on|off) disappearing messages\b.*",
        "{actor} turned {state} disappearing messages",
    ),
    (
        rf"{_A} (?P<state>ativou|desativou) as mensagens tempor[áa]rias\b.*",
        "{actor} turned {state} disappearing messages",
    ),
    (rf"{_A} changed (?:their|your) phone number\b.*", "{actor} changed {their} phone number"),
    (
        rf"{_A} (?:mudou|alterou) (?:seu|o) n[úu]mero de telefone\b.*",
        "{actor} changed {their} phone number",
    ),
    (
        rf"{_A} (?:changed to|mudou para) (?P<object>\+[\d ().\-]{{5,}}\d)",
        _NEW_NUMBER,
    ),
]
_NOTICE_SHAPES = [
    (re.compile(pattern, re.IGNORECASE | re.DOTALL), template) for pattern, template in _SHAPES
]
_ENGLISH = {
    "ativadas": "on",
    "desativadas": "off",
    "ativou": "on",
    "desativou": "off",
    "mudou": "changed",
    "alterou": "changed",
    "apagou": "deleted",
    "imagem": "icon",
    "foto": "icon",
    "descrição": "description",
    "descriçao": "description",
    "descricão": "description",
    "descricao": "description",
}
# A list in a notice: "Bruno, Carla and Dora", "Bruno, Carla e Dora".
_LIST = re.compile(r"(\s*,\s*(?:(?:and|e)\s+)?|\s+(?:and|e)\s+)")


@dataclass(frozen=True)
class _Reading:
    """A notice understood: its English sentence, and who is named where."""

    template: str
    actor: str | None = None
    objects: tuple[str, ...] = ()
    terms: Mapping[str, str] = field(default_factory=dict)  # "on", "icon": words it uses

    @property
    def names(self) -> list[str]:
        found = [self.actor] if self.actor else []
        return [n for n in [*found, *self.objects] if not _is_you(n)]


def _tidy(text: str) -> str:
    """Text as stored (direction marks gone), in NFC so names compare as written."""
    return unicodedata.normalize("NFC", clean(text).replace(IOS_NOTICE, ""))


def _is_you(name: str) -> bool:
    return name.strip().casefold() in _YOU


def _usable(name: str) -> bool:
    """A name that can be minted: some text, and no lone surrogate (it cannot be encoded)."""
    return bool(name.strip()) and not any("\ud800" <= c <= "\udfff" for c in name)


def _listed(items: list[str]) -> str:
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _atoms(name: str) -> list[str]:
    """A name as regex atoms: its characters, and any run of spaces (or "_") between words."""
    atoms: list[str] = []
    for index, word in enumerate(name.split()):
        atoms += ([_GAP] if index else []) + [re.escape(c) for c in word]
    return atoms


def _trie(names: Iterable[str]) -> str:
    """One regex for all ``names`` sharing their prefixes, so the engine reads a character
    once however many names there are; a name is tried before any shorter name it starts."""
    root: _Trie = {}
    for name in names:
        node = root
        for atom in _atoms(name):
            node = node.setdefault(atom, {})
        node[""] = {}
    return _branches(root)


def _branches(node: _Trie) -> str:
    branches = [atom + _branches(child) for atom, child in sorted(node.items()) if atom]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return f"(?:{body})?" if "" in node else body


class People:
    """The members of one thread, for rewriting chat text without their names."""

    def __init__(
        self,
        mint: Callable[[str], str],
        authors: Iterable[str],
        notices: Iterable[str] = (),
    ) -> None:
        self._mint = mint
        self._minted: dict[str, str] = {}
        self._names: dict[str, str] = {}  # canonical name -> its member form
        self._phones: dict[str, str] = {}  # "+" and digits -> its member form
        for author in authors:
            self._learn(author)
        for notice in notices:
            reading = self._read(_tidy(notice).strip())
            for name in reading.names if reading else []:
                self._learn(name)
        self._compile()

    # -- what is known ------------------------------------------------------------------------
    @property
    def words(self) -> frozenset[str]:
        """Lower-case words (letters, 3+) of every known name, which titles and tags must
        leave out."""
        return frozenset(w for name in self._names for w in _LETTERS.findall(name.lower()))

    def _member(self, name: str) -> str:
        key = canonical_name(name)
        if key not in self._minted:
            self._minted[key] = member(self._mint(key))
        return self._minted[key]

    def _learn(self, name: str) -> None:
        key = canonical_name(name)
        if not _usable(key) or _is_you(key) or len(key) > MAX_NAME:
            return
        (self._phones if is_phone(key) else self._names)[key] = self._member(key)

    def _compile(self) -> None:
        names = sorted(self._names)
        self._spelled = {" ".join(n.split()): self._names[n] for n in names}
        self._folded: dict[str, str] = {}
        for spelled, said in self._spelled.items():
            self._folded.setdefault(spelled.lower(), said)
        givens: dict[str, set[str]] = {}
        for name in names:
            first = name.split()[0]
            if name != first and first[0].isupper() and _GIVEN.fullmatch(first):
                givens.setdefault(first, set()).add(self._names[name])
        self._given = {g: next(iter(s)) if len(s) == 1 else SHARED for g, s in givens.items()}
        self._given_fold: dict[str, str] = {}
        for given, said in self._given.items():
            if self._given_fold.setdefault(given.casefold(), said) != said:
                self._given_fold[given.casefold()] = SHARED
        several = [n for n in names if len(n.split()) > 1]
        # A one-word name of one letter ("A") would take every such letter in the text.
        single = [n for n in names if len(n.split()) == 1 and sum(c.isalnum() for c in n) > 1]
        parts = [_SCAN_START]
        anywhere = [f"(?i:{_trie(several)})" if several else "", _trie(single) if single else ""]
        if any(anywhere):
            body = "|".join(p for p in anywhere if p)
            parts.append(f"|{_OUTSIDE}(?P<name>{body}){_AFTER}")
        if self._given:
            parts.append(f"|{_OUTSIDE}(?P<given>{_trie(self._given)}){_AFTER}")
        parts.append(_SCAN_END)
        self._scan = re.compile("".join(parts))
        self._mentions = re.compile(f"(?i:{_trie(names)}){_AFTER}") if names else None

    def _known(self, written: str) -> str:
        """The member a name matched in text is: the one spelled so, else one whose name is
        the same but for case."""
        for spelled in (" ".join(written.split()), " ".join(_GAP_RE.split(written))):
            if spelled in self._spelled:
                return self._spelled[spelled]
        for spelled in (" ".join(written.split()), " ".join(_GAP_RE.split(written))):
            if spelled.lower() in self._folded:
                return self._folded[spelled.lower()]
        for name in sorted(self._names):  # case rules that lower() does not mirror ("İ")
            if re.fullmatch(f"(?i:{''.join(_atoms(name))})", written):
                return self._names[name]
        return self._member(written)

    # -- message text -------------------------------------------------------------------------
    def text(self, text: str) -> str:
        """``text`` with every member name, mention and phone number replaced by a pseudonym
        (``a member`` for a given name several members share, ``(phone number)`` for a number
        that is no member's). Links stay as written, except WhatsApp and ``tel:`` links, which
        are phone numbers. Nothing else changes."""
        source = _tidy(text)
        said: list[str] = []
        position = 0
        while (found := self._scan.search(source, position)) is not None:
            start = found.start()
            replacement, end = self._replace(source, found)
            said += [source[position:start], replacement]
            position = end
        said.append(source[position:])
        return "".join(said)

    def name(self, text: str) -> str:
        """A free-standing name (a group's, a file's) with member names and phones replaced,
        as in ``text``."""
        return self.text(text)

    def _replace(self, source: str, found: re.Match[str]) -> tuple[str, int]:
        """What the match at ``found`` becomes, and where the text after it starts."""
        start, kind = found.start(), found.lastgroup or ""
        done: tuple[str, int] | None = None
        if kind == "url":
            done = self._link(source, found)
        elif kind == "name":
            done = self._known(found.group()), found.end()
        elif kind == "given":
            done = self._given[found.group()], found.end()
        elif kind == "at":
            done = self._mention(source, start + 1)
        elif kind in ("plus", "num"):
            done = self._number(source, start, plus=kind == "plus")
        return done if done is not None else (source[start], start + 1)

    def _link(self, source: str, found: re.Match[str]) -> tuple[str, int]:
        link = found.group()
        phone = _PHONE_LINK.match(link)
        digits = "".join(c for c in phone.group("number") if c.isdigit()) if phone else ""
        if len(digits) < _MIN_PHONE_DIGITS:
            return link, found.end()
        body = link.rstrip(_TRAILING)
        return self._phones.get("+" + digits, PHONE), found.start() + len(body)

    def _mention(self, source: str, at: int) -> tuple[str, int] | None:
        """``@`` and a known name, a phone number or capitalised words (an unknown member)."""
        if self._mentions is not None and (known := self._mentions.match(source, at)):
            return self._known(known.group()), known.end()
        number = _AT_NUMBER.match(source, at)
        if number is not None:
            groups = [(g.start(), g.end()) for g in _DIGITS.finditer(source, at, number.end())]
            digits = [source[s:e] for s, e in groups]
            for end in range(len(groups), 0, -1):
                if (key := "+" + "".join(digits[:end])) in self._phones:
                    return self._phones[key], groups[end - 1][1]
            if len(digits[0]) >= _MIN_PHONE_DIGITS:
                return self._member("+" + digits[0]), groups[0][1]
            if sum(map(len, digits)) >= _MIN_PHONE_DIGITS:
                return self._member("+" + "".join(digits)), number.end()
            return None
        run = _RUN.match(source, at)
        if run is None:
            return None
        words = list(_WORD_RE.finditer(source, at, run.end()))
        capitalised = 0
        while capitalised < len(words) and words[capitalised].group()[0].isupper():
            capitalised += 1
        first = words[0].group()
        if capitalised < 2 and first.casefold() in self._given_fold:
            return self._given_fold[first.casefold()], words[0].end()
        if capitalised == 0:
            return None
        name = " ".join(w.group() for w in words[:capitalised])
        return self._member(name), words[capitalised - 1].end()

    def _number(self, source: str, start: int, plus: bool) -> tuple[str, int] | None:
        """A run of digit groups from ``start``: the phone numbers in it replaced, dates and
        times (and numbers too short to be phones) as written."""
        run = _NUMBER.match(source, start)
        if run is None:
            return None
        groups = [(g.start(), g.end()) for g in _DIGITS.finditer(source, start, run.end())]
        if not plus and (date := _DATE.match(source, groups[0][0])):
            return source[start : date.end()], date.end()
        dated = [i for i in range(1, len(groups)) if _DATE.match(source, groups[i][0])]
        if dated:
            del groups[dated[0] :]  # a date after a number is read on its own
        if _TIME.match(source, groups[-1][1]):
            groups.pop()  # "10:00": an hour
        if not groups:
            return None
        lead = start
        area = len(groups) > 1 and source[groups[0][1] : groups[0][1] + 1] == ")"
        if source[start] == "(" and not area:
            lead += 1  # "(202-555-0147)": the brackets hold the number, not an area code
        said, replaced = self._digit_groups(source, lead, groups, plus)
        end = groups[-1][1]
        opened = source[lead:end].count("(") - source[lead:end].count(")")
        if replaced and opened > 0 and source[end : end + 1] == ")":
            end += 1
        return source[start:lead] + said, end

    def _digit_groups(
        self, source: str, lead: int, groups: list[tuple[int, int]], plus: bool
    ) -> tuple[str, bool]:
        """The text from ``lead`` to the last group: known members' phones (leftmost, longest)
        first, then other runs that look like phones; and whether the last group was replaced."""
        digits = [source[s:e] for s, e in groups]
        known: dict[int, int] = {}  # a group where a known phone starts -> the group after it
        for i in range(len(groups)):
            total = ""
            for j in range(i, len(groups)):
                total += digits[j]
                if len(total) > MAX_PHONE_DIGITS:
                    break
                if "+" + total in self._phones:
                    known[i] = j + 1
        said: list[str] = []
        cursor = lead  # the text before it is in `said`
        replaced = False
        i = 0
        while i < len(groups):
            begin = lead if i == 0 else groups[i][0]
            if i in known:
                phone = "+" + "".join(digits[i : known[i]])
                said += [source[cursor:begin], self._phones[phone]]
                i, replaced = known[i], True
                cursor = groups[i - 1][1]
                continue
            k, count = i, 0
            while k < len(groups) and (k == i or k not in known):
                if count + len(digits[k]) > MAX_PHONE_DIGITS:
                    break
                count += len(digits[k])
                k += 1
            if self._phone_like(source, groups[i:k], count, plus and i == 0):
                said += [source[cursor:begin], PHONE]
                i, replaced = k, True
                cursor = groups[i - 1][1]
                continue
            i, replaced = i + 1, False
        said.append(source[cursor : groups[-1][1]])
        return "".join(said), replaced

    @staticmethod
    def _phone_like(source: str, groups: list[tuple[int, int]], total: int, plus: bool) -> bool:
        if not groups:
            return False
        if plus:
            return total >= _MIN_PHONE_DIGITS
        if _NOT_PHONE.fullmatch(source, groups[0][0], groups[-1][1]):
            return False
        return total >= _MIN_BARE_DIGITS and (len(groups) > 1 or total >= _STRAIGHT_DIGITS)

    # -- system notices -----------------------------------------------------------------------
    def notice(self, text: str) -> str:
        """A system notice in English with pseudonyms for the people it names; free text it
        carried (a group's name or description) left out; ``A system notice.`` for a notice
        of a shape not known here, whose words may hold anything."""
        reading = self._read(_tidy(text).strip())
        if reading is None:
            return UNKNOWN_NOTICE
        actor = self._who(reading.actor, first=True) if reading.actor else ""
        objects = [self._who(name, first=False) for name in reading.objects]
        values = {
            "actor": actor,
            "objects": _listed(objects),
            "object": objects[0] if objects else "",
            "their": "your" if reading.actor and _is_you(reading.actor) else "their",
            **reading.terms,
        }
        return reading.template.format_map(values)

    def _who(self, name: str, first: bool) -> str:
        if _is_you(name):
            return "You" if first else "you"
        return self._member(name)

    def _read(self, text: str) -> _Reading | None:
        """The shape ``text`` has; when several fit, the one whose actor is shortest, so a
        notice's free text (a new subject) is never read as a second verb."""
        best: tuple[int, int, re.Match[str], str] | None = None
        for index, (shape, template) in enumerate(_NOTICE_SHAPES):
            found = shape.fullmatch(text)
            if found is None:
                continue
            actor = found.groupdict().get("actor")
            rank = (len(actor) if actor is not None else -1, index)
            if best is None or rank < best[:2]:
                best = (*rank, found, template)
        if best is None:
            return None
        found, template = best[2], best[3]
        groups = found.groupdict()
        actor = groups.get("actor")
        objects: list[str] = []
        if groups.get("objects") is not None:
            objects = self._pieces(groups["objects"])
            if not objects:
                return None
        elif groups.get("object") is not None:
            objects = [groups["object"].strip()]
            if template == _NEW_NUMBER and not is_phone(objects[0]):
                return None
        terms = {
            key: _ENGLISH.get(value.lower(), value.lower())
            for key in ("state", "verb", "thing")
            if (value := groups.get(key)) is not None
        }
        named = ([actor] if actor is not None else []) + objects
        if not all(_usable(n) for n in named):
            return None
        return _Reading(template, actor.strip() if actor else None, tuple(objects), terms)

    def _pieces(self, listed: str) -> list[str]:
        """The names of a notice's list; pieces that together make a known name stay one."""
        parts = _LIST.split(listed.strip())
        pieces = parts[0::2]
        names: list[str] = []
        i = 0
        while i < len(pieces):
            take = 1
            for span in range(min(_MAX_LISTED, len(pieces) - i), 1, -1):
                joined = "".join(parts[2 * i : 2 * (i + span) - 1])
                if canonical_name(joined) in self._names:
                    take = span
                    break
            name = "".join(parts[2 * i : 2 * (i + take) - 1]).strip()
            if name:
                names.append(name)
            i += take
        return names
