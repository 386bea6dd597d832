"""Chat text without names (``egregora.runner.people``): mentions, names, given names and phone
numbers in messages, and system notices, all become pseudonyms before a writer sees them.

Every expected pseudonym is minted here with a fixed key, the way the runner mints authors.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egregora.pseudonyms import Pseudonyms, member
from egregora.runner.people import ENCRYPTED, PHONE, SHARED, UNKNOWN_NOTICE, People

KEYED = Pseudonyms(bytes(32))


def mint(name: str) -> str:
    return KEYED.author("whatsapp", "t", name)


def pseudonym(name: str) -> str:
    return member(mint(name))


AUTHORS = [
    "Ana Silva",
    "Bruno Costa",
    "Inês Gonçalves",
    "José Antônio",
    "Will",
    "+1 202-555-0147",
]
NOTICES = [
    "Ana Silva added Carla Dias, Duda and +55 11 91234-5678",
    "Edu Lima joined using this group's invite link",
    "Messages and calls are end-to-end encrypted. No one outside of this chat can read them.",
]
PEOPLE = People(mint, AUTHORS, NOTICES)
ANA = pseudonym("Ana Silva")
BRUNO = pseudonym("Bruno Costa")
INES = pseudonym("Inês Gonçalves")
JOSE = pseudonym("José Antônio")
WILL = pseudonym("Will")
US_PHONE = pseudonym("+1 202-555-0147")
BR_PHONE = pseudonym("+55 11 91234-5678")
# Names as they appear in notices, for the notice shapes (each its own member).
NOTICE_NAMES = {"a": "Ana", "b": "Bruno", "c": "Carla", "i": "Inês Gonçalves", "j": "José Antônio"}


# -- mentions ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@Ana Silva can you?", f"{ANA} can you?"),
        ("@ana silva can you?", f"{ANA} can you?"),
        ("@Inês Gonçalves, hi", f"{INES}, hi"),
        ("ping @Will now", f"ping {WILL} now"),
        ("ping @will now", f"ping {WILL} now"),
        ("@Carla Dias!", f"{pseudonym('Carla Dias')}!"),  # a name known from a notice
    ],
)
def test_a_mention_of_a_known_member_becomes_the_members_pseudonym(
    text: str, expected: str
) -> None:
    assert PEOPLE.text(text) == expected


def test_a_phone_author_mentioned_by_digits_is_the_same_member() -> None:
    assert PEOPLE.text("@12025550147 call me") == f"{US_PHONE} call me"
    assert PEOPLE.text("@+1 202-555-0147 call me") == f"{US_PHONE} call me"
    assert PEOPLE.text("@5511912345678") == BR_PHONE


def test_a_mention_of_unknown_digits_is_the_member_with_that_phone() -> None:
    assert PEOPLE.text("@5511988887777 hi") == f"{pseudonym('+5511988887777')} hi"
    # Digits after a mention's number are not part of it.
    assert PEOPLE.text("@12025550147 2 apples") == f"{US_PHONE} 2 apples"
    assert PEOPLE.text("@123 is short") == "@123 is short"


def test_an_unknown_mention_takes_up_to_four_capitalised_words() -> None:
    assert PEOPLE.text("@Fulano De Tal what") == f"{pseudonym('Fulano De Tal')} what"
    assert PEOPLE.text("@Zoë") == pseudonym("Zoë")
    assert PEOPLE.text("@Αλέξης hello") == f"{pseudonym('Αλέξης')} hello"
    assert PEOPLE.text("@A B C D E") == f"{pseudonym('A B C D')} E"


def test_what_is_not_a_mention_stays() -> None:
    for text in ("@home tonight", "mail ana@example.com", "a @ b", "@ Ana"):
        assert PEOPLE.text(text) == text.replace("Ana", ANA)


# -- names in text ----------------------------------------------------------------------------
def test_known_names_are_replaced_anywhere_in_text() -> None:
    assert PEOPLE.text("where is Bruno Costa?") == f"where is {BRUNO}?"
    assert PEOPLE.text("BRUNO COSTA and bruno costa") == f"{BRUNO} and {BRUNO}"
    assert PEOPLE.text("Bruno  Costa\nsaid") == f"{BRUNO}\nsaid"
    assert PEOPLE.text("Edu Lima joined") == f"{pseudonym('Edu Lima')} joined"


def test_names_with_accents_match_as_written_in_either_normal_form() -> None:
    assert PEOPLE.text("Inês Gonçalves e José Antônio") == f"{INES} e {JOSE}"
    assert PEOPLE.text("INÊS GONÇALVES") == INES
    decomposed = "Ine\u0302s Gonc\u0327alves"
    assert PEOPLE.text(decomposed) == INES


def test_a_single_word_name_matches_only_as_written() -> None:
    assert PEOPLE.text("Will will come, will he?") == f"{WILL} will come, will he?"
    assert PEOPLE.text("WILL") == "WILL"


def test_names_inside_other_words_stay() -> None:
    for text in ("Banana", "Anastasia", "Willow", "Dudas", "BrunoCosta"):
        assert PEOPLE.text(text) == text
    assert PEOPLE.text("Ana's book") == f"{ANA}'s book"


def test_longer_names_win() -> None:
    people = People(mint, ["Ana", "Ana Silva"])
    assert people.text("Ana Silva and Ana") == f"{ANA} and {pseudonym('Ana')}"
    assert people.text("@Ana Silva @Ana") == f"{ANA} {pseudonym('Ana')}"


def test_a_longer_name_gives_way_to_a_shorter_one_where_the_word_goes_on() -> None:
    people = People(mint, ["Ana Silva", "Ana Silva Costa"])
    long, short = pseudonym("Ana Silva Costa"), ANA
    assert people.text("Ana Silva Costa") == long
    assert people.text("Ana Silva Costas") == f"{short} Costas"


def test_case_is_compared_the_way_the_regex_engine_does() -> None:
    people = People(mint, ["İrem Demir"])
    for text in ("İrem Demir", "İREM DEMIR", "irem demir", "@irem demir"):
        assert people.text(text) == pseudonym("İrem Demir"), text


def test_many_members_are_each_found() -> None:
    names = [f"Name{i} Surname{i}" for i in range(500)]
    people = People(mint, names)
    text = " ".join(f"@{n} and {n.upper()}" for n in names[::50])
    expected = " ".join(f"{pseudonym(n)} and {pseudonym(n)}" for n in names[::50])
    assert people.text(text) == expected


# -- given names ------------------------------------------------------------------------------
def test_a_given_name_of_one_member_is_that_member() -> None:
    assert PEOPLE.text("thanks Ana!") == f"thanks {ANA}!"
    assert PEOPLE.text("José, Inês and Bruno") == f"{JOSE}, {INES} and {BRUNO}"
    assert PEOPLE.text("@Ana") == ANA


def test_a_given_name_several_members_share_is_a_member() -> None:
    people = People(mint, ["Ana Silva", "Ana Sousa", "Bruno Costa"])
    assert people.text("ask Ana or Bruno") == f"ask {SHARED} or {BRUNO}"
    assert people.text("@Ana") == SHARED
    assert people.text("Ana Sousa") == pseudonym("Ana Sousa")


def test_given_names_match_only_capitalised_and_long_enough() -> None:
    assert PEOPLE.text("ana banana") == "ana banana"
    people = People(mint, ["J Smith"])
    assert people.text("J said hi to J Smith") == f"J said hi to {pseudonym('J Smith')}"


# -- phone numbers ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("+1 202-555-0147", US_PHONE),
        ("+12025550147", US_PHONE),
        ("+1 (202) 555-0147", US_PHONE),
        ("12025550147", US_PHONE),
        ("+55 11 91234-5678", BR_PHONE),
        ("+55 (11) 91234-5678", BR_PHONE),
        ("+44 20 7946 0958", PHONE),
        ("+351 912 345 678", PHONE),
        ("202-555-0147", PHONE),
        ("(202) 555-0147", PHONE),
        ("202.555.0147", PHONE),
        ("2025550199", PHONE),
        ("11 98765-4321", PHONE),
        ("https://wa.me/12025550147", US_PHONE),
        ("https://wa.me/447911123456?text=hi", PHONE),
        ("wa.me/5511912345678", BR_PHONE),
        ("tel:+1-202-555-0147", US_PHONE),
    ],
)
def test_phone_numbers_are_replaced(written: str, expected: str) -> None:
    assert PEOPLE.text(f"call {written} now") == f"call {expected} now"
    assert PEOPLE.text(f"({written})") == f"({expected})"


def test_a_phone_next_to_a_date_or_another_phone_is_read_on_its_own() -> None:
    assert PEOPLE.text("2025550199 2024-05-12") == f"{PHONE} 2024-05-12"
    assert PEOPLE.text("12025550147 5511912345678") == f"{US_PHONE} {BR_PHONE}"
    assert PEOPLE.text("+1 202-555-0147.") == f"{US_PHONE}."
    assert PEOPLE.text("tel:+12025550147, ok") == f"{US_PHONE}, ok"


@pytest.mark.parametrize(
    "text",
    [
        "on 2024-05-12 at 10:00",
        "12/05/2024, 10:00 - 11:30",
        "12.05.24 and 12.05.2024 and 12-05-2024",
        "2024-05-12 10:00:00",
        "see https://x.org/a/12025550147 and http://y.org/?q=+5511912345678",
        "mailto:12025550147@example.org",
        "costs 1.000.000.000 or 12,345,678,901",
        "from 192.168.100.200",
        "code 123456 and 1234567",
        "IMG-20240512-WA0001.jpg",
        "call 911 or +1 911",
    ],
)
def test_dates_times_links_and_short_numbers_stay(text: str) -> None:
    assert PEOPLE.text(text) == text


def test_text_without_names_is_unchanged() -> None:
    text = "**Bold** _it_ [link](https://x.org) `code` & <b> # heading\n> quote"
    assert PEOPLE.text(text) == text
    assert PEOPLE.text("") == ""


def test_name_replaces_like_text() -> None:
    assert PEOPLE.name("Trip with Ana Silva") == f"Trip with {ANA}"
    assert PEOPLE.name("Ana_Silva_cv.pdf") == f"{ANA}_cv.pdf"
    assert PEOPLE.name("+1 202-555-0147") == US_PHONE
    assert PEOPLE.name("Família") == "Família"


# -- system notices ---------------------------------------------------------------------------
NOTICE_CASES = [
    ("{i} added {j}", "{I} added {J}"),
    ("Ana added Bruno, Carla and +1 202-555-0147", "{A} added {B}, {C} and {US}"),
    ("Ana adicionou Bruno e Carla", "{A} added {B} and {C}"),
    ("Ana adicionou Bruno, Carla e +55 11 91234-5678", "{A} added {B}, {C} and {BR}"),
    ("Ana added you", "{A} added you"),
    ("Ana adicionou você", "{A} added you"),
    ("You added Ana", "You added {A}"),
    ("Você adicionou Ana", "You added {A}"),
    ("Ana removed Bruno", "{A} removed {B}"),
    ("Ana removeu Bruno", "{A} removed {B}"),
    ("Bruno left", "{B} left"),
    ("Bruno saiu", "{B} left"),
    ("You left", "You left"),
    (
        "+55 11 91234-5678 joined using this group's invite link",
        "{BR} joined using this group's invite link",
    ),
    (
        "Carla entrou usando o link de convite deste grupo",
        "{C} joined using this group's invite link",
    ),
    ("Carla joined from the community", "{C} joined from the community"),
    ('Ana created group "Trip with Bruno"', "{A} created the group"),
    ('Ana criou o grupo "Viagem"', "{A} created the group"),
    ('Ana changed the subject from "X" to "Bruno: *hi*"', "{A} changed the group name"),
    ('Ana changed the subject to "Family: Lisbon"', "{A} changed the group name"),
    ('Ana mudou o assunto de "Família" para "Família: Lisboa"', "{A} changed the group name"),
    ('Ana mudou o nome do grupo para "Família"', "{A} changed the group name"),
    ("Ana changed this group's icon", "{A} changed this group's icon"),
    ("Ana changed the group description", "{A} changed this group's description"),
    ("Ana changed this group's settings to allow admins", "{A} changed this group's settings"),
    ("Ana deleted this group's icon", "{A} deleted this group's icon"),
    ("Ana mudou a imagem deste grupo", "{A} changed this group's icon"),
    ("Ana mudou a descrição do grupo", "{A} changed this group's description"),
    ("Ana apagou a foto do grupo", "{A} deleted this group's icon"),
    ("Ana alterou as configurações do grupo", "{A} changed this group's settings"),
    (
        "Your security code with Bruno changed. Tap to learn more.",
        "The security code with {B} changed",
    ),
    ("O código de segurança com Bruno mudou.", "The security code with {B} changed"),
    (
        "Ana changed their phone number to a new number. Tap to message or add the new number.",
        "{A} changed their phone number",
    ),
    ("Ana mudou seu número de telefone", "{A} changed their phone number"),
    ("+1 202-555-0147 changed to +55 11 91234-5678", "{US} changed their phone number to {BR}"),
    (
        "Messages and calls are end-to-end encrypted. No one outside of this chat can read them.",
        ENCRYPTED,
    ),
    ("Messages to this group are now secured with end-to-end encryption.", ENCRYPTED),
    (
        "As mensagens e as chamadas são protegidas com a criptografia de ponta a ponta e ficam "
        "somente entre você e os participantes desta conversa.",
        ENCRYPTED,
    ),
    ("As mensagens deste grupo agora estão protegidas com a criptografia.", ENCRYPTED),
    (
        "Ana turned on disappearing messages. All new messages will disappear.",
        "{A} turned on disappearing messages",
    ),
    ("Ana turned off disappearing messages.", "{A} turned off disappearing messages"),
    ("Ana ativou as mensagens temporárias.", "{A} turned on disappearing messages"),
    ("Ana desativou as mensagens temporárias.", "{A} turned off disappearing messages"),
    ("Disappearing messages were turned off.", "Disappearing messages were turned off"),
    ("As mensagens temporárias foram ativadas.", "Disappearing messages were turned on"),
    ("You're now an admin", "You're now an admin"),
    ("Você agora é admin", "You're now an admin"),
]
EXPECTED = {
    "A": pseudonym("Ana"),
    "B": pseudonym("Bruno"),
    "C": pseudonym("Carla"),
    "I": INES,
    "J": JOSE,
    "US": US_PHONE,
    "BR": BR_PHONE,
}


@pytest.mark.parametrize(("notice", "expected"), NOTICE_CASES)
def test_each_notice_shape_is_rewritten_with_pseudonyms(notice: str, expected: str) -> None:
    raw = notice.format(**NOTICE_NAMES)
    said = PEOPLE.notice(raw)
    assert said == expected.format(**EXPECTED)
    for name in ("Ana", "Bruno", "Carla", "Inês", "José", "Família", "Trip", "Lisbon", "555"):
        assert name not in said


def test_a_notice_is_read_whole_even_with_a_verb_in_its_free_text() -> None:
    said = PEOPLE.notice('Ana changed the subject from "Bruno added Carla" to "x"')
    assert said == f"{pseudonym('Ana')} changed the group name"


@pytest.mark.parametrize(
    "notice",
    [
        "Ana pinned a message",
        "Bruno Costa's security code changed. <script>alert(1)</script>",
        "Missed voice call",
        "",
        "   ",
        "\ud800 added Bruno",
        "+1 202 changed to Bruno",
        "Ana added , ,",
    ],
)
def test_a_notice_of_an_unknown_shape_is_a_fixed_text(notice: str) -> None:
    assert PEOPLE.notice(notice) == UNKNOWN_NOTICE


def test_a_notice_keeps_names_it_lists_together_when_they_are_one_known_name() -> None:
    people = People(mint, ["Castro e Silva", "Ana"])
    said = people.notice("Ana adicionou Castro e Silva e Bruno")
    assert (
        said == f"{pseudonym('Ana')} added {pseudonym('Castro e Silva')} and {pseudonym('Bruno')}"
    )


def test_notices_read_the_ios_separator_and_direction_marks() -> None:
    assert PEOPLE.notice("\x1e\u200eBruno left") == f"{pseudonym('Bruno')} left"


def test_names_from_notices_become_known_members() -> None:
    people = People(mint, ["Ana Silva"], ["Ana Silva added Carla Dias and +55 11 91234-5678"])
    assert people.text("Carla Dias and Carla called 5511912345678") == (
        f"{pseudonym('Carla Dias')} and {pseudonym('Carla Dias')} called {BR_PHONE}"
    )
    assert People(mint, ["Ana Silva"]).text("Carla Dias") == "Carla Dias"


def test_words_are_the_lower_case_words_of_every_known_name() -> None:
    assert PEOPLE.words == {
        *("ana", "silva", "bruno", "costa", "inês", "gonçalves", "josé", "antônio"),
        *("will", "carla", "dias", "duda", "edu", "lima"),
    }
    assert People(mint, ["Jo Li", "You"], ["You added Maria"]).words == {"maria"}


def test_any_string_is_handled() -> None:
    for text in ("\ud800@\ud800", "@\x00", "+" * 50, "1 " * 500, "(" * 100 + "1", "@" * 100):
        assert isinstance(PEOPLE.text(text), str)
        assert isinstance(PEOPLE.notice(text), str)
    assert PEOPLE.text("5" * 40) == "5" * 40  # too long for a phone: an id


# -- properties -------------------------------------------------------------------------------
MULTI_WORD_NAMES = [n for n in AUTHORS if " " in n and not n.startswith("+")] + [
    "Carla Dias",
    "Edu Lima",
]
PHONE_FORMS = {
    "12025550147": ["+1 202-555-0147", "+12025550147", "12025550147", "+1 (202) 555-0147"],
    "5511912345678": ["+55 11 91234-5678", "+55 (11) 91234-5678", "5511912345678"],
}
PHONE_TRACES = ["12025550147", "2025550147", "555-0147", "5511912345678", "91234-5678"]
TOKENS = [
    *MULTI_WORD_NAMES,
    *(n.upper() for n in MULTI_WORD_NAMES),
    *(n.lower() for n in MULTI_WORD_NAMES),
    *(f"@{n}" for n in MULTI_WORD_NAMES),
    *(form for forms in PHONE_FORMS.values() for form in forms),
    *(f"@{digits}" for digits in PHONE_FORMS),
    "https://wa.me/12025550147",
    *("Ana", "Will", "will", "Duda", "Banana"),
    *("@", "@@", ".", ",", "!", "?", "(", ")", ":", "-", "'", '"', "*", "_", "+"),
    *("hello", "and", "e", "at", "10:00", "2024-05-12", "12/05/2024", "https://x.org/a", "42"),
]
SEPARATORS = [" ", "  ", "\n", ", ", ". ", " - "]


@st.composite
def chat_texts(draw: st.DrawFn) -> str:
    tokens = draw(st.lists(st.sampled_from(TOKENS), max_size=12))
    text = ""
    for token in tokens:
        text += token + draw(st.sampled_from(SEPARATORS))
    return text


@settings(max_examples=200, deadline=None)
@given(chat_texts())
def test_no_known_name_or_phone_survives_text(text: str) -> None:
    said = PEOPLE.text(text)
    for name in MULTI_WORD_NAMES:
        assert name.lower() not in said.lower(), (text, said)
    for trace in PHONE_TRACES:
        assert trace not in said, (text, said)
    assert re.search(r"(?<![^\W_])(?:Ana|Will|Duda)(?![^\W_])", said) is None, (text, said)


NOTICE_SHAPES = [shape for shape, _ in NOTICE_CASES if "{" in shape] + [
    "{a} added {b}, {c} and {i}",
    "{a} adicionou {b} e {c}",
    "{a} removed {b}",
    "{a} left",
    "{a} saiu",
    "{a} joined using this group's invite link",
    '{a} created group "{b}"',
    '{a} changed the subject from "{b}" to "{c}"',
    "{a} changed this group's icon",
    "Your security code with {a} changed.",
    "O código de segurança com {a} mudou.",
    "{a} changed their phone number to a new number.",
    "{a} turned on disappearing messages.",
    "{a} ativou as mensagens temporárias.",
]
NOTICE_PEOPLE = [
    *MULTI_WORD_NAMES,
    "Duda",
    "+1 202-555-0147",
    "+55 11 91234-5678",
    "You",
    "Você",
]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(NOTICE_SHAPES),
    st.lists(st.sampled_from(NOTICE_PEOPLE), min_size=5, max_size=5),
)
def test_no_known_name_survives_notice(shape: str, names: list[str]) -> None:
    said = PEOPLE.notice(shape.format(**dict(zip("abcij", names, strict=True))))
    for name in MULTI_WORD_NAMES:
        assert name.lower() not in said.lower(), said
    for trace in PHONE_TRACES:
        assert trace not in said, said
    assert "Duda" not in said and "Você" not in said


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_handled(text: str) -> None:
    assert isinstance(PEOPLE.text(text), str)
    assert isinstance(PEOPLE.name(text), str)
    said = PEOPLE.notice(text)
    assert said == UNKNOWN_NOTICE or "member-" in said or said[0].isupper()
