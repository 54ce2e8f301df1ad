"""One background Kafka consumer per API process for every topic it follows, and what its followers share.

`KafkaTail` reads `chat_controlled`, `chat_notices` and `chat_sessions` with a single consumer (no group)
and hands each record to the `Follower` of its topic (the feed, the notices board, the sessions board).
A follower knows its position in its topic (partition → next offset), wakes the threads waiting on it
(`threading.Condition`) and the event loops whose coroutines wait on it (`LoopSignal`), so a waiting
reader holds no thread. `CursorSigner` turns positions into opaque cursors any API process accepts.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import threading
import time

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from config.cluster_security import kafka_client_kwargs

log = logging.getLogger(__name__)

Positions = dict[int, int]  # partition → the next offset to read


class BadCursor(ValueError):
    """A cursor that is not one `source` (the endpoint that issues that kind of cursor) returned."""

    def __init__(self, source: str):
        super().__init__(f"after must be a cursor returned by {source}")
        self.source = source


class CursorSigner:
    """Cursors that name Kafka positions, signed with the API's secret (HMAC-SHA256), so that every API
    process and host that shares CHAT_SECRET_KEY answers them the same, and nobody can make one up.

    A cursor is `<kind><letter><p>:<o>,...[/<letter>...].<signature>`: `kind` says which endpoint issued
    it, each letter names a topic (c: chat_controlled, n: chat_notices)."""

    MAX_LENGTH = 4096
    MAX_PARTITIONS = 1024

    def __init__(self, secret: str | None = None):
        secret = secret or secrets.token_urlsafe(32)  # standalone use (tests): cursors of this object only
        self._key = hashlib.sha256(b"chat-cursor|" + secret.encode("utf-8")).digest()
        # readers waiting together hold the same cursor: each is checked once, not once per reader
        self._checked: dict[tuple[str, str, str], dict[str, Positions]] = {}

    def _sign(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(digest).decode("ascii")

    def dumps(self, kind: str, parts: dict[str, Positions]) -> str:
        body = kind + "/".join(
            letter + ",".join(f"{p}:{o}" for p, o in sorted(positions.items())) for letter, positions in parts.items()
        )
        return f"{body}.{self._sign(body)}"

    def loads(self, kind: str, letters: str, text: str, source: str) -> dict[str, Positions]:
        """The positions a cursor of `kind` names (one dict per letter of `letters`); BadCursor(source) for a
        cursor that is malformed, forged, or of another kind."""
        checked = self._checked.get((kind, letters, text)) if isinstance(text, str) else None
        if checked is not None:
            return {letter: dict(positions) for letter, positions in checked.items()}
        if not isinstance(text, str) or len(text) > self.MAX_LENGTH or not text.isascii():
            raise BadCursor(source)
        body, _, signature = text.rpartition(".")
        if not body.startswith(kind) or not hmac.compare_digest(self._sign(body), signature):
            raise BadCursor(source)
        parts: dict[str, Positions] = {letter: {} for letter in letters}
        for chunk in body[len(kind) :].split("/"):
            letter, rest = chunk[:1], chunk[1:]
            if letter not in parts:
                raise BadCursor(source)
            for pair in filter(None, rest.split(",")):
                partition, _, offset = pair.partition(":")
                if not (partition.isdigit() and offset.isdigit() and len(partition) <= 6 and len(offset) <= 19):
                    raise BadCursor(source)
                parts[letter][int(partition)] = int(offset)
            if len(parts[letter]) > self.MAX_PARTITIONS:
                raise BadCursor(source)
        if len(self._checked) >= 10_000:
            self._checked.clear()
        self._checked[(kind, letters, text)] = parts
        return {letter: dict(positions) for letter, positions in parts.items()}


def merged(a: Positions, b: Positions) -> Positions:
    """The later of two positions, partition by partition."""
    out = dict(a)
    for partition, offset in b.items():
        if offset > out.get(partition, -1):
            out[partition] = offset
    return out


class LoopSignal:
    """Wakes the coroutines of one event loop that wait for a follower to change; fired from any thread.

    A waiter takes a `waiter()` future before it looks at the data, then awaits it: a change made after the
    look resolves that future (through `call_soon_threadsafe`), so no wake-up is lost and no thread waits.
    Thousands of waiters are woken `BATCH` per turn of the loop, so that a sign-in or a post that arrives
    meanwhile is served between two batches instead of after the whole crowd."""

    BATCH = 256

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._waiters: list[asyncio.Future] = []
        self._pending = False
        self._prune_at = 1024

    def waiter(self) -> asyncio.Future:
        future = self.loop.create_future()
        self._waiters.append(future)
        if len(self._waiters) >= self._prune_at:  # waits that ended without a change leave their futures
            self._waiters = [f for f in self._waiters if not f.done()]
            self._prune_at = max(1024, 2 * len(self._waiters))
        return future

    def fire(self) -> None:
        if self._pending:  # one call per loop and burst of changes, however many coroutines wait
            return
        self._pending = True
        try:
            self.loop.call_soon_threadsafe(self._resolve)
        except RuntimeError:  # the loop is closed
            self._pending = False

    def _resolve(self) -> None:
        self._pending = False
        waiters, self._waiters = self._waiters, []
        self._wake(waiters)

    def _wake(self, waiters: list[asyncio.Future]) -> None:
        for future in waiters[: self.BATCH]:
            if not future.done():
                future.set_result(None)
        if len(waiters) > self.BATCH:
            self.loop.call_soon(self._wake, waiters[self.BATCH :])


class Follower:
    """What a tail hands a topic's records to. Subclasses implement `handle(record)` and call `changed()`
    (holding `_cond`) when readers should look again."""

    topic = ""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._signals: dict[asyncio.AbstractEventLoop, LoopSignal] = {}
        self.version = 0  # bumped by every change readers may care about
        self.positions: Positions = {}
        self.tail: KafkaTail | None = None
        self.caught_up = False  # has read what the topic held when it was first assigned
        self._stopped = threading.Event()

    # -- the tail's side ----------------------------------------------------------------------
    def first_offsets(self, begins: Positions, ends: Positions) -> Positions:
        """Where to begin the very first time: the beginning of each partition."""
        return begins

    def assigned(self, starts: Positions) -> None:
        with self._cond:
            for partition, offset in starts.items():
                self.positions.setdefault(partition, offset)
            self.changed()

    def handle(self, record) -> None:
        raise NotImplementedError

    def idle(self) -> None:
        """Called by the tail after every poll, records or not (housekeeping)."""

    def mark_caught_up(self) -> None:
        with self._cond:
            self.caught_up = True
            self.changed()

    @property
    def connected(self) -> bool:
        return self.tail is not None and self.tail.connected

    def status(self) -> dict:
        """What GET /health says of this topic's reading; subclasses add their own counts."""
        return {
            "connected": self.connected,
            "topic": self.topic,
            "last_error": self.last_error,
            "caught_up": self.caught_up,
        }

    @property
    def last_error(self) -> str | None:
        return self.tail.last_error if self.tail is not None else None

    # -- the readers' side --------------------------------------------------------------------
    def changed(self) -> None:
        """Wake every waiting thread and event loop (call with `_cond` held)."""
        self.version += 1
        self._cond.notify_all()
        for loop, signal in list(self._signals.items()):
            if loop.is_closed():
                self._signals.pop(loop, None)
            else:
                signal.fire()

    def signal(self) -> LoopSignal:
        """The running event loop's signal: await `signal().waiter()` (taken before looking at the data)."""
        loop = asyncio.get_running_loop()
        signal = self._signals.get(loop)
        if signal is None:
            signal = self._signals[loop] = LoopSignal(loop)
        return signal

    def wait_until(self, predicate, timeout_s: float) -> bool:
        """Block the calling thread until `predicate()` (checked under the lock) holds or the time is up."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopped.is_set():
                    return predicate()
                self._cond.wait(remaining)
            return True

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def start(self) -> None:
        if self.tail is not None:
            self.tail.start()

    def stop(self) -> None:
        """No more waiting: long-polls in flight answer at once. The tail stops with its last follower."""
        self._stopped.set()
        with self._cond:
            self.changed()
        if self.tail is not None and all(f.stopped for f in self.tail.followers):
            self.tail.stop()


class KafkaTail:
    """One background consumer (no consumer group) of every follower's topic, all partitions assigned.

    Survives Kafka going away: it reconnects with back-off and carries on from each follower's positions."""

    # seconds without a record after which the consumer is checked for records waiting beyond it
    STALL_CHECK_S = 3.0

    def __init__(self, bootstrap: str, followers: list[Follower], name: str = "tail", security: dict | None = None):
        self.bootstrap = bootstrap
        # who the API is to a secured Kafka (config/cluster_security.py); {} on the loopback default
        self.security = kafka_client_kwargs() if security is None else security
        self.followers = followers
        self.name = name
        self.connected = False
        self.last_error: str | None = None
        self._by_topic = {f.topic: f for f in followers}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_reading = False
        self._catch_up_to: dict[str, dict[TopicPartition, int]] = {}
        for follower in followers:
            follower.tail = self

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"kafka-{self.name}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)

    def _connect(self) -> KafkaConsumer:
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id=f"chat-api-{self.name}",
            group_id=None,
            enable_auto_commit=False,
            metrics_enabled=False,
            bootstrap_timeout_ms=3000,
            request_timeout_ms=10000,
            fetch_max_wait_ms=200,
            **self.security,
        )
        try:
            by_topic: dict[str, list[TopicPartition]] = {}
            deadline = time.monotonic() + 30
            for topic in self._by_topic:
                while not (partitions := consumer.partitions_for_topic(topic)):
                    if time.monotonic() > deadline or self._stop.is_set():
                        raise KafkaError(f"topic {topic} not found")
                    time.sleep(0.5)
                by_topic[topic] = [TopicPartition(topic, p) for p in sorted(partitions)]
            every = [tp for tps in by_topic.values() for tp in tps]
            consumer.assign(every)
            if not self._started_reading:
                begins, ends = consumer.beginning_offsets(every), consumer.end_offsets(every)
            for topic, tps in by_topic.items():
                follower = self._by_topic[topic]
                if not self._started_reading:
                    starts = follower.first_offsets(
                        {tp.partition: begins[tp] for tp in tps}, {tp.partition: ends[tp] for tp in tps}
                    )
                    self._catch_up_to[topic] = {tp: ends[tp] for tp in tps}
                    follower.assigned(starts)
                for tp in tps:
                    consumer.seek(tp, follower.positions.get(tp.partition, 0))
            self._started_reading = True
            return consumer
        except BaseException:
            consumer.close()
            raise

    def _behind(self, consumer: KafkaConsumer) -> dict[TopicPartition, int]:
        """The positions of the partitions where records wait in Kafka beyond what this consumer has read."""
        assigned = list(consumer.assignment())
        ends = consumer.end_offsets(assigned)
        return {tp: position for tp in assigned if ends[tp] > (position := consumer.position(tp))}

    def _run(self) -> None:
        consumer = None
        backoff = 0.5
        quiet_since = time.monotonic()
        behind: dict[TopicPartition, int] = {}
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = self._connect()
                    self.connected, self.last_error, backoff = True, None, 0.5
                    quiet_since, behind = time.monotonic(), {}
                    log.info("%s: reading %s from %s", self.name, ", ".join(self._by_topic), self.bootstrap)
                batches = consumer.poll(timeout_ms=200)
                if batches:
                    quiet_since, behind = time.monotonic(), {}
                elif time.monotonic() - quiet_since > self.STALL_CHECK_S:
                    # after a broker restart a consumer can stay quiet for good (its fetch session lost): if
                    # records wait at the same positions at two checks in a row, it is replaced, and the new
                    # one reads on from the followers' positions
                    quiet_since = time.monotonic()
                    now_behind = self._behind(consumer)
                    if now_behind and now_behind == behind:  # the new consumer starts with none
                        raise KafkaError("records wait in Kafka but the consumer fetches none")
                    behind = now_behind
                for tp, records in batches.items():
                    follower = self._by_topic[tp.topic]
                    for record in records:
                        follower.handle(record)
                for topic, ends in list(self._catch_up_to.items()):
                    if all(consumer.position(tp) >= end for tp, end in ends.items()):
                        del self._catch_up_to[topic]
                        self._by_topic[topic].mark_caught_up()
                for follower in self.followers:
                    follower.idle()
            except Exception as exc:  # noqa: BLE001 - the tail must outlive any Kafka failure
                self.connected, self.last_error = False, f"{type(exc).__name__}: {exc}"
                log.warning("%s: %s; retrying in %.1fs", self.name, self.last_error, backoff)
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
