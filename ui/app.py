"""The chat's browser UI (Shiny for Python).

Run it from the repository root, pointing it at the chat API::

    CHAT_API_URL=http://127.0.0.1:5000 \\
        .venv/bin/python -m uvicorn ui.app:app --host 127.0.0.1 --port 8000

and open http://127.0.0.1:8000/. ``CHAT_API_URL`` defaults to
http://127.0.0.1:5000. The UI only talks to that API, never to Kafka.

How it works:

* A user joins with a name; only then is the chat shown.
* Sending posts ``{"author", "data"}`` to ``POST /messages``; API errors are
  shown as notifications.
* One background thread per process (``ui.feed.FeedPoller``) long-polls
  ``GET /messages`` and keeps the last messages in a thread-safe store. After
  each request it schedules a small task on Shiny's event loop
  (``loop.call_soon_threadsafe``) which, holding ``reactive.lock()``,
  sets two process-wide ``reactive.Value``s (the store's version and the
  connection status) and flushes. Every session's effect depending on the
  version then appends the messages it has not shown yet. Reactive state is
  only ever touched on the event loop, never from the thread. Your own
  messages come back through that feed like everyone else's: shown once.
* Message text is untrusted: it is placed as a text child of htmltools tags,
  which HTML-escape it, and shinychat shows tag content verbatim (no
  markdown), so it always displays literally.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from htmltools import Tag, tags
from shiny import App, Inputs, Outputs, Session, reactive, render, ui

from .feed import (
    DEFAULT_API_URL,
    FeedMessage,
    FeedPoller,
    FeedStatus,
    SendError,
    send_message,
)

log = logging.getLogger(__name__)

API_URL = (os.environ.get("CHAT_API_URL", "").strip() or DEFAULT_API_URL).rstrip("/")
MAX_NAME_LENGTH = 64

API_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"

# C0 controls (except tab and newline) and DEL: invisible, or worse, in a browser.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


# -- rendering (pure functions) ----------------------------------------------


def format_time(timestamp: str) -> str:
    """``"2024-05-01 12:03:04"`` -> ``"12:03:04"``; anything else unchanged."""
    try:
        return datetime.strptime(timestamp, API_TIMESTAMP_FORMAT).strftime("%H:%M:%S")
    except ValueError:
        return timestamp


def clean_text(text: str) -> str:
    """Normalise line endings and drop control characters (keeps tabs/newlines)."""
    return _CONTROL_CHARS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def render_message_text(text: str) -> Tag:
    """Untrusted message text as an element that displays it literally.

    The text is only ever a *text child* of the tag, so htmltools escapes
    ``&``, ``<`` and ``>`` when rendering; CSS keeps its line breaks.
    """
    return tags.div(clean_text(text), class_="chat-msg-text")


def message_to_chat_content(message: FeedMessage, *, own: bool = False) -> Tag:
    """The chat content for one message: "author · time" header, then the text.

    Returning a Tag (never a str) matters: shinychat treats a str as markdown,
    but a Tag as HTML that it inserts as rendered, so the escaped text shows
    literally (``**bold**`` stays ``**bold**``, ``<script>`` stays text).
    """
    header = tags.div(
        tags.strong(clean_text(message.author), class_="chat-msg-author"),
        " · ",
        tags.span(
            format_time(message.timestamp),
            title=f"{message.timestamp} UTC",
            class_="chat-msg-time",
        ),
        class_="chat-msg-header",
    )
    return tags.div(
        header,
        render_message_text(message.data),
        class_="chat-msg chat-msg-own" if own else "chat-msg",
    )


@dataclass(frozen=True, slots=True)
class NameCheck:
    name: str | None
    error: str | None


def validate_name(raw: str | None) -> NameCheck:
    """Check a display name: non-empty after trimming, at most 64 characters."""
    name = (raw or "").strip()
    if not name:
        return NameCheck(None, "Please enter a name to join the chat.")
    if len(name) > MAX_NAME_LENGTH:
        return NameCheck(
            None,
            f"Names can be at most {MAX_NAME_LENGTH} characters (yours has {len(name)}).",
        )
    if _CONTROL_CHARS.search(name) or "\n" in name or "\t" in name:
        return NameCheck(None, "Names cannot contain control characters.")
    return NameCheck(name, None)


# -- the one feed of this process ----------------------------------------------


class LiveFeed:
    """The process-wide poller thread plus the reactive values sessions watch.

    ``version`` (the store's newest sequence number) and ``status`` are plain
    module-level reactive values, not tied to any session. They are only set
    on the event loop, by :meth:`publish`, which the poller thread schedules
    there (``loop.call_soon_threadsafe``) after each request.
    """

    def __init__(self, api_url: str, **poller_options: Any) -> None:
        self.poller = FeedPoller(api_url, on_poll=self._on_poll, **poller_options)
        self.store = self.poller.store
        self.version: reactive.Value[int] = reactive.Value(self.store.version())
        self.status: reactive.Value[FeedStatus] = reactive.Value(self.poller.status())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Publish to ``loop`` (Shiny's event loop) and start polling (idempotent)."""
        self._loop = loop
        self.poller.start()

    def stop(self, timeout: float | None = None) -> None:
        self.poller.stop(timeout)

    def _on_poll(self) -> None:
        """Runs in the poller thread: have the event loop call :meth:`publish`."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._schedule_publish)
        except RuntimeError:  # the loop was closed meanwhile
            pass

    def _schedule_publish(self) -> None:
        """Runs on the event loop (so the coroutine only exists if it will run)."""
        task = asyncio.get_running_loop().create_task(self.publish())
        self._tasks.add(task)
        task.add_done_callback(self._publish_done)

    def _publish_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Chat feed: updating sessions failed", exc_info=task.exception())

    async def publish(self) -> None:
        """Runs on the event loop: update the reactive values and flush.

        ``reactive.lock()`` is Shiny's documented way to set reactive values
        and flush from a task that is not a session's own.
        """
        async with reactive.lock():
            self.version.set(self.store.version())
            self.status.set(self.poller.status())
            await reactive.flush()


_feed: LiveFeed | None = None
_feed_lock = threading.Lock()


def get_feed() -> LiveFeed:
    """The process-wide feed, started on first use; call on the event loop."""
    global _feed
    loop = asyncio.get_running_loop()
    with _feed_lock:
        if _feed is None:
            _feed = LiveFeed(API_URL)
        _feed.start(loop)
        return _feed


# -- UI ----------------------------------------------------------------------

CSS = """
.chat-topbar { display: flex; align-items: baseline; gap: 1rem; flex-wrap: wrap; }
.chat-topbar h1 { font-size: 1.4rem; margin: 0; }
.chat-status { font-size: .85rem; }
.chat-status.ok { color: var(--bs-success); }
.chat-status.down { color: var(--bs-danger); }
.join-form { max-width: 28rem; }
.join-error { color: var(--bs-danger); min-height: 1.5em; }
.chat-msg-header { font-size: .85rem; color: var(--bs-secondary-color); }
.chat-msg-author { color: var(--bs-emphasis-color); }
.chat-msg-text { white-space: pre-wrap; overflow-wrap: anywhere; }
.chat-msg-own { border-left: 3px solid var(--bs-primary); padding-left: .6rem; }
/* shinychat echoes what the user typed as a local "user" message. This app
   never sends user-role messages: every message, your own included, is shown
   when it comes back from the API feed. Hiding the local echo shows it once. */
#chat .shiny-chat-user-message { display: none; }
"""

app_ui = ui.page_fillable(
    ui.head_content(ui.tags.style(CSS)),
    ui.div(
        ui.h1("Chat"),
        ui.output_ui("connection_status", inline=True),
        class_="chat-topbar",
    ),
    ui.output_ui("join_area"),
    # The chat is part of the static page, not rendered on join: messages
    # appended in the same flush as a freshly rendered output would reach the
    # browser before the chat element exists and be lost. It stays empty
    # until the user joins.
    ui.div(
        ui.chat_ui(
            "chat",
            placeholder="Join with a name to chat…",
            show_history=False,
            drawer=False,
            height="100%",
        ),
        id="chat_area",
        class_="html-fill-item html-fill-container",
    ),
    title="Chat",
)


def server(input: Inputs, output: Outputs, session: Session) -> None:
    feed = get_feed()
    store = feed.store
    chat = ui.Chat("chat", history=False)
    user_name: reactive.Value[str | None] = reactive.Value(None)
    join_error: reactive.Value[str | None] = reactive.Value(None)
    shown_seq = 0  # sequence number of the last message this session displayed

    @reactive.calc
    def joined() -> bool:
        return user_name() is not None

    @reactive.effect
    @reactive.event(input.join)
    def _join() -> None:
        if joined():
            return
        check = validate_name(input.name())
        join_error.set(check.error)
        if check.name is not None:
            user_name.set(check.name)
            chat.update_user_input(placeholder=f"Message as {check.name}…")

    @reactive.effect
    async def _show_new_messages() -> None:
        nonlocal shown_seq
        feed.version()  # re-run whenever the poller stored something new
        name = user_name()
        if name is None:
            return
        for seq, message in store.since(shown_seq):
            await chat.append_message(
                message_to_chat_content(message, own=message.author == name)
            )
            shown_seq = seq

    @chat.on_user_submit
    async def _send(user_input: str) -> None:
        name = user_name()
        try:
            if name is None:
                ui.notification_show("Join the chat before sending.", type="warning")
                return
            if not user_input.strip():
                return
            await asyncio.to_thread(send_message, API_URL, name, user_input)
        except SendError as exc:
            ui.notification_show(str(exc), type="error", duration=8)
        finally:
            # The message itself appears when it comes back through the feed;
            # end shinychat's "waiting for a reply" state (placeholder, locked
            # input) now. shinychat has no public call for this.
            await chat._remove_loading_message()  # pyright: ignore[reportPrivateUsage]

    @render.ui
    def connection_status() -> Tag:
        status = feed.status()
        return tags.span(
            ("● " if status.connected else "⚠ ") + status.detail,
            class_="chat-status ok" if status.connected else "chat-status down",
            role="status",
        )

    @render.ui
    def join_area() -> Tag:
        name = user_name()
        if name is not None:
            return tags.p("Chatting as ", tags.strong(name), ".")
        return ui.div(
            ui.input_text(
                "name", "Your name", placeholder=f"1 to {MAX_NAME_LENGTH} characters"
            ),
            ui.input_action_button("join", "Join", class_="btn-primary"),
            ui.div(ui.output_text("join_error_text"), class_="join-error", role="alert"),
            class_="join-form",
        )

    @render.text
    def join_error_text() -> str:
        return join_error() or ""


app = App(app_ui, server)
