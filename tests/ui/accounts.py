"""Accounts in front of the real API app, as the accounts contract of issue 19 has them, for the UI's tests
until the API serves them itself: ``POST /accounts``, ``POST /sessions`` with a password, and
``GET /chat/settings``'s ``guest_names`` and ``password_min_chars``. A stand-in below the HTTP line: the
tokens, the chat and the blocks stay the real app's (a signed-in name gets the app's session for the
registered spelling). Without guest names, a ``POST /sessions`` without a password is refused
(``password_required``, as the API's branch words it), except the UI's feed reader's (``reader_allowed``).

A name's key here is a small stand-in for the API's canonical key (Unicode TS #39 skeleton): NFKC, a few
look-alikes (capital I and digit 1 for l, Cyrillic а е о for Latin), case-folded.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import threading
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from config import contract
from ui.client import READER_PREFIX

LOOK_ALIKES = str.maketrans({"I": "l", "1": "l", "\u0430": "a", "\u0435": "e", "\u043e": "o"})
MAX_PASSWORD_CHARS = 256


def key(name: str) -> str:
    return unicodedata.normalize("NFKC", name).translate(LOOK_ALIKES).casefold().translate(LOOK_ALIKES)


@dataclass(frozen=True)
class Refusal:
    """An answer the stand-in gives instead of the next sign-up or sign-in (a throttle, an address hold)."""

    status: int
    code: str
    retry_after: int | None = None


class AccountsStandIn:
    """WSGI middleware over the API app; ``accounts`` maps each key to (registered name, salt, hash)."""

    def __init__(
        self, app: Callable[..., Any], *, guest_names: bool = False, min_chars: int = 10, reader_allowed: bool = True
    ) -> None:
        self.app = app
        # The UI's feed reads as a session of its own (``ui-reader-...``, no password): the API must let it
        # in without guest names, which the contract does not say yet (the UI helper's report).
        self.reader_allowed = reader_allowed
        self.guest_names = guest_names
        self.min_chars = min_chars
        self.accounts: dict[str, tuple[str, bytes, bytes]] = {}
        self.refusals: list[Refusal] = []
        self._lock = threading.Lock()

    def register(self, name: str, password: str) -> None:
        salt = secrets.token_bytes(16)
        self.accounts[key(name)] = (name, salt, hashlib.sha256(salt + password.encode()).digest())

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        if (method, path) == ("GET", "/chat/settings"):
            return self._settings(environ, start_response)
        if method == "POST" and path in ("/accounts", "/sessions"):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            try:
                sent = json.loads(body)
            except ValueError:
                sent = None
            if isinstance(sent, dict) and (path == "/accounts" or "password" in sent):
                return self._account(path, sent, environ, start_response)
            author = sent.get("author") if isinstance(sent, dict) else None
            reader = isinstance(author, str) and author.startswith(READER_PREFIX) and self.reader_allowed
            if path == "/sessions" and not self.guest_names and isinstance(sent, dict) and not reader:
                return answer(start_response, 400, {"error": "a password is required", "code": "password_required"})
        return self.app(environ, start_response)

    def _settings(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        captured: list[Any] = []
        chunks = self.app(environ, lambda status, headers, exc_info=None: captured.append(status))
        body = json.loads(b"".join(chunks))
        body.update(guest_names=self.guest_names, password_min_chars=self.min_chars)
        return answer(start_response, int(captured[0].split()[0]), body)

    def _account(
        self, path: str, sent: dict[str, Any], environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        with self._lock:
            if self.refusals:
                refusal = self.refusals.pop(0)
                headers = [] if refusal.retry_after is None else [("Retry-After", str(refusal.retry_after))]
                return answer(start_response, refusal.status, {"error": refusal.code, "code": refusal.code}, headers)
            name, password = sent.get("author"), sent.get("password")
            if not isinstance(name, str) or not isinstance(password, str):
                return answer(start_response, 400, {"error": "author and password", "code": "field_required"})
            name = unicodedata.normalize("NFC", name.strip())
            if not name or len(name) > contract.MAX_AUTHOR_CHARS:
                return answer(start_response, 400, {"error": "bad name", "code": "field_too_long"})
            held = self.accounts.get(key(name))
            if path == "/accounts":
                if len(password) < self.min_chars:
                    return answer(start_response, 400, {"error": "short", "code": "password_too_short"})
                if len(password) > MAX_PASSWORD_CHARS:
                    return answer(start_response, 400, {"error": "long", "code": "password_too_long"})
                if held is not None:
                    return answer(start_response, 409, {"error": "taken", "code": "name_taken"})
                self.register(name, password)
                return answer(start_response, 201, {"author": name})
            if held is None or not secrets.compare_digest(
                held[2], hashlib.sha256(held[1] + password.encode()).digest()
            ):
                return answer(start_response, 401, {"error": "bad credentials", "code": "bad_credentials"})
        forwarded = json.dumps({"author": held[0]}).encode()
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(forwarded), str(len(forwarded))
        return self.app(environ, start_response)


def answer(
    start_response: Callable[..., Any], status: int, body: Any, headers: list[tuple[str, str]] | None = None
) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        f"{status} X", [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *(headers or [])]
    )
    return [data]
