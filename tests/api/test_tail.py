"""api/tail.py's KafkaTail replaces a consumer that stops fetching while records wait (after a broker restart,
kafka-python's consumer can stay quiet for good), and keeps one that is quiet because nothing is new."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest
from kafka import TopicPartition

from api import tail as tail_module
from api.tail import Follower, KafkaTail

TOPIC = "chat_controlled"
TP = TopicPartition(TOPIC, 0)


@dataclass
class Record:
    partition: int
    offset: int


class Recording(Follower):
    topic = TOPIC

    def __init__(self) -> None:
        super().__init__()
        self.offsets: list[int] = []

    def handle(self, record) -> None:
        with self._cond:
            self.offsets.append(record.offset)
            self.positions[record.partition] = record.offset + 1
            self.changed()


class Kafka:
    """The topic's records 0..end-1, and consumers that fetch them; the first `stuck_after` offsets are the
    most the first consumer fetches before it goes quiet for good."""

    def __init__(self, end: int, stuck_after: int | None):
        self.end = end
        self.stuck_after = stuck_after
        self.consumers: list[FakeConsumer] = []
        self.lock = threading.Lock()

    def consumer(self, **_config) -> FakeConsumer:
        with self.lock:
            consumer = FakeConsumer(self, stuck=self.stuck_after is not None and not self.consumers)
            self.consumers.append(consumer)
            return consumer


class FakeConsumer:
    def __init__(self, kafka: Kafka, stuck: bool):
        self.kafka, self.stuck, self.at, self.sought = kafka, stuck, 0, []

    def partitions_for_topic(self, topic):
        return {0}

    def assign(self, partitions):
        self.partitions = list(partitions)

    def assignment(self):
        return set(self.partitions)

    def beginning_offsets(self, partitions):
        return {tp: 0 for tp in partitions}

    def end_offsets(self, partitions):
        return {tp: self.kafka.end for tp in partitions}

    def seek(self, tp, offset):
        self.at = offset
        self.sought.append(offset)

    def position(self, tp):
        return self.at

    def poll(self, timeout_ms):
        time.sleep(0.005)
        limit = self.kafka.stuck_after if self.stuck else self.kafka.end
        if self.at >= limit:
            return {}
        record, self.at = Record(0, self.at), self.at + 1
        return {TP: [record]}

    def close(self):
        pass


def run_tail(monkeypatch, kafka: Kafka, until, timeout_s: float = 10) -> Recording:
    monkeypatch.setattr(tail_module, "KafkaConsumer", kafka.consumer)
    monkeypatch.setattr(KafkaTail, "STALL_CHECK_S", 0.05)
    follower = Recording()
    tail = KafkaTail("127.0.0.1:9", [follower])
    tail.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not until(follower) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        tail.stop()
    return follower


@pytest.mark.timeout(30)
def test_a_consumer_that_stops_fetching_while_records_wait_is_replaced_and_nothing_is_read_twice(monkeypatch):
    kafka = Kafka(end=5, stuck_after=2)
    follower = run_tail(monkeypatch, kafka, lambda f: len(f.offsets) == 5)
    assert follower.offsets == [0, 1, 2, 3, 4]  # each record once, in order
    assert len(kafka.consumers) == 2
    assert kafka.consumers[1].sought == [2]  # the new consumer reads on from where the follower is


@pytest.mark.timeout(30)
def test_a_consumer_quiet_because_nothing_is_new_is_kept(monkeypatch):
    kafka = Kafka(end=3, stuck_after=None)
    started = time.monotonic()
    follower = run_tail(monkeypatch, kafka, lambda f: time.monotonic() - started > 0.6)  # a dozen checks
    assert follower.offsets == [0, 1, 2]
    assert len(kafka.consumers) == 1
