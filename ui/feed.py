"""The UI's side of the chat API: sending messages, following the feed, and
following one user's moderation (strikes, warnings, block).

Nothing here knows about Shiny. The web app (``ui.app``) runs exactly one
:class:`FeedPoller` per process, in a daemon thread, which long-polls
``GET /messages`` and fills a thread-safe :class:`MessageStore`; browser
sessions read the store (by its version number) from Shiny's event loop.

Moderation is per user, so it is per joined session: :func:`fetch_user` reads
``GET /users/<author>`` once on join, and a :class:`NoticeFollower` (one daemon
thread per joined session) long-polls ``GET /users/<author>/notices``. What a
session knows is a :class:`Standing`, an immutable value folded from those.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeGuard
from urllib.parse import quote

import requests

log = logging.getLogger(__name__)

DEFAULT_API_URL = "http://127.0.0.1:5000"
READER_NAME = "ui"
"""The fixed ``user=`` the shared poller reads the feed as."""
HISTORY_LIMIT = 500
"""How many recent messages the store keeps."""
LONG_POLL_WAIT = 25
"""Seconds the API may hold a ``GET /messages?after=...`` open (its max is 30)."""
SEND_TIMEOUT = 10.0
LOOKUP_TIMEOUT = 5.0
"""Seconds to wait for ``GET /users/<author>``."""
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
        self, message: str, *, status: int | None = None, api_error: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.api_error = api_error

    @property
    def blocked(self) -> bool:
        """True if the API refused the sender because they are blocked (HTTP 403)."""
        return self.status == 403


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


def send_message(
    api_url: str, author: str, text: str, *, timeout: float = SEND_TIMEOUT
) -> FeedMessage | None:
    """POST one message; return the API's echo (None if it sent no usable body).

    Raises :class:`SendError` with a user-facing explanation when the API
    rejects the message or cannot be reached.
    """
    url = f"{api_url.rstrip('/')}/messages"
    try:
        response = requests.post(
            url, json={"author": author, "data": text}, timeout=timeout
        )
    except requests.Timeout:
        raise SendError(
            f"The chat server at {api_url} did not answer in time; "
            "your message may not have been sent."
        ) from None
    except requests.RequestException:
        raise SendError(
            f"Cannot reach the chat server at {api_url}. Your message was not sent."
        ) from None
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
        reader: str = READER_NAME,
        wait: int = LONG_POLL_WAIT,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        timeout_margin: float = 10.0,
        on_poll: Callable[[], None] | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.store = store if store is not None else MessageStore()
        self.reader = reader
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

    def poll_once(self) -> float:
        """Make one request; return the delay (seconds) before the next one."""
        params: dict[str, str | int] = {"user": self.reader}
        timeout: float = self.timeout_margin
        if self.cursor is not None:
            params.update(after=self.cursor, wait=self.wait)
            timeout += self.wait
        try:
            response = self._http.get(
                f"{self.api_url}/messages", params=params, timeout=timeout
            )
        except requests.RequestException as exc:
            self._set_status(
                False, f"Cannot reach the chat server at {self.api_url}; retrying…"
            )
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
                    f"cursor {rejected!r} rejected (HTTP {status}: {error}); "
                    "re-reading recent history"
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
            self._thread = threading.Thread(
                target=self.run, name="chat-feed-poller", daemon=True
            )
            self._thread.start()
            return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to stop and wait for it (a long-poll in flight finishes first)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        if thread is None or not thread.is_alive():
            self._http.close()


# -- moderation: one user's strikes, warnings and block --------------------------

NoticeKind = Literal["warning", "blocked"]
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
    """One moderation notice sent to a user: a warning, or the final block.

    ``text`` is the API's explanation, meant to be shown to the user (as
    text). ``strike`` counts from 1; the user is blocked at ``limit`` strikes.
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
        if kind not in ("warning", "blocked") or not _is_int(strike) or strike < 0:
            return None
        if not isinstance(text, str) or not isinstance(timestamp, str):
            return None
        if not _is_int(limit) or limit < 1:
            limit = STRIKE_LIMIT
        raw_terms = obj.get("terms")
        terms = (
            tuple(t for t in raw_terms if isinstance(t, str))
            if isinstance(raw_terms, list)
            else ()
        )
        message_id = obj.get("message_id")
        return cls(
            id=notice_id,
            author=author,
            kind="blocked" if kind == "blocked" else "warning",
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
        return cls(
            author, strikes, is_blocked, blocked_at if isinstance(blocked_at, str) else None
        )


class ChatApiError(Exception):
    """A read from the chat API failed; ``str(error)`` describes why."""


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
        raise ChatApiError(f"cannot reach {api_url} ({type(exc).__name__})") from None
    with response:
        if response.status_code == 404:
            return UserRecord(author)
        if response.status_code != 200:
            raise ChatApiError(
                f"HTTP {response.status_code} from GET /users/<author>: {_error_text(response)}"
            )
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
    only ever go up, and a block is final. ``reason`` explains the block in
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
        """Take one notice into account (a ``blocked`` notice blocks)."""
        updated = replace(
            self, strikes=max(self.strikes, notice.strike), limit=notice.limit, latest=notice
        )
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
        if (
            self.reason_source is not None
            and _BLOCK_SOURCE_RANK[source] < _BLOCK_SOURCE_RANK[self.reason_source]
        ):
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
    """Follows ``GET /users/<author>/notices`` for one user.

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
        api_url: str,
        author: str,
        *,
        wait: int = LONG_POLL_WAIT,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        timeout_margin: float = 10.0,
        on_batch: Callable[[NoticeBatch], None] | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.author = author
        self.url = user_url(self.api_url, author, "notices")
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

    def _backoff(self, problem: str) -> float:
        """Record a failure; return how long to wait before the next attempt."""
        delay = min(self.backoff_max, self.backoff_initial * 2.0**self._failures)
        self._failures += 1
        log.warning(
            "Notices for %r: %s; retrying in %.1fs", self.author, problem, delay
        )
        return delay

    def poll_once(self) -> tuple[NoticeBatch | None, float]:
        """Make one request; return the new notices (if any) and the delay before the next."""
        params: dict[str, str | int] = {}
        timeout: float = self.timeout_margin
        if self.cursor is not None:
            params.update(after=self.cursor, wait=self.wait)
            timeout += self.wait
        try:
            response = self._http.get(self.url, params=params, timeout=timeout)
        except requests.RequestException as exc:
            return None, self._backoff(
                f"cannot reach {self.api_url} ({type(exc).__name__})"
            )
        with response:
            status = response.status_code
            if status == 200:
                return self._accept(response)
            error = _error_text(response)
            if self.cursor is not None and status == 400:
                rejected, self.cursor = self.cursor, None
                return None, self._backoff(
                    f"cursor {rejected!r} rejected ({error}); reading the notices again"
                )
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
        self._thread = threading.Thread(
            target=self.run, name="chat-notices", daemon=True
        )
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
