"""The column-wise parser reads every entry exactly as the one-entry reading (`_classify`) does.

`parse_export` reads most entries with Arrow kernels and hands only some to `_classify`; these
properties generate entries full of the characters that decide the reading (colons, brackets,
"<", the iOS notice mark, direction marks, Unicode spaces, notice words, long names, blank
texts, continuation lines) and require the same kind, author, text and attachment as
`_classify` gives for each entry's whole text.
"""

from __future__ import annotations

import sys
from datetime import datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st

from egregora.etl.formats import clean
from egregora.etl.ingest import event_ids
from egregora.etl.parse import WHITESPACE, _classify, parse_export

# No digits: a generated line never starts with a header by chance.
PIECES = (
    *("Ana", "Bia Costa", " ", "  ", ":", ": ", "(", ")", "<", ">", "\u200e", "\u200f", "\u00a0"),
    *("\u202f", "\u3000", "\t", "\x1e", "\x1f", "ç", "😂", "omit", "ocult", "omitted"),
    *("<Media omitted>", "image omitted", "IMG-x.jpg (file attached)", "<attached: x.jpg>"),
    *(" changed the subject ", " added ", " left", "Messages and calls are end-to-end encrypted"),
    *("You're now an admin", " mudou o assunto ", "a" * 101, "x (arquivo anexado)"),
    *("imagem ocultada", "vídeo omitido", "figurinha omitida", "Bild weggelassen"),
    *(" añadió a ", " hat ", " ha aggiunto ", "Сообщения и звонки защищены сквозным шифрованием"),
    *("messages AND calls are end-to-end encrypted", "Los mensajes y las llamadas están cifrados"),
    *("<Multimedia omitido>", "<Без медиафайлов>", "x.pdf \u2022 2 pages <attached: x.pdf>"),
    *(":", "Ana:", "\u200e", "Ana changed", " Ana ", ": \u200eAna added Bia", ": \u200eoi"),
)
texts = st.one_of(
    st.sampled_from(PIECES), st.lists(st.sampled_from(PIECES), max_size=6).map("".join)
)
names = st.one_of(
    st.sampled_from(["Ana", "Bia Costa", " Ana ", "Ana changed the subject", "a" * 100, "x:y"]),
    texts,
)
entries = st.lists(
    st.tuples(
        names, st.sampled_from(["", ": ", ":", ": \u200e"]), texts, st.lists(texts, max_size=2)
    ),
    min_size=1,
    max_size=12,
)
# One entry per way a "Name: text" line can need the closer look, each between two plain ones.
Entry = tuple[str, str, str, list[str]]
TRICKY: list[Entry] = [
    ("Ana", ": ", text, [])
    for text in (
        *("imagem ocultada", "image omitted", "<Media omitted>", "IMG-1.jpg (file attached)"),
        *("<attached: x.jpg>", "  ", "\x1eAna added Bia", "a\x1eb", "\u200eYou're now an admin"),
    )
] + [("Ana changed the subject to", ": ", "x", []), ("Ana", ": ", "a", ["more"])]


def _export(generated: list[tuple[str, str, str, list[str]]]) -> tuple[str, list[str]]:
    """The export's text, and each entry's text after its header (continuation lines too)."""
    lines, rests = [], []
    for minute, (name, separator, text, more) in enumerate(generated):
        rest = "\n".join([name + separator + text, *more])
        lines.append(f"13/01/2024, 10:{minute:02} - {rest}")
        rests.append(rest)
    return "\n".join(lines) + "\n", rests


@settings(max_examples=500, deadline=None)
@given(entries)
@example([("Bia", ": ", "hi", [])] + [e for t in TRICKY for e in (t, ("Bia", ": ", "hi", []))])
def test_every_entry_reads_as_classify_reads_it(
    generated: list[tuple[str, str, str, list[str]]],
) -> None:
    text, rests = _export(generated)
    parsed = parse_export(text, name="generated.txt")
    assert len(parsed) == len(rests)
    columns = zip(
        parsed.kinds.to_pylist(),
        parsed.authors.to_pylist(),
        parsed.texts.to_pylist(),
        parsed.media_filenames.to_pylist(),
        parsed.media_types.to_pylist(),
        parsed.omitted_media.to_pylist(),
        strict=True,
    )
    looked = [_classify(clean(rest).rstrip()) for rest in rests]
    # A name whose every entry is marked as a notice (iOS) and still reads as a message is the
    # chat's own: those entries are notices.
    spoke = {c[1] for c in looked if not c[6] and c[0] != "system"}
    for rest, read, one in zip(rests, columns, looked, strict=True):
        expected = ("system", None, *one[2:6]) if one[6] and one[1] not in spoke else one[:6]
        assert read == expected, rest
    assert parsed.local_times.to_pylist() == [
        datetime(2024, 1, 13, 10, minute) for minute in range(len(rests))
    ]
    ids = event_ids("generated", parsed).to_pylist()
    assert len(set(ids)) == len(ids)  # identical entries are numbered, never merged


def test_whitespace_is_what_python_strips() -> None:
    assert sorted(WHITESPACE) == [c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()]


def test_identical_entries_get_their_own_ids_and_keep_them() -> None:
    line = "13/01/2024, 10:00 - Ana: ok\n"
    three = event_ids("t", parse_export(line * 3, name="x")).to_pylist()
    two = event_ids("t", parse_export(line * 2, name="x")).to_pylist()
    assert len(set(three)) == 3
    assert three[:2] == two  # a longer export repeats the shorter one's ids
