"""ui/live.py: the process's one feed, from its poller thread into Shiny's reactive values."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
from shiny import reactive

import ui.live
from tests.ui.live_api import LiveApi
from ui.live import LiveFeed


async def until(condition: Callable[[], bool]) -> None:
    """Wait on the event loop for ``condition``; a wait that never ends is pytest-timeout's to report."""
    while not condition():
        await asyncio.sleep(0.02)


def test_live_feed_pushes_new_messages_into_reactive_values(live: LiveApi) -> None:
    """The poller thread -> event loop bridge: an effect reading the feed's
    reactive version re-runs by itself when messages arrive."""
    live.fail_next(live.feed, "read", 1)
    live.say("alice", "one")
    seen: list[int] = []
    statuses: list[bool] = []

    async def main() -> None:
        feed = LiveFeed(live.url, wait=1, backoff_initial=0.05)

        @reactive.effect
        def _watch() -> None:
            seen.append(feed.version())
            statuses.append(feed.status().connected)

        await reactive.flush()
        assert seen == [0]
        feed.start(asyncio.get_running_loop())
        try:
            await until(lambda: seen[-1] == 1)
            live.say("bob", "two")
            await until(lambda: seen[-1] == 2)
            assert [m.data for m in feed.store.messages()] == ["one", "two"]
            assert statuses[-1] is True and False in statuses  # down after the 500, then connected
        finally:
            _watch.destroy()
            live.release()
            await asyncio.to_thread(feed.stop, None)

    asyncio.run(main())


def test_get_feed_starts_one_poller_per_process(live: LiveApi, monkeypatch: pytest.MonkeyPatch) -> None:
    live.say("alice", "hello")
    monkeypatch.setattr(ui.live, "_feed", None)

    async def main() -> LiveFeed:
        feeds = [ui.live.get_feed(live.url) for _ in range(8)]  # as if 8 sessions started
        feed = feeds[0]
        try:
            assert all(f is feed for f in feeds)
            assert feed.poller.api_url == live.url
            assert sum(t.name == "chat-feed-poller" for t in threading.enumerate()) == 1
            await until(lambda: len(feed.store) == 1)
        finally:
            live.release()  # end the 25 s long-poll in flight
            await asyncio.to_thread(feed.stop, None)
        return feed

    feed = asyncio.run(main())
    assert not feed.poller.running
