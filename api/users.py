"""GET /users/<author> (strikes, blocked), GET /users/<author>/notices (the warnings sent to them, for
their own session) and POST /users/<author>/unblock (moderators: through Kafka to the ledger, recorded under the moderator's name)."""

from __future__ import annotations

import uuid

from flask import Blueprint, current_app, request

from api import i18n
from api.auth import require_moderator, user_or_admin
from api.errors import ApiError, request_language
from api.feed import BadCursor
from api.messages import utc_now
from api.notices import get_moderation
from api.producer import get_producer
from api.validation import clean_author, parse_wait

bp = Blueprint("users", __name__)


def _author(raw: str) -> str:
    return clean_author(raw, current_app.config["MAX_AUTHOR_CHARS"])


def _known_state(author: str):
    """The user's state; 404 for a user with no recorded message."""
    state = get_moderation().state(author)
    if state is None:
        raise ApiError(404, "unknown_user", author=author)
    return state


@bp.get("/users/<author>")
def get_user(author: str):
    author = _author(author)
    state = _known_state(author)
    return {
        "author": author,
        "strikes": state.strikes,
        "is_blocked": state.is_blocked,
        "blocked_at": state.blocked_at,
        "messages": state.messages,
    }


@bp.get("/users/<author>/notices")
def get_notices(author: str):
    author = _author(author)
    user_or_admin(author)
    moderation = get_moderation()
    wait = parse_wait(request.args.get("wait"), current_app.config["MAX_WAIT_SECONDS"])
    after = request.args.get("after")
    try:
        position = None if after in (None, "") else moderation.notices.parse_cursor(after)
    except BadCursor as exc:
        raise ApiError(400, "bad_cursor", source=exc.source) from None
    notices, cursor = moderation.notices.read(author, position, wait)
    if wait:  # the session may have ended while the request waited
        user_or_admin(author)
    language = request_language()
    answer = {"author": author, "notices": [n.as_json(language) for n in notices], "cursor": cursor}
    return answer, 200, i18n.language_headers(language)


@bp.post("/users/<author>/unblock")
def unblock(author: str):
    """Clear a user's block and strikes. The ledger applies it (it is the one writer of the Delta tables)
    and announces it on `chat_notices`; the API lifts the block when that notice arrives."""
    moderator = require_moderator()
    author = _author(author)
    _known_state(author)
    action = {"id": str(uuid.uuid4()), "action": "unblock", "author": author, "by": moderator, "timestamp": utc_now()}
    get_producer().send_action(action)
    return action, 202
