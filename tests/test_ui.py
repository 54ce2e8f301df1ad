"""Tests for the Shiny UI (ui/): safe rendering, name checks, the feed store and
poller, sending, and the app itself.

The poller and sender are tested against a small real HTTP server (Flask under
werkzeug on a free loopback port) that imitates the chat API's contract; no
Kafka, Spark or real API is needed.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import unicodedata
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, jsonify, request
from websockets.sync.client import ClientConnection, connect
from werkzeug.serving import make_server

from ui.feed import (
    ApiUnreachable,
    ChatApiError,
    ChatSession,
    FeedMessage,
    FeedPoller,
    MessageStore,
    NameInUse,
    Notice,
    NoticeBatch,
    NoticeFollower,
    SendError,
    SessionLost,
    Standing,
    UserRecord,
    blocked_explanation,
    fetch_user,
    open_session,
    send_message,
    user_url,
)

# --------------------------------------------------------------------------
# A tiny imitation of the chat API
# --------------------------------------------------------------------------


STRIKE_LIMIT = 3


class FakeChatAPI:
    """The contract of POST/DELETE /sessions, POST/GET /messages and
    GET /users/<author>[/notices], in memory.

    Sessions: ``POST /sessions`` hands out a token for a free name (NFC, trimmed:
    the API normalises names) and answers 409 while another session holds it;
    ``DELETE /sessions`` ends one. Every endpoint but ``GET /users/<author>``
    needs ``Authorization: Bearer <token>`` (401 without a live one) and acts
    as the token's author. :meth:`expire` ends a session as its TTL would.
    ``session_log`` records ("open" | "delete", author) as they happen,
    ``auth_log`` (method, path, bearer token or None) for every request.

    Message cursors look like "<epoch>:<count>", notice cursors
    "<epoch>.<count>"; bumping ``epoch`` expires them all. ``fail_next`` holds
    status codes to answer the next GET /messages requests with,
    ``notices_fail_next`` and ``users_fail_next`` the same for
    GET /users/<author>/notices and GET /users/<author>.
    ``overlap`` makes long-polls also return that many already-delivered
    messages (an at-least-once feed). ``get_log`` records GET /messages query
    strings, ``notices_log`` the notices' (author, query) pairs, ``user_uris``
    the raw request URIs under /users/, and ``posts`` every POST /messages
    body received, accepted or not.

    Moderation: :meth:`strike` publishes a warning notice (a ``blocked`` one
    at the third strike); blocked users get 403 on POST and GET /messages.
    :meth:`unblock` lifts the block with an ``unblocked`` notice.
    :meth:`wake_notices` ends the notices long-polls in flight, once.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.messages: list[dict[str, str]] = []
        self.notices: list[dict[str, Any]] = []
        self.strikes: dict[str, int] = {}
        self.blocked_at: dict[str, str] = {}
        self.epoch = 1
        self.fail_next: list[int] = []
        self.notices_fail_next: list[int] = []
        self.users_fail_next: list[int] = []
        self.overlap = 0
        self.tail_size = 50
        self.released = False
        self.get_log: list[dict[str, str]] = []
        self.notices_log: list[tuple[str, dict[str, str]]] = []
        self.user_uris: list[str] = []
        self.posts: list[Any] = []
        self.notice_wakeups = 0
        self.tokens: dict[str, str] = {}  # live sessions: token -> author
        self.session_log: list[tuple[str, str]] = []
        self.auth_log: list[tuple[str, str, str | None]] = []
        self.app = self._make_app()

    @staticmethod
    def now() -> str:
        return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")

    def strike(self, author: str, terms: tuple[str, ...] = ("darn",), text: str | None = None) -> dict[str, Any]:
        """Publish the author's next strike as a notice (blocking at the third)."""
        with self.cond:
            strike = self.strikes.get(author, 0) + 1
            kind = "blocked" if strike >= STRIKE_LIMIT else "warning"
            words = ", ".join(terms)
            if text is None:
                text = (
                    f"You are blocked: strike {STRIKE_LIMIT} of {STRIKE_LIMIT} for {words}. "
                    "You can no longer send or read messages."
                    if kind == "blocked"
                    else f"Warning: strike {strike} of {STRIKE_LIMIT} for {words}. Your message "
                    f"was masked. At {STRIKE_LIMIT} strikes you are blocked."
                )
            timestamp = self.now()
            notice: dict[str, Any] = {
                "id": uuid.uuid4().hex,
                "author": author,
                "kind": kind,
                "strike": strike,
                "limit": STRIKE_LIMIT,
                "terms": list(terms),
                "message_id": uuid.uuid4().hex,
                "text": text,
                "timestamp": timestamp,
            }
            self.strikes[author] = strike
            if kind == "blocked":
                self.blocked_at[author] = timestamp
            self.notices.append(notice)
            self.cond.notify_all()
        return notice

    def unblock(self, author: str) -> dict[str, Any]:
        """A moderator unblocks the author: 0 strikes, and an ``unblocked`` notice."""
        with self.cond:
            notice: dict[str, Any] = {
                "id": uuid.uuid4().hex,
                "author": author,
                "kind": "unblocked",
                "strike": 0,
                "limit": STRIKE_LIMIT,
                "terms": [],
                "message_id": None,
                "text": "A moderator unblocked you: you have 0 strikes and can chat again.",
                "timestamp": self.now(),
            }
            self.strikes[author] = 0
            self.blocked_at.pop(author, None)
            self.notices.append(notice)
            self.cond.notify_all()
        return notice

    def open_session(self, author: str) -> str:
        """A session as ``POST /sessions`` would open it (the name must be free)."""
        with self.cond:
            assert author not in self.tokens.values(), f"{author!r} is held"
            token = uuid.uuid4().hex
            self.tokens[token] = author
            self.session_log.append(("open", author))
            return token

    def expire(self, author: str) -> None:
        """End the author's session as its TTL running out would (no log entry)."""
        with self.cond:
            for token in [t for t, a in self.tokens.items() if a == author]:
                del self.tokens[token]

    def holders(self) -> list[str]:
        """The names held by live sessions."""
        with self.cond:
            return sorted(self.tokens.values())

    def tokens_of(self, author: str) -> list[str]:
        with self.cond:
            return [t for t, a in self.tokens.items() if a == author]

    def requests_with(self, method: str, path: str) -> list[str | None]:
        """The bearer tokens (None: none) of every ``method path`` request received."""
        return [t for m, p, t in list(self.auth_log) if (m, p) == (method, path)]

    def wake_notices(self) -> None:
        """Answer every notices long-poll in flight now (with what it has)."""
        with self.cond:
            self.notice_wakeups += 1
            self.cond.notify_all()

    def block_silently(self, author: str) -> None:
        """Block without a notice (as when the API's snapshot knows first)."""
        with self.cond:
            self.strikes[author] = STRIKE_LIMIT
            self.blocked_at[author] = self.now()

    def blocked_error(self, author: str) -> str:
        return (
            f"{author} is blocked since {self.blocked_at[author]} UTC after "
            f"{self.strikes[author]} strikes for profanity: blocked users can "
            "neither send nor read messages"
        )

    def add(self, author: str, data: str) -> dict[str, str]:
        message = {
            "id": uuid.uuid4().hex,
            "author": author,
            "data": data,
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        }
        with self.cond:
            self.messages.append(message)
            self.cond.notify_all()
        return message

    def release(self) -> None:
        """End every long-poll now (and later ones immediately)."""
        with self.cond:
            self.released = True
            self.cond.notify_all()

    def _cursor(self, count: int) -> str:
        return f"{self.epoch}:{count}"

    def _make_app(self) -> Flask:
        app = Flask("fake_chat_api")
        app.json.ensure_ascii = False  # type: ignore[attr-defined]

        def bearer_token() -> str | None:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None

        @app.before_request
        def log_auth() -> None:
            self.auth_log.append((request.method, request.path, bearer_token()))

        def unauthorized(error: str) -> Any:
            return jsonify(error=error), 401, {"WWW-Authenticate": 'Bearer realm="chat"'}

        def authenticated() -> str | Any:
            """The token's author, or the 401 response."""
            token = bearer_token()
            if token is None:
                return unauthorized("an Authorization: Bearer <token> header is required")
            with self.cond:
                author = self.tokens.get(token)
            if author is None:
                return unauthorized("the session expired or is unknown: open a new one")
            return author

        @app.post("/sessions")
        def post_session() -> Any:
            body = request.get_json(silent=True)
            author = body.get("author") if isinstance(body, dict) else None
            if not isinstance(author, str):
                return jsonify(error="author must be a string"), 400
            author = unicodedata.normalize("NFC", author.strip())
            if not author or len(author) > 64:
                return jsonify(error="author must be 1-64 characters"), 400
            with self.cond:
                if author in self.tokens.values():
                    return jsonify(error=f"{author!r} is in use by another session"), 409
                token = self.open_session(author)
            expires = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
            return jsonify(token=token, author=author, expires_at=expires), 201

        @app.delete("/sessions")
        def delete_session() -> Any:
            author = authenticated()
            if not isinstance(author, str):
                return author
            with self.cond:
                del self.tokens[bearer_token()]  # type: ignore[arg-type]
                self.session_log.append(("delete", author))
            return "", 204

        @app.post("/messages")
        def post_message() -> Any:
            body = request.get_json(silent=True)
            self.posts.append(body)
            author = authenticated()
            if not isinstance(author, str):
                return author
            if not isinstance(body, dict):
                return jsonify(error="body must be a JSON object"), 400
            if body.get("author", author) != author:
                return jsonify(error="author is not the session's"), 403
            data = body.get("data")
            if not isinstance(data, str) or not data.strip():
                return jsonify(error="data must be a non-empty string"), 400
            if len(data) > 2000:
                return jsonify(error="message too long (max 2000 characters)"), 413
            if author in self.blocked_at:
                return jsonify(error=self.blocked_error(author)), 403
            return jsonify(self.add(author, data)), 202

        @app.get("/messages")
        def get_messages() -> Any:
            args = request.args.to_dict()
            self.get_log.append(args)
            reader = authenticated()
            if not isinstance(reader, str):
                return reader
            with self.cond:
                if self.fail_next:
                    return jsonify(error="Kafka is unavailable"), self.fail_next.pop(0)
            if args.get("user", reader) != reader:
                return jsonify(error="user is not the session's"), 403
            if reader in self.blocked_at:
                return jsonify(error=self.blocked_error(reader)), 403
            after = args.get("after")
            with self.cond:
                if after is None:
                    tail = self.messages[-self.tail_size :]
                    return jsonify(messages=tail, cursor=self._cursor(len(self.messages)))
                epoch, _, count_text = after.partition(":")
                if epoch != str(self.epoch) or not count_text.isdigit():
                    return jsonify(error=f"unknown cursor {after!r}"), 400
                count = int(count_text)
                wait = min(float(args.get("wait", "0")), 30.0)
                self.cond.wait_for(lambda: len(self.messages) > count or self.released, timeout=wait)
                start = max(0, count - self.overlap)
                return jsonify(
                    messages=self.messages[start:],
                    cursor=self._cursor(len(self.messages)),
                )

        @app.get("/broken/messages")
        def broken_messages() -> Any:
            return jsonify(messages="not a list"), 200

        @app.get("/users/<path:author>")
        def get_user(author: str) -> Any:
            self.user_uris.append(request.environ["RAW_URI"])
            with self.cond:
                if self.users_fail_next:
                    return jsonify(error="snapshot unavailable"), self.users_fail_next.pop(0)
                sent = sum(m["author"] == author for m in self.messages)
                strikes = self.strikes.get(author, 0)
                if not sent and not strikes:
                    return jsonify(error=f"unknown user {author!r}"), 404
                return jsonify(
                    author=author,
                    strikes=strikes,
                    is_blocked=author in self.blocked_at,
                    blocked_at=self.blocked_at.get(author),
                    messages=sent,
                )

        @app.get("/users/<path:author>/notices")
        def get_notices(author: str) -> Any:
            args = request.args.to_dict()
            self.user_uris.append(request.environ["RAW_URI"])
            self.notices_log.append((author, args))
            reader = authenticated()
            if not isinstance(reader, str):
                return reader
            if reader != author:
                return jsonify(error="these are another user's notices"), 403
            with self.cond:
                if self.notices_fail_next:
                    return jsonify(error="notices unavailable"), self.notices_fail_next.pop(0)
                after = args.get("after")
                count = 0
                if after is not None:
                    epoch, _, count_text = after.partition(".")
                    if epoch != str(self.epoch) or not count_text.isdigit():
                        return jsonify(error=f"unknown cursor {after!r}"), 400
                    count = int(count_text)

                def newer() -> list[dict[str, Any]]:
                    return [n for n in self.notices[count:] if n["author"] == author]

                wait = min(float(args.get("wait", "0")), 30.0)
                wakeups = self.notice_wakeups
                self.cond.wait_for(
                    lambda: bool(newer()) or self.released or self.notice_wakeups != wakeups,
                    timeout=wait,
                )
                return jsonify(author=author, notices=newer(), cursor=f"{self.epoch}.{len(self.notices)}")

        # Sessions work under the prefixes whose other endpoints are broken or missing.
        app.add_url_rule("/broken/sessions", view_func=post_session, methods=["POST"])
        app.add_url_rule("/nowhere/sessions", view_func=post_session, methods=["POST"])

        @app.post("/malformed/sessions")
        def malformed_sessions() -> Any:
            return jsonify(token=5, author="alice"), 201

        @app.get("/broken/users/<path:author>/notices")
        def broken_notices(author: str) -> Any:
            return jsonify(author=author, notices={"not": "a list"}), 200

        @app.get("/broken/users/<path:author>")
        def broken_user(author: str) -> Any:
            return jsonify(author=author, strikes="many"), 200

        return app


@pytest.fixture
def fake_api() -> Iterator[tuple[FakeChatAPI, str]]:
    api = FakeChatAPI()
    server = make_server("127.0.0.1", 0, api.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api, f"http://127.0.0.1:{server.server_port}"
    finally:
        api.release()
        server.shutdown()
        server.server_close()
        thread.join(5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def msg(i: int, author: str = "alice", data: str | None = None) -> FeedMessage:
    return FeedMessage(id=f"m{i}", author=author, data=data or f"hello {i}", timestamp="2024-05-01 12:03:04")


# --------------------------------------------------------------------------
# Rendering untrusted text
# --------------------------------------------------------------------------


class _Collector(HTMLParser):
    """Parses HTML like a browser would: which elements, and which text where."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []
        self.text_by_class: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self.stack.append(dict(attrs).get("class") or "")

    def handle_endtag(self, tag: str) -> None:
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.stack:
            key = self.stack[-1]
            self.text_by_class[key] = self.text_by_class.get(key, "") + data


def parse(markup: str) -> _Collector:
    collector = _Collector()
    collector.feed(markup)
    collector.close()
    return collector


HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "**bold** and _em_ and `code`",
    "[link](javascript:alert(1))",
    '<a href="javascript:alert(1)">click</a>',
    "</div><script>alert(document.cookie)</script><div>",
    "&lt;already escaped&gt; &amp; \"quotes\" 'single'",
    "<span class='suggestion submit'>click me</span>",
    "<shiny-aside label=x>aside</shiny-aside>",
    "<thinking>secret</thinking>",
    "# heading\n\n- list\n> quote",
    "{{ template }} ${js} <!-- comment -->",
]

UNICODE = [
    "héllo wörld",
    "👋🏽 emoji 🎉 family 👨‍👩‍👧",
    "日本語のテキスト",
    "مرحبا بالعالم",
    "zero\u200bwidth and combining e\u0301",
]


@pytest.mark.parametrize("text", HOSTILE + UNICODE)
def test_message_text_is_rendered_literally(text: str) -> None:
    from ui.app import message_to_chat_content

    markup = str(message_to_chat_content(msg(1, data=text)))
    parsed = parse(markup)
    # Only the elements we create: nothing from the message became markup.
    assert [tag for tag, _ in parsed.elements] == ["div", "div", "strong", "span", "div"]
    assert all(name in ("class", "title") for _, attrs in parsed.elements for name in attrs)
    # ...and the text a browser displays is exactly the message.
    assert parsed.text_by_class["chat-msg-text"] == text


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_escaped_in_the_markup(text: str) -> None:
    from ui.app import render_message_text

    markup = str(render_message_text(text))
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert markup == f'<div class="chat-msg-text">{escaped}</div>'
    assert "<img" not in markup and "<script" not in markup and "<a " not in markup


@pytest.mark.parametrize("author", ["<b>mallory</b>", "<img src=x onerror=alert(1)>", "zoë 🦊"])
def test_author_is_rendered_literally(author: str) -> None:
    from ui.app import message_to_chat_content

    parsed = parse(str(message_to_chat_content(msg(1, author=author, data="hi"))))
    assert parsed.text_by_class["chat-msg-author"] == author
    assert len(parsed.elements) == 5


def test_header_shows_author_and_time() -> None:
    from ui.app import message_to_chat_content

    parsed = parse(str(message_to_chat_content(msg(1))))
    assert parsed.text_by_class["chat-msg-author"] == "alice"
    assert parsed.text_by_class["chat-msg-time"] == "12:03:04"
    assert " ".join(parsed.text_by_class["chat-msg-header"].split()) == "·"
    span_attrs = dict(parsed.elements[3][1])
    assert span_attrs["title"] == "2024-05-01 12:03:04 UTC"


def test_own_messages_are_marked() -> None:
    from ui.app import message_to_chat_content

    assert 'class="chat-msg chat-msg-own"' in str(message_to_chat_content(msg(1), own=True))
    assert 'class="chat-msg"' in str(message_to_chat_content(msg(1), own=False))


@pytest.mark.parametrize("text", HOSTILE)
def test_shinychat_receives_an_html_block_not_markdown(text: str) -> None:
    """What shinychat makes of our content: one html_block (inserted as-is by
    the browser, never through its markdown renderer) whose text is escaped."""
    from shinychat.types import ChatMessage

    from ui.app import message_to_chat_content

    chat_message = ChatMessage(content=message_to_chat_content(msg(1, data=text)))
    assert chat_message.content_type == "html"
    assert len(chat_message.segments) == 1
    block = chat_message.segments[0]
    assert isinstance(block, dict) and block["type"] == "html_block"
    parsed = parse(block["content"])
    assert len(parsed.elements) == 5
    assert parsed.text_by_class["chat-msg-text"] == text


def test_control_characters_are_dropped_but_newlines_kept() -> None:
    from ui.app import clean_text

    assert clean_text("a\x00b\x1bc\x7fd") == "abcd"
    assert clean_text("line1\r\nline2\rline3\n\tindented") == "line1\nline2\nline3\n\tindented"


def test_format_time() -> None:
    from ui.app import format_time

    assert format_time("2024-05-01 12:03:04") == "12:03:04"
    assert format_time("not a time <b>") == "not a time <b>"


def test_unblocked_user_has_no_banner_and_gets_good_news() -> None:
    from ui.app import notification_type, render_moderation

    blocked = Standing().with_notice(notice(3, "blocked", 3, "You are blocked"))
    assert "chat-blocked" in str(render_moderation(blocked))
    lifted = notice(4, "unblocked", 0, "A moderator unblocked you.")
    assert render_moderation(blocked.with_notice(lifted)) is None
    assert notification_type(lifted) == "message"
    assert notification_type(notice(3, "blocked", 3)) == "error"
    assert notification_type(notice(1)) == "warning"


def test_strike_status_text() -> None:
    from ui.app import strike_status_text

    warned = Standing(strikes=2, latest=notice(2, strike=2))
    assert strike_status_text(Standing()) is None
    assert strike_status_text(warned) == ("⚠ Strike 2 of 3 — your message was masked. At 3 strikes you are blocked.")
    assert strike_status_text(Standing(strikes=1)) == ("⚠ Strike 1 of 3 for profanity. At 3 strikes you are blocked.")
    assert strike_status_text(warned.with_refusal("no")) is None  # the banner says it all


@pytest.mark.parametrize("text", HOSTILE)
def test_moderation_texts_are_rendered_literally(text: str) -> None:
    from ui.app import render_moderation

    assert render_moderation(None) is None
    assert render_moderation(Standing()) is None

    status = str(render_moderation(Standing().with_notice(notice(1, text=text))))
    parsed = parse(status)
    assert [tag for tag, _ in parsed.elements] == ["div", "strong", "div", "span", "span"]
    assert parsed.elements[0][1] == {"class": "chat-strikes alert alert-warning", "role": "status"}
    assert parsed.text_by_class["chat-strikes-line"].startswith("⚠ Strike 1 of 3")
    assert parsed.text_by_class["chat-strikes-text"] == text
    assert parsed.text_by_class["chat-strikes-notice"].split() == ["Latest", "notice:"]
    assert parsed.text_by_class["chat-msg-time"] == "(12:03:04)"

    banner = str(render_moderation(Standing().with_notice(notice(3, "blocked", 3, text))))
    parsed = parse(banner)
    assert [tag for tag, _ in parsed.elements] == ["div", "span", "strong"]
    assert parsed.elements[0][1] == {"class": "chat-blocked alert alert-danger", "role": "alert"}
    assert parsed.text_by_class["chat-blocked-reason"] == text


# --------------------------------------------------------------------------
# Joining
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("alice", "alice"),
        ("  bob  ", "bob"),
        ("x" * 64, "x" * 64),
        ("🦊" * 64, "🦊" * 64),
        ("<b>eve</b>", "<b>eve</b>"),
        ("ui", "ui"),
        ("ui-readers", "ui-readers"),
    ],
)
def test_valid_names(raw: str, expected: str) -> None:
    from ui.app import validate_name

    check = validate_name(raw)
    assert check.name == expected and check.error is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "enter a name"),
        ("   ", "enter a name"),
        (None, "enter a name"),
        ("x" * 65, "at most 64 characters (yours has 65)"),
        ("a\nb", "control characters"),
        ("a\x00b", "control characters"),
        # the shared feed reads as ui-reader-<8 hex>
        (" ui-reader-0a1b2c3d ", "'ui-reader-' are reserved"),
        ("UI-Reader-x", "'ui-reader-' are reserved"),
    ],
)
def test_invalid_names(raw: str | None, message: str) -> None:
    from ui.app import validate_name

    check = validate_name(raw)
    assert check.name is None
    assert check.error is not None and message in check.error


# --------------------------------------------------------------------------
# The message store
# --------------------------------------------------------------------------


def test_store_deduplicates_by_id() -> None:
    store = MessageStore()
    assert store.add([msg(1), msg(2)]) == 2
    assert store.add([msg(2), msg(3), msg(1), msg(3)]) == 1
    assert [m.id for m in store.messages()] == ["m1", "m2", "m3"]
    assert store.version() == 3


def test_store_is_bounded_and_remembers_evicted_ids() -> None:
    store = MessageStore(limit=5)
    store.add(msg(i) for i in range(1, 9))
    assert len(store) == 5
    assert [m.id for m in store.messages()] == ["m4", "m5", "m6", "m7", "m8"]
    # An id that already fell out of the window is still a duplicate.
    assert store.add([msg(1)]) == 0
    assert store.version() == 8


def test_store_since_returns_only_newer_messages() -> None:
    store = MessageStore(limit=3)
    assert store.since(0) == []
    store.add([msg(1), msg(2)])
    assert [(seq, m.id) for seq, m in store.since(0)] == [(1, "m1"), (2, "m2")]
    assert [m.id for _, m in store.since(1)] == ["m2"]
    store.add([msg(3), msg(4)])
    assert [(seq, m.id) for seq, m in store.since(1)] == [(2, "m2"), (3, "m3"), (4, "m4")]
    assert store.since(store.version()) == []


def test_store_is_thread_safe() -> None:
    store = MessageStore(limit=10_000)

    def writer(offset: int) -> None:
        store.add(msg(offset + i) for i in range(500))

    threads = [threading.Thread(target=writer, args=(k * 250,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Writers overlap by half: ids 0..1249 are each stored exactly once.
    assert len(store) == store.version() == 1250
    assert len({m.id for m in store.messages()}) == 1250


def test_feed_message_from_json_rejects_malformed() -> None:
    good = {"id": "1", "author": "a", "data": "d", "timestamp": "t"}
    assert FeedMessage.from_json(good) == FeedMessage("1", "a", "d", "t")
    assert FeedMessage.from_json({**good, "id": ""}) is None
    assert FeedMessage.from_json({**good, "data": 5}) is None
    assert FeedMessage.from_json({k: v for k, v in good.items() if k != "author"}) is None
    assert FeedMessage.from_json(["not", "a", "dict"]) is None


# --------------------------------------------------------------------------
# The poller, against the fake API
# --------------------------------------------------------------------------


def make_poller(url: str, **kwargs: Any) -> FeedPoller:
    options: dict[str, Any] = {"wait": 1, "backoff_initial": 1.0, "backoff_max": 8.0}
    options.update(kwargs)
    return FeedPoller(url, **options)


def test_poller_reads_history_then_long_polls_with_the_cursor(
    fake_api: tuple[FakeChatAPI, str],
) -> None:
    api, url = fake_api
    first = api.add("alice", "first")
    api.add("bob", "second")
    poller = make_poller(url)
    try:
        assert poller.status().connected is False
        assert poller.poll_once() == 0.0
        assert api.get_log[-1] == {}  # the tail: no cursor yet
        assert [m.data for m in poller.store.messages()] == ["first", "second"]
        assert poller.store.messages()[0] == FeedMessage(**first)
        assert poller.cursor == "1:2"
        assert poller.status().connected is True

        api.add("carol", "third")
        assert poller.poll_once() == 0.0
        assert api.get_log[-1] == {"after": "1:2", "wait": "1"}
        assert [m.data for m in poller.store.messages()] == ["first", "second", "third"]
        assert poller.cursor == "1:3"

        # Nothing new: the long-poll times out with an empty list, cursor kept.
        assert poller.poll_once() == 0.0
        assert api.get_log[-1]["after"] == "1:3"
        assert len(poller.store) == 3 and poller.cursor == "1:3"
    finally:
        poller.stop()


def test_poller_reads_as_a_session_of_its_own(fake_api: tuple[FakeChatAPI, str]) -> None:
    """One session per poller, under a random ui-reader-<8 hex> name, its
    token on every GET /messages, and ended (the name freed) by stop()."""
    api, url = fake_api
    poller = make_poller(url)
    other = make_poller(url)
    try:
        assert re.fullmatch(r"ui-reader-[0-9a-f]{8}", poller.reader)
        assert other.reader != poller.reader
        poller.poll_once()
        poller.poll_once()
        assert api.session_log == [("open", poller.reader)]  # opened once, then reused
        (token,) = api.tokens_of(poller.reader)
        assert api.requests_with("GET", "/messages") == [token, token]
    finally:
        poller.stop()
        other.stop()  # never opened: nothing to end
    assert api.session_log == [("open", poller.reader), ("delete", poller.reader)]
    assert api.holders() == []


def test_poller_renews_an_expired_session_and_retries(fake_api: tuple[FakeChatAPI, str]) -> None:
    api, url = fake_api
    poller = make_poller(url)
    try:
        poller.poll_once()
        (old,) = api.tokens_of(poller.reader)
        api.expire(poller.reader)
        api.add("alice", "while expired")
        assert poller.poll_once() == 0.0  # no error, no back-off
        (new,) = api.tokens_of(poller.reader)
        assert new != old
        assert api.requests_with("GET", "/messages") == [old, old, new]
        assert [m.data for m in poller.store.messages()] == ["while expired"]
        assert api.session_log == [("open", poller.reader)] * 2
        assert poller.status().connected is True
    finally:
        poller.stop()


def test_poller_takes_a_new_name_when_its_own_is_taken(
    fake_api: tuple[FakeChatAPI, str], caplog: pytest.LogCaptureFixture
) -> None:
    api, url = fake_api
    poller = make_poller(url)
    try:
        poller.poll_once()
        first = poller.reader
        api.expire(first)
        api.open_session(first)  # someone took the name meanwhile
        with caplog.at_level(logging.WARNING, logger="ui.feed"):
            assert poller.poll_once() == poller.backoff_initial
        assert "lost its session" in caplog.text
        assert poller.poll_once() == 0.0
        assert poller.reader != first and re.fullmatch(r"ui-reader-[0-9a-f]{8}", poller.reader)
        (token,) = api.tokens_of(poller.reader)
        assert api.requests_with("GET", "/messages")[-1] == token
        assert api.tokens_of(first) != [token]
    finally:
        poller.stop()


def test_poller_long_poll_returns_as_soon_as_a_message_arrives(
    fake_api: tuple[FakeChatAPI, str],
) -> None:
    api, url = fake_api
    poller = make_poller(url, wait=10)
    try:
        poller.poll_once()
        timer = threading.Timer(0.3, api.add, args=("alice", "hi"))
        timer.start()
        started = time.monotonic()
        poller.poll_once()
        timer.join()
        assert time.monotonic() - started < 5
        assert [m.data for m in poller.store.messages()] == ["hi"]
    finally:
        poller.stop()


def test_poller_deduplicates_overlapping_replies(fake_api: tuple[FakeChatAPI, str]) -> None:
    api, url = fake_api
    api.overlap = 2  # every long-poll re-sends the last two delivered messages
    for i in range(3):
        api.add("alice", f"m{i}")
    poller = make_poller(url)
    try:
        poller.poll_once()
        api.add("bob", "new")
        poller.poll_once()
        poller.poll_once()
        assert [m.data for m in poller.store.messages()] == ["m0", "m1", "m2", "new"]
        assert poller.store.version() == 4
    finally:
        poller.stop()


def test_poller_store_is_bounded(fake_api: tuple[FakeChatAPI, str]) -> None:
    api, url = fake_api
    for i in range(8):
        api.add("alice", f"m{i}")
    poller = make_poller(url, store=MessageStore(limit=5))
    try:
        poller.poll_once()
        assert [m.data for m in poller.store.messages()] == ["m3", "m4", "m5", "m6", "m7"]
    finally:
        poller.stop()


def test_poller_resets_an_expired_cursor(fake_api: tuple[FakeChatAPI, str], caplog: pytest.LogCaptureFixture) -> None:
    api, url = fake_api
    api.add("alice", "before")
    poller = make_poller(url)
    try:
        poller.poll_once()
        assert poller.cursor == "1:1"
        api.epoch = 2  # the API forgot every cursor (e.g. it restarted)
        api.add("bob", "missed")
        with caplog.at_level(logging.WARNING, logger="ui.feed"):
            delay = poller.poll_once()
        assert 0 < delay <= poller.backoff_initial
        assert poller.cursor is None
        assert "rejected" in caplog.text and "unknown cursor" in caplog.text
        assert poller.status().connected is True  # the API itself is fine

        assert poller.poll_once() == 0.0
        assert api.get_log[-1] == {}  # re-read the tail
        assert poller.cursor == "2:2"
        assert [m.data for m in poller.store.messages()] == ["before", "missed"]
    finally:
        poller.stop()


def test_poller_backs_off_on_errors_and_recovers(
    fake_api: tuple[FakeChatAPI, str], caplog: pytest.LogCaptureFixture
) -> None:
    api, url = fake_api
    api.add("alice", "hello")
    api.fail_next = [503, 503, 503, 503, 503]
    poller = make_poller(url, backoff_initial=1.0, backoff_max=8.0)
    try:
        with caplog.at_level(logging.WARNING, logger="ui.feed"):
            delays = [poller.poll_once() for _ in range(5)]
        assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]  # exponential, capped
        assert "HTTP 503" in caplog.text and "Kafka is unavailable" in caplog.text
        status = poller.status()
        assert status.connected is False and "Kafka is unavailable" in status.detail
        assert len(poller.store) == 0

        assert poller.poll_once() == 0.0  # recovered
        assert poller.status().connected is True
        assert [m.data for m in poller.store.messages()] == ["hello"]
        api.fail_next = [503]
        assert poller.poll_once() == 1.0  # the back-off starts over
    finally:
        poller.stop()


def test_poller_survives_an_unreachable_api(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    poller = make_poller(url, backoff_initial=0.5)
    try:
        with caplog.at_level(logging.WARNING, logger="ui.feed"):
            assert poller.poll_once() == 0.5
            assert poller.poll_once() == 1.0
        assert "cannot reach" in caplog.text
        status = poller.status()
        assert status.connected is False
        assert "Cannot reach the chat server" in status.detail and url in status.detail
    finally:
        poller.stop()


def test_poller_backs_off_on_a_malformed_reply(fake_api: tuple[FakeChatAPI, str]) -> None:
    _, url = fake_api
    poller = make_poller(f"{url}/broken")
    try:
        assert poller.poll_once() == 1.0
        assert poller.status().connected is False
    finally:
        poller.stop()


def test_poller_skips_malformed_messages(fake_api: tuple[FakeChatAPI, str]) -> None:
    api, url = fake_api
    api.messages.append({"id": "x", "author": "a"})  # no data/timestamp
    api.add("alice", "ok")
    poller = make_poller(url)
    try:
        assert poller.poll_once() == 0.0
        assert [m.data for m in poller.store.messages()] == ["ok"]
    finally:
        poller.stop()


def test_poller_thread_retries_until_the_api_recovers(
    fake_api: tuple[FakeChatAPI, str],
) -> None:
    api, url = fake_api
    api.fail_next = [503, 503]
    api.add("alice", "one")
    poller = make_poller(url, backoff_initial=0.05, wait=1)
    try:
        assert poller.start() is True
        assert poller.start() is False  # already running: still one thread
        assert wait_until(lambda: len(poller.store) == 1)
        api.add("bob", "two")
        assert wait_until(lambda: len(poller.store) == 2)
        assert poller.status().connected is True
        assert sum(t.name == "chat-feed-poller" for t in threading.enumerate()) == 1
    finally:
        api.release()
        poller.stop(timeout=10)
    assert not poller.running


# --------------------------------------------------------------------------
# Sending
# --------------------------------------------------------------------------


def joined(url: str, author: str) -> ChatSession:
    """A session opened for ``author``, as the UI opens one on join."""
    session = ChatSession(url, author)
    session.open()
    return session


def test_send_message_returns_the_echo(fake_api: tuple[FakeChatAPI, str]) -> None:
    api, url = fake_api
    session = joined(url, "alice")
    echo = send_message(session, "hi <b>there</b>")
    assert echo is not None
    assert (echo.author, echo.data) == ("alice", "hi <b>there</b>")
    assert api.messages[-1]["id"] == echo.id
    # Only the text is sent: the API knows the author from the token.
    assert api.posts == [{"data": "hi <b>there</b>"}]
    assert api.requests_with("POST", "/messages") == api.tokens_of("alice")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("x" * 2001, "Message not sent: message too long (max 2000 characters)"),
        ("   ", "Message not sent: data must be a non-empty string"),
    ],
)
def test_send_message_reports_the_api_error(fake_api: tuple[FakeChatAPI, str], data: str, expected: str) -> None:
    _, url = fake_api
    with pytest.raises(SendError) as info:
        send_message(joined(url, "alice"), data)
    assert str(info.value) == expected
    assert info.value.status in (400, 413) and not info.value.blocked
    assert not info.value.session_lost


def test_send_message_when_blocked(fake_api: tuple[FakeChatAPI, str]) -> None:
    api, url = fake_api
    api.block_silently("mallory")
    with pytest.raises(SendError) as info:
        send_message(joined(url, "mallory"), "hi")
    error = api.blocked_error("mallory")
    assert str(info.value) == f"Message not sent: {error}"
    assert info.value.status == 403 and info.value.blocked
    assert info.value.api_error == error
    assert len(api.messages) == 0


def test_send_message_renews_an_expired_session_and_retries_once(
    fake_api: tuple[FakeChatAPI, str],
) -> None:
    api, url = fake_api
    session = joined(url, "alice")
    old = session.token
    api.expire("alice")
    echo = send_message(session, "still here")
    assert echo is not None and echo.author == "alice"
    (new,) = api.tokens_of("alice")
    assert session.token == new != old
    assert api.requests_with("POST", "/messages") == [old, new]  # the 401, then the retry
    assert [m["data"] for m in api.messages] == ["still here"]  # sent once
    assert api.session_log == [("open", "alice"), ("open", "alice")]


def test_send_message_when_the_name_was_taken_meanwhile(fake_api: tuple[FakeChatAPI, str]) -> None:
    api, url = fake_api
    session = joined(url, "alice")
    api.expire("alice")
    api.open_session("alice")  # someone else is alice now
    with pytest.raises(SendError) as info:
        send_message(session, "hi")
    assert info.value.session_lost and not info.value.blocked
    assert "your session expired" in str(info.value) and "in use by someone else" in str(info.value)
    assert len(api.requests_with("POST", "/messages")) == 1  # no retry without a session
    assert api.messages == []


def test_send_message_without_an_error_body(fake_api: tuple[FakeChatAPI, str]) -> None:
    _, url = fake_api
    with pytest.raises(SendError) as info:
        send_message(joined(f"{url}/nowhere", "alice"), "hi")
    assert str(info.value).startswith("Message not sent: HTTP 404")


def test_send_message_when_the_api_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SendError) as info:
        send_message(ChatSession(url, "alice"), "hi")
    assert str(info.value) == f"Cannot reach the chat server at {url}. Your message was not sent."
    assert info.value.status is None and not info.value.blocked


# --------------------------------------------------------------------------
# Sessions
# --------------------------------------------------------------------------


def test_open_session_returns_the_token_and_the_normalised_name(
    fake_api: tuple[FakeChatAPI, str],
) -> None:
    api, url = fake_api
    grant = open_session(url, "  zoe\u0301 ")
    assert grant.author == "zo\u00e9"  # NFC and trimmed, as the API says
    assert api.tokens_of("zo\u00e9") == [grant.token]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", grant.expires_at)
    session = ChatSession(url, "zoe\u0301")
    with pytest.raises(NameInUse, match="in use"):  # held by the first session
        session.open()
    assert session.token is None and api.session_log == [("open", "zo\u00e9")]


def test_open_session_errors(fake_api: tuple[FakeChatAPI, str]) -> None:
    _, url = fake_api
    with pytest.raises(ChatApiError, match="author must be 1-64 characters") as info:
        open_session(url, "x" * 65)
    assert not isinstance(info.value, NameInUse)
    with pytest.raises(ChatApiError, match="malformed reply"):
        open_session(f"{url}/malformed", "alice")
    with pytest.raises(ApiUnreachable, match="cannot reach"):
        open_session(f"http://127.0.0.1:{free_port()}", "alice")


def test_chat_session_close_frees_the_name_and_stays_closed(
    fake_api: tuple[FakeChatAPI, str],
) -> None:
    api, url = fake_api
    session = joined(url, "alice")
    token = session.token
    session.close()
    assert api.session_log == [("open", "alice"), ("delete", "alice")]
    assert api.requests_with("DELETE", "/sessions") == [token]
    assert api.holders() == [] and session.closed and session.token is None
    # Closed for good: a request does not open a new session for the name.
    with pytest.raises(SessionLost):
        session.request("GET", f"{url}/messages")
    with pytest.raises(SessionLost):
        session.renew(token)  # type: ignore[arg-type]
    assert api.holders() == []
    session.close()  # twice is fine, and sends nothing
    assert len(api.requests_with("DELETE", "/sessions")) == 1
    joined(url, "alice")  # the name is free for someone else


def test_chat_session_close_when_already_expired(fake_api: tuple[FakeChatAPI, str]) -> None:
    api, url = fake_api
    session = joined(url, "alice")
    api.expire("alice")
    session.close()  # the 401 is not an error: the session is over either way
    assert session.closed and api.session_log == [("open", "alice")]


def test_chat_session_threads_hitting_a_401_share_one_new_session(
    fake_api: tuple[FakeChatAPI, str],
) -> None:
    api, url = fake_api
    session = joined(url, "alice")
    stale = session.token
    api.expire("alice")
    assert stale is not None
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda: tokens.append(session.renew(stale))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(tokens)) == 1 and tokens[0] != stale
    assert api.tokens_of("alice") == tokens[:1]
    assert api.session_log == [("open", "alice")] * 2


# --------------------------------------------------------------------------
# Moderation: user records, notices, the session's standing
# --------------------------------------------------------------------------

# Names that must survive the trip through a URL path.
AWKWARD_NAMES = [
    "bob smith",
    "a/b",
    "../admin",
    ".",
    "..",
    "...",
    "zoë 🦊",
    "日本語",
    "50% off?#&=+",
    "notices",
]


def notice(
    i: int,
    kind: str = "warning",
    strike: int = 1,
    text: str = "Warning: strike 1 of 3 for darn.",
    author: str = "alice",
) -> Notice:
    assert kind in ("warning", "blocked", "unblocked")
    return Notice(
        id=f"n{i}",
        author=author,
        kind=kind,  # type: ignore[arg-type]
        strike=strike,
        limit=3,
        text=text,
        timestamp="2024-05-01 12:03:04",
        terms=("darn",),
        message_id=f"m{i}",
    )


@pytest.mark.parametrize(
    ("author", "path"),
    [
        ("alice", "alice"),
        ("bob smith", "bob%20smith"),
        ("a/b", "a%2Fb"),
        ("../admin", "..%2Fadmin"),
        (".", "%2E"),
        ("..", "%2E%2E"),
        ("...", "..."),
        ("zoë 🦊", "zo%C3%AB%20%F0%9F%A6%8A"),
        ("50% off?#&=+", "50%25%20off%3F%23%26%3D%2B"),
    ],
)
def test_user_url_encodes_the_name_as_one_segment(author: str, path: str) -> None:
    assert user_url("http://api/", author) == f"http://api/users/{path}"
    assert user_url("http://api", author, "notices") == f"http://api/users/{path}/notices"


@pytest.mark.parametrize("author", AWKWARD_NAMES)
def test_fetch_user_sends_the_name_encoded(fake_api: tuple[FakeChatAPI, str], author: str) -> None:
    api, url = fake_api
    api.strike(author)
    record = fetch_user(url, author)
    # The API routed the request to this very user...
    assert record == UserRecord(author, strikes=1, is_blocked=False, blocked_at=None)
    # ...because on the wire the name is one percent-encoded path segment.
    (uri,) = api.user_uris
    assert_one_segment(uri, "/users/", "", author)


def assert_one_segment(uri: str, prefix: str, suffix: str, author: str) -> None:
    """``uri`` is ``prefix + <author as one encoded path segment> + suffix``."""
    assert uri.startswith(prefix) and uri.endswith(suffix)
    segment = uri[len(prefix) : len(uri) - len(suffix)]
    assert "/" not in segment and urllib.parse.unquote(segment) == author


def test_fetch_user_unknown_user_is_not_blocked(fake_api: tuple[FakeChatAPI, str]) -> None:
    _, url = fake_api
    assert fetch_user(url, "newcomer") == UserRecord("newcomer", 0, False, None)


def test_fetch_user_blocked(fake_api: tuple[FakeChatAPI, str]) -> None:
    api, url = fake_api
    for _ in range(3):
        api.strike("mallory")
    record = fetch_user(url, "mallory")
    assert record.is_blocked and record.strikes == 3
    assert record.blocked_at == api.blocked_at["mallory"]
    assert blocked_explanation(record) == api.blocked_error("mallory")


def test_fetch_user_errors(fake_api: tuple[FakeChatAPI, str]) -> None:
    api, url = fake_api
    with pytest.raises(ChatApiError, match="malformed"):
        fetch_user(f"{url}/broken", "alice")
    api.users_fail_next = [503]
    with pytest.raises(ChatApiError, match=r"HTTP 503.*snapshot unavailable"):
        fetch_user(url, "alice")
    with pytest.raises(ChatApiError, match="cannot reach"):
        fetch_user(f"http://127.0.0.1:{free_port()}", "alice")


def test_notice_from_json() -> None:
    good: dict[str, Any] = {
        "id": "n1",
        "author": "alice",
        "kind": "warning",
        "strike": 1,
        "limit": 3,
        "terms": ["darn", 5],
        "message_id": "m1",
        "text": "careful",
        "timestamp": "t",
    }
    parsed = Notice.from_json(good)
    assert parsed == Notice("n1", "alice", "warning", 1, 3, "careful", "t", ("darn",), "m1")
    assert parsed is not None and not parsed.blocked
    blocked = Notice.from_json({**good, "kind": "blocked", "strike": 3})
    assert blocked is not None and blocked.blocked and not blocked.unblocked
    unblocked = Notice.from_json({**good, "kind": "unblocked", "strike": 0, "message_id": None})
    assert unblocked is not None and unblocked.unblocked and not unblocked.blocked
    assert (unblocked.kind, unblocked.strike, unblocked.message_id) == ("unblocked", 0, None)
    lenient = Notice.from_json({**good, "limit": None, "terms": None, "message_id": 7})
    assert lenient is not None
    assert (lenient.limit, lenient.terms, lenient.message_id) == (3, (), None)
    for broken in (
        {**good, "id": ""},
        {**good, "kind": "ban"},
        {**good, "strike": "1"},
        {**good, "strike": True},
        {**good, "text": None},
        {k: v for k, v in good.items() if k != "timestamp"},
        ["not", "a", "dict"],
    ):
        assert Notice.from_json(broken) is None


def test_user_record_from_json() -> None:
    assert UserRecord.from_json(
        {"author": "a", "strikes": 3, "is_blocked": True, "blocked_at": "t", "messages": 9}
    ) == UserRecord("a", 3, True, "t")
    minimal = {"author": "a", "strikes": 0, "is_blocked": False}
    assert UserRecord.from_json(minimal) == UserRecord("a")
    assert UserRecord.from_json({"author": "a", "strikes": -1, "is_blocked": False}) is None
    assert UserRecord.from_json({"author": "a", "strikes": 1, "is_blocked": "no"}) is None
    assert UserRecord.from_json(None) is None


def test_standing_strikes_and_warnings() -> None:
    standing = Standing()
    assert (standing.strikes, standing.blocked, standing.latest) == (0, False, None)
    assert standing.with_user(UserRecord("alice")) == standing  # 404: nothing known
    standing = standing.with_user(UserRecord("alice", strikes=1))
    assert standing.strikes == 1 and not standing.blocked and standing.latest is None
    second = notice(2, strike=2, text="second")
    standing = standing.with_notices([notice(1), second])
    assert standing.strikes == 2 and standing.latest == second and not standing.blocked
    # Strikes never go down (an old notice re-read, a stale record).
    assert standing.with_notice(notice(1)).strikes == 2
    assert standing.with_user(UserRecord("alice", strikes=1)).strikes == 2


def test_standing_blocked_by_a_notice() -> None:
    standing = Standing().with_notice(notice(3, "blocked", 3, "You are blocked: strike 3 of 3"))
    assert standing.blocked and standing.strikes == 3
    assert standing.reason == "You are blocked: strike 3 of 3"
    assert standing.reason_source == "notice"
    # A block is final, and the notice's explanation is the best one.
    assert standing.with_notice(notice(4)).blocked
    assert standing.with_refusal("refused").reason == "You are blocked: strike 3 of 3"
    blocked_record = UserRecord("alice", 3, True, "2024-05-01 12:00:00")
    assert standing.with_user(blocked_record).reason == "You are blocked: strike 3 of 3"


def test_standing_blocked_by_the_record_then_better_explained() -> None:
    record = UserRecord("alice", 3, True, "2024-05-01 12:00:00")
    standing = Standing().with_user(record)
    assert standing.blocked and standing.reason_source == "record"
    assert standing.reason == (
        "alice is blocked since 2024-05-01 12:00:00 UTC after 3 strikes for profanity: "
        "blocked users can neither send nor read messages"
    )
    refused = standing.with_refusal("the API says no")
    assert (refused.reason, refused.reason_source) == ("the API says no", "refusal")
    noticed = refused.with_notice(notice(3, "blocked", 3, "blocked for darn"))
    assert (noticed.reason, noticed.reason_source) == ("blocked for darn", "notice")


@pytest.mark.parametrize(
    "blocked",
    [
        Standing().with_notices([notice(1), notice(2, strike=2), notice(3, "blocked", 3)]),
        Standing().with_user(UserRecord("alice", 3, True, "2024-05-01 12:00:00")),
        Standing(strikes=1).with_refusal("refused"),
    ],
    ids=["notice", "record", "refusal"],
)
def test_standing_unblocked_starts_again_from_no_strikes(blocked: Standing) -> None:
    assert blocked.blocked
    lifted = notice(4, "unblocked", 0, "A moderator unblocked you.")
    standing = blocked.with_notice(lifted)
    assert standing == Standing(strikes=0, limit=3, latest=lifted)  # no block, no reason
    # From there on, strikes count again from 1 and can block anew.
    standing = standing.with_notice(notice(5, strike=1))
    assert standing.strikes == 1 and not standing.blocked
    again = standing.with_notice(notice(6, "blocked", 3, "blocked again"))
    assert again.blocked and again.reason == "blocked again"


def test_standing_folds_a_backlog_that_ends_in_an_unblock() -> None:
    backlog = [notice(1), notice(2, strike=2), notice(3, "blocked", 3), notice(4, "unblocked", 0)]
    standing = Standing().with_user(UserRecord("alice")).with_notices(backlog)
    assert (standing.strikes, standing.blocked) == (0, False)
    assert Standing().with_notices(backlog[:3]).blocked  # order matters: the newest decides


def test_standing_blocked_by_a_refusal_without_text() -> None:
    standing = Standing(strikes=1).with_refusal(None)
    assert standing.blocked and standing.strikes == 3
    assert "blocked" in standing.reason


def make_follower(url: str, author: str = "alice", **kwargs: Any) -> NoticeFollower:
    """A follower for ``author``, whose session its first request opens."""
    options: dict[str, Any] = {"wait": 1, "backoff_initial": 1.0, "backoff_max": 8.0}
    options.update(kwargs)
    return NoticeFollower(ChatSession(url, author), **options)


def test_follower_reads_the_backlog_then_long_polls_with_the_cursor(
    fake_api: tuple[FakeChatAPI, str],
) -> None:
    api, url = fake_api
    first = api.strike("alice")
    api.strike("bob")
    follower = make_follower(url)
    try:
        batch, delay = follower.poll_once()
        assert delay == 0.0
        assert api.notices_log[-1] == ("alice", {})  # no cursor, no wait: returns at once
        assert batch is not None and batch.backlog is True
        assert [n.id for n in batch.notices] == [first["id"]]
        assert batch.notices[0] == Notice.from_json(first)
        assert follower.cursor == "1.2"

        second = api.strike("alice")
        batch, delay = follower.poll_once()
        assert api.notices_log[-1] == ("alice", {"after": "1.2", "wait": "1"})
        assert batch == NoticeBatch((Notice.from_json(second),), backlog=False)  # type: ignore[arg-type]
        assert follower.cursor == "1.3"

        # Nothing new (bob's strike is not alice's): the long-poll times out.
        api.strike("bob")
        assert follower.poll_once() == (None, 0.0)
        assert follower.cursor == "1.4"
    finally:
        follower.stop()


def test_follower_reads_with_the_users_token(fake_api: tuple[FakeChatAPI, str]) -> None:
    api, url = fake_api
    session = joined(url, "alice")
    api.strike("alice")
    follower = NoticeFollower(session, wait=1)
    try:
        batch, _ = follower.poll_once()
        follower.poll_once()
        assert batch is not None and len(batch.notices) == 1
        assert api.requests_with("GET", "/users/alice/notices") == [session.token] * 2
        assert api.session_log == [("open", "alice")]  # the join's session, no other
    finally:
        follower.stop()


def test_follower_renews_an_expired_session_and_retries(fake_api: tuple[FakeChatAPI, str]) -> None:
    api, url = fake_api
    session = joined(url, "alice")
    old = session.token
    follower = NoticeFollower(session, wait=1)
    try:
        follower.poll_once()
        api.expire("alice")
        missed = api.strike("alice")
        batch, delay = follower.poll_once()
        assert delay == 0.0
        assert batch is not None and [n.id for n in batch.notices] == [missed["id"]]
        (new,) = api.tokens_of("alice")
        assert api.requests_with("GET", "/users/alice/notices") == [old, old, new]
    finally:
        follower.stop()


def test_follower_stops_when_the_session_is_lost(
    fake_api: tuple[FakeChatAPI, str], caplog: pytest.LogCaptureFixture
) -> None:
    api, url = fake_api
    session = joined(url, "alice")
    batches: list[NoticeBatch] = []
    follower = NoticeFollower(session, wait=1, on_batch=batches.append)
    follower.start()
    try:
        assert wait_until(lambda: any("after" in q for _, q in api.notices_log))
        api.expire("alice")
        api.open_session("alice")  # someone else is alice now
        with caplog.at_level(logging.WARNING, logger="ui.feed"):
            api.wake_notices()  # the long-poll in flight ends; the next one gets a 401
            assert wait_until(lambda: not follower.running)
        assert "no longer followed" in caplog.text and "in use by someone else" in caplog.text
        assert len(api.tokens_of("alice")) == 1  # the other person's session only
        api.strike("alice")  # theirs: never reaches this follower
        time.sleep(0.2)
        assert batches == []
    finally:
        follower.stop()


def test_follower_backlog_may_be_empty(fake_api: tuple[FakeChatAPI, str]) -> None:
    api, url = fake_api
    follower = make_follower(url)
    try:
        assert follower.poll_once() == (None, 0.0)
        api.strike("alice")
        batch, _ = follower.poll_once()
        assert batch is not None and batch.backlog is False  # arrived after following started
    finally:
        follower.stop()


def test_follower_long_poll_returns_as_soon_as_a_notice_arrives(
    fake_api: tuple[FakeChatAPI, str],
) -> None:
    api, url = fake_api
    follower = make_follower(url, wait=10)
    try:
        follower.poll_once()
        timer = threading.Timer(0.3, api.strike, args=("alice",))
        timer.start()
        started = time.monotonic()
        batch, _ = follower.poll_once()
        timer.join()
        assert time.monotonic() - started < 5
        assert batch is not None and batch.notices[0].strike == 1
    finally:
        follower.stop()


def test_follower_drops_a_rejected_cursor_and_delivers_each_notice_once(
    fake_api: tuple[FakeChatAPI, str], caplog: pytest.LogCaptureFixture
) -> None:
    api, url = fake_api
    first = api.strike("alice")
    follower = make_follower(url)
    try:
        follower.poll_once()
        api.epoch = 2  # the API restarted: every cursor is unknown
        missed = api.strike("alice")
        with caplog.at_level(logging.WARNING, logger="ui.feed"):
            batch, delay = follower.poll_once()
        assert batch is None and 0 < delay <= follower.backoff_initial
        assert follower.cursor is None
        assert "rejected" in caplog.text and "unknown cursor" in caplog.text

        batch, delay = follower.poll_once()
        assert api.notices_log[-1] == ("alice", {})  # read again from the start
        # Both notices came back; only the one not delivered before is new.
        assert batch is not None and [n.id for n in batch.notices] == [missed["id"]]
        assert batch.backlog is False and delay == 0.0
        assert first["id"] != missed["id"] and follower.cursor == "2.2"
    finally:
        follower.stop()


def test_follower_backs_off_on_errors(fake_api: tuple[FakeChatAPI, str], caplog: pytest.LogCaptureFixture) -> None:
    api, url = fake_api
    api.strike("alice")
    api.notices_fail_next = [503, 503, 503]
    follower = make_follower(url, backoff_initial=1.0, backoff_max=2.0)
    try:
        with caplog.at_level(logging.WARNING, logger="ui.feed"):
            results = [follower.poll_once() for _ in range(3)]
        assert results == [(None, 1.0), (None, 2.0), (None, 2.0)]
        assert "HTTP 503" in caplog.text and "notices unavailable" in caplog.text
        batch, delay = follower.poll_once()  # recovered: the backlog, still
        assert batch is not None and batch.backlog and delay == 0.0
    finally:
        follower.stop()


def test_follower_survives_malformed_and_unreachable(fake_api: tuple[FakeChatAPI, str]) -> None:
    _, url = fake_api
    for base in (f"{url}/broken", f"http://127.0.0.1:{free_port()}"):
        follower = make_follower(base, backoff_initial=0.5)
        try:
            assert follower.poll_once() == (None, 0.5)
            assert follower.poll_once() == (None, 1.0)
            assert follower.cursor is None
        finally:
            follower.stop()


@pytest.mark.parametrize("author", AWKWARD_NAMES)
def test_follower_thread_delivers_notices_for_awkward_names(fake_api: tuple[FakeChatAPI, str], author: str) -> None:
    api, url = fake_api
    api.strike(author)
    api.strike("someone else")
    batches: list[NoticeBatch] = []
    threads: set[str] = set()

    def on_batch(batch: NoticeBatch) -> None:
        threads.add(threading.current_thread().name)
        batches.append(batch)

    follower = make_follower(url, author, on_batch=on_batch)
    follower.start()
    try:
        assert wait_until(lambda: len(batches) == 1)
        api.strike(author)
        assert wait_until(lambda: len(batches) == 2)
        assert [(b.backlog, [n.strike for n in b.notices]) for b in batches] == [
            (True, [1]),
            (False, [2]),
        ]
        assert all(n.author == author for b in batches for n in b.notices)
        assert {a for a, _ in api.notices_log} == {author}
        for uri in api.user_uris:
            assert_one_segment(uri.partition("?")[0], "/users/", "/notices", author)
        assert threads == {"chat-notices"}
    finally:
        follower.stop()
        api.release()  # end the long-poll in flight
    assert wait_until(lambda: not follower.running)
    api.strike(author)
    time.sleep(0.2)
    assert len(batches) == 2  # nothing delivered after stop()


def test_follower_stop_does_not_wait_for_the_long_poll(fake_api: tuple[FakeChatAPI, str]) -> None:
    api, url = fake_api
    follower = make_follower(url, wait=20)
    follower.start()
    try:
        assert wait_until(lambda: any("after" in q for _, q in api.notices_log))
        started = time.monotonic()
        follower.stop()
        assert time.monotonic() - started < 0.5
        assert follower.running  # still in its long-poll...
    finally:
        api.release()
    assert wait_until(lambda: not follower.running)  # ...which then ends it
    with pytest.raises(RuntimeError):
        follower.start()


# --------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------


def test_app_is_a_shiny_app() -> None:
    from shiny import App

    import ui.app

    assert isinstance(ui.app.app, App)
    page = str(ui.app.app_ui)
    for output_id in ("join_area", "chat_area", "connection_status", "chat"):
        assert f'id="{output_id}"' in page


def test_poller_thread_calls_on_poll_after_each_request(
    fake_api: tuple[FakeChatAPI, str],
) -> None:
    api, url = fake_api
    api.fail_next = [503]
    calls: list[tuple[str, int, bool]] = []
    poller: FeedPoller

    def on_poll() -> None:
        calls.append((threading.current_thread().name, poller.store.version(), poller.status().connected))

    poller = make_poller(url, backoff_initial=0.05, on_poll=on_poll)
    api.add("alice", "one")
    try:
        poller.start()
        assert wait_until(lambda: any(version == 1 for _, version, _ in calls))
    finally:
        api.release()
        poller.stop(timeout=10)
    assert calls[0] == ("chat-feed-poller", 0, False)  # after the 503
    assert ("chat-feed-poller", 1, True) in calls


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


def test_live_feed_pushes_new_messages_into_reactive_values(
    fake_api: tuple[FakeChatAPI, str],
) -> None:
    """The poller thread -> event loop bridge: an effect reading the feed's
    reactive version re-runs by itself when messages arrive."""
    from shiny import reactive

    from ui.app import LiveFeed

    api, url = fake_api
    api.fail_next = [503]
    api.add("alice", "one")
    seen: list[int] = []
    statuses: list[bool] = []

    async def main() -> None:
        feed = LiveFeed(url, wait=1, backoff_initial=0.05)

        @reactive.effect
        def _watch() -> None:
            seen.append(feed.version())
            statuses.append(feed.status().connected)

        await reactive.flush()
        assert seen == [0]
        feed.start(asyncio.get_running_loop())
        try:
            assert await _until(lambda: seen[-1] == 1)
            api.add("bob", "two")
            assert await _until(lambda: seen[-1] == 2)
            assert [m.data for m in feed.store.messages()] == ["one", "two"]
            assert statuses[-1] is True and False in statuses
        finally:
            _watch.destroy()
            api.release()
            await asyncio.to_thread(feed.stop, 10)

    asyncio.run(main())


def test_get_feed_starts_one_poller_per_process(
    fake_api: tuple[FakeChatAPI, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ui.app

    api, url = fake_api
    api.add("alice", "hello")
    monkeypatch.setattr(ui.app, "API_URL", url)
    monkeypatch.setattr(ui.app, "_feed", None)

    async def main() -> ui.app.LiveFeed:
        feeds = [ui.app.get_feed() for _ in range(8)]  # as if 8 sessions started
        feed = feeds[0]
        try:
            assert all(f is feed for f in feeds)
            assert feed.poller.api_url == url
            assert sum(t.name == "chat-feed-poller" for t in threading.enumerate()) == 1
            assert await _until(lambda: len(feed.store) == 1)
        finally:
            api.release()  # end the 25 s long-poll in flight
            await asyncio.to_thread(feed.stop, 10)
        return feed

    feed = asyncio.run(main())
    assert not feed.poller.running


def test_html_escape_helper_matches_htmltools() -> None:
    """Sanity check of the assumption the rendering tests rely on."""
    from htmltools import tags

    text = "<img src=x onerror=alert(1)> & co"
    assert str(tags.div(text)) == f"<div>{html.escape(text, quote=False)}</div>"


# --------------------------------------------------------------------------
# End to end: the real app under uvicorn, driven over Shiny's websocket
# --------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parent.parent
OUTPUTS = ("connection_status", "moderation", "join_area", "join_error_text")


def open_ws(url: str) -> ClientConnection:
    """A websocket to the app that buffers everything it receives.

    Shiny sends every session an update on every flush, whichever session
    caused it; with the default bounded queue a client the test stops reading
    stops reading the socket too, and then cannot see the server's close frame.
    """
    return connect(url, max_queue=None)


class ShinyClient:
    """Speaks just enough of Shiny's websocket protocol to act as a browser."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []
        init: dict[str, Any] = {"name": "", "join:shiny.action": 0}
        init.update({f".clientdata_output_{name}_hidden": False for name in OUTPUTS})
        self.send("init", init)

    def send(self, method: str, data: dict[str, Any]) -> None:
        self.ws.send(json.dumps({"method": method, "data": data}))

    def pump(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Receive messages until ``condition()`` holds (or time runs out)."""
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                raw = self.ws.recv(timeout=min(remaining, 0.2))
            except TimeoutError:
                continue
            self.received.append(json.loads(raw))
        return True

    def output(self, name: str) -> Any:
        value = None
        for message in self.received:
            values = message.get("values") or {}
            if name in values:
                value = values[name]
        return value

    def output_html(self, name: str) -> str:
        value = self.output(name)
        return value.get("html", "") if isinstance(value, dict) else str(value or "")

    def chat_actions(self) -> list[dict[str, Any]]:
        return [
            m["custom"]["shinyChatMessage"]["action"]
            for m in self.received
            if "shinyChatMessage" in (m.get("custom") or {})
        ]

    def chat_blocks(self) -> list[str]:
        """The HTML of every chat message received, in order."""
        return [
            segment["content"]
            for action in self.chat_actions()
            if action["type"] == "message"
            for segment in action["message"]["segments"]
            if segment.get("type") == "html_block"
        ]

    def notifications(self, kind: str | None = None) -> list[str]:
        """The HTML of every notification shown (of type ``kind``, if given)."""
        return [
            m["notification"]["message"]["html"]
            for m in self.received
            if (m.get("notification") or {}).get("type") == "show"
            and kind in (None, m["notification"]["message"]["type"])
        ]

    def placeholders(self) -> list[str]:
        """Every placeholder the chat input was given, in order."""
        return [a["placeholder"] for a in self.chat_actions() if a["type"] == "update_input" and "placeholder" in a]

    def join(self, name: str, clicks: int) -> None:
        self.send("update", {"name": name, "join:shiny.action": clicks})

    def say(self, text: str, seq: int) -> None:
        self.send(
            "update",
            {"chat_user_input:shinychat.userInput": {"text": text, "attachments": [], "seq": seq}},
        )


@pytest.fixture
def ui_server(fake_api: tuple[FakeChatAPI, str], tmp_path: Path) -> Iterator[str]:
    _, api_url = fake_api
    port = free_port()
    env = {**os.environ, "CHAT_API_URL": api_url}
    with open(tmp_path / "uvicorn.log", "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "ui.app:app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    requests.get(base, timeout=2).close()
                    break
                except requests.ConnectionError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"uvicorn did not start:\n{(tmp_path / 'uvicorn.log').read_text()}")
                    time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def test_ui_serves_the_page(ui_server: str) -> None:
    response = requests.get(ui_server, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="join_area"' in response.text and 'id="chat_area"' in response.text
    response.close()


def test_ui_end_to_end(fake_api: tuple[FakeChatAPI, str], ui_server: str) -> None:
    api, _ = fake_api
    api.add("bob", "<img src=x onerror=alert(1)> **not bold**")
    ws_url = ui_server.replace("http://", "ws://") + "/websocket/"
    with open_ws(ws_url) as ws_alice, open_ws(ws_url) as ws_carol, open_ws(ws_url) as ws_mallory:
        alice, carol, mallory = ShinyClient(ws_alice), ShinyClient(ws_carol), ShinyClient(ws_mallory)

        # Before joining: a join form, and no message shown.
        assert alice.pump(lambda: "Connected" in alice.output_html("connection_status"))
        assert 'id="join"' in alice.output_html("join_area")
        assert alice.chat_blocks() == []

        alice.join("   ", 1)
        assert alice.pump(lambda: "enter a name" in str(alice.output("join_error_text")))
        alice.join("x" * 65, 2)
        assert alice.pump(lambda: "at most 64" in str(alice.output("join_error_text")))
        assert alice.chat_blocks() == []

        alice.join("alice", 3)
        assert alice.pump(lambda: "Chatting as" in alice.output_html("join_area"))
        assert "alice" in alice.output_html("join_area")
        assert alice.output("join_error_text") == ""
        # The history, with the hostile text escaped and no markdown.
        assert alice.pump(lambda: len(alice.chat_blocks()) == 1)
        (history,) = alice.chat_blocks()
        assert "&lt;img src=x onerror=alert(1)&gt; **not bold**" in history
        assert "<img" not in history and "<strong>not" not in history
        assert parse(history).text_by_class["chat-msg-author"] == "bob"

        carol.join("carol", 1)
        assert carol.pump(lambda: len(carol.chat_blocks()) == 1)

        # Alice sends: the API gets it, and it reaches both sessions through
        # the feed without a reload -- once each, marked as hers for her.
        alice.say("hi <b>carol</b>", 1)
        assert alice.pump(lambda: len(alice.chat_blocks()) == 2)
        assert carol.pump(lambda: len(carol.chat_blocks()) == 2)
        assert api.messages[-1]["author"] == "alice"
        assert api.messages[-1]["data"] == "hi <b>carol</b>"
        assert alice.pump(lambda: {"type": "remove_loading"} in alice.chat_actions())
        mine, theirs = alice.chat_blocks()[1], carol.chat_blocks()[1]
        assert "chat-msg-own" in mine and "chat-msg-own" not in theirs
        for block in (mine, theirs):
            assert parse(block).text_by_class["chat-msg-text"] == "hi <b>carol</b>"
        # ...and it is not shown a second time.
        alice.pump(lambda: False, timeout=1.5)
        assert len(alice.chat_blocks()) == 2
        assert not any(a["type"] == "message" and a["message"]["role"] == "user" for a in alice.chat_actions())

        # An API error is shown to the sender, and nothing is displayed.
        alice.say("x" * 2001, 2)
        assert alice.pump(lambda: bool(alice.notifications()))
        assert alice.notifications() == ["Message not sent: message too long (max 2000 characters)"]
        assert alice.output_html("moderation") == ""

        # A 403 when sending: the API blocked mallory before this session knew.
        # The API's explanation becomes a banner, the chat is cleared for good,
        # and later submissions are refused without reaching the API.
        mallory.join("mallory", 1)
        assert mallory.pump(lambda: len(mallory.chat_blocks()) == 2)
        assert mallory.output_html("moderation") == ""
        api.block_silently("mallory")
        mallory.say("spam", 1)
        assert mallory.pump(lambda: bool(mallory.notifications()))
        error = html.escape(api.blocked_error("mallory"), quote=False)
        assert mallory.notifications() == [f"Message not sent: {error}"]
        assert mallory.pump(lambda: {"type": "clear"} in mallory.chat_actions())
        assert mallory.pump(lambda: "chat-blocked" in mallory.output_html("moderation"))
        assert error in mallory.output_html("moderation")
        assert mallory.placeholders()[-1] == "You are blocked: you can no longer send messages."
        posts = len(api.posts)
        mallory.say("spam again", 2)
        assert mallory.pump(lambda: len(mallory.notifications()) == 2)
        assert mallory.notifications()[1] == f"Message not sent: {error}"
        assert mallory.pump(lambda: mallory.chat_actions().count({"type": "remove_loading"}) == 2)
        assert len(api.posts) == posts and len(api.messages) == 2
        api.add("bob", "not for mallory")
        assert alice.pump(lambda: len(alice.chat_blocks()) == 3)
        mallory.pump(lambda: False, timeout=1)
        assert len(mallory.chat_blocks()) == 2  # nothing appended since the clear
        assert mallory.chat_actions()[-1]["type"] != "message"


def test_ui_end_to_end_moderation(fake_api: tuple[FakeChatAPI, str], ui_server: str) -> None:
    """Warnings reach the user as they are published; the third strike blocks."""
    api, _ = fake_api
    api.add("bob", "hello all")
    api.strike("dave", text="Warning: strike 1 of 3 for heck (before joining).")
    ws_url = ui_server.replace("http://", "ws://") + "/websocket/"
    with open_ws(ws_url) as ws_alice, open_ws(ws_url) as ws_carol, open_ws(ws_url) as ws_dave:
        alice, carol, dave = ShinyClient(ws_alice), ShinyClient(ws_carol), ShinyClient(ws_dave)
        for client, name in ((alice, "bob smith/ü"), (carol, "carol"), (dave, "dave")):
            client.join(name, 1)
        for client in (alice, carol, dave):
            assert client.pump(lambda c=client: len(c.chat_blocks()) == 1)  # type: ignore[misc]

        # A strike from before the join sets the status but does not pop up.
        assert dave.pump(lambda: "(before joining)" in dave.output_html("moderation"))
        assert "Strike 1 of 3 — your message was masked" in dave.output_html("moderation")
        dave.pump(lambda: False, timeout=1)
        assert dave.notifications() == []

        # A new warning: within a couple of seconds, a notification and a
        # status line, with the API's text shown as text.
        assert alice.output_html("moderation") == ""
        text = "Warning: strike 1 of 3 for <b>d*rn</b>. At 3 strikes you are blocked."
        published = time.monotonic()
        api.strike("bob smith/ü", text=text)
        assert alice.pump(lambda: bool(alice.notifications("warning")), timeout=5)
        assert alice.pump(lambda: "Strike 1 of 3" in alice.output_html("moderation"), timeout=5)
        assert time.monotonic() - published < 2.5
        escaped = html.escape(text, quote=False)
        assert alice.notifications("warning") == [escaped]
        status = alice.output_html("moderation")
        assert "⚠ Strike 1 of 3 — your message was masked. At 3 strikes you are blocked." in status
        assert escaped in status and "<b>d*rn" not in status
        # ...only for her: carol gets nothing.
        carol.pump(lambda: False, timeout=0.5)
        assert carol.notifications() == [] and carol.output_html("moderation") == ""

        # Warned users still chat.
        alice.say("sorry", 1)
        assert alice.pump(lambda: len(alice.chat_blocks()) == 2)
        assert carol.pump(lambda: len(carol.chat_blocks()) == 2)

        api.strike("bob smith/ü")
        assert alice.pump(lambda: "Strike 2 of 3" in alice.output_html("moderation"), timeout=5)
        assert alice.pump(lambda: len(alice.notifications("warning")) == 2)

        # The third strike blocks: banner, chat cleared, input refused.
        blocked = api.strike("bob smith/ü", terms=("heck",))
        assert alice.pump(lambda: "chat-blocked" in alice.output_html("moderation"), timeout=5)
        banner = alice.output_html("moderation")
        assert blocked["text"] in banner and "Strike" not in banner
        assert alice.pump(lambda: bool(alice.notifications("error")))
        assert alice.notifications("error") == [blocked["text"]]
        assert alice.pump(lambda: {"type": "clear"} in alice.chat_actions())
        assert alice.placeholders()[-1] == "You are blocked: you can no longer send messages."

        posts = len(api.posts)
        alice.say("let me back in", 2)
        assert alice.pump(lambda: len(alice.notifications("error")) == 2)
        assert alice.notifications("error")[1] == f"Message not sent: {blocked['text']}"
        assert alice.pump(lambda: alice.chat_actions().count({"type": "remove_loading"}) == 2)
        assert len(api.posts) == posts  # refused in the UI: no POST reached the API

        # The chat goes on without her.
        shown = len(alice.chat_blocks())
        api.add("carol", "is she gone?")
        assert carol.pump(lambda: len(carol.chat_blocks()) == 3)
        alice.pump(lambda: False, timeout=1)
        assert len(alice.chat_blocks()) == shown
        assert alice.chat_actions()[-1]["type"] != "message"

        # When a session ends, so does its notices long-polling.
        def polls(name: str) -> int:
            return sum(author == name for author, _ in api.notices_log)

        ws_carol.close()
        time.sleep(0.3)  # the server runs the session's on_ended callbacks
        carol_polls, dave_polls = polls("carol"), polls("dave")
        api.wake_notices()
        assert wait_until(lambda: polls("dave") > dave_polls)  # a live session asks again...
        time.sleep(0.3)
        assert polls("carol") == carol_polls  # ...the ended one does not

        # Her name is hers while her session lives: another browser cannot join as her.
        with open_ws(ws_url) as ws_again:
            again = ShinyClient(ws_again)
            assert again.pump(lambda: "Connected" in again.output_html("connection_status"))
            again.join("bob smith/ü", 1)
            assert again.pump(lambda: bool(again.output("join_error_text")))
            assert again.output("join_error_text") == (
                "That name is in use by someone else; choose another or wait until their session ends."
            )
            assert 'id="join"' in again.output_html("join_area")  # still not joined
            assert again.output_html("moderation") == "" and again.chat_blocks() == []

        # Once her browser session ends, her API session does too, freeing the name.
        ws_alice.close()
        assert wait_until(lambda: "bob smith/ü" not in api.holders())
        assert ("delete", "bob smith/ü") in api.session_log

        # Joining again under the same name shows the block at once, and no message.
        with open_ws(ws_url) as ws_again:
            again = ShinyClient(ws_again)
            assert again.pump(lambda: "Connected" in again.output_html("connection_status"))
            joined_at = time.monotonic()
            again.join("bob smith/ü", 1)
            assert again.pump(lambda: "chat-blocked" in again.output_html("moderation"))
            assert time.monotonic() - joined_at < 2
            assert again.pump(lambda: blocked["text"] in again.output_html("moderation"))
            assert again.pump(lambda: bool(again.placeholders()))
            assert again.placeholders()[-1] == "You are blocked: you can no longer send messages."
            again.pump(lambda: False, timeout=1)
            assert again.chat_blocks() == []
            assert again.notifications() == []  # the block predates this session
            again.say("hello?", 1)
            assert again.pump(lambda: bool(again.notifications("error")))
            assert len(api.posts) == posts


def test_ui_end_to_end_sessions(fake_api: tuple[FakeChatAPI, str], ui_server: str) -> None:
    """Every request carries a token: the user's own for sending and notices,
    the process's reader's for the feed; expired sessions are renewed."""
    api, _ = fake_api
    ws_url = ui_server.replace("http://", "ws://") + "/websocket/"
    with open_ws(ws_url) as ws_zoe, open_ws(ws_url) as ws_carol:
        zoe, carol = ShinyClient(ws_zoe), ShinyClient(ws_carol)
        assert zoe.pump(lambda: "Connected" in zoe.output_html("connection_status"))
        # The feed reads as a session of its own, opened when the process started.
        (reader,) = api.holders()
        assert re.fullmatch(r"ui-reader-[0-9a-f]{8}", reader)
        assert set(api.requests_with("GET", "/messages")) == set(api.tokens_of(reader))

        # Joining opens a session; the API's spelling of the name is the one used.
        zoe.join("  zoe\u0301 ", 1)
        assert zoe.pump(lambda: "Chatting as" in zoe.output_html("join_area"))
        assert "zo\u00e9" in zoe.output_html("join_area")
        assert ("open", "zo\u00e9") in api.session_log
        (token,) = api.tokens_of("zo\u00e9")
        assert wait_until(lambda: token in api.requests_with("GET", "/users/zo\u00e9/notices"))
        assert set(api.requests_with("GET", "/users/zo\u00e9/notices")) == {token}

        zoe.say("hello", 1)
        assert zoe.pump(lambda: len(zoe.chat_blocks()) == 1)
        assert "chat-msg-own" in zoe.chat_blocks()[0]
        assert api.posts == [{"data": "hello"}]
        assert api.requests_with("POST", "/messages") == [token]

        # Her session expires: the next send opens a new one and goes through.
        api.expire("zo\u00e9")
        zoe.say("still here", 2)
        assert zoe.pump(lambda: len(zoe.chat_blocks()) == 2)
        (renewed,) = api.tokens_of("zo\u00e9")
        assert renewed != token
        assert api.requests_with("POST", "/messages") == [token, token, renewed]
        assert [m["data"] for m in api.messages] == ["hello", "still here"]
        assert zoe.notifications() == []

        # The reader's session expires: the feed renews it and goes on.
        api.expire(reader)
        api.wake_notices()
        api.add("bob", "after the reader's renewal")
        assert zoe.pump(lambda: len(zoe.chat_blocks()) == 3)
        # a long-poll already in flight may bring that message with the old token (a token is checked
        # when a request starts); the next poll gets the 401, opens a new session and retries with it
        assert wait_until(lambda: api.session_log.count(("open", reader)) == 2)
        assert wait_until(lambda: api.requests_with("GET", "/messages")[-1] in api.tokens_of(reader))

        # Carol cannot take zoé's name while zoé's session lives.
        carol.join("zo\u00e9", 1)
        assert carol.pump(lambda: "in use by someone else" in str(carol.output("join_error_text")))
        assert 'id="join"' in carol.output_html("join_area")
        carol.pump(lambda: False, timeout=0.5)
        assert carol.chat_blocks() == []

        # Zoé's session expires and someone else takes the name meanwhile: she
        # is told, and is back at the join form with an empty chat.
        api.expire("zo\u00e9")
        api.open_session("zo\u00e9")
        zoe.say("am I still me?", 3)
        assert zoe.pump(lambda: bool(zoe.notifications("error")))
        assert "in use by someone else" in zoe.notifications("error")[0]
        assert zoe.pump(lambda: "someone else has taken your name" in str(zoe.output("join_error_text")))
        assert 'id="join"' in zoe.output_html("join_area")
        assert zoe.pump(lambda: {"type": "clear"} in zoe.chat_actions())
        assert "am I still me?" not in [m["data"] for m in api.messages]
        # ...and can join under another name, with the chat back.
        zoe.join("zoe2", 2)
        assert zoe.pump(lambda: "Chatting as" in zoe.output_html("join_area"))
        shown = len(zoe.chat_blocks())
        assert zoe.pump(lambda: len(zoe.chat_blocks()) == shown + 3)

    # Both browser sessions ended: their API sessions are ended, only the reader's is left.
    assert wait_until(lambda: api.holders() == sorted([reader, "zo\u00e9"]))
    assert ("delete", "zoe2") in api.session_log
    assert all(name != "carol" for _, name in api.session_log)  # she never joined


def test_ui_end_to_end_unblocked(fake_api: tuple[FakeChatAPI, str], ui_server: str) -> None:
    """A moderator's unblock lifts the banner, says so, and gives the chat back."""
    api, _ = fake_api
    api.add("bob", "before")
    ws_url = ui_server.replace("http://", "ws://") + "/websocket/"
    with open_ws(ws_url) as ws_dave:
        dave = ShinyClient(ws_dave)
        dave.join("dave", 1)
        assert dave.pump(lambda: len(dave.chat_blocks()) == 1)
        for _ in range(3):
            api.strike("dave")
        assert dave.pump(lambda: "chat-blocked" in dave.output_html("moderation"), timeout=5)
        assert dave.pump(lambda: {"type": "clear"} in dave.chat_actions())
        api.add("bob", "while dave is blocked")
        dave.pump(lambda: False, timeout=1)
        assert len(dave.chat_blocks()) == 1  # nothing appended while blocked

        errors = len(dave.notifications("error"))
        lifted = api.unblock("dave")
        assert dave.pump(lambda: bool(dave.notifications("message")), timeout=5)
        assert dave.notifications("message") == [html.escape(lifted["text"], quote=False)]
        assert dave.pump(lambda: dave.output_html("moderation") == "")  # no banner, no strikes
        # The chat is back, with the recent messages, and he can send again.
        assert dave.pump(lambda: len(dave.chat_blocks()) == 3)
        assert [parse(b).text_by_class["chat-msg-text"] for b in dave.chat_blocks()[1:]] == [
            "before",
            "while dave is blocked",
        ]
        assert dave.placeholders()[-1] == "Message as dave…"
        dave.say("thanks", 1)
        assert dave.pump(lambda: len(dave.chat_blocks()) == 4)
        assert api.messages[-1]["author"] == "dave" and api.messages[-1]["data"] == "thanks"
        assert len(dave.notifications("error")) == errors  # sent: no error

        # A new strike after the unblock counts from 1 again.
        api.strike("dave")
        assert dave.pump(lambda: "Strike 1 of 3" in dave.output_html("moderation"), timeout=5)
