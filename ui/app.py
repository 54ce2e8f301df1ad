"""The chat's browser UI (Shiny for Python): the page and one session's server.

    CHAT_API_URL=http://127.0.0.1:5000 .venv/bin/python -m uvicorn ui.app:app --host 127.0.0.1 --port 8000

It only talks to the API (``settings.load().api_url``), never to Kafka. The page is in the
person's language (their earlier choice, else the browser's, see ``ui.i18n``), which a switch at
the top changes at any time. Joining opens an API session: with an account (the sign-up and sign-in
forms, whose passwords are cleared after each attempt and never kept), or also under any free name when
the API has guest names on (``GET /chat/settings``). The process's one feed
(``ui.live``) shows every message, your own included, as it comes back from the API; a joined
session follows its user's moderation and, when blocked, says why instead of showing the chat.
README "The two commands" shows it in use.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass

from htmltools import Tag, tags
from shiny import App, Inputs, Outputs, Session, reactive, render, ui
from starlette.requests import Request

from config import contract, settings

from . import i18n
from .client import (
    ChatApiError,
    ChatSession,
    SendError,
    fetch_blocked,
    moderator_name,
    moderator_sign_in,
    send_message,
    sign_up,
    unblock_user,
)
from .guard import Guard
from .i18n import Lang, Text, text
from .live import LiveFeed, ModerationWatch, get_chat_settings, get_feed, get_notices
from .models import BlockedList, ChatSettings, Standing
from .render import (
    CSS,
    block_reason,
    check_sign_in,
    check_sign_up,
    join_failure,
    message_to_chat_content,
    moderator_failure,
    render_intro,
    render_limits,
    render_moderation,
    render_moderator_page,
    render_status,
    send_failure,
    unblock_result,
    validate_name,
)

PASSWORD_INPUTS = ("signin_password", "signup_password", "signup_password2")
MODERATOR_REFRESH_S = 3.0
"""How often a moderator's page reads the blocked users again (GET /moderators/blocked)."""

SETTINGS = settings.load()
API_URL = SETTINGS.api_url

# The switch sets the page's language and remembers the choice at once, without a trip to the server;
# shinychat's own controls get their names in the page's language, and its scrolling message list
# can be reached with the keyboard.
SCRIPT = """
(() => {
  const TITLES = %(titles)s, LABELS = %(labels)s;
  function set(element, name, value) {
    if (element.getAttribute(name) !== value) element.setAttribute(name, value);
  }
  function label(root) {
    const names = LABELS[document.documentElement.lang] || LABELS.en;
    for (const [selector, name] of Object.entries(names)) {
      for (const element of root.querySelectorAll(selector)) {
        set(element, "aria-label", name);
        if (element.hasAttribute("title")) set(element, "title", name);
      }
    }
    for (const element of root.querySelectorAll("#chat .shiny-chat-messages")) set(element, "tabindex", "0");
  }
  document.addEventListener("change", (event) => {
    const input = event.target;
    if (input.name !== "lang" || !(input.value in TITLES)) return;
    document.documentElement.lang = input.value;
    document.title = TITLES[input.value];
    document.cookie = `%(cookie)s=${input.value}; path=/; max-age=31536000; SameSite=Lax`;
    label(document);
  });
  // a moderator's unblock button: the name goes to the server as data (with a count, so a second click counts)
  let unblocks = 0;
  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("button.mod-unblock");
    if (!button || !window.Shiny) return;
    Shiny.setInputValue("unblock", {author: button.dataset.author, n: ++unblocks});
  });
  new MutationObserver(() => label(document)).observe(document.documentElement, {subtree: true, childList: true});
})();
"""
SHINYCHAT_LABELS = {
    "#chat [contenteditable]": "chat.input_label",
    "#chat textarea": "chat.input_label",
    "#chat .shiny-chat-btn-send": "chat.send_label",
    "#chat .shiny-chat-messages-content": "chat.messages_label",
}


def page(lang: Lang) -> Tag:
    """The page, in ``lang``; every text that follows the switch is an output the server renders."""
    script = SCRIPT % {
        "titles": json.dumps({each: i18n.translate(each, "app.title") for each in i18n.LANGUAGES}),
        "labels": json.dumps(
            {each: {sel: i18n.translate(each, tid) for sel, tid in SHINYCHAT_LABELS.items()} for each in i18n.LANGUAGES}
        ),
        "cookie": i18n.COOKIE,
    }
    return ui.page_fillable(
        ui.head_content(ui.tags.style(CSS), ui.tags.script(script)),
        tags.header(
            ui.output_ui("title", inline=True),
            ui.output_ui("connection_status", inline=True),
            ui.div(
                ui.input_radio_buttons(
                    "lang",
                    i18n.translate(lang, "lang.label"),
                    {each: tags.span(i18n.LANGUAGE_NAMES[each], lang=each) for each in i18n.LANGUAGES},
                    selected=lang,
                    inline=True,
                ),
                class_="chat-lang",
            ),
            class_="chat-topbar",
        ),
        # A live region from the start: screen readers read out the warnings and the block as they come.
        ui.div(ui.output_ui("moderation"), class_="chat-moderation", aria_live="polite"),
        tags.main(
            ui.output_ui("intro"),
            # a moderator's sign-in (folded into one line), then their page (never rendered for a chatter's
            # session); above the join forms, where the chat below cannot push it out of the window
            ui.output_ui("moderator_area"),
            ui.output_ui("join_area"),
            # the slow mode, and when the user may send again after a message or a refusal
            ui.div(ui.output_ui("send_limits"), aria_live="polite"),
            # The chat is part of the static page, not rendered on join: messages
            # appended in the same flush as a freshly rendered output would reach the
            # browser before the chat element exists and be lost. It stays empty
            # until the user joins.
            ui.div(
                ui.chat_ui(
                    "chat",
                    placeholder=i18n.translate(lang, "chat.placeholder_join"),
                    show_history=False,
                    drawer=False,
                    height="100%",
                ),
                id="chat_area",
                class_="html-fill-item html-fill-container",
            ),
            class_="chat-main html-fill-item html-fill-container",
        ),
        title=i18n.translate(lang, "app.title"),
        lang=lang,
    )


def name_hint(lang: Lang) -> str:
    return i18n.translate(lang, "join.name_placeholder", max=contract.MAX_AUTHOR_CHARS)


def password_hint(lang: Lang, min_chars: int) -> str:
    return i18n.translate(lang, "account.password_placeholder", min=min_chars)


def password_input(input_id: str, label: str, autocomplete: str, placeholder: str | None = None) -> Tag:
    """A password field: never echoed, never filled in by the server, and left to the browser's password
    manager as a current or a new password."""
    field = ui.input_password(input_id, label, value="", placeholder=placeholder)
    field.children[1].attrs["autocomplete"] = autocomplete
    return field


def account_form(lang: Lang, kind: str, typed_name: str, min_chars: int) -> Tag:
    """The sign-in (``kind`` "signin") or sign-up ("signup") form, with the name typed so far."""
    new = kind == "signup"
    fields = [
        ui.input_text(
            f"{kind}_name",
            i18n.translate(lang, "join.name_label"),
            value=typed_name,
            placeholder=name_hint(lang),
            autocomplete="username",
        ),
        password_input(
            f"{kind}_password",
            i18n.translate(lang, "account.password_label"),
            "new-password" if new else "current-password",
            password_hint(lang, min_chars) if new else None,
        ),
    ]
    if new:
        fields.append(
            password_input(f"{kind}_password2", i18n.translate(lang, "account.password_again_label"), "new-password")
        )
    return tags.fieldset(
        tags.legend(i18n.translate(lang, f"account.{kind}_title")),
        *fields,
        ui.input_action_button(
            kind, i18n.translate(lang, f"account.{kind}_button"), class_="btn-primary" if not new else "btn-secondary"
        ),
        class_=f"join-form join-{kind}",
    )


def moderator_form(lang: Lang) -> Tag:
    """The moderators' sign-in (a name and a secret of CHAT_MODERATORS_FILE, or `moderator` and CHAT_ADMIN_TOKEN),
    folded away under its title: chatters have no use for it."""
    secret = ui.input_password("mod_secret", i18n.translate(lang, "mod.secret_label"), value="")
    secret.children[1].attrs["autocomplete"] = "current-password"
    return tags.details(
        tags.summary(i18n.translate(lang, "mod.signin_title")),
        tags.fieldset(
            ui.input_text("mod_name", i18n.translate(lang, "mod.name_label"), value="", autocomplete="username"),
            secret,
            ui.input_action_button("mod_signin", i18n.translate(lang, "mod.signin_button"), class_="btn-secondary"),
            ui.div(ui.output_text("mod_error_text"), class_="join-error", role="alert"),
            class_="join-form",
        ),
        class_="mod-signin",
    )


def app_ui(request: Request) -> Tag:
    return page(i18n.choose(request.headers, request.cookies))


@dataclass
class Visit:
    """One browser session's state besides its reactive values; only touched on the event loop."""

    chat_session: ChatSession | None = None  # the user's session on the API, once joined
    watch: ModerationWatch | None = None
    joining: bool = False  # a POST /accounts or /sessions is in flight
    ended: bool = False  # the browser session is over
    shown_seq: int = 0  # sequence number (in the feed's store) of the last message displayed
    chat_hidden: bool = False  # the user is blocked: the chat was cleared
    form_lang: Lang | None = None  # the language the join form was rendered in
    form_guest: bool | None = None  # which join form is on the page: a guest's (True) or the accounts' (False)
    moderator_token: str | None = None  # a moderator's token, once GET /moderators/me has said whose it is
    moderator_busy: bool = False  # a moderator's sign-in is in flight

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
    join_error: reactive.Value[Text | None] = reactive.Value(None)
    # The user's strikes and block; None until the join's GET /users answers.
    standing: reactive.Value[Standing | None] = reactive.Value(None)
    # the chat's slow mode and rate limit, as the API last said; when the user may send again (time.monotonic)
    chat_settings: reactive.Value[ChatSettings] = reactive.Value(ChatSettings())
    # how people join, once the API has said (None before): its own value, so the forms are not rebuilt
    # (and what is typed in them lost) each time the settings are read again
    guest_names: reactive.Value[bool | None] = reactive.Value(None)
    send_again_at: reactive.Value[float] = reactive.Value(0.0)
    shared_settings = get_chat_settings(API_URL)
    # where the person's browser is (as uvicorn sees it, behind a proxy it trusts), for the API's per-address limits
    browser_address = session.http_conn.client.host if session.http_conn.client else None
    # the moderator signed in on this page (None: nobody; a chatter never), their page's list and results
    moderator: reactive.Value[str | None] = reactive.Value(None)
    moderator_error: reactive.Value[Text | None] = reactive.Value(None)
    blocked: reactive.Value[BlockedList | None] = reactive.Value(None)
    blocked_problem: reactive.Value[Text | None] = reactive.Value(None)
    unblock_results: reactive.Value[dict[str, Text]] = reactive.Value({})
    refresh_blocked: reactive.Value[int] = reactive.Value(0)
    # the page was built in this language, from the same request headers
    first_lang = i18n.choose(session.http_conn.headers, session.http_conn.cookies)

    @reactive.calc
    def lang() -> Lang:
        """The language the person reads: the switch's, once the page has sent it."""
        return i18n.coerce(input.lang()) if "lang" in input else first_lang

    def lang_now() -> Lang:
        with reactive.isolate():
            return lang()

    async def _end() -> None:
        visit.ended = True
        await visit.sign_out()

    session.on_ended(_end)

    async def _leave(reason: Text) -> None:
        """The user lost their session for good: back to the join form, saying why."""
        await visit.sign_out()
        visit.shown_seq, visit.chat_hidden = 0, False
        user_name.set(None)
        standing.set(None)
        join_error.set(reason)
        await chat.clear_messages()

    def _joined(opened: ChatSession) -> None:
        visit.chat_session = opened
        user_name.set(opened.author)  # as the API normalised (or the account registered) it
        visit.watch = ModerationWatch(session, opened, standing, lang_now, get_notices(API_URL))
        visit.watch.start()

    async def _enter(name: str, password: str | None, *, new_account: bool = False) -> None:
        """Sign up (``new_account``), sign in (a ``password``) or join as a guest; the error, if any, is shown.
        The password lives in this call's frame only."""
        language = lang_now()
        visit.joining = True
        try:
            if new_account and password is not None:
                name = await asyncio.to_thread(
                    sign_up, API_URL, name, password, language=language, client_address=browser_address
                )
            opened = ChatSession(API_URL, name, language=language, client_address=browser_address)
            await asyncio.to_thread(opened.open, password)
        except ChatApiError as exc:
            min_chars = chat_settings.get().password_min_chars
            join_error.set(join_failure(exc, account=password is not None, min_chars=min_chars))
            return
        finally:
            visit.joining = False
        if visit.ended:  # the browser went away meanwhile
            await asyncio.to_thread(opened.close)
            return
        _joined(opened)

    def _clear_passwords() -> None:
        """Empty the password fields in the page (and so in the session's inputs)."""
        for input_id in PASSWORD_INPUTS:
            ui.update_text(input_id, value="")

    @reactive.effect
    @reactive.event(input.join)
    async def _join() -> None:
        if user_name() is not None or visit.joining:
            return
        check = validate_name(input.name())
        join_error.set(check.error)
        if check.name is None:
            return
        await _enter(check.name, None)

    @reactive.effect
    @reactive.event(input.signin)
    async def _sign_in() -> None:
        try:
            if user_name() is not None or visit.joining:
                return
            password = input.signin_password()
            check = check_sign_in(input.signin_name(), password)
            join_error.set(check.error)
            if check.name is not None:
                await _enter(check.name, password)
        finally:
            _clear_passwords()

    @reactive.effect
    @reactive.event(input.signup)
    async def _sign_up() -> None:
        try:
            if user_name() is not None or visit.joining:
                return
            password = input.signup_password()
            min_chars = chat_settings.get().password_min_chars
            check = check_sign_up(input.signup_name(), password, input.signup_password2(), min_chars)
            join_error.set(check.error)
            if check.name is not None:
                await _enter(check.name, password, new_account=True)
        finally:
            _clear_passwords()

    # -- moderators ----------------------------------------------------------------------------

    def _stop_moderating(reason: Text | None = None) -> None:
        visit.moderator_token = None
        moderator.set(None)
        blocked.set(None)
        blocked_problem.set(None)
        unblock_results.set({})
        moderator_error.set(reason)

    @reactive.effect
    @reactive.event(input.mod_signin)
    async def _moderator_sign_in() -> None:
        name, secret = (input.mod_name() or "").strip(), input.mod_secret() or ""
        ui.update_text("mod_secret", value="")  # the secret lives in this call's frame only
        if moderator.get() is not None or visit.moderator_busy:
            return
        if not name or not secret:
            moderator_error.set(text("mod.missing"))
            return
        language = lang_now()
        visit.moderator_busy = True
        try:
            grant = await asyncio.to_thread(
                moderator_sign_in, API_URL, name, secret, language=language, client_address=browser_address
            )
            # the page is for a token the API itself calls a moderator's
            verified = await asyncio.to_thread(
                moderator_name, API_URL, grant.token, language=language, client_address=browser_address
            )
        except ChatApiError as exc:
            moderator_error.set(moderator_failure(exc))
            return
        finally:
            visit.moderator_busy = False
        if visit.ended:
            return
        visit.moderator_token = grant.token
        moderator_error.set(None)
        moderator.set(verified)

    @reactive.effect
    @reactive.event(input.mod_signout)
    def _moderator_sign_out() -> None:
        _stop_moderating()

    @reactive.effect
    async def _follow_blocked() -> None:
        """The moderator's list of blocked users, read again every MODERATOR_REFRESH_S (and after an unblock)."""
        refresh_blocked()
        if moderator() is None or visit.moderator_token is None:
            return
        reactive.invalidate_later(MODERATOR_REFRESH_S)
        token = visit.moderator_token
        try:
            listed = await asyncio.to_thread(
                fetch_blocked, API_URL, token, language=lang_now(), client_address=browser_address
            )
        except ChatApiError as exc:
            if visit.moderator_token != token:
                return
            if exc.status in (401, 403) and exc.code != "moderation_off":
                _stop_moderating(text("mod.not_moderator"))  # the token is no longer good (expired, secret changed)
            else:
                blocked_problem.set(moderator_failure(exc))
            return
        if visit.moderator_token == token:
            blocked.set(listed)
            blocked_problem.set(None)

    @reactive.effect
    @reactive.event(input.unblock)
    async def _unblock() -> None:
        value, token = input.unblock(), visit.moderator_token
        author = value.get("author") if isinstance(value, dict) else None
        if token is None or moderator.get() is None or not isinstance(author, str) or not author:
            return  # not a moderator's page: nothing to do, whatever the browser sends
        try:
            await asyncio.to_thread(unblock_user, API_URL, token, author, language=lang_now())
            result = unblock_result(author, None)
        except ChatApiError as exc:
            result = unblock_result(author, exc)
        unblock_results.set({**unblock_results.get(), author: result})
        refresh_blocked.set(refresh_blocked.get() + 1)

    @render.ui
    def moderator_area() -> Tag | None:
        name = moderator()
        if name is not None:
            return ui.div(
                ui.output_ui("moderator_page"),
                ui.input_action_button("mod_signout", i18n.translate(lang(), "mod.signout_button"), class_="btn-sm"),
            )
        if user_name() is not None:
            return None  # a chatter's session: no moderators' sign-in, no page
        return moderator_form(lang())

    @render.ui
    def moderator_page() -> Tag | None:
        name = moderator()
        if name is None or visit.moderator_token is None:
            return None
        return render_moderator_page(name, blocked(), lang(), unblock_results(), blocked_problem())

    @render.text
    def mod_error_text() -> str:
        error = moderator_error()
        return error.render(lang()) if error is not None else ""

    @reactive.effect
    def _follow_language() -> None:
        """The person switched language: the API hears it, and the texts outputs do not carry change."""
        current = lang()
        if visit.chat_session is not None:
            visit.chat_session.language = current
        if visit.form_lang is not None and visit.form_lang != current:
            visit.form_lang = current
            if visit.form_guest:
                ui.update_text("name", label=i18n.translate(current, "join.name_label"), placeholder=name_hint(current))
                ui.update_action_button("join", label=i18n.translate(current, "join.button"))
            if visit.form_guest is not None:
                with reactive.isolate():
                    min_chars = chat_settings().password_min_chars
                for name_id in ("signin_name", "signup_name"):
                    ui.update_text(
                        name_id, label=i18n.translate(current, "join.name_label"), placeholder=name_hint(current)
                    )
                for password_id in PASSWORD_INPUTS:
                    label = "account.password_again_label" if password_id.endswith("2") else "account.password_label"
                    ui.update_text(password_id, label=i18n.translate(current, label))
                ui.update_text("signup_password", placeholder=password_hint(current, min_chars))
                ui.update_action_button("signin", label=i18n.translate(current, "account.signin_button"))
                ui.update_action_button("signup", label=i18n.translate(current, "account.signup_button"))
        ui.update_radio_buttons("lang", label=i18n.translate(current, "lang.label"))

    @reactive.calc
    def placeholder() -> str:
        name, current = user_name(), standing()
        if name is None:
            return i18n.translate(
                lang(), "chat.placeholder_signin" if guest_names() is False else "chat.placeholder_join"
            )
        if current is not None and current.blocked:
            return i18n.translate(lang(), "chat.placeholder_blocked")
        return i18n.translate(lang(), "chat.placeholder_send", name=name)

    @reactive.effect
    def _show_placeholder() -> None:
        chat.update_user_input(placeholder=placeholder())

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
            return
        if visit.chat_hidden:  # a moderator unblocked them: the recent messages again
            visit.chat_hidden, visit.shown_seq = False, 0
        for seq, message in feed.store.since(visit.shown_seq):
            await chat.append_message(message_to_chat_content(message, own=message.author == name))
            visit.shown_seq = seq

    @reactive.effect
    async def _follow_chat_settings() -> None:
        reactive.invalidate_later(shared_settings.refresh_s)
        current = await shared_settings.current()
        chat_settings.set(current)
        guest_names.set(current.guest_names)

    @render.ui
    def send_limits() -> Tag | None:
        if user_name() is None:
            return None
        left = send_again_at() - time.monotonic()
        if left > 0:
            reactive.invalidate_later(min(1.0, left))
        return render_limits(chat_settings().slow_mode_s, math.ceil(left) if left > 0 else 0, lang())

    @chat.on_user_submit
    async def _send(user_input: str) -> None:
        current = standing()
        chat_session = visit.chat_session
        now = lang_now()
        try:
            if chat_session is None:
                ui.notification_show(i18n.translate(now, "send.not_joined"), type="warning")
                return
            if current is not None and current.blocked:
                refused = text("send.refused", reason=block_reason(current))
                ui.notification_show(refused.render(now), type="error", duration=8)
                return
            if not user_input.strip():
                return
            await asyncio.to_thread(send_message, chat_session, user_input)
            slow_mode_s = chat_settings.get().slow_mode_s
            if slow_mode_s:
                send_again_at.set(time.monotonic() + slow_mode_s)
        except SendError as exc:
            updated = standing.get() or Standing()
            if exc.blocked:  # the API knew before this session did
                updated = updated.with_refusal()
                standing.set(updated)
            if exc.slowed:
                send_again_at.set(time.monotonic() + (exc.retry_after or 1))
            ui.notification_show(send_failure(exc, updated).render(now), type="error", duration=8)
            if exc.session_lost:
                await _leave(text("account.session_ended" if exc.problem == "session_ended" else "join.session_lost"))
            elif not exc.blocked:  # not sent: what they typed is theirs to send again
                chat.update_user_input(value=user_input)
        finally:
            # The message itself appears when it comes back through the feed;
            # end shinychat's "waiting for a reply" state (placeholder, locked
            # input) now. shinychat has no public call for this.
            await chat._remove_loading_message()  # pyright: ignore[reportPrivateUsage]

    @render.ui
    def title() -> Tag:
        return tags.h1(i18n.translate(lang(), "app.title"))

    @render.ui
    def connection_status() -> Tag:
        return render_status(feed.status(), lang())

    @render.ui
    def moderation() -> Tag | None:
        return render_moderation(standing(), lang())

    @render.ui
    def intro() -> Tag:
        return render_intro(lang(), joined=user_name() is not None)

    @render.ui
    def join_area() -> Tag:
        name, guests = user_name(), guest_names()
        if name is not None:
            return tags.p(*text("join.chatting_as", name=tags.strong(name)).children(lang()))
        # Not re-rendered on a switch (what was typed stays): _follow_language relabels it.
        with reactive.isolate():
            current = lang()
            typed = {key: input[key]() if key in input else "" for key in ("name", "signin_name", "signup_name")}
            min_chars = chat_settings().password_min_chars
        visit.form_lang, visit.form_guest = current, guests
        error = ui.div(ui.output_text("join_error_text"), class_="join-error", role="alert")
        if guests is None:  # the API has not said yet how people join
            return tags.p(i18n.translate(current, "status.connecting"), class_="join-form")
        # accounts sign in either way: with guest names on, a guest cannot take an account's name
        forms = ui.div(
            account_form(current, "signin", typed["signin_name"] or "", min_chars),
            account_form(current, "signup", typed["signup_name"] or "", min_chars),
            class_="join-accounts",
        )
        if not guests:
            return ui.div(forms, error)
        guest = ui.div(
            ui.input_text(
                "name",
                i18n.translate(current, "join.name_label"),
                value=typed["name"] or "",
                placeholder=name_hint(current),
                autocomplete="nickname",
            ),
            ui.input_action_button("join", i18n.translate(current, "join.button"), class_="btn-primary"),
            error,
            class_="join-form",
        )
        return ui.div(guest, forms)

    @render.text
    def join_error_text() -> str:
        error = join_error()
        return error.render(lang()) if error is not None else ""


app = App(app_ui, server)
# every request and websocket passes the Host and Origin checks first (ui/guard.py)
app.starlette_app = Guard(app.starlette_app, SETTINGS.ui_allowed_hosts, SETTINGS.ui_allowed_origins)
