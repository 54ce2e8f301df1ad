"""The UI's side of the chat API: sending messages, following the feed, and
following one user's moderation (strikes, warnings, block).

Nothing here knows about Shiny. The web app (``ui.app``) runs exactly one
:class:`FeedPoller` per process, in a daemon thread, which long-polls
``GET /messages`` and fills a thread-safe :class:`MessageStore`; browser
sessions read the store (by its version number) from Shiny's event loop.

Identity: the API knows who speaks from a bearer token, which
``POST /sessions`` hands out for a name. A :class:`ChatSession` holds one name's
token for the threads acting for it: it sends the ``Authorization`` header,
and when the API answers 401 (the session expired) it opens a new session for
the same name and retries the request once. A joined browser session has one
for its user; the poller has its own, under a random ``ui-reader-…`` name.

Moderation is per user, so it is per joined session: :func:`fetch_user` reads
``GET /users/<author>`` once on join, and a :class:`NoticeFollower` (one daemon
thread per joined session) long-polls ``GET /users/<author>/notices``. What a
session knows is a :class:`Standing`, an immutable value folded from those.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeGuard
from urllib.parse import quote

import requests

log = logging.getLogger(__name__)

DEFAULT_API_URL = "http://127.0.0.1:5000"
READER_PREFIX = "ui-reader-"
"""The shared poller reads the feed as ``ui-reader-<8 random hex digits>``."""
HISTORY_LIMIT = 500
"""How many recent messages the store keeps."""
LONG_POLL_WAIT = 25
"""Seconds the API may hold a ``GET /messages?after=...`` open (its max is 30)."""
SEND_TIMEOUT = 10.0
LOOKUP_TIMEOUT = 5.0
"""Seconds to wait for ``GET /users/<author>``."""
SESSION_TIMEOUT = 10.0
"""Seconds to wait for ``POST /sessions`` and ``DELETE /sessions``."""
STRIKE_LIMIT = 3
"""Strikes after which the API blocks a user (notices carry the actual ``limit``)."""


@dataclass(frozen=True, slots=True)
class FeedMessage:
    """One chat message as the API returns it (all fields are plain strings)."""

    id: str
    author: str
    data: str
    timestamp: str

    @classmethod
    def from_json(cls, obj: object) -> FeedMessage | None:
        """Build a message from one API JSON object, or None if it is malformed."""
        if not isinstance(obj, Mapping):
            return None
        fields = [obj.get(key) for key in ("id", "author", "data", "timestamp")]
        if not all(isinstance(value, str) for value in fields) or not fields[0]:
            return None
        return cls(*fields)


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """The poller's connection state, as shown to users."""

    connected: bool
    detail: str


class MessageStore:
    """The recent messages, in arrival order, de-duplicated by ``id``.

    Thread-safe. Every newly stored message gets a sequence number (1, 2, ...);
    :meth:`version` is the latest one, so a reader that remembers the last
    sequence number it displayed can ask for just the newer messages.
    """

    def __init__(self, limit: int = HISTORY_LIMIT) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._lock = threading.Lock()
        self._limit = limit
        self._messages: deque[tuple[int, FeedMessage]] = deque(maxlen=limit)
        # Ids remembered for de-duplication, kept a while after the messages
        # themselves fall out of the window (a re-read tail may overlap them).
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seen_limit = limit * 4
        self._seq = 0

    @property
    def limit(self) -> int:
        return self._limit

    def add(self, messages: Iterable[FeedMessage]) -> int:
        """Store the messages not seen before; return how many were new."""
        added = 0
        with self._lock:
            for message in messages:
                if message.id in self._seen:
                    continue
                self._seen[message.id] = None
                if len(self._seen) > self._seen_limit:
                    self._seen.popitem(last=False)
                self._seq += 1
                self._messages.append((self._seq, message))
                added += 1
        return added

    def version(self) -> int:
        """The sequence number of the newest message (0 while empty)."""
        with self._lock:
            return self._seq

    def since(self, seq: int) -> list[tuple[int, FeedMessage]]:
        """The stored messages newer than ``seq``, oldest first, with their numbers."""
        with self._lock:
            return [item for item in self._messages if item[0] > seq]

    def messages(self) -> list[FeedMessage]:
        """All stored messages, oldest first."""
        with self._lock:
            return [message for _, message in self._messages]

    def __len__(self) -> int:
        with self._lock:
            return len(self._messages)


class SendError(Exception):
    """A message could not be sent; ``str(error)`` is meant for the user.

    ``status`` is the API's HTTP status (None if it was not reached) and
    ``api_error`` the API's own ``{"error": ...}`` text, if it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        api_error: str | None = None,
        session_lost: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.api_error = api_error
        self.session_lost = session_lost
        """True when the sender no longer holds their name (see :class:`SessionLost`)."""

    @property
    def blocked(self) -> bool:
        """True if the API refused the sender because they are blocked (HTTP 403)."""
        return self.status == 403


class ChatApiError(Exception):
    """A request to the chat API failed; ``str(error)`` describes why."""


class ApiUnreachable(ChatApiError):
    """The chat API could not be reached (or did not answer in time)."""


class NameInUse(ChatApiError):
    """``POST /sessions`` answered 409: another live session holds the name."""


class SessionLost(ChatApiError):
    """The session ended and this name cannot act any more: it was closed here,
    or it expired and the name is now held by someone else."""


def _api_error(response: requests.Response) -> str | None:
    """The API's ``{"error": ...}`` text, if the body has one."""
    try:
        body: Any = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, Mapping) else None
    return error if isinstance(error, str) and error else None


def _error_text(response: requests.Response) -> str:
    """The API's ``{"error": ...}`` text, or a generic description."""
    return _api_error(response) or f"HTTP {response.status_code} {response.reason or ''}".strip()


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


def open_session(api_url: str, author: str, *, timeout: float = SESSION_TIMEOUT) -> SessionGrant:
    """``POST /sessions`` for ``author``.

    Raises :class:`NameInUse` (409) when another live session holds the name,
    and :class:`ChatApiError` when the API refuses the name (400, with its
    explanation), answers anything else, or cannot be reached.
    """
    url = f"{api_url.rstrip('/')}/sessions"
    try:
        response = requests.post(url, json={"author": author}, timeout=timeout)
    except requests.RequestException as exc:
        raise ApiUnreachable(f"cannot reach {api_url} ({type(exc).__name__})") from None
    with response:
        if response.status_code == 409:
            raise NameInUse(_error_text(response))
        if response.status_code not in (200, 201):
            raise ChatApiError(_api_error(response) or f"HTTP {response.status_code} from POST /sessions")
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        fields = [body.get(key) if isinstance(body, Mapping) else None for key in ("token", "author")]
        if not all(isinstance(value, str) and value for value in fields):
            raise ChatApiError("malformed reply to POST /sessions")
        expires_at = body.get("expires_at")
        return SessionGrant(fields[0], fields[1], expires_at if isinstance(expires_at, str) else "")


def end_session(api_url: str, token: str, *, timeout: float = SESSION_TIMEOUT) -> None:
    """``DELETE /sessions``: end the session and free its name.

    A 401 means the session was already over, which is as good. Raises
    :class:`ChatApiError` for anything else that is not a 2xx.
    """
    url = f"{api_url.rstrip('/')}/sessions"
    try:
        response = requests.delete(url, headers=bearer(token), timeout=timeout)
    except requests.RequestException as exc:
        raise ApiUnreachable(f"cannot reach {api_url} ({type(exc).__name__})") from None
    with response:
        if response.status_code != 401 and not 200 <= response.status_code < 300:
            raise ChatApiError(f"HTTP {response.status_code} from DELETE /sessions: {_error_text(response)}")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


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

    A session never opened is opened by its first request.
    """

    def __init__(self, api_url: str, author: str, *, timeout: float = SESSION_TIMEOUT) -> None:
        self.api_url = api_url.rstrip("/")
        self._author = author
        self.timeout = timeout
        self._token: str | None = None
        self._closed = False
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

    def open(self) -> str:
        """Create the session if it is not open yet; return its token.

        Raises :class:`NameInUse`, :class:`ChatApiError`, or
        :class:`SessionLost` once closed.
        """
        with self._lock:
            return self._token or self._open_locked()

    def _open_locked(self) -> str:
        if self._closed:
            raise SessionLost(f"the session of {self._author!r} has ended")
        grant = open_session(self.api_url, self._author, timeout=self.timeout)
        self._token, self._author = grant.token, grant.author
        return grant.token

    def renew(self, stale: str) -> str:
        """A token to use instead of ``stale``, which the API answered 401 to.

        Opens a new session for the same name, unless another thread already
        did. Raises :class:`SessionLost` when closed or when someone else
        holds the name now, :class:`ChatApiError` when the API cannot say.
        """
        with self._lock:
            if self._closed:
                raise SessionLost(f"the session of {self._author!r} has ended")
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
        response = send(method, url, headers={**headers, **bearer(token)}, **kwargs)
        if response.status_code != 401:
            return response
        response.close()
        token = self.renew(token)
        return send(method, url, headers={**headers, **bearer(token)}, **kwargs)

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
            end_session(self.api_url, token, timeout=self.timeout)
        except ChatApiError as exc:
            log.warning("Could not end the session of %r (%s)", self._author, exc)


def send_message(session: ChatSession, text: str, *, timeout: float = SEND_TIMEOUT) -> FeedMessage | None:
    """POST one message as the session's user; return the API's echo (None if
    it sent no usable body).

    Raises :class:`SendError` with a user-facing explanation when the API
    rejects the message or cannot be reached; ``session_lost`` is set when
    the user's session expired and their name is someone else's now.
    """
    api_url = session.api_url
    url = f"{api_url}/messages"
    try:
        response = session.request("POST", url, json={"data": text}, timeout=timeout)
    except SessionLost as exc:
        raise SendError(f"Message not sent: {exc}.", session_lost=True) from None
    except ApiUnreachable:
        raise SendError(f"Cannot reach the chat server at {api_url}. Your message was not sent.") from None
    except ChatApiError as exc:
        raise SendError(f"Message not sent: the chat server could not renew your session ({exc}).") from None
    except requests.Timeout:
        raise SendError(
            f"The chat server at {api_url} did not answer in time; your message may not have been sent."
        ) from None
    except requests.RequestException:
        raise SendError(f"Cannot reach the chat server at {api_url}. Your message was not sent.") from None
    with response:
        if response.status_code not in (200, 201, 202):
            raise SendError(
                f"Message not sent: {_error_text(response)}",
                status=response.status_code,
                api_error=_api_error(response),
            )
        try:
            return FeedMessage.from_json(response.json())
        except ValueError:
            return None


def page_body(response: requests.Response, items_key: str) -> Mapping[str, Any] | None:
    """The JSON body of a long-poll page (`{items_key: [...], "cursor": str}`), or None if malformed."""
    try:
        body: Any = response.json()
    except ValueError:
        return None
    if (
        not isinstance(body, Mapping)
        or not isinstance(body.get(items_key), list)
        or not isinstance(body.get("cursor"), str)
    ):
        return None
    return body


class FeedPoller:
    """Follows ``GET /messages`` and puts what it reads into a :class:`MessageStore`.

    It reads as a session of its own, under the name ``reader`` (by default a
    fresh ``ui-reader-<8 hex>``), opened by its first request, renewed on a
    401 and ended (``DELETE /sessions``) by :meth:`stop`. Should the name be
    taken meanwhile, it goes on under a fresh one.

    The first request (and the first after the cursor is rejected) reads the
    recent history; every later one long-polls with ``after=<cursor>``.
    Errors never escape: the poller logs a warning, reports it through
    :meth:`status`, and retries with exponential back-off.

    ``on_poll``, if given, is called (in the poller's thread) after every
    request, successful or not, so that readers can look at the store and
    status again.
    """

    def __init__(
        self,
        api_url: str,
        store: MessageStore | None = None,
        *,
        reader: str | None = None,
        wait: int = LONG_POLL_WAIT,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        timeout_margin: float = 10.0,
        on_poll: Callable[[], None] | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.store = store if store is not None else MessageStore()
        self.session = ChatSession(self.api_url, reader or reader_name())
        self.wait = wait
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.timeout_margin = timeout_margin
        self.on_poll = on_poll
        self.cursor: str | None = None
        self._failures = 0
        self._status = FeedStatus(False, "Connecting to the chat server…")
        self._status_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._http = requests.Session()

    # -- state shared with other threads ------------------------------------

    def status(self) -> FeedStatus:
        with self._status_lock:
            return self._status

    def _set_status(self, connected: bool, detail: str) -> None:
        with self._status_lock:
            self._status = FeedStatus(connected, detail)

    # -- one request ---------------------------------------------------------

    def _backoff(self, problem: str) -> float:
        """Record a failure; return how long to wait before the next attempt."""
        delay = min(self.backoff_max, self.backoff_initial * 2**self._failures)
        self._failures += 1
        log.warning("Chat feed: %s; retrying in %.1fs", problem, delay)
        return delay

    @property
    def reader(self) -> str:
        """The name the feed is read as."""
        return self.session.author

    def poll_once(self) -> float:
        """Make one request; return the delay (seconds) before the next one."""
        params: dict[str, str | int] = {}
        timeout: float = self.timeout_margin
        if self.cursor is not None:
            params.update(after=self.cursor, wait=self.wait)
            timeout += self.wait
        session = self.session
        try:
            response = session.request(
                "GET", f"{self.api_url}/messages", http=self._http, params=params, timeout=timeout
            )
        except (NameInUse, SessionLost) as exc:
            if self._stop.is_set():  # stopping: the session was closed on purpose
                return 0.0
            self.session = ChatSession(self.api_url, reader_name())
            return self._backoff(
                f"reader {session.author!r} lost its session ({exc}); reading as {self.session.author!r}"
            )
        except ApiUnreachable as exc:
            self._set_status(False, f"Cannot reach the chat server at {self.api_url}; retrying…")
            return self._backoff(str(exc))
        except ChatApiError as exc:
            self._set_status(False, f"The chat server reported a problem: {exc}")
            return self._backoff(f"cannot open the reader's session ({exc})")
        except requests.RequestException as exc:
            self._set_status(False, f"Cannot reach the chat server at {self.api_url}; retrying…")
            return self._backoff(f"cannot reach {self.api_url} ({type(exc).__name__})")

        with response:
            status = response.status_code
            if status == 200:
                return self._accept(response)
            error = _error_text(response)
            if self.cursor is not None and status in (400, 404, 410):
                # The cursor is unknown or expired: start again from the tail
                # (the store's de-dup drops what we already have). Backing off
                # keeps an API that rejects every cursor from being hammered.
                rejected, self.cursor = self.cursor, None
                return self._backoff(
                    f"cursor {rejected!r} rejected (HTTP {status}: {error}); re-reading recent history"
                )
            self._set_status(False, f"The chat server reported a problem: {error}")
            return self._backoff(f"HTTP {status} from GET /messages: {error}")

    def _accept(self, response: requests.Response) -> float:
        body = page_body(response, "messages")
        if body is None:
            self._set_status(False, "The chat server sent an unexpected reply.")
            return self._backoff("malformed reply to GET /messages")
        messages: list[FeedMessage] = []
        for raw in body["messages"]:
            message = FeedMessage.from_json(raw)
            if message is None:
                log.warning("Chat feed: skipping malformed message %r", raw)
            else:
                messages.append(message)
        self.store.add(messages)
        self.cursor = body["cursor"]
        self._failures = 0
        self._set_status(True, "Connected")
        return 0.0

    # -- the background thread ---------------------------------------------

    def run(self) -> None:
        """Poll until :meth:`stop` is called (the body of the thread)."""
        while not self._stop.is_set():
            try:
                delay = self.poll_once()
            except Exception:  # never let the one shared poller die
                log.exception("Chat feed: unexpected error")
                delay = self._backoff("unexpected error")
            if self.on_poll is not None:
                try:
                    self.on_poll()
                except Exception:
                    log.exception("Chat feed: on_poll callback failed")
            if delay > 0:
                self._stop.wait(delay)

    def start(self) -> bool:
        """Start the background thread unless it is running; True if started now."""
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._stop.clear()
            if self.session.closed:  # stopped before: read under a new session
                self.session = ChatSession(self.api_url, reader_name())
            self._thread = threading.Thread(target=self.run, name="chat-feed-poller", daemon=True)
            self._thread.start()
            return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to stop, end the reader's session and wait for the
        thread (a long-poll in flight finishes first)."""
        self._stop.set()
        self.session.close()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        if thread is None or not thread.is_alive():
            self._http.close()


# -- moderation: one user's strikes, warnings and block --------------------------

NoticeKind = Literal["warning", "blocked", "unblocked"]
BlockSource = Literal["record", "refusal", "notice"]
"""Where a session learnt that its user is blocked: ``GET /users/<author>``,
a 403 from the API, or a ``blocked`` notice."""
_BLOCK_SOURCE_RANK: dict[BlockSource, int] = {"record": 1, "refusal": 2, "notice": 3}


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


def _is_int(value: object) -> TypeGuard[int]:
    """An ``int`` from JSON (``True``/``False`` are not numbers here)."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class Notice:
    """One moderation notice sent to a user: a warning, the block, or a
    moderator lifting the block (``unblocked``: back to 0 strikes).

    ``text`` is the API's explanation, meant to be shown to the user (as
    text). ``strike`` counts from 1 (0 after an unblock); the user is blocked
    at ``limit`` strikes.
    """

    id: str
    author: str
    kind: NoticeKind
    strike: int
    limit: int
    text: str
    timestamp: str
    terms: tuple[str, ...] = ()
    message_id: str | None = None

    @property
    def blocked(self) -> bool:
        """True for the notice that tells the user they are blocked."""
        return self.kind == "blocked"

    @property
    def unblocked(self) -> bool:
        """True for the notice that tells the user a moderator unblocked them."""
        return self.kind == "unblocked"

    @classmethod
    def from_json(cls, obj: object) -> Notice | None:
        """Build a notice from one API JSON object, or None if it is malformed.

        ``id``, ``author``, ``kind``, ``strike``, ``text`` and ``timestamp``
        are required; a missing ``limit`` is taken as :data:`STRIKE_LIMIT`,
        missing or odd ``terms`` as none.
        """
        if not isinstance(obj, Mapping):
            return None
        notice_id, author, kind = obj.get("id"), obj.get("author"), obj.get("kind")
        strike, limit = obj.get("strike"), obj.get("limit", STRIKE_LIMIT)
        text, timestamp = obj.get("text"), obj.get("timestamp")
        if not (isinstance(notice_id, str) and notice_id and isinstance(author, str)):
            return None
        if kind not in ("warning", "blocked", "unblocked") or not _is_int(strike) or strike < 0:
            return None
        if not isinstance(text, str) or not isinstance(timestamp, str):
            return None
        if not _is_int(limit) or limit < 1:
            limit = STRIKE_LIMIT
        raw_terms = obj.get("terms")
        terms = tuple(t for t in raw_terms if isinstance(t, str)) if isinstance(raw_terms, list) else ()
        message_id = obj.get("message_id")
        return cls(
            id=notice_id,
            author=author,
            kind=kind,
            strike=strike,
            limit=limit,
            text=text,
            timestamp=timestamp,
            terms=terms,
            message_id=message_id if isinstance(message_id, str) else None,
        )


@dataclass(frozen=True, slots=True)
class UserRecord:
    """``GET /users/<author>``: how many strikes a user has, and whether they are blocked."""

    author: str
    strikes: int = 0
    is_blocked: bool = False
    blocked_at: str | None = None

    @classmethod
    def from_json(cls, obj: object) -> UserRecord | None:
        """Build the record from the API's JSON, or None if it is malformed."""
        if not isinstance(obj, Mapping):
            return None
        author, strikes = obj.get("author"), obj.get("strikes")
        is_blocked, blocked_at = obj.get("is_blocked"), obj.get("blocked_at")
        if not isinstance(author, str) or not _is_int(strikes) or strikes < 0:
            return None
        if not isinstance(is_blocked, bool):
            return None
        return cls(author, strikes, is_blocked, blocked_at if isinstance(blocked_at, str) else None)


def fetch_user(
    api_url: str,
    author: str,
    *,
    timeout: float = LOOKUP_TIMEOUT,
) -> UserRecord:
    """``GET /users/<author>``: the user's strikes and blocked state.

    A 404 (the user never sent a recorded message) is a user with no
    strikes who is not blocked. Anything else that is not a well-formed 200
    raises :class:`ChatApiError`.
    """
    url = user_url(api_url, author)
    try:
        response = requests.get(url, timeout=timeout)
    except requests.RequestException as exc:
        raise ApiUnreachable(f"cannot reach {api_url} ({type(exc).__name__})") from None
    with response:
        if response.status_code == 404:
            return UserRecord(author)
        if response.status_code != 200:
            raise ChatApiError(f"HTTP {response.status_code} from GET /users/<author>: {_error_text(response)}")
        try:
            record = UserRecord.from_json(response.json())
        except ValueError:
            record = None
        if record is None:
            raise ChatApiError("malformed reply to GET /users/<author>")
        return record


def blocked_explanation(record: UserRecord) -> str:
    """Why a user is blocked, from their record alone (no notice or API error text at hand).

    Worded like the API's own 403 error.
    """
    since = f" since {record.blocked_at} UTC" if record.blocked_at else ""
    strikes = max(record.strikes, STRIKE_LIMIT)
    return (
        f"{record.author} is blocked{since} after {strikes} strikes for profanity: "
        "blocked users can neither send nor read messages"
    )


@dataclass(frozen=True, slots=True)
class Standing:
    """What a session knows of its user's moderation, folded from every source.

    Immutable: each ``with_*`` method returns the updated standing. Strikes
    only ever go up and a block stays, until an ``unblocked`` notice (a
    moderator lifted the block) starts the user again from no strikes, not
    blocked (notices are folded oldest first and delivered once each, so the
    newest decides). ``reason`` explains the block in
    the API's words: a ``blocked`` notice's text wins over a 403 error, which
    wins over the wording made up from ``GET /users/<author>``
    (``reason_source`` says which it is).
    """

    strikes: int = 0
    limit: int = STRIKE_LIMIT
    blocked: bool = False
    reason: str = ""
    reason_source: BlockSource | None = None
    latest: Notice | None = None
    """The newest notice received, if any."""

    def with_user(self, record: UserRecord) -> Standing:
        """Take ``GET /users/<author>`` into account."""
        updated = replace(self, strikes=max(self.strikes, record.strikes))
        if record.is_blocked:
            updated = updated._block(blocked_explanation(record), "record")
        return updated

    def with_notice(self, notice: Notice) -> Standing:
        """Take one notice into account (a ``blocked`` notice blocks, an
        ``unblocked`` one lifts the block and the strikes)."""
        if notice.unblocked:
            return replace(
                self,
                strikes=notice.strike,
                limit=notice.limit,
                blocked=False,
                reason="",
                reason_source=None,
                latest=notice,
            )
        updated = replace(self, strikes=max(self.strikes, notice.strike), limit=notice.limit, latest=notice)
        if notice.blocked:
            updated = updated._block(notice.text, "notice")
        return updated

    def with_notices(self, notices: Iterable[Notice]) -> Standing:
        """Take several notices into account, oldest first."""
        standing = self
        for notice in notices:
            standing = standing.with_notice(notice)
        return standing

    def with_refusal(self, api_error: str | None) -> Standing:
        """The API refused this user as blocked (HTTP 403) with this explanation."""
        return self._block(
            api_error or "You are blocked: blocked users can neither send nor read messages",
            "refusal",
        )

    def _block(self, reason: str, source: BlockSource) -> Standing:
        """Blocked, explained by ``reason`` unless a better explanation is already known."""
        if self.reason_source is not None and _BLOCK_SOURCE_RANK[source] < _BLOCK_SOURCE_RANK[self.reason_source]:
            return self
        return replace(
            self,
            blocked=True,
            strikes=max(self.strikes, self.limit),
            reason=reason,
            reason_source=source,
        )


@dataclass(frozen=True, slots=True)
class NoticeBatch:
    """Notices not delivered before, oldest first.

    ``backlog`` is True for the notices the API already kept when following
    started (the user's earlier warnings), False for ones that arrived since.
    """

    notices: tuple[Notice, ...]
    backlog: bool


class NoticeFollower:
    """Follows ``GET /users/<author>/notices`` for the user of a :class:`ChatSession`.

    Requests carry the session's token (the API shows a user's notices only to
    that user); an expired session is renewed by the session. Once the session
    is lost (closed, or the name taken by someone else) the follower stops.

    The first request (without ``after``) returns every notice the API keeps
    for the user, immediately: that is the backlog. Every later request
    long-polls with ``after=<cursor>&wait=<seconds>``. A rejected cursor
    (HTTP 400) is dropped and the notices are read again from the start;
    notices are de-duplicated by id, so each is delivered once. Errors never
    escape: the follower logs them and retries with exponential back-off.

    :meth:`start` runs it in a daemon thread, which passes each non-empty
    :class:`NoticeBatch` to ``on_batch`` (called in that thread). After
    :meth:`stop`, ``on_batch`` is not called again; a long-poll in flight
    finishes by itself (within ``wait + timeout_margin`` seconds) and the
    thread ends.
    """

    def __init__(
        self,
        session: ChatSession,
        *,
        wait: int = LONG_POLL_WAIT,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        timeout_margin: float = 10.0,
        on_batch: Callable[[NoticeBatch], None] | None = None,
    ) -> None:
        self.session = session
        self.api_url = session.api_url
        self.wait = wait
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.timeout_margin = timeout_margin
        self.on_batch = on_batch
        self.cursor: str | None = None
        self._seen: set[str] = set()
        self._backlog_read = False
        self._failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = requests.Session()

    @property
    def author(self) -> str:
        return self.session.author

    @property
    def url(self) -> str:
        return user_url(self.api_url, self.author, "notices")

    def _backoff(self, problem: str) -> float:
        """Record a failure; return how long to wait before the next attempt."""
        delay = min(self.backoff_max, self.backoff_initial * 2.0**self._failures)
        self._failures += 1
        log.warning("Notices for %r: %s; retrying in %.1fs", self.author, problem, delay)
        return delay

    def poll_once(self) -> tuple[NoticeBatch | None, float]:
        """Make one request; return the new notices (if any) and the delay before the next."""
        params: dict[str, str | int] = {}
        timeout: float = self.timeout_margin
        if self.cursor is not None:
            params.update(after=self.cursor, wait=self.wait)
            timeout += self.wait
        try:
            response = self.session.request("GET", self.url, http=self._http, params=params, timeout=timeout)
        except SessionLost as exc:
            if not self._stop.is_set():  # else the session ended with the browser's
                log.warning("Notices for %r: no longer followed: %s", self.author, exc)
                self._stop.set()
            return None, 0.0
        except ChatApiError as exc:  # renewing the session failed
            return None, self._backoff(f"cannot renew the session ({exc})")
        except requests.RequestException as exc:
            return None, self._backoff(f"cannot reach {self.api_url} ({type(exc).__name__})")
        with response:
            status = response.status_code
            if status == 200:
                return self._accept(response)
            error = _error_text(response)
            if self.cursor is not None and status == 400:
                rejected, self.cursor = self.cursor, None
                return None, self._backoff(f"cursor {rejected!r} rejected ({error}); reading the notices again")
            return None, self._backoff(f"HTTP {status} from GET notices: {error}")

    def _accept(self, response: requests.Response) -> tuple[NoticeBatch | None, float]:
        body = page_body(response, "notices")
        if body is None:
            return None, self._backoff("malformed reply to GET notices")
        new: list[Notice] = []
        for raw in body["notices"]:
            notice = Notice.from_json(raw)
            if notice is None:
                log.warning("Notices for %r: skipping malformed notice %r", self.author, raw)
            elif notice.id not in self._seen:
                self._seen.add(notice.id)
                new.append(notice)
        backlog = not self._backlog_read
        self._backlog_read = True
        self.cursor = body["cursor"]
        self._failures = 0
        return (NoticeBatch(tuple(new), backlog) if new else None), 0.0

    # -- the background thread ---------------------------------------------

    def run(self) -> None:
        """Poll until :meth:`stop` is called (the body of the thread)."""
        try:
            while not self._stop.is_set():
                try:
                    batch, delay = self.poll_once()
                except Exception:  # a follower must not die silently
                    log.exception("Notices for %r: unexpected error", self.author)
                    batch, delay = None, self._backoff("unexpected error")
                if batch is not None and self.on_batch is not None and not self._stop.is_set():
                    try:
                        self.on_batch(batch)
                    except Exception:
                        log.exception("Notices for %r: on_batch callback failed", self.author)
                if delay > 0:
                    self._stop.wait(delay)
        finally:
            self._http.close()

    def start(self) -> None:
        """Start the background thread (once)."""
        if self._thread is not None:
            raise RuntimeError("a NoticeFollower can only be started once")
        self._thread = threading.Thread(target=self.run, name="chat-notices", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float | None = 0) -> None:
        """Stop delivering and ask the thread to end.

        By default this does not wait for a long-poll in flight (it is safe to
        call on an event loop); pass ``timeout`` (None: forever) to join.
        """
        self._stop.set()
        thread = self._thread
        if thread is None:
            self._http.close()
        elif timeout is None or timeout > 0:
            thread.join(timeout)
