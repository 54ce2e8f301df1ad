"""The bridges from the UI's threads to Shiny's event loop.

:class:`LiveFeed` is the process's one :class:`~ui.poller.FeedPoller` plus two
process-wide reactive values every session watches; :class:`ModerationWatch`
keeps one joined session's :class:`~ui.models.Standing` up to date from the
process's one :class:`~ui.poller.NoticeStream`. Reactive state is only ever touched on the
event loop, holding ``reactive.lock()``, never from a thread.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
import threading
from collections.abc import Callable
from typing import Any

from shiny import Session, reactive, ui

from config import settings

from .client import ChatApiError, ChatSession, fetch_chat_settings, fetch_user
from .i18n import Lang
from .models import ChatSettings, FeedStatus, Notice, NoticeBatch, Standing, UserRecord
from .poller import FeedPoller, Followed, NoticeStream
from .render import notice_text, notification_type

log = logging.getLogger(__name__)

NOTICE_DURATION = 20
"""Seconds a warning notification stays up (the status line stays for good)."""


class LiveFeed:
    """The process-wide poller thread plus the reactive values sessions watch.

    ``version`` (the store's newest sequence number) and ``status`` are plain
    module-level reactive values, not tied to any session. They are only set
    on the event loop, by :meth:`publish`, which the poller thread schedules
    there (``loop.call_soon_threadsafe``) after each request.
    """

    def __init__(self, api_url: str, **poller_options: Any) -> None:
        self.poller = FeedPoller(api_url, on_poll=self._on_poll, **poller_options)
        self.store = self.poller.store
        self.version: reactive.Value[int] = reactive.Value(self.store.version())
        self.status: reactive.Value[FeedStatus] = reactive.Value(self.poller.status())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Publish to ``loop`` (Shiny's event loop) and start polling (idempotent)."""
        self._loop = loop
        self.poller.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop polling and end the reader's session."""
        self.poller.stop(timeout)

    def _on_poll(self) -> None:
        """Runs in the poller thread: have the event loop call :meth:`publish`."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._schedule_publish)
        except RuntimeError:  # the loop was closed meanwhile
            pass

    def _schedule_publish(self) -> None:
        """Runs on the event loop (so the coroutine only exists if it will run)."""
        task = asyncio.get_running_loop().create_task(self.publish())
        self._tasks.add(task)
        task.add_done_callback(self._publish_done)

    def _publish_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Chat feed: updating sessions failed", exc_info=task.exception())

    async def publish(self) -> None:
        """Runs on the event loop: update the reactive values and flush.

        ``reactive.lock()`` is Shiny's documented way to set reactive values
        and flush from a task that is not a session's own.
        """
        async with reactive.lock():
            self.version.set(self.store.version())
            self.status.set(self.poller.status())
            await reactive.flush()


_feed: LiveFeed | None = None
_feed_lock = threading.Lock()


def get_feed(api_url: str) -> LiveFeed:
    """The process-wide feed, reading ``api_url``, started on first use; call on the event loop."""
    global _feed
    loop = asyncio.get_running_loop()
    with _feed_lock:
        if _feed is None:
            _feed = LiveFeed(api_url, reader_token=settings.load().reader_token or None)
            # End the reader's session when the server exits (else it expires).
            atexit.register(_feed.stop, 0)
        _feed.start(loop)
        return _feed


class SharedChatSettings:
    """The chat's slow mode and rate limit (``GET /chat/settings``), asked for at most every ``refresh_s``
    for the whole process, however many sessions look; on the event loop only."""

    def __init__(self, api_url: str, refresh_s: float = 3.0) -> None:
        self.api_url = api_url
        self.refresh_s = refresh_s
        self.value = ChatSettings()
        self._fetched_at = float("-inf")
        self._fetching: asyncio.Task[None] | None = None

    async def current(self) -> ChatSettings:
        loop = asyncio.get_running_loop()
        if loop.time() - self._fetched_at >= self.refresh_s and (self._fetching is None or self._fetching.done()):
            self._fetching = loop.create_task(self._fetch())
        if self._fetching is not None and not self._fetching.done():
            await asyncio.shield(self._fetching)
        return self.value

    async def _fetch(self) -> None:
        fetched = await asyncio.to_thread(fetch_chat_settings, self.api_url)
        self._fetched_at = asyncio.get_running_loop().time()
        if fetched is not None:  # the API could not tell: keep what it said last
            self.value = fetched


_chat_settings: SharedChatSettings | None = None


def get_chat_settings(api_url: str) -> SharedChatSettings:
    """The process-wide view of the chat's settings."""
    global _chat_settings
    with _feed_lock:
        if _chat_settings is None:
            _chat_settings = SharedChatSettings(api_url)
        return _chat_settings


_notices: NoticeStream | None = None


def get_notices(api_url: str) -> NoticeStream:
    """The process-wide notice stream, reading ``api_url``, started on first use."""
    global _notices
    with _feed_lock:
        if _notices is None:
            _notices = NoticeStream(api_url)
            atexit.register(_notices.stop, 0)
        _notices.start()
        return _notices


class ModerationWatch:
    """Keeps one joined session's ``standing`` up to date, and tells the user.

    Runs as an asyncio task on Shiny's event loop: it reads
    ``GET /users/<author>`` (in a worker thread), then has the process's
    :class:`~ui.poller.NoticeStream` follow the user's
    :class:`~ui.client.ChatSession`, and applies each batch of notices the
    stream's thread hands over (through an ``asyncio.Queue``). Every update is made
    holding ``reactive.lock()`` and followed by a flush, like
    :meth:`LiveFeed.publish`. Notices that arrive after the join are also
    shown as notifications, in the language ``language()`` gives at that
    moment; the backlog only sets the standing.

    The task runs in a fresh ``contextvars`` context, so it does not inherit
    the reactive context of the effect that started it.
    """

    def __init__(
        self,
        session: Session,
        chat_session: ChatSession,
        standing: reactive.Value[Standing | None],
        language: Callable[[], Lang],
        notices: NoticeStream,
    ) -> None:
        self.session = session
        self.language = language
        self.chat_session = chat_session
        self.author = chat_session.author
        self.standing = standing
        self.notices = notices
        self.followed: Followed | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start watching (call on the event loop)."""
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), context=contextvars.Context())
        self._task.add_done_callback(self._done)

    def stop(self) -> None:
        """Stop watching: the stream hands this user nothing more."""
        if self._task is not None:
            self._task.cancel()
        if self.followed is not None:
            self.notices.unfollow(self.followed)

    def _done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("Moderation of %r failed", self.author, exc_info=task.exception())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        record: UserRecord | None = None
        try:
            record = await asyncio.to_thread(
                fetch_user, self.chat_session.api_url, self.author, language=self.chat_session.language
            )
        except ChatApiError as exc:
            # Shown as not blocked for now; a blocked user's notices (read next, with retries) still block them.
            log.warning("Cannot look up user %r (%s)", self.author, exc)
        await self._apply(record=record)

        batches: asyncio.Queue[NoticeBatch] = asyncio.Queue()

        def hand_over(batch: NoticeBatch) -> None:  # in the stream's thread
            try:
                loop.call_soon_threadsafe(batches.put_nowait, batch)
            except RuntimeError:  # the event loop is closed
                pass

        self.followed = self.notices.follow(self.chat_session, hand_over)
        try:
            while True:
                batch = await batches.get()
                await self._apply(notices=batch.notices, notify=not batch.backlog)
        finally:
            self.notices.unfollow(self.followed)

    async def _apply(
        self,
        *,
        record: UserRecord | None = None,
        notices: tuple[Notice, ...] = (),
        notify: bool = False,
    ) -> None:
        """Fold a user record and/or notices into the standing, show the
        notices as notifications if ``notify``, and flush."""
        async with reactive.lock():
            with reactive.isolate():
                standing = self.standing.get() or Standing()
            if record is not None:
                standing = standing.with_user(record)
            self.standing.set(standing.with_notices(notices))
            lang = self.language()
            for notice in notices if notify else ():
                ui.notification_show(
                    notice_text(notice).render(lang),
                    type=notification_type(notice),
                    duration=None if notice.blocked else NOTICE_DURATION,
                    session=self.session,
                )
            await reactive.flush()
