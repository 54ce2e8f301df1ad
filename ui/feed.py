"""The UI's side of the chat API: sending messages and following the feed.

Nothing here knows about Shiny. The web app (``ui.app``) runs exactly one
:class:`FeedPoller` per process, in a daemon thread, which long-polls
``GET /messages`` and fills a thread-safe :class:`MessageStore`; browser
sessions read the store (by its version number) from Shiny's event loop.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

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
    """A message could not be sent; ``str(error)`` is meant for the user."""


def _error_text(response: requests.Response) -> str:
    """The API's ``{"error": ...}`` text, or a generic description."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping) and isinstance(body.get("error"), str) and body["error"]:
        return body["error"]
    return f"HTTP {response.status_code} {response.reason or ''}".strip()


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
            raise SendError(f"Message not sent: {_error_text(response)}")
        try:
            return FeedMessage.from_json(response.json())
        except ValueError:
            return None


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
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if (
            not isinstance(body, Mapping)
            or not isinstance(body.get("messages"), list)
            or not isinstance(body.get("cursor"), str)
        ):
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
