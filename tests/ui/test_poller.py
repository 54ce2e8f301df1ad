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
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import uvicorn

from api.asgi import ChatAsgi
from config import contract
from stack.broker import free_port
from tests.ui.live_api import Answer, Double, LiveApi, schema_errors, wait_until
from tests.ui.samples import AWKWARD_NAMES
from tests.ui.test_client import joined
from ui.client import ChatSession
from ui.models import FeedMessage, FeedStatus, MessageStore, Notice, NoticeBatch
from ui.poller import FeedPoller, LongPoller, NoticeStream

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


def test_with_guest_names_off_the_feed_reads_with_the_reader_token_and_renews_with_it(live: LiveApi, accounts) -> None:
    live.app.config["READER_TOKEN"] = "reader-credential-of-the-test-0123456789"
    live.say("alice", "first")
    without = make_poller(live.url)
    try:
        without.poll_once()
        assert data(without) == [] and not without.status().connected  # refused: no guests, no credential
    finally:
        without.stop(0)
    poller = make_poller(live.url, reader_token="reader-credential-of-the-test-0123456789")
    try:
        assert poller.poll_once() == (1, 0.0)
        assert data(poller) == ["first"] and poller.status().connected
        stale = poller.session.token
        ended = requests.delete(f"{live.url}/sessions", headers={"Authorization": f"Bearer {stale}"}, timeout=10)
        assert ended.status_code == 204  # as if it had expired
        poller.session.renew(stale)  # an expired reader session is opened again with the credential
        assert poller.session.token != stale and not poller.session.signed_in
    finally:
        poller.stop(0)


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


# -- the notice stream --------------------------------------------------------------------------


def make_stream(url: str, **kwargs: Any) -> NoticeStream:
    options: dict[str, Any] = {"wait": 1, "backoff_initial": 1.0, "backoff_max": 8.0}
    options.update(kwargs)
    return NoticeStream(url, **options)


def follow(stream: NoticeStream, session: ChatSession) -> list[NoticeBatch]:
    """Follow ``session``'s user; the list their batches go to."""
    batches: list[NoticeBatch] = []
    stream.follow(session, batches.append)
    return batches


def delivered(stream: NoticeStream) -> dict[str, list[NoticeBatch]]:
    """One ``poll_once``, delivered as the thread would: each author's batches."""
    result, delay = stream.poll_once()
    assert delay == 0.0
    stream.deliver(result)
    return {followed.author: [batch] for followed, batch in result or ()}


def test_stream_reads_the_backlog_then_long_polls_with_the_cursor(live: LiveApi) -> None:
    first = live.strike("alice")
    live.strike("bob")
    alice = joined(live.url, "alice")
    stream = make_stream(live.url)
    board = live.moderation.notices
    try:
        batches = follow(stream, alice)
        result, delay = stream.poll_once()
        assert delay == 0.0
        assert live.notices_log[-1] == {"tokens": [alice.token]}  # no cursor, no wait: returns at once
        assert result is not None and len(result) == 1
        followed, batch = result[0]
        assert followed.author == "alice" and batch.backlog is True
        assert batch.notices == (Notice.from_json(first),)
        head = board.cursor({})  # the board's cursor past everything it has read
        assert stream.cursor == head

        stream.deliver(result)
        second = live.strike("alice")
        assert delivered(stream) == {"alice": [NoticeBatch((Notice.from_json(second),), backlog=False)]}  # type: ignore[arg-type]
        assert live.notices_log[-1] == {"tokens": [alice.token], "after": head, "wait": 1}
        assert stream.cursor == board.cursor({}) != head
        assert [b.backlog for b in batches] == [True, False]

        # Nothing new (bob's strike is not alice's): the long-poll times out.
        live.strike("bob")
        assert stream.poll_once() == (None, 0.0)
        assert stream.cursor == board.cursor({})
        assert live.session_log == [("open", "alice")]  # the join's session, no other
    finally:
        stream.stop()


def test_stream_reads_every_followed_user_in_one_request(live: LiveApi) -> None:
    sessions = {name: joined(live.url, name) for name in ("alice", "bob", "carol")}
    stream = make_stream(live.url)
    try:
        batches = {name: follow(stream, session) for name, session in sessions.items()}
        stream.deliver(stream.poll_once()[0])  # the (empty) backlogs
        struck = {name: live.strike(name) for name in ("alice", "bob", "someone else")}
        result, _ = stream.poll_once()
        stream.deliver(result)
        assert live.notices_log[-1]["tokens"] == [s.token for s in sessions.values()]
        assert len(live.notices_requests()) == 2
        assert {name: [n.id for b in got for n in b.notices] for name, got in batches.items()} == {
            "alice": [struck["alice"]["id"]],
            "bob": [struck["bob"]["id"]],
            "carol": [],
        }
        assert all(not b.backlog for got in batches.values() for b in got)
    finally:
        stream.stop()


def test_stream_backlog_may_be_empty(live: LiveApi) -> None:
    stream = make_stream(live.url)
    try:
        follow(stream, joined(live.url, "alice"))
        assert stream.poll_once() == (None, 0.0)
        live.strike("alice")
        result, _ = stream.poll_once()
        assert result is not None and result[0][1].backlog is False  # arrived after following started
    finally:
        stream.stop()


def test_stream_without_users_sends_nothing(live: LiveApi) -> None:
    stream = make_stream(live.url)
    alice = joined(live.url, "alice")
    try:
        assert stream.poll_once() == (None, 0.0)
        followed = stream.follow(alice, lambda batch: None)
        stream.poll_once()
        stream.unfollow(followed)
        live.strike("alice")
        assert stream.poll_once() == (None, 0.0)
        assert len(live.notices_requests()) == 1
    finally:
        stream.stop()


def test_stream_long_poll_brings_a_notice_that_arrives_while_it_waits(live: LiveApi) -> None:
    stream = make_stream(live.url, wait=30)
    try:
        follow(stream, joined(live.url, "alice"))
        stream.poll_once()
        result, delay = poll_while(stream, lambda: len(live.notices_log) == 2, lambda: live.strike("alice"))
        assert live.notices_log[-1]["wait"] == 30 and delay == 0.0
        assert result is not None and result[0][1].notices[0].strike == 1
    finally:
        stream.stop()


def test_following_someone_cuts_the_long_poll_in_flight(live: LiveApi) -> None:
    """A newcomer need not wait for the others' long-poll to end: it is cut, and the next request, without a
    cursor, brings their backlog; nobody is told a notice twice."""
    live.strike("alice")
    bob_backlog = live.strike("bob")
    stream = make_stream(live.url, wait=30)
    stream.start()
    try:
        alice = follow(stream, joined(live.url, "alice"))
        wait_until(lambda: any("wait" in body for body in live.notices_log))
        waiting = live.notices_requests()[-1]
        bob = follow(stream, joined(live.url, "bob"))
        wait_until(lambda: len(bob) == 1)
        assert waiting.status is None  # the API is still holding the long-poll that was cut
        assert bob == [NoticeBatch((Notice.from_json(bob_backlog),), backlog=True)]  # type: ignore[arg-type]
        requests = live.notices_requests()
        after_cut = requests[requests.index(waiting) + 1].json()
        assert "after" not in after_cut and len(after_cut["tokens"]) == 2

        live.strike("bob")
        live.strike("alice")
        wait_until(lambda: len(bob) == 2 and len(alice) == 2)
        assert [b.backlog for b in alice] == [True, False] and [b.backlog for b in bob] == [True, False]
        assert [n.strike for b in alice for n in b.notices] == [1, 2]
    finally:
        stream.stop()
        live.release()  # end the long-polls the API still holds


def test_stream_renews_an_expired_session_and_delivers_what_was_missed(live: LiveApi) -> None:
    alice = joined(live.url, "alice")
    old = alice.token
    stream = make_stream(live.url)
    try:
        batches = follow(stream, alice)
        stream.poll_once()
        live.expire("alice")
        missed = live.strike("alice")
        assert stream.poll_once() == (None, 0.0)  # refused: renewed, and read again from the start
        assert live.notices_requests()[-1].answer_json()["refused"] == [0]
        stream.deliver(stream.poll_once()[0])
        (new,) = live.tokens_of("alice")
        assert [body["tokens"] for body in live.notices_log] == [[old], [old], [new]]
        assert "after" not in live.notices_log[-1]
        assert [(b.backlog, [n.id for n in b.notices]) for b in batches] == [(False, [missed["id"]])]
    finally:
        stream.stop()


def test_stream_stops_following_a_user_whose_name_is_taken(live: LiveApi, caplog: pytest.LogCaptureFixture) -> None:
    alice, bob = joined(live.url, "alice"), joined(live.url, "bob")
    stream = make_stream(live.url)
    try:
        alice_batches, bob_batches = follow(stream, alice), follow(stream, bob)
        stream.poll_once()
        live.expire("alice")
        live.open_session("alice")  # someone else is alice now
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            stream.poll_once()
        assert "no longer followed" in caplog.text and "in use by someone else" in caplog.text
        assert [f.author for f in stream.followed] == ["bob"]
        assert len(live.tokens_of("alice")) == 1  # the other person's session only
        live.strike("alice")  # theirs: never reaches the user who lost the name
        live.strike("bob")
        stream.deliver(stream.poll_once()[0])
        assert live.notices_log[-1]["tokens"] == [bob.token]
        assert alice_batches == [] and [n.author for b in bob_batches for n in b.notices] == ["bob"]
    finally:
        stream.stop()


def test_stream_drops_a_rejected_cursor_and_delivers_each_notice_once(
    live: LiveApi, caplog: pytest.LogCaptureFixture
) -> None:
    first = live.strike("alice")
    stream = make_stream(live.url)
    try:
        follow(stream, joined(live.url, "alice"))
        stream.poll_once()
        stream.cursor = "not-a-cursor"  # as if another API had issued it
        missed = live.strike("alice")
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            result, delay = stream.poll_once()
        assert result is None and 0 < delay <= stream.backoff_initial
        assert stream.cursor is None
        assert "rejected" in caplog.text and live.notices_requests()[-1].answer_json()["error"] in caplog.text

        result, delay = stream.poll_once()
        assert "after" not in live.notices_log[-1]  # read again from the start
        # Both notices came back; only the one not delivered before is new.
        assert result is not None and [n.id for n in result[0][1].notices] == [missed["id"]]
        assert result[0][1].backlog is False and delay == 0.0
        assert first["id"] != missed["id"] and stream.cursor == live.moderation.notices.cursor({})
    finally:
        stream.stop()


def test_stream_carries_on_after_an_api_restart(live: LiveApi) -> None:
    """A cursor from before a restart names positions in Kafka: the restarted API answers only what came
    after it; each notice is delivered once."""
    live.strike("alice")
    stream = make_stream(live.url)
    try:
        follow(stream, joined(live.url, "alice"))
        stream.poll_once()
        live.restart()
        missed = live.strike("alice")
        result, delay = stream.poll_once()
        assert delay == 0.0 and result is not None
        assert [n.id for n in result[0][1].notices] == [missed["id"]] and not result[0][1].backlog
        assert [n["id"] for n in live.notices_requests()[-1].answer_json()["notices"]] == [missed["id"]]
    finally:
        stream.stop()


def test_stream_backs_off_on_errors(live: LiveApi, caplog: pytest.LogCaptureFixture) -> None:
    live.strike("alice")
    live.fail_next(live.moderation.notices, "read_many", 3)
    stream = make_stream(live.url, backoff_initial=1.0, backoff_max=2.0)
    try:
        follow(stream, joined(live.url, "alice"))
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            results = [stream.poll_once() for _ in range(3)]
        assert results == [(None, 1.0), (None, 2.0), (None, 2.0)]
        assert "HTTP 500" in caplog.text and live.notices_requests()[-1].answer_json()["error"] in caplog.text
        result, delay = stream.poll_once()  # recovered: the backlog, still
        assert result is not None and result[0][1].backlog and delay == 0.0
    finally:
        stream.stop()


def test_stream_survives_malformed_and_unreachable(double: tuple[Double, str]) -> None:
    fake, url = double
    body = {"notices": {"not": "a list"}, "cursor": "c", "authors": [], "refused": []}
    fake.answer("POST", "/notices/poll", Answer(200, body, conforms=False))
    for base in (url, f"http://127.0.0.1:{free_port()}"):
        stream = make_stream(base, backoff_initial=0.5)
        try:
            follow(stream, joined(url, "alice"))
            assert stream.poll_once() == (None, 0.5)
            assert stream.poll_once() == (None, 1.0)
            assert stream.cursor is None
        finally:
            stream.stop()


@pytest.mark.parametrize("author", AWKWARD_NAMES)
def test_stream_thread_delivers_notices_for_awkward_names(live: LiveApi, author: str) -> None:
    live.strike(author)
    live.strike("someone else")
    batches: list[NoticeBatch] = []
    threads: set[str] = set()

    def on_batch(batch: NoticeBatch) -> None:
        threads.add(threading.current_thread().name)
        batches.append(batch)

    stream = make_stream(live.url)
    stream.follow(joined(live.url, author), on_batch)
    stream.start()
    try:
        wait_until(lambda: len(batches) == 1)
        live.strike(author)
        wait_until(lambda: len(batches) == 2)
        assert [(b.backlog, [n.strike for n in b.notices]) for b in batches] == [(True, [1]), (False, [2])]
        assert all(n.author == author for b in batches for n in b.notices)
        assert threads == {"chat-notices"}
    finally:
        stream.stop()
    live.strike(author)  # the stopped stream delivers nothing more
    wait_until(lambda: not stream.running)
    assert len(batches) == 2


def test_stream_stop_cuts_the_long_poll(live: LiveApi) -> None:
    batches: list[NoticeBatch] = []
    stream = make_stream(live.url, wait=30)
    stream.follow(joined(live.url, "alice"), batches.append)
    stream.start()
    wait_until(lambda: any("wait" in body for body in live.notices_log))
    stream.stop()
    wait_until(lambda: not stream.running)  # the thread ended without waiting for the API's answer...
    assert live.notices_requests()[-1].status is None  # ...which it is still holding
    live.strike("alice")
    live.release()
    assert batches == []
    with pytest.raises(RuntimeError):
        stream.start()


def test_stream_follows_at_most_what_one_request_carries(live: LiveApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(contract, "MAX_POLL_TOKENS", 2)
    stream = make_stream(live.url)
    try:
        first = [stream.follow(ChatSession(live.url, name), lambda batch: None) for name in ("a", "b")]
        with pytest.raises(RuntimeError, match="at most 2"):
            stream.follow(ChatSession(live.url, "c"), lambda batch: None)
        stream.unfollow(first[0])
        stream.follow(ChatSession(live.url, "c"), lambda batch: None)
        assert [f.author for f in stream.followed] == ["b", "c"]
    finally:
        stream.stop()


def test_the_asgi_api_holds_one_long_poll_for_the_stream(tmp_path: Path) -> None:
    """Served as in production (the long-polls on uvicorn's event loop): a cut long-poll ends at once on the
    API too, so a UI process holds one however many users join, and none once stopped."""
    live = LiveApi(tmp_path / "api")
    asgi = ChatAsgi(live.app)
    server = uvicorn.Server(uvicorn.Config(asgi, host="127.0.0.1", port=free_port(), log_level="warning"))
    serving = threading.Thread(target=server.run, name="test-asgi", daemon=True)
    serving.start()
    wait_until(lambda: server.started)
    live.url = f"http://127.0.0.1:{server.config.port}"
    holding = lambda: sum(asgi.polls_by_client.values())  # noqa: E731
    stream = make_stream(live.url, wait=30)
    stream.start()
    try:
        batches = {name: follow(stream, joined(live.url, name)) for name in ("alice",)}
        wait_until(lambda: holding() == 1)
        for name in ("bob", "carol"):
            live.strike(name)
            batches[name] = follow(stream, joined(live.url, name))
            wait_until(lambda: len(batches[name]) == 1)  # noqa: B023
            wait_until(lambda: stream.cursor is not None and holding() == 1)
            assert holding() == 1
        live.strike("alice")
        wait_until(lambda: len(batches["alice"]) == 1)
        assert [[b.backlog for b in got] for got in batches.values()] == [[False], [True], [True]]
    finally:
        stream.stop()
        wait_until(lambda: not stream.running and holding() == 0)
        live.release()
        server.should_exit = True
        serving.join()


def test_stream_backs_off_while_a_refused_session_cannot_be_renewed(
    live: LiveApi, caplog: pytest.LogCaptureFixture
) -> None:
    alice = joined(live.url, "alice")
    stream = make_stream(live.url, backoff_initial=1.0, backoff_max=2.0)
    try:
        batches = follow(stream, alice)
        stream.poll_once()
        live.expire("alice")
        live.fail_next(live.app.extensions["chat_auth"], "issue", 2)  # POST /sessions answers 500, twice
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            assert [stream.poll_once() for _ in range(2)] == [(None, 1.0), (None, 2.0)]
        assert "cannot renew the session" in caplog.text
        missed = live.strike("alice")
        stream.deliver(stream.poll_once()[0])  # renewed now: read again from the start
        stream.deliver(stream.poll_once()[0])
        assert [n.id for b in batches for n in b.notices] == [missed["id"]]
        assert [f.author for f in stream.followed] == ["alice"]
    finally:
        stream.stop()
