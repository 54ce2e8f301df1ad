"""The tail of `chat_controlled`: one background consumer per process, shared by every reader.

Readers long-poll it with a cursor. The cursor is opaque to clients: it names
this process's run (`epoch`) and a position in the tail (`seq`). A cursor
from an earlier run of the API (or one older than the tail keeps) is answered
from the oldest message kept; clients de-duplicate by message id anyway.
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from flask import Flask, current_app
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from config import contract

log = logging.getLogger(__name__)


# More than the strike limit: the ones the ledger has announced stay among them for a while
PROFANE_KEPT_PER_AUTHOR = 8


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class FeedMessage:
    seq: int
    id: str
    author: str
    data: str
    timestamp: str
    position: tuple[int, int] | None = None  # (partition, offset) of the original in `chat`
    profane: bool = False  # the relay found profanity in it (its `profane` header)

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


def parse_record(value: bytes | None, headers) -> tuple[str, dict] | None:
    """(message id, message) from a `chat_controlled` record, or None when it is not one.
    The message has `author`, `data`, `timestamp`, `position` (None when the header is absent)
    and `profane` (the relay's verdict; false when the header is absent)."""
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
    }


class EpochCursors:
    """Opaque cursors `<epoch>.<seq>`: `epoch` names this process's run, `seq` a position in its
    in-memory tail. A cursor from another run reads from the start of what is kept."""

    cursor_source = "GET /messages"

    def __init__(self) -> None:
        self.epoch = secrets.token_hex(4)

    def cursor(self, seq: int) -> str:
        return f"{self.epoch}.{seq}"

    def parse_cursor(self, cursor: str) -> int:
        epoch, _, seq = cursor.partition(".")
        if not epoch or not seq.isdigit() or len(cursor) > 64:
            raise BadCursor(f"after must be a cursor returned by {self.cursor_source}")
        return int(seq) if epoch == self.epoch else 0


class KafkaTail:
    """One background consumer of one topic (no consumer group), feeding `handle(record)`.

    Survives Kafka going away: it reconnects with back-off and carries on from
    the offsets it had reached. Subclasses choose where a first start begins.
    """

    thread_name = "kafka-tail"

    def __init__(self, bootstrap: str, topic: str):
        self.bootstrap = bootstrap
        self.topic = topic
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = False
        self.last_error: str | None = None
        self._started_reading = False
        # True once the first start has read up to the end offsets it found: what the topic held then is known
        self.caught_up = False
        self._catch_up_to: dict[TopicPartition, int] = {}

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(10)

    def first_offsets(self, consumer: KafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Where to begin the very first time: the beginning of each partition."""
        return consumer.beginning_offsets(tps)

    def handle(self, record) -> None:
        raise NotImplementedError

    def _connect(self, positions: dict[TopicPartition, int]) -> KafkaConsumer:
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id=f"chat-api-{self.thread_name}",
            group_id=None,
            enable_auto_commit=False,
            metrics_enabled=False,
            bootstrap_timeout_ms=3000,
            request_timeout_ms=10000,
        )
        partitions = None
        deadline = time.monotonic() + 30
        while not partitions:
            partitions = consumer.partitions_for_topic(self.topic)
            if not partitions:
                if time.monotonic() > deadline or self._stop.is_set():
                    consumer.close()
                    raise KafkaError(f"topic {self.topic} not found")
                time.sleep(0.5)
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        starts = positions if self._started_reading else self.first_offsets(consumer, tps)
        if not self._started_reading:
            self._catch_up_to = consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, starts.get(tp, 0))
        self._started_reading = True
        return consumer

    def _run(self) -> None:
        consumer = None
        positions: dict[TopicPartition, int] = {}
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = self._connect(positions)
                    self.connected, self.last_error, backoff = True, None, 0.5
                    log.info("%s: reading %s from %s", self.thread_name, self.topic, self.bootstrap)
                batches = consumer.poll(timeout_ms=200)
                for tp, records in batches.items():
                    for record in records:
                        self.handle(record)
                        positions[tp] = record.offset + 1
                if not self.caught_up:
                    self.caught_up = all(consumer.position(tp) >= end for tp, end in self._catch_up_to.items())
            except Exception as exc:  # noqa: BLE001 - the tail must outlive any Kafka failure
                self.connected, self.last_error = False, f"{type(exc).__name__}: {exc}"
                log.warning("%s: %s; retrying in %.1fs", self.thread_name, self.last_error, backoff)
                if consumer is not None:
                    try:
                        consumer.close()
                    except Exception:  # noqa: BLE001
                        pass
                    consumer = None
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        if consumer is not None:
            consumer.close()


class Feed(KafkaTail, EpochCursors):
    """The recent tail of `chat_controlled`, with cursors and long-polling."""

    thread_name = "feed"

    def __init__(
        self, bootstrap: str, topic: str = contract.TOPIC_CONTROLLED, capacity: int = 10_000, history: int = 500
    ):
        KafkaTail.__init__(self, bootstrap, topic)
        EpochCursors.__init__(self)
        self.history = history
        self._messages: deque[FeedMessage] = deque(maxlen=capacity)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seen_max = capacity * 4
        self._seq = 0
        self._cond = threading.Condition()
        self.duplicates_dropped = 0
        # each author's latest profane messages, for the strikes the ledger has not announced yet
        self._profane: OrderedDict[str, deque[FeedMessage]] = OrderedDict()
        self._profane_authors_max = capacity

    def first_offsets(self, consumer, tps):
        """Begin with the recent history, not the whole topic."""
        ends = consumer.end_offsets(tps)
        begins = consumer.beginning_offsets(tps)
        per_partition = max(1, self.history // len(tps))
        return {tp: max(begins[tp], ends[tp] - per_partition) for tp in tps}

    def handle(self, record) -> None:
        self.add_record(record.value, record.headers)

    def add_record(self, value: bytes | None, headers) -> None:
        parsed = parse_record(value, headers)
        if parsed is None:
            log.warning("feed: skipping a record of %s that is not a chat message", self.topic)
            return
        message_id, message = parsed
        with self._cond:
            if message_id in self._seen:  # the relay's Kafka sink is at-least-once
                self.duplicates_dropped += 1
                return
            self._seen[message_id] = None
            if len(self._seen) > self._seen_max:
                self._seen.popitem(last=False)
            self._seq += 1
            added = FeedMessage(self._seq, message_id, **message)
            self._messages.append(added)
            if added.profane:
                self._remember_profane(added)
            self._cond.notify_all()

    def _remember_profane(self, message: FeedMessage) -> None:
        latest = self._profane.pop(message.author, None) or deque(maxlen=PROFANE_KEPT_PER_AUTHOR)
        latest.append(message)
        self._profane[message.author] = latest  # now the most recent author
        if len(self._profane) > self._profane_authors_max:
            self._profane.popitem(last=False)

    def profane_messages(self, author: str) -> tuple[FeedMessage, ...]:
        """The author's latest profane messages (up to PROFANE_KEPT_PER_AUTHOR), oldest first."""
        with self._cond:
            return tuple(self._profane.get(author, ()))

    def stop(self) -> None:
        super().stop()
        with self._cond:
            self._cond.notify_all()

    # -- readers ------------------------------------------------------------------
    def read(
        self, after: int | None, wait_s: float, limit: int, hide: Callable[[FeedMessage], bool] | None = None
    ) -> tuple[list[FeedMessage], str]:
        """Messages after position `after` (long-polling up to `wait_s`), or the latest `limit` when None.
        Messages for which `hide` is true are skipped (and do not end the wait).

        Every waiting reader reads again for each new message, so a read looks only at what it returns
        (and at the hidden messages among them): the tail holds consecutive positions, so the first
        newer message is found by arithmetic, and the latest `limit` by walking back from the end."""
        visible = (lambda m: not hide(m)) if hide else (lambda m: True)
        deadline = time.monotonic() + wait_s
        with self._cond:
            if after is None:
                recent = list(itertools.islice((m for m in reversed(self._messages) if visible(m)), limit))
                return recent[::-1], self.cursor(self._seq)
            after = min(after, self._seq)
            while True:
                shown = list(itertools.islice((m for m in self._newer_than(after) if visible(m)), limit))
                if shown:
                    return shown, self.cursor(shown[-1].seq)
                after = self._seq  # everything newer was hidden
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return [], self.cursor(after)
                self._cond.wait(remaining)

    def _newer_than(self, seq: int) -> Iterator[FeedMessage]:
        """The kept messages after position `seq`, oldest first (positions in the tail are consecutive)."""
        start = max(0, seq - self._messages[0].seq + 1) if self._messages else 0
        if start < len(self._messages) // 2:
            return itertools.islice(self._messages, start, None)
        # near the end (a reader keeping up): walk back to it rather than forward through the rest
        return reversed(list(itertools.islice(reversed(self._messages), len(self._messages) - start)))

    def status(self) -> dict:
        with self._cond:
            return {
                "connected": self.connected,
                "topic": self.topic,
                "messages_kept": len(self._messages),
                "last_error": self.last_error,
                "duplicates_dropped": self.duplicates_dropped,
            }


def get_feed() -> Feed:
    return current_app.extensions["chat_feed"]


def init_app(app: Flask) -> None:
    feed = Feed(app.config["KAFKA_BOOTSTRAP"], capacity=app.config["FEED_CAPACITY"], history=app.config["FEED_HISTORY"])
    app.extensions["chat_feed"] = feed
    if app.config["START_FEED"]:
        feed.start()
