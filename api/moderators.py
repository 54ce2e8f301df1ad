"""Named moderators: POST /moderators/sign_in (a name and a secret of CHAT_MODERATORS_FILE, or `moderator` and
CHAT_ADMIN_TOKEN) answers a moderator's token; GET /moderators/me says whose it is (a UI tells a moderator from a
chatter by it); GET /moderators/blocked lists the users blocked now. The token is signed like the session tokens
(api/auth.py Auth.issue_moderator); each action made with it is recorded under the moderator's name. README
"Moderators" has the rules.

    python -m api.moderators NAME        # reads NAME's secret, prints the CHAT_MODERATORS_FILE line for it
"""

from __future__ import annotations

import getpass
import hmac
import sys
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Blueprint, Flask, current_app, request

from api import i18n
from api.accounts import hasher_for
from api.auth import Auth, client_address, format_utc, require_moderator
from api.errors import ApiError, request_language
from api.notices import get_moderation
from api.validation import clean_field, json_object, parse_limit
from config import settings

bp = Blueprint("moderators", __name__)

MAX_SECRET_CHARS = 1024
BLOCKED_LIMIT = 500  # the most users GET /moderators/blocked lists in one answer


class ModeratorSignIn:
    """Checks a moderator's name and secret against the argon2id hashes of CHAT_MODERATORS_FILE (or the shared
    CHAT_ADMIN_TOKEN for its name); every wrong one counts in the moderators' guess throttle of `auth`."""

    def __init__(self, auth: Auth, hasher: PasswordHasher):
        self.auth, self.hasher = auth, hasher
        # an unknown name is checked against this, so that its answer takes as long as a wrong secret's
        self._dummy_hash = hasher.hash("not a moderator's secret")
        self._hashing = threading.BoundedSemaphore(2)  # each check takes its hash's memory cost for its time

    def _verify(self, name: str, secret: str) -> bool:
        if name == settings.SHARED_MODERATOR and self.auth.admin_token:
            return hmac.compare_digest(secret.encode(), self.auth.admin_token.encode())
        known = self.auth.moderators.get(name)
        try:
            ok = self.hasher.verify(known or self._dummy_hash, secret)
        except (VerificationError, InvalidHashError):
            ok = False
        return ok and known is not None

    def sign_in(self, name: str, secret: str, client: str) -> tuple[str, float]:
        """(token, expires at) for the moderator `name`; 403 for a wrong name or secret, 429 (with Retry-After)
        for a client address past the guess limit, the right secret included."""
        if not self.auth.moderation_on:
            raise ApiError(403, "moderation_off")
        guesses = self.auth.guesses
        with self._hashing:  # the check in the slot: guesses queued behind it see the misses before them
            guesses.check(client)
            ok = self._verify(name, secret)
            guesses.hit(client) if ok else guesses.missed(client)
        if not ok:
            raise ApiError(403, "bad_moderator_credentials")
        return self.auth.issue_moderator(name)


@bp.post("/moderators/sign_in")
def sign_in():
    body = json_object(request, "name", "secret")
    name = clean_field(body.get("name"), "name", settings.MAX_MODERATOR_NAME_CHARS)
    secret = clean_field(body.get("secret"), "secret", MAX_SECRET_CHARS)
    token, expires_at = current_app.extensions["chat_moderators"].sign_in(name, secret, client_address())
    return {"token": token, "name": name, "expires_at": format_utc(expires_at)}, 201


@bp.get("/moderators/me")
def me():
    """The moderator the bearer token speaks for; 403 for a chatter's session token."""
    name = require_moderator()
    return {"name": name}


@bp.get("/moderators/blocked")
def blocked():
    """The users blocked now (those GET /users/<author> calls blocked), newest block first, each with the strike
    notices that blocked them as far as this API still has them; for moderators (403 a chatter's token)."""
    require_moderator()
    limit = parse_limit(request.args.get("limit"), default=100, maximum=BLOCKED_LIMIT)
    users, total = get_moderation().blocked(limit)
    language = request_language()
    answer = {
        "blocked": [
            {
                "author": state.author,
                "strikes": state.strikes,
                "blocked_at": state.blocked_at,
                "notices": [notice.as_json(language) for notice in notices],
            }
            for state, notices in users
        ],
        "total": total,
    }
    return answer, 200, i18n.language_headers(language)


def init_app(app: Flask) -> None:
    hasher = hasher_for(app.config.get("PASSWORD_HASH_PROFILE", "RFC_9106_LOW_MEMORY"))
    app.extensions["chat_moderators"] = ModeratorSignIn(app.extensions["chat_auth"], hasher)


def file_line(name: str, secret: str, hasher: PasswordHasher | None = None) -> str:
    """The CHAT_MODERATORS_FILE line of moderator `name` with `secret` (SystemExit when either is unfit)."""
    if not settings.MODERATOR_NAME.fullmatch(name):
        raise SystemExit(f"the name {name!r} must be 1 to 40 letters, digits, `_`, `.` or `-`")
    if len(secret) < settings.MIN_ADMIN_TOKEN_CHARS or len(secret) > MAX_SECRET_CHARS:
        raise SystemExit(
            f"a moderator's secret must be {settings.MIN_ADMIN_TOKEN_CHARS} to {MAX_SECRET_CHARS} characters, got "
            f"{len(secret)}: e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))'"
        )
    return f"{name}:{(hasher or hasher_for('RFC_9106_LOW_MEMORY')).hash(secret)}"


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m api.moderators NAME   (the secret is read from the terminal or stdin)")
    secret = getpass.getpass(f"{argv[0]}'s secret: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    print(file_line(argv[0], secret))


if __name__ == "__main__":
    main(sys.argv[1:])
