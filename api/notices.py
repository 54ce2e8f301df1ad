"""The warnings sent to users (`chat_notices`), and who is blocked, as the API knows it.

One background consumer per process reads `chat_notices` from the beginning:
it keeps each author's recent notices for `GET /users/<author>/notices`, and
learns of a block the moment the ledger announces it, before the Delta
snapshot of `user_moderation` catches up. `Moderation` merges the two.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass

from flask import Flask, current_app

from api.feed import EpochCursors, FeedMessage, KafkaTail, header
from stack import settings
from warehouse import paths
from warehouse.moderation_snapshot import ModerationSnapshot, UserState

log = logging.getLogger(__name__)

NOTICE_FIELDS = ("id", "author", "kind", "strike", "limit", "terms", "message_id", "text", "timestamp")


@dataclass(frozen=True)
class Notice:
    seq: int
    body: dict

    def as_json(self) -> dict:
        return {k: self.body.get(k) for k in NOTICE_FIELDS}


def parse_notice(value: bytes | None, headers) -> dict | None:
    if value is None:
        return None
    try:
        body = json.loads(value)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("author"), str) or body.get("kind") not in (
            "warning", "blocked") or not isinstance(body.get("strike"), int):
        return None
    body.setdefault("id", header(headers, "notice_id"))
    return body if isinstance(body.get("id"), str) else None


class NoticeBoard(KafkaTail, EpochCursors):
    thread_name = "notices"
    cursor_source = "GET /users/<author>/notices"

    def __init__(self, bootstrap: str, per_author: int = 100):
        KafkaTail.__init__(self, bootstrap, settings.TOPIC_NOTICES)
        EpochCursors.__init__(self)
        self._by_author: dict[str, deque[Notice]] = defaultdict(lambda: deque(maxlen=per_author))
        self._seen: set[str] = set()
        self._strikes: dict[str, int] = {}
        self._blocked: dict[str, dict] = {}
        self._seq = 0
        self._cond = threading.Condition()

    def handle(self, record) -> None:
        self._add(record.value, record.headers)

    def _add(self, value: bytes | None, headers) -> None:
        body = parse_notice(value, headers)
        if body is None:
            log.warning("notices: skipping a record that is not a notice")
            return
        with self._cond:
            if body["id"] in self._seen:  # the ledger's notices are at-least-once
                return
            self._seen.add(body["id"])
            author = body["author"]
            self._seq += 1
            self._by_author[author].append(Notice(self._seq, body))
            self._strikes[author] = max(self._strikes.get(author, 0), body["strike"])
            if body["kind"] == "blocked":
                self._blocked[author] = body
            self._cond.notify_all()

    def read(self, author: str, after: int, wait_s: float) -> tuple[list[Notice], str]:
        deadline = time.monotonic() + wait_s
        with self._cond:
            while True:
                newer = [n for n in self._by_author.get(author, ()) if n.seq > after]
                if newer:
                    return newer, self.cursor(newer[-1].seq)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return [], self.cursor(max(after, self._seq))
                self._cond.wait(remaining)

    def strikes(self, author: str) -> int:
        return self._strikes.get(author, 0)

    def blocked(self, author: str) -> dict | None:
        return self._blocked.get(author)

    def status(self) -> dict:
        return {"connected": self.connected, "topic": self.topic, "notices": self._seq, "last_error": self.last_error}


class Moderation:
    """Who is blocked and how many strikes each user has: the Delta snapshot, overlaid with
    what the notices have announced since."""

    def __init__(self, snapshot: ModerationSnapshot, notices: NoticeBoard):
        self.snapshot = snapshot
        self.notices = notices

    def state(self, author: str) -> UserState | None:
        known = self.snapshot.get(author)
        blocked = self.notices.blocked(author)
        strikes = max(known.strikes if known else 0, self.notices.strikes(author))
        if known is None and not strikes:
            return None
        if blocked and not (known and known.is_blocked):
            return UserState(author=author, messages=known.messages if known else 0, strikes=strikes,
                             is_blocked=True, blocked_at=blocked.get("timestamp"),
                             blocked_partition=blocked.get("partition"), blocked_offset=blocked.get("offset"))
        if known is None:
            return UserState(author=author, messages=0, strikes=strikes, is_blocked=False)
        return UserState(**{**known.__dict__, "strikes": strikes})

    def is_blocked(self, author: str) -> bool:
        state = self.state(author)
        return bool(state and state.is_blocked)

    def is_withheld(self, message: FeedMessage) -> bool:
        """A message its author sent after being blocked: recorded, never served."""
        state = self.state(message.author)
        if not state or not state.is_blocked:
            return False
        if message.position is None or state.blocked_offset is None:
            return True  # no way to tell: a blocked user's message is not served
        partition, offset = message.position
        return partition == state.blocked_partition and offset > state.blocked_offset

    def blocked_error(self, author: str) -> str:
        state = self.state(author)
        since = f" since {state.blocked_at} UTC" if state and state.blocked_at else ""
        return (f"{author} is blocked{since} after {state.strikes if state else 3} strikes for profanity: "
                "blocked users can neither send nor read messages")


def get_moderation() -> Moderation:
    return current_app.extensions["chat_moderation"]


def init_app(app: Flask) -> None:
    snapshot = ModerationSnapshot(paths.table_path(paths.USER_MODERATION, app.config["WAREHOUSE_DIR"]),
                                  refresh_s=app.config["SNAPSHOT_REFRESH_S"])
    notices = NoticeBoard(app.config["KAFKA_BOOTSTRAP"])
    app.extensions["chat_moderation"] = Moderation(snapshot, notices)
    if app.config["START_FEED"]:
        snapshot.start()
        notices.start()
