"""The tail of `chat_controlled` in memory, shared by every reader of the process.

Readers long-poll it with a cursor that names positions in `chat_controlled` (partition → next offset),
signed with the API's secret: any API process on any host answers it the same, also after the one
that issued it restarted. A cursor older than what the feed keeps is answered from the oldest message
kept. The relay's Kafka sink is at-least-once: each message id is served once.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from flask import Flask, current_app

from api.tail import BadCursor, CursorSigner, Follower, Positions, merged
from config import contract

log = logging.getLogger(__name__)

__all__ = ["BadCursor", "Feed", "FeedMessage", "get_feed", "header", "parse_position", "parse_record"]

# More than the strike limit: the ones the ledger has announced stay among them for a while (profane
# messages and spam strikes alike: both are strikes)
PROFANE_KEPT_PER_AUTHOR = 8
CURSOR_SOURCE = "GET /messages"  # the endpoint whose cursors parse_cursor takes


@dataclass(frozen=True)
class FeedMessage:
    seq: int  # arrival order in this process
    id: str
    author: str
    data: str
    timestamp: str
    position: tuple[int, int] | None = None  # (partition, offset) of the original in `chat`
    profane: bool = False  # the relay found profanity in it (its `profane` header)
    partition: int = 0  # where it is in `chat_controlled`
    offset: int = -1
    terms: tuple[str, ...] = ()  # the listed words the relay matched (its `terms` header)
    spam: str | None = None  # repeated-message spam: the reason (the `spam` header); never served
    spam_strike: bool = False  # the author's spam strike of the window (the `spam_strike` header)

    @property
    def is_strike(self) -> bool:
        """Whether the relay's verdict makes it a strike (unless its author was blocked already)."""
        return self.profane or self.spam_strike

    def as_json(self) -> dict:
        return {"id": self.id, "author": self.author, "data": self.data, "timestamp": self.timestamp}


def header(headers, name: str) -> str | None:
    for key, value in headers or []:
        if key == name and value:
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                return None
    return None


def parse_position(text: str | None) -> tuple[int, int] | None:
    partition, _, offset = (text or "").partition(":")
    if partition.isdigit() and offset.isdigit():
        return int(partition), int(offset)
    return None


def parse_terms(text: str | None) -> tuple[str, ...]:
    """The relay's `terms` header: a JSON array of strings (absent or malformed: none)."""
    try:
        terms = json.loads(text) if text else []
    except ValueError:
        return ()
    return tuple(t for t in terms if isinstance(t, str)) if isinstance(terms, list) else ()


def parse_record(value: bytes | None, headers) -> tuple[str, dict] | None:
    """(message id, message) from a `chat_controlled` record, or None when it is not one.
    The message has `author`, `data`, `timestamp`, `position` (None when the header is absent),
    `profane` (the relay's verdict; false when the header is absent), `spam` (the reason, None when
    not spam) and `spam_strike`."""
    message_id = header(headers, contract.MESSAGE_ID_HEADER)
    if not message_id or value is None:
        return None
    try:
        message = json.loads(value)
    except ValueError:
        return None
    if not isinstance(message, dict) or not all(isinstance(message.get(f), str) for f in contract.MESSAGE_FIELDS):
        return None
    return message_id, {
        **{f: message[f] for f in contract.MESSAGE_FIELDS},
        "position": parse_position(header(headers, contract.CHAT_POSITION_HEADER)),
        "profane": header(headers, contract.PROFANE_HEADER) == "true",
        **spam_verdict(headers),
    }


def spam_verdict(headers) -> dict:
    """`spam` (the reason, or None) and `spam_strike` from a record's headers, as the API's POST wrote them."""
    reason = header(headers, contract.SPAM_HEADER)
    return {
        "spam": reason,
        "spam_strike": reason is not None and header(headers, contract.SPAM_STRIKE_HEADER) == "true",
    }


class Feed(Follower):
    """The recent tail of `chat_controlled`, with cursors and long-polling (threads or coroutines)."""

    topic = contract.TOPIC_CONTROLLED

    def __init__(self, capacity: int = 10_000, history: int = 500, cursors: CursorSigner | None = None):
        super().__init__()
        self.history = history
        self.cursors = cursors or CursorSigner()
        self._messages: deque[FeedMessage] = deque(maxlen=capacity)
        self._partitions: set[int] = set()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seen_max = capacity * 4
        self._seq = 0
        self.duplicates_dropped = 0
        # each author's latest profane messages, for the strikes the ledger has not announced yet
        self._profane: OrderedDict[str, deque[FeedMessage]] = OrderedDict()
        self._profane_authors_max = capacity
        # told of every record, after the feed took it in: (partition, offset, message or None)
        self.on_record: Callable[[int, int, FeedMessage | None], None] | None = None

    def first_offsets(self, begins, ends):
        """Begin with the recent history, not the whole topic."""
        per_partition = max(1, self.history // max(1, len(ends)))
        return {p: max(begins[p], ends[p] - per_partition) for p in ends}

    def handle(self, record) -> None:
        self.add_record(record.value, record.headers, record.partition, record.offset)

    def add_record(self, value: bytes | None, headers, partition: int = 0, offset: int | None = None) -> None:
        """Take in one `chat_controlled` record (tests call it as the tail would; `offset` defaults to the next)."""
        added = None
        with self._cond:
            if offset is None:
                offset = self.positions.get(partition, 0)
            self.positions[partition] = max(self.positions.get(partition, 0), offset + 1)
            parsed = parse_record(value, headers)
            if parsed is None:
                log.warning("feed: skipping a record of %s that is not a chat message", self.topic)
            elif parsed[0] in self._seen:  # the relay's Kafka sink is at-least-once
                self.duplicates_dropped += 1
            else:
                message_id, message = parsed
                self._seen[message_id] = None
                if len(self._seen) > self._seen_max:
                    self._seen.popitem(last=False)
                self._seq += 1
                terms = parse_terms(header(headers, contract.TERMS_HEADER))
                added = FeedMessage(self._seq, message_id, **message, partition=partition, offset=offset, terms=terms)
                self._messages.append(added)
                self._partitions.add(partition)
                if added.is_strike:
                    self._remember_profane(added)
            self.changed()
        if self.on_record is not None:
            self.on_record(partition, offset, added)

    def _remember_profane(self, message: FeedMessage) -> None:
        latest = self._profane.pop(message.author, None) or deque(maxlen=PROFANE_KEPT_PER_AUTHOR)
        latest.append(message)
        self._profane[message.author] = latest  # now the most recent author
        if len(self._profane) > self._profane_authors_max:
            self._profane.popitem(last=False)

    def profane_messages(self, author: str) -> tuple[FeedMessage, ...]:
        """The author's latest profane messages and spam strikes (up to PROFANE_KEPT_PER_AUTHOR), oldest first."""
        with self._cond:
            return tuple(self._profane.get(author, ()))

    def profane_authors(self) -> list[str]:
        """The authors with profane messages or spam strikes kept (whose strikes may be unannounced yet)."""
        with self._cond:
            return list(self._profane)

    # -- cursors ------------------------------------------------------------------------------
    def cursor(self, positions: Positions) -> str:
        return self.cursors.dumps("m", {"c": positions})

    def parse_cursor(self, cursor: str) -> Positions:
        return self.cursors.loads("m", "c", cursor, CURSOR_SOURCE)["c"]

    # -- readers ------------------------------------------------------------------------------
    def read(
        self,
        after: Positions | None,
        wait_s: float,
        limit: int,
        hide: Callable[[FeedMessage], bool] | None = None,
    ) -> tuple[list[FeedMessage], str]:
        """Messages after the positions `after` (long-polling up to `wait_s` on this thread), or the latest
        `limit` when None. Messages for which `hide` is true are skipped (and do not end the wait)."""
        if after is None:
            messages, positions = self.latest(limit, hide)
            return messages, self.cursor(positions)
        messages, positions = self.read_now(after, limit, hide)
        if not messages and wait_s > 0:
            self.wait_until(lambda: bool(self.read_now(positions, limit, hide)[0]) or self.stopped, wait_s)
            messages, positions = self.read_now(positions, limit, hide)
        return messages, self.cursor(positions)

    def latest(self, limit: int, hide: Callable[[FeedMessage], bool] | None = None) -> tuple[list, Positions]:
        """The latest `limit` messages `hide` lets through, and the positions after everything read."""
        with self._cond:
            visible = (m for m in reversed(self._messages) if hide is None or not hide(m))
            return list(itertools.islice(visible, limit))[::-1], dict(self.positions)

    def read_now(
        self, after: Positions, limit: int, hide: Callable[[FeedMessage], bool] | None = None
    ) -> tuple[list[FeedMessage], Positions]:
        """The messages at or past `after` (at most `limit` shown), without waiting, and the positions after
        them: past the hidden ones too, and past everything read when nothing was cut off by `limit`."""
        with self._cond:
            shown: list[FeedMessage] = []
            positions = dict(after)
            for message in self._newer_than(after):
                if len(shown) == limit:
                    return shown, positions
                positions[message.partition] = message.offset + 1
                if hide is None or not hide(message):
                    shown.append(message)
            return shown, merged(positions, self.positions)

    def _newer_than(self, after: Positions) -> Iterator[FeedMessage]:
        """The kept messages at or past `after`, oldest first. Each partition's offsets grow along the tail,
        so walking back from the end stops once every partition is older than the cursor: a reader that
        keeps up costs what it reads, not what the feed keeps."""
        newer: list[FeedMessage] = []
        done: set[int] = set()
        for message in reversed(self._messages):
            if message.offset >= after.get(message.partition, 0):
                newer.append(message)
            else:
                done.add(message.partition)
                if len(done) == len(self._partitions):
                    break
        return reversed(newer)

    def status(self) -> dict:
        with self._cond:
            return {
                **super().status(),
                "messages_kept": len(self._messages),
                "duplicates_dropped": self.duplicates_dropped,
            }

    def sizes(self) -> dict:
        """How many entries each in-memory map holds (GET /health)."""
        with self._cond:
            return {
                "feed_messages": len(self._messages),
                "feed_ids": len(self._seen),
                "profane_authors": len(self._profane),
            }


def get_feed() -> Feed:
    return current_app.extensions["chat_feed"]


def init_app(app: Flask, cursors: CursorSigner) -> None:
    app.extensions["chat_feed"] = Feed(
        capacity=app.config["FEED_CAPACITY"], history=app.config["FEED_HISTORY"], cursors=cursors
    )
