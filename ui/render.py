"""What the user sees, as pure functions: the page's CSS, the first screen, chat messages, the
moderation banner and status line, the connection status, errors, and the join forms' checks (a name;
an account's password, which they never keep).

Every word comes from the catalog (``ui.i18n``) in the reader's language: notices are worded from
their kind and numbers, errors from what happened (an HTTP status in its context). Chat text and
the API's texts are untrusted: they are only ever *text children* of htmltools tags, which escape
them, and a message is handed to shinychat as a Tag (HTML it inserts as is), never as a str
(which it would render as markdown).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

from htmltools import Tag, tags

from config import contract

from .client import READER_PREFIX, ChatApiError, NameInUse, SendError
from .i18n import Lang, Terms, Text, text
from .models import (
    PASSWORD_MAX_CHARS,
    PASSWORD_MIN_CHARS,
    BlockedList,
    BlockedUser,
    FeedMessage,
    FeedStatus,
    Notice,
    Standing,
)

# C0 controls (except tab and newline) and DEL: invisible, or worse, in a browser.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

CSS = """
.chat-topbar { display: flex; align-items: baseline; gap: 1rem; flex-wrap: wrap; }
.chat-topbar h1 { font-size: 1.4rem; margin: 0; }
.chat-status { font-size: .85rem; }
.chat-status.ok { color: var(--bs-success-text-emphasis); }
.chat-status.down { color: var(--bs-danger-text-emphasis); }
.chat-lang { margin-left: auto; }
.chat-lang .shiny-input-container { margin: 0; width: auto; }
.chat-lang .control-label { font-size: .85rem; margin: 0 .75rem 0 0; }
.chat-lang .shiny-input-container, .chat-lang .shiny-options-group { display: inline-flex; align-items: baseline; }
.chat-intro { max-width: 40rem; }
.chat-intro h2, .chat-rules summary { font-size: 1.05rem; margin: .5rem 0 .25rem; }
.chat-intro ul, .chat-rules ul { padding-left: 1.25rem; margin-bottom: .5rem; }
.chat-rules { font-size: .9rem; }
.join-form { max-width: 28rem; }
.join-accounts { display: flex; flex-wrap: wrap; gap: 0 2.5rem; }
.join-accounts fieldset { flex: 1 1 18rem; max-width: 24rem; }
.join-accounts legend { font-size: 1.05rem; }
.join-form .btn { margin-bottom: .5rem; }
/* a focus ring on everything that can take the focus, over the theme's (which drops the outline) */
html :is(a, button, input, summary, [contenteditable], [tabindex]):focus-visible {
  outline: 3px solid var(--bs-primary); outline-offset: 2px;
}
.join-error { color: var(--bs-danger-text-emphasis); min-height: 1.5em; }
.mod-page { max-width: 48rem; }
.mod-page h2 { font-size: 1.2rem; }
.mod-page h3 { font-size: 1.05rem; }
.mod-user { border-top: 1px solid var(--bs-border-color); padding: .5rem 0; }
.mod-user ol { margin: .25rem 0; padding-left: 1.25rem; font-size: .9rem; }
.mod-result { font-size: .9rem; }
/* A message cut by the top of the scrolled chat keeps its author line in view: without this,
   the top message showed only its text in a window where the chat had scrolled (issue 21). */
.chat-msg-header {
  font-size: .85rem; color: var(--bs-secondary-color);
  position: sticky; top: 0; z-index: 1; background: var(--bs-body-bg);
}
/* ...and stays under the input, which shinychat keeps stuck to the bottom of the same scroller (its
   composer, a stacking context of its own): a header scrolled under it covered the input and took the
   clicks meant for it (seen on a phone). */
#chat .shiny-chat-composer { z-index: 2; }
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


def format_time(timestamp: str) -> str:
    """``"2024-05-01 12:03:04"`` -> ``"12:03:04"``; anything else unchanged."""
    try:
        return datetime.strptime(timestamp, contract.TIMESTAMP_FORMAT).strftime("%H:%M:%S")
    except ValueError:
        return timestamp


def clean_text(text: str) -> str:
    """Normalise line endings and drop control characters (keeps tabs/newlines)."""
    return CONTROL_CHARS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def time_span(timestamp: str, shown: str) -> Tag:
    """``shown`` (a time), with the full UTC timestamp as its tooltip."""
    return tags.span(shown, title=f"{timestamp} UTC", class_="chat-msg-time")


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
        time_span(message.timestamp, format_time(message.timestamp)),
        class_="chat-msg-header",
    )
    return tags.div(
        header,
        render_message_text(message.data),
        class_="chat-msg chat-msg-own" if own else "chat-msg",
    )


def notice_text(notice: Notice) -> Text:
    """A notice in words, from its kind and numbers (the API's ``text`` only for a kind the UI does not know)."""
    numbers = {"strike": notice.strike, "limit": notice.limit}
    if notice.category == "spam" and notice.kind in ("warning", "blocked"):
        return text(f"notice.{notice.kind}_spam", **numbers)
    if notice.kind == "warning":
        if notice.terms:
            return text("notice.warning", terms=Terms(tuple(clean_text(term) for term in notice.terms)), **numbers)
        return text("notice.warning_no_terms", **numbers)
    if notice.kind == "blocked":
        if notice.terms:
            return text("notice.blocked", terms=Terms(tuple(clean_text(term) for term in notice.terms)), **numbers)
        return text("notice.blocked_no_terms", **numbers)
    if notice.kind == "unblocked":
        return text("notice.unblocked")
    return text("notice.verbatim", text=clean_text(notice.text))


def block_reason(standing: Standing) -> Text:
    """Why the user is blocked: the ``blocked`` notice if one came, else the strikes (and since when)."""
    if standing.block_notice is not None:
        return notice_text(standing.block_notice)
    strikes = max(standing.strikes, standing.limit)
    if standing.blocked_at:
        return text("blocked.reason_since", strikes=strikes, since=clean_text(standing.blocked_at))
    return text("blocked.reason", strikes=strikes)


def strike_status_text(standing: Standing) -> Text | None:
    """The status line for a user with strikes who is not (yet) blocked, else None."""
    if standing.blocked or standing.strikes <= 0:
        return None
    # without a notice, only GET /users/<author> told us
    line = "strikes.record" if standing.latest is None else "strikes.masked"
    return text(line, strikes=standing.strikes, limit=standing.limit)


def render_moderation(standing: Standing | None, lang: Lang) -> Tag | None:
    """The user's moderation state, for the top of the page (None: nothing to say).

    Blocked: a banner saying why. Strikes: the status line and the latest
    notice. The page's live region around it has screen readers read it out.
    """
    if standing is None:
        return None
    if standing.blocked:
        return tags.div(
            tags.span("⛔", aria_hidden="true"),
            " ",
            tags.strong(block_reason(standing).render(lang), class_="chat-blocked-reason"),
            class_="chat-blocked alert alert-danger",
            role="alert",
        )
    line = strike_status_text(standing)
    if line is None:
        return None
    latest = standing.latest
    return tags.div(
        tags.strong(line.render(lang), class_="chat-strikes-line"),
        None
        if latest is None
        else tags.div(
            text("strikes.latest").render(lang),
            " ",
            tags.span(notice_text(latest).render(lang), class_="chat-strikes-text"),
            " ",
            time_span(latest.timestamp, f"({format_time(latest.timestamp)})"),
            class_="chat-strikes-notice",
        ),
        class_="chat-strikes alert alert-warning",
    )


def notification_type(notice: Notice) -> str:
    """How a notice pops up: a block as an error, an unblock as good news, else a warning."""
    if notice.blocked:
        return "error"
    return "message" if notice.unblocked else "warning"


def status_text(status: FeedStatus) -> Text:
    """The connection to the chat server, in words."""
    if status.state == "problem":
        return text("status.problem", detail=clean_text(status.detail))
    return text(f"status.{status.state}")


def render_status(status: FeedStatus, lang: Lang) -> Tag:
    return tags.span(
        tags.span("● " if status.connected else "⚠ ", aria_hidden="true"),
        status_text(status).render(lang),
        class_="chat-status ok" if status.connected else "chat-status down",
        role="status",
    )


def render_limits(slow_mode_s: int, seconds_left: int, lang: Lang) -> Tag | None:
    """The slow mode, while it is on, and how long until the user may send again, while they must wait."""
    lines = []
    if slow_mode_s > 0:
        lines.append(tags.span(text("limits.slow_mode", seconds=slow_mode_s).render(lang), class_="chat-slow-mode"))
    if seconds_left > 0:
        lines.append(tags.span(text("limits.countdown", seconds=seconds_left).render(lang), class_="chat-countdown"))
    return tags.p(*lines, class_="chat-limits") if lines else None


# -- the first screen ------------------------------------------------------------------------------


def rules(lang: Lang) -> Tag:
    """How moderation works, as a list."""
    return tags.ul(
        tags.li(text("intro.masked").render(lang)),
        tags.li(text("intro.strike").render(lang)),
        tags.li(text("intro.limit", limit=contract.STRIKE_LIMIT).render(lang)),
        tags.li(text("intro.unblock").render(lang)),
    )


def render_intro(lang: Lang, *, joined: bool) -> Tag:
    """What this chat is and how it is moderated: in full before joining, folded away after."""
    if joined:
        return tags.details(
            tags.summary(text("intro.rules_title").render(lang)),
            rules(lang),
            class_="chat-rules",
        )
    return tags.div(
        tags.p(text("intro.what").render(lang)),
        tags.h2(text("intro.rules_title").render(lang)),
        rules(lang),
        class_="chat-intro",
    )


# -- errors ----------------------------------------------------------------------------------------


def wait_text(seconds: int) -> Text:
    """How long to wait (a ``Retry-After``), in the largest unit that says it, rounded up."""
    if seconds < 60:
        return text("wait.seconds", count=max(seconds, 1))
    if seconds < 3600:
        return text("wait.minutes", count=math.ceil(seconds / 60))
    return text("wait.hours", count=math.ceil(seconds / 3600))


def later(text_id: str, retry_after: int | None) -> Text:
    """``text_id`` saying when to try again, or its ``_later`` form when the API did not say."""
    return text(text_id, wait=wait_text(retry_after)) if retry_after else text(f"{text_id}_later")


def join_failure(error: ChatApiError, *, account: bool = False, min_chars: int = PASSWORD_MIN_CHARS) -> Text:
    """Why ``POST /accounts`` or ``POST /sessions`` did not let the user in (``account``: they signed up or
    in with a password; ``min_chars``: the shortest password the API takes)."""
    if isinstance(error, NameInUse):
        return text("join.name_in_use")
    if error.status is None:
        return text("join.unreachable")
    code = error.code or ""
    if code == "name_taken":
        return text("account.name_taken" if account else "guest.name_taken")
    if code == "bad_credentials" or (account and error.status == 401):
        return text("account.bad_credentials")
    if error.status == 429:
        return later("account.too_many_attempts", error.retry_after)
    if code == "address_held" or (account and error.status == 403):
        return later("account.address_held", error.retry_after)
    if code == "password_too_short":
        return text("account.password_too_short", min=min_chars)
    if code == "password_too_long":
        return text("account.password_too_long", max=PASSWORD_MAX_CHARS)
    if error.status == 400 and code.startswith("password"):
        return text("account.password_rejected")
    if error.status in (400, 413):
        return text("join.name_rejected")
    if error.status == 503:
        return text("join.unavailable")
    return text("join.failed", detail=clean_text(str(error)))


def send_failure(error: SendError, standing: Standing) -> Text:
    """Why a message was not sent; ``standing`` explains a block."""
    if error.problem != "refused":
        return text(f"send.{error.problem}")
    if error.status == 403:
        return text("send.refused", reason=block_reason(standing))
    if error.status == 413:
        return text("send.too_long", max=contract.MAX_DATA_CHARS)
    if error.status == 400:
        return text("send.invalid")
    if error.status == 503:
        return text("send.unavailable")
    if error.slowed:
        seconds = error.retry_after or 1
        return text("send.slow_mode" if error.code == "slow_mode" else "send.rate_limited", seconds=seconds)
    return text("send.failed", detail=clean_text(error.api_error or str(error)))


# -- the join form's name check --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NameCheck:
    name: str | None
    error: Text | None


def validate_name(raw: str | None) -> NameCheck:
    """The join form's check before asking the API for a name: not empty once trimmed, not too long,
    no control characters, and not a name of the shared feed's own sessions (``READER_PREFIX``)."""
    name = (raw or "").strip()
    limit = contract.MAX_AUTHOR_CHARS
    if not name:
        return NameCheck(None, text("join.name_empty"))
    if len(name) > limit:
        return NameCheck(None, text("join.name_too_long", max=limit, length=len(name)))
    if CONTROL_CHARS.search(name) or "\n" in name or "\t" in name:
        return NameCheck(None, text("join.name_control"))
    if contract.is_reader_name(name):
        return NameCheck(None, text("join.name_reserved", prefix=READER_PREFIX))
    return NameCheck(name, None)


@dataclass(frozen=True, slots=True)
class AccountCheck:
    """A sign-up or sign-in form's check: the name to send, or why nothing is sent."""

    name: str | None
    error: Text | None


def check_sign_in(raw_name: str | None, password: str | None) -> AccountCheck:
    """The sign-in form's check: a name the join form takes, and a password (whatever its length: the
    minimum may have changed since the account was made)."""
    check = validate_name(raw_name)
    if check.name is None:
        return AccountCheck(None, check.error)
    if not password:
        return AccountCheck(None, text("account.password_empty"))
    if len(password) > PASSWORD_MAX_CHARS:
        return AccountCheck(None, text("account.password_too_long", max=PASSWORD_MAX_CHARS))
    return AccountCheck(check.name, None)


def check_sign_up(raw_name: str | None, password: str | None, again: str | None, min_chars: int) -> AccountCheck:
    """The sign-up form's check: a name the join form takes, a password of ``min_chars`` to
    ``PASSWORD_MAX_CHARS`` characters, typed twice the same."""
    check = validate_name(raw_name)
    if check.name is None:
        return AccountCheck(None, check.error)
    password = password or ""
    if not password:
        return AccountCheck(None, text("account.password_empty"))
    if len(password) < min_chars:
        return AccountCheck(None, text("account.password_too_short", min=min_chars))
    if len(password) > PASSWORD_MAX_CHARS:
        return AccountCheck(None, text("account.password_too_long", max=PASSWORD_MAX_CHARS))
    if password != (again or ""):
        return AccountCheck(None, text("account.password_mismatch"))
    return AccountCheck(check.name, None)


# -- moderators ----------------------------------------------------------------------------------


def moderator_failure(error: ChatApiError) -> Text:
    """Why a moderator's sign-in (or a request with their token) did not work."""
    if error.status is None:
        return text("mod.unreachable")
    code = error.code or ""
    if code == "moderation_off":
        return text("mod.off")
    if code == "bad_moderator_credentials":
        return text("mod.bad_credentials")
    if error.status == 429:
        return later("mod.too_many_attempts", error.retry_after)
    if error.status in (401, 403):
        return text("mod.not_moderator")
    if error.status in (400, 413):
        return text("mod.rejected")
    return text("mod.failed", detail=clean_text(str(error)))


def unblock_result(name: str, error: ChatApiError | None) -> Text:
    """What became of a moderator's unblock of ``name`` (``error``: None for the API's 202)."""
    if error is None:
        return text("mod.unblock_sent", name=name)
    if error.status == 404:
        reason = text("mod.unknown_user")
    elif error.status == 503:
        reason = text("mod.kafka_down")
    else:
        reason = moderator_failure(error)
    return text("mod.unblock_failed", name=name, reason=reason)


def render_blocked_user(user: BlockedUser, lang: Lang, result: Text | None) -> Tag:
    """One blocked user: name, strikes, since when, the notices that blocked them, and the unblock button (which
    carries the name in a data attribute: the page's script hands it to the server, never as markup)."""
    since = (
        text("mod.since", since=clean_text(user.blocked_at)) if user.blocked_at else text("mod.since_unknown")
    ).render(lang)
    notices = (
        tags.div(
            text("mod.told").render(lang),
            tags.ol(
                *(
                    tags.li(notice_text(n).render(lang), " ", time_span(n.timestamp, f"({format_time(n.timestamp)})"))
                    for n in user.notices
                )
            ),
        )
        if user.notices
        else tags.p(text("mod.no_notices").render(lang), class_="text-body-secondary")
    )
    name = clean_text(user.author)
    return tags.li(
        tags.strong(name, class_="mod-author"),
        " · ",
        text("mod.strikes", count=user.strikes).render(lang),
        " · ",
        since,
        notices,
        tags.button(
            text("mod.unblock_button", name=name).render(lang),
            type="button",
            class_="btn btn-sm btn-outline-danger mod-unblock",
            data_author=user.author,
        ),
        None if result is None else tags.span(" ", result.render(lang), class_="mod-result", role="status"),
        class_="mod-user",
    )


def render_moderator_page(
    name: str,
    blocked: BlockedList | None,
    lang: Lang,
    results: dict[str, Text] | None = None,
    problem: Text | None = None,
) -> Tag:
    """The moderator's page: who they are, the blocked users (None: not read yet) with an unblock button each,
    what became of their unblocks (``results`` by name), and why the list could not be refreshed (``problem``)."""
    results = results or {}
    body: list[Tag | None] = []
    if problem is not None:
        body.append(tags.p(text("mod.list_stale", reason=problem).render(lang), class_="join-error", role="alert"))
    if blocked is None:
        body.append(tags.p(text("status.connecting").render(lang)))
    elif not blocked.users:
        body.append(tags.p(text("mod.none_blocked").render(lang), class_="mod-none"))
    else:
        if blocked.total > len(blocked.users):
            body.append(tags.p(text("mod.shown_of", shown=len(blocked.users), total=blocked.total).render(lang)))
        body.append(
            tags.ul(
                *(render_blocked_user(u, lang, results.get(u.author)) for u in blocked.users),
                class_="list-unstyled mod-blocked",
            )
        )
    # unblocks of users no longer listed (lifted since): their result still shows
    listed = {u.author for u in blocked.users} if blocked is not None else set()
    gone = [tags.li(result.render(lang)) for author, result in results.items() if author not in listed]
    return tags.section(
        tags.h2(*text("mod.page_title", name=tags.strong(clean_text(name))).children(lang)),
        tags.h3(text("mod.blocked_title").render(lang)),
        *body,
        tags.ul(*gone, class_="mod-result list-unstyled", role="status") if gone else None,
        class_="mod-page",
        id="mod_page",
    )
