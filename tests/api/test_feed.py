"""api/feed.py: parsing chat_controlled records, de-duplication, cursors and long-polling (no broker)."""

from __future__ import annotations

import json
import threading

import pytest

from api.feed import PROFANE_KEPT_PER_AUTHOR, BadCursor, Feed, parse_record
from api.tail import CursorSigner
from config import contract
from tests.api.conftest import make_app


def record(author="ana", data="hola", ts="2026-11-27 10:00:00"):
    return json.dumps({"author": author, "data": data, "timestamp": ts}).encode()


def hdr(message_id):
    return [(contract.MESSAGE_ID_HEADER, message_id.encode())]


def profane(flag: bool):
    return [(contract.PROFANE_HEADER, b"true" if flag else b"false")]


def test_parse_record_accepts_only_chat_messages_with_an_id():
    assert parse_record(record(data="¡hola! 😀"), hdr("m1")) == (
        "m1",
        {
            "author": "ana",
            "data": "¡hola! 😀",
            "timestamp": "2026-11-27 10:00:00",
            "position": None,
            "profane": False,
            "spam": None,
            "spam_strike": False,
        },
    )
    assert parse_record(record(), hdr("m1") + [(contract.CHAT_POSITION_HEADER, b"0:42")])[1]["position"] == (0, 42)
    assert parse_record(record(), hdr("m1") + [(contract.CHAT_POSITION_HEADER, b"x:42")])[1]["position"] is None
    assert parse_record(record(), hdr("m1") + profane(True))[1]["profane"] is True
    assert parse_record(record(), hdr("m1") + profane(False))[1]["profane"] is False
    assert parse_record(record(), []) is None
    assert parse_record(b"not json", hdr("m1")) is None
    assert parse_record(b'{"author": 1, "data": "x", "timestamp": "t"}', hdr("m1")) is None
    assert parse_record(None, hdr("m1")) is None


def test_each_authors_latest_profane_messages_are_at_hand():
    feed = Feed(capacity=2)
    for n, (author, flag) in enumerate([("ana", True), ("ana", False), ("bob", True), ("ana", True)]):
        feed.add_record(record(author=author), hdr(f"m{n}") + profane(flag))
    feed.add_record(record(author="ana"), hdr("m3") + profane(True))  # a duplicate is not counted again
    assert [m.id for m in feed.profane_messages("ana")] == ["m0", "m3"]
    assert [m.id for m in feed.profane_messages("bob")] == ["m2"]
    for n in range(4, 4 + PROFANE_KEPT_PER_AUTHOR + 1):
        feed.add_record(record(author="ana"), hdr(f"m{n}") + profane(True))
    assert len(feed.profane_messages("ana")) == PROFANE_KEPT_PER_AUTHOR
    feed.add_record(record(author="carol"), hdr("m99") + profane(True))  # a third author: bob is forgotten
    assert feed.profane_messages("bob") == () and feed.profane_messages("carol")[0].id == "m99"


def test_duplicates_by_id_are_served_once():
    feed = Feed()
    feed.add_record(record(data="one"), hdr("m1"))
    feed.add_record(record(data="one again"), hdr("m1"))
    feed.add_record(record(data="two"), hdr("m2"))
    messages, _ = feed.read(None, 0, 100)
    assert [(m.id, m.data) for m in messages] == [("m1", "one"), ("m2", "two")]
    assert feed.status()["duplicates_dropped"] == 1


def test_cursor_returns_only_newer_messages():
    feed = Feed()
    feed.add_record(record(data="old"), hdr("m1"))
    _, cursor = feed.read(None, 0, 100)
    feed.add_record(record(data="new"), hdr("m2"))
    messages, next_cursor = feed.read(feed.parse_cursor(cursor), 0, 100)
    assert [m.data for m in messages] == ["new"]
    assert feed.read(feed.parse_cursor(next_cursor), 0, 100)[0] == []


def test_history_is_limited_and_capacity_bounded():
    feed = Feed(capacity=5)
    for i in range(8):
        feed.add_record(record(data=str(i)), hdr(f"m{i}"))
    assert [m.data for m in feed.read(None, 0, 3)[0]] == ["5", "6", "7"]
    assert [m.data for m in feed.read({0: 0}, 0, 100)[0]] == ["3", "4", "5", "6", "7"]


def test_a_cursor_names_kafka_positions_that_any_process_with_the_secret_answers_the_same():
    """Two feeds with one secret stand for two API processes (or hosts) reading `chat_controlled`: a cursor
    issued by one is answered by the other with the same messages, even when the other started later;
    a cursor from before what a feed keeps reads from the oldest message kept; a forged one is refused."""
    secret = CursorSigner("shared-secret")
    first, second = Feed(capacity=3, cursors=secret), Feed(capacity=3, cursors=CursorSigner("shared-secret"))
    for n in range(2):
        first.add_record(record(data=f"old {n}"), hdr(f"o{n}"), offset=n)
    _, cursor = first.read(None, 0, 100)
    assert first.parse_cursor(cursor) == second.parse_cursor(cursor) == {0: 2}
    for feed in (first, second):
        for n in range(2, 6):
            feed.add_record(record(data=f"new {n}"), hdr(f"n{n}"), offset=n)
    assert [m.id for m in first.read(first.parse_cursor(cursor), 0, 100)[0]] == ["n3", "n4", "n5"]  # n2 evicted
    assert [m.id for m in second.read(second.parse_cursor(cursor), 0, 100)[0]] == ["n3", "n4", "n5"]
    (one, one_cursor), (two, two_cursor) = (f.read(f.parse_cursor(cursor), 0, 2) for f in (first, second))
    assert [m.as_json() for m in one] == [m.as_json() for m in two] and one_cursor == two_cursor
    with pytest.raises(BadCursor):
        Feed().parse_cursor(cursor)  # another secret: not a cursor of this API
    body, _, signature = cursor.rpartition(".")
    for forged in ("garbage", "deadbeef.99", f"{body}9.{signature}", f"{body}.{signature[::-1]}", "", "m" * 5000):
        with pytest.raises(BadCursor):
            first.parse_cursor(forged)


def test_a_starting_api_reads_the_last_500_messages_of_the_topic_split_over_its_partitions(tmp_path):
    """README: the API keeps the last 10,000 messages and at start loads the last 500 (where its tail begins
    reading); the real broker's side: tests/api/test_api_hosts.py."""
    feed = make_app(tmp_path).extensions["chat_feed"]
    assert feed._messages.maxlen == 10_000
    assert feed.first_offsets({0: 0}, {0: 12_000}) == {0: 11_500}
    assert feed.first_offsets({0: 0}, {0: 120}) == {0: 0}  # fewer than 500: all of them
    assert feed.first_offsets({0: 11_900}, {0: 12_000}) == {0: 11_900}  # the rest is past retention
    assert feed.first_offsets({0: 0, 1: 0}, {0: 5_000, 1: 100}) == {0: 4_750, 1: 0}


@pytest.mark.timeout(60)
def test_long_poll_wakes_up_when_a_message_arrives():
    """The read waits far longer than the test may run: only the message's arrival can end it."""
    feed = Feed()
    _, cursor = feed.read(None, 0, 100)
    threading.Timer(0.3, feed.add_record, args=(record(data="late"), hdr("m9"))).start()
    messages, next_cursor = feed.read(feed.parse_cursor(cursor), 3600, 100)
    assert [m.data for m in messages] == ["late"]
    assert feed.parse_cursor(next_cursor) == {0: messages[0].offset + 1}


def test_long_poll_times_out_empty_with_the_same_cursor():
    feed = Feed()
    _, cursor = feed.read(None, 0, 100)
    assert feed.read(feed.parse_cursor(cursor), 0.2, 100) == ([], cursor)


def test_hidden_messages_are_skipped_and_do_not_end_the_wait():
    feed = Feed()
    _, cursor = feed.read(None, 0, 100)
    feed.add_record(record(author="mallory", data="after the block"), hdr("m1"))
    threading.Timer(0.3, feed.add_record, args=(record(author="ana", data="visible"), hdr("m2"))).start()
    messages, _ = feed.read(feed.parse_cursor(cursor), 10, 100, hide=lambda m: m.author == "mallory")
    assert [m.data for m in messages] == ["visible"]
    assert [m.data for m in feed.read(None, 0, 100, hide=lambda m: m.author == "mallory")[0]] == ["visible"]


def test_reads_from_any_cursor_match_a_scan_of_the_whole_tail():
    """Reads look only at what they return (arithmetic and walking back from the end): the same answers
    as filtering the whole tail, from every cursor, with hidden messages and limits, after evictions."""
    feed = Feed(capacity=40)
    for n in range(100):  # 60 evicted: positions 61..100 are kept
        feed.add_record(record(author=f"u{n % 3}", data=f"m{n}"), hdr(f"m{n}"))
    kept = list(feed._messages)

    def hide(m):
        return m.author == "u1"

    for after in range(102):
        for limit in (1, 5, 100):
            expected = [m for m in kept if m.offset >= after and not hide(m)][:limit]
            shown, cursor = feed.read({0: after}, 0, limit, hide=hide)
            assert shown == expected, (after, limit)
            cut = len([m for m in kept if m.offset >= after and not hide(m)]) > limit
            assert feed.parse_cursor(cursor) == {0: expected[-1].offset + 1 if cut else max(after, 100)}
    latest, cursor = feed.read(None, 0, 7, hide=hide)
    assert latest == [m for m in kept if not hide(m)][-7:] and feed.parse_cursor(cursor) == {0: 100}
