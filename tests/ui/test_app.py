"""ui/app.py end to end: the real app under uvicorn, driven over Shiny's websocket, in front of the
real API (tests/ui/live_api.py).

No test measures time or looks for the absence of something after a fixed sleep: "nothing more
happened" is checked once a later marker has arrived (a message, a notification, a request), and
a wait that never ends is left to pytest-timeout.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from shiny import App
from websockets.sync.client import ClientConnection, connect

import ui.app
from config import contract
from stack.broker import free_port
from tests.ui.live_api import ADMIN_TOKEN, REPO_ROOT, LiveApi, wait_until
from tests.ui.samples import parse
from ui.i18n import Lang, text, translate
from ui.models import Notice, Standing
from ui.render import block_reason, notice_text

OUTPUTS = (
    "title",
    "connection_status",
    "moderation",
    "intro",
    "join_area",
    "join_error_text",
    "send_limits",
    "moderator_area",
    "moderator_page",
    "mod_error_text",
)
BLOCKED_PLACEHOLDER = translate("en", "chat.placeholder_blocked")
NAME_IN_USE = translate("en", "join.name_in_use")


def escaped(text: str) -> str:
    return html.escape(text, quote=False)


def worded(notice: dict[str, Any], lang: Lang = "en") -> str:
    """A notice as the UI words it (from its kind and numbers), HTML-escaped."""
    parsed = Notice.from_json(notice)
    assert parsed is not None
    return escaped(notice_text(parsed).render(lang))


def test_app_is_a_shiny_app() -> None:
    assert isinstance(ui.app.app, App)
    for lang in ("es", "en"):
        page = str(ui.app.page(lang))
        for output_id in ("title", "intro", "join_area", "chat_area", "connection_status", "chat", "lang"):
            assert f'id="{output_id}"' in page
        assert f'<html lang="{lang}">' in page
        assert f"<title>{translate(lang, 'app.title')}</title>" in page
        assert escaped(translate(lang, "chat.placeholder_join")) in page


def open_ws(url: str, accept_language: str | None = None) -> ClientConnection:
    """A websocket to the app that buffers everything it receives.

    Shiny sends every session an update on every flush, whichever session
    caused it; with the default bounded queue a client the test stops reading
    stops reading the socket too, and then cannot see the server's close frame.
    """
    headers = {"Accept-Language": accept_language} if accept_language else None
    return connect(url, max_queue=None, additional_headers=headers)


class ShinyClient:
    """Speaks just enough of Shiny's websocket protocol to act as a browser (``lang``: the switch's value
    at the start, as a page sends it; None: like a page without the switch)."""

    def __init__(self, ws: ClientConnection, lang: Lang | None = None) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []
        init: dict[str, Any] = {"name": "", "join:shiny.action": 0}
        if lang is not None:
            init["lang"] = lang
        init.update({f".clientdata_output_{name}_hidden": False for name in OUTPUTS})
        self.send("init", init)

    def send(self, method: str, data: dict[str, Any]) -> None:
        self.ws.send(json.dumps({"method": method, "data": data}))

    def pump(self, condition: Callable[[], bool]) -> None:
        """Receive messages, in order, until ``condition()`` holds."""
        while not condition():
            try:
                raw = self.ws.recv(timeout=0.2)
            except TimeoutError:
                continue
            self.received.append(json.loads(raw))

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

    def shown(self) -> list[str]:
        """The text of every chat message appended since the chat was last cleared."""
        actions = self.chat_actions()
        cleared = max((i for i, a in enumerate(actions) if a["type"] == "clear"), default=-1)
        return [
            parse(segment["content"]).text_by_class["chat-msg-text"]
            for action in actions[cleared + 1 :]
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

    def input_values(self) -> list[str]:
        """Every text the server put back into the chat input, in order."""
        return [a["value"] for a in self.chat_actions() if a["type"] == "update_input" and "value" in a]

    def placeholders(self) -> list[str]:
        """Every placeholder the chat input was given, in order."""
        return [a["placeholder"] for a in self.chat_actions() if a["type"] == "update_input" and "placeholder" in a]

    def join(self, name: str, clicks: int) -> None:
        self.send("update", {"name": name, "join:shiny.action": clicks})

    def sign_up(self, name: str, password: str, again: str, clicks: int) -> None:
        self.send(
            "update",
            {
                "signup_name": name,
                "signup_password": password,
                "signup_password2": again,
                "signup:shiny.action": clicks,
            },
        )

    def sign_in(self, name: str, password: str, clicks: int) -> None:
        self.send("update", {"signin_name": name, "signin_password": password, "signin:shiny.action": clicks})

    def moderator_sign_in(self, name: str, secret: str, clicks: int) -> None:
        self.send("update", {"mod_name": name, "mod_secret": secret, "mod_signin:shiny.action": clicks})

    def unblock(self, author: str, clicks: int) -> None:
        """A click on ``author``'s unblock button, as the page's script reports it."""
        self.send("update", {"unblock": {"author": author, "n": clicks}})

    def outputs_ever(self, name: str) -> list[Any]:
        """Every value the server sent for output ``name``, in order."""
        return [m["values"][name] for m in self.received if name in (m.get("values") or {})]

    def cleared(self, input_id: str) -> int:
        """How many times the server emptied the page's input ``input_id``."""
        return sum(1 for message in self.input_messages(input_id) if message.get("value") == "")

    def error_shown(self, expected: str) -> None:
        self.pump(lambda: self.output("join_error_text") == expected)

    def say(self, text: str, seq: int) -> None:
        self.send("update", {"chat_user_input:shinychat.userInput": {"text": text, "attachments": [], "seq": seq}})

    def connected(self) -> None:
        self.pump(lambda: "chat-status ok" in self.output_html("connection_status"))

    def switch(self, lang: Lang) -> None:
        self.send("update", {"lang": lang})

    def input_messages(self, input_id: str) -> list[dict[str, Any]]:
        """What the server told the page's input ``input_id`` (labels, placeholders), in order."""
        return [
            update["message"]
            for m in self.received
            for update in m.get("inputMessages") or []
            if update.get("id") == input_id
        ]

    def refused(self, text: str, seq: int) -> str:
        """Submit ``text`` as a blocked user: the UI refuses it (a marker that every earlier update has
        reached this client); the refusal's text."""
        errors = len(self.notifications("error"))
        self.say(text, seq)
        self.pump(lambda: len(self.notifications("error")) > errors)
        return self.notifications("error")[-1]


@pytest.fixture
def ui_server(live: LiveApi, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "CHAT_API_URL": live.url}
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
            while True:
                try:
                    requests.get(base, timeout=2).close()
                    break
                except requests.ConnectionError:
                    if proc.poll() is not None:
                        pytest.fail(f"uvicorn did not start:\n{(tmp_path / 'uvicorn.log').read_text()}")
                    time.sleep(0.1)
            yield base.replace("http://", "ws://") + "/websocket/"
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def test_ui_serves_the_page(ui_server: str) -> None:
    response = requests.get(ui_server.replace("ws://", "http://").removesuffix("websocket/"), timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="join_area"' in response.text and 'id="chat_area"' in response.text
    response.close()


def test_ui_end_to_end(live: LiveApi, ui_server: str) -> None:
    live.say("bob", "<img src=x onerror=alert(1)> **not bold**")
    with open_ws(ui_server) as ws_alice, open_ws(ui_server) as ws_carol, open_ws(ui_server) as ws_mallory:
        alice, carol, mallory = ShinyClient(ws_alice), ShinyClient(ws_carol), ShinyClient(ws_mallory)

        # Before joining: a join form, and no message shown.
        alice.connected()
        assert 'id="join"' in alice.output_html("join_area")
        assert alice.chat_blocks() == []

        alice.join("   ", 1)
        alice.pump(lambda: "enter a name" in str(alice.output("join_error_text")))
        alice.join("x" * (contract.MAX_AUTHOR_CHARS + 1), 2)
        alice.pump(lambda: f"at most {contract.MAX_AUTHOR_CHARS}" in str(alice.output("join_error_text")))
        # a name the API refuses: its explanation, and still not joined
        alice.join("a/b", 3)
        alice.pump(lambda: "cannot be used" in str(alice.output("join_error_text")))
        assert alice.output("join_error_text") == translate("en", "join.name_rejected")
        assert "/" in live.last_error("POST", "/sessions")  # the API refused it for its "/"
        assert alice.chat_blocks() == []

        alice.join("alice", 4)
        alice.pump(lambda: "Chatting as" in alice.output_html("join_area"))
        assert "alice" in alice.output_html("join_area")
        assert alice.output("join_error_text") == ""
        # The history, with the hostile text escaped and no markdown.
        alice.pump(lambda: len(alice.chat_blocks()) == 1)
        (history,) = alice.chat_blocks()
        assert "&lt;img src=x onerror=alert(1)&gt; **not bold**" in history
        assert "<img" not in history and "<strong>not" not in history
        assert parse(history).text_by_class["chat-msg-author"] == "bob"

        carol.join("carol", 1)
        carol.pump(lambda: len(carol.chat_blocks()) == 1)

        # Alice sends: the API gets it, and it reaches both sessions through
        # the feed without a reload -- once each, marked as hers for her.
        alice.say("hi <b>carol</b>", 1)
        alice.pump(lambda: len(alice.chat_blocks()) == 2)
        carol.pump(lambda: len(carol.chat_blocks()) == 2)
        assert live.messages[-1]["author"] == "alice"
        assert live.messages[-1]["data"] == "hi <b>carol</b>"
        alice.pump(lambda: {"type": "remove_loading"} in alice.chat_actions())
        mine, theirs = alice.chat_blocks()[1], carol.chat_blocks()[1]
        assert "chat-msg-own" in mine and "chat-msg-own" not in theirs
        for block in (mine, theirs):
            assert parse(block).text_by_class["chat-msg-text"] == "hi <b>carol</b>"
        # ...and it is not shown a second time: the next message comes right after it.
        live.say("bob", "next")
        alice.pump(lambda: "next" in alice.shown())
        assert alice.shown()[1:] == ["hi <b>carol</b>", "next"]
        assert not any(a["type"] == "message" and a["message"]["role"] == "user" for a in alice.chat_actions())

        # An API error is shown to the sender, and nothing is displayed.
        alice.say("x" * (contract.MAX_DATA_CHARS + 1), 2)
        alice.pump(lambda: bool(alice.notifications()))
        assert alice.notifications() == [escaped(translate("en", "send.too_long", max=contract.MAX_DATA_CHARS))]
        assert "too long" in live.last_error("POST", "/messages")
        assert alice.output_html("moderation") == ""

        # Mallory's third profane message: the relay's verdicts block her in the API before any notice
        # reaches her session. Her next message gets a 403: the API's explanation becomes a banner, the
        # chat is cleared for good, and later submissions are refused without reaching the API.
        # The API tells her window of the block at once (test_the_third_strike_blocks_the_window_at_once);
        # here her next POST gets in before that notice does, as it can on a busy machine.
        instant = live.moderation.instant_notice
        live.moderation.instant_notice = lambda message: None  # type: ignore[method-assign]
        mallory.join("mallory", 1)
        mallory.pump(lambda: len(mallory.chat_blocks()) == 3)
        assert mallory.output_html("moderation") == ""
        for seq in range(1, contract.STRIKE_LIMIT + 1):
            mallory.say(f"darn {seq}", seq)
            mallory.pump(lambda s=seq: f"**** {s}" in mallory.shown())  # type: ignore[misc]
        mallory.say("spam", 4)
        mallory.pump(lambda: bool(mallory.notifications()))
        assert live.last_error("POST", "/messages").startswith("mallory is blocked")
        reason = block_reason(Standing().with_refusal())
        error = escaped(reason.render("en"))
        assert error.startswith(f"You are blocked after {contract.STRIKE_LIMIT} strikes")
        assert mallory.notifications() == [f"Message not sent: {error}"]
        mallory.pump(lambda: {"type": "clear"} in mallory.chat_actions())
        mallory.pump(lambda: "chat-blocked" in mallory.output_html("moderation"))
        assert error in mallory.output_html("moderation")
        assert mallory.placeholders()[-1] == BLOCKED_PLACEHOLDER
        live.moderation.instant_notice = instant  # type: ignore[method-assign]
        posts, sent = len(live.posts), len(live.messages)
        assert mallory.refused("spam again", 5) == f"Message not sent: {error}"
        mallory.pump(lambda: mallory.chat_actions().count({"type": "remove_loading"}) == 5)
        assert (len(live.posts), len(live.messages)) == (posts, sent)
        live.say("bob", "not for mallory")
        alice.pump(lambda: "not for mallory" in alice.shown())
        mallory.refused("spam once more", 6)  # a marker behind the message's update
        assert mallory.shown() == []  # nothing appended since the clear


def test_the_third_strike_blocks_the_window_at_once(live: LiveApi, ui_server: str) -> None:
    """The API tells the sender of the third profane message at once, from the relay's verdict: the window
    shows the block and clears the chat without waiting for the ledger or for another message."""
    live.say("bob", "hello")
    with open_ws(ui_server) as ws:
        trudy = ShinyClient(ws)
        trudy.join("trudy", 1)
        trudy.pump(lambda: "hello" in trudy.shown())
        posts = len(live.posts)
        for seq in range(1, contract.STRIKE_LIMIT + 1):
            trudy.say(f"darn {seq}", seq)
        trudy.pump(lambda: "chat-blocked" in trudy.output_html("moderation"))
        trudy.pump(lambda: {"type": "clear"} in trudy.chat_actions())
        assert f"{contract.STRIKE_LIMIT}" in trudy.output_html("moderation")
        assert trudy.placeholders()[-1] == BLOCKED_PLACEHOLDER
        assert len(live.posts) == posts + contract.STRIKE_LIMIT  # told before any further message
        # not from the ledger: it has announced nothing yet
        assert [v for v, _ in live.topics.notices if b'"trudy"' in v] == []


def test_ui_end_to_end_moderation(live: LiveApi, ui_server: str) -> None:
    """Warnings reach the user as they are published; the third strike blocks."""
    name = "bob smith ü"
    live.say("bob", "hello all")
    before = live.strike("dave", terms=("heck-before-joining",))
    with open_ws(ui_server) as ws_alice, open_ws(ui_server) as ws_carol, open_ws(ui_server) as ws_dave:
        alice, carol, dave = ShinyClient(ws_alice), ShinyClient(ws_carol), ShinyClient(ws_dave)
        for client, who in ((alice, name), (carol, "carol"), (dave, "dave")):
            client.join(who, 1)
        for client in (alice, carol, dave):
            client.pump(lambda c=client: len(c.chat_blocks()) == 1)  # type: ignore[misc]

        # A strike from before the join sets the status but does not pop up (a notification would have
        # reached the client before the status it came with).
        dave.pump(lambda: worded(before) in dave.output_html("moderation"))
        assert f"Strike 1 of {contract.STRIKE_LIMIT} — your message was masked" in dave.output_html("moderation")
        assert dave.notifications() == []

        # A new warning: a notification and a status line, with the API's text shown as text.
        assert alice.output_html("moderation") == ""
        warning = live.strike(name, terms=("<b>d*rn</b>",))
        alice.pump(lambda: bool(alice.notifications("warning")))
        alice.pump(lambda: "Strike 1 of" in alice.output_html("moderation"))
        assert alice.notifications("warning") == [worded(warning)]
        status = alice.output_html("moderation")
        limit = contract.STRIKE_LIMIT
        assert f"⚠ Strike 1 of {limit} — your message was masked. At {limit} strikes you are blocked." in status
        assert worded(warning) in status and "<b>d*rn" not in status
        assert "&lt;b&gt;d*rn&lt;/b&gt;" in status  # the matched term, as text

        # Warned users still chat...
        alice.say("sorry", 1)
        alice.pump(lambda: len(alice.chat_blocks()) == 2)
        carol.pump(lambda: len(carol.chat_blocks()) == 2)
        # ...and the warning was only for her: carol got nothing before alice's message.
        assert carol.notifications() == [] and carol.output_html("moderation") == ""

        live.strike(name)
        alice.pump(lambda: "Strike 2 of" in alice.output_html("moderation"))
        alice.pump(lambda: len(alice.notifications("warning")) == 2)

        # The third strike blocks: banner, chat cleared, input refused.
        blocked = live.strike(name, terms=("heck",))
        alice.pump(lambda: "chat-blocked" in alice.output_html("moderation"))
        banner = alice.output_html("moderation")
        assert worded(blocked) in banner and "Strike" not in banner
        alice.pump(lambda: bool(alice.notifications("error")))
        assert alice.notifications("error") == [worded(blocked)]
        alice.pump(lambda: {"type": "clear"} in alice.chat_actions())
        assert alice.placeholders()[-1] == BLOCKED_PLACEHOLDER

        posts = len(live.posts)
        assert alice.refused("let me back in", 2) == f"Message not sent: {worded(blocked)}"
        alice.pump(lambda: alice.chat_actions().count({"type": "remove_loading"}) == 2)
        assert len(live.posts) == posts  # refused in the UI: no POST reached the API

        # The chat goes on without her.
        live.say("carol", "is she gone?")
        carol.pump(lambda: len(carol.chat_blocks()) == 3)
        alice.refused("still here?", 3)  # a marker behind the message's update
        assert alice.shown() == []

        # The process reads everyone's notices in one long-poll; when a session ends, it no longer asks for her.
        tokens = {who: live.tokens_of(who)[0] for who in (name, "carol", "dave")}
        # (the UI may be between two polls when this is read: wait for one that asks for all three)
        wait_until(lambda: set(live.notices_log[-1]["tokens"]) == set(tokens.values()))
        assert all(len(body["tokens"]) <= 3 for body in live.notices_log)  # one stream, not one each
        ws_carol.close()
        wait_until(lambda: ("delete", "carol") in live.session_log)  # she was no longer followed before that
        ended = len(live.notices_log)
        live.strike("carol")  # ends the long-poll in flight, which named her (refused now)...
        wait_until(lambda: len(live.notices_log) > ended)
        live.strike("dave")  # ...and the next ones ask for the others only
        dave.pump(lambda: len(dave.notifications("warning")) == 1)
        assert all(set(body["tokens"]) == {tokens[name], tokens["dave"]} for body in live.notices_log[ended:])

        # Her name is hers while her session lives: another browser cannot join as her.
        with open_ws(ui_server) as ws_again:
            again = ShinyClient(ws_again)
            again.connected()
            again.join(name, 1)
            again.pump(lambda: bool(again.output("join_error_text")))
            assert again.output("join_error_text") == NAME_IN_USE
            assert 'id="join"' in again.output_html("join_area")  # still not joined
            assert again.output_html("moderation") == "" and again.chat_blocks() == []

        # Once her browser session ends, her API session does too, freeing the name.
        ws_alice.close()
        # the recorder logs the DELETE once its answer is written, a moment after the name is free
        wait_until(lambda: ("delete", name) in live.session_log)
        assert name not in live.holders()

        # Joining again under the same name shows the block at once, and no message.
        with open_ws(ui_server) as ws_again:
            again = ShinyClient(ws_again)
            again.connected()
            again.join(name, 1)
            again.pump(lambda: "chat-blocked" in again.output_html("moderation"))
            again.pump(lambda: worded(blocked) in again.output_html("moderation"))
            again.pump(lambda: bool(again.placeholders()))
            assert again.placeholders()[-1] == BLOCKED_PLACEHOLDER
            refusal = again.refused("hello?", 1)
            assert again.chat_blocks() == []
            assert again.notifications() == [refusal]  # the block predates this session: no pop-up
            assert len(live.posts) == posts


def test_ui_end_to_end_sessions(live: LiveApi, ui_server: str) -> None:
    """Every request carries a token: the user's own for sending and notices,
    the process's reader's for the feed; expired sessions are renewed."""
    with open_ws(ui_server) as ws_zoe, open_ws(ui_server) as ws_carol:
        zoe, carol = ShinyClient(ws_zoe), ShinyClient(ws_carol)
        zoe.connected()
        # The feed reads as a session of its own, opened when the process started.
        (reader,) = live.holders()
        assert re.fullmatch(r"ui-reader-[0-9a-f]{8}", reader)
        assert set(live.requests_with("GET", "/messages")) == set(live.tokens_of(reader))

        # Joining opens a session; the API's spelling of the name is the one used.
        zoe.join("  zoe\u0301 ", 1)
        zoe.pump(lambda: "Chatting as" in zoe.output_html("join_area"))
        assert "zo\u00e9" in zoe.output_html("join_area")
        assert ("open", "zo\u00e9") in live.session_log
        (token,) = live.tokens_of("zo\u00e9")
        wait_until(lambda: any(token in body["tokens"] for body in live.notices_log))
        assert {t for body in live.notices_log for t in body["tokens"]} == {token}

        zoe.say("hello", 1)
        zoe.pump(lambda: len(zoe.chat_blocks()) == 1)
        assert "chat-msg-own" in zoe.chat_blocks()[0]
        assert live.posts == [{"data": "hello"}]
        assert live.requests_with("POST", "/messages") == [token]

        # Her session expires: the next send opens a new one and goes through.
        live.expire("zo\u00e9")
        zoe.say("still here", 2)
        zoe.pump(lambda: len(zoe.chat_blocks()) == 2)
        (renewed,) = live.tokens_of("zo\u00e9")
        assert renewed != token
        assert live.requests_with("POST", "/messages") == [token, token, renewed]
        assert [m["data"] for m in live.messages] == ["hello", "still here"]
        assert zoe.notifications() == []

        # The reader's session expires: its long-poll in flight gets a 401 when the message wakes it,
        # and the feed renews the session and reads the message with the new one.
        live.expire(reader)
        live.say("bob", "after the reader's renewal")
        zoe.pump(lambda: len(zoe.chat_blocks()) == 3)
        assert live.session_log.count(("open", reader)) == 2
        assert live.requests_with("GET", "/messages")[-1] in live.tokens_of(reader)

        # Carol cannot take zoé's name while zoé's session lives.
        carol.join("zo\u00e9", 1)
        carol.pump(lambda: "in use by someone else" in str(carol.output("join_error_text")))
        assert 'id="join"' in carol.output_html("join_area")
        carol.join("", 2)  # a marker: its answer comes after anything the failed join caused
        carol.pump(lambda: "enter a name" in str(carol.output("join_error_text")))
        assert carol.chat_blocks() == []

        # Zoé's session expires and someone else takes the name meanwhile: she
        # is told, and is back at the join form with an empty chat.
        live.expire("zo\u00e9")
        live.open_session("zo\u00e9")
        zoe.say("am I still me?", 3)
        zoe.pump(lambda: bool(zoe.notifications("error")))
        assert zoe.notifications("error") == [escaped(translate("en", "send.session_lost"))]
        zoe.pump(lambda: "someone else has taken your name" in str(zoe.output("join_error_text")))
        assert zoe.output("join_error_text") == translate("en", "join.session_lost")
        assert 'id="join"' in zoe.output_html("join_area")
        zoe.pump(lambda: {"type": "clear"} in zoe.chat_actions())
        assert "am I still me?" not in [m["data"] for m in live.messages]
        # ...and can join under another name, with the chat back.
        zoe.join("zoe2", 2)
        zoe.pump(lambda: "Chatting as" in zoe.output_html("join_area"))
        zoe.pump(lambda: len(zoe.shown()) == 3)

    # Both browser sessions ended: their API sessions are ended, only the reader's (and the other zoé's) left.
    wait_until(lambda: live.holders() == sorted([reader, "zo\u00e9"]))
    assert ("delete", "zoe2") in live.session_log
    assert all(who != "carol" for _, who in live.session_log)  # she never joined


def test_a_rate_limited_or_slowed_user_is_told_why_and_when_and_keeps_their_text(live: LiveApi, ui_server: str) -> None:
    """The API's 429 (rate limit or slow mode) becomes a notification saying why and in how long; the text typed
    stays in the input; with slow mode on, the window says so and counts down after each message."""
    window = live.app.extensions["chat_flood"].window
    window.limit, window.window_s = 2, 60.0
    with open_ws(ui_server) as ws_ana, open_ws(ui_server, "es") as ws_eva:
        ana, eva = ShinyClient(ws_ana), ShinyClient(ws_eva, "es")
        ana.connected()
        ana.join("ana", 1)
        ana.pump(lambda: "Chatting as" in ana.output_html("join_area"))
        ana.say("one", 1)
        ana.pump(lambda: "one" in ana.shown())
        ana.say("two", 2)
        ana.pump(lambda: "two" in ana.shown())
        assert "You can send again" not in ana.output_html("send_limits")  # no slow mode: no countdown
        ana.say("three, too fast", 3)
        ana.pump(lambda: bool(ana.notifications("error")))
        (refusal,) = ana.notifications("error")
        waited = re.fullmatch(
            r"Message not sent: you are sending too fast\. You can send again in (\d+) s; your text is still in the box\.",
            html.unescape(refusal),
        )
        assert waited is not None and 1 <= int(waited[1]) <= 60, refusal
        ana.pump(lambda: ana.input_values() == ["three, too fast"])
        ana.pump(lambda: "You can send again in" in ana.output_html("send_limits"))
        assert [m["data"] for m in live.messages] == ["one", "two"]  # nothing more reached `chat`
        assert live.last_error("POST", "/messages").startswith("not sent: you are sending too fast")

        action = live.slow_mode(30)
        assert action["seconds"] == 30
        eva.connected()
        eva.join("eva", 1)
        eva.pump(lambda: "eva" in eva.output_html("join_area") and 'id="join"' not in eva.output_html("join_area"))
        slow = escaped(translate("es", "limits.slow_mode", seconds=30))
        assert slow == "Modo lento: un mensaje cada 30 s"
        eva.pump(lambda: slow in eva.output_html("send_limits"))
        ana.pump(lambda: "Slow mode: one message every 30 s" in ana.output_html("send_limits"))
        eva.say("hola", 1)
        eva.pump(lambda: "hola" in eva.shown())
        eva.pump(lambda: "Podrás enviar de nuevo en" in eva.output_html("send_limits"))
        countdown = re.search(r"Podrás enviar de nuevo en (\d+) s", eva.output_html("send_limits"))
        assert countdown is not None and 1 <= int(countdown[1]) <= 30
        eva.say("otra", 2)
        eva.pump(lambda: bool(eva.notifications("error")))
        (refusal,) = eva.notifications("error")
        waited = re.fullmatch(
            r"Mensaje no enviado: el modo lento está activado\. Podrás volver a enviar en (\d+) s; "
            r"tu texto sigue en el cuadro\.",
            html.unescape(refusal),
        )
        assert waited is not None and 1 <= int(waited[1]) <= 30, refusal
        eva.pump(lambda: eva.input_values() == ["otra"])
        assert [m["data"] for m in live.messages] == ["one", "two", "hola"]

        live.slow_mode(0)  # lifted: the line goes
        eva.pump(lambda: "Modo lento" not in eva.output_html("send_limits"))


def test_ui_end_to_end_unblocked(live: LiveApi, ui_server: str) -> None:
    """A moderator's unblock lifts the banner, says so, and gives the chat back."""
    live.say("bob", "before")
    with open_ws(ui_server) as ws_dave, open_ws(ui_server) as ws_erin:
        dave, erin = ShinyClient(ws_dave), ShinyClient(ws_erin)
        dave.join("dave", 1)
        erin.join("erin", 1)
        dave.pump(lambda: len(dave.chat_blocks()) == 1)
        for _ in range(contract.STRIKE_LIMIT):
            live.strike("dave")
        dave.pump(lambda: "chat-blocked" in dave.output_html("moderation"))
        dave.pump(lambda: {"type": "clear"} in dave.chat_actions())
        live.say("bob", "while dave is blocked")
        erin.pump(lambda: "while dave is blocked" in erin.shown())
        dave.refused("let me in", 1)  # a marker behind the message's update
        assert dave.shown() == []  # nothing appended while blocked

        errors = len(dave.notifications("error"))
        lifted = live.unblock("dave")  # through the API's moderator endpoint, applied by the ledger
        assert lifted["text"] == contract.notice_text("unblocked")
        dave.pump(lambda: bool(dave.notifications("message")))
        assert dave.notifications("message") == [worded(lifted)]
        dave.pump(lambda: dave.output_html("moderation") == "")  # no banner, no strikes
        # The chat is back, with the recent messages, and he can send again.
        dave.pump(lambda: len(dave.shown()) == 2)
        assert dave.shown() == ["before", "while dave is blocked"]
        assert dave.placeholders()[-1] == "Message as dave…"
        dave.say("thanks", 2)
        dave.pump(lambda: len(dave.shown()) == 3)
        assert live.messages[-1]["author"] == "dave" and live.messages[-1]["data"] == "thanks"
        assert len(dave.notifications("error")) == errors  # sent: no error

        # A new strike after the unblock counts from 1 again.
        live.strike("dave")
        dave.pump(lambda: f"Strike 1 of {contract.STRIKE_LIMIT}" in dave.output_html("moderation"))


def test_ui_in_spanish_and_switching_language(live: LiveApi, ui_server: str) -> None:
    """Each person reads the UI in their language: the browser's at first, the switch's after; notices
    are worded from their code, never from the API's English text."""
    live.say("bob", "hola a todos")
    es_first = "es-AR,es;q=0.9,en;q=0.8"
    with open_ws(ui_server, es_first) as ws_ana, open_ws(ui_server, es_first) as ws_ben:
        ana = ShinyClient(ws_ana)  # no switch value yet: the browser's language decides
        ben = ShinyClient(ws_ben, lang="en")  # the switch says English: it wins over the browser
        ana.pump(lambda: "Conectado" in ana.output_html("connection_status"))
        assert "Chat moderado" in ana.output_html("title")
        intro = ana.output_html("intro")
        assert escaped(translate("es", "intro.limit", limit=contract.STRIKE_LIMIT)) in intro
        assert escaped(translate("es", "intro.unblock")) in intro
        assert "Tu nombre" in ana.output_html("join_area") and "Entrar al chat" in ana.output_html("join_area")
        ana.pump(lambda: bool(ana.placeholders()))
        assert ana.placeholders()[-1] == translate("es", "chat.placeholder_join")
        ben.pump(lambda: "Connected" in ben.output_html("connection_status"))
        assert "Moderated chat" in ben.output_html("title") and "Your name" in ben.output_html("join_area")

        ana.join("  ", 1)
        ana.pump(lambda: bool(ana.output("join_error_text")))
        assert ana.output("join_error_text") == translate("es", "join.name_empty")
        ana.join("ana", 2)
        ana.pump(lambda: "Estás en el chat como" in ana.output_html("join_area"))
        assert " ".join(ana.output_html("join_area").split()) == "<p> Estás en el chat como <strong>ana</strong>. </p>"
        ana.pump(lambda: len(ana.chat_blocks()) == 1)
        assert ana.placeholders()[-1] == translate("es", "chat.placeholder_send", name="ana")

        # A warning whose API text is not what the UI shows: it is worded from its kind and numbers.
        wait_until(lambda: any(e.status == 200 for e in live.notices_requests()))  # her (empty) backlog is read
        warning = live.strike("ana", terms=("mierda",), text="IGNORED: the API's English")
        ana.pump(lambda: bool(ana.notifications("warning")))
        assert ana.notifications("warning") == [worded(warning, "es")]
        assert worded(warning, "es").startswith(f"Aviso: falta 1 de {contract.STRIKE_LIMIT} por «mierda».")
        ana.pump(lambda: "Falta 1 de" in ana.output_html("moderation"))
        assert worded(warning, "es") in ana.output_html("moderation")
        assert "IGNORED" not in ana.output_html("moderation")

        # The switch: every text follows at once, the chat stays.
        ana.switch("en")
        ana.pump(lambda: "Moderated chat" in ana.output_html("title"))
        ana.pump(lambda: "Strike 1 of" in ana.output_html("moderation"))
        assert worded(warning, "en") in ana.output_html("moderation") and "IGNORED" not in ana.output_html("moderation")
        ana.pump(lambda: "Chatting as" in ana.output_html("join_area"))
        ana.pump(lambda: ana.placeholders()[-1] == translate("en", "chat.placeholder_send", name="ana"))
        assert "Messages are moderated" in ana.output_html("intro")
        assert ana.input_messages("lang")[-1]["label"]["html"] == "Language"
        assert ana.shown() == ["hola a todos"]  # nothing cleared or shown twice
        # ...and the API hears the new language from her next request on.
        second = live.strike("ana", terms=("shit",), text="IGNORED again")
        ana.pump(lambda: len(ana.notifications("warning")) == 2)
        assert ana.notifications("warning")[-1] == worded(second, "en")
        sessions = [e.language for e in live.recorder.requests("POST", "/sessions") if e.status == 201]
        assert "es" in sessions  # she joined in Spanish
        ana.say("hello again", 1)
        wait_until(lambda: [e.language for e in live.recorder.requests("POST", "/messages")] == ["en"])
        assert [e.language for e in live.recorder.requests("GET", "/users/ana")] == ["es"]

        # Not joined yet: the form is relabelled, not re-rendered (what was typed stays).
        ben.send("update", {"name": "be"})
        ben.switch("es")
        ben.pump(lambda: bool(ben.input_messages("join")))
        assert ben.input_messages("join")[-1]["label"]["html"] == "Entrar al chat"
        relabelled = ben.input_messages("name")[-1]
        assert relabelled["label"]["html"] == "Tu nombre" and "value" not in relabelled
        assert relabelled["placeholder"] == translate("es", "join.name_placeholder", max=contract.MAX_AUTHOR_CHARS)
        ben.pump(lambda: "Chat moderado" in ben.output_html("title"))
        ben.join("", 1)
        ben.pump(lambda: bool(ben.output("join_error_text")))
        assert ben.output("join_error_text") == translate("es", "join.name_empty")
        ben.switch("en")  # an error already shown follows the switch too
        ben.pump(lambda: ben.output("join_error_text") == translate("en", "join.name_empty"))


PASSWORD = "correct horse battery"


def test_accounts_sign_up_sign_in_and_their_refusals(live: LiveApi, ui_server: str) -> None:
    """Beside the guest's join (the test API has guest names on), a sign-up and a sign-in form: passwords are
    checked in the UI, cleared after every attempt and never sent back to the page; each refusal is worded in
    the reader's language; a signed-in user chats under the spelling they registered."""
    with open_ws(ui_server, "es-ES,es;q=0.9") as ws_ana, open_ws(ui_server) as ws_eve:
        ana, eve = ShinyClient(ws_ana), ShinyClient(ws_eve)
        ana.pump(lambda: 'id="signup"' in ana.output_html("join_area"))
        form = ana.output_html("join_area")
        assert 'id="join"' in form and 'id="signin"' in form
        assert form.count('type="password"') == 3
        assert 'autocomplete="current-password"' in form and form.count('autocomplete="new-password"') == 2
        assert "Crear una cuenta" in form and escaped(translate("es", "account.password_placeholder", min=10)) in form

        # checked before sending: the two passwords differ, or one is too short; nothing reaches the API
        ana.sign_up("Ana", PASSWORD, PASSWORD + "!", 1)
        ana.error_shown(translate("es", "account.password_mismatch"))
        ana.sign_up("Ana", "short", "short", 2)
        ana.error_shown(translate("es", "account.password_too_short", min=10))
        assert live.recorder.requests("POST", "/accounts") == []
        ana.pump(lambda: ana.cleared("signup_password") == 2 and ana.cleared("signup_password2") == 2)

        ana.sign_up("  Ana ", PASSWORD, PASSWORD, 3)
        ana.pump(lambda: "Estás en el chat como" in ana.output_html("join_area"))
        assert "<strong>Ana</strong>" in ana.output_html("join_area")
        ana.pump(lambda: ana.cleared("signup_password") == 3 and ana.cleared("signin_password") == 3)
        assert [e.json() for e in live.recorder.requests("POST", "/accounts")] == [
            {"author": "Ana", "password": PASSWORD}  # trimmed, as the join form trims a name
        ]
        # from the browser's address, as the UI's server saw it
        assert live.recorder.requests("POST", "/accounts")[0].forwarded_for == "127.0.0.1"
        ana.say("hola", 1)
        ana.pump(lambda: "hola" in ana.shown())
        assert live.messages[-1]["author"] == "Ana"

        # someone else: a look-alike can neither be signed up nor joined as a guest, a wrong password gets the
        # one answer
        eve.pump(lambda: 'id="signin"' in eve.output_html("join_area"))
        eve.sign_up("\u0410na", PASSWORD, PASSWORD, 1)  # a Cyrillic А
        eve.error_shown(translate("en", "account.name_taken"))
        eve.join("ANA", 1)
        eve.error_shown(translate("en", "guest.name_taken"))
        eve.sign_in("ANA", "not her password", 1)
        eve.error_shown(translate("en", "account.bad_credentials"))
        # the right password while Ana's own window is open: her live session holds the name
        eve.sign_in("ANA", PASSWORD, 2)
        eve.error_shown(translate("en", "join.name_in_use"))
        # Ana closes her window and signs in from the other under another case: the registered spelling is
        # the one shown and used
        ws_ana.close()
        wait_until(lambda: "Ana" not in live.holders())
        eve.sign_in("ANA", PASSWORD, 3)
        eve.pump(lambda: "Chatting as" in eve.output_html("join_area"))
        assert "<strong>Ana</strong>" in eve.output_html("join_area")
        eve.pump(lambda: eve.cleared("signin_password") == 4)

        # the passwords never came back to either page
        for client in (ana, eve):
            assert PASSWORD not in json.dumps(client.received)
            assert "not her password" not in json.dumps(client.received)


def test_accounts_held_and_throttled_say_when_to_try_again(live: LiveApi, ui_server: str) -> None:
    """A sign-up from an address a blocked user signed in from, and too many wrong passwords: the wait the
    API's Retry-After gives, in the reader's words. Every browser reaches the API from the UI's address."""
    with open_ws(ui_server) as ws:
        mallory = ShinyClient(ws)
        mallory.pump(lambda: 'id="signup"' in mallory.output_html("join_area"))
        mallory.sign_up("mallory", PASSWORD, PASSWORD, 1)
        mallory.pump(lambda: "Chatting as" in mallory.output_html("join_area"))
        for _ in range(contract.STRIKE_LIMIT):
            live.strike("mallory")
        mallory.pump(lambda: "chat-blocked" in mallory.output_html("moderation"))
    with open_ws(ui_server) as ws:
        eve = ShinyClient(ws)
        eve.pump(lambda: 'id="signup"' in eve.output_html("join_area"))
        eve.sign_up("someone new", PASSWORD, PASSWORD, 1)
        hours = math.ceil(live.app.config["SIGNUP_HOLD_S"] / 3600)
        eve.error_shown(translate("en", "account.address_held", wait=text("wait.hours", count=hours)))

        for clicks in range(1, live.app.config["SIGN_IN_LIMIT"] + 1):  # the last wrong one locks the address
            eve.sign_in("nobody", f"guess number {clicks}", clicks)
            eve.pump(lambda c=clicks: eve.cleared("signin_password") == c + 1)  # type: ignore[misc]
        eve.error_shown(translate("en", "account.bad_credentials"))
        eve.sign_in("nobody", "one guess more", live.app.config["SIGN_IN_LIMIT"] + 1)
        minutes = math.ceil(live.app.config["SIGN_IN_WINDOW_S"] / 60)
        eve.error_shown(translate("en", "account.too_many_attempts", wait=text("wait.minutes", count=minutes)))
        assert live.app.extensions["chat_accounts"].by_address._locked  # the API's own lock-out, not the UI's


def test_without_guest_names_only_accounts_join(live: LiveApi, ui_server: str) -> None:
    live.app.extensions["chat_accounts"].guest_names = False
    with open_ws(ui_server, "es") as ws:
        ana = ShinyClient(ws)
        ana.pump(lambda: 'id="signup"' in ana.output_html("join_area"))
        form = ana.output_html("join_area")
        assert 'id="join"' not in form and 'id="signin"' in form
        ana.pump(lambda: bool(ana.placeholders()))
        assert ana.placeholders()[-1] == translate("es", "chat.placeholder_signin")
        ana.switch("en")  # the forms are relabelled, not re-rendered
        ana.pump(lambda: bool(ana.input_messages("signup")))
        assert ana.input_messages("signup")[-1]["label"]["html"] == translate("en", "account.signup_button")
        assert ana.input_messages("signup_password2")[-1]["label"]["html"] == translate(
            "en", "account.password_again_label"
        )
        assert "value" not in ana.input_messages("signin_name")[-1]


def test_a_signed_in_session_that_ends_asks_to_sign_in_again(live: LiveApi, ui_server: str) -> None:
    with open_ws(ui_server) as ws:
        ana = ShinyClient(ws)
        ana.pump(lambda: 'id="signup"' in ana.output_html("join_area"))
        ana.sign_up("ana", PASSWORD, PASSWORD, 1)
        ana.pump(lambda: "Chatting as" in ana.output_html("join_area"))
        live.expire("ana")
        ana.say("still here?", 1)
        ana.pump(lambda: bool(ana.notifications("error")))
        assert ana.notifications("error") == [escaped(translate("en", "send.session_ended"))]
        ana.error_shown(translate("en", "account.session_ended"))
        assert 'id="signin"' in ana.output_html("join_area")
        signed = [e.json() for e in live.recorder.requests("POST", "/sessions") if e.json()["author"] == "ana"]
        assert signed == [{"author": "ana", "password": PASSWORD}]  # and no renewal without it
        assert live.messages == []


def test_a_moderator_signs_in_sees_the_blocked_users_live_and_unblocks_one(live: LiveApi, ui_server: str) -> None:
    """Issue 17: the moderator's page, only for a token GET /moderators/me calls a moderator's; a chatter never
    gets it (nor the moderators' sign-in once joined), and nothing of theirs reaches a moderator endpoint."""
    auth = live.app.extensions["chat_auth"]
    with open_ws(ui_server) as ws_mod, open_ws(ui_server) as ws_carol:
        mod, carol = ShinyClient(ws_mod), ShinyClient(ws_carol)
        carol.join("carol", 1)
        carol.pump(lambda: "Chatting as" in carol.output_html("join_area"))
        mod.connected()
        assert 'id="mod_signin"' in mod.output_html("moderator_area")
        assert mod.output_html("moderator_page") == ""

        # wrong secrets: the API's 403 in words, then its throttle's 429 with the wait
        auth.guesses.limit = 2
        mod.moderator_sign_in("moderator", "not the secret at all", 1)
        mod.pump(lambda: mod.output("mod_error_text") == translate("en", "mod.bad_credentials"))
        assert mod.cleared("mod_secret") >= 1  # the secret is not left in the page
        mod.moderator_sign_in("nobody", ADMIN_TOKEN, 2)
        mod.pump(lambda: len(live.recorder.requests("POST", "/moderators/sign_in")) == 2)
        mod.moderator_sign_in("moderator", ADMIN_TOKEN, 3)  # the right one, while the address is held off
        mod.pump(lambda: "Too many wrong attempts" in str(mod.output("mod_error_text")))
        locked = live.recorder.requests("POST", "/moderators/sign_in")[-1]
        assert locked.status == 429 and re.search(
            r"try again in (\d+ seconds|1 minute)\.", mod.output("mod_error_text")
        )
        assert live.requests_with("GET", "/moderators/me") == []  # no token: no page asked for
        auth.guesses._locked.clear()  # the lockout's time has passed
        auth.guesses.limit = 10

        # mallory is blocked before the moderator signs in; nina after: the page follows without a reload
        for _ in range(contract.STRIKE_LIMIT):
            live.strike("mallory")
        mod.moderator_sign_in("moderator", ADMIN_TOKEN, 4)
        mod.pump(lambda: "mallory" in mod.output_html("moderator_page"))
        (token,) = {
            e.answer_json()["token"] for e in live.recorder.requests("POST", "/moderators/sign_in") if e.status == 201
        }
        assert live.requests_with("GET", "/moderators/me") == [token]  # verified before the page was rendered
        page = mod.output_html("moderator_page")
        assert "Moderating as <strong>moderator</strong>" in page and 'data-author="mallory"' in page
        assert worded(json.loads(live.topics.notices[-1][0])) in page  # the block's notice, in words
        assert mod.output("mod_error_text") == ""
        for _ in range(contract.STRIKE_LIMIT):
            live.strike("nina")
        mod.pump(lambda: "nina" in mod.output_html("moderator_page"))

        # unblock: POST /users/<a>/unblock with the moderator's token, its 202 said, and the list follows
        mod.unblock("mallory", 1)
        mod.pump(lambda: "Unblock of mallory sent (202)" in mod.output_html("moderator_page"))
        assert live.requests_with("POST", "/users/mallory/unblock") == [token]
        mod.pump(lambda: 'data-author="mallory"' not in mod.output_html("moderator_page"))
        assert 'data-author="nina"' in mod.output_html("moderator_page")
        assert not live.moderation.is_blocked("mallory")
        # an unblock the API refuses says why
        mod.unblock("nobody-known", 2)
        mod.pump(lambda: "Could not unblock nobody-known" in mod.output_html("moderator_page"))
        assert translate("en", "mod.unknown_user") in mod.output_html("moderator_page")

        # the chatter: no sign-in form once joined, never a page, and no moderator request of theirs
        carol.unblock("nina", 1)  # a crafted input from a chatter's page does nothing
        carol.say("hello", 1)  # a marker behind it
        carol.pump(lambda: "hello" in carol.shown())
        assert carol.outputs_ever("moderator_page") in ([], [None], [""]) or all(
            "mod-page" not in str(v) for v in carol.outputs_ever("moderator_page")
        )
        assert all("mod-page" not in str(v) for v in carol.outputs_ever("moderator_area"))
        assert carol.output_html("moderator_area") == ""
        assert live.requests_with("POST", "/users/nina/unblock") == []
        carol_tokens = set(live.tokens_of("carol"))
        for path in ("/moderators/me", "/moderators/blocked", "/users/nina/unblock"):
            assert not carol_tokens & set(live.requests_with("GET" if "unblock" not in path else "POST", path))

        # signing out of moderation: the page is gone, the form is back
        mod.send("update", {"mod_signout:shiny.action": 1})
        mod.pump(lambda: 'id="mod_signin"' in mod.output_html("moderator_area"))
        assert mod.output_html("moderator_page") == ""


def test_a_moderator_page_whose_token_stops_being_good_goes_away(live: LiveApi, ui_server: str) -> None:
    """A token the API no longer takes (a secret changed at a restart, expired): the page is not kept on the
    strength of an earlier answer; the moderator is asked to sign in again."""
    with open_ws(ui_server) as ws_mod:
        mod = ShinyClient(ws_mod)
        mod.connected()
        mod.moderator_sign_in("moderator", ADMIN_TOKEN, 1)
        mod.pump(lambda: translate("en", "mod.none_blocked") in mod.output_html("moderator_page"))
        auth = live.app.extensions["chat_auth"]
        # the API no longer takes the tokens it signed (as after a restart with the secret changed)
        auth._fingerprints = dict.fromkeys(auth._fingerprints, "0" * 32)
        mod.pump(lambda: mod.output("mod_error_text") == translate("en", "mod.not_moderator"))
        assert 'id="mod_signin"' in mod.output_html("moderator_area")
        assert mod.output_html("moderator_page") == ""
