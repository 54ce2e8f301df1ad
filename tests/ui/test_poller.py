"""ui/poller.py against the real API (tests/ui/live_api.py): the feed poller and the notice follower.

No test measures time: a long-poll "returns when something arrives" is checked as an order of
events (the request was in flight before the arrival, and its answer brought it), and a wait that
never ends is left to pytest-timeout.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from stack.broker import free_port
from tests.ui.live_api import Answer, Double, LiveApi, schema_errors, wait_until
from tests.ui.samples import AWKWARD_NAMES
from tests.ui.test_client import assert_one_segment, joined
from ui.client import ChatSession
from ui.models import FeedMessage, FeedStatus, MessageStore, Notice, NoticeBatch
from ui.poller import FeedPoller, LongPoller, NoticeFollower

LOGGER = "ui.poller"
T = TypeVar("T")


def make_poller(url: str, **kwargs: Any) -> FeedPoller:
    options: dict[str, Any] = {"wait": 1, "backoff_initial": 1.0, "backoff_max": 8.0}
    options.update(kwargs)
    return FeedPoller(url, **options)


def data(poller: FeedPoller) -> list[str]:
    return [m.data for m in poller.store.messages()]


def poll_while(
    poller: LongPoller[T], in_flight: Callable[[], bool], arrive: Callable[[], object]
) -> tuple[T | None, float]:
    """One ``poll_once`` during which something arrives: once the request is ``in_flight``, ``arrive()``."""
    result: list[tuple[T | None, float]] = []
    polling = threading.Thread(target=lambda: result.append(poller.poll_once()))
    polling.start()
    wait_until(in_flight)
    arrive()
    polling.join()
    return result[0]


# -- the feed poller ---------------------------------------------------------------------------


def test_poller_reads_history_then_long_polls_with_the_cursor(live: LiveApi) -> None:
    first = live.say("alice", "first")
    live.say("bob", "second")
    poller = make_poller(live.url)
    try:
        assert poller.status() == FeedStatus("connecting")
        assert poller.poll_once() == (2, 0.0)
        assert live.get_log[-1] == {}  # the tail: no cursor yet
        assert data(poller) == ["first", "second"]
        assert poller.store.messages()[0].id == first
        assert poller.cursor == live.feed.cursor({0: 2})
        assert poller.status().connected is True

        live.say("carol", "third")
        assert poller.poll_once() == (1, 0.0)
        assert live.get_log[-1] == {"after": live.feed.cursor({0: 2}), "wait": "1"}
        assert data(poller) == ["first", "second", "third"]
        assert poller.cursor == live.feed.cursor({0: 3})

        # Nothing new: the long-poll times out with an empty list, cursor kept.
        assert poller.poll_once() == (0, 0.0)
        assert live.get_log[-1]["after"] == live.feed.cursor({0: 3})
        assert len(poller.store) == 3 and poller.cursor == live.feed.cursor({0: 3})
    finally:
        poller.stop()


def test_poller_reads_as_a_session_of_its_own(live: LiveApi) -> None:
    """One session per poller, under a random ui-reader-<8 hex> name, its
    token on every GET /messages, and ended (the name freed) by stop()."""
    poller = make_poller(live.url)
    other = make_poller(live.url)
    try:
        assert re.fullmatch(r"ui-reader-[0-9a-f]{8}", poller.reader)
        assert other.reader != poller.reader
        poller.poll_once()
        poller.poll_once()
        assert live.session_log == [("open", poller.reader)]  # opened once, then reused
        (token,) = live.tokens_of(poller.reader)
        assert live.requests_with("GET", "/messages") == [token, token]
    finally:
        poller.stop()
        other.stop()  # never opened: nothing to end
    assert live.session_log == [("open", poller.reader), ("delete", poller.reader)]
    assert live.holders() == []


def test_poller_renews_an_expired_session_and_retries(live: LiveApi) -> None:
    poller = make_poller(live.url)
    try:
        poller.poll_once()
        (old,) = live.tokens_of(poller.reader)
        live.expire(poller.reader)
        live.say("alice", "while expired")
        assert poller.poll_once() == (1, 0.0)  # no error, no back-off
        (new,) = live.tokens_of(poller.reader)
        assert new != old
        assert live.requests_with("GET", "/messages") == [old, old, new]
        assert data(poller) == ["while expired"]
        assert live.session_log == [("open", poller.reader)] * 2
        assert poller.status().connected is True
    finally:
        poller.stop()


def test_poller_takes_a_new_name_when_its_own_is_taken(live: LiveApi, caplog: pytest.LogCaptureFixture) -> None:
    poller = make_poller(live.url)
    try:
        poller.poll_once()
        first = poller.reader
        live.expire(first)
        theirs = live.open_session(first)  # someone took the name meanwhile
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            assert poller.poll_once() == (None, poller.backoff_initial)
        assert "lost its session" in caplog.text
        assert poller.poll_once() == (0, 0.0)
        assert poller.reader != first and re.fullmatch(r"ui-reader-[0-9a-f]{8}", poller.reader)
        (token,) = live.tokens_of(poller.reader)
        assert live.requests_with("GET", "/messages")[-1] == token
        assert live.tokens_of(first) == [theirs]
    finally:
        poller.stop()


def test_poller_long_poll_brings_a_message_that_arrives_while_it_waits(live: LiveApi) -> None:
    poller = make_poller(live.url, wait=30)
    try:
        poller.poll_once()
        result = poll_while(poller, lambda: len(live.get_log) == 2, lambda: live.say("alice", "hi"))
        assert live.get_log[-1]["wait"] == "30" and result == (1, 0.0)
        assert data(poller) == ["hi"]
    finally:
        poller.stop()


def test_poller_store_is_bounded(live: LiveApi) -> None:
    for i in range(8):
        live.say("alice", f"m{i}")
    poller = make_poller(live.url, store=MessageStore(limit=5))
    try:
        poller.poll_once()
        assert data(poller) == ["m3", "m4", "m5", "m6", "m7"]
    finally:
        poller.stop()


def test_poller_carries_on_after_an_api_restart(live: LiveApi) -> None:
    """A cursor from before a restart names positions in Kafka: the restarted API answers exactly what came
    after it, nothing the poller already has."""
    for i in range(3):
        live.say("alice", f"m{i}")
    poller = make_poller(live.url)
    try:
        poller.poll_once()
        before = poller.cursor
        live.restart()
        live.say("bob", "missed")
        assert poller.poll_once() == (1, 0.0)  # no error, no back-off
        assert live.get_log[-1]["after"] == before
        (answer,) = [e for e in live.recorder.requests("GET", "/messages") if e.query.get("after") == before]
        assert [m["data"] for m in answer.answer_json()["messages"]] == ["missed"]
        assert data(poller) == ["m0", "m1", "m2", "missed"] and poller.store.version() == 4
        assert poller.cursor == live.feed.cursor({0: 4}) and poller.status().connected
    finally:
        poller.stop()


def test_poller_drops_a_cursor_the_api_rejects(live: LiveApi, caplog: pytest.LogCaptureFixture) -> None:
    live.say("alice", "before")
    poller = make_poller(live.url)
    try:
        poller.poll_once()
        poller.cursor = "not-a-cursor"  # as if another API had issued it
        live.say("bob", "missed")
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            assert poller.poll_once() == (None, poller.backoff_initial)
        assert poller.cursor is None
        assert "rejected" in caplog.text and live.last_error("GET", "/messages") in caplog.text
        assert poller.status().connected is True  # the API itself is fine

        assert poller.poll_once() == (1, 0.0)
        assert live.get_log[-1] == {}  # re-read the tail
        assert poller.cursor == live.feed.cursor({0: 2})
        assert data(poller) == ["before", "missed"]
    finally:
        poller.stop()


def test_poller_backs_off_on_errors_and_recovers(live: LiveApi, caplog: pytest.LogCaptureFixture) -> None:
    live.say("alice", "hello")
    live.fail_next(live.feed, "read", 5)
    poller = make_poller(live.url, backoff_initial=1.0, backoff_max=8.0)
    try:
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            delays = [poller.poll_once()[1] for _ in range(5)]
        assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]  # exponential, capped
        error = live.last_error("GET", "/messages")
        assert "HTTP 500" in caplog.text and error in caplog.text
        status = poller.status()
        assert status == FeedStatus("problem", error)
        assert len(poller.store) == 0

        assert poller.poll_once() == (1, 0.0)  # recovered
        assert poller.status().connected is True
        assert data(poller) == ["hello"]
        live.fail_next(live.feed, "read", 1)
        assert poller.poll_once() == (None, 1.0)  # the back-off starts over
    finally:
        poller.stop()


def test_poller_survives_an_unreachable_api(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    poller = make_poller(url, backoff_initial=0.5)
    try:
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            assert poller.poll_once() == (None, 0.5)
            assert poller.poll_once() == (None, 1.0)
        assert "cannot reach" in caplog.text
        status = poller.status()
        assert status == FeedStatus("unreachable")
    finally:
        poller.stop()


def test_poller_backs_off_on_a_malformed_reply(double: tuple[Double, str]) -> None:
    fake, url = double
    fake.answer("GET", "/messages", Answer(200, {"messages": "not a list"}, conforms=False))
    poller = make_poller(url)
    try:
        assert poller.poll_once() == (None, 1.0)
        status = poller.status()
        assert status == FeedStatus("malformed")
    finally:
        poller.stop()


def test_poller_skips_malformed_messages(double: tuple[Double, str]) -> None:
    fake, url = double
    good = {"id": "m1", "author": "alice", "data": "ok", "timestamp": "2024-05-01 12:03:04"}
    body = {"messages": [{"id": "x", "author": "a"}, good], "cursor": "c.1"}  # the first has no data/timestamp
    fake.answer("GET", "/messages", Answer(200, body, conforms=False))
    assert schema_errors({**body, "messages": [good]}, "/messages", "get", 200) == []  # only the first breaks it
    poller = make_poller(url)
    try:
        assert poller.poll_once() == (1, 0.0)
        assert poller.store.messages() == [FeedMessage(**good)]
    finally:
        poller.stop()


def test_poller_thread_retries_until_the_api_recovers(live: LiveApi) -> None:
    live.fail_next(live.feed, "read", 2)
    live.say("alice", "one")
    poller = make_poller(live.url, backoff_initial=0.05, wait=1)
    try:
        assert poller.start() is True
        assert poller.start() is False  # already running: still one thread
        wait_until(lambda: len(poller.store) == 1)
        live.say("bob", "two")
        wait_until(lambda: len(poller.store) == 2)
        assert poller.status().connected is True
        assert sum(t.name == "chat-feed-poller" for t in threading.enumerate()) == 1
    finally:
        live.release()
        poller.stop(timeout=None)
    assert not poller.running


def test_poller_thread_calls_on_poll_after_each_request(live: LiveApi) -> None:
    live.fail_next(live.feed, "read", 1)
    calls: list[tuple[str, int, bool]] = []
    poller: FeedPoller

    def on_poll() -> None:
        calls.append((threading.current_thread().name, poller.store.version(), poller.status().connected))

    poller = make_poller(live.url, backoff_initial=0.05, on_poll=on_poll)
    live.say("alice", "one")
    try:
        poller.start()
        wait_until(lambda: any(version == 1 for _, version, _ in calls))
    finally:
        live.release()
        poller.stop(timeout=None)
    assert calls[0] == ("chat-feed-poller", 0, False)  # after the 500
    assert ("chat-feed-poller", 1, True) in calls


def test_poller_can_be_started_again_under_a_new_session(live: LiveApi) -> None:
    poller = make_poller(live.url)
    poller.start()
    wait_until(lambda: poller.status().connected)
    first = poller.reader
    poller.stop(timeout=None)
    assert not poller.running and live.holders() == []
    try:
        assert poller.start() is True
        wait_until(lambda: poller.reader in live.holders())
        assert poller.reader != first
    finally:
        live.release()
        poller.stop(timeout=None)


# -- the notice follower ------------------------------------------------------------------------


def make_follower(url: str, author: str = "alice", **kwargs: Any) -> NoticeFollower:
    """A follower for ``author``, whose session its first request opens."""
    options: dict[str, Any] = {"wait": 1, "backoff_initial": 1.0, "backoff_max": 8.0}
    options.update(kwargs)
    return NoticeFollower(ChatSession(url, author), **options)


def test_follower_reads_the_backlog_then_long_polls_with_the_cursor(live: LiveApi) -> None:
    first = live.strike("alice")
    live.strike("bob")
    follower = make_follower(live.url)
    board = live.moderation.notices
    try:
        batch, delay = follower.poll_once()
        assert delay == 0.0
        assert live.notices_log[-1] == ("alice", {})  # no cursor, no wait: returns at once
        assert batch is not None and batch.backlog is True
        assert [n.id for n in batch.notices] == [first["id"]]
        assert batch.notices[0] == Notice.from_json(first)
        head = board.cursor({})  # the board's cursor past everything it has read
        assert follower.cursor == head

        second = live.strike("alice")
        batch, delay = follower.poll_once()
        assert live.notices_log[-1] == ("alice", {"after": head, "wait": "1"})
        assert batch == NoticeBatch((Notice.from_json(second),), backlog=False)  # type: ignore[arg-type]
        assert follower.cursor == board.cursor({}) != head

        # Nothing new (bob's strike is not alice's): the long-poll times out.
        live.strike("bob")
        assert follower.poll_once() == (None, 0.0)
        assert follower.cursor == board.cursor({})
    finally:
        follower.stop()


def test_follower_reads_with_the_users_token(live: LiveApi) -> None:
    session = joined(live.url, "alice")
    live.strike("alice")
    follower = NoticeFollower(session, wait=1)
    try:
        batch, _ = follower.poll_once()
        follower.poll_once()
        assert batch is not None and len(batch.notices) == 1
        assert live.requests_with("GET", "/users/alice/notices") == [session.token] * 2
        assert live.session_log == [("open", "alice")]  # the join's session, no other
    finally:
        follower.stop()


def test_follower_renews_an_expired_session_and_retries(live: LiveApi) -> None:
    session = joined(live.url, "alice")
    old = session.token
    follower = NoticeFollower(session, wait=1)
    try:
        follower.poll_once()
        live.expire("alice")
        missed = live.strike("alice")
        batch, delay = follower.poll_once()
        assert delay == 0.0
        assert batch is not None and [n.id for n in batch.notices] == [missed["id"]]
        (new,) = live.tokens_of("alice")
        assert live.requests_with("GET", "/users/alice/notices") == [old, old, new]
    finally:
        follower.stop()


def test_follower_stops_when_the_session_is_lost(live: LiveApi, caplog: pytest.LogCaptureFixture) -> None:
    session = joined(live.url, "alice")
    batches: list[NoticeBatch] = []
    follower = NoticeFollower(session, wait=1, on_batch=batches.append)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        follower.start()
        wait_until(lambda: any("after" in q for _, q in live.notices_log))
        live.expire("alice")
        live.open_session("alice")  # someone else is alice now
        # the long-poll in flight ends with a 401 (the API checks the session again), the renewal finds
        # the name taken, and the follower stops
        wait_until(lambda: not follower.running)
    assert "no longer followed" in caplog.text and "in use by someone else" in caplog.text
    assert len(live.tokens_of("alice")) == 1  # the other person's session only
    live.strike("alice")  # theirs: never reaches this follower, whose thread has ended
    assert batches == []


def test_follower_backlog_may_be_empty(live: LiveApi) -> None:
    follower = make_follower(live.url)
    try:
        assert follower.poll_once() == (None, 0.0)
        live.strike("alice")
        batch, _ = follower.poll_once()
        assert batch is not None and batch.backlog is False  # arrived after following started
    finally:
        follower.stop()


def test_follower_long_poll_brings_a_notice_that_arrives_while_it_waits(live: LiveApi) -> None:
    follower = make_follower(live.url, wait=30)
    try:
        follower.poll_once()
        batch, delay = poll_while(follower, lambda: len(live.notices_log) == 2, lambda: live.strike("alice"))
        assert live.notices_log[-1][1]["wait"] == "30" and delay == 0.0
        assert batch is not None and batch.notices[0].strike == 1
    finally:
        follower.stop()


def test_follower_drops_a_rejected_cursor_and_delivers_each_notice_once(
    live: LiveApi, caplog: pytest.LogCaptureFixture
) -> None:
    first = live.strike("alice")
    follower = make_follower(live.url)
    try:
        follower.poll_once()
        follower.cursor = "not-a-cursor"  # as if another API had issued it
        missed = live.strike("alice")
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            batch, delay = follower.poll_once()
        assert batch is None and 0 < delay <= follower.backoff_initial
        assert follower.cursor is None
        assert "rejected" in caplog.text and live.notices_requests()[-1].answer_json()["error"] in caplog.text

        batch, delay = follower.poll_once()
        assert live.notices_log[-1] == ("alice", {})  # read again from the start
        # Both notices came back; only the one not delivered before is new.
        assert batch is not None and [n.id for n in batch.notices] == [missed["id"]]
        assert batch.backlog is False and delay == 0.0
        assert first["id"] != missed["id"] and follower.cursor == live.moderation.notices.cursor({})
    finally:
        follower.stop()


def test_follower_carries_on_after_an_api_restart(live: LiveApi) -> None:
    """A cursor from before a restart names positions in Kafka: the restarted API answers only what came
    after it; each notice is delivered once."""
    live.strike("alice")
    follower = make_follower(live.url)
    try:
        follower.poll_once()
        live.restart()
        missed = live.strike("alice")
        batch, delay = follower.poll_once()
        assert delay == 0.0 and batch is not None
        assert [n.id for n in batch.notices] == [missed["id"]] and not batch.backlog
        assert [n["id"] for n in live.notices_requests()[-1].answer_json()["notices"]] == [missed["id"]]
    finally:
        follower.stop()


def test_follower_backs_off_on_errors(live: LiveApi, caplog: pytest.LogCaptureFixture) -> None:
    live.strike("alice")
    live.fail_next(live.moderation.notices, "read", 3)
    follower = make_follower(live.url, backoff_initial=1.0, backoff_max=2.0)
    try:
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            results = [follower.poll_once() for _ in range(3)]
        assert results == [(None, 1.0), (None, 2.0), (None, 2.0)]
        assert "HTTP 500" in caplog.text and live.notices_requests()[-1].answer_json()["error"] in caplog.text
        batch, delay = follower.poll_once()  # recovered: the backlog, still
        assert batch is not None and batch.backlog and delay == 0.0
    finally:
        follower.stop()


def test_follower_survives_malformed_and_unreachable(double: tuple[Double, str]) -> None:
    fake, url = double
    body = {"author": "alice", "notices": {"not": "a list"}}
    fake.answer("GET", "/users/<author>/notices", Answer(200, body, conforms=False))
    for base in (url, f"http://127.0.0.1:{free_port()}"):
        follower = make_follower(base, backoff_initial=0.5)
        try:
            assert follower.poll_once() == (None, 0.5)
            assert follower.poll_once() == (None, 1.0)
            assert follower.cursor is None
        finally:
            follower.stop()


@pytest.mark.parametrize("author", AWKWARD_NAMES)
def test_follower_thread_delivers_notices_for_awkward_names(live: LiveApi, author: str) -> None:
    live.strike(author)
    live.strike("someone else")
    batches: list[NoticeBatch] = []
    threads: set[str] = set()

    def on_batch(batch: NoticeBatch) -> None:
        threads.add(threading.current_thread().name)
        batches.append(batch)

    follower = make_follower(live.url, author, on_batch=on_batch)
    follower.start()
    try:
        wait_until(lambda: len(batches) == 1)
        live.strike(author)
        wait_until(lambda: len(batches) == 2)
        assert [(b.backlog, [n.strike for n in b.notices]) for b in batches] == [(True, [1]), (False, [2])]
        assert all(n.author == author for b in batches for n in b.notices)
        assert {a for a, _ in live.notices_log} == {author}
        for uri in live.user_uris:
            assert_one_segment(uri.partition("?")[0], "/users/", "/notices", author)
        assert threads == {"chat-notices"}
    finally:
        follower.stop()
    live.strike(author)  # ends the long-poll in flight: the stopped follower delivers nothing more
    wait_until(lambda: not follower.running)
    assert len(batches) == 2


def test_follower_stop_does_not_wait_for_the_long_poll(live: LiveApi) -> None:
    batches: list[NoticeBatch] = []
    follower = make_follower(live.url, wait=30, on_batch=batches.append)
    follower.start()
    wait_until(lambda: any("after" in q for _, q in live.notices_log))
    follower.stop()
    assert follower.running  # stop() returned while the thread is still in its long-poll...
    live.strike("alice")  # ...which a notice ends: it is not delivered, and the thread ends
    wait_until(lambda: not follower.running)
    assert batches == []
    with pytest.raises(RuntimeError):
        follower.start()
