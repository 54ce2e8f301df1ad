"""GET /users/<author> (strikes, blocked) and GET /users/<author>/notices (the warnings sent to them)."""
from __future__ import annotations

from flask import Blueprint, current_app, request

from api.errors import ApiError
from api.feed import BadCursor
from api.notices import get_moderation
from api.validation import clean_author, parse_wait

bp = Blueprint("users", __name__)


def _author(raw: str) -> str:
    return clean_author(raw, current_app.config["MAX_AUTHOR_CHARS"])


@bp.get("/users/<path:author>")
def get_user(author: str):
    author = _author(author)
    state = get_moderation().state(author)
    if state is None:
        raise ApiError(404, f"unknown user {author!r}: no message from them has been recorded yet")
    return {"author": author, "strikes": state.strikes, "is_blocked": state.is_blocked,
            "blocked_at": state.blocked_at, "messages": state.messages}


@bp.get("/users/<path:author>/notices")
def get_notices(author: str):
    author = _author(author)
    moderation = get_moderation()
    wait = parse_wait(request.args.get("wait"), current_app.config["MAX_WAIT_SECONDS"])
    after = request.args.get("after")
    try:
        position = 0 if after in (None, "") else moderation.notices.parse_cursor(after)
    except BadCursor as exc:
        raise ApiError(400, str(exc)) from None
    notices, cursor = moderation.notices.read(author, position, wait)
    return {"author": author, "notices": [n.as_json() for n in notices], "cursor": cursor}
