"""The system notices WhatsApp writes, in English, Portuguese (Brazil and Portugal), Spanish,
French, German, Italian, Dutch and Russian.

A notice on Android has no author (``12/01/2024, 10:00 - Ana added Bia``); on iOS it is written
as if the chat had sent it (``[12/01/2024, 10:00:00] Family: <LRM>Ana added Bia``), and some
phones put the chat's or the other person's name before the encryption notice even on Android.
A notice is matched whole. A notice that names an actor (a member, "You", "Você") starts with
the actor, which has no colon, so a message such as "Ana: I added salt" never reads as one.

Each language lists its notices twice over: whole patterns, and the lower-case words one of
which every pattern holds (a cheap test that spares the full patterns on most lines).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ACTOR = r"[^:\n]{1,100}?"


@dataclass(frozen=True)
class Language:
    """One language's notices: without an actor, after an actor, and their telling words."""

    # How the end-to-end encryption notice starts: it is a notice whatever name precedes it.
    encryption: tuple[str, ...]
    fixed: tuple[str, ...]  # other notices that name no actor first
    acts: tuple[str, ...]  # what follows "<actor> "
    words: tuple[str, ...]  # lower case; every notice of the language holds one


ENGLISH = Language(
    encryption=(
        r"Messages and calls are end-to-end encrypted\b",
        r"Messages (?:you send )?to this (?:group|chat) are now secured with end-to-end"
        r" encryption\b",
    ),
    fixed=(
        r"You(?:'re| are) now an admin",
        r"Disappearing messages were turned (?:on|off)\b.*",
        r"Your security code with .+ changed\b.*",
    ),
    acts=(
        r"created (?:group|this group)\b.*",
        r"added .+",
        r"removed .+",
        r"left",
        r"joined using this group's invite link",
        r"joined from the community",
        r"changed the (?:subject|group name)\b.*",
        r"changed (?:this group's|the group) (?:icon|description|settings)\b.*",
        r"deleted this group's icon",
        r"turned (?:on|off) disappearing messages\b.*",
        r"changed (?:their|your) phone number\b.*",
    ),
    words=(
        "encrypt", "admin", "disappearing", "security", "created", "added", "removed", "left",
        "joined", "changed", "deleted", "turned",
    ),
)  # fmt: skip

PORTUGUESE = Language(
    encryption=(
        r"As mensagens e (?:as )?chamadas s[ãa]o protegidas com a criptografia de ponta a ponta\b",
        r"As mensagens e (?:as )?chamadas s[ãa]o encriptadas ponto a ponto\b",
        r"As mensagens (?:deste grupo|desta conversa) agora est[ãa]o protegidas\b",
    ),
    fixed=(
        r"Voc[êe] agora [ée] (?:um )?admin\b.*",
        r"Agora [ée]s (?:um )?admin\b.*",
        r"As mensagens tempor[áa]rias foram (?:ativadas|desativadas)\b.*",
        r"(?:O )?(?:seu |teu )?c[óo]digo de seguran[çc]a (?:partilhado |compartilhado )?"
        r"(?:de|com) .+ (?:mudou|foi alterado)\b.*",
        # the exporter's own changes, with no actor before them
        r"(?:Voc[êe] )?(?:mudou|alterou|mudaste|alteraste) o (?:assunto|nome do grupo)\b.*",
        r"(?:Voc[êe] )?(?:criou|criaste) (?:o grupo|este grupo)\b.*",
    ),
    acts=(
        r"criou (?:o grupo|este grupo)\b.*",
        r"adicionou .+",
        r"removeu .+",
        r"saiu",
        r"entrou usando o link de convite(?: deste grupo)?",
        r"entrou atrav[ée]s da liga[çc][ãa]o de convite(?: deste grupo)?",
        r"(?:mudou|alterou) o (?:assunto|nome do grupo|nome)\b.*",
        r"(?:mudou|alterou|apagou|eliminou) a (?:imagem|descri[çc][ãa]o|foto)"
        r" (?:deste grupo|do grupo)\b.*",
        r"(?:mudou|alterou) as (?:configura[çc][õo]es|defini[çc][õo]es)"
        r" (?:deste grupo|do grupo)\b.*",
        r"(?:ativou|desativou) as mensagens tempor[áa]rias\b.*",
        r"(?:mudou|alterou) (?:seu|o) n[úu]mero de telefone\b.*",
    ),
    words=(
        "criptografia", "encriptadas", "protegidas", "admin", "tempor", "seguran", "criou",
        "adicionou", "removeu", "saiu", "entrou", "mudou", "alterou", "apagou", "eliminou",
        "ativou", "mudaste", "alteraste", "criaste",
    ),
)  # fmt: skip

SPANISH = Language(
    encryption=(
        r"Los mensajes y las llamadas est[áa]n cifrados de extremo a extremo\b",
        r"Los mensajes (?:de|en|que env[íi]as a) este (?:grupo|chat) ahora est[áa]n protegidos\b",
    ),
    fixed=(
        r"Ahora eres (?:un )?admin(?:istrador)?\b.*",
        r"Tu c[óo]digo de seguridad con .+ (?:cambi[óo]|ha cambiado)\b.*",
        r"Cambi[óo] tu c[óo]digo de seguridad con .+",
        r"Creaste (?:el grupo|este grupo)\b.*",
        r"Cambiaste (?:el asunto|el nombre del grupo)\b.*",
        r"Los mensajes temporales (?:se activaron|se desactivaron|est[áa]n activados"
        r"|est[áa]n desactivados)\b.*",
    ),
    acts=(
        r"cre[óo] (?:el grupo|este grupo)\b.*",
        r"(?:a[ñn]adi[óo]|agreg[óo]) a .+",
        r"te a[ñn]adi[óo]",
        r"elimin[óo] a .+",
        r"sali[óo](?: del grupo)?",
        r"se uni[óo](?: usando el enlace de invitaci[óo]n de este grupo| al grupo)?",
        r"cambi[óo] (?:el asunto|el nombre del grupo)\b.*",
        r"(?:cambi[óo]|elimin[óo]) (?:la imagen|el [íi]cono|la descripci[óo]n|los ajustes)"
        r" (?:de este grupo|del grupo)\b.*",
        r"(?:activ[óo]|desactiv[óo]) los mensajes temporales\b.*",
        r"cambi[óo] (?:su|tu) n[úu]mero de tel[ée]fono\b.*",
    ),
    words=(
        "cifrados", "protegidos", "admin", "seguridad", "temporales", "cre", "añadi", "anadi",
        "agreg",
        "elimin", "sali", "uni", "cambi",
    ),
)  # fmt: skip

FRENCH = Language(
    encryption=(
        r"Les messages et les appels sont chiffr[ée]s de bout en bout\b",
        r"Les messages .{0,60}sont (?:d[ée]sormais|maintenant) prot[ée]g[ée]s\b",
    ),
    fixed=(
        r"Vous [êe]tes (?:maintenant|d[ée]sormais) (?:un )?admin(?:istrateur)?\b.*",
        r"Votre code de s[ée]curit[ée] avec .+ a chang[ée]\b.*",
        r"Les messages [ée]ph[ée]m[èe]res (?:ont [ée]t[ée] )?(?:activ[ée]s|d[ée]sactiv[ée]s)\b.*",
    ),
    acts=(
        r"a cr[ée][ée] (?:le|ce) groupe\b.*",
        r"a ajout[ée] .+",
        r"vous a ajout[ée]",
        r"a retir[ée] .+",
        r"est parti(?:e|\(e\))?",
        r"a quitt[ée] (?:le|ce) groupe",
        r"a rejoint (?:ce|le) groupe\b.*",
        r"a (?:chang[ée]|modifi[ée]) (?:le sujet|le nom du groupe)\b.*",
        r"avez cr[ée][ée] (?:le|ce) groupe\b.*",
        r"avez (?:chang[ée]|modifi[ée]) (?:le sujet|le nom du groupe)\b.*",
        r"a (?:chang[ée]|modifi[ée]|supprim[ée]) (?:l['’]ic[ôo]ne|la photo|la description"
        r"|les param[èe]tres) (?:de ce groupe|du groupe)\b.*",
        r"a (?:activ[ée]|d[ée]sactiv[ée]) les messages [ée]ph[ée]m[èe]res\b.*",
        r"a chang[ée] de num[ée]ro(?: de t[ée]l[ée]phone)?\b.*",
    ),
    words=(
        "chiffr", "protég", "proteg", "admin", "sécurité", "securite", "éphém", "epherm", "créé",
        "cree", "ajout", "retir", "parti", "quitt", "rejoint", "chang", "modifi", "supprim",
    ),
)  # fmt: skip

GERMAN = Language(
    encryption=(
        r"Nachrichten und Anrufe sind Ende-zu-Ende-verschl[üu]sselt\b",
        r"Nachrichten,? .{0,80}sind jetzt mit Ende-zu-Ende-Verschl[üu]sselung gesch[üu]tzt\b",
    ),
    fixed=(
        r"Du bist jetzt (?:ein )?Admin\b.*",
        r"(?:Dein Sicherheitscode|Deine Sicherheitsnummer) f[üu]r .+ hat sich ge[äa]ndert\b.*",
        r"Selbstl[öo]schende Nachrichten wurden (?:aktiviert|deaktiviert)\b.*",
    ),
    acts=(
        r"hat (?:die|diese) Gruppe\b.* erstellt\b.*",
        r"hat .+ hinzugef[üu]gt\.?",
        r"hat .+ entfernt\.?",
        r"hat die Gruppe verlassen\.?",
        r"ist (?:der Gruppe )?(?:[üu]ber den Einladungslink dieser Gruppe )?beigetreten\.?",
        r"hat den (?:Betreff|Gruppennamen)\b.* ge[äa]ndert\b.*",
        r"hast (?:die|diese) Gruppe\b.* erstellt\b.*",
        r"hast den (?:Betreff|Gruppennamen)\b.* ge[äa]ndert\b.*",
        r"hat (?:das Gruppenbild|die Gruppenbeschreibung|die Gruppeneinstellungen)"
        r" (?:ge[äa]ndert|gel[öo]scht)\b.*",
        r"hat selbstl[öo]schende Nachrichten (?:aktiviert|deaktiviert)\b.*",
        r"hat (?:seine|ihre|eine neue) Telefonnummer\b.*",
    ),
    words=(
        "verschl", "admin", "sicherheitscode", "sicherheitsnummer", "selbstl", "erstellt",
        "hinzugef", "entfernt", "verlassen", "beigetreten", "geändert", "geandert", "gelöscht",
        "geloscht", "telefonnummer",
    ),
)  # fmt: skip

ITALIAN = Language(
    encryption=(
        r"I messaggi e le chiamate sono crittografati end-to-end\b",
        r"I messaggi (?:inviati )?(?:in|a) questo (?:gruppo|chat) sono ora protetti\b",
    ),
    fixed=(
        r"Ora sei (?:un )?amministratore\b.*",
        r"Il (?:tuo )?codice di sicurezza con .+ [èe] cambiato\b.*",
        r"Hai creato (?:il|questo) gruppo\b.*",
        r"Hai (?:cambiato|modificato) (?:l['’]oggetto|il nome del gruppo)\b.*",
        r"I messaggi effimeri sono stati (?:attivati|disattivati)\b.*",
    ),
    acts=(
        r"ha creato (?:il|questo) gruppo\b.*",
        r"ha aggiunto .+",
        r"ti ha aggiunto",
        r"ha rimosso .+",
        r"[èe] uscit[oa](?:/a)?",
        r"si [èe] unit[oa](?:/a)?(?: tramite il link d['’]invito(?: a questo gruppo)?)?",
        r"ha (?:cambiato|modificato) (?:l['’]oggetto|il nome del gruppo)\b.*",
        r"ha (?:cambiato|modificato|eliminato) (?:l['’]immagine|la descrizione|le impostazioni)"
        r" (?:di questo gruppo|del gruppo)\b.*",
        r"ha (?:attivato|disattivato) i messaggi effimeri\b.*",
        r"ha cambiato (?:il suo )?numero(?: di telefono)?\b.*",
    ),
    words=(
        "crittografati", "protetti", "amministratore", "sicurezza", "effimeri", "creato",
        "aggiunto", "rimosso", "uscit", "unit", "cambiato", "modificato", "eliminato",
    ),
)  # fmt: skip

DUTCH = Language(
    encryption=(
        r"Berichten en (?:gesprekken|oproepen) (?:worden|zijn) end-to-end versleuteld\b",
        r"Berichten .{0,60}(?:zijn|worden) nu beveiligd met end-to-end-?versleuteling\b",
    ),
    fixed=(
        r"(?:Je|U) bent nu (?:een )?beheerder\b.*",
        r"(?:Je|Uw) beveiligingscode (?:met|voor) .+ is gewijzigd\b.*",
        r"Tijdelijke berichten zijn (?:ingeschakeld|uitgeschakeld)\b.*",
    ),
    acts=(
        r"heeft (?:de |deze )?groep\b.* aangemaakt\b.*",
        r"heeft .+ toegevoegd",
        r"heeft .+ verwijderd",
        r"heeft de groep verlaten",
        r"is vertrokken",
        r"neemt deel via de uitnodigingslink van deze groep",
        r"is (?:lid|deelnemer) geworden(?: via de uitnodigingslink van deze groep)?",
        r"heeft het onderwerp\b.* gewijzigd\b.*",
        r"hebt (?:de |deze )?groep\b.* aangemaakt\b.*",
        r"hebt het onderwerp\b.* gewijzigd\b.*",
        r"heeft (?:de )?(?:groepsafbeelding|groepsbeschrijving|groepsinstellingen"
        r"|afbeelding van deze groep|beschrijving van deze groep) (?:gewijzigd|verwijderd)\b.*",
        r"heeft (?:tijdelijke berichten|berichten met vervaldatum)"
        r" (?:ingeschakeld|uitgeschakeld)\b.*",
        r"heeft (?:een nieuw telefoonnummer|(?:zijn|haar) telefoonnummer gewijzigd)\b.*",
    ),
    words=(
        "versleutel", "beveilig", "beheerder", "tijdelijke", "aangemaakt", "toegevoegd",
        "verwijderd", "verlaten", "vertrokken", "neemt deel", "lid geworden", "deelnemer geworden",
        "vervaldatum", "gewijzigd", "telefoonnummer",
    ),
)  # fmt: skip

RUSSIAN = Language(
    encryption=(
        r"Сообщения и звонки защищены сквозным шифрованием\b",
        r"Сообщения .{0,40}теперь защищены\b",
    ),
    fixed=(
        r"(?:Теперь вы|Вы теперь) администратор\b.*",
        r"Ваш код безопасности (?:с|для) .+ изменился\b.*",
        r"Исчезающие сообщения (?:включены|выключены|отключены)\b.*",
    ),
    acts=(
        r"создал(?:а|\(а\))? группу\b.*",
        r"добавил(?:а|\(а\))? .+",
        r"удалил(?:а|\(а\))? .+",
        r"(?:вышел|вышла)(?:\((?:а|-ла)\))?(?: из группы)?",
        r"покинул(?:а|\(а\))? группу",
        r"присоединил(?:ся|ась)(?:\((?:ась|-ась)\))?(?: к группе)?\b.*",
        r"изменил(?:а|\(а\))? (?:тему|название группы|изображение группы|описание группы"
        r"|настройки группы)\b.*",
        r"(?:включил|выключил|отключил)(?:а|\(а\))? исчезающие сообщения\b.*",
        r"создали группу\b.*",
        r"изменили (?:тему|название группы)\b.*",
        r"(?:сменил|изменил)(?:а|\(а\))? номер(?: телефона)?\b.*",
    ),
    words=(
        "шифрован", "защищены", "администратор", "безопасности", "исчезающие", "создал",
        "добавил", "удалил", "вышел", "вышла", "покинул", "присоединил", "изменил", "включил",
        "выключил", "отключил", "сменил",
    ),
)  # fmt: skip

LANGUAGES = (ENGLISH, PORTUGUESE, SPANISH, FRENCH, GERMAN, ITALIAN, DUTCH, RUSSIAN)

_ENCRYPTION = [p for lang in LANGUAGES for p in lang.encryption]
_FIXED = [p for lang in LANGUAGES for p in lang.fixed]
_ACTS = [p for lang in LANGUAGES for p in lang.acts]
NOTICE = re.compile(
    rf"(?:(?:{'|'.join(_ENCRYPTION)}).*|{'|'.join(_FIXED)}|{ACTOR} (?:{'|'.join(_ACTS)}))\Z",
    re.IGNORECASE | re.DOTALL,
)
# The encryption notice, whatever name precedes it: "Family: Messages and calls are ...".
ENCRYPTION = re.compile(rf"(?:{'|'.join(_ENCRYPTION)}).*\Z", re.IGNORECASE | re.DOTALL)


# For pyarrow's RE2 (no lookaround): a line whose text may be the encryption notice.
def _opening(pattern: str) -> str:
    """The plain words a pattern starts with (two at most), as a regular expression."""
    words = []
    for word in pattern.split(" ")[:2]:
        plain = re.match(r"[^.{\[(?*+\\|,]*", word)
        words.append(plain.group() if plain else "")
        if words[-1] != word:
            return " ".join(words)
    return " ".join(words) + " "


ENCRYPTION_START = ": \x1e?(?:" + "|".join(sorted({_opening(p) for p in _ENCRYPTION})) + ")"
# Searched in lowered text: an IGNORECASE alternation is many times slower in Python's re.
NOTICE_WORDS = "|".join(sorted({re.escape(w) for lang in LANGUAGES for w in lang.words}))
_WORDS = re.compile(NOTICE_WORDS)
# A name that holds one of these may be the start of a notice whose text holds ": " ("Ana
# changed the subject from "x: y"", "Cambiaste el asunto a "x: y""): what comes before the
# first ": " is then no name.
HINT = (
    r"(?:^| )(?:changed|created|added|removed|turned|deleted|joined|mudou|alterou|criou"
    r"|adicionou|removeu|ativou|desativou|apagou|entrou|mudaste|alteraste|cambi[óo]|cre[óo]"
    r"|a[ñn]adi[óo]"
    r"|elimin[óo]|creaste|cambiaste|a|avez|hat|hast|ha|hai|heeft|hebt|изменил\S*|создал\S*"
    r"|добавил\S*) "
)
HINT_PATTERN = re.compile(HINT, re.IGNORECASE)


def is_notice(text: str) -> bool:
    """Whether ``text`` is a whole system notice in one of the languages above."""
    return _WORDS.search(text.lower()) is not None and NOTICE.match(text) is not None


def is_encryption_notice(text: str) -> bool:
    return ENCRYPTION.match(text) is not None
