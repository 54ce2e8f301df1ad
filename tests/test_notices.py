"""api/notices.py: the notices board and the blocked-status overlay (no broker: records fed by hand)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.feed import BadCursor, FeedMessage
from api.notices import Moderation, NoticeBoard
from warehouse.moderation_snapshot import ModerationSnapshot


def notice(author, kind, strike, message_id, offset):
    return json.dumps({"id": f"{message_id}:strike", "author": author, "kind": kind, "strike": strike,
                       "limit": 3, "terms": ["mierda"], "message_id": message_id, "text": f"{kind} {strike}",
                       "timestamp": "2026-11-27 10:00:00", "partition": 0, "offset": offset}).encode()


def test_notices_are_kept_per_author_once_each_with_cursors():
    board = NoticeBoard("unused:1")
    board._add(notice("ana", "warning", 1, "m1", 1), [])
    board._add(notice("ana", "warning", 1, "m1", 1), [])  # at-least-once delivery
    board._add(notice("bob", "warning", 1, "m2", 2), [])
    board._add(b"not json", [])
    first, cursor = board.read("ana", 0, 0)
    assert [n.as_json()["text"] for n in first] == ["warning 1"]
    board._add(notice("ana", "warning", 2, "m3", 3), [])
    newer, _ = board.read("ana", board.parse_cursor(cursor), 0)
    assert [n.as_json()["strike"] for n in newer] == [2]
    assert board.read("carol", 0, 0)[0] == []
    with pytest.raises(BadCursor):
        board.parse_cursor("nonsense")


def test_a_blocked_notice_blocks_before_the_snapshot_knows(tmp_path: Path):
    board = NoticeBoard("unused:1")
    moderation = Moderation(ModerationSnapshot(tmp_path / "user_moderation"), board)
    assert moderation.state("ana") is None and not moderation.is_blocked("ana")
    board._add(notice("ana", "warning", 2, "m2", 5), [])
    assert (moderation.state("ana").strikes, moderation.is_blocked("ana")) == (2, False)
    board._add(notice("ana", "blocked", 3, "m3", 7), [])
    assert moderation.is_blocked("ana")
    assert "ana is blocked since 2026-11-27 10:00:00 UTC" in moderation.blocked_error("ana")

    def message(offset):
        return FeedMessage(seq=offset, id=f"x{offset}", author="ana", data="d", timestamp="t", position=(0, offset))
    assert not moderation.is_withheld(message(7))  # the blocking message itself is served (masked)
    assert moderation.is_withheld(message(8))      # anything after it is not
    assert not moderation.is_withheld(FeedMessage(1, "y", "bob", "d", "t", (0, 9)))
