"""The UI's HTTP client of the chat API: accounts and sessions (who is speaking), sending, and looking up a user.

A :class:`ChatSession` holds one name's bearer token for the threads acting
for it; when the API answers 401 (the session expired) it opens a new session
for a guest's name and sends the request once more. A password is only ever an
argument of the call that sends it: nothing here keeps one, so a signed-in
session that expires is over (the person signs in again). Every request made for a
user says their language (``Accept-Language``). Errors carry what happened
(an HTTP status, a :data:`SendProblem`), which ``ui.render`` words for the user;
their ``str()`` is for the log. The endpoints are in ``api/openapi.yaml``;
README "Trying the API by hand" lists them.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import requests

from config import contract

from .models import BlockedList, ChatSettings, FeedMessage, UserRecord

log = logging.getLogger(__name__)

CODE = re.compile(r"[a-z][a-z0-9_]*")
"""What an API error code looks like (``name_taken``)."""

READER_PREFIX = contract.READER_PREFIX
"""The shared feed poller reads as ``ui-reader-<8 random hex digits>``; users cannot take such names."""
SEND_TIMEOUT = 10.0
LOOKUP_TIMEOUT = 5.0
"""Seconds to wait for ``GET /users/<author>``."""
SESSION_TIMEOUT = 10.0
"""Seconds to wait for ``POST /sessions`` and ``DELETE /sessions``."""


class ChatApiError(Exception):
    """A request to the chat API failed; ``str(error)`` describes why (for the log).

    ``status`` is the API's HTTP status (None if it gave none), ``api_error`` its
    ``{"error": ...}`` text if it sent one, ``code`` its stable error code (``name_taken``,
    ``bad_credentials``...) and ``retry_after`` the seconds of its ``Retry-After``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        api_error: str | None = None,
        code: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.api_error = api_error
        self.code = code
        self.retry_after = retry_after


class ApiUnreachable(ChatApiError):
    """The chat API could not be reached (or did not answer in time)."""


class NameInUse(ChatApiError):
    """``POST /sessions`` answered 409 ``name_in_use``: another live session holds the name."""


class SessionLost(ChatApiError):
    """The session ended and this name cannot act any more: it was closed here, it expired and the
    name is now held by someone else, or (``signed_in``) it was an account's, which only its password
    opens again."""

    def __init__(self, message: str, *, signed_in: bool = False) -> None:
        super().__init__(message)
        self.signed_in = signed_in


SendProblem = Literal["refused", "unreachable", "timeout", "session_lost", "session_ended", "renew_failed"]
"""Why a message was not sent: the API refused it (see the status), could not be reached, did not answer in
time, the sender's name is someone else's now, their signed-in session ended, or their expired session could
not be renewed."""


class SendError(Exception):
    """A message could not be sent; ``str(error)`` describes why (for the log).

    ``problem`` says what happened, ``status`` is the API's HTTP status (None
    if it was not reached), ``api_error`` the API's own ``{"error": ...}`` text
    if it sent one, and ``session_lost`` is True when the sender no longer
    holds their name.
    """

    def __init__(
        self,
        message: str,
        *,
        problem: SendProblem = "refused",
        status: int | None = None,
        api_error: str | None = None,
        code: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.problem = problem
        self.status = status
        self.api_error = api_error
        self.code = code
        self.retry_after = retry_after

    @property
    def session_lost(self) -> bool:
        """True when the sender cannot send under this session any more (back to the join form)."""
        return self.problem in ("session_lost", "session_ended")

    @property
    def blocked(self) -> bool:
        """True if the API refused the sender because they are blocked (HTTP 403)."""
        return self.status == 403

    @property
    def slowed(self) -> bool:
        """True if the API refused the message for the rate limit or the slow mode (HTTP 429); ``retry_after``
        says in how many seconds the user may send again."""
        return self.status == 429


def api_error(response: requests.Response) -> str | None:
    """The API's ``{"error": ...}`` text, if the body has one."""
    try:
        body: Any = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, Mapping) else None
    return error if isinstance(error, str) and error else None


def api_code(response: requests.Response) -> str | None:
    """The API's ``{"code": ...}``, if the body has one; else an ``error`` that is a code itself
    (``{"error": "name_taken", "message": ...}``, as the accounts contract words it)."""
    body = json_object(response)
    if body is None:
        return None
    code = body.get("code")
    if isinstance(code, str) and code:
        return code
    error = body.get("error")
    return error if isinstance(error, str) and CODE.fullmatch(error) else None


def failure(response: requests.Response, what: str, kind: type[ChatApiError] = ChatApiError) -> ChatApiError:
    """The error for an answer of the API that is not a success (``what``: the request, for the log)."""
    error = api_error(response)
    return kind(
        error or f"HTTP {response.status_code} from {what}",
        status=response.status_code,
        api_error=error,
        code=api_code(response),
        retry_after=retry_after(response),
    )


def retry_after(response: requests.Response) -> int | None:
    """The whole seconds of a ``Retry-After`` header (None without a usable one; an HTTP date is not used)."""
    raw = (response.headers.get("Retry-After") or "").strip()
    return int(raw) if raw.isdigit() and len(raw) <= 6 else None


def error_text(response: requests.Response) -> str:
    """The API's ``{"error": ...}`` text, or a generic description."""
    return api_error(response) or f"HTTP {response.status_code} {response.reason or ''}".strip()


def json_object(response: requests.Response) -> Mapping[str, Any] | None:
    """The response's JSON body if it is an object, else None."""
    try:
        body: Any = response.json()
    except ValueError:
        return None
    return body if isinstance(body, Mapping) else None


def user_url(api_url: str, author: str, *rest: str) -> str:
    """``<api>/users/<author>[/<rest>...]`` with the author percent-encoded.

    Every character of the name that is not unreserved is encoded, ``/``
    included (``"a/b c"`` -> ``a%2Fb%20c``), so a name is always one path
    segment; non-ASCII characters are encoded as UTF-8. The names ``.`` and
    ``..`` are encoded too (``%2E``): left as they are, they are dot-segments
    that the HTTP client resolves (``/users/../notices`` is ``/notices``).
    """
    segment = quote(author, safe="")
    if segment in (".", ".."):
        segment = "%2E" * len(segment)
    return "/".join((f"{api_url.rstrip('/')}/users", segment, *rest))


# -- sessions: who is speaking -------------------------------------------------


def reader_name() -> str:
    """A fresh name for a process's feed poller: ``ui-reader-`` and 8 random hex digits."""
    return f"{READER_PREFIX}{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class SessionGrant:
    """``POST /sessions``'s answer: the bearer token and the name as the API normalised it."""

    token: str
    author: str
    expires_at: str


def credentials(author: str, password: str | None) -> dict[str, str]:
    """The JSON body of ``POST /sessions`` and ``POST /accounts``: a guest sends no password."""
    return {"author": author} if password is None else {"author": author, "password": password}


def post_credentials(
    api_url: str,
    path: str,
    author: str,
    password: str | None,
    timeout: float,
    language: str | None,
    client_address: str | None,
) -> requests.Response:
    """POST a name and password (or a guest's name alone) to ``path``, with the person's language and browser
    address; :class:`ApiUnreachable` when the API cannot be reached."""
    try:
        return requests.post(
            f"{api_url.rstrip('/')}{path}",
            json=credentials(author, password),
            headers={**language_header(language), **forwarded_for(client_address)},
            timeout=timeout,
        )
    except requests.RequestException as exc:
        raise ApiUnreachable(f"cannot reach {api_url} ({type(exc).__name__})") from None


def open_session(
    api_url: str,
    author: str,
    *,
    password: str | None = None,
    timeout: float = SESSION_TIMEOUT,
    language: str | None = None,
    client_address: str | None = None,
) -> SessionGrant:
    """``POST /sessions`` for ``author`` (who reads ``language``): a guest's without ``password``, an account's
    with it.

    Raises :class:`NameInUse` (409 ``name_in_use``) when another live session holds the name, and
    :class:`ChatApiError` (with the status, the code and ``Retry-After``) when the API refuses the name
    (400, 409 ``name_taken``), the credentials (401 ``bad_credentials``), the attempt (429), answers
    anything else, or cannot be reached. ``client_address`` is the person's browser's (``X-Forwarded-For``).
    """
    response = post_credentials(api_url, "/sessions", author, password, timeout, language, client_address)
    with response:
        status = response.status_code
        if status == 409 and api_code(response) != "name_taken":
            raise failure(response, "POST /sessions", NameInUse)
        if status not in (200, 201):
            raise failure(response, "POST /sessions")
        body = json_object(response) or {}
        token, name, expires_at = body.get("token"), body.get("author"), body.get("expires_at")
        if not (isinstance(token, str) and token and isinstance(name, str) and name):
            raise ChatApiError("malformed reply to POST /sessions")
        return SessionGrant(token, name, expires_at if isinstance(expires_at, str) else "")


def sign_up(
    api_url: str,
    author: str,
    password: str,
    *,
    timeout: float = SESSION_TIMEOUT,
    language: str | None = None,
    client_address: str | None = None,
) -> str:
    """``POST /accounts``: register ``author`` with ``password``; the name as the API registered it.

    Raises :class:`ChatApiError` with the status, the code and ``Retry-After`` when the API refuses
    (400 a name or password it does not take, 409 ``name_taken``, 403 ``address_held``, 429
    ``too_many_attempts``), answers anything else, or cannot be reached (:class:`ApiUnreachable`).
    ``client_address`` is the person's browser's (``X-Forwarded-For``).
    """
    response = post_credentials(api_url, "/accounts", author, password, timeout, language, client_address)
    with response:
        if response.status_code not in (200, 201):
            raise failure(response, "POST /accounts")
        name = (json_object(response) or {}).get("author")
        if not (isinstance(name, str) and name):
            raise ChatApiError("malformed reply to POST /accounts")
        return name


def end_session(api_url: str, token: str, *, timeout: float = SESSION_TIMEOUT, language: str | None = None) -> None:
    """``DELETE /sessions``: end the session and free its name.

    A 401 means the session was already over, which is as good. Raises
    :class:`ChatApiError` for anything else that is not a 2xx.
    """
    try:
        response = requests.delete(
            f"{api_url.rstrip('/')}/sessions", headers={**bearer(token), **language_header(language)}, timeout=timeout
        )
    except requests.RequestException as exc:
        raise ApiUnreachable(f"cannot reach {api_url} ({type(exc).__name__})") from None
    with response:
        if response.status_code != 401 and not 200 <= response.status_code < 300:
            raise ChatApiError(
                f"HTTP {response.status_code} from DELETE /sessions: {error_text(response)}",
                status=response.status_code,
                api_error=api_error(response),
            )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def language_header(language: str | None) -> dict[str, str]:
    """``Accept-Language`` for a user's language (nothing when unknown)."""
    return {"Accept-Language": language} if language else {}


def forwarded_for(client_address: str | None) -> dict[str, str]:
    """``X-Forwarded-For`` with the person's browser's address (nothing when unknown): every browser reaches
    the API from the UI's address, and the API's sign-in throttle and sign-up holds go by address."""
    return {"X-Forwarded-For": client_address} if client_address else {}


class ChatSession:
    """One name's session on the chat API, shared by the threads acting for it.

    :meth:`open` creates the session (``POST /sessions``); :attr:`author` is
    then the name as the API normalised it. :meth:`request` sends a request
    with the bearer token; when the API answers 401 (the session expired or
    is unknown), it opens a new session for the same name and sends the
    request once more. Threads that hit a 401 with the same token share one
    new session. :meth:`close` ends the session (``DELETE /sessions``) for
    good: later requests raise :class:`SessionLost` instead of opening
    another, so a request racing the close cannot take the name again.

    A session never opened is opened by its first request, as a guest's (or with
    ``credential``, a service's such as the feed reader's, kept to renew it). An
    account's session is opened by :meth:`open` with the password, which is not
    kept: when it expires, it is over (:class:`SessionLost` with ``signed_in``).
    ``language`` (the user's, which they may change at any time) goes with every
    request as ``Accept-Language``.
    """

    def __init__(
        self,
        api_url: str,
        author: str,
        *,
        timeout: float = SESSION_TIMEOUT,
        language: str | None = None,
        client_address: str | None = None,
        credential: str | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._author = author
        self._credential = credential  # a service's (the feed reader's CHAT_READER_TOKEN), never a person's password
        self.timeout = timeout
        self.language = language
        self.client_address = client_address  # the person's browser's, forwarded with every request
        self._token: str | None = None
        self._closed = False
        self._signed_in = False  # opened with a password: only the password opens it again
        self._lock = threading.Lock()

    @property
    def author(self) -> str:
        """The name: as asked for until the session is open, then as the API normalised it."""
        return self._author

    @property
    def token(self) -> str | None:
        return self._token

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def signed_in(self) -> bool:
        """True for an account's session (opened with a password)."""
        return self._signed_in

    def open(self, password: str | None = None) -> str:
        """Create the session if it is not open yet, as the account's with ``password``, else as a guest's;
        return its token.

        Raises :class:`NameInUse`, :class:`ChatApiError`, or :class:`SessionLost` once closed (or, for an
        account, once its session ended).
        """
        with self._lock:
            return self._token or self._open_locked(password)

    def _open_locked(self, password: str | None = None) -> str:
        if self._closed:
            raise SessionLost(f"the session of {self._author!r} has ended", signed_in=self._signed_in)
        if self._signed_in and password is None:
            raise SessionLost(f"the signed-in session of {self._author!r} has ended", signed_in=True)
        grant = open_session(
            self.api_url,
            self._author,
            password=password if password is not None else self._credential,
            timeout=self.timeout,
            language=self.language,
            client_address=self.client_address,
        )
        self._token, self._author = grant.token, grant.author
        self._signed_in = self._signed_in or password is not None
        return grant.token

    def renew(self, stale: str) -> str:
        """A token to use instead of ``stale``, which the API answered 401 to.

        Opens a new session for the same guest name, unless another thread
        already did. Raises :class:`SessionLost` when closed, when someone
        else holds the name now, or for an account (its password is not kept),
        :class:`ChatApiError` when the API cannot say.
        """
        with self._lock:
            if self._closed:
                raise SessionLost(f"the session of {self._author!r} has ended", signed_in=self._signed_in)
            if self._token is not None and self._token != stale:
                return self._token
            self._token = None
            try:
                token = self._open_locked()
            except NameInUse:
                raise SessionLost(
                    f"your session expired and the name {self._author!r} is now in use by someone else"
                ) from None
            log.info("Session of %r expired; opened a new one", self._author)
            return token

    def request(
        self,
        method: str,
        url: str,
        *,
        http: requests.Session | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request with the bearer token; on a 401, renew the session and send it again, once.

        Raises what :meth:`open` and :meth:`renew` raise, and
        ``requests.RequestException`` for the request itself.
        """
        send = http.request if http is not None else requests.request
        headers = dict(kwargs.pop("headers", None) or {})
        token = self._token if self._token is not None and not self._closed else self.open()
        response = send(method, url, headers={**headers, **self._headers(token)}, **kwargs)
        if response.status_code != 401:
            return response
        response.close()
        token = self.renew(token)
        return send(method, url, headers={**headers, **self._headers(token)}, **kwargs)

    def _headers(self, token: str) -> dict[str, str]:
        return {**bearer(token), **language_header(self.language), **forwarded_for(self.client_address)}

    def close(self) -> None:
        """End the session for good (``DELETE /sessions``); never raises.

        The name is freed at once; if the API cannot be reached, the session
        expires by itself.
        """
        with self._lock:
            self._closed = True
            token, self._token = self._token, None
        if token is None:
            return
        try:
            end_session(self.api_url, token, timeout=self.timeout, language=self.language)
        except ChatApiError as exc:
            log.warning("Could not end the session of %r (%s)", self._author, exc)


# -- what a joined user does -------------------------------------------------------


def send_message(session: ChatSession, text: str, *, timeout: float = SEND_TIMEOUT) -> FeedMessage | None:
    """POST one message as the session's user; return the API's echo (None if
    it sent no usable body).

    Raises :class:`SendError` saying what happened when the API rejects the
    message or cannot be reached; ``session_lost`` is set when the user's
    session expired and their name is someone else's now.
    """
    api_url = session.api_url
    unreachable = f"Cannot reach the chat server at {api_url}. Your message was not sent."
    try:
        response = session.request("POST", f"{api_url}/messages", json={"data": text}, timeout=timeout)
    except SessionLost as exc:
        problem: SendProblem = "session_ended" if exc.signed_in else "session_lost"
        raise SendError(f"Message not sent: {exc}.", problem=problem) from None
    except ApiUnreachable:
        raise SendError(unreachable, problem="unreachable") from None
    except ChatApiError as exc:
        raise SendError(
            f"Message not sent: the chat server could not renew your session ({exc}).",
            problem="renew_failed",
            status=exc.status,
            api_error=exc.api_error,
        ) from None
    except requests.Timeout:
        raise SendError(
            f"The chat server at {api_url} did not answer in time; your message may not have been sent.",
            problem="timeout",
        ) from None
    except requests.RequestException:
        raise SendError(unreachable, problem="unreachable") from None
    with response:
        if response.status_code not in (200, 201, 202):
            raise SendError(
                f"Message not sent: {error_text(response)}",
                status=response.status_code,
                api_error=api_error(response),
                code=api_code(response),
                retry_after=retry_after(response),
            )
        return FeedMessage.from_json(json_object(response))


def fetch_chat_settings(api_url: str, *, timeout: float = LOOKUP_TIMEOUT) -> ChatSettings | None:
    """``GET /chat/settings``: the slow mode and the rate limit; None when the API cannot tell (unreachable,
    an older API without the endpoint, a malformed answer): the UI then shows no slow mode."""
    try:
        response = requests.get(f"{api_url}/chat/settings", timeout=timeout)
    except requests.RequestException:
        return None
    with response:
        return ChatSettings.from_json(json_object(response)) if response.status_code == 200 else None


def fetch_user(
    api_url: str, author: str, *, timeout: float = LOOKUP_TIMEOUT, language: str | None = None
) -> UserRecord:
    """``GET /users/<author>``: the user's strikes and blocked state.

    A 404 (the user never sent a recorded message) is a user with no
    strikes who is not blocked. Anything else that is not a well-formed 200
    raises :class:`ChatApiError`.
    """
    try:
        response = requests.get(user_url(api_url, author), headers=language_header(language), timeout=timeout)
    except requests.RequestException as exc:
        raise ApiUnreachable(f"cannot reach {api_url} ({type(exc).__name__})") from None
    with response:
        if response.status_code == 404:
            return UserRecord(author)
        if response.status_code != 200:
            raise ChatApiError(
                f"HTTP {response.status_code} from GET /users/<author>: {error_text(response)}",
                status=response.status_code,
                api_error=api_error(response),
            )
        record = UserRecord.from_json(json_object(response))
        if record is None:
            raise ChatApiError("malformed reply to GET /users/<author>")
        return record


# -- moderators ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModeratorGrant:
    """``POST /moderators/sign_in``'s answer: the moderator's bearer token and name."""

    token: str
    name: str
    expires_at: str


def moderator_sign_in(
    api_url: str,
    name: str,
    secret: str,
    *,
    timeout: float = SESSION_TIMEOUT,
    language: str | None = None,
    client_address: str | None = None,
) -> ModeratorGrant:
    """``POST /moderators/sign_in`` with a moderator's name and secret (the secret lives in this call only).

    Raises :class:`ChatApiError` with the status, the code and ``Retry-After`` when the API refuses (403
    ``bad_moderator_credentials`` or ``moderation_off``, 429 too many wrong secrets from the address, 400),
    and :class:`ApiUnreachable` when it cannot be reached. ``client_address``: the browser's (``X-Forwarded-For``),
    which the API's guess throttle counts by.
    """
    try:
        response = requests.post(
            f"{api_url.rstrip('/')}/moderators/sign_in",
            json={"name": name, "secret": secret},
            headers={**language_header(language), **forwarded_for(client_address)},
            timeout=timeout,
        )
    except requests.RequestException as exc:
        raise ApiUnreachable(f"cannot reach {api_url} ({type(exc).__name__})") from None
    with response:
        if response.status_code not in (200, 201):
            raise failure(response, "POST /moderators/sign_in")
        body = json_object(response) or {}
        token, who, expires_at = body.get("token"), body.get("name"), body.get("expires_at")
        if not (isinstance(token, str) and token and isinstance(who, str) and who):
            raise ChatApiError("malformed reply to POST /moderators/sign_in")
        return ModeratorGrant(token, who, expires_at if isinstance(expires_at, str) else "")


def moderator_request(
    method: str,
    api_url: str,
    path: str,
    token: str,
    *,
    timeout: float = LOOKUP_TIMEOUT,
    language: str | None = None,
    client_address: str | None = None,
) -> requests.Response:
    """A moderator's request with their token; :class:`ApiUnreachable` when the API cannot be reached."""
    headers = {**bearer(token), **language_header(language), **forwarded_for(client_address)}
    try:
        return requests.request(method, f"{api_url.rstrip('/')}{path}", headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise ApiUnreachable(f"cannot reach {api_url} ({type(exc).__name__})") from None


def moderator_name(api_url: str, token: str, **kw: Any) -> str:
    """``GET /moderators/me``: whose moderator's token ``token`` is. :class:`ChatApiError` for any other answer
    (403: a chatter's token, or one no longer good), so the UI shows the moderator page only on this 200."""
    with moderator_request("GET", api_url, "/moderators/me", token, **kw) as response:
        if response.status_code != 200:
            raise failure(response, "GET /moderators/me")
        name = (json_object(response) or {}).get("name")
        if not (isinstance(name, str) and name):
            raise ChatApiError("malformed reply to GET /moderators/me")
        return name


def fetch_blocked(api_url: str, token: str, *, limit: int = 100, **kw: Any) -> BlockedList:
    """``GET /moderators/blocked``: the users blocked now, newest first; :class:`ChatApiError` otherwise."""
    with moderator_request("GET", api_url, f"/moderators/blocked?limit={int(limit)}", token, **kw) as response:
        if response.status_code != 200:
            raise failure(response, "GET /moderators/blocked")
        listed = BlockedList.from_json(json_object(response))
        if listed is None:
            raise ChatApiError("malformed reply to GET /moderators/blocked")
        return listed


def unblock_user(api_url: str, token: str, author: str, **kw: Any) -> int:
    """``POST /users/<author>/unblock`` with a moderator's token: the status (202: in Kafka, the ledger applies
    it); :class:`ChatApiError` for any other answer."""
    path = user_url("", author, "unblock")
    with moderator_request("POST", api_url, path, token, timeout=SEND_TIMEOUT, **kw) as response:
        if response.status_code != 202:
            raise failure(response, "POST /users/<author>/unblock")
        return response.status_code
