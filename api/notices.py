"""The notices sent to users (`chat_notices`), and who is blocked, as the API knows it.

`NoticeBoard` is the process's one reader of `chat_notices`; `Moderation` overlays the Delta snapshot
of `user_moderation` with the newer notices and with the profane messages the feed has served that the
ledger has not announced yet (README "Moderation" explains why the block cannot wait for the ledger).
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask, current_app

from api.errors import ApiError
from api.feed import Feed, FeedMessage, header
from api.tail import CursorSigner, Follower, Positions, merged
from config import contract
from config.object_store import is_object
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
    source: str = "n"  # "n": from `chat_notices` (the ledger); "c": told at once from the relay's verdict
    partition: int = 0  # where it is in its source topic
    offset: int = 0

    def as_json(self, language: str = contract.DEFAULT_LANGUAGE) -> dict:
        """The notice as the API serves it, its `text` in `language`."""
        served = {k: self.body.get(k) for k in contract.NOTICE_FIELDS}
        served.update({k: self.body[k] for k in contract.NOTICE_OPTIONAL_FIELDS if self.body.get(k) is not None})
        served["text"] = worded(self.body, language)
        return served


def worded(body: dict, language: str) -> str | None:
    """A notice's text in `language`, from its kind and numbers (the ledger writes an English `text`
    beside them); its stored text when those do not say enough to word it."""
    kind, strike, limit, terms = body.get("kind"), body.get("strike"), body.get("limit"), body.get("terms", [])
    if limit is None and kind == "unblocked":
        limit = contract.STRIKE_LIMIT
    if (
        kind not in contract.NOTICE_KINDS
        or not isinstance(strike, int)
        or not isinstance(limit, int)
        or not isinstance(terms, list)
        or not all(isinstance(t, str) for t in terms)
    ):
        return body.get("text")
    return contract.notice_text(kind, strike, limit, terms, language, body.get("category"))


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


def _bounded_add(mapping: OrderedDict, key, value, maximum: int) -> None:
    mapping[key] = value
    mapping.move_to_end(key)
    if len(mapping) > maximum:
        mapping.popitem(last=False)


class NoticeBoard(Follower):
    """The notices of `chat_notices` (the ledger's), and those told at once from the relay's verdicts
    (`tell_at_once`), per author, with cursors naming positions in both topics."""

    topic = contract.TOPIC_NOTICES
    cursor_source = "GET /users/<author>/notices"

    def __init__(self, per_author: int = 100, max_authors: int = 100_000, cursors: CursorSigner | None = None):
        super().__init__()
        self.per_author = per_author
        self.max_authors = max_authors
        self.cursors = cursors or CursorSigner()
        self._by_author: OrderedDict[str, deque[Notice]] = OrderedDict()
        self._seen: OrderedDict[str, None] = OrderedDict()  # notice ids read from `chat_notices`
        self._struck: OrderedDict[str, None] = OrderedDict()  # message ids the ledger announced a strike for
        self._told: OrderedDict[str, Notice] = OrderedDict()  # notices told at once, by id
        self._standing: OrderedDict[str, Standing] = OrderedDict()
        self.controlled_positions: Positions = {}  # how far the relay's verdicts have been looked at
        self._seq = 0

    def handle(self, record) -> None:
        self.add_record(record.value, record.headers, record.partition, record.offset)

    def add_record(self, value: bytes | None, headers, partition: int = 0, offset: int | None = None) -> None:
        with self._cond:
            if offset is None:
                offset = self.positions.get(partition, 0)
            self.positions[partition] = max(self.positions.get(partition, 0), offset + 1)
            body = parse_notice(value, headers)
            if body is None:
                log.warning("notices: skipping a record that is not a notice")
                self.changed()
                return
            if body["id"] in self._seen:  # the ledger's notices are at-least-once
                self.changed()
                return
            ids_max = self.max_authors * 4
            _bounded_add(self._seen, body["id"], None, ids_max)
            if body["kind"] != "unblocked" and isinstance(body.get("message_id"), str):
                _bounded_add(self._struck, body["message_id"], None, ids_max)
            author = body["author"]
            self._seq += 1
            notice = Notice(self._seq, body, "n", partition, offset)
            told = self._told.get(body["id"])
            # the ledger agrees with what the user was told at once: nothing new to tell; when it does not
            # (another strike number or kind), its notice is the record and is told too, under the same id
            if told is None or told.as_json() != notice.as_json():
                self._append(author, notice)
            _bounded_add(self._standing, author, self._after(self._standing.get(author), body), self.max_authors)
            self.changed()

    def tell_at_once(self, partition: int, offset: int, body: dict | None) -> None:
        """The relay's verdict on the `chat_controlled` record at (partition, offset) has been looked at;
        `body` is the notice it calls for (the ledger will send the same one later), if any."""
        with self._cond:
            self.controlled_positions[partition] = max(self.controlled_positions.get(partition, 0), offset + 1)
            if body is None or body["id"] in self._seen or body["id"] in self._told:
                return
            self._seq += 1
            notice = Notice(self._seq, body, "c", partition, offset)
            _bounded_add(self._told, body["id"], notice, self.max_authors * 4)
            self._append(body["author"], notice)
            self.changed()

    def _append(self, author: str, notice: Notice) -> None:
        notices = self._by_author.get(author)
        if notices is None:
            notices = deque(maxlen=self.per_author)
        _bounded_add(self._by_author, author, notices, self.max_authors)
        notices.append(notice)

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

    # -- cursors ------------------------------------------------------------------------------
    def cursor(self, after: dict[str, Positions]) -> str:
        """The cursor past everything looked at so far (and never behind `after`). Call with `_cond` held."""
        return self.cursors.dumps(
            "n",
            {
                "n": merged(after.get("n", {}), self.positions),
                "c": merged(after.get("c", {}), self.controlled_positions),
            },
        )

    def parse_cursor(self, cursor: str, source: str | None = None) -> dict[str, Positions]:
        return self.cursors.loads("n", "nc", cursor, source or self.cursor_source)

    # -- readers ------------------------------------------------------------------------------
    def read(self, author: str, after: dict[str, Positions] | None, wait_s: float) -> tuple[list[Notice], str]:
        """`author`'s notices after the cursor `after` (None: all kept), long-polling up to `wait_s` on this thread."""
        return self.read_many({author}, after, wait_s)

    def read_many(
        self, authors: set[str], after: dict[str, Positions] | None, wait_s: float = 0
    ) -> tuple[list[Notice], str]:
        after = after or {}
        if wait_s > 0:
            self.wait_until(lambda: bool(self._newer(authors, after)) or self.stopped, wait_s)
        with self._cond:
            return self._newer(authors, after), self.cursor(after)

    def _newer(self, authors: set[str], after: dict[str, Positions]) -> list[Notice]:
        """The notices of `authors` the cursor `after` has not passed, in arrival order (call with `_cond` held)."""
        by_source = {"n": after.get("n", {}), "c": after.get("c", {})}
        newer = []
        for author in authors:
            for notice in self._by_author.get(author, ()):
                if notice.offset >= by_source[notice.source].get(notice.partition, 0):
                    newer.append(notice)
        if len(authors) > 1:
            newer.sort(key=lambda n: n.seq)
        return newer

    def strike_notices(self, author: str) -> list[Notice]:
        """`author`'s warnings and block kept since their last unblock (the strikes that blocked them), oldest
        first (one per notice id); none when the topic no longer held them at the start or they are past
        `per_author`."""
        with self._cond:
            notices = list(self._by_author.get(author, ()))
        since = next((i for i in range(len(notices) - 1, -1, -1) if notices[i].body["kind"] == "unblocked"), -1)
        # a strike told at once that the ledger then worded otherwise is in twice, under one id: the ledger's
        # wording, in the place it was first told
        latest: dict[str, Notice] = {}
        for notice in notices[since + 1 :]:
            latest[notice.body["id"]] = notice  # a dict keeps the first insertion's place
        return list(latest.values())

    def standing(self, author: str) -> Standing | None:
        return self._standing.get(author)

    def standing_authors(self) -> list[str]:
        """Every author with a standing told since the last snapshot (strikes, a block, an unblock)."""
        with self._cond:
            return list(self._standing)

    def announced(self, message_id: str) -> bool:
        """Whether the ledger has announced the strike of this message."""
        return message_id in self._struck

    def status(self) -> dict:
        return {**super().status(), "notices": self._seq}

    def sizes(self) -> dict:
        with self._cond:
            return {
                "notice_authors": len(self._by_author),
                "notice_ids": len(self._seen),
                "struck_ids": len(self._struck),
                "told_at_once": len(self._told),
                "standings": len(self._standing),
            }


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
        """The author's strikes taken in by the feed (profane messages, spam strikes) that the ledger has not
        announced yet, in Kafka order. Nothing until the notices board has read what the topic held when it started
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

    def instant_notice(self, message: FeedMessage) -> dict | None:
        """The warning or block the relay's verdict on `message` calls for, as the ledger will announce it
        later (same id, strike number, kind, terms and text), or None: not a strike, announced already, or
        not to be known yet (the notices board has not read what the topic held when it started)."""
        if not message.is_strike or message.position is None or not self.notices.caught_up:
            return None
        if self.notices.announced(message.id):
            return None
        recorded = self.recorded_state(message.author)
        if recorded is not None and recorded.is_blocked:
            return None  # sent while blocked: withheld, no strike
        strike = recorded.strikes if recorded else 0
        for pending in self.unannounced_strikes(message.author):
            strike += 1
            if pending.id == message.id:
                break
            if strike >= contract.STRIKE_LIMIT:
                return None  # the author was blocked before this one
        else:
            return None  # left to the ledger (too old, or lifted by an unblock)
        kind = "blocked" if strike >= contract.STRIKE_LIMIT else "warning"
        terms = list(message.terms)
        # a spam strike is of its category even when the text also had listed words (the ledger's rule)
        category = contract.SPAM_CATEGORY if message.spam_strike else None
        return {
            "id": f"{message.id}:strike",
            "author": message.author,
            "kind": kind,
            "strike": strike,
            "limit": contract.STRIKE_LIMIT,
            "terms": terms,
            "message_id": message.id,
            "text": contract.notice_text(kind, strike, contract.STRIKE_LIMIT, terms, category=category),
            "timestamp": message.timestamp,
            "partition": message.position[0],
            "offset": message.position[1],
            **({"category": category} if category else {}),
        }

    def on_feed_record(self, partition: int, offset: int, message: FeedMessage | None) -> None:
        """The feed took in the `chat_controlled` record at (partition, offset): tell its author at once."""
        body = self.instant_notice(message) if message is not None else None
        self.notices.tell_at_once(partition, offset, body)

    def blocked(self, limit: int) -> tuple[list[tuple[UserState, list[Notice]]], int]:
        """The users blocked now, as `is_blocked` says of each (the snapshot, the notices since, and the blocks
        the ledger has not announced yet), newest block first, at most `limit`, each with the strike notices
        that blocked them; and how many are blocked in all."""
        candidates = set(self.snapshot.blocked_authors()) | set(self.notices.standing_authors())
        if self.feed is not None:
            candidates.update(self.feed.profane_authors())
        states = [state for state in map(self.state, candidates) if state is not None and state.is_blocked]
        states.sort(key=lambda s: s.author)
        # newest first ("YYYY-MM-DD HH:MM:SS" sorts as time does), a block of no known time last; by name within
        states.sort(key=lambda s: (s.blocked_at is not None, s.blocked_at or ""), reverse=True)
        return [(state, self.notices.strike_notices(state.author)) for state in states[:limit]], len(states)

    def is_blocked(self, author: str) -> bool:
        state = self.state(author)
        return bool(state and state.is_blocked)

    def is_withheld(self, message: FeedMessage) -> bool:
        """A message its author sent while blocked, or repeated-message spam: recorded, never served (also
        after an unblock)."""
        if message.spam is not None:
            return True
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

    def blocked_refusal(self, author: str) -> ApiError:
        """The 403 to a blocked author."""
        state = self.state(author)
        strikes, since = (contract.STRIKE_LIMIT, None) if state is None else (state.strikes, state.blocked_at)
        if since:
            return ApiError(403, "blocked_since", author=author, strikes=strikes, since=since)
        return ApiError(403, "blocked", author=author, strikes=strikes)


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


def init_app(app: Flask, cursors: CursorSigner) -> None:
    location = paths.table_path(paths.USER_MODERATION, app.config["WAREHOUSE_DIR"])
    storage_options = None
    if is_object(location):  # a wrong endpoint or missing credentials stop the API here, the setting named
        app.config["OBJECT_STORE"].check_reachable()
        storage_options = app.config["OBJECT_STORE"].storage_options()
    snapshot = ModerationSnapshot(location, refresh_s=app.config["SNAPSHOT_REFRESH_S"], storage_options=storage_options)
    notices = NoticeBoard(cursors=cursors)
    feed = app.extensions["chat_feed"]
    moderation = app.extensions["chat_moderation"] = Moderation(snapshot, notices, feed)
    feed.on_record = moderation.on_feed_record
    if app.config["START_FEED"]:
        snapshot.start()
