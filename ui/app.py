"""The chat's browser UI (Shiny for Python).

Run it from the repository root, pointing it at the chat API::

    CHAT_API_URL=http://127.0.0.1:5000 \\
        .venv/bin/python -m uvicorn ui.app:app --host 127.0.0.1 --port 8000

and open http://127.0.0.1:8000/. ``CHAT_API_URL`` defaults to
http://127.0.0.1:5000. The UI only talks to that API, never to Kafka.

How it works:

* A user joins with a name: the UI opens a session on the API for it
  (``POST /sessions``, in a worker thread) and keeps the token for that
  browser session (a ``ui.feed.ChatSession``); only then is the chat shown.
  A name another live session holds (409) is refused with an explanation and
  the user stays un-joined. When the browser session ends, so does the API
  session (``DELETE /sessions``), which frees the name.
* Every request made for the user carries the token. When the API answers
  401 (the session expired), a new session is opened for the same name and
  the request sent once more; if the name is someone else's by then, the user
  is told and is back at the join form.
* Sending posts ``{"data"}`` to ``POST /messages``; API errors are shown as
  notifications.
* One background thread per process (``ui.feed.FeedPoller``) long-polls
  ``GET /messages``, as a session of its own (``ui-reader-<8 hex>``), and
  keeps the last messages in a thread-safe store. After
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

Moderation (strikes and blocks) is per user, so per joined session: on join,
a :class:`ModerationWatch` reads ``GET /users/<author>`` (in a worker thread)
and then starts a ``ui.feed.NoticeFollower``, a daemon thread long-polling
``GET /users/<author>/notices`` with the user's token, which hands each batch
of new notices to the session's task through an ``asyncio.Queue``
(``loop.call_soon_threadsafe``).
That task, holding ``reactive.lock()``, folds them into the session's
``Standing`` and flushes; new notices (not the ones from before the join) also
pop up as notifications. The watch stops when the session ends.

Until the user's standing is known no message is shown. A blocked user (from
``GET /users``, a ``blocked`` notice, or a 403 when sending) gets a banner with
the API's explanation, the chat is cleared and stays empty (the shared feed
keeps reading, under its own name, but nothing is appended), the input is
greyed out and anything submitted anyway is refused here, never POSTed. When a
moderator unblocks the user (an ``unblocked`` notice), the banner goes, a
notification says so, and the chat shows the recent messages again.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from htmltools import Tag, tags
from shiny import App, Inputs, Outputs, Session, reactive, render, ui

from config import settings

from .feed import (
    READER_PREFIX,
    ChatApiError,
    ChatSession,
    FeedMessage,
    FeedPoller,
    FeedStatus,
    NameInUse,
    Notice,
    NoticeBatch,
    NoticeFollower,
    SendError,
    Standing,
    UserRecord,
    fetch_user,
    send_message,
)

log = logging.getLogger(__name__)

API_URL = settings.load().api_url
MAX_NAME_LENGTH = 64

API_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"

NOTICE_DURATION = 20
"""Seconds a warning notification stays up (the status line stays for good)."""
BLOCKED_PLACEHOLDER = "You are blocked: you can no longer send messages."
JOIN_PLACEHOLDER = "Join with a name to chat…"
NAME_IN_USE = "That name is in use by someone else; choose another or wait until their session ends."
SESSION_LOST = (
    "Your session expired and someone else has taken your name since; "
    "join again, under another name or once their session ends."
)

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


def strike_status_text(standing: Standing) -> str | None:
    """The status line for a user with strikes who is not (yet) blocked, else None."""
    if standing.blocked or standing.strikes <= 0:
        return None
    head = f"⚠ Strike {standing.strikes} of {standing.limit}"
    tail = f"At {standing.limit} strikes you are blocked."
    if standing.latest is None:  # only GET /users/<author> told us
        return f"{head} for profanity. {tail}"
    return f"{head} — your message was masked. {tail}"


def render_moderation(standing: Standing | None) -> Tag | None:
    """The user's moderation state, for the top of the page (None: nothing to say).

    Blocked: a banner with the API's explanation. Strikes: the status line
    and the latest notice's text. Every API text is a text child (escaped).
    """
    if standing is None:
        return None
    if standing.blocked:
        return tags.div(
            tags.span("⛔", aria_hidden="true"),
            " ",
            tags.strong(clean_text(standing.reason), class_="chat-blocked-reason"),
            class_="chat-blocked alert alert-danger",
            role="alert",
        )
    line = strike_status_text(standing)
    if line is None:
        return None
    latest = standing.latest
    return tags.div(
        tags.strong(line, class_="chat-strikes-line"),
        None
        if latest is None
        else tags.div(
            "Latest notice: ",
            tags.span(clean_text(latest.text), class_="chat-strikes-text"),
            " ",
            tags.span(
                f"({format_time(latest.timestamp)})",
                title=f"{latest.timestamp} UTC",
                class_="chat-msg-time",
            ),
            class_="chat-strikes-notice",
        ),
        class_="chat-strikes alert alert-warning",
        role="status",
    )


def notification_type(notice: Notice) -> str:
    """How a notice pops up: a block as an error, an unblock as good news, else a warning."""
    if notice.blocked:
        return "error"
    return "message" if notice.unblocked else "warning"


@dataclass(frozen=True, slots=True)
class NameCheck:
    name: str | None
    error: str | None


def validate_name(raw: str | None) -> NameCheck:
    """Check a display name: non-empty after trimming, at most 64 characters.

    Names starting with ``ui-reader-`` (``ui.feed.READER_PREFIX``) are kept
    for the shared feed's own sessions.
    """
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
    if name.casefold().startswith(READER_PREFIX):
        return NameCheck(None, f"Names starting with {READER_PREFIX!r} are reserved; please choose another.")
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
        """Stop polling and end the reader's session."""
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
            # End the reader's session when the server exits (else it expires).
            atexit.register(_feed.stop, 0)
        _feed.start(loop)
        return _feed


# -- one session's moderation ----------------------------------------------------


class ModerationWatch:
    """Keeps one joined session's ``standing`` up to date, and tells the user.

    Runs as an asyncio task on Shiny's event loop: it reads
    ``GET /users/<author>`` (in a worker thread), then starts a
    :class:`~ui.feed.NoticeFollower` thread, which reads the notices with the
    user's :class:`~ui.feed.ChatSession`, and applies each batch of notices
    that thread hands over (through an ``asyncio.Queue``). Every update is made
    holding ``reactive.lock()`` and followed by a flush, like
    :meth:`LiveFeed.publish`. Notices that arrive after the join are also
    shown as notifications; the backlog only sets the standing.

    The task runs in a fresh ``contextvars`` context, so it does not inherit
    the reactive context of the effect that started it.
    """

    def __init__(
        self,
        session: Session,
        chat_session: ChatSession,
        standing: reactive.Value[Standing | None],
        **follower_options: Any,
    ) -> None:
        self.session = session
        self.chat_session = chat_session
        self.author = chat_session.author
        self.standing = standing
        self.api_url = chat_session.api_url
        self.follower_options = follower_options
        self.follower: NoticeFollower | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start watching (call on the event loop)."""
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), context=contextvars.Context())
        self._task.add_done_callback(self._done)

    def stop(self) -> None:
        """Stop watching; the follower thread ends after its request in flight."""
        if self._task is not None:
            self._task.cancel()
        if self.follower is not None:
            self.follower.stop()

    def _done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("Moderation of %r failed", self.author, exc_info=task.exception())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        record: UserRecord | None = None
        try:
            record = await asyncio.to_thread(fetch_user, self.api_url, self.author)
        except ChatApiError as exc:
            # Shown as not blocked for now; a blocked user's notices (read
            # next, with retries) still block them.
            log.warning("Cannot look up user %r (%s)", self.author, exc)
        await self._apply(record=record)

        batches: asyncio.Queue[NoticeBatch] = asyncio.Queue()

        def hand_over(batch: NoticeBatch) -> None:  # in the follower's thread
            try:
                loop.call_soon_threadsafe(batches.put_nowait, batch)
            except RuntimeError:  # the event loop is closed
                pass

        self.follower = NoticeFollower(self.chat_session, on_batch=hand_over, **self.follower_options)
        self.follower.start()
        try:
            while True:
                batch = await batches.get()
                await self._apply(notices=batch.notices, notify=not batch.backlog)
        finally:
            self.follower.stop()

    async def _apply(
        self,
        *,
        record: UserRecord | None = None,
        notices: tuple[Notice, ...] = (),
        notify: bool = False,
    ) -> None:
        """Fold a user record and/or notices into the standing, show the
        notices as notifications if ``notify``, and flush."""
        async with reactive.lock():
            with reactive.isolate():
                standing = self.standing.get() or Standing()
            if record is not None:
                standing = standing.with_user(record)
            self.standing.set(standing.with_notices(notices))
            for notice in notices if notify else ():
                ui.notification_show(
                    clean_text(notice.text),
                    type=notification_type(notice),
                    duration=None if notice.blocked else NOTICE_DURATION,
                    session=self.session,
                )
            await reactive.flush()


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
.chat-moderation .alert { margin: .5rem 0 0; padding: .5rem .75rem; }
.chat-blocked-reason, .chat-strikes-text { white-space: pre-wrap; overflow-wrap: anywhere; }
.chat-strikes-notice { font-size: .85rem; }
/* Blocked: the input cannot be used (submissions are refused server-side too). */
body:has(.chat-blocked) #chat .shiny-chat-input {
  pointer-events: none; opacity: .5; user-select: none;
}
"""

app_ui = ui.page_fillable(
    ui.head_content(ui.tags.style(CSS)),
    ui.div(
        ui.h1("Chat"),
        ui.output_ui("connection_status", inline=True),
        class_="chat-topbar",
    ),
    ui.div(ui.output_ui("moderation"), class_="chat-moderation"),
    ui.output_ui("join_area"),
    # The chat is part of the static page, not rendered on join: messages
    # appended in the same flush as a freshly rendered output would reach the
    # browser before the chat element exists and be lost. It stays empty
    # until the user joins.
    ui.div(
        ui.chat_ui(
            "chat",
            placeholder=JOIN_PLACEHOLDER,
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
    # The user's strikes and block; None until the join's GET /users answers.
    standing: reactive.Value[Standing | None] = reactive.Value(None)
    chat_session: ChatSession | None = None  # the user's session on the API, once joined
    watch: ModerationWatch | None = None
    joining = False  # a POST /sessions is in flight
    ended = False  # the browser session is over
    shown_seq = 0  # sequence number of the last message this session displayed
    chat_hidden = False  # the user is blocked: the chat was cleared

    async def _end() -> None:
        """The browser session is over: stop following, end the API session (frees the name)."""
        nonlocal ended
        ended = True
        if watch is not None:
            watch.stop()
        if chat_session is not None:
            await asyncio.to_thread(chat_session.close)

    session.on_ended(_end)

    async def _leave(reason: str) -> None:
        """The user lost their session for good: back to the join form, saying why."""
        nonlocal chat_session, watch, shown_seq, chat_hidden
        if watch is not None:
            watch.stop()
        if chat_session is not None:
            await asyncio.to_thread(chat_session.close)
        chat_session, watch = None, None
        user_name.set(None)
        standing.set(None)
        join_error.set(reason)
        shown_seq, chat_hidden = 0, False
        await chat.clear_messages()
        chat.update_user_input(placeholder=JOIN_PLACEHOLDER)

    @reactive.calc
    def joined() -> bool:
        return user_name() is not None

    @reactive.effect
    @reactive.event(input.join)
    async def _join() -> None:
        nonlocal chat_session, watch, joining
        if joined() or joining:
            return
        check = validate_name(input.name())
        join_error.set(check.error)
        if check.name is None:
            return
        opened = ChatSession(API_URL, check.name)
        joining = True
        try:
            await asyncio.to_thread(opened.open)
        except NameInUse:
            join_error.set(NAME_IN_USE)
            return
        except ChatApiError as exc:
            join_error.set(f"Cannot join: {exc}")
            return
        finally:
            joining = False
        if ended:  # the browser went away meanwhile
            await asyncio.to_thread(opened.close)
            return
        chat_session = opened
        user_name.set(opened.author)  # as the API normalised it
        chat.update_user_input(placeholder=f"Message as {opened.author}…")
        watch = ModerationWatch(session, opened, standing)
        watch.start()

    @reactive.effect
    async def _show_new_messages() -> None:
        nonlocal shown_seq, chat_hidden
        feed.version()  # re-run whenever the poller stored something new
        name = user_name()
        current = standing()
        if name is None or current is None:
            return
        if current.blocked:
            # Blocked users may not read: nothing is shown while they are.
            if not chat_hidden:
                chat_hidden = True
                await chat.clear_messages()
                chat.update_user_input(placeholder=BLOCKED_PLACEHOLDER)
            return
        if chat_hidden:  # a moderator unblocked them: the recent messages again
            chat_hidden, shown_seq = False, 0
            chat.update_user_input(placeholder=f"Message as {name}…")
        for seq, message in store.since(shown_seq):
            await chat.append_message(message_to_chat_content(message, own=message.author == name))
            shown_seq = seq

    @chat.on_user_submit
    async def _send(user_input: str) -> None:
        current = standing()
        try:
            if chat_session is None:
                ui.notification_show("Join the chat before sending.", type="warning")
                return
            if current is not None and current.blocked:
                ui.notification_show(
                    f"Message not sent: {clean_text(current.reason)}",
                    type="error",
                    duration=8,
                )
                return
            if not user_input.strip():
                return
            await asyncio.to_thread(send_message, chat_session, user_input)
        except SendError as exc:
            ui.notification_show(str(exc), type="error", duration=8)
            if exc.blocked:  # the API knew before this session did
                standing.set((standing.get() or Standing()).with_refusal(exc.api_error))
            if exc.session_lost:
                await _leave(SESSION_LOST)
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
    def moderation() -> Tag | None:
        return render_moderation(standing())

    @render.ui
    def join_area() -> Tag:
        name = user_name()
        if name is not None:
            return tags.p("Chatting as ", tags.strong(name), ".")
        return ui.div(
            ui.input_text("name", "Your name", placeholder=f"1 to {MAX_NAME_LENGTH} characters"),
            ui.input_action_button("join", "Join", class_="btn-primary"),
            ui.div(ui.output_text("join_error_text"), class_="join-error", role="alert"),
            class_="join-form",
        )

    @render.text
    def join_error_text() -> str:
        return join_error() or ""


app = App(app_ui, server)
