"""Long-polling the chat API from a daemon thread: one base, :class:`LongPoller`, and its two uses.

:class:`FeedPoller` follows ``GET /messages`` into a :class:`~ui.models.MessageStore`;
:class:`NoticeStream` follows ``POST /notices/poll`` for every joined user of the process and
hands each user their own notices. One of each per UI process: the API holds two long-polls
for a process, however many people it serves. Both read with the API's cursor, retry with
exponential back-off and never let an error escape their thread.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import requests

from config import contract

from .client import (
    ApiUnreachable,
    ChatApiError,
    ChatSession,
    NameInUse,
    SessionLost,
    error_text,
    json_object,
    reader_name,
)
from .models import FeedMessage, FeedState, FeedStatus, MessageStore, Notice, NoticeBatch

log = logging.getLogger(__name__)

LONG_POLL_WAIT = 25
"""Seconds the API may hold a long-poll open (its maximum is 30)."""

T = TypeVar("T")


class LongPoller(Generic[T]):
    """Reads one long-poll endpoint of the API at ``api_url``, one request after another.

    The first request (and the first after the API rejects the cursor) has no
    ``after`` and is answered at once; every later one long-polls with
    ``after=<cursor>&wait=<seconds>``. :meth:`poll_once` makes one request and
    returns what it delivered and the delay before the next; :meth:`start`
    runs :meth:`run` in a daemon thread, which hands each result to
    :meth:`deliver`. A subclass says how it asks (:meth:`send`), what it reads
    (:attr:`items_key`, :meth:`accept`) and what a lost session means
    (:meth:`session_lost`); errors are logged and retried with back-off.
    """

    thread_name = "chat-long-poll"
    items_key = ""
    # statuses after which the cursor is dropped and the endpoint read again from the start
    reset_statuses: tuple[int, ...] = (400,)

    def __init__(
        self,
        api_url: str,
        *,
        wait: int = LONG_POLL_WAIT,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        timeout_margin: float = 10.0,
    ) -> None:
        self._api_url = api_url.rstrip("/")
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

    def send(self, params: Mapping[str, str | int], timeout: float) -> requests.Response:
        """Make the request, with ``after`` and ``wait`` in ``params`` unless it is a first read."""
        raise NotImplementedError

    @property
    def label(self) -> str:
        """Who is polling, for the log."""
        return self.thread_name

    def accept(self, items: list[Any], body: Mapping[str, Any]) -> T | None:
        """Take the items of a 200 answer (``body``: all of it); return what to deliver (None: nothing)."""
        raise NotImplementedError

    def deliver(self, result: T | None) -> None:
        """Called in the thread after every request, with what :meth:`accept` returned (None after a failure)."""

    def session_lost(self, exc: NameInUse | SessionLost) -> float:
        """The session cannot act any more (or cannot be opened): the delay before the next request."""
        return self._backoff(str(exc))

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
        return self._api_url

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
            response = self.send(params, timeout)
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
            result = self.accept(items, body)
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
    fresh ``ui-reader-<8 hex>``), opened by its first request with
    ``reader_token`` (CHAT_READER_TOKEN; without it, as a guest), renewed on a
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
        reader_token: str | None = None,
        on_poll: Callable[[], None] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(api_url, **options)
        self.session = ChatSession(api_url, reader or reader_name(), credential=reader_token)
        self.store = store if store is not None else MessageStore()
        self.on_poll = on_poll
        self._status = FeedStatus("connecting")
        self._status_lock = threading.Lock()

    def send(self, params: Mapping[str, str | int], timeout: float) -> requests.Response:
        return self.session.request("GET", f"{self.api_url}/messages", http=self._http, params=params, timeout=timeout)

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

    def accept(self, items: list[Any], body: Mapping[str, Any]) -> int:
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


class Interrupted(Exception):
    """A request ended early on purpose: the set of followed users changed while it waited."""


@dataclass(eq=False)
class Followed:
    """One joined user whose notices a :class:`NoticeStream` hands on: ``on_batch`` gets each new batch."""

    session: ChatSession
    on_batch: Callable[[NoticeBatch], None]
    seen: set[str] = field(default_factory=set)  # ids delivered, so a notice read again is not told twice
    backlog_read: bool = False

    @property
    def author(self) -> str:
        return self.session.author


class NoticeStream(LongPoller[list[tuple[Followed, NoticeBatch]]]):
    """Follows ``POST /notices/poll`` for every user :meth:`follow` adds: one long-poll for all of them.

    The request carries the users' session tokens (the API answers only the notices of the users whose
    tokens are live); each notice goes to its author's ``on_batch`` (called in the thread), once per
    id. A user's first batch is their backlog. When a user is added, the long-poll in flight is cut
    (the API ends a long-poll whose client has gone) and the next request reads every kept notice
    again, without a cursor: the new user gets their backlog and the others lose nothing (what they
    had is de-duplicated). A token the API refuses (the session expired) is renewed as
    :meth:`ChatSession.request` does, and read again from the start; a user whose name is someone
    else's now is no longer followed. Without a user, the thread sends nothing and waits for one.
    """

    thread_name = "chat-notices"
    items_key = "notices"

    def __init__(self, api_url: str, **options: Any) -> None:
        super().__init__(api_url, **options)
        self._followed: list[Followed] = []
        self._sent: list[tuple[Followed, str]] = []  # who the request in flight is for, with their token
        self._lock = threading.Lock()
        self._changed = False  # someone was added: read without a cursor next
        self._wake = threading.Event()
        self._inflight: http.client.HTTPConnection | None = None
        self._cut = False
        self._unrenewed = False  # a refused token could not be renewed in the last answer

    @property
    def label(self) -> str:
        return "Notices"

    @property
    def followed(self) -> list[Followed]:
        with self._lock:
            return list(self._followed)

    def follow(self, session: ChatSession, on_batch: Callable[[NoticeBatch], None]) -> Followed:
        """Hand ``session``'s user their notices from now on (the backlog first)."""
        followed = Followed(session, on_batch)
        with self._lock:
            if len(self._followed) >= contract.MAX_POLL_TOKENS:
                raise RuntimeError(f"a notice stream follows at most {contract.MAX_POLL_TOKENS} users")
            self._followed.append(followed)
            self._changed = True
            self._cut_inflight()
        self._wake.set()
        return followed

    def unfollow(self, followed: Followed) -> None:
        """Stop handing ``followed`` notices (the request in flight may still name them: it is not cut)."""
        with self._lock:
            if followed in self._followed:
                self._followed.remove(followed)

    def _cut_inflight(self) -> None:
        """End the request in flight at once (call holding ``_lock``)."""
        connection = self._inflight
        if connection is not None and connection.sock is not None:
            self._cut = True
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed
                pass

    def poll_once(self) -> tuple[list[tuple[Followed, NoticeBatch]] | None, float]:
        self._unrenewed = False
        for followed in self.followed:
            if followed.session.token is None and not followed.session.closed:
                self._renew(followed, None)  # a renewal failed before: try again
        with self._lock:
            if self._changed:
                self.cursor, self._changed = None, False
            self._sent = [(f, f.session.token) for f in self._followed if f.session.token and not f.session.closed]
            self._wake.clear()
        if not self._sent:
            if self._unrenewed:
                return None, self._backoff("a refused session could not be renewed")
            self._wake.wait(self.wait)  # until someone is followed (or the stream stops)
            return None, 0.0
        try:
            result, delay = super().poll_once()
        except Interrupted:
            return None, 0.0
        if self._unrenewed:  # an API that opens no session must not be asked again at once
            delay = max(delay, self._backoff("a refused session could not be renewed"))
        return result, delay

    def send(self, params: Mapping[str, str | int], timeout: float) -> requests.Response:
        body: dict[str, Any] = {"tokens": [token for _, token in self._sent], **params}
        address = urlsplit(self.api_url)
        connection_type = http.client.HTTPSConnection if address.scheme == "https" else http.client.HTTPConnection
        connection = connection_type(address.netloc, timeout=timeout)
        try:
            connection.connect()
            with self._lock:
                if self._changed and "wait" in params:  # someone was added meanwhile: this one would wait for nothing
                    raise Interrupted
                self._inflight, self._cut = connection, False
            connection.request(
                "POST",
                f"{address.path}/notices/poll",
                body=json.dumps(body).encode("utf-8"),
                headers={"Content-Type": "application/json"},
            )
            answer = connection.getresponse()
            content = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            if self._cut:
                raise Interrupted from None
            raise requests.ConnectionError(f"{type(exc).__name__}: {exc}") from None
        finally:
            with self._lock:
                self._inflight = None
            connection.close()
        response = requests.Response()
        response.status_code, response.reason, response.encoding = answer.status, answer.reason, "utf-8"
        response._content = content  # pyright: ignore[reportPrivateUsage]
        return response

    def accept(self, items: list[Any], body: Mapping[str, Any]) -> list[tuple[Followed, NoticeBatch]] | None:
        refused = body.get("refused")
        refused_at = {i for i in refused if isinstance(i, int)} if isinstance(refused, list) else set()
        answered = [f for i, (f, _) in enumerate(self._sent) if i not in refused_at]
        by_author: dict[str, list[Notice]] = {}
        for raw in items:
            notice = Notice.from_json(raw)
            if notice is None:
                log.warning("%s: skipping malformed notice %r", self.label, raw)
            else:
                by_author.setdefault(notice.author, []).append(notice)
        batches: list[tuple[Followed, NoticeBatch]] = []
        for followed in answered:
            new = [n for n in by_author.get(followed.author, ()) if n.id not in followed.seen]
            followed.seen.update(n.id for n in new)
            backlog, followed.backlog_read = not followed.backlog_read, True
            if new:
                batches.append((followed, NoticeBatch(tuple(new), backlog)))
        for index in sorted(i for i in refused_at if 0 <= i < len(self._sent)):
            self._renew(*self._sent[index])
        return batches or None

    def _renew(self, followed: Followed, token: str | None) -> None:
        """The API refused ``followed``'s token (None: a renewal failed): open their session again, or stop
        following them."""
        if followed not in self.followed:
            return  # they left meanwhile
        try:
            if token is None:
                followed.session.open()
            else:
                followed.session.renew(token)
        except NameInUse as exc:
            log.warning("Notices for %r: no longer followed: %s", followed.author, exc)
            self.unfollow(followed)
            return
        except SessionLost as exc:
            log.warning("Notices for %r: no longer followed: %s", followed.author, exc)
            self.unfollow(followed)
            return
        except ChatApiError as exc:
            log.warning("Notices for %r: cannot renew the session (%s)", followed.author, exc)
            self._unrenewed = True
        with self._lock:  # what they missed while refused is read again from the start
            self._changed = True

    def deliver(self, result: list[tuple[Followed, NoticeBatch]] | None) -> None:
        for followed, batch in result or ():
            if not self.stopped and followed in self.followed:
                followed.on_batch(batch)

    def _stopping(self) -> None:
        self._wake.set()
        with self._lock:
            self._cut_inflight()
