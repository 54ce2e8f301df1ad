"""POST /sessions (sign in under a name, get a token) and DELETE /sessions (sign out, free the name)."""

from __future__ import annotations

from flask import Blueprint, current_app, request

from api.auth import NameInUse, current_session, format_utc, get_auth
from api.errors import ApiError
from api.validation import clean_author, json_object

bp = Blueprint("sessions", __name__)


@bp.post("/sessions")
def open_session():
    body = json_object(request, "author")
    author = clean_author(body.get("author"), current_app.config["MAX_AUTHOR_CHARS"])
    try:
        token, session = get_auth().issue(author)
    except NameInUse as exc:
        raise ApiError(409, "name_in_use", author=author, until=format_utc(exc.expires_at)) from None
    return {"token": token, "author": author, "expires_at": format_utc(session.expires_at)}, 201


@bp.delete("/sessions")
def close_session():
    session = current_session()
    get_auth().store.close(session.author, session.session_id)
    return "", 204
