"""ui/models.py: the message store, parsing the API's JSON, and the fold of a user's Standing."""

from __future__ import annotations

import threading
from typing import Any, get_args

import pytest

from config import contract
from tests.ui.samples import msg, notice
from ui.models import (
    PASSWORD_MIN_CHARS,
    ChatSettings,
    FeedMessage,
    FeedStatus,
    MessageStore,
    Notice,
    NoticeKind,
    Standing,
    UserRecord,
)

LIMIT = contract.STRIKE_LIMIT

# -- the message store ---------------------------------------------------------------------


def test_store_deduplicates_by_id() -> None:
    store = MessageStore()
    assert store.add([msg(1), msg(2)]) == 2
    assert store.add([msg(2), msg(3), msg(1), msg(3)]) == 1
    assert [m.id for m in store.messages()] == ["m1", "m2", "m3"]
    assert store.version() == 3


def test_store_is_bounded_and_remembers_evicted_ids() -> None:
    store = MessageStore(limit=5)
    store.add(msg(i) for i in range(1, 9))
    assert len(store) == 5 and store.limit == 5
    assert [m.id for m in store.messages()] == ["m4", "m5", "m6", "m7", "m8"]
    # An id that already fell out of the window is still a duplicate.
    assert store.add([msg(1)]) == 0
    assert store.version() == 8
    with pytest.raises(ValueError):
        MessageStore(limit=0)


def test_store_since_returns_only_newer_messages() -> None:
    store = MessageStore(limit=3)
    assert store.since(0) == []
    store.add([msg(1), msg(2)])
    assert [(seq, m.id) for seq, m in store.since(0)] == [(1, "m1"), (2, "m2")]
    assert [m.id for _, m in store.since(1)] == ["m2"]
    store.add([msg(3), msg(4)])
    assert [(seq, m.id) for seq, m in store.since(1)] == [(2, "m2"), (3, "m3"), (4, "m4")]
    assert store.since(store.version()) == []


def test_store_is_thread_safe() -> None:
    store = MessageStore(limit=10_000)

    def writer(offset: int) -> None:
        store.add(msg(offset + i) for i in range(500))

    threads = [threading.Thread(target=writer, args=(k * 250,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Writers overlap by half: ids 0..1249 are each stored exactly once.
    assert len(store) == store.version() == 1250
    assert len({m.id for m in store.messages()}) == 1250


# -- the API's JSON --------------------------------------------------------------------------


def test_feed_message_from_json_rejects_malformed() -> None:
    good = {"id": "1", "author": "a", "data": "d", "timestamp": "t"}
    assert FeedMessage.from_json(good) == FeedMessage("1", "a", "d", "t")
    assert FeedMessage.from_json({**good, "id": ""}) is None
    assert FeedMessage.from_json({**good, "data": 5}) is None
    assert FeedMessage.from_json({k: v for k, v in good.items() if k != "author"}) is None
    assert FeedMessage.from_json(["not", "a", "dict"]) is None


def test_notice_from_json() -> None:
    good: dict[str, Any] = {
        "id": "n1",
        "author": "alice",
        "kind": "warning",
        "strike": 1,
        "limit": LIMIT,
        "terms": ["darn", 5],
        "message_id": "m1",
        "text": "careful",
        "timestamp": "t",
    }
    parsed = Notice.from_json(good)
    assert parsed == Notice("n1", "alice", "warning", 1, LIMIT, "careful", "t", ("darn",), "m1")
    assert parsed is not None and not parsed.blocked
    blocked = Notice.from_json({**good, "kind": "blocked", "strike": LIMIT})
    assert blocked is not None and blocked.blocked and not blocked.unblocked
    unblocked = Notice.from_json({**good, "kind": "unblocked", "strike": 0, "message_id": None})
    assert unblocked is not None and unblocked.unblocked and not unblocked.blocked
    assert (unblocked.kind, unblocked.strike, unblocked.message_id) == ("unblocked", 0, None)
    lenient = Notice.from_json({**good, "limit": None, "terms": None, "message_id": 7})
    assert lenient is not None
    assert (lenient.limit, lenient.terms, lenient.message_id) == (LIMIT, (), None)
    assert set(get_args(NoticeKind)) == set(contract.NOTICE_KINDS)  # the type names the contract's kinds
    for kind in contract.NOTICE_KINDS:  # and every kind of the contract is understood
        assert Notice.from_json({**good, "kind": kind}) is not None
    # A kind the UI does not know yet is kept (it is shown with the API's text), neither a block nor an unblock.
    future = Notice.from_json({**good, "kind": "appeal_rejected"})
    assert future is not None and future.kind == "appeal_rejected" and future.text == "careful"
    assert not future.blocked and not future.unblocked
    for broken in (
        {**good, "id": ""},
        {**good, "kind": ""},
        {**good, "kind": 5},
        {k: v for k, v in good.items() if k != "kind"},
        {**good, "strike": "1"},
        {**good, "strike": True},
        {**good, "text": None},
        {k: v for k, v in good.items() if k != "timestamp"},
        ["not", "a", "dict"],
    ):
        assert Notice.from_json(broken) is None


def test_user_record_from_json() -> None:
    assert UserRecord.from_json(
        {"author": "a", "strikes": 3, "is_blocked": True, "blocked_at": "t", "messages": 9}
    ) == UserRecord("a", 3, True, "t")
    minimal = {"author": "a", "strikes": 0, "is_blocked": False}
    assert UserRecord.from_json(minimal) == UserRecord("a")
    assert UserRecord.from_json({"author": "a", "strikes": -1, "is_blocked": False}) is None
    assert UserRecord.from_json({"author": "a", "strikes": 1, "is_blocked": "no"}) is None
    assert UserRecord.from_json(None) is None


def test_feed_status_is_connected_only_when_connected() -> None:
    assert FeedStatus("connected").connected
    for state in ("connecting", "unreachable", "malformed", "problem"):
        assert not FeedStatus(state).connected  # type: ignore[arg-type]


# -- the Standing fold ---------------------------------------------------------------------


def test_standing_strikes_and_warnings() -> None:
    standing = Standing()
    assert (standing.strikes, standing.blocked, standing.latest, standing.limit) == (0, False, None, LIMIT)
    assert standing.with_user(UserRecord("alice")) == standing  # 404: nothing known
    standing = standing.with_user(UserRecord("alice", strikes=1))
    assert standing.strikes == 1 and not standing.blocked and standing.latest is None
    second = notice(2, strike=2, text="second")
    standing = standing.with_notices([notice(1), second])
    assert standing.strikes == 2 and standing.latest == second and not standing.blocked
    # Strikes never go down (an old notice re-read, a stale record).
    assert standing.with_notice(notice(1)).strikes == 2
    assert standing.with_user(UserRecord("alice", strikes=1)).strikes == 2


def test_standing_blocked_by_a_notice() -> None:
    blocking = notice(3, "blocked", LIMIT)
    standing = Standing().with_notice(blocking)
    assert standing.blocked and standing.strikes == LIMIT
    assert (standing.block_notice, standing.reason_source) == (blocking, "notice")
    # A block is final, and the notice's explanation is the best one.
    assert standing.with_notice(notice(4)).blocked
    assert standing.with_refusal() == standing
    blocked_record = UserRecord("alice", LIMIT, True, "2024-05-01 12:00:00")
    assert standing.with_user(blocked_record) == standing


def test_standing_blocked_by_the_record_then_better_explained() -> None:
    record = UserRecord("alice", LIMIT, True, "2024-05-01 12:00:00")
    standing = Standing().with_user(record)
    assert standing.blocked and standing.reason_source == "record"
    assert (standing.blocked_at, standing.block_notice) == ("2024-05-01 12:00:00", None)
    # a record that lags behind the block still counts the user at the limit
    assert Standing().with_user(UserRecord("bob", 1, True)).strikes == LIMIT
    refused = standing.with_refusal()
    assert refused.blocked and refused.reason_source == "refusal"
    blocking = notice(3, "blocked", LIMIT, "blocked for darn")
    noticed = refused.with_notice(blocking)
    assert (noticed.block_notice, noticed.reason_source) == (blocking, "notice")


@pytest.mark.parametrize(
    "blocked",
    [
        Standing().with_notices([notice(1), notice(2, strike=2), notice(3, "blocked", LIMIT)]),
        Standing().with_user(UserRecord("alice", LIMIT, True, "2024-05-01 12:00:00")),
        Standing(strikes=1).with_refusal(),
    ],
    ids=["notice", "record", "refusal"],
)
def test_standing_unblocked_starts_again_from_no_strikes(blocked: Standing) -> None:
    assert blocked.blocked
    lifted = notice(4, "unblocked", 0)
    standing = blocked.with_notice(lifted)
    assert standing == Standing(strikes=0, limit=LIMIT, latest=lifted)  # no block, no reason
    # From there on, strikes count again from 1 and can block anew.
    standing = standing.with_notice(notice(5, strike=1))
    assert standing.strikes == 1 and not standing.blocked
    blocking = notice(6, "blocked", LIMIT, "blocked again")
    again = standing.with_notice(blocking)
    assert again.blocked and again.block_notice == blocking


def test_standing_folds_a_backlog_that_ends_in_an_unblock() -> None:
    backlog = [notice(1), notice(2, strike=2), notice(3, "blocked", LIMIT), notice(4, "unblocked", 0)]
    standing = Standing().with_user(UserRecord("alice")).with_notices(backlog)
    assert (standing.strikes, standing.blocked) == (0, False)
    assert Standing().with_notices(backlog[:3]).blocked  # order matters: the newest decides


def test_standing_blocked_by_a_refusal() -> None:
    standing = Standing(strikes=1).with_refusal()
    assert standing.blocked and standing.strikes == LIMIT
    assert (standing.reason_source, standing.block_notice, standing.blocked_at) == ("refusal", None, None)


def test_standing_takes_a_notice_of_an_unknown_kind_as_news_only() -> None:
    warned = Standing().with_notice(notice(1))
    future = Notice("n9", "alice", "appeal_rejected", 1, LIMIT, "Your appeal was rejected.", "2024-05-01 12:03:04")
    standing = warned.with_notice(future)
    assert (standing.strikes, standing.blocked, standing.latest) == (1, False, future)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"slow_mode_s": 30, "slow_mode_since": "x", "rate_limit": {"messages": 5, "window_s": 5}}, (30, 5, 5.0)),
        ({"slow_mode_s": 0, "slow_mode_since": None, "rate_limit": {"messages": 1, "window_s": 0.5}}, (0, 1, 0.5)),
        ({"slow_mode_s": -1, "rate_limit": {"messages": 5, "window_s": 5}}, None),
        ({"slow_mode_s": True, "rate_limit": {"messages": 5, "window_s": 5}}, None),
        ({"slow_mode_s": "30", "rate_limit": {"messages": 5, "window_s": 5}}, None),
        ({"slow_mode_s": 30, "rate_limit": {"messages": 5, "window_s": "5"}}, None),
        ({"slow_mode_s": 30, "rate_limit": {"messages": 5, "window_s": False}}, None),
        ({"slow_mode_s": 30}, None),
        ([], None),
        (None, None),
    ],
)
def test_chat_settings_from_the_apis_json(body: object, expected: tuple[int, int, float] | None) -> None:
    settings = ChatSettings.from_json(body)
    assert (None if settings is None else (settings.slow_mode_s, settings.rate_messages, settings.rate_window_s)) == (
        expected
    )


RATE = {"slow_mode_s": 0, "rate_limit": {"messages": 5, "window_s": 5}}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, (True, PASSWORD_MIN_CHARS)),  # an API without accounts: only guests can join
        ({"guest_names": False, "password_min_chars": 12}, (False, 12)),
        ({"guest_names": True}, (True, PASSWORD_MIN_CHARS)),
        ({"guest_names": "false"}, None),
        ({"guest_names": None}, None),
        ({"guest_names": False, "password_min_chars": 0}, None),
        ({"guest_names": False, "password_min_chars": True}, None),
        ({"guest_names": False, "password_min_chars": 10.5}, None),
        ({"guest_names": False, "password_min_chars": 257}, None),
    ],
)
def test_chat_settings_say_how_people_join(extra: dict[str, object], expected: tuple[bool, int] | None) -> None:
    settings = ChatSettings.from_json({**RATE, **extra})
    assert (None if settings is None else (settings.guest_names, settings.password_min_chars)) == expected


def test_before_the_api_has_said_the_ui_does_not_know_how_people_join() -> None:
    assert ChatSettings().guest_names is None
