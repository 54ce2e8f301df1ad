"""api/feed.py: parsing chat_controlled records, de-duplication, cursors and long-polling (no broker)."""

from __future__ import annotations

import json
import threading

import pytest

from api.feed import PROFANE_KEPT_PER_AUTHOR, BadCursor, Feed, parse_record
from config import contract


def record(author="ana", data="hola", ts="2026-11-27 10:00:00"):
    return json.dumps({"author": author, "data": data, "timestamp": ts}).encode()


def hdr(message_id):
    return [(contract.MESSAGE_ID_HEADER, message_id.encode())]


def profane(flag: bool):
    return [(contract.PROFANE_HEADER, b"true" if flag else b"false")]


def test_parse_record_accepts_only_chat_messages_with_an_id():
    assert parse_record(record(data="¡hola! 😀"), hdr("m1")) == (
        "m1",
        {"author": "ana", "data": "¡hola! 😀", "timestamp": "2026-11-27 10:00:00", "position": None, "profane": False},
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
    feed = Feed("unused:1", capacity=2)
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
    feed = Feed("unused:1")
    feed.add_record(record(data="one"), hdr("m1"))
    feed.add_record(record(data="one again"), hdr("m1"))
    feed.add_record(record(data="two"), hdr("m2"))
    messages, _ = feed.read(None, 0, 100)
    assert [(m.id, m.data) for m in messages] == [("m1", "one"), ("m2", "two")]
    assert feed.status()["duplicates_dropped"] == 1


def test_cursor_returns_only_newer_messages():
    feed = Feed("unused:1")
    feed.add_record(record(data="old"), hdr("m1"))
    _, cursor = feed.read(None, 0, 100)
    feed.add_record(record(data="new"), hdr("m2"))
    messages, next_cursor = feed.read(feed.parse_cursor(cursor), 0, 100)
    assert [m.data for m in messages] == ["new"]
    assert feed.read(feed.parse_cursor(next_cursor), 0, 100)[0] == []


def test_history_is_limited_and_capacity_bounded():
    feed = Feed("unused:1", capacity=5)
    for i in range(8):
        feed.add_record(record(data=str(i)), hdr(f"m{i}"))
    assert [m.data for m in feed.read(None, 0, 3)[0]] == ["5", "6", "7"]
    assert [m.data for m in feed.read(0, 0, 100)[0]] == ["3", "4", "5", "6", "7"]


def test_cursor_from_another_run_starts_from_the_oldest_kept_message():
    feed = Feed("unused:1")
    feed.add_record(record(data="x"), hdr("m1"))
    assert feed.parse_cursor("deadbeef.99") == 0
    with pytest.raises(BadCursor):
        feed.parse_cursor("garbage")


@pytest.mark.timeout(60)
def test_long_poll_wakes_up_when_a_message_arrives():
    """The read waits far longer than the test may run: only the message's arrival can end it."""
    feed = Feed("unused:1")
    _, cursor = feed.read(None, 0, 100)
    threading.Timer(0.3, feed.add_record, args=(record(data="late"), hdr("m9"))).start()
    messages, next_cursor = feed.read(feed.parse_cursor(cursor), 3600, 100)
    assert [m.data for m in messages] == ["late"]
    assert feed.parse_cursor(next_cursor) == messages[0].seq


def test_long_poll_times_out_empty_with_the_same_cursor():
    feed = Feed("unused:1")
    _, cursor = feed.read(None, 0, 100)
    assert feed.read(feed.parse_cursor(cursor), 0.2, 100) == ([], cursor)


def test_hidden_messages_are_skipped_and_do_not_end_the_wait():
    feed = Feed("unused:1")
    _, cursor = feed.read(None, 0, 100)
    feed.add_record(record(author="mallory", data="after the block"), hdr("m1"))
    threading.Timer(0.3, feed.add_record, args=(record(author="ana", data="visible"), hdr("m2"))).start()
    messages, _ = feed.read(feed.parse_cursor(cursor), 10, 100, hide=lambda m: m.author == "mallory")
    assert [m.data for m in messages] == ["visible"]
    assert [m.data for m in feed.read(None, 0, 100, hide=lambda m: m.author == "mallory")[0]] == ["visible"]


def test_reads_from_any_cursor_match_a_scan_of_the_whole_tail():
    """Reads look only at what they return (arithmetic and walking back from the end): the same answers
    as filtering the whole tail, from every cursor, with hidden messages and limits, after evictions."""
    feed = Feed("unused:1", capacity=40)
    for n in range(100):  # 60 evicted: positions 61..100 are kept
        feed.add_record(record(author=f"u{n % 3}", data=f"m{n}"), hdr(f"m{n}"))
    kept = list(feed._messages)

    def hide(m):
        return m.author == "u1"

    for after in range(102):
        for limit in (1, 5, 100):
            expected = [m for m in kept if m.seq > after and not hide(m)][:limit]
            shown, cursor = feed.read(after, 0, limit, hide=hide)
            assert shown == expected, (after, limit)
            assert feed.parse_cursor(cursor) == (expected[-1].seq if expected else 100)
    latest, cursor = feed.read(None, 0, 7, hide=hide)
    assert latest == [m for m in kept if not hide(m)][-7:] and feed.parse_cursor(cursor) == 100
