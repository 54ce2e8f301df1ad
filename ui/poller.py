"""Long-polling the chat API from a daemon thread: one base, :class:`LongPoller`, and its two uses.

:class:`FeedPoller` (one per process) follows ``GET /messages`` into a
:class:`~ui.models.MessageStore`; :class:`NoticeFollower` (one per joined user)
follows ``GET /users/<author>/notices``. Both read with the API's cursor,
retry with exponential back-off and never let an error escape their thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import requests

from .client import (
    ApiUnreachable,
    ChatApiError,
    ChatSession,
    NameInUse,
    SessionLost,
    error_text,
    json_object,
    reader_name,
    user_url,
)
from .models import FeedMessage, FeedState, FeedStatus, MessageStore, Notice, NoticeBatch

log = logging.getLogger(__name__)

LONG_POLL_WAIT = 25
"""Seconds the API may hold a long-poll open (its maximum is 30)."""

T = TypeVar("T")


class LongPoller(Generic[T]):
    """Reads one long-poll endpoint as a :class:`ChatSession`, one request after another.

    The first request (and the first after the API rejects the cursor) has no
    ``after`` and is answered at once; every later one long-polls with
    ``after=<cursor>&wait=<seconds>``. :meth:`poll_once` makes one request and
    returns what it delivered and the delay before the next; :meth:`start`
    runs :meth:`run` in a daemon thread, which hands each result to
    :meth:`deliver`. A subclass says what it reads (:attr:`url`,
    :attr:`items_key`, :meth:`accept`) and what a lost session means
    (:meth:`session_lost`); errors are logged and retried with back-off.
    """

    thread_name = "chat-long-poll"
    items_key = ""
    # statuses after which the cursor is dropped and the endpoint read again from the start
    reset_statuses: tuple[int, ...] = (400,)

    def __init__(
        self,
        session: ChatSession,
        *,
        wait: int = LONG_POLL_WAIT,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        timeout_margin: float = 10.0,
    ) -> None:
        self.session = session
        self.wait = wait
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.timeout_margin = timeout_margin
        self.cursor: str | None = None
        self._failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._http = requests.Session()

    # -- what a subclass says ------------------------------------------------------

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def label(self) -> str:
        """Who is polling, for the log."""
        return self.thread_name

    def accept(self, items: list[Any]) -> T | None:
        """Take the items of a 200 answer; return what to deliver (None: nothing)."""
        raise NotImplementedError

    def deliver(self, result: T | None) -> None:
        """Called in the thread after every request, with what :meth:`accept` returned (None after a failure)."""

    def session_lost(self, exc: NameInUse | SessionLost) -> float:
        """The session cannot act any more (or cannot be opened): the delay before the next request."""
        raise NotImplementedError

    def report(self, state: FeedState, detail: str = "") -> None:
        """The connection state after a request (``detail``: the API's error text of a ``problem``)."""

    def _prepare(self) -> None:
        """Before a thread starts: by default a poller runs once."""
        if self._thread is not None:
            raise RuntimeError(f"a {type(self).__name__} can only be started once")

    def _stopping(self) -> None:
        """After :meth:`stop` is asked for, before waiting for the thread."""

    # -- one request ---------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return self.session.api_url

    def _backoff(self, problem: str) -> float:
        """Record a failure; return how long to wait before the next attempt."""
        delay = min(self.backoff_max, self.backoff_initial * 2.0**self._failures)
        self._failures += 1
        log.warning("%s: %s; retrying in %.1fs", self.label, problem, delay)
        return delay

    def poll_once(self) -> tuple[T | None, float]:
        """Make one request; return what it delivered (None: nothing) and the delay before the next."""
        params: dict[str, str | int] = {}
        timeout: float = self.timeout_margin
        if self.cursor is not None:
            params.update(after=self.cursor, wait=self.wait)
            timeout += self.wait
        try:
            response = self.session.request("GET", self.url, http=self._http, params=params, timeout=timeout)
        except (NameInUse, SessionLost) as exc:
            return None, self.session_lost(exc)
        except ApiUnreachable as exc:
            self.report("unreachable")
            return None, self._backoff(str(exc))
        except ChatApiError as exc:
            self.report("problem", str(exc))
            return None, self._backoff(f"cannot open the session ({exc})")
        except requests.RequestException as exc:
            self.report("unreachable")
            return None, self._backoff(f"cannot reach {self.api_url} ({type(exc).__name__})")
        with response:
            return self._answer(response)

    def _answer(self, response: requests.Response) -> tuple[T | None, float]:
        status = response.status_code
        if status == 200:
            body = json_object(response) or {}
            items, cursor = body.get(self.items_key), body.get("cursor")
            if not isinstance(items, list) or not isinstance(cursor, str):
                self.report("malformed")
                return None, self._backoff(f"malformed reply to GET {self.items_key}")
            result = self.accept(items)
            self.cursor, self._failures = cursor, 0
            self.report("connected")
            return result, 0.0
        error = error_text(response)
        if self.cursor is not None and status in self.reset_statuses:
            # Backing off keeps an API that rejects every cursor from being hammered; the re-read
            # overlaps what was delivered, which the subclass de-duplicates.
            rejected, self.cursor = self.cursor, None
            return None, self._backoff(f"cursor {rejected!r} rejected (HTTP {status}: {error}); reading again")
        self.report("problem", error)
        return None, self._backoff(f"HTTP {status} from GET {self.items_key}: {error}")

    # -- the background thread -----------------------------------------------------

    def run(self) -> None:
        """Poll until :meth:`stop` is called (the body of the thread)."""
        try:
            while not self._stop.is_set():
                try:
                    result, delay = self.poll_once()
                except Exception:  # a poller must not die silently
                    log.exception("%s: unexpected error", self.label)
                    result, delay = None, self._backoff("unexpected error")
                try:
                    self.deliver(result)
                except Exception:
                    log.exception("%s: delivering failed", self.label)
                if delay > 0:
                    self._stop.wait(delay)
        finally:
            self._http.close()

    def start(self) -> bool:
        """Start the background thread unless it is running; True if started now."""
        with self._start_lock:
            if self.running:
                return False
            self._prepare()
            self._stop.clear()
            self._thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
            self._thread.start()
            return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self, timeout: float | None = 0) -> None:
        """Stop delivering and ask the thread to end.

        By default this does not wait for a long-poll in flight (it is safe to
        call on an event loop); pass ``timeout`` (None: forever) to join.
        """
        self._stop.set()
        self._stopping()
        thread = self._thread
        if thread is None:
            self._http.close()
        elif timeout is None or timeout > 0:
            thread.join(timeout)


class FeedPoller(LongPoller[int]):
    """Follows ``GET /messages`` and puts what it reads into a :class:`MessageStore`.

    It reads as a session of its own, under the name ``reader`` (by default a
    fresh ``ui-reader-<8 hex>``), opened by its first request, renewed on a
    401 and ended (``DELETE /sessions``) by :meth:`stop`. Should the name be
    taken meanwhile, it goes on under a fresh one. A cursor the API rejects
    is dropped and the recent history read again (the store's de-duplication
    drops what it already has). :meth:`status` says whether it is connected.

    ``on_poll``, if given, is called (in the poller's thread) after every
    request, successful or not, so that readers can look at the store and
    status again. It can be started again after :meth:`stop`.
    """

    thread_name = "chat-feed-poller"
    items_key = "messages"
    reset_statuses = (400, 404, 410)

    def __init__(
        self,
        api_url: str,
        store: MessageStore | None = None,
        *,
        reader: str | None = None,
        on_poll: Callable[[], None] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(ChatSession(api_url, reader or reader_name()), **options)
        self.store = store if store is not None else MessageStore()
        self.on_poll = on_poll
        self._status = FeedStatus("connecting")
        self._status_lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"{self.api_url}/messages"

    @property
    def label(self) -> str:
        return "Chat feed"

    @property
    def reader(self) -> str:
        """The name the feed is read as."""
        return self.session.author

    def status(self) -> FeedStatus:
        with self._status_lock:
            return self._status

    def report(self, state: FeedState, detail: str = "") -> None:
        with self._status_lock:
            self._status = FeedStatus(state, detail)

    def accept(self, items: list[Any]) -> int:
        messages: list[FeedMessage] = []
        for raw in items:
            message = FeedMessage.from_json(raw)
            if message is None:
                log.warning("Chat feed: skipping malformed message %r", raw)
            else:
                messages.append(message)
        return self.store.add(messages)

    def deliver(self, result: int | None) -> None:
        if self.on_poll is not None:
            self.on_poll()

    def session_lost(self, exc: NameInUse | SessionLost) -> float:
        if self.stopped:  # the session was closed on purpose
            return 0.0
        lost, self.session = self.session, ChatSession(self.api_url, reader_name())
        return self._backoff(f"reader {lost.author!r} lost its session ({exc}); reading as {self.session.author!r}")

    def _prepare(self) -> None:
        if self.session.closed:  # stopped before: read under a new session
            self.session = ChatSession(self.api_url, reader_name())
        self._http.close()
        self._http = requests.Session()

    def _stopping(self) -> None:
        self.session.close()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to stop, end the reader's session and wait for the
        thread (a long-poll in flight finishes first)."""
        super().stop(timeout)


class NoticeFollower(LongPoller[NoticeBatch]):
    """Follows ``GET /users/<author>/notices`` for the user of a :class:`ChatSession`.

    Requests carry the user's token (the API shows a user's notices only to
    that user); once the session is lost (closed, or the name taken by
    someone else) the follower stops. The first answer is the backlog: every
    notice the API keeps for the user. Notices are de-duplicated by id, so
    each is delivered once, also when a rejected cursor makes it read again.

    Each non-empty :class:`NoticeBatch` goes to ``on_batch`` (called in the
    thread). After :meth:`stop`, ``on_batch`` is not called again; a long-poll
    in flight finishes by itself and the thread ends.
    """

    thread_name = "chat-notices"
    items_key = "notices"

    def __init__(
        self,
        session: ChatSession,
        *,
        on_batch: Callable[[NoticeBatch], None] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(session, **options)
        self.on_batch = on_batch
        self._seen: set[str] = set()
        self._backlog_read = False

    @property
    def author(self) -> str:
        return self.session.author

    @property
    def label(self) -> str:
        return f"Notices for {self.author!r}"

    @property
    def url(self) -> str:
        return user_url(self.api_url, self.author, "notices")

    def accept(self, items: list[Any]) -> NoticeBatch | None:
        new: list[Notice] = []
        for raw in items:
            notice = Notice.from_json(raw)
            if notice is None:
                log.warning("%s: skipping malformed notice %r", self.label, raw)
            elif notice.id not in self._seen:
                self._seen.add(notice.id)
                new.append(notice)
        backlog, self._backlog_read = not self._backlog_read, True
        return NoticeBatch(tuple(new), backlog) if new else None

    def deliver(self, result: NoticeBatch | None) -> None:
        if result is not None and self.on_batch is not None and not self.stopped:
            self.on_batch(result)

    def session_lost(self, exc: NameInUse | SessionLost) -> float:
        if isinstance(exc, NameInUse):  # the session was never opened, and the name is someone else's
            return self._backoff(f"cannot open the session ({exc})")
        if not self.stopped:  # else the session ended with the browser's
            log.warning("%s: no longer followed: %s", self.label, exc)
            self._stop.set()
        return 0.0
