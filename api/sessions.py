"""POST /sessions (sign in to an account with its password, or under a guest name where CHAT_GUEST_NAMES allows;
get a token) and DELETE /sessions (sign out, free the name)."""

from __future__ import annotations

import hmac

from flask import Blueprint, current_app, request

from api.accounts import clean_password, get_accounts
from api.auth import NameInUse, client_address, current_session, format_utc, get_auth
from api.errors import ApiError
from api.validation import clean_author, has_surrogates, json_object
from config import contract

bp = Blueprint("sessions", __name__)


@bp.post("/sessions")
def open_session():
    accounts = get_accounts()
    try:
        body = json_object(request, "author", "password")
    except ApiError as exc:
        if exc.code != "body_not_object" or not accounts.guest_names:
            raise
        raise ApiError(400, "body_not_object", fields='"author": ...') from None  # a guest's whole body
    name = clean_author(body.get("author"), current_app.config["MAX_AUTHOR_CHARS"])
    client = client_address()
    if contract.is_reader_name(name):
        author = reader_name(name, body.get("password"), accounts.guest_names)
    elif "password" in body:
        password = clean_password(body["password"], 1)
        author = accounts.sign_in(name, password, client).author  # the spelling it was registered under
    elif accounts.guest_names:
        accounts.check_name(name, guest=True)
        author = name
    else:
        raise ApiError(400, "password_required")
    try:
        token, session = get_auth().issue(author)
    except NameInUse as exc:
        raise ApiError(409, "name_in_use", author=author, until=format_utc(exc.expires_at)) from None
    accounts.store.saw(author, client)
    return {"token": token, "author": author, "expires_at": format_utc(session.expires_at)}, 201


def reader_name(name: str, password, guest_names: bool) -> str:
    """A UI process's feed reader: with CHAT_READER_TOKEN as its password, or as a guest where guests may sign in;
    never an account's, so a blocked user cannot read through one."""
    token = current_app.config.get("READER_TOKEN") or ""
    if password is None and guest_names:
        return name
    if (
        token
        and isinstance(password, str)
        and not has_surrogates(password)  # no UTF-8 form to compare
        and hmac.compare_digest(password.encode(), token.encode())
    ):
        return name
    raise ApiError(401, "bad_credentials")


@bp.delete("/sessions")
def close_session():
    session = current_session()
    get_auth().store.close(session.author, session.session_id)
    return "", 204
