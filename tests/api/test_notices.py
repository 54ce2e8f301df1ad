"""api/notices.py: the notices board and the blocked-status overlay (no broker: records fed by hand)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from api.feed import BadCursor, Feed, FeedMessage
from api.notices import UNANNOUNCED_HORIZON_S, Moderation, NoticeBoard
from config import contract
from warehouse.moderation_snapshot import ModerationSnapshot, UserState


def notice(author, kind, strike, message_id=None, offset=None, batch=None, terms=None) -> bytes:
    """A notice as the ledger publishes it on `chat_notices`: the fields the API serves, the text the user
    reads (both from config.contract, in English), where the message that caused it sits in `chat`, and its
    batch; `terms` default to one word for a strike, none otherwise."""
    if terms is None:
        terms = ["mierda"] if message_id else []
    body = {
        "id": f"{message_id}:strike" if message_id else f"{author}:{kind}:{strike}:{batch}",
        "author": author,
        "kind": kind,
        "strike": strike,
        "limit": contract.STRIKE_LIMIT,
        "terms": terms,
        "message_id": message_id,
        "text": contract.notice_text(kind, strike, contract.STRIKE_LIMIT, terms)
        if kind in contract.NOTICE_KINDS
        else kind,
        "timestamp": "2026-11-27 10:00:00",
        "partition": 0,
        "offset": offset,
    }
    if batch is not None:
        body["batch"] = batch
    assert set(contract.NOTICE_FIELDS) <= set(body)
    return json.dumps(body).encode()


def test_notices_are_kept_per_author_once_each_with_cursors():
    board = NoticeBoard()
    board.add_record(notice("ana", "warning", 1, "m1", 1), [])
    board.add_record(notice("ana", "warning", 1, "m1", 1), [])  # at-least-once delivery
    board.add_record(notice("bob", "warning", 1, "m2", 2), [])
    board.add_record(b"not json", [])
    board.add_record(notice("ana", "praise", 1, "m9", 9), [])  # not a kind of notice
    first, cursor = board.read("ana", None, 0)
    assert [n.as_json() for n in first] == [
        {k: v for k, v in json.loads(notice("ana", "warning", 1, "m1", 1)).items() if k in contract.NOTICE_FIELDS}
    ]
    assert first[0].as_json()["text"].startswith("Warning: strike 1 of 3 for mierda.")
    board.add_record(notice("ana", "warning", 2, "m3", 3), [])
    newer, _ = board.read("ana", board.parse_cursor(cursor), 0)
    assert [n.as_json()["strike"] for n in newer] == [2]
    assert board.read("carol", None, 0)[0] == []
    with pytest.raises(BadCursor):
        board.parse_cursor("nonsense")


def test_a_blocked_notice_blocks_before_the_snapshot_knows(tmp_path: Path):
    board = NoticeBoard()
    moderation = Moderation(ModerationSnapshot(tmp_path / "user_moderation"), board)
    assert moderation.state("ana") is None and not moderation.is_blocked("ana")
    board.add_record(notice("ana", "warning", 2, "m2", 5), [])
    assert (moderation.state("ana").strikes, moderation.is_blocked("ana")) == (2, False)
    board.add_record(notice("ana", "blocked", 3, "m3", 7), [])
    assert moderation.is_blocked("ana")
    assert moderation.blocked_refusal("ana").message == contract.blocked_error("ana", 3, "2026-11-27 10:00:00")
    assert "ana is blocked since 2026-11-27 10:00:00 UTC" in moderation.blocked_refusal("ana").message

    def message(offset):
        return FeedMessage(seq=offset, id=f"x{offset}", author="ana", data="d", timestamp="t", position=(0, offset))

    assert not moderation.is_withheld(message(7))  # the blocking message itself is served (masked)
    assert moderation.is_withheld(message(8))  # anything after it is not
    assert not moderation.is_withheld(FeedMessage(1, "y", "bob", "d", "t", (0, 9)))


class FixedSnapshot(ModerationSnapshot):
    def __init__(self, users):
        super().__init__(Path("unused"))
        self._users = users


def test_an_unblocked_notice_lifts_the_block_and_later_strikes_count_from_zero():
    board = NoticeBoard()
    moderation = Moderation(ModerationSnapshot(Path("unused")), board)
    for strike in (1, 2):
        board.add_record(notice("ana", "warning", strike, batch=4), [])
    board.add_record(notice("ana", "blocked", 3, offset=9, batch=4), [])
    assert moderation.is_blocked("ana")
    board.add_record(notice("ana", "unblocked", 0, batch=6), [])
    assert (moderation.state("ana").strikes, moderation.is_blocked("ana")) == (0, False)
    board.add_record(notice("ana", "warning", 2, batch=6), [])  # a strike of the unblock's own batch: before it
    assert moderation.state("ana").strikes == 0
    board.add_record(notice("ana", "warning", 1, batch=7), [])
    assert (moderation.state("ana").strikes, moderation.is_blocked("ana")) == (1, False)
    assert [n.body["kind"] for n in board.read("ana", None, 0)[0]] == [
        "warning",
        "warning",
        "blocked",
        "unblocked",
        "warning",
        "warning",
    ]


def test_the_newer_of_snapshot_and_notices_wins():
    board = NoticeBoard()
    board.add_record(notice("ana", "blocked", 3, offset=9, batch=4), [])
    board.add_record(notice("ana", "unblocked", 0, batch=6), [])
    stale = UserState(
        "ana",
        messages=5,
        strikes=3,
        is_blocked=True,
        blocked_at="2026-11-27 10:00:00",
        blocked_partition=0,
        blocked_offset=9,
        last_batch_id=4,
    )
    state = Moderation(FixedSnapshot({"ana": stale}), board).state("ana")
    assert (state.strikes, state.is_blocked, state.messages) == (0, False, 5)  # the notice is newer
    newer = UserState("ana", messages=9, strikes=1, is_blocked=False, last_batch_id=8)
    assert Moderation(FixedSnapshot({"ana": newer}), board).state("ana") == newer  # the snapshot is newer


def test_what_a_user_sent_while_blocked_stays_withheld_after_the_unblock():
    board = NoticeBoard()
    moderation = Moderation(ModerationSnapshot(Path("unused")), board)
    board.add_record(notice("ana", "blocked", 3, offset=9, batch=4), [])
    unblocked = json.loads(notice("ana", "unblocked", 0, batch=6))
    board.add_record(json.dumps({**unblocked, "until": {"0": 15}}).encode(), [])

    def message(offset):
        return FeedMessage(seq=offset, id=f"x{offset}", author="ana", data="d", timestamp="t", position=(0, offset))

    assert [o for o in (9, 10, 14, 15, 16) if moderation.is_withheld(message(o))] == [10, 14]
    assert not moderation.is_withheld(FeedMessage(1, "y", "bob", "d", "t", (0, 12)))


def served(feed: Feed, author: str, offset: int, profane: bool = True, sent: datetime | None = None) -> str:
    """A message as the relay publishes it on `chat_controlled`, added to the feed; returns its id."""
    message_id = f"{author}-{offset}"
    timestamp = (sent or datetime.now(UTC)).strftime(contract.TIMESTAMP_FORMAT)
    feed.add_record(
        json.dumps({"author": author, "data": "qué ******", "timestamp": timestamp}).encode(),
        [
            (contract.MESSAGE_ID_HEADER, message_id.encode()),
            (contract.CHAT_POSITION_HEADER, f"0:{offset}".encode()),
            (contract.PROFANE_HEADER, b"true" if profane else b"false"),
        ],
    )
    return message_id


@pytest.fixture
def live():
    """A feed and a notices board that has read its topic up to where it was when it started."""
    feed, board = Feed(), NoticeBoard()
    board.caught_up = True
    return feed, board, Moderation(FixedSnapshot({}), board, feed)


def test_the_third_profane_message_blocks_before_the_ledger_announces_it(live):
    feed, board, moderation = live
    served(feed, "ana", 1, profane=False)
    first = served(feed, "ana", 2)
    assert (moderation.state("ana").strikes, moderation.is_blocked("ana")) == (1, False)
    board.add_record(notice("ana", "warning", 1, first, 2, batch=1), [])  # the ledger confirms it
    assert moderation.state("ana").strikes == 1  # counted once, not twice
    served(feed, "ana", 3)
    third = served(feed, "ana", 5)
    served(feed, "bob", 6)
    state = moderation.state("ana")
    assert (state.strikes, state.is_blocked, state.blocked_offset) == (3, True, 5)
    assert "ana is blocked since" in moderation.blocked_refusal("ana").message
    assert not moderation.is_blocked("bob") and moderation.state("bob").strikes == 1

    def message(offset, author="ana"):
        return FeedMessage(seq=offset, id=f"x{offset}", author=author, data="d", timestamp="t", position=(0, offset))

    assert not moderation.is_withheld(message(5)) and moderation.is_withheld(message(7))
    # the ledger's notices for the same messages: the same block, counted once
    board.add_record(notice("ana", "warning", 2, "ana-3", 3, batch=2), [])
    board.add_record(notice("ana", "blocked", 3, third, 5, batch=2), [])
    assert moderation.state("ana") == UserState(
        "ana",
        messages=0,
        strikes=3,
        is_blocked=True,
        blocked_at="2026-11-27 10:00:00",
        blocked_partition=0,
        blocked_offset=5,
    )


def test_unannounced_strikes_wait_until_the_notices_topic_has_been_read(live):
    feed, board, moderation = live
    board.caught_up = False  # the ledger's notices for these may be further down the topic
    for offset in (1, 2, 3):
        served(feed, "ana", offset)
    assert moderation.state("ana") is None and not moderation.is_blocked("ana")
    board.caught_up = True
    assert moderation.is_blocked("ana")


def test_old_or_lifted_profanity_is_left_to_the_ledger(live):
    feed, board, moderation = live
    long_ago = datetime.now(UTC) - timedelta(seconds=UNANNOUNCED_HORIZON_S + 60)
    for offset in (1, 2, 3):
        served(feed, "old", offset, sent=long_ago)  # never announced: the ledger did not count them
    assert moderation.state("old") is None
    # ana was blocked at offset 9 and unblocked when `chat` ended at 15: what she sent up to then,
    # withheld by the ledger, is no strike to come
    board.add_record(notice("ana", "blocked", 3, offset=9, batch=4), [])
    unblocked = json.loads(notice("ana", "unblocked", 0, batch=6))
    board.add_record(json.dumps({**unblocked, "until": {"0": 15}}).encode(), [])
    for offset in (10, 12, 14):
        served(feed, "ana", offset)
    assert (moderation.state("ana").strikes, moderation.is_blocked("ana")) == (0, False)
    served(feed, "ana", 16)
    assert (moderation.state("ana").strikes, moderation.is_blocked("ana")) == (1, False)


def test_the_ledgers_later_word_wins_over_unannounced_strikes(live):
    feed, board, moderation = live
    for offset in (1, 2, 3):
        served(feed, "ana", offset)
    assert moderation.is_blocked("ana")
    # a moderator's unblock, applied by the ledger after those three messages
    for strike, offset in ((1, 1), (2, 2)):
        board.add_record(notice("ana", "warning", strike, f"ana-{offset}", offset, batch=3), [])
    board.add_record(notice("ana", "blocked", 3, "ana-3", 3, batch=3), [])
    unblocked = json.loads(notice("ana", "unblocked", 0, batch=3))
    board.add_record(json.dumps({**unblocked, "until": {"0": 4}}).encode(), [])
    assert (moderation.state("ana").strikes, moderation.is_blocked("ana")) == (0, False)


# -- told at once from the relay's verdict, and what the ledger says later -------------------------------


def served_with_terms(feed: Feed, author: str, offset: int, terms=("mierda",)) -> str:
    """A profane message as the relay publishes it, with its verdict's terms, added to the feed."""
    message_id = f"{author}-{offset}"
    feed.add_record(
        json.dumps(
            {"author": author, "data": "qué ******", "timestamp": datetime.now(UTC).strftime(contract.TIMESTAMP_FORMAT)}
        ).encode(),
        [
            (contract.MESSAGE_ID_HEADER, message_id.encode()),
            (contract.CHAT_POSITION_HEADER, f"0:{offset}".encode()),
            (contract.PROFANE_HEADER, b"true"),
            (contract.TERMS_HEADER, json.dumps(list(terms)).encode()),
        ],
        offset=offset,
    )
    return message_id


@pytest.fixture
def told(live):
    """The feed tells the moderation of each record, as init_app wires them."""
    feed, board, moderation = live
    feed.on_record = moderation.on_feed_record
    return feed, board, moderation


def ledger_says(board: NoticeBoard, told_body: dict, batch: int, **changes) -> None:
    """The ledger's notice for the same message (what the user was told, unless `changes` say otherwise)."""
    body = {**told_body, "batch": batch, **changes}
    if "strike" in changes or "kind" in changes:
        body["text"] = contract.notice_text(body["kind"], body["strike"], contract.STRIKE_LIMIT, body["terms"])
    board.add_record(json.dumps(body).encode(), [])


def test_with_the_ledger_down_the_sender_is_warned_and_blocked_at_once_and_the_ledger_agrees_later(told):
    feed, board, moderation = told
    ids = [served_with_terms(feed, "ana", offset) for offset in (10, 11, 12)]
    notices, cursor = board.read("ana", None, 0)
    assert [(n.body["id"], n.body["kind"], n.body["strike"]) for n in notices] == [
        (f"{ids[0]}:strike", "warning", 1),
        (f"{ids[1]}:strike", "warning", 2),
        (f"{ids[2]}:strike", "blocked", 3),
    ]
    assert notices[2].as_json()["text"] == contract.notice_text("blocked", 3, contract.STRIKE_LIMIT, ["mierda"])
    assert moderation.is_blocked("ana")
    served_with_terms(feed, "ana", 13)  # sent after the block: withheld, no strike, nothing to tell
    assert board.read("ana", board.parse_cursor(cursor), 0)[0] == []
    # the ledger catches up: the same notices, nothing new for the user, the same standing
    for notice in notices:
        ledger_says(board, notice.body, batch=7)
    assert board.read("ana", board.parse_cursor(cursor), 0)[0] == []
    assert [n.body["id"] for n in board.read("ana", None, 0)[0]] == [n.body["id"] for n in notices]
    state = moderation.state("ana")
    assert (state.strikes, state.is_blocked, state.blocked_offset) == (3, True, 12)


def test_when_the_ledger_disagrees_its_notice_is_told_under_the_same_id(told):
    feed, board, _ = told
    first = served_with_terms(feed, "bob", 20)
    [instant], cursor = board.read("bob", None, 0)
    assert (instant.body["strike"], instant.body["kind"]) == (1, "warning")
    # the ledger counted a strike the API never saw (an older message): strike 2, not 1
    ledger_says(board, instant.body, batch=3, strike=2)
    [correction], _ = board.read("bob", board.parse_cursor(cursor), 0)
    assert correction.body["id"] == f"{first}:strike" and correction.body["strike"] == 2
    assert correction.as_json()["text"].startswith("Warning: strike 2 of 3")


def test_duplicate_out_of_order_and_unknown_users_notices(told):
    feed, board, moderation = told
    body = {
        "id": "x1:strike",
        "author": "ghost",  # nobody the API has seen: kept and served like anyone's
        "kind": "warning",
        "strike": 2,
        "limit": contract.STRIKE_LIMIT,
        "terms": ["mierda"],
        "message_id": "x1",
        "text": contract.notice_text("warning", 2, contract.STRIKE_LIMIT, ["mierda"]),
        "timestamp": "2026-12-01 10:00:00",
        "batch": 5,
    }
    board.add_record(json.dumps(body).encode(), [])
    board.add_record(json.dumps(body).encode(), [])  # redelivered
    earlier = {**body, "id": "x0:strike", "message_id": "x0", "strike": 1, "batch": 4}
    earlier["text"] = contract.notice_text("warning", 1, contract.STRIKE_LIMIT, ["mierda"])
    board.add_record(json.dumps(earlier).encode(), [])  # out of order: an older batch's strike after a newer one
    assert [n.body["id"] for n in board.read("ghost", None, 0)[0]] == ["x1:strike", "x0:strike"]
    assert (moderation.state("ghost").strikes, moderation.is_blocked("ghost")) == (2, False)
    # the relay's verdict on a message the ledger has announced already: nothing told twice
    feed.add_record(
        json.dumps({"author": "ghost", "data": "****", "timestamp": "2026-12-01 10:00:00"}).encode(),
        [
            (contract.MESSAGE_ID_HEADER, b"x1"),
            (contract.CHAT_POSITION_HEADER, b"0:1"),
            (contract.PROFANE_HEADER, b"true"),
        ],
    )
    assert len(board.read("ghost", None, 0)[0]) == 2


def test_nothing_is_told_at_once_before_the_notices_topic_is_read(told):
    feed, board, _ = told
    board.caught_up = False  # an announced strike could look unannounced: the ledger will tell it
    served_with_terms(feed, "cy", 30)
    assert board.read("cy", None, 0)[0] == []
    assert board.sizes()["told_at_once"] == 0


def test_the_strikes_that_blocked_a_user_are_those_since_their_last_unblock_once_each():
    """GET /moderators/blocked's notices: a strike told at once and then worded otherwise by the ledger is shown
    once, in the ledger's words, where it was first told; what came before the last unblock is history."""
    board = NoticeBoard()
    board.add_record(notice("ana", "blocked", 3, "m0", 1, batch=1), [])
    board.add_record(notice("ana", "unblocked", 0, batch=2), [])
    told = json.loads(notice("ana", "warning", 1, "m1", 5))
    board.tell_at_once(0, 5, told)
    board.tell_at_once(0, 6, json.loads(notice("ana", "warning", 2, "m2", 6)))
    board.add_record(json.dumps({**told, "terms": ["joder"], "batch": 3}).encode(), [])  # the ledger's wording
    kept = board.strike_notices("ana")
    assert [(n.body["message_id"], n.body["terms"]) for n in kept] == [("m1", ["joder"]), ("m2", ["mierda"])]
    assert board.strike_notices("nobody") == []
