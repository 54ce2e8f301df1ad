"""The chat's browser UI (Shiny for Python): the page and one session's server.

    CHAT_API_URL=http://127.0.0.1:5000 .venv/bin/python -m uvicorn ui.app:app --host 127.0.0.1 --port 8000

It only talks to the API (``settings.load().api_url``), never to Kafka. Joining
opens an API session for the name; the process's one feed (``ui.live``) shows
every message, your own included, as it comes back from the API; a joined
session follows its user's moderation and, when blocked, shows the API's
explanation instead of the chat. README "The two commands" shows it in use.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from htmltools import Tag, tags
from shiny import App, Inputs, Outputs, Session, reactive, render, ui

from config import contract, settings

from .client import ChatApiError, ChatSession, NameInUse, SendError, send_message
from .live import LiveFeed, ModerationWatch, get_feed
from .models import Standing
from .render import CSS, clean_text, message_to_chat_content, render_moderation, validate_name

API_URL = settings.load().api_url

BLOCKED_PLACEHOLDER = "You are blocked: you can no longer send messages."
JOIN_PLACEHOLDER = "Join with a name to chat…"
NAME_IN_USE = "That name is in use by someone else; choose another or wait until their session ends."
SESSION_LOST = (
    "Your session expired and someone else has taken your name since; "
    "join again, under another name or once their session ends."
)

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


@dataclass
class Visit:
    """One browser session's state besides its reactive values; only touched on the event loop."""

    chat_session: ChatSession | None = None  # the user's session on the API, once joined
    watch: ModerationWatch | None = None
    joining: bool = False  # a POST /sessions is in flight
    ended: bool = False  # the browser session is over
    shown_seq: int = 0  # sequence number (in the feed's store) of the last message displayed
    chat_hidden: bool = False  # the user is blocked: the chat was cleared

    async def sign_out(self) -> None:
        """Stop following the user's moderation and end their API session (which frees the name)."""
        watch, chat_session = self.watch, self.chat_session
        self.watch, self.chat_session = None, None
        if watch is not None:
            watch.stop()
        if chat_session is not None:
            await asyncio.to_thread(chat_session.close)


def server(input: Inputs, output: Outputs, session: Session) -> None:
    feed: LiveFeed = get_feed(API_URL)
    chat = ui.Chat("chat", history=False)
    visit = Visit()
    user_name: reactive.Value[str | None] = reactive.Value(None)
    join_error: reactive.Value[str | None] = reactive.Value(None)
    # The user's strikes and block; None until the join's GET /users answers.
    standing: reactive.Value[Standing | None] = reactive.Value(None)

    async def _end() -> None:
        visit.ended = True
        await visit.sign_out()

    session.on_ended(_end)

    async def _leave(reason: str) -> None:
        """The user lost their session for good: back to the join form, saying why."""
        await visit.sign_out()
        visit.shown_seq, visit.chat_hidden = 0, False
        user_name.set(None)
        standing.set(None)
        join_error.set(reason)
        await chat.clear_messages()
        chat.update_user_input(placeholder=JOIN_PLACEHOLDER)

    @reactive.effect
    @reactive.event(input.join)
    async def _join() -> None:
        if user_name() is not None or visit.joining:
            return
        check = validate_name(input.name())
        join_error.set(check.error)
        if check.name is None:
            return
        opened = ChatSession(API_URL, check.name)
        visit.joining = True
        try:
            await asyncio.to_thread(opened.open)
        except NameInUse:
            join_error.set(NAME_IN_USE)
            return
        except ChatApiError as exc:
            join_error.set(f"Cannot join: {exc}")
            return
        finally:
            visit.joining = False
        if visit.ended:  # the browser went away meanwhile
            await asyncio.to_thread(opened.close)
            return
        visit.chat_session = opened
        user_name.set(opened.author)  # as the API normalised it
        chat.update_user_input(placeholder=f"Message as {opened.author}…")
        visit.watch = ModerationWatch(session, opened, standing)
        visit.watch.start()

    @reactive.effect
    async def _show_new_messages() -> None:
        feed.version()  # re-run whenever the poller stored something new
        name = user_name()
        current = standing()
        if name is None or current is None:
            return
        if current.blocked:
            # Blocked users may not read: nothing is shown while they are.
            if not visit.chat_hidden:
                visit.chat_hidden = True
                await chat.clear_messages()
                chat.update_user_input(placeholder=BLOCKED_PLACEHOLDER)
            return
        if visit.chat_hidden:  # a moderator unblocked them: the recent messages again
            visit.chat_hidden, visit.shown_seq = False, 0
            chat.update_user_input(placeholder=f"Message as {name}…")
        for seq, message in feed.store.since(visit.shown_seq):
            await chat.append_message(message_to_chat_content(message, own=message.author == name))
            visit.shown_seq = seq

    @chat.on_user_submit
    async def _send(user_input: str) -> None:
        current = standing()
        chat_session = visit.chat_session
        try:
            if chat_session is None:
                ui.notification_show("Join the chat before sending.", type="warning")
                return
            if current is not None and current.blocked:
                ui.notification_show(f"Message not sent: {clean_text(current.reason)}", type="error", duration=8)
                return
            if not user_input.strip():
                return
            await asyncio.to_thread(send_message, chat_session, user_input)
        except SendError as exc:
            ui.notification_show(str(exc), type="error", duration=8)
            if exc.blocked:  # the API knew before this session did
                standing.set((standing.get() or Standing()).with_refusal(chat_session.author, exc.api_error))
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
            ui.input_text("name", "Your name", placeholder=f"1 to {contract.MAX_AUTHOR_CHARS} characters"),
            ui.input_action_button("join", "Join", class_="btn-primary"),
            ui.div(ui.output_text("join_error_text"), class_="join-error", role="alert"),
            class_="join-form",
        )

    @render.text
    def join_error_text() -> str:
        return join_error() or ""


app = App(app_ui, server)
