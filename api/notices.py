"""The notices sent to users (`chat_notices`), and who is blocked, as the API knows it.

`NoticeBoard` is the process's one reader of `chat_notices`; `Moderation` overlays the Delta snapshot
of `user_moderation` with the newer notices and with the profane messages the feed has served that the
ledger has not announced yet (README "Moderation" explains why the block cannot wait for the ledger).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask, current_app

from api.feed import EpochCursors, Feed, FeedMessage, KafkaTail, header
from config import contract
from warehouse import paths
from warehouse.moderation_snapshot import ModerationSnapshot, UserState

log = logging.getLogger(__name__)

# A profane message the ledger has not announced a strike for within this time is left to the ledger
# (it did not count it, or its notice is older than the topic keeps); the ledger needs seconds.
UNANNOUNCED_HORIZON_S = 600


@dataclass(frozen=True)
class Standing:
    """A user's strikes and block as the notices tell it, after ledger batch `batch` (None: not said).
    `windows`: earlier blocks that a moderator lifted, as (partition, blocked offset, end offset of `chat`
    when lifted): what the user sent in between stays withheld."""

    strikes: int
    blocked: dict | None
    batch: int | None
    windows: tuple[tuple[int, int, int], ...] = ()


@dataclass(frozen=True)
class Notice:
    seq: int
    body: dict

    def as_json(self) -> dict:
        return {k: self.body.get(k) for k in contract.NOTICE_FIELDS}


def parse_notice(value: bytes | None, headers) -> dict | None:
    if value is None:
        return None
    try:
        body = json.loads(value)
    except ValueError:
        return None
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("author"), str)
        or body.get("kind") not in contract.NOTICE_KINDS
        or not isinstance(body.get("strike"), int)
    ):
        return None
    body.setdefault("id", header(headers, contract.NOTICE_ID_HEADER))
    return body if isinstance(body.get("id"), str) else None


class NoticeBoard(KafkaTail, EpochCursors):
    thread_name = "notices"
    cursor_source = "GET /users/<author>/notices"

    def __init__(self, bootstrap: str, per_author: int = 100):
        KafkaTail.__init__(self, bootstrap, contract.TOPIC_NOTICES)
        EpochCursors.__init__(self)
        self._by_author: dict[str, deque[Notice]] = defaultdict(lambda: deque(maxlen=per_author))
        self._seen: set[str] = set()
        self._struck: set[str] = set()  # message ids the ledger announced a strike for
        self._standing: dict[str, Standing] = {}
        self._seq = 0
        self._cond = threading.Condition()

    def handle(self, record) -> None:
        self.add_record(record.value, record.headers)

    def add_record(self, value: bytes | None, headers) -> None:
        body = parse_notice(value, headers)
        if body is None:
            log.warning("notices: skipping a record that is not a notice")
            return
        with self._cond:
            if body["id"] in self._seen:  # the ledger's notices are at-least-once
                return
            self._seen.add(body["id"])
            if body["kind"] != "unblocked" and isinstance(body.get("message_id"), str):
                self._struck.add(body["message_id"])
            author = body["author"]
            self._seq += 1
            self._by_author[author].append(Notice(self._seq, body))
            self._standing[author] = self._after(self._standing.get(author), body)
            self._cond.notify_all()

    @staticmethod
    def _after(before: Standing | None, body: dict) -> Standing:
        """The standing once `body` is taken into account. An unblock applies after the strikes of its
        own batch (the ledger records it that way), so a strike notice of that batch does not undo it."""
        batch = body.get("batch") if isinstance(body.get("batch"), int) else None
        windows = before.windows if before else ()
        if body["kind"] == "unblocked":
            blocked, until = before.blocked if before else None, body.get("until")
            if (
                blocked
                and isinstance(blocked.get("partition"), int)
                and isinstance(blocked.get("offset"), int)
                and isinstance(until, dict)
                and isinstance(until.get(str(blocked["partition"])), int)
            ):
                windows += ((blocked["partition"], blocked["offset"], until[str(blocked["partition"])]),)
            return Standing(0, None, batch, windows)
        if (
            before is not None
            and before.batch is not None
            and batch is not None
            and batch <= before.batch
            and before.strikes == 0
            and before.blocked is None
        ):
            return before  # a strike from the batch of an unblock, or before it
        strikes = max(before.strikes if before else 0, body["strike"])
        blocked = body if body["kind"] == "blocked" else (before.blocked if before else None)
        newest = max((b for b in (batch, before.batch if before else None) if b is not None), default=None)
        return Standing(strikes, blocked, newest, windows)

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

    def standing(self, author: str) -> Standing | None:
        return self._standing.get(author)

    def announced(self, message_id: str) -> bool:
        """Whether the ledger has announced the strike of this message."""
        return message_id in self._struck

    def stop(self) -> None:
        super().stop()
        with self._cond:  # wake the long-polls in flight: they answer at once instead of at their deadline
            self._cond.notify_all()

    def status(self) -> dict:
        return {"connected": self.connected, "topic": self.topic, "notices": self._seq, "last_error": self.last_error}


class Moderation:
    """Who is blocked and how many strikes each user has: the Delta snapshot, overlaid with
    what the notices have announced since, plus the strikes still to be announced (with a feed)."""

    def __init__(self, snapshot: ModerationSnapshot, notices: NoticeBoard, feed: Feed | None = None):
        self.snapshot = snapshot
        self.notices = notices
        self.feed = feed

    def state(self, author: str) -> UserState | None:
        # The recorded state first, then the unannounced strikes: a notice that arrives in between
        # is then missing from both (one strike too few for a moment), never counted twice.
        recorded = self.recorded_state(author)
        if recorded is not None and recorded.is_blocked:
            return recorded
        return self.with_unannounced_strikes(author, recorded)

    def recorded_state(self, author: str) -> UserState | None:
        """What the ledger has decided: the snapshot, or the notices where they are newer."""
        known = self.snapshot.get(author)
        told = self.notices.standing(author)
        if told is None or (
            known is not None
            and told.batch is not None
            and known.last_batch_id is not None
            and told.batch <= known.last_batch_id
        ):
            return known  # the snapshot already includes what the notices said
        blocked = told.blocked
        block = (blocked.get("timestamp"), blocked.get("partition"), blocked.get("offset")) if blocked else None
        return _overlaid(known or _no_record(author), told.strikes, block)

    def unannounced_strikes(self, author: str) -> list[FeedMessage]:
        """The author's profane messages served by the feed that the ledger has not announced a strike for
        yet, in Kafka order. Nothing until the notices board has read what the topic held when it started
        (before that, an announced strike could look unannounced)."""
        if self.feed is None or not self.notices.caught_up:
            return []
        profane = self.feed.profane_messages(author)
        if not profane:  # most authors: every message read asks, so nothing more to do for them
            return []
        told = self.notices.standing(author)
        lifted = told.windows if told else ()
        oldest = datetime.now(UTC).timestamp() - UNANNOUNCED_HORIZON_S
        pending = []
        for message in profane:
            if message.position is None or self.notices.announced(message.id):
                continue
            partition, offset = message.position
            if any(partition == p and offset < until for p, _, until in lifted):
                continue  # sent before a moderator's unblock: the ledger has dealt with it
            if _epoch_s(message.timestamp) < oldest:
                continue
            pending.append(message)
        return sorted(pending, key=lambda m: m.position)

    def with_unannounced_strikes(self, author: str, recorded: UserState | None) -> UserState | None:
        pending = self.unannounced_strikes(author)
        if not pending:
            return recorded
        base = recorded or _no_record(author)
        strikes, block = base.strikes, None
        for message in pending:
            strikes += 1
            if strikes >= contract.STRIKE_LIMIT:
                # what the same author sends after it is withheld, as the ledger does
                block = (message.timestamp, *message.position)
                break
        return _overlaid(base, strikes, block)

    def is_blocked(self, author: str) -> bool:
        state = self.state(author)
        return bool(state and state.is_blocked)

    def is_withheld(self, message: FeedMessage) -> bool:
        """A message its author sent while blocked: recorded, never served (also after an unblock)."""
        state = self.state(message.author)
        if not state or not state.is_blocked:
            told = self.notices.standing(message.author)
            if told is None or not told.windows or message.position is None:
                return False
            partition, offset = message.position
            return any(partition == p and start < offset < until for p, start, until in told.windows)
        if message.position is None or state.blocked_offset is None:
            return True  # no way to tell: a blocked user's message is not served
        partition, offset = message.position
        return partition == state.blocked_partition and offset > state.blocked_offset

    def blocked_error(self, author: str) -> str:
        state = self.state(author)
        if state is None:
            return contract.blocked_error(author, contract.STRIKE_LIMIT, None)
        return contract.blocked_error(author, state.strikes, state.blocked_at)


def _no_record(author: str) -> UserState:
    """A user the ledger has recorded nothing about."""
    return UserState(author=author, messages=0, strikes=0, is_blocked=False)


def _overlaid(base: UserState, strikes: int, block: tuple[str | None, int | None, int | None] | None) -> UserState:
    """`base` (its messages and ledger batch) with these strikes and this block: (timestamp, partition, offset)
    of the message that blocked, or None."""
    blocked_at, partition, offset = block or (None, None, None)
    return UserState(
        author=base.author,
        messages=base.messages,
        strikes=strikes,
        is_blocked=block is not None,
        blocked_at=blocked_at,
        blocked_partition=partition,
        blocked_offset=offset,
        last_batch_id=base.last_batch_id,
    )


def _epoch_s(timestamp: str) -> float:
    """Seconds since the epoch of a message's "YYYY-MM-DD HH:MM:SS" UTC timestamp (0 when malformed)."""
    try:
        return datetime.strptime(timestamp, contract.TIMESTAMP_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return 0.0


def get_moderation() -> Moderation:
    return current_app.extensions["chat_moderation"]


def init_app(app: Flask) -> None:
    snapshot = ModerationSnapshot(
        paths.table_path(paths.USER_MODERATION, app.config["WAREHOUSE_DIR"]), refresh_s=app.config["SNAPSHOT_REFRESH_S"]
    )
    notices = NoticeBoard(app.config["KAFKA_BOOTSTRAP"])
    app.extensions["chat_moderation"] = Moderation(snapshot, notices, app.extensions["chat_feed"])
    if app.config["START_FEED"]:
        snapshot.start()
        notices.start()
