"""Shared fixtures: one Spark session, and the real chat stack (Kafka broker, Spark relay, API, UI).

The stack fixture runs `python -m stack.up` — the same program `make up` runs —
on free loopback ports with a temporary data directory, so the integration
tests exercise a real `kafka.Kafka` JVM and the real Spark relay.
"""

from __future__ import annotations

import functools
import os
import re
import time
from pathlib import Path

import pytest
import requests
from kafka import KafkaConsumer, TopicPartition

from stack import harness
from stack.broker import free_port, port_open
from stack.harness import ChatStack, stop_stack

# A JVM a test starts for seconds to a minute or two: on 2 cores the C2 compiler's threads cost more than its code
# wins back. Every Spark driver started under pytest reads it (the spark-submit jobs) except the long-lived ones: the
# session below and the test stacks' streams (`DEFAULT_JIT`), which serve many tests; `make up` and `make bench` do
# not read it.
C1_ONLY = "-XX:TieredStopAtLevel=1"
os.environ.setdefault("SPARK_SUBMIT_OPTS", C1_ONLY)
# the environment change that gives a test stack's streams the default JIT back (child_env: None removes)
DEFAULT_JIT: dict[str, str | None] = {"SPARK_SUBMIT_OPTS": None} if os.environ["SPARK_SUBMIT_OPTS"] == C1_ONLY else {}
# and so every Kafka broker (and its storage format tool) started under pytest
os.environ.setdefault("KAFKA_JVM_PERFORMANCE_OPTS", f"-XX:+UseG1GC {C1_ONLY}")


@pytest.fixture(scope="session")
def spark():
    from pipelines.session import get_spark

    # this JVM serves every Spark test of the run: the default JIT's C2 pays off over that long
    with pytest.MonkeyPatch.context() as env:
        if os.environ.get("SPARK_SUBMIT_OPTS") == C1_ONLY:
            env.delenv("SPARK_SUBMIT_OPTS")
        session = get_spark(
            "chat-tests",
            master="local[2]",
            extra={
                "spark.sql.shuffle.partitions": "1",
                "spark.ui.enabled": "false",
                "spark.default.parallelism": "2",
            },
        )
    yield session
    session.stop()


def start_stack(data_dir: Path, timeout_s: float = 420) -> ChatStack:
    try:
        return harness.start_stack(data_dir, timeout_s, env={**harness.UNLIMITED_POSTS, **DEFAULT_JIT})
    except harness.StackError as exc:
        pytest.fail(str(exc))


def pytest_collection_modifyitems(items) -> None:
    """The tests on the whole stack run last, side by side (each keeps its place among them): the stack then
    starts after every other test is done, instead of idling beside the Spark and cluster tests on 2 cores."""
    items[:] = [i for i in items if "chat_stack" not in i.fixturenames] + [
        i for i in items if "chat_stack" in i.fixturenames
    ]


@pytest.fixture(scope="session")
def chat_stack(tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("stack"))
    yield stack
    returncode = stop_stack(stack)
    assert returncode == 0, stack.output()
    assert not any(port_open("127.0.0.1", p) for p in stack.ports), "a port is still open after the stop"
    # README: Ctrl-C stops the UI, the API, the streams and the broker, in that order (each waited for)
    assert re.findall(r"^\S+\s+(\w+)\s+stopped$", stack.output(), re.M) == ["ui", "api", "streams", "kafka"]


@functools.cache
def auth(api_url: str, user: str) -> dict:
    """`Authorization` for a session of `user` (one per user and API for the whole test run)."""
    # the API bounds its own waits (Kafka's acknowledgement, then reading its claim back: a 503 past them);
    # a client gives it that long, as after a broker outage on a loaded machine
    response = requests.post(f"{api_url}/sessions", json={"author": user}, timeout=30)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def wait_for_messages(api_url: str, user: str, predicate, timeout_s: float = 60) -> list[dict]:
    """Long-poll GET /messages as `user` until `predicate(all messages seen)` holds."""
    seen: list[dict] = []
    first = requests.get(f"{api_url}/messages", params={"limit": 500}, headers=auth(api_url, user), timeout=30)
    assert first.status_code == 200, (first.status_code, first.text)
    body = first.json()
    seen.extend(body["messages"])
    cursor = body["cursor"]
    deadline = time.monotonic() + timeout_s
    while not predicate(seen):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; {user} saw {seen}")
        answer = requests.get(
            f"{api_url}/messages", params={"after": cursor, "wait": 5}, headers=auth(api_url, user), timeout=15
        )
        assert answer.status_code == 200, (answer.status_code, answer.text)
        body = answer.json()
        seen.extend(body["messages"])
        cursor = body["cursor"]
    return seen


def records_in(bootstrap: str, topic: str, partition: int = 0, timeout_s: float = 60) -> list:
    """Every record in `topic`'s partition now: read from its start up to its end offset (rather than until the
    consumer has been idle for seconds)."""
    tp = TopicPartition(topic, partition)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        records: list = []
        deadline = time.monotonic() + timeout_s
        while consumer.position(tp) < end:
            assert time.monotonic() < deadline, f"{topic}: read {len(records)} records of {end} in {timeout_s}s"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


@pytest.fixture(scope="session")
def kafka_only(tmp_path_factory):
    """A bare broker (with the chat topics) for tests that drive Spark by hand; yields its bootstrap."""
    from stack.broker import KafkaBroker
    from stack.topics import create_topics

    home = tmp_path_factory.mktemp("kafka")
    broker = KafkaBroker(home, free_port(), free_port(), home / "kafka.log")
    broker.start()
    create_topics(broker.bootstrap)
    yield broker.bootstrap
    broker.stop()
