"""What the user sees, as pure functions: the page's CSS, chat messages, the moderation banner and
status line, and the join form's name check.

Chat text and the API's explanations are untrusted: they are only ever *text children* of
htmltools tags, which escape them, and a message is handed to shinychat as a Tag (HTML it
inserts as is), never as a str (which it would render as markdown).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from htmltools import Tag, tags

from config import contract

from .client import READER_PREFIX
from .models import FeedMessage, Notice, Standing

# C0 controls (except tab and newline) and DEL: invisible, or worse, in a browser.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

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
            time_span(latest.timestamp, f"({format_time(latest.timestamp)})"),
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
    """The join form's check before asking the API for a name: not empty once trimmed, not too long,
    no control characters, and not a name of the shared feed's own sessions (``READER_PREFIX``)."""
    name = (raw or "").strip()
    limit = contract.MAX_AUTHOR_CHARS
    if not name:
        return NameCheck(None, "Please enter a name to join the chat.")
    if len(name) > limit:
        return NameCheck(None, f"Names can be at most {limit} characters (yours has {len(name)}).")
    if CONTROL_CHARS.search(name) or "\n" in name or "\t" in name:
        return NameCheck(None, "Names cannot contain control characters.")
    if name.casefold().startswith(READER_PREFIX):
        return NameCheck(None, f"Names starting with {READER_PREFIX!r} are reserved; please choose another.")
    return NameCheck(name, None)
