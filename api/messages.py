"""POST /messages (to Kafka `chat`) and GET /messages (the tail of `chat_controlled`).

Both need a session (`Authorization: Bearer <token>`): the author is the session's.
Blocked users get 403 on both; messages a user sent after being blocked are never served, nor is repeated-message
spam: the POST judges it (api/flood.py) and the record carries the verdict in its `spam` headers."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from flask import Blueprint, current_app, request

from api.auth import current_session
from api.errors import ApiError
from api.feed import BadCursor, get_feed
from api.flood import get_flood, record_headers
from api.notices import get_moderation
from api.producer import get_producer
from api.validation import clean_author, json_object, parse_limit, parse_message_body, parse_wait
from config import contract

bp = Blueprint("messages", __name__)


_formatted: tuple[int, str] = (0, "")  # (second, its text): one strftime per second, not per message


def utc_now() -> str:
    global _formatted
    second = int(time.time())
    if second != _formatted[0]:
        _formatted = (second, datetime.fromtimestamp(second, UTC).strftime(contract.TIMESTAMP_FORMAT))
    return _formatted[1]


def refuse_if_blocked(author: str) -> None:
    moderation = get_moderation()
    if moderation.is_blocked(author):
        raise moderation.blocked_refusal(author)


@bp.post("/messages")
def post_message():
    author = current_session().author
    body = json_object(request, "data", "author")
    claimed, data = parse_message_body(
        body, current_app.config["MAX_AUTHOR_CHARS"], current_app.config["MAX_DATA_CHARS"]
    )
    if claimed is not None and claimed != author:
        raise ApiError(403, "cannot_send_as", author=author, claimed=claimed)
    refuse_if_blocked(author)
    message_id = str(uuid.uuid4())
    limits = get_flood()
    # 429 over the rate limit or within the slow mode (nothing is sent); else the spam verdict the record carries
    spam = limits.admit(author, message_id, data)
    message = {"author": author, "data": data, "timestamp": utc_now()}
    try:
        get_producer().publish(
            contract.TOPIC_CHAT, author, message, record_headers(message_id, spam), what=f"message {message_id}"
        )
    except BaseException:
        limits.release(author, message_id)
        raise
    return {"id": message_id, **message}, 202


@bp.get("/messages")
def get_messages():
    user = current_session().author
    if request.args.get("user") not in (None, ""):
        named = clean_author(request.args.get("user"), current_app.config["MAX_AUTHOR_CHARS"], field="user")
        if named != user:
            raise ApiError(403, "cannot_read_as", author=user, claimed=named)
    refuse_if_blocked(user)
    moderation = get_moderation()
    wait = parse_wait(request.args.get("wait"), current_app.config["MAX_WAIT_SECONDS"])
    limit = parse_limit(request.args.get("limit"))
    feed = get_feed()
    after = request.args.get("after")
    try:
        position = None if after in (None, "") else feed.parse_cursor(after)
    except BadCursor as exc:
        raise ApiError(400, "bad_cursor", source=exc.source) from None
    messages, cursor = feed.read(position, wait, limit, hide=moderation.is_withheld)
    if wait:  # the session may have ended, or the reader been blocked, while the request waited
        current_session()
        refuse_if_blocked(user)
    return {"messages": [m.as_json() for m in messages], "cursor": cursor}
