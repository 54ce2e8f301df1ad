"""POST /messages (to Kafka `chat`) and GET /messages (the tail of `chat_controlled`).

Blocked users get 403 on both; messages a user sent after being blocked are never served."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from flask import Blueprint, current_app, request

from api.errors import ApiError
from api.feed import BadCursor, get_feed
from api.notices import get_moderation
from api.producer import get_producer
from api.validation import clean_author, parse_limit, parse_message_body, parse_wait
from stack import settings

bp = Blueprint("messages", __name__)


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime(settings.TIMESTAMP_FORMAT)


@bp.post("/messages")
def post_message():
    if not request.is_json:
        raise ApiError(400, "send JSON with Content-Type: application/json")
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "body is not valid JSON")
    author, data = parse_message_body(body, current_app.config["MAX_AUTHOR_CHARS"],
                                      current_app.config["MAX_DATA_CHARS"])
    moderation = get_moderation()
    if moderation.is_blocked(author):
        raise ApiError(403, moderation.blocked_error(author))
    message_id = str(uuid.uuid4())
    message = {"author": author, "data": data, "timestamp": utc_now()}
    get_producer().send(message_id, message)
    return {"id": message_id, **message}, 202


@bp.get("/messages")
def get_messages():
    user = clean_author(request.args.get("user"), current_app.config["MAX_AUTHOR_CHARS"], field="user")
    moderation = get_moderation()
    if moderation.is_blocked(user):
        raise ApiError(403, moderation.blocked_error(user))
    wait = parse_wait(request.args.get("wait"), current_app.config["MAX_WAIT_SECONDS"])
    limit = parse_limit(request.args.get("limit"))
    feed = get_feed()
    after = request.args.get("after")
    try:
        position = None if after in (None, "") else feed.parse_cursor(after)
    except BadCursor as exc:
        raise ApiError(400, str(exc)) from None
    messages, cursor = feed.read(position, wait, limit, hide=moderation.is_withheld)
    return {"messages": [m.as_json() for m in messages], "cursor": cursor}
