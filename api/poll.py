"""POST /notices/poll: one long-poll for the notices of many users at once (a UI process's joined users).

`{"tokens": [...], "after": cursor, "wait": s}` → `{"notices", "cursor", "authors", "refused"}`: the notices of
the users whose tokens are live sessions (`authors`), never anyone else's; `refused` lists the indexes of the
tokens that are not. api/asgi.py serves it on the event loop; this Flask view is the same for the test client.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, current_app, request

from api.auth import Auth, get_auth
from api.errors import ApiError
from api.notices import NoticeBoard, get_moderation
from api.tail import BadCursor
from api.validation import parse_json_body
from config import contract

bp = Blueprint("poll", __name__)

# that request's body size, for contract.MAX_POLL_TOKENS tokens
MAX_BODY = 256 * 1024
FIELDS = ("tokens", "after", "wait")


@dataclass(frozen=True)
class Poll:
    tokens: list[str]
    after: dict | None
    wait: float


def parse_poll(content_type: str | None, data: bytes, board: NoticeBoard, max_wait: float) -> Poll:
    body = parse_json_body(content_type, data, FIELDS)
    tokens = body.get("tokens")
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
        raise ApiError(400, "tokens must be a non-empty list of session tokens (strings)")
    if len(tokens) > contract.MAX_POLL_TOKENS:
        raise ApiError(400, f"tokens holds {len(tokens)} tokens, at most {contract.MAX_POLL_TOKENS}")
    after, wait = body.get("after"), body.get("wait", 0)
    if after is not None and not isinstance(after, str):
        raise ApiError(400, "after must be a cursor (a string) returned by POST /notices/poll")
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= max_wait:
        raise ApiError(400, f"wait must be a number of seconds between 0 and {max_wait:g}")
    try:
        position = None if after in (None, "") else board.parse_cursor(after, "POST /notices/poll")
    except BadCursor as exc:
        raise ApiError(400, str(exc)) from None
    return Poll(tokens, position, float(wait))


def live_authors(auth: Auth, tokens: list[str], wait_s: float = 2.0) -> tuple[set[str], list[int]]:
    """(authors of the tokens that are live sessions, indexes of the others)."""
    authors, refused = set(), []
    for index, token in enumerate(tokens):
        try:
            authors.add(auth.session_for(token, wait_s).author)
        except ApiError:
            refused.append(index)
    return authors, refused


def unread_claims(auth: Auth, tokens: list[str], refused: list[int]) -> list[tuple[int, int]]:
    """Where the claims of refused tokens are that this process has not read yet (opened elsewhere just now)."""
    positions = []
    for index in refused:
        try:
            position = auth.unread_claim(tokens[index])
        except ApiError:
            continue
        if position is not None:
            positions.append(position)
    return positions


def answer(board: NoticeBoard, authors: set[str], refused: list[int], after: dict | None) -> dict:
    notices, cursor = board.read_many(authors, after)
    return {"notices": [n.as_json() for n in notices], "cursor": cursor, "authors": sorted(authors), "refused": refused}


@bp.post("/notices/poll")
def poll_notices():
    request.max_content_length = MAX_BODY
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, f"request body too large (at most {MAX_BODY} bytes)")
    board = get_moderation().notices
    poll = parse_poll(request.content_type, request.get_data(), board, current_app.config["MAX_WAIT_SECONDS"])
    authors, refused = live_authors(get_auth(), poll.tokens)
    if poll.wait and authors:
        board.read_many(authors, poll.after, poll.wait)
        authors, refused = live_authors(get_auth(), poll.tokens)  # sessions may have ended meanwhile
    return answer(board, authors, refused, poll.after)
