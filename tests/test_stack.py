"""The real thing: `python -m stack.up` (what `make up` runs) with a Kafka broker JVM, the Spark relay,
the API under gunicorn and the UI; messages go POST → Kafka `chat` → Spark → `chat_controlled` → GET."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import requests
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stack.broker import KafkaBroker, free_port
from stack.topics import create_topics
from tests.conftest import wait_for_messages

pytestmark = pytest.mark.integration


def post(api_url, author, data):
    response = requests.post(f"{api_url}/messages", json={"author": author, "data": data}, timeout=20)
    assert response.status_code == 202, response.text
    return response.json()


def test_startup_printed_a_status_line_per_step_and_the_urls(chat_stack):
    out = chat_stack.output()
    for step in ("kafka", "topics", "relay", "api", "ui"):
        assert re.search(rf"^\S+\s+{step}\s", out, re.M), f"no status line for {step}:\n{out}"
    assert chat_stack.ui_url in out and chat_stack.api_url in out


def test_health_reports_kafka_and_feed_up(chat_stack):
    body = requests.get(f"{chat_stack.api_url}/health", timeout=10).json()
    assert body["status"] == "ok", body
    assert body["kafka"]["reachable"] and body["feed"]["connected"]


def test_message_from_alice_reaches_bob_through_kafka_and_spark(chat_stack):
    sent = post(chat_stack.api_url, "alice", "¡Hola Bob! 👋 <b>not bold</b>")
    assert set(sent) == {"id", "author", "data", "timestamp"}
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", sent["timestamp"])
    seen = wait_for_messages(chat_stack.api_url, "bob", lambda ms: any(m["id"] == sent["id"] for m in ms))
    assert [m for m in seen if m["id"] == sent["id"]] == [sent]

    # and it really went through both topics, with the id in the message_id header and the author as key
    consumer = KafkaConsumer(bootstrap_servers=chat_stack.kafka_bootstrap, consumer_timeout_ms=5000)
    try:
        for topic in ("chat", "chat_controlled"):
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            records = [r for r in consumer if dict(r.headers).get("message_id") == sent["id"].encode()]
            assert len(records) == 1, topic
            assert records[0].key == b"alice"
            assert json.loads(records[0].value) == {k: sent[k] for k in ("author", "data", "timestamp")}
    finally:
        consumer.close()


def test_long_poll_returns_as_soon_as_a_message_arrives(chat_stack):
    api = chat_stack.api_url
    cursor = requests.get(f"{api}/messages", params={"user": "carol"}, timeout=10).json()["cursor"]
    started = time.monotonic()
    sent = post(api, "dave", "are you there?")
    deadline = started + 60
    found = []
    while not found and time.monotonic() < deadline:
        body = requests.get(f"{api}/messages", params={"user": "carol", "after": cursor, "wait": 30},
                            timeout=40).json()
        found = [m for m in body["messages"] if m["id"] == sent["id"]]
        cursor = body["cursor"]
    assert found, "the long-poll never returned the message"
    assert time.monotonic() - started < 30, "the long-poll waited its full time instead of returning early"


def test_invalid_records_written_straight_to_kafka_do_not_stop_the_relay(chat_stack):
    producer = KafkaProducer(bootstrap_servers=chat_stack.kafka_bootstrap, acks="all")
    try:
        for value in (b"\xff\xfe garbage", b'{"author": 1}', b"[]", json.dumps(
                {"author": "eve", "data": "", "timestamp": "2026-11-27 10:00:00"}).encode()):
            producer.send("chat", key=b"eve", value=value, headers=[("message_id", b"bad-" + value[:4].hex().encode())])
        producer.flush()
    finally:
        producer.close()
    sent = post(chat_stack.api_url, "frank", "still working after garbage")
    seen = wait_for_messages(chat_stack.api_url, "bob", lambda ms: any(m["id"] == sent["id"] for m in ms))
    assert not [m for m in seen if m["id"].startswith("bad-")]


def test_many_messages_arrive_once_each_and_in_order_per_author(chat_stack):
    ids = [post(chat_stack.api_url, "grace", f"message {i}")["id"] for i in range(20)]
    seen = wait_for_messages(chat_stack.api_url, "heidi", lambda ms: set(ids) <= {m["id"] for m in ms})
    got = [m["id"] for m in seen if m["id"] in set(ids)]
    assert got == ids


def test_ui_serves_the_chat_page(chat_stack):
    response = requests.get(chat_stack.ui_url, timeout=10)
    assert response.status_code == 200
    assert "<html" in response.text.lower() and "shiny" in response.text.lower()


def test_broker_is_formatted_once_and_keeps_its_data_across_restarts(tmp_path: Path):
    broker = KafkaBroker(tmp_path / "kafka", free_port(), free_port(), tmp_path / "kafka.log")
    assert broker.ensure_formatted() is True
    broker.start()
    try:
        assert create_topics(broker.bootstrap) == ["chat", "chat_controlled", "chat_notices"]
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        producer.send("chat", value=b"kept").get(timeout=10)
        producer.close()
    finally:
        broker.stop()
    assert broker.ensure_formatted() is False  # a second start reuses the data
    broker.start()
    try:
        assert create_topics(broker.bootstrap) == []  # idempotent
        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, consumer_timeout_ms=5000)
        consumer.assign([TopicPartition("chat", 0)])
        consumer.seek_to_beginning()
        assert [r.value for r in consumer] == [b"kept"]
        consumer.close()
    finally:
        broker.stop()
