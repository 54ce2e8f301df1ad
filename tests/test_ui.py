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
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, jsonify, request
from websockets.sync.client import ClientConnection, connect
from werkzeug.serving import make_server

from ui.feed import (
    FeedMessage,
    FeedPoller,
    MessageStore,
    SendError,
    send_message,
)

# --------------------------------------------------------------------------
# A tiny imitation of the chat API
# --------------------------------------------------------------------------


class FakeChatAPI:
    """The contract of POST/GET /messages, in memory.

    Cursors look like "<epoch>:<count>"; bumping ``epoch`` expires them all.
    ``fail_next`` holds status codes to answer the next GET requests with.
    ``overlap`` makes long-polls also return that many already-delivered
    messages (an at-least-once feed). ``get_log`` records GET query strings.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.messages: list[dict[str, str]] = []
        self.epoch = 1
        self.fail_next: list[int] = []
        self.overlap = 0
        self.tail_size = 50
        self.released = False
        self.get_log: list[dict[str, str]] = []
        self.app = self._make_app()

    def add(self, author: str, data: str) -> dict[str, str]:
        message = {
            "id": uuid.uuid4().hex,
            "author": author,
            "data": data,
            "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
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

        @app.post("/messages")
        def post_message() -> Any:
            body = request.get_json(silent=True)
            if not isinstance(body, dict):
                return jsonify(error="body must be a JSON object"), 400
            author, data = body.get("author"), body.get("data")
            if not isinstance(author, str) or not author.strip() or len(author) > 64:
                return jsonify(error="author must be 1-64 characters"), 400
            if not isinstance(data, str) or not data.strip():
                return jsonify(error="data must be a non-empty string"), 400
            if len(data) > 2000:
                return jsonify(error="message too long (max 2000 characters)"), 413
            if author == "mallory":
                return jsonify(error="user mallory is blocked"), 403
            return jsonify(self.add(author, data)), 202

        @app.get("/messages")
        def get_messages() -> Any:
            args = request.args.to_dict()
            self.get_log.append(args)
            with self.cond:
                if self.fail_next:
                    return jsonify(error="Kafka is unavailable"), self.fail_next.pop(0)
            if not args.get("user"):
                return jsonify(error="user is required"), 400
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
                self.cond.wait_for(
                    lambda: len(self.messages) > count or self.released, timeout=wait
                )
                start = max(0, count - self.overlap)
                return jsonify(
                    messages=self.messages[start:],
                    cursor=self._cursor(len(self.messages)),
                )

        @app.get("/broken/messages")
        def broken_messages() -> Any:
            return jsonify(messages="not a list"), 200

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
    return FeedMessage(
        id=f"m{i}", author=author, data=data or f"hello {i}", timestamp="2024-05-01 12:03:04"
    )


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
    "<a href=\"javascript:alert(1)\">click</a>",
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
    assert all(
        name in ("class", "title") for _, attrs in parsed.elements for name in attrs
    )
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
        assert api.get_log[-1] == {"user": "ui"}  # the tail: no cursor yet
        assert [m.data for m in poller.store.messages()] == ["first", "second"]
        assert poller.store.messages()[0] == FeedMessage(**first)
        assert poller.cursor == "1:2"
        assert poller.status().connected is True

        api.add("carol", "third")
        assert poller.poll_once() == 0.0
        assert api.get_log[-1] == {"user": "ui", "after": "1:2", "wait": "1"}
        assert [m.data for m in poller.store.messages()] == ["first", "second", "third"]
        assert poller.cursor == "1:3"

        # Nothing new: the long-poll times out with an empty list, cursor kept.
        assert poller.poll_once() == 0.0
        assert api.get_log[-1]["after"] == "1:3"
        assert len(poller.store) == 3 and poller.cursor == "1:3"
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


def test_poller_resets_an_expired_cursor(
    fake_api: tuple[FakeChatAPI, str], caplog: pytest.LogCaptureFixture
) -> None:
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
        assert api.get_log[-1] == {"user": "ui"}  # re-read the tail
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


def test_send_message_returns_the_echo(fake_api: tuple[FakeChatAPI, str]) -> None:
    api, url = fake_api
    echo = send_message(url, "alice", "hi <b>there</b>")
    assert echo is not None
    assert (echo.author, echo.data) == ("alice", "hi <b>there</b>")
    assert api.messages[-1]["id"] == echo.id


@pytest.mark.parametrize(
    ("author", "data", "expected"),
    [
        ("mallory", "hi", "Message not sent: user mallory is blocked"),
        ("alice", "x" * 2001, "Message not sent: message too long (max 2000 characters)"),
        ("alice", "   ", "Message not sent: data must be a non-empty string"),
    ],
)
def test_send_message_reports_the_api_error(
    fake_api: tuple[FakeChatAPI, str], author: str, data: str, expected: str
) -> None:
    _, url = fake_api
    with pytest.raises(SendError) as info:
        send_message(url, author, data)
    assert str(info.value) == expected


def test_send_message_without_an_error_body(fake_api: tuple[FakeChatAPI, str]) -> None:
    _, url = fake_api
    with pytest.raises(SendError) as info:
        send_message(f"{url}/nowhere", "alice", "hi")
    assert str(info.value).startswith("Message not sent: HTTP 404")


def test_send_message_when_the_api_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SendError) as info:
        send_message(url, "alice", "hi")
    assert str(info.value) == f"Cannot reach the chat server at {url}. Your message was not sent."


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
        calls.append(
            (threading.current_thread().name, poller.store.version(), poller.status().connected)
        )

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
OUTPUTS = ("connection_status", "join_area", "join_error_text")


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

    def notifications(self) -> list[str]:
        return [
            m["notification"]["message"]["html"]
            for m in self.received
            if (m.get("notification") or {}).get("type") == "show"
        ]

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
    with connect(ws_url) as ws_alice, connect(ws_url) as ws_carol, connect(ws_url) as ws_mallory:
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
        assert not any(a["type"] == "message" and a["message"]["role"] == "user"
                       for a in alice.chat_actions())

        # An API error is shown to the sender, and nothing is displayed.
        mallory.join("mallory", 1)
        assert mallory.pump(lambda: len(mallory.chat_blocks()) == 2)
        mallory.say("spam", 1)
        assert mallory.pump(lambda: bool(mallory.notifications()))
        assert mallory.notifications() == ["Message not sent: user mallory is blocked"]
        assert mallory.pump(lambda: {"type": "remove_loading"} in mallory.chat_actions())
        assert len(api.messages) == 2 and len(mallory.chat_blocks()) == 2
