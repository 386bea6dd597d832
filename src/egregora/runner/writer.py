"""Writers turn a window's messages into a post: the ``Writer`` protocol and the default one.

``ExtractiveWriter`` is deterministic and offline: it picks the window's most talked-about
words and the messages that carry them, and quotes those messages by pseudonym. A writer
backed by a language model plugs in through the same protocol (``--writer module:Class``);
the runner gives it nothing but pseudonyms, texts and times.
"""

from __future__ import annotations

import importlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from functools import cache
from typing import Protocol, runtime_checkable

from stop_words import AVAILABLE_LANGUAGES, get_stop_words  # type: ignore[import-untyped]

from egregora.errors import ConfigurationError
from egregora.pseudonyms import member as member  # how writers name an author
from egregora.runner.markup import chat_markdown
from egregora.runner.model import Message, Window

_WORD = re.compile(r"[^\W\d_]{3,}")  # letters of any script, three or more
_LINK = re.compile(r"https?://[^\s<>\"']+")
# What stands for a person in pseudonymous text: not a word the text is about.
_STAND_INS = re.compile(r"\bmember-[0-9a-f]{8}\b|\(phone number\)|\ba member\b")
HIGHLIGHTS = 3
KEYWORDS = 3
# Words of chats that say little about what a chat was about, whatever its language (English
# and Portuguese fillers and times of day); each language's own list comes from stop-words.
_STOPWORDS = """
    the and for are but not you all any can had her was one our out has have him his how its
    may new now see two way who did get got let put say she too use that this with from they
    will what when your just like then them than there their here been were would could should
    about into over after some more very also only even well back much many most such where
    which while these those because going really think know want need yes yeah okay haha lol
    tomorrow today tonight morning
    que não com uma para por mais como mas foi tem ser são dos das nos nas num numa isso esse
    essa este esta aqui ali muito muita bem sim pra pro vou vai vamos tá tô está estou então
    também já ainda depois hoje amanhã agora quando onde quem qual porque kkk kkkk kkkkk rsrs
"""
STOPWORDS = frozenset(_STOPWORDS.split())
_TOKEN = re.compile(r"[^\W\d_]+")  # any run of letters: stop words are often short


@cache
def _languages() -> dict[str, frozenset[str]]:
    """Each language's stop words (the stop-words package: 33 languages), lower case."""
    return {
        language: frozenset(word.lower() for word in get_stop_words(language))
        for language in sorted(AVAILABLE_LANGUAGES)
    }


def stopwords_of(texts: Iterable[str]) -> frozenset[str]:
    """The stop words of the languages ``texts`` are written in, and the chat fillers.

    A language counts when its stop words are at least half as frequent in the texts as
    those of the language whose stop words are the most frequent: a chat in two languages
    gets both lists. Stop words are what tells languages apart in a few short messages."""
    tokens = Counter(t for text in texts for t in _TOKEN.findall(text.lower()))
    scores = {
        language: sum(n for token, n in tokens.items() if token in stop)
        for language, stop in _languages().items()
    }
    best = max(scores.values(), default=0)
    chosen = [
        _languages()[language] for language, score in scores.items() if best and 2 * score >= best
    ]
    return STOPWORDS.union(*chosen)


@dataclass(frozen=True)
class WindowInput:
    """What a writer gets: the window, its messages in order, the zone of local times, and
    the words of the thread's member names (lower case), which titles and tags leave out."""

    window: Window
    messages: Sequence[Message]
    tz: tzinfo
    names: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PostDraft:
    """What a writer gives back: the post's fields (content in Markdown)."""

    title: str
    summary: str
    content: str
    tags: tuple[str, ...] = field(default_factory=tuple)


@runtime_checkable
class Writer(Protocol):
    """Writes one post per window. ``name`` and ``version`` are recorded with each post; a
    new version does not rewrite stored posts (windows are skipped by what they hold)."""

    name: str
    version: str

    def write(self, window: WindowInput) -> PostDraft: ...


def links(text: str | None) -> list[str]:
    """The http(s) links in ``text``, in order, without trailing punctuation."""
    if not text:
        return []
    return [found.rstrip(".,;:!?)]}") for found in _LINK.findall(text)]


def words(text: str | None, stop: frozenset[str] = STOPWORDS) -> list[str]:
    """The words of ``text`` that can say what it is about (lower case, none of ``stop``)."""
    if not text:
        return []
    without_links = _STAND_INS.sub(" ", _LINK.sub(" ", text.lower()))
    return [w for w in _WORD.findall(without_links) if w not in stop]


class ExtractiveWriter:
    """A post made of the window's own words: keywords for the title and tags, the messages
    that carry the most of them as highlights. The same messages always give the same post."""

    name = "extractive"
    version = "2"  # 2: stop words of the chat's own languages

    def write(self, window: WindowInput) -> PostDraft:
        spoken = [m for m in window.messages if m.kind == "text" and m.text]
        people = {m.author_uuid for m in window.messages if m.author_uuid}
        stop = stopwords_of(m.text or "" for m in spoken)
        # Each word counts once per message, so one chatty message cannot set the topic.
        frequency: Counter[str] = Counter()
        for message in spoken:
            frequency.update(set(words(message.text, stop)) - window.names)
        keywords = [w for w, _ in sorted(frequency.items(), key=lambda kv: (-kv[1], kv[0]))]
        keywords = keywords[:KEYWORDS]
        title = _title(keywords, window.window)
        count = len(window.messages)
        summary = f"{count} message{'s' if count != 1 else ''} from {len(people)} " + (
            "person" if len(people) == 1 else "people"
        )
        summary += f", mostly about {_listed(keywords)}." if keywords else "."
        highlights = _highlights(spoken, frequency, stop)
        shared = list(dict.fromkeys(link for m in window.messages for link in links(m.text)))
        content = [summary, ""]
        if highlights:
            content += ["## Highlights", ""]
            for message in highlights:
                when = message.ts.astimezone(window.tz).strftime("%H:%M")
                # Each line of the message stays a line: a Markdown hard break between them.
                lines = chat_markdown(message.text or "").split("\n")
                quoted = "  \n".join(f"> {line}" for line in lines)
                content += [quoted, ">", f"> — {member(message.author_uuid)}, {when}", ""]
        if shared:
            content += ["## Links", "", *[f"- {chat_markdown(link)}" for link in shared], ""]
        return PostDraft(
            title=title,
            summary=summary,
            content="\n".join(content).rstrip() + "\n",
            tags=tuple(keywords),
        )


def _title(keywords: list[str], window: Window) -> str:
    if not keywords:
        return f"Quiet times ({window.label})"
    return _listed([keywords[0].capitalize(), *keywords[1:]])


def _listed(items: Sequence[str]) -> str:
    if len(items) < 2:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def _highlights(
    spoken: Sequence[Message], frequency: Counter[str], stop: frozenset[str]
) -> list[Message]:
    """The messages richest in the window's frequent words, at most one per author while
    others are left, shown in the order they were sent."""

    def score(message: Message) -> float:
        found = set(words(message.text, stop))
        return sum(frequency[w] for w in found) / math.sqrt(1 + len(found)) if found else 0.0

    scores = [(score(m), m) for m in spoken]
    ranked = [m for s, m in sorted(scores, key=lambda sm: (-sm[0], sm[1].seq)) if s > 0]
    chosen: list[Message] = []
    authors: set[str | None] = set()
    for message in ranked:
        if message.author_uuid not in authors:
            chosen.append(message)
            authors.add(message.author_uuid)
        if len(chosen) == HIGHLIGHTS:
            break
    for message in ranked:  # fewer authors than highlights: take their next best
        if len(chosen) == HIGHLIGHTS:
            break
        if message not in chosen:
            chosen.append(message)
    return sorted(chosen, key=lambda m: m.seq)


def writer_spec(writer: Writer) -> str:
    """How ``load_writer`` finds ``writer`` again in another process: ``extractive``, or the
    ``module:Class`` of its class (made there with no arguments)."""
    if type(writer) is ExtractiveWriter:
        return ExtractiveWriter.name
    kind = type(writer)
    if kind.__module__ == "__main__" or "<locals>" in kind.__qualname__:
        raise ConfigurationError(
            f"the writer {kind.__qualname__} is defined where other worker processes cannot "
            "import it; put it in a module and pass --writer package.module:Name"
        )
    return f"{kind.__module__}:{kind.__qualname__}"


def load_writer(spec: str | None) -> Writer:
    """The writer named ``module:attribute`` (a class, made with no arguments, or an
    object), or the extractive writer when ``spec`` is None or ``extractive``."""
    if spec is None or spec == ExtractiveWriter.name:
        return ExtractiveWriter()
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(
            f"--writer must be 'extractive' or 'package.module:Name', not {spec!r}"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"cannot import the writer's module {module_name!r} ({exc}); install it or fix the name"
        ) from exc
    try:
        found = getattr(module, attribute)
    except AttributeError:
        raise ConfigurationError(f"{module_name} has no {attribute!r} to write posts") from None
    writer = found() if isinstance(found, type) else found
    if not isinstance(writer, Writer):
        raise ConfigurationError(
            f"{spec} is not a Writer: it needs name, version and write(window) -> PostDraft"
        )
    return writer
