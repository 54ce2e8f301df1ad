"""ui/render.py: untrusted text is rendered as text, the moderation banner and status line, and the
join form's name check."""

from __future__ import annotations

import html

import pytest
from htmltools import tags
from shinychat.types import ChatMessage

from config import contract
from tests.ui.samples import HOSTILE, UNICODE, msg, notice, parse
from ui.client import READER_PREFIX
from ui.models import Standing
from ui.render import (
    clean_text,
    format_time,
    message_to_chat_content,
    notification_type,
    render_message_text,
    render_moderation,
    strike_status_text,
    validate_name,
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
    assert "chat-blocked" in str(render_moderation(blocked))
    lifted = notice(4, "unblocked", 0)
    assert render_moderation(blocked.with_notice(lifted)) is None
    assert notification_type(lifted) == "message"
    assert notification_type(notice(3, "blocked", LIMIT)) == "error"
    assert notification_type(notice(1)) == "warning"


def test_strike_status_text() -> None:
    warned = Standing(strikes=2, latest=notice(2, strike=2))
    assert strike_status_text(Standing()) is None
    assert strike_status_text(warned) == (
        f"⚠ Strike 2 of {LIMIT} — your message was masked. At {LIMIT} strikes you are blocked."
    )
    assert strike_status_text(Standing(strikes=1)) == (
        f"⚠ Strike 1 of {LIMIT} for profanity. At {LIMIT} strikes you are blocked."
    )
    assert strike_status_text(warned.with_refusal("alice", "no")) is None  # the banner says it all


@pytest.mark.parametrize("text", HOSTILE)
def test_moderation_texts_are_rendered_literally(text: str) -> None:
    assert render_moderation(None) is None
    assert render_moderation(Standing()) is None

    status = str(render_moderation(Standing().with_notice(notice(1, text=text))))
    parsed = parse(status)
    assert [tag for tag, _ in parsed.elements] == ["div", "strong", "div", "span", "span"]
    assert parsed.elements[0][1] == {"class": "chat-strikes alert alert-warning", "role": "status"}
    assert parsed.text_by_class["chat-strikes-line"].startswith(f"⚠ Strike 1 of {LIMIT}")
    assert parsed.text_by_class["chat-strikes-text"] == text
    assert parsed.text_by_class["chat-strikes-notice"].split() == ["Latest", "notice:"]
    assert parsed.text_by_class["chat-msg-time"] == "(12:03:04)"
    assert dict(parsed.elements[4][1])["title"] == "2024-05-01 12:03:04 UTC"

    banner = str(render_moderation(Standing().with_notice(notice(3, "blocked", LIMIT, text))))
    parsed = parse(banner)
    assert [tag for tag, _ in parsed.elements] == ["div", "span", "strong"]
    assert parsed.elements[0][1] == {"class": "chat-blocked alert alert-danger", "role": "alert"}
    assert parsed.text_by_class["chat-blocked-reason"] == text


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
        (f" {READER_PREFIX}0a1b2c3d ", f"{READER_PREFIX!r} are reserved"),
        ("UI-Reader-x", f"{READER_PREFIX!r} are reserved"),
    ],
)
def test_invalid_names(raw: str | None, message: str) -> None:
    check = validate_name(raw)
    assert check.name is None
    assert check.error is not None and message in check.error
