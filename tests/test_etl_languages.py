"""System notices, omitted media and attachments as phones write them in other languages.

Each fixture here is an export from a phone set to Spanish, French, German, Italian, Dutch,
Russian or Portuguese (Portugal), or to a language the notice patterns do not know (Czech,
Vietnamese), plus the shapes of a line that are the same in every language: the encryption
notice after a chat's name, empty messages, a document's title before its attachment, media the
export left out. Every notice must be a system row with no author, the chat's own name (which
iOS writes before each notice) must never count as a member, and reading a file twice must add
nothing.
"""

# ruff: noqa: RUF001 -- WhatsApp's own words in other scripts: their letters are meant.
from __future__ import annotations

import pytest

from egregora.etl import parse_export
from egregora.etl.notices import is_notice
from egregora.storage import Storage
from tests import test_etl
from tests.test_etl import (
    FIXTURES,
    LRM,
    Expected,
    _fixture,
    _ingest,
    _media,
    _normal,
    _omitted,
    _rows,
    _seen,
    _system,
    _text,
)

# The database fixtures, which pytest finds in this module under their own names.
db, store = test_etl.db, test_etl.store

# When each entry of a system_* fixture was written: seven notices, two members' messages, two
# notices more, then a rename: on Android (not in the Portuguese file) by whoever exported the
# chat, on iOS the one that gave the chat the name its notices are written from.
ANDROID = [f"2024-03-14 09:{minute:02}" for minute in (0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)]
IOS = ["2024-03-14 09:00:00", "2024-03-14 09:00:01"]
IOS += [f"2024-03-14 09:{minute:02}:00" for minute in range(1, 11)]


def _group(
    times: list[str], notices: list[str], member: str, said: str, other: str, reply: str
) -> list[Expected]:
    """A system_* fixture's rows: its notices in order, with the two messages after the
    seventh (the first reads like a notice and must stay a message)."""
    first, rest = notices[:7], notices[7:]
    return [
        *(_system(when, text) for when, text in zip(times[:7], first, strict=True)),
        _text(times[7], member, said),
        _text(times[8], other, reply),
        *(_system(when, text) for when, text in zip(times[9:], rest, strict=False)),
    ]


ENCRYPTED_ES = (
    "Los mensajes y las llamadas están cifrados de extremo a extremo. Nadie fuera de este chat, "
    "ni siquiera WhatsApp, puede leerlos ni escucharlos."
)
ENCRYPTED_FR = (
    "Les messages et les appels sont chiffrés de bout en bout. Aucun tiers, pas même WhatsApp, "
    "ne peut les lire ou les écouter."
)
ENCRYPTED_DE = (
    "Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt. Niemand außerhalb dieses Chats kann "
    "sie lesen oder anhören, nicht einmal WhatsApp."
)
ENCRYPTED_IT = (
    "I messaggi e le chiamate sono crittografati end-to-end. Nessuno al di fuori di questa chat, "
    "nemmeno WhatsApp, può leggerne o ascoltarne il contenuto."
)
ENCRYPTED_NL = (
    "Berichten en gesprekken worden end-to-end versleuteld. Niemand buiten deze chat kan ze "
    "lezen of beluisteren, zelfs WhatsApp niet."
)
ENCRYPTED_RU = (
    "Сообщения и звонки защищены сквозным шифрованием. Третьи лица, включая WhatsApp, не могут "
    "прочитать ваши сообщения или прослушать звонки."
)
ENCRYPTED_PT_PT = (
    "As mensagens e chamadas são encriptadas ponto a ponto. Ninguém fora desta conversa, nem "
    "mesmo o WhatsApp, pode ler ou ouvi-las."
)
ENCRYPTED_EN = (
    "Messages and calls are end-to-end encrypted. No one outside of this chat, not even "
    "WhatsApp, can read or listen to them."
)

SECURITY_ES = "Cambió tu código de seguridad con Mateo Ruiz."
SECURITY_FR = "Votre code de sécurité avec Hugo Bernard a changé. Appuyez pour en savoir plus."
SECURITY_DE = (
    "Deine Sicherheitsnummer für Ben Fischer hat sich geändert. Tippe, um mehr zu erfahren."
)
SECURITY_IT = "Il tuo codice di sicurezza con Marco Bruno è cambiato. Tocca per saperne di più."
SECURITY_NL = "Uw beveiligingscode voor Bram Jansen is gewijzigd. Tik voor meer informatie."
SECURITY_RU = "Ваш код безопасности с контактом Борис Волков изменился. Подробнее"
SECURITY_PT_PT = "O seu código de segurança partilhado com Tiago Melo mudou. Toque para saber mais."

EXPECTED: dict[str, list[Expected]] = {
    "system_android_es.txt": _group(
        ANDROID,
        [
            ENCRYPTED_ES + " Toca para obtener más información.",
            'Lucía Gómez creó el grupo "Familia"',
            "Lucía Gómez añadió a Mateo Ruiz",
            'Lucía Gómez cambió el asunto de "Familia" a "Familia: Madrid"',
            "Lucía Gómez cambió el ícono de este grupo",
            "Sofía Díaz se unió usando el enlace de invitación de este grupo",
            SECURITY_ES + " Toca para obtener más información.",
            "Lucía Gómez eliminó a Sofía Díaz",
            "Mateo Ruiz salió del grupo",
            'Cambiaste el asunto de "Familia: Madrid" a "Familia: Gómez"',
        ],
        "Lucía Gómez",
        "Yo añadí sal",
        "Mateo Ruiz",
        "¿Mucha?",
    ),
    "system_ios_es.txt": _group(
        IOS,
        [
            ENCRYPTED_ES,
            "Lucía Gómez creó el grupo “Familia”",
            "Lucía Gómez añadió a Mateo Ruiz",
            "Lucía Gómez cambió el nombre del grupo a “Familia: Madrid”",
            "Lucía Gómez cambió el ícono de este grupo",
            "Sofía Díaz se unió usando el enlace de invitación de este grupo",
            SECURITY_ES + " Pulsa para obtener más información.",
            "Lucía Gómez eliminó a Sofía Díaz",
            "Mateo Ruiz salió",
            "Lucía Gómez cambió el nombre del grupo a “Familia Gómez”",
        ],
        "Lucía Gómez",
        "Yo añadí sal",
        "Mateo Ruiz",
        "¿Mucha?",
    ),
    "system_android_fr.txt": _group(
        ANDROID,
        [
            ENCRYPTED_FR + " Appuyez pour en savoir plus.",
            'Camille Martin a créé le groupe "Famille"',
            "Camille Martin a ajouté Hugo Bernard",
            'Camille Martin a changé le sujet de "Famille" à "Famille : Lyon"',
            "Camille Martin a changé l'icône de ce groupe",
            "Léa Petit a rejoint ce groupe via le lien d’invitation",
            SECURITY_FR,
            "Camille Martin a retiré Léa Petit",
            "Hugo Bernard est parti(e)",
            'Vous avez changé le sujet de "Famille : Lyon" à "Famille : Martin"',
        ],
        "Camille Martin",
        "J'ai ajouté du sel",
        "Hugo Bernard",
        "Merci !",
    ),
    "system_ios_fr.txt": _group(
        IOS,
        [
            ENCRYPTED_FR,
            "Camille Martin a créé le groupe « Famille »",
            "Camille Martin a ajouté Hugo Bernard",
            "Camille Martin a changé le nom du groupe en « Famille : Lyon »",
            "Camille Martin a changé l’icône de ce groupe",
            "Léa Petit a rejoint ce groupe via le lien d’invitation",
            SECURITY_FR,
            "Camille Martin a retiré Léa Petit",
            "Hugo Bernard est parti(e)",
            "Camille Martin a changé le nom du groupe en « Famille Martin »",
        ],
        "Camille Martin",
        "J'ai ajouté du sel",
        "Hugo Bernard",
        "Merci !",
    ),
    "system_android_de.txt": _group(
        ANDROID,
        [
            ENCRYPTED_DE + " Tippe, um mehr zu erfahren.",
            'Anna Schmidt hat die Gruppe "Familie" erstellt.',
            "Anna Schmidt hat Ben Fischer hinzugefügt.",
            'Anna Schmidt hat den Betreff von "Familie" zu "Familie: Berlin" geändert.',
            "Anna Schmidt hat das Gruppenbild geändert.",
            "Clara Weber ist über den Einladungslink dieser Gruppe beigetreten.",
            SECURITY_DE,
            "Anna Schmidt hat Clara Weber entfernt.",
            "Ben Fischer hat die Gruppe verlassen.",
            'Du hast den Betreff von "Familie: Berlin" zu "Familie: Schmidt" geändert.',
        ],
        "Anna Schmidt",
        "Ich habe Salz hinzugefügt",
        "Ben Fischer",
        "Gut so",
    ),
    "system_ios_de.txt": _group(
        IOS,
        [
            ENCRYPTED_DE,
            "Anna Schmidt hat die Gruppe „Familie“ erstellt.",
            "Anna Schmidt hat Ben Fischer hinzugefügt.",
            "Anna Schmidt hat den Gruppennamen zu „Familie: Berlin“ geändert.",
            "Anna Schmidt hat das Gruppenbild geändert.",
            "Clara Weber ist über den Einladungslink dieser Gruppe beigetreten.",
            SECURITY_DE,
            "Anna Schmidt hat Clara Weber entfernt.",
            "Ben Fischer hat die Gruppe verlassen.",
            "Anna Schmidt hat den Gruppennamen zu „Familie Schmidt“ geändert.",
        ],
        "Anna Schmidt",
        "Ich habe Salz hinzugefügt",
        "Ben Fischer",
        "Gut so",
    ),
    "system_android_it.txt": _group(
        ANDROID,
        [
            ENCRYPTED_IT + " Tocca per saperne di più.",
            'Giulia Romano ha creato il gruppo "Famiglia"',
            "Giulia Romano ha aggiunto Marco Bruno",
            'Giulia Romano ha cambiato l\'oggetto da "Famiglia" a "Famiglia: Roma"',
            "Giulia Romano ha cambiato l'immagine di questo gruppo",
            "Luca Conti si è unito tramite il link d'invito",
            SECURITY_IT,
            "Giulia Romano ha rimosso Luca Conti",
            "Marco Bruno è uscito",
            'Hai cambiato l\'oggetto da "Famiglia: Roma" a "Famiglia: Romano"',
        ],
        "Giulia Romano",
        "Ho aggiunto il sale",
        "Marco Bruno",
        "Quanto?",
    ),
    "system_ios_it.txt": _group(
        IOS,
        [
            ENCRYPTED_IT,
            "Giulia Romano ha creato il gruppo “Famiglia”",
            "Giulia Romano ha aggiunto Marco Bruno",
            "Giulia Romano ha cambiato l’oggetto in “Famiglia: Roma”",
            "Giulia Romano ha cambiato l’immagine di questo gruppo",
            "Luca Conti si è unito tramite il link d'invito",
            SECURITY_IT,
            "Giulia Romano ha rimosso Luca Conti",
            "Marco Bruno è uscito",
            "Giulia Romano ha cambiato l’oggetto in “Famiglia Romano”",
        ],
        "Giulia Romano",
        "Ho aggiunto il sale",
        "Marco Bruno",
        "Quanto?",
    ),
    "system_android_nl.txt": _group(
        ANDROID,
        [
            ENCRYPTED_NL + " Tik voor meer informatie.",
            'Anke de Vries heeft groep "Familie" aangemaakt',
            "Anke de Vries heeft Bram Jansen toegevoegd",
            'Anke de Vries heeft het onderwerp gewijzigd van "Familie" naar "Familie: Utrecht"',
            "Anke de Vries heeft de groepsafbeelding gewijzigd",
            "Cas Bakker is deelnemer geworden via de uitnodigingslink van deze groep",
            SECURITY_NL,
            "Anke de Vries heeft Cas Bakker verwijderd",
            "Bram Jansen heeft de groep verlaten",
            'U hebt het onderwerp gewijzigd van "Familie: Utrecht" naar "Familie: De Vries"',
        ],
        "Anke de Vries",
        "Ik heb zout toegevoegd",
        "Bram Jansen",
        "Hoeveel?",
    ),
    "system_ios_nl.txt": _group(
        IOS,
        [
            ENCRYPTED_NL,
            "Anke de Vries heeft deze groep aangemaakt",
            "Anke de Vries heeft Bram Jansen toegevoegd",
            "Anke de Vries heeft het onderwerp gewijzigd naar “Familie: Utrecht”",
            "Anke de Vries heeft de groepsafbeelding gewijzigd",
            "Cas Bakker is deelnemer geworden via de uitnodigingslink van deze groep",
            SECURITY_NL,
            "Anke de Vries heeft Cas Bakker verwijderd",
            "Bram Jansen heeft de groep verlaten",
            "Anke de Vries heeft het onderwerp gewijzigd naar “Familie de Vries”",
        ],
        "Anke de Vries",
        "Ik heb zout toegevoegd",
        "Bram Jansen",
        "Hoeveel?",
    ),
    "system_android_ru.txt": _group(
        ANDROID,
        [
            ENCRYPTED_RU + " Нажмите, чтобы узнать подробнее.",
            "Анна Смирнова создал(а) группу «Семья»",
            "Анна Смирнова добавил(а) Борис Волков",
            "Анна Смирнова изменил(а) тему с «Семья» на «Семья: Казань»",
            "Анна Смирнова изменил(а) изображение группы",
            "Вера Козлова присоединился(-ась) к группе по ссылке-приглашению",
            SECURITY_RU,
            "Анна Смирнова удалил(а) Вера Козлова",
            "Борис Волков вышел(а)",
            "Вы изменили тему с «Семья: Казань» на «Семья: Смирновы»",
        ],
        "Анна Смирнова",
        "Я добавила соль",
        "Борис Волков",
        "Много?",
    ),
    "system_ios_ru.txt": _group(
        IOS,
        [
            ENCRYPTED_RU,
            "Анна Смирнова создал(а) группу «Семья»",
            "Анна Смирнова добавил(а) Борис Волков",
            "Анна Смирнова изменил(а) название группы на «Семья: Казань»",
            "Анна Смирнова изменил(а) изображение группы",
            "Вера Козлова присоединился(-ась) к группе по ссылке-приглашению",
            SECURITY_RU,
            "Анна Смирнова удалил(а) Вера Козлова",
            "Борис Волков вышел(а)",
            "Анна Смирнова изменил(а) название группы на «Семья Смирновых»",
        ],
        "Анна Смирнова",
        "Я добавила соль",
        "Борис Волков",
        "Много?",
    ),
    "system_android_pt_pt.txt": _group(
        ANDROID,
        [
            ENCRYPTED_PT_PT + " Toque para saber mais.",
            'Rita Alves criou o grupo "Família"',
            "Rita Alves adicionou Tiago Melo",
            'Rita Alves alterou o assunto de "Família" para "Família: Porto"',
            "Rita Alves alterou a imagem deste grupo",
            "Inês Rocha entrou através da ligação de convite deste grupo",
            SECURITY_PT_PT,
            "Rita Alves removeu Inês Rocha",
            "Tiago Melo saiu",
        ],
        "Rita Alves",
        "Eu adicionei sal",
        "Tiago Melo",
        "Muito?",
    ),
    "system_ios_pt_pt.txt": _group(
        IOS,
        [
            ENCRYPTED_PT_PT,
            "Rita Alves criou o grupo “Família”",
            "Rita Alves adicionou Tiago Melo",
            "Rita Alves alterou o nome do grupo para “Família: Porto”",
            "Rita Alves alterou a imagem deste grupo",
            "Inês Rocha entrou através da ligação de convite deste grupo",
            SECURITY_PT_PT,
            "Rita Alves removeu Inês Rocha",
            "Tiago Melo saiu",
            "Rita Alves alterou o nome do grupo para “Família Alves”",
        ],
        "Rita Alves",
        "Eu adicionei sal",
        "Tiago Melo",
        "Muito?",
    ),
    # Notices in languages the patterns do not know: the chat's name before them gives them away.
    "unknown_language_ios.txt": _group(
        IOS,
        [
            "Zprávy a hovory jsou opatřeny koncovým šifrováním. Nikdo, kdo není přímým účastníkem "
            "této konverzace, ji nemůže sledovat ani poslouchat. Dokonce ani WhatsApp.",
            "Jana Nováková vytvořil(a) skupinu „Rodina“",
            "Jana Nováková přidal(a) Petr Svoboda",
            "Jana Nováková změnil(a) název skupiny na „Rodina: Brno“",
            "Jana Nováková změnil(a) ikonu této skupiny",
            "Eva Dvořáková se připojil(a) pomocí odkazu k pozvánce do této skupiny",
            "Bezpečnostní kód mezi vámi a uživatelem Petr Svoboda byl změněn. Další informace "
            "zobrazíte klepnutím.",
            "Jana Nováková odebral(a) Eva Dvořáková",
            "Petr Svoboda opustil(a) skupinu",
            "Jana Nováková změnil(a) název skupiny na „Rodina“",
        ],
        "Jana Nováková",
        "Přidala jsem sůl",
        "Petr Svoboda",
        "Díky",
    ),
    "unknown_language_ios_vi.txt": _group(
        IOS,
        [
            "Tin nhắn và cuộc gọi được mã hóa đầu cuối. Những người bên ngoài cuộc trò chuyện "
            "này, kể cả WhatsApp, sẽ không đọc hoặc nghe được.",
            "Lan Nguyễn đã tạo nhóm “Gia đình”",
            "Lan Nguyễn đã thêm Minh Trần",
            "Lan Nguyễn đã đổi tên nhóm thành “Gia đình: Huế”",
            "Lan Nguyễn đã đổi biểu tượng của nhóm này",
            "Hoa Lê đã tham gia bằng liên kết mời của nhóm này",
            "Mã bảo mật của bạn với Minh Trần đã thay đổi. Nhấn để tìm hiểu thêm.",
            "Lan Nguyễn đã xóa Hoa Lê",
            "Minh Trần đã rời nhóm",
            "Lan Nguyễn đã đổi tên nhóm thành “Gia đình”",
        ],
        "Lan Nguyễn",
        "Mình đã thêm muối",
        "Minh Trần",
        "Cảm ơn",
    ),
    "encryption_named_android.txt": [
        _system("2024-03-14 09:00", ENCRYPTED_EN + " Tap to learn more."),
        _text("2024-03-14 09:01", "Ana Sousa", "Who is coming on Saturday?"),
        _text(
            "2024-03-14 09:02",
            "Bia Costa",
            "Me. Are messages and calls end-to-end encrypted here too?",
        ),
        _text("2024-03-14 09:03", "Caio Lima", "I am"),
    ],
    # A chat between two people: iOS writes its notices after the other person's name.
    "encryption_one_to_one_ios.txt": [
        _system("2024-03-14 09:00:00", ENCRYPTED_EN),
        _text("2024-03-14 09:01:00", "Ana Sousa", "Bom dia!"),
        _text("2024-03-14 09:02:00", "Bia Costa", "Bom dia, Ana"),
        _omitted("2024-03-14 09:03:00", "Bia Costa", "image"),
        _system(
            "2024-03-14 09:04:00", "Your security code with Bia Costa changed. Tap to learn more."
        ),
        _text("2024-03-14 09:05:00", "Bia Costa", "This message was deleted."),
        _text("2024-03-14 09:06:00", "Ana Sousa", "What was that?"),
    ],
    "empty_messages.txt": [
        _text("2024-03-14 10:00", "Ana Sousa", "Who has the keys?"),
        ("2024-03-14 10:01", "text", "Franklin", None, None, None),
        ("2024-03-14 10:02", "text", "Franklin", None, None, None),
        _text("2024-03-14 10:03", "Bia Costa", "Franklin, you sent nothing"),
        _text("2024-03-14 10:04", "Franklin", "Sorry, they are with me"),
    ],
    "attachments_ios_documents.txt": [
        _media("2024-03-14 10:00:00", "Ana Sousa", "00000047-Resume.pdf", "document"),
        _media(
            "2024-03-14 10:01:00",
            "Bia Costa",
            "00000048-Receita.pdf",
            "document",
            "Para o jantar de domingo",
        ),
        _text("2024-03-14 10:02:00", "Ana Sousa", "Thanks!"),
        _omitted("2024-03-14 10:03:00", "Bia Costa", "document"),
        _text("2024-03-14 10:04:00", "Ana Sousa", "The menu did not come through"),
    ],
}

# Android's "<...>" forms name no media type.
OMITTED_ANDROID = [
    *("<Media omitted>", "<Mídia oculta>", "<Mídia omitida>", "<Multimedia omitido>"),
    *("<Archivo omitido>", "<Medien ausgeschlossen>", "<Medien weggelassen>", "<Médias omis>"),
    *("<Fichier omis>", "<Media omessi>", "<Media omesso>", "<Media weggelaten>"),
    *("<Без медиафайлов>", "<Файл пропущен>", "<Multimédia omitido>", "<Ficheiro não revelado>"),
]
PEOPLE = ("Ana Sousa", "Bia Costa")
# French Android phones write " à " between the date and the time.
EXPECTED["french_android_a.txt"] = [
    _system("2019-09-26 22:39", ENCRYPTED_FR),
    _system("2019-09-26 22:40", "Camille Martin a ajouté Luc Bernard"),
    _text("2019-09-26 22:41", "Camille Martin", "Bonsoir à tous"),
    _text("2019-09-26 22:42", "Luc Bernard", "Salut !"),
]
# iOS writes the chat's current name before each notice, and a group's name may hold ": ".
EXPECTED["system_ios_colon_name.txt"] = [
    _system(
        "2024-03-14 09:00",
        "As mensagens e as chamadas são protegidas com a criptografia de ponta a ponta e ficam "
        "somente entre você e os participantes desta conversa.",
    ),
    _system("2024-03-14 09:01", "Ana Sousa adicionou Bia Costa"),
    _text("2024-03-14 09:02", "Ana Sousa", "Bem-vinda: chegaste!"),
    _system("2024-03-14 09:03", "Bia Costa saiu"),
]
EXPECTED["omitted_media_languages.txt"] = [
    *(_omitted(f"2024-03-14 10:{n:02}", PEOPLE[n % 2]) for n in range(len(OMITTED_ANDROID))),
    _omitted("2024-03-14 10:16", "Ana Sousa", None, "Look at the cake"),
    _text("2024-03-14 10:17", "Bia Costa", "It said <Media omitted> here"),
]
# iOS names what it left out, in the language of the phone: English, Spanish, German, French,
# Italian, Dutch, Russian, Portuguese (Portugal) and Portuguese (Brazil), in that order.
KINDS = ("image", "video", "audio", "image", "video", "document")
OMITTED_IOS = [
    *zip(
        (
            *("image omitted", "video omitted", "audio omitted", "sticker omitted"),
            *("GIF omitted", "document omitted", "imagen omitida", "Video omitido"),
            *("audio omitido", "sticker omitido", "GIF omitido", "documento omitido"),
            *("Bild weggelassen", "Video weggelassen", "Audio weggelassen", "Sticker weggelassen"),
            *("GIF weggelassen", "Dokument weggelassen", "image absente", "vidéo absente"),
            *("audio omis", "sticker omis", "GIF retiré", "document manquant"),
            *("immagine omessa", "video omesso", "audio omesso", "sticker non incluso"),
            *("GIF esclusa", "documento omesso", "afbeelding weggelaten", "video weggelaten"),
            *("audio weggelaten", "sticker weggelaten", "GIF weggelaten", "document weggelaten"),
            *("изображение отсутствует", "видео отсутствует", "аудиофайл отсутствует"),
            *("стикер не добавлен", "GIF отсутствует", "документ отсутствует"),
            *("imagem não revelada", "vídeo não revelado", "ficheiro de áudio não revelado"),
            *("sticker não revelado", "GIF não revelada", "documento não revelado"),
        ),
        KINDS * 8,
        strict=True,
    ),
    ("imagem ocultada", "image"),
    ("vídeo omitido", "video"),
    ("áudio ocultado", "audio"),
    ("figurinha omitida", "image"),
]
EXPECTED["omitted_media_ios_languages.txt"] = [
    *(
        _omitted(f"2024-03-14 11:{n:02}:00", PEOPLE[n % 2], kind)
        for n, (_, kind) in enumerate(OMITTED_IOS)
    ),
    _text(f"2024-03-14 11:{len(OMITTED_IOS)}:00", "Ana Sousa", "None of it came through"),
]

# The chat's name, as written before its notices: never a member.
CHATS = {
    **{
        f"system_ios_{code}.txt": chat
        for code, chat in (
            ("es", "Familia Gómez"),
            ("fr", "Famille Martin"),
            ("de", "Familie Schmidt"),
            ("it", "Famiglia Romano"),
            ("nl", "Familie de Vries"),
            ("ru", "Семья Смирновых"),
            ("pt_pt", "Família Alves"),
        )
    },
    "unknown_language_ios.txt": "Rodina",
    "unknown_language_ios_vi.txt": "Gia đình",
    "encryption_named_android.txt": "Trilha do Sábado",
    "system_ios_colon_name.txt": "Família: Lisboa",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_fixture_reads_as_exactly_these_rows(store: Storage, name: str) -> None:
    """Notices are rows with no author, so the chat's name never counts as a member, and a
    second reading adds nothing."""
    expected = EXPECTED[name]
    result = _ingest(store, FIXTURES / name)
    rows = _rows(store)
    assert [_seen(r) for r in rows] == [_normal(e) for e in expected]
    for row in rows:
        omitted = row["kind"] == "media" and row["media_filename"] is None
        assert row["media_omitted"] is omitted
    members = {e[2] for e in expected if e[2] is not None}
    assert {r["author_raw"] for r in rows} - {None} == members
    if name in CHATS:
        assert f"{CHATS[name]}: ".encode() in _fixture(name)
        assert CHATS[name] not in members
    summary = result.summary()
    assert summary["authors"] == len(members)
    assert summary["system"] == sum(e[1] == "system" for e in expected)
    assert (result.new, result.duplicates) == (len(expected), 0)
    again = _ingest(store, FIXTURES / name)
    assert (again.new, again.duplicates) == (0, len(expected))
    assert _rows(store) == rows


# Notices in these languages, as other exports word them, that no fixture above writes.
WORDINGS = [
    "Seu código de segurança com Bia Costa mudou. Toque para saber mais.",
    "U bent nu beheerder",
    "Anke de Vries heeft berichten met vervaldatum uitgeschakeld.",
    "Lucía Gómez agregó a Pablo Ruiz",  # Latin-American Spanish
    'Alterou o assunto de "Jantar" para "Jantar: sábado"',  # the exporter's own, in Portugal
]


@pytest.mark.parametrize(
    ("line", "read"),
    [
        # A subject holding ": " does not make its first words a name.
        ('Alterou o assunto de "Jantar" para "Jantar: sábado"', "system"),
        ('Mudaste o nome do grupo para "Praia: agosto"', "system"),
        # An iOS document's title alone before its attachment, as some phones write it.
        (f"Ana Sousa: {LRM}Notes.txt {LRM}<attached: 00000001-Notes.txt>", "media"),
    ],
)
def test_lines_of_every_shape_read_whole(line: str, read: str) -> None:
    entries = parse_export(f"[14/03/2024, 10:00:00] {line}\n", name="line.txt")
    assert entries.kinds.to_pylist() == [read]
    if read == "media":
        assert entries.media_filenames.to_pylist() == ["00000001-Notes.txt"]
        assert entries.texts.to_pylist() == [None]
    else:
        assert entries.authors.to_pylist() == [None]


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if n.startswith(("system_", "enc"))))
def test_every_notice_in_a_known_language_is_known_by_its_words(name: str) -> None:
    """Where no sender gives a notice away (a chat between two people, whose name is the other
    person's; an Android subject holding ": "), only its words make it a notice."""
    for _, kind, _, text, _, _ in EXPECTED[name]:
        if kind == "system":
            assert text is not None and is_notice(text), text


@pytest.mark.parametrize("text", WORDINGS)
def test_other_wordings_of_these_exports_are_notices_too(text: str) -> None:
    assert is_notice(text)


def test_the_new_fixtures_hold_the_marks_phones_write() -> None:
    """Guard the invisible marks, so an editor that 'cleans' a fixture fails this test."""
    for name, chat in CHATS.items():
        marked = _fixture(name).count(f"{chat}: {LRM}".encode())
        notices = sum(e[1] == "system" for e in EXPECTED[name])
        assert marked == (0 if name.endswith("_android.txt") else notices), name
    assert _fixture("encryption_one_to_one_ios.txt").count(f"Bia Costa: {LRM}".encode()) == 4
    documents = _fixture("attachments_ios_documents.txt")
    assert documents.count(f": {LRM}".encode()) == 3
    assert documents.count(f" \u2022 {LRM}".encode()) == 3
    assert documents.count(f"{LRM}<attached: ".encode()) == 2
    media = _fixture("omitted_media_ios_languages.txt")
    assert media.count(f"\n{LRM}[".encode()) + media.startswith(LRM.encode()) == len(OMITTED_IOS)
    for words, _ in OMITTED_IOS:
        assert f": {LRM}{words}\n".encode() in media, words
    android = _fixture("omitted_media_languages.txt").decode()
    assert all(f": {words}\n" in android for words in OMITTED_ANDROID)
    assert _fixture("french_android_a.txt").count("/2019 à 22:".encode()) == 4
    empty = _fixture("empty_messages.txt")
    assert b"Franklin: \n" in empty
    assert b"Franklin:\n" in empty
    for name in EXPECTED:
        data = _fixture(name)
        data.decode("utf-8")
        assert b"\r" not in data, name
