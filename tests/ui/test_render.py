"""ui/render.py: untrusted text is rendered as text; notices, the moderation banner and status line, errors
and the first screen worded in each language from codes and numbers; and the join forms' checks."""

from __future__ import annotations

import html

import pytest
from htmltools import tags
from shinychat.types import ChatMessage

from config import contract
from tests.ui.samples import HOSTILE, UNICODE, msg, notice, parse
from ui.client import READER_PREFIX, ApiUnreachable, ChatApiError, NameInUse, SendError
from ui.i18n import LANGUAGES, Lang, text
from ui.models import PASSWORD_MAX_CHARS, BlockedList, BlockedUser, FeedStatus, Notice, Standing, UserRecord
from ui.render import (
    block_reason,
    check_sign_in,
    check_sign_up,
    clean_text,
    format_time,
    join_failure,
    message_to_chat_content,
    moderator_failure,
    notice_text,
    notification_type,
    render_intro,
    render_limits,
    render_message_text,
    render_moderation,
    render_moderator_page,
    render_status,
    send_failure,
    status_text,
    strike_status_text,
    unblock_result,
    validate_name,
    wait_text,
)

LIMIT = contract.STRIKE_LIMIT


@pytest.mark.parametrize("text", HOSTILE + UNICODE)
def test_message_text_is_rendered_literally(text: str) -> None:
    markup = str(message_to_chat_content(msg(1, data=text)))
    parsed = parse(markup)
    # Only the elements we create: nothing from the message became markup.
    assert [tag for tag, _ in parsed.elements] == ["div", "div", "strong", "span", "div"]
    assert all(name in ("class", "title") for _, attrs in parsed.elements for name in attrs)
    # ...and the text a browser displays is exactly the message.
    assert parsed.text_by_class["chat-msg-text"] == text


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_escaped_in_the_markup(text: str) -> None:
    markup = str(render_message_text(text))
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert markup == f'<div class="chat-msg-text">{escaped}</div>'
    assert "<img" not in markup and "<script" not in markup and "<a " not in markup


@pytest.mark.parametrize("author", ["<b>mallory</b>", "<img src=x onerror=alert(1)>", "zoë 🦊"])
def test_author_is_rendered_literally(author: str) -> None:
    parsed = parse(str(message_to_chat_content(msg(1, author=author, data="hi"))))
    assert parsed.text_by_class["chat-msg-author"] == author
    assert len(parsed.elements) == 5


def test_header_shows_author_and_time() -> None:
    parsed = parse(str(message_to_chat_content(msg(1))))
    assert parsed.text_by_class["chat-msg-author"] == "alice"
    assert parsed.text_by_class["chat-msg-time"] == "12:03:04"
    assert " ".join(parsed.text_by_class["chat-msg-header"].split()) == "·"
    span_attrs = dict(parsed.elements[3][1])
    assert span_attrs["title"] == "2024-05-01 12:03:04 UTC"


def test_own_messages_are_marked() -> None:
    assert 'class="chat-msg chat-msg-own"' in str(message_to_chat_content(msg(1), own=True))
    assert 'class="chat-msg"' in str(message_to_chat_content(msg(1), own=False))


@pytest.mark.parametrize("text", HOSTILE)
def test_shinychat_receives_an_html_block_not_markdown(text: str) -> None:
    """What shinychat makes of our content: one html_block (inserted as-is by
    the browser, never through its markdown renderer) whose text is escaped."""
    chat_message = ChatMessage(content=message_to_chat_content(msg(1, data=text)))
    assert chat_message.content_type == "html"
    assert len(chat_message.segments) == 1
    block = chat_message.segments[0]
    assert isinstance(block, dict) and block["type"] == "html_block"
    parsed = parse(block["content"])
    assert len(parsed.elements) == 5
    assert parsed.text_by_class["chat-msg-text"] == text


def test_html_escape_helper_matches_htmltools() -> None:
    """Sanity check of the assumption the rendering tests rely on."""
    text = "<img src=x onerror=alert(1)> & co"
    assert str(tags.div(text)) == f"<div>{html.escape(text, quote=False)}</div>"


def test_control_characters_are_dropped_but_newlines_kept() -> None:
    assert clean_text("a\x00b\x1bc\x7fd") == "abcd"
    assert clean_text("line1\r\nline2\rline3\n\tindented") == "line1\nline2\nline3\n\tindented"


def test_format_time() -> None:
    assert format_time("2024-05-01 12:03:04") == "12:03:04"
    assert format_time("not a time <b>") == "not a time <b>"


def test_unblocked_user_has_no_banner_and_gets_good_news() -> None:
    blocked = Standing().with_notice(notice(3, "blocked", LIMIT))
    assert "chat-blocked" in str(render_moderation(blocked, "en"))
    lifted = notice(4, "unblocked", 0)
    assert render_moderation(blocked.with_notice(lifted), "es") is None
    assert notification_type(lifted) == "message"
    assert notification_type(notice(3, "blocked", LIMIT)) == "error"
    assert notification_type(notice(1)) == "warning"


def test_strike_status_text() -> None:
    warned = Standing(strikes=2, latest=notice(2, strike=2))
    assert strike_status_text(Standing()) is None
    line = strike_status_text(warned)
    assert line is not None and line.render("en") == (
        f"⚠ Strike 2 of {LIMIT} — your message was masked. At {LIMIT} strikes you are blocked."
    )
    assert line.render("es") == f"⚠ Falta 2 de {LIMIT}: tu mensaje se ha tapado. Con {LIMIT} faltas se te bloquea."
    line = strike_status_text(Standing(strikes=1))
    assert line is not None and line.render("en") == (
        f"⚠ Strike 1 of {LIMIT} for profanity. At {LIMIT} strikes you are blocked."
    )
    assert line.render("es") == f"⚠ Falta 1 de {LIMIT} por lenguaje malsonante. Con {LIMIT} faltas se te bloquea."
    assert strike_status_text(warned.with_refusal()) is None  # the banner says it all


def hostile_notice(i: int, kind: str, strike: int, hostile: str) -> Notice:
    """A notice whose API-given strings (terms, and the text a future kind is shown with) are hostile."""
    return Notice(f"n{i}", "alice", kind, strike, LIMIT, hostile, "2024-05-01 12:03:04", (hostile,), f"m{i}")


@pytest.mark.parametrize("hostile", HOSTILE)
def test_moderation_texts_are_rendered_literally(hostile: str) -> None:
    assert render_moderation(None, "en") is None
    assert render_moderation(Standing(), "en") is None

    warning = hostile_notice(1, "warning", 1, hostile)
    status = str(render_moderation(Standing().with_notice(warning), "en"))
    parsed = parse(status)
    assert [tag for tag, _ in parsed.elements] == ["div", "strong", "div", "span", "span"]
    assert parsed.elements[0][1] == {"class": "chat-strikes alert alert-warning"}
    assert parsed.text_by_class["chat-strikes-line"].startswith(f"⚠ Strike 1 of {LIMIT}")
    assert parsed.text_by_class["chat-strikes-text"] == notice_text(warning).render("en")
    assert f"“{clean_text(hostile)}”" in parsed.text_by_class["chat-strikes-text"]
    assert parsed.text_by_class["chat-strikes-notice"].split() == ["Latest", "notice:"]
    assert parsed.text_by_class["chat-msg-time"] == "(12:03:04)"
    assert dict(parsed.elements[4][1])["title"] == "2024-05-01 12:03:04 UTC"
    # a kind the UI does not know: the API's own text, as text
    future = hostile_notice(2, "appeal_rejected", 1, hostile)
    parsed = parse(str(render_moderation(Standing().with_notice(future), "es")))
    assert parsed.text_by_class["chat-strikes-text"] == clean_text(hostile)
    assert len(parsed.elements) == 5

    blocking = hostile_notice(3, "blocked", LIMIT, hostile)
    banner = str(render_moderation(Standing().with_notice(blocking), "es"))
    parsed = parse(banner)
    assert [tag for tag, _ in parsed.elements] == ["div", "span", "strong"]
    assert parsed.elements[0][1] == {"class": "chat-blocked alert alert-danger", "role": "alert"}
    assert parsed.text_by_class["chat-blocked-reason"] == notice_text(blocking).render("es")
    assert f"«{clean_text(hostile)}»" in parsed.text_by_class["chat-blocked-reason"]


# -- notices, worded from their code ---------------------------------------------------------------

NOT_THE_API_TEXT = "the API's English text, which the UI must not show"


@pytest.mark.parametrize(
    ("kind", "strike", "terms", "es", "en"),
    [
        (
            "warning",
            1,
            ("mierda",),
            f"Aviso: falta 1 de {LIMIT} por «mierda». Tu mensaje se ha tapado. Con {LIMIT} faltas se te bloquea.",
            f"Warning: strike 1 of {LIMIT} for “mierda”. Your message was masked. At {LIMIT} strikes you are blocked.",
        ),
        (
            "warning",
            2,
            (),
            f"Aviso: falta 2 de {LIMIT} por lenguaje malsonante. Tu mensaje se ha tapado. "
            f"Con {LIMIT} faltas se te bloquea.",
            f"Warning: strike 2 of {LIMIT} for profanity. Your message was masked. At {LIMIT} strikes you are blocked.",
        ),
        (
            "blocked",
            LIMIT,
            ("shit", "cabrón"),
            f"Se te ha bloqueado: falta {LIMIT} de {LIMIT} por «shit», «cabrón». Ya no puedes enviar ni leer "
            "mensajes. El equipo de moderación puede desbloquearte.",
            f"You are blocked: strike {LIMIT} of {LIMIT} for “shit”, “cabrón”. You can no longer send or read "
            "messages. A moderator can unblock you.",
        ),
        (
            "blocked",
            LIMIT,
            (),
            f"Se te ha bloqueado: falta {LIMIT} de {LIMIT} por lenguaje malsonante. Ya no puedes enviar ni leer "
            "mensajes. El equipo de moderación puede desbloquearte.",
            f"You are blocked: strike {LIMIT} of {LIMIT} for profanity. You can no longer send or read messages. "
            "A moderator can unblock you.",
        ),
        (
            "unblocked",
            0,
            (),
            "El equipo de moderación te ha desbloqueado: tus faltas se han borrado y puedes volver a enviar y leer "
            "mensajes.",
            "A moderator unblocked you: your strikes are cleared and you can send and read messages again.",
        ),
    ],
)
def test_notices_are_worded_from_their_code_in_each_language(
    kind: str, strike: int, terms: tuple[str, ...], es: str, en: str
) -> None:
    notice = Notice("n1", "alice", kind, strike, LIMIT, NOT_THE_API_TEXT, "2024-05-01 12:03:04", terms)
    assert notice_text(notice).render("es") == es
    assert notice_text(notice).render("en") == en


def test_a_spam_strike_is_worded_as_the_apis_spam_notice_and_read_from_its_category() -> None:
    for kind, strike in (("warning", 1), ("blocked", LIMIT)):
        raw = {
            "id": "n1",
            "author": "alice",
            "kind": kind,
            "strike": strike,
            "limit": LIMIT,
            "terms": [],
            "text": NOT_THE_API_TEXT,
            "timestamp": "2024-05-01 12:03:04",
            "category": "spam",
        }
        spam = Notice.from_json(raw)
        assert spam is not None and spam.category == "spam"
        for lang in ("es", "en"):
            worded = notice_text(spam).render(lang)
            api = contract.notice_text(kind, strike, LIMIT, (), language=lang, category="spam")
            assert worded.startswith(api.split(":")[0]) and "spam" in worded, (worded, api)
        # the same notice without a category is a profanity strike, as before
        plain = Notice.from_json({k: v for k, v in raw.items() if k != "category"})
        assert plain is not None and "spam" not in notice_text(plain).render("en")
    assert (
        notice_text(Notice.from_json({**raw, "kind": "warning", "strike": 1}))
        .render("es")
        .startswith("Aviso: falta 1 de 3 por spam: has enviado el mismo mensaje una y otra vez")
    )


def test_the_english_notice_text_is_the_contracts() -> None:
    """The UI's English says what the API's English says (the contract's texts), word for word where it can."""
    for kind, strike in (("warning", 1), ("blocked", LIMIT), ("unblocked", 0)):
        terms = () if kind == "unblocked" else ("darn",)
        api = contract.notice_text(kind, strike, LIMIT, terms)
        mine = notice_text(notice(1, kind, strike)).render("en")  # type: ignore[arg-type]
        assert mine.replace("“darn”", "darn").startswith(api.removesuffix("."))


def test_an_unknown_notice_kind_falls_back_to_the_apis_text() -> None:
    future = Notice("n1", "alice", "appeal_rejected", 1, LIMIT, "Your appeal\x00 was rejected.", "t")
    for lang in LANGUAGES:
        assert notice_text(future).render(lang) == "Your appeal was rejected."
    assert notification_type(future) == "warning"


def test_block_reason_by_source() -> None:
    by_notice = Standing().with_notice(notice(3, "blocked", LIMIT))
    assert block_reason(by_notice) == notice_text(notice(3, "blocked", LIMIT))
    by_record = Standing().with_user(UserRecord("alice", 1, True, "2024-05-01 12:00:00"))
    assert (
        block_reason(by_record)
        .render("en")
        .startswith(f"You have been blocked since 2024-05-01 12:00:00 UTC after {LIMIT} strikes for profanity")
    )
    assert (
        block_reason(by_record)
        .render("es")
        .startswith(f"Se te bloqueó el 2024-05-01 12:00:00 (UTC) tras {LIMIT} faltas")
    )
    by_refusal = Standing(strikes=1).with_refusal()
    assert block_reason(by_refusal).render("en").startswith(f"You are blocked after {LIMIT} strikes")
    for standing in (by_notice, by_record, by_refusal):
        assert block_reason(standing).render("en").endswith("A moderator can unblock you.")
        assert block_reason(standing).render("es").endswith("El equipo de moderación puede desbloquearte.")


# -- errors, worded from what happened -------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "en", "es"),
    [
        (NameInUse("taken", status=409), "That name is in use by someone else", "Ese nombre lo está usando"),
        (ChatApiError("author must not contain '/'", status=400), "That name cannot be used", "no se puede usar"),
        (ChatApiError("too large", status=413), "That name cannot be used", "no se puede usar"),
        (ChatApiError("Kafka is down", status=503), "The chat is unavailable right now", "no está disponible"),
        (ApiUnreachable("cannot reach http://x"), "Cannot reach the chat server", "No se puede contactar"),
        # unexpected: the API's words as the detail
        (ChatApiError("HTTP 502 from POST /sessions", status=502), "Cannot join: HTTP 502 from POST /sessions", "No"),
    ],
)
def test_join_failures(error: ChatApiError, en: str, es: str) -> None:
    worded = join_failure(error)
    assert worded.render("en").startswith(en)
    assert es in worded.render("es")
    assert "author must" not in worded.render("en") and "Kafka" not in worded.render("en")


@pytest.mark.parametrize(
    ("error", "en", "es"),
    [
        (SendError("x", status=413, api_error="data is too long"), "messages can be at most 2000", "como máximo 2000"),
        (SendError("x", status=400, api_error="data must not be empty"), "it must not be empty", "no puede estar"),
        (SendError("x", status=503, api_error="Kafka is unavailable"), "the chat is unavailable", "no está disponible"),
        (SendError("x", problem="unreachable"), "cannot reach the chat server", "no se puede contactar"),
        (SendError("x", problem="timeout"), "The chat server did not answer in time", "El servidor del chat no"),
        (SendError("x", problem="session_lost"), "your session expired", "tu sesión caducó"),
        (SendError("x", problem="renew_failed", status=500), "your session could not be renewed", "no se pudo"),
        (SendError("x", status=502), "Message not sent: x", "Mensaje no enviado: x"),
        (SendError("x", status=500, api_error="internal error"), "Message not sent: internal error", "Mensaje no"),
        (
            SendError("x", status=429, api_error="not sent: too fast", code="rate_limited", retry_after=7),
            "you are sending too fast. You can send again in 7 s; your text is still in the box",
            "estás enviando demasiado rápido. Podrás volver a enviar en 7 s; tu texto sigue en el cuadro",
        ),
        (
            SendError("x", status=429, api_error="not sent: slow mode", code="slow_mode", retry_after=25),
            "slow mode is on. You can send again in 25 s",
            "el modo lento está activado. Podrás volver a enviar en 25 s",
        ),
        # a 429 without a usable Retry-After (a balancer's): at least a second
        (SendError("x", status=429), "You can send again in 1 s", "Podrás volver a enviar en 1 s"),
    ],
)
def test_send_failures(error: SendError, en: str, es: str) -> None:
    worded = send_failure(error, Standing())
    assert en in worded.render("en")
    assert es in worded.render("es")
    assert "data " not in worded.render("en") and "Kafka" not in worded.render("es")


def test_a_refusal_as_blocked_says_why_in_the_readers_language() -> None:
    refused = SendError("x", status=403, api_error="alice is blocked since … after 3 strikes")
    standing = Standing().with_notice(notice(3, "blocked", LIMIT))
    worded = send_failure(refused, standing)
    assert worded.render("en") == "Message not sent: " + notice_text(notice(3, "blocked", LIMIT)).render("en")
    assert worded.render("es") == "Mensaje no enviado: " + notice_text(notice(3, "blocked", LIMIT)).render("es")


def test_the_limits_line_shows_the_slow_mode_and_the_countdown_only_when_they_apply() -> None:
    assert render_limits(0, 0, "en") is None
    assert str(render_limits(30, 0, "en")).split() == [
        "<p",
        'class="chat-limits">',
        "<span",
        'class="chat-slow-mode">Slow',
        "mode:",
        "one",
        "message",
        "every",
        "30",
        "s</span>",
        "</p>",
    ]
    both = str(render_limits(30, 12, "es"))
    assert "Modo lento: un mensaje cada 30 s" in both and "Podrás enviar de nuevo en 12 s" in both
    assert str(render_limits(0, 4, "en")).split() == [
        "<p",
        'class="chat-limits">',
        "<span",
        'class="chat-countdown">You',
        "can",
        "send",
        "again",
        "in",
        "4",
        "s</span>",
        "</p>",
    ]


def test_connection_status() -> None:
    assert status_text(FeedStatus("connected")).render("es") == "Conectado"
    assert status_text(FeedStatus("connecting")).render("en") == "Connecting to the chat server…"
    assert status_text(FeedStatus("problem", "HTTP 500 <b>")).render("es") == (
        "El servidor del chat informó de un problema: HTTP 500 <b>"
    )
    ok = parse(str(render_status(FeedStatus("connected"), "en")))
    assert ok.elements[0] == ("span", {"class": "chat-status ok", "role": "status"})
    assert ok.elements[1] == ("span", {"aria-hidden": "true"})
    down = parse(str(render_status(FeedStatus("problem", "<b>x</b>"), "en")))
    assert down.elements[0] == ("span", {"class": "chat-status down", "role": "status"})
    assert len(down.elements) == 2  # the API's text stays text


# -- the first screen -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        (
            "en",
            [
                "A public chat room",
                "Messages are moderated",
                "masked with asterisks",
                "is a strike",
                f"At {LIMIT} strikes you are blocked: you can neither send nor read messages.",
                "A moderator can unblock you.",
            ],
        ),
        (
            "es",
            [
                "Una sala de chat pública",
                "Los mensajes se moderan",
                "se tapan con asteriscos",
                "es una falta",
                f"Con {LIMIT} faltas se te bloquea: ya no puedes enviar ni leer mensajes.",
                "El equipo de moderación puede desbloquearte.",
            ],
        ),
    ],
)
def test_the_first_screen_explains_the_chat(lang: Lang, expected: list[str]) -> None:
    markup = str(render_intro(lang, joined=False))
    said = " ".join(parse(markup).text_by_class.values())
    for words in expected:
        assert words in said
    assert [tag for tag, _ in parse(markup).elements][:3] == ["div", "p", "h2"]
    # once joined, the rules fold away, still there
    folded = str(render_intro(lang, joined=True))
    assert folded.startswith("<details") and expected[-1] in folded and expected[0] not in folded


# -- the join form's name check ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("alice", "alice"),
        ("  bob  ", "bob"),
        ("x" * contract.MAX_AUTHOR_CHARS, "x" * contract.MAX_AUTHOR_CHARS),
        ("🦊" * contract.MAX_AUTHOR_CHARS, "🦊" * contract.MAX_AUTHOR_CHARS),
        ("<b>eve</b>", "<b>eve</b>"),
        ("ui", "ui"),
        ("ui-readers", "ui-readers"),
    ],
)
def test_valid_names(raw: str, expected: str) -> None:
    check = validate_name(raw)
    assert check.name == expected and check.error is None


TOO_LONG = contract.MAX_AUTHOR_CHARS + 1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "enter a name"),
        ("   ", "enter a name"),
        (None, "enter a name"),
        ("x" * TOO_LONG, f"at most {contract.MAX_AUTHOR_CHARS} characters (yours has {TOO_LONG})"),
        ("a\nb", "control characters"),
        ("a\x00b", "control characters"),
        # the shared feed reads as ui-reader-<8 hex>
        (f" {READER_PREFIX}0a1b2c3d ", f"“{READER_PREFIX}” are reserved"),
        ("UI-Reader-x", f"“{READER_PREFIX}” are reserved"),
    ],
)
def test_invalid_names(raw: str | None, message: str) -> None:
    check = validate_name(raw)
    assert check.name is None
    assert check.error is not None and message in check.error.render("en")
    assert check.error.render("es") != check.error.render("en")


def test_name_errors_in_spanish() -> None:
    assert validate_name("").error == text("join.name_empty")
    too_long = validate_name("x" * TOO_LONG).error
    assert too_long is not None
    assert too_long.render("es") == (
        f"Los nombres pueden tener como máximo {contract.MAX_AUTHOR_CHARS} caracteres (el tuyo tiene {TOO_LONG})."
    )
    reserved = validate_name(READER_PREFIX + "x").error
    assert reserved is not None and f"«{READER_PREFIX}» están reservados" in reserved.render("es")


# -- accounts: the forms' checks and the API's refusals ---------------------------------------------


def test_sign_up_checks_the_passwords_before_anything_is_sent() -> None:
    good = "correct horse"
    assert check_sign_up("  ana ", good, good, 10).name == "ana"
    assert check_sign_up("  ana ", good, good, 10).error is None
    assert check_sign_up("", good, good, 10).error == text("join.name_empty")
    assert check_sign_up("ana", "", "", 10).error == text("account.password_empty")
    assert check_sign_up("ana", None, None, 10).error == text("account.password_empty")
    assert check_sign_up("ana", "x" * 9, "x" * 9, 10).error == text("account.password_too_short", min=10)
    assert check_sign_up("ana", "x" * 10, "x" * 10, 10).name == "ana"  # the minimum is allowed
    too_long = "x" * (PASSWORD_MAX_CHARS + 1)
    assert check_sign_up("ana", too_long, too_long, 10).error == text(
        "account.password_too_long", max=PASSWORD_MAX_CHARS
    )
    mismatch = check_sign_up("ana", good, good + " ", 10)
    assert mismatch.name is None and mismatch.error == text("account.password_mismatch")
    assert mismatch.error.render("es") == "Las dos contraseñas no coinciden; escríbelas otra vez."
    assert check_sign_up("ana", good, None, 10).error == text("account.password_mismatch")
    # the minimum is the API's (GET /chat/settings), in the reader's words
    short = check_sign_up("ana", "abc", "abc", 1)
    assert short.name == "ana"
    one = check_sign_up("ana", "a", "a", 2).error
    assert one is not None and one.render("es") == "La contraseña debe tener al menos 2 caracteres."
    assert text("account.password_too_short", min=1).render("en") == "The password must have at least 1 character."


def test_sign_in_checks_only_what_any_account_has() -> None:
    assert check_sign_in(" ana ", "short").name == "ana"  # an account made under an older minimum still signs in
    assert check_sign_in("ana", "").error == text("account.password_empty")
    assert check_sign_in("ana", None).error == text("account.password_empty")
    assert check_sign_in(READER_PREFIX + "1", "x" * 12).error == text("join.name_reserved", prefix=READER_PREFIX)
    too_long = check_sign_in("ana", "x" * (PASSWORD_MAX_CHARS + 1)).error
    assert too_long == text("account.password_too_long", max=PASSWORD_MAX_CHARS)


@pytest.mark.parametrize(
    ("seconds", "en", "es"),
    [
        (0, "1 second", "1 segundo"),
        (1, "1 second", "1 segundo"),
        (45, "45 seconds", "45 segundos"),
        (60, "1 minute", "1 minuto"),
        (61, "2 minutes", "2 minutos"),
        (3599, "60 minutes", "60 minutos"),
        (3600, "1 hour", "1 hora"),
        (86400, "24 hours", "24 horas"),
    ],
)
def test_the_wait_is_said_in_the_largest_unit_rounded_up(seconds: int, en: str, es: str) -> None:
    assert (wait_text(seconds).render("en"), wait_text(seconds).render("es")) == (en, es)


@pytest.mark.parametrize(
    ("error", "account", "en", "es"),
    [
        (
            ChatApiError("taken", status=409, code="name_taken"),
            True,
            "That name, or one that looks like it, is already taken; please choose another. "
            "If the account is yours, sign in with your password.",
            "Ese nombre, u otro que se le parece, ya es de otra persona; elige otro. "
            "Si la cuenta es tuya, entra con tu contraseña.",
        ),
        (
            ChatApiError("taken", status=409, code="name_taken"),
            False,
            "That name, or one that looks like it, is already taken; please choose another.",
            "Ese nombre, u otro que se le parece, ya es de otra persona; elige otro.",
        ),
        (
            ChatApiError("no", status=401, code="bad_credentials"),
            True,
            "Wrong name or password.",
            "Nombre o contraseña incorrectos.",
        ),
        (
            ChatApiError("slow down", status=429, code="too_many_attempts", retry_after=90),
            True,
            "Too many attempts. Please try again in 2 minutes.",
            "Demasiados intentos. Vuelve a intentarlo dentro de 2 minutos.",
        ),
        (
            ChatApiError("slow down", status=429, code="too_many_attempts"),
            True,
            "Too many attempts. Please try again later.",
            "Demasiados intentos. Vuelve a intentarlo más tarde.",
        ),
        (
            ChatApiError("held", status=403, code="address_held", retry_after=86400),
            True,
            "After a block, no new accounts can be created from your connection for a while. "
            "Please try again in 24 hours.",
            "Tras un bloqueo, no se pueden crear cuentas desde tu conexión durante un tiempo. "
            "Vuelve a intentarlo dentro de 24 horas.",
        ),
        (
            ChatApiError("short", status=400, code="password_too_short"),
            True,
            "The password must have at least 12 characters.",
            "La contraseña debe tener al menos 12 caracteres.",
        ),
        (
            ChatApiError("long", status=400, code="password_too_long"),
            True,
            f"The password can have at most {PASSWORD_MAX_CHARS} characters.",
            f"La contraseña puede tener como máximo {PASSWORD_MAX_CHARS} caracteres.",
        ),
        (
            ChatApiError("weak", status=400, code="password_common"),
            True,
            "The chat server does not accept that password; please try another.",
            "El servidor del chat no acepta esa contraseña; prueba con otra.",
        ),
        (
            ChatApiError("a/b", status=400, code="author_slash"),
            True,
            "That name cannot be used",
            "Ese nombre no se puede usar",
        ),
    ],
)
def test_account_failures_are_worded_from_the_apis_code(error: ChatApiError, account: bool, en: str, es: str) -> None:
    worded = join_failure(error, account=account, min_chars=12)
    assert worded.render("en").startswith(en)
    assert worded.render("es").startswith(es)


# -- the moderator's page ----------------------------------------------------------------------------


def blocked_user(author: str = "alice", *notices: Notice, blocked_at: str | None = "2024-05-01 12:03:04"):
    return BlockedUser(author, LIMIT, blocked_at, notices)


def test_the_moderator_page_lists_each_blocked_user_with_the_notices_that_blocked_them_and_a_button() -> None:
    struck = (notice(1), notice(2, strike=2), notice(3, "blocked", LIMIT))
    page = BlockedList((blocked_user("alice", *struck), blocked_user("bob", blocked_at=None)), 2)
    for lang in LANGUAGES:
        markup = str(render_moderator_page("mia", page, lang))
        parsed = parse(markup)
        buttons = [attrs for tag, attrs in parsed.elements if tag == "button"]
        assert [b["data-author"] for b in buttons] == ["alice", "bob"]
        assert all("mod-unblock" in (b["class"] or "") for b in buttons)
        for each in struck:
            assert html.escape(notice_text(each).render(lang), quote=False) in markup
        assert text("mod.since", since="2024-05-01 12:03:04").render(lang) in markup
        assert text("mod.no_notices").render(lang) in markup  # bob's are no longer on the server
        assert markup.count(text("mod.told").render(lang)) == 1  # alice's, addressed to her: said so
        assert text("mod.unblock_button", name="bob").render(lang) in markup
    en = str(render_moderator_page("mia", page, "en"))
    assert "Moderating as <strong>mia</strong>" in en and "3 strikes" in en and "blocked since" in en
    es = str(render_moderator_page("mia", page, "es"))
    assert "Moderación: <strong>mia</strong>" in es and "3 faltas" in es and "bloqueado desde" in es


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_hostile_name_on_the_moderator_page_is_text_and_rides_the_button_as_data(hostile: str) -> None:
    markup = str(render_moderator_page(hostile, BlockedList((blocked_user(hostile),), 1), "en"))
    assert "<script>" not in markup and "<img" not in markup
    (button,) = [attrs for tag, attrs in parse(markup).elements if tag == "button"]
    assert button["data-author"] == hostile  # the browser reads back the very name


def test_the_moderator_page_says_none_bounded_stale_and_each_unblocks_result() -> None:
    assert text("status.connecting").render("en") in str(render_moderator_page("mia", None, "en"))
    none = str(render_moderator_page("mia", BlockedList((), 0), "es"))
    assert text("mod.none_blocked").render("es") in none and "<button" not in none
    bounded = str(render_moderator_page("mia", BlockedList((blocked_user(),), 7), "en"))
    assert "Showing 1 of 7 blocked users." in bounded
    sent = unblock_result("alice", None)
    failed = unblock_result("bob", ChatApiError("x", status=503, code="kafka_unavailable"))
    results = {"alice": sent, "bob": failed}
    markup = str(
        render_moderator_page("mia", BlockedList((blocked_user(),), 1), "en", results, text("mod.unreachable"))
    )
    assert "Unblock of alice sent (202)" in markup  # next to alice
    assert "Could not unblock bob: the chat server cannot record it right now" in markup  # bob, no longer listed
    assert "The list cannot be refreshed: The chat server cannot be reached" in markup


@pytest.mark.parametrize(
    ("error", "en", "es"),
    [
        (
            ChatApiError("wrong", status=403, code="bad_moderator_credentials"),
            "Wrong moderator name or secret.",
            "Nombre o clave de moderación incorrectos.",
        ),
        (ChatApiError("off", status=403, code="moderation_off"), "This chat has no moderators", "no tiene moderación"),
        (
            ChatApiError("locked", status=429, code="admin_guesses_locked", retry_after=42),
            "Please try again in 42 seconds.",
            "Vuelve a intentarlo dentro de 42 segundos.",
        ),
        (ChatApiError("locked", status=429), "Please try again later.", "más tarde"),
        (ApiUnreachable("down"), "cannot be reached", "No se puede contactar"),
        (ChatApiError("x", status=403, code="moderator_token_required"), "not a moderator's token", "no es de"),
        (ChatApiError("x", status=400, code="field_too_long"), "does not accept that name or secret", "no acepta"),
        (ChatApiError("boom <b>", status=500), "It did not work: boom <b>", "No se pudo: boom <b>"),
    ],
)
def test_moderator_failures_are_worded_from_the_apis_code(error: ChatApiError, en: str, es: str) -> None:
    worded = moderator_failure(error)
    assert en in worded.render("en") and es in worded.render("es")


def test_unblock_results() -> None:
    assert unblock_result("ana", None).render("es") == "Desbloqueo de ana enviado (202); se aplica en unos segundos."
    gone = unblock_result("ana", ChatApiError("x", status=404, code="unknown_user"))
    assert gone.render("en") == "Could not unblock ana: the server does not know that user."
    expired = unblock_result("ana", ChatApiError("x", status=403, code="moderator_token_required"))
    assert "please sign in to moderate again" in expired.render("en")
