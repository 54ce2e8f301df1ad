"""The real thing: `python -m stack.up` (what `make up` runs) with a Kafka broker JVM, the Spark relay,
the API under gunicorn and the UI; messages go POST → Kafka `chat` → Spark → `chat_controlled` → GET."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from kafka import KafkaProducer

from stack.broker import KafkaBroker, free_port, port_open
from stack.topics import create_topics
from tests.conftest import auth, records_in, wait_for_messages
from tests.stack.running import child_pid, delta_rows, post, wait_until

pytestmark = pytest.mark.integration


def test_startup_printed_a_status_line_per_step_and_the_urls(chat_stack):
    out = chat_stack.output()
    for step in ("kafka", "topics", "streams", "api", "ui"):
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
    for topic in ("chat", "chat_controlled"):
        in_topic = records_in(chat_stack.kafka_bootstrap, topic)
        records = [r for r in in_topic if dict(r.headers).get("message_id") == sent["id"].encode()]
        assert len(records) == 1, topic
        assert records[0].key == b"alice"
        assert json.loads(records[0].value) == {k: sent[k] for k in ("author", "data", "timestamp")}


def test_long_poll_returns_as_soon_as_a_message_arrives(chat_stack):
    api = chat_stack.api_url
    cursor = requests.get(f"{api}/messages", headers=auth(api, "carol"), timeout=10).json()["cursor"]
    started = time.monotonic()
    sent = post(api, "dave", "are you there?")
    deadline = started + 60
    found = []
    while not found and time.monotonic() < deadline:
        body = requests.get(
            f"{api}/messages", params={"after": cursor, "wait": 30}, headers=auth(api, "carol"), timeout=40
        ).json()
        found = [m for m in body["messages"] if m["id"] == sent["id"]]
        cursor = body["cursor"]
    assert found, "the long-poll never returned the message"
    assert time.monotonic() - started < 30, "the long-poll waited its full time instead of returning early"


def test_invalid_records_written_straight_to_kafka_do_not_stop_the_relay(chat_stack):
    producer = KafkaProducer(bootstrap_servers=chat_stack.kafka_bootstrap, acks="all")
    try:
        for value in (
            b"\xff\xfe garbage",
            b'{"author": 1}',
            b"[]",
            json.dumps({"author": "eve", "data": "", "timestamp": "2026-11-27 10:00:00"}).encode(),
        ):
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


def test_profanity_is_masked_for_readers_and_kept_for_audit(chat_stack):
    sent = post(chat_stack.api_url, "ivan", "¡Qué mierda, JODER! 😡 computadora")
    seen = wait_for_messages(chat_stack.api_url, "judy", lambda ms: any(m["id"] == sent["id"] for m in ms))
    [got] = [m for m in seen if m["id"] == sent["id"]]
    assert got["data"] == "¡Qué ******, *****! 😡 computadora"
    [row] = wait_until(lambda: delta_rows(chat_stack, "messages", message_id=sent["id"]))
    assert (row["data"], row["masked_data"], row["is_profane"], row["verdict"]) == (
        "¡Qué mierda, JODER! 😡 computadora",
        got["data"],
        True,
        "profane",
    )
    assert sorted(row["terms"]) == ["joder", "mierda"]


def test_three_strikes_block_the_sender_from_sending_and_reading(chat_stack):
    api = chat_stack.api_url
    for i, text in enumerate(["mierda", "sh1t happens", "eres un cabrón"], start=1):
        post(api, "trol", text)
        if i < 3:
            wait_until(lambda n=i: requests.get(f"{api}/users/trol", timeout=5).json().get("strikes", 0) >= n)
    third_posted = time.monotonic()
    # poll with reads (a POST that is still accepted would add messages): the first 403
    trol = auth(api, "trol")
    wait_until(lambda: requests.get(f"{api}/messages", headers=trol, timeout=10).status_code == 403)
    block_latency = time.monotonic() - third_posted
    response = requests.post(f"{api}/messages", json={"data": "hi"}, headers=trol, timeout=20)
    assert response.status_code == 403 and "blocked" in response.json()["error"]
    assert block_latency < 300, block_latency
    print(f"block latency: {block_latency:.1f}s from the third strike's POST to the first 403")
    read = requests.get(f"{api}/messages", headers=trol, timeout=10)
    assert read.status_code == 403 and "blocked" in read.json()["error"]
    user = requests.get(f"{api}/users/trol", timeout=10).json()
    assert (user["strikes"], user["is_blocked"]) == (3, True)
    # the ledger merges user_moderation before it sends the notices: the 403 can come first
    notices = wait_until(
        lambda: (
            len(n := requests.get(f"{api}/users/trol/notices", headers=trol, timeout=10).json()["notices"]) >= 3 and n
        )
    )
    assert [(n["kind"], n["strike"]) for n in notices] == [("warning", 1), ("warning", 2), ("blocked", 3)]
    assert notices[0]["text"].startswith("Warning: strike 1 of 3")
    assert requests.get(f"{api}/users/nobody-at-all", timeout=10).status_code == 404

    # a message the blocked user writes straight to Kafka is recorded as withheld and never served
    producer = KafkaProducer(bootstrap_servers=chat_stack.kafka_bootstrap, acks="all")
    producer.send(
        "chat",
        key=b"trol",
        value=json.dumps({"author": "trol", "data": "sneaky", "timestamp": "2026-11-27 10:00:00"}).encode(),
        headers=[("message_id", b"sneaky-1")],
    ).get(timeout=10)
    producer.close()
    [row] = wait_until(lambda: delta_rows(chat_stack, "messages", message_id="sneaky-1"))
    assert row["verdict"] == "withheld"
    marker = post(api, "kim", "after the sneaky one")
    seen = wait_for_messages(api, "kim", lambda ms: any(m["id"] == marker["id"] for m in ms))
    assert not [m for m in seen if m["id"] == "sneaky-1"]

    # a moderator unblocks trol: through Kafka to the ledger, and into the API within seconds
    admin = {"Authorization": f"Bearer {chat_stack.admin_token}"}
    assert requests.post(f"{api}/users/trol/unblock", headers=trol, timeout=10).status_code == 403
    requested = time.monotonic()
    response = requests.post(f"{api}/users/trol/unblock", headers=admin, timeout=20)
    assert response.status_code == 202, response.text
    action = response.json()
    wait_until(lambda: requests.get(f"{api}/messages", headers=trol, timeout=10).status_code == 200)
    print(f"unblock latency: {time.monotonic() - requested:.1f}s from the POST to the first 200")
    back = post(api, "trol", "sorry, I will behave")
    user = requests.get(f"{api}/users/trol", timeout=10).json()
    assert (user["strikes"], user["is_blocked"]) == (0, False)
    [row] = wait_until(lambda: delta_rows(chat_stack, "moderator_actions", action_id=action["id"]))
    assert (row["action"], row["author"], row["strikes_cleared"], row["was_blocked"]) == ("unblock", "trol", 3, True)
    [state] = wait_until(
        lambda: [u for u in delta_rows(chat_stack, "user_moderation", author="trol") if not u["is_blocked"]]
    )
    assert (state["strikes"], state["blocked_at"]) == (0, None)
    kinds = [n["kind"] for n in requests.get(f"{api}/users/trol/notices", headers=trol, timeout=10).json()["notices"]]
    assert kinds == ["warning", "warning", "blocked", "unblocked"]
    seen = wait_for_messages(api, "kim", lambda ms: any(m["id"] == back["id"] for m in ms))
    assert not [m for m in seen if m["id"] == "sneaky-1"]  # withheld while blocked stays withheld


def test_malformed_records_land_in_rejected_messages_with_the_reason(chat_stack):
    """README: `rejected_messages` keeps the raw value (bytes), the raw text when it is valid UTF-8, the reason
    and the record's Kafka coordinates and timestamp."""
    producer = KafkaProducer(bootstrap_servers=chat_stack.kafka_bootstrap, acks="all")
    values = {
        "rej-1": b"\xff\xfe\x00 binary",
        "rej-2": json.dumps({"author": "x", "data": "y" * 2001, "timestamp": "2026-11-27 10:00:00"}).encode(),
    }
    sent = {
        message_id: producer.send("chat", value=value, headers=[("message_id", message_id.encode())]).get(30)
        for message_id, value in values.items()
    }
    producer.close()
    rows = wait_until(
        lambda: (
            len(r := [x for x in delta_rows(chat_stack, "rejected_messages") if x["message_id"] in ("rej-1", "rej-2")])
            == 2
            and r
        )
    )
    assert sorted((r["message_id"], r["reason"]) for r in rows) == [
        ("rej-1", "value is not JSON"),
        ("rej-2", "data longer than 2000 characters"),
    ]
    for row in rows:
        record = sent[row["message_id"]]
        kafka_time = row["kafka_timestamp"]
        kafka_time = kafka_time if kafka_time.tzinfo else kafka_time.replace(tzinfo=UTC)
        assert (row["raw_value"], row["kafka_partition"], row["kafka_offset"], kafka_time) == (
            values[row["message_id"]],
            record.partition,
            record.offset,
            datetime.fromtimestamp(record.timestamp / 1000, UTC),
        ), row
    assert {r["message_id"]: r["raw_text"] for r in rows} == {"rej-1": None, "rej-2": values["rej-2"].decode()}


def test_ui_serves_the_chat_page(chat_stack):
    response = requests.get(chat_stack.ui_url, timeout=10)
    assert response.status_code == 200
    assert "<html" in response.text.lower() and "shiny" in response.text.lower()


def test_broker_is_formatted_once_and_keeps_its_data_across_restarts(tmp_path: Path):
    broker = KafkaBroker(tmp_path / "kafka", free_port(), free_port(), tmp_path / "kafka.log")
    assert broker.ensure_formatted() is True
    broker.start()
    try:
        assert create_topics(broker.bootstrap) == [
            "chat",
            "chat_controlled",
            "chat_notices",
            "chat_actions",
            "chat_sessions",
            "chat_accounts",
        ]
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        producer.send("chat", value=b"kept").get(timeout=10)
        producer.close()
    finally:
        broker.stop()
    assert broker.ensure_formatted() is False  # a second start reuses the data
    broker.start()
    try:
        assert create_topics(broker.bootstrap) == []  # idempotent
        assert [r.value for r in records_in(broker.bootstrap, "chat")] == [b"kept"]
    finally:
        broker.stop()


def service_pids(stack) -> dict[str, int | None]:
    return {
        name: child_pid(stack.process.pid, needle)
        for name, needle in (("streams", "pipelines.streams"), ("api", "gunicorn"), ("ui", "uvicorn"))
    }


def restart_times(stack, name: str) -> list[int]:
    """Seconds of the day at which `make up` printed that service `name`, killed, was restarted."""
    lines = re.findall(rf"^(\d\d):(\d\d):(\d\d)\s+{name}\s+exited with code -9; restarting", stack.output(), re.M)
    return [3600 * int(h) + 60 * int(m) + int(s) for h, m, s in lines]


@pytest.mark.parametrize("name, needle, path", [("ui", "uvicorn", "/"), ("api", "gunicorn", "/health")])
def test_a_dying_api_or_ui_is_restarted_with_back_off_and_the_restart_is_printed(chat_stack, name, needle, path):
    """README: a part that dies is restarted (with back-off) and the restart is printed. Killed (SIGKILL, its
    whole process group) twice, the second time as soon as it was restarted: the second restart waits out the
    back-off (2 s after the first at least), then the service answers again."""
    supervisor = chat_stack.process.pid
    url = (chat_stack.ui_url if name == "ui" else chat_stack.api_url) + path
    before = len(restart_times(chat_stack, name))
    pids = []
    for deaths in (1, 2):
        pid = wait_until(lambda: child_pid(supervisor, needle), timeout_s=60)
        assert pid not in pids
        pids.append(pid)
        os.killpg(pid, signal.SIGKILL)
        wait_until(lambda: len(restart_times(chat_stack, name)) == before + deaths, timeout_s=120)  # noqa: B023
    first, second = restart_times(chat_stack, name)[-2:]
    assert (second - first) % 86_400 >= 2, chat_stack.output()

    def answers() -> bool:
        try:
            return requests.get(url, timeout=10).status_code == 200
        except requests.RequestException:  # not listening yet
            return False

    wait_until(answers, timeout_s=300)
    assert child_pid(supervisor, needle) not in pids


def test_a_broker_outage_is_a_503_and_everything_resumes_without_restarts(chat_stack):
    """The broker stops (and `make up` is paused so it does not restart it at once): the API says 503
    and /health names Kafka; when the broker is back, messages flow again through the same API,
    UI and streams processes."""
    api = chat_stack.api_url
    kafka_port = int(chat_stack.kafka_bootstrap.rsplit(":", 1)[1])
    supervisor = chat_stack.process.pid
    broker = child_pid(supervisor, "kafka.Kafka")
    pids = service_pids(chat_stack)
    assert broker and all(pids.values()), pids
    before = post(api, "olga", "before the outage")
    os.kill(supervisor, signal.SIGSTOP)
    try:
        os.kill(broker, signal.SIGTERM)
        wait_until(lambda: not port_open("127.0.0.1", kafka_port), timeout_s=60)
        down_at = time.monotonic()
        health = requests.get(f"{api}/health", timeout=10)
        assert health.status_code == 503 and "kafka" in health.json()["down"], health.text
        assert health.json()["kafka"]["reachable"] is False
        refused = requests.post(
            f"{api}/messages", json={"data": "during the outage"}, headers=auth(api, "olga"), timeout=60
        )
        assert refused.status_code == 503, refused.text
        assert "Kafka" in refused.json()["error"] and "id" not in refused.json()
        time.sleep(max(0.0, 20 - (time.monotonic() - down_at)))  # the streams face 20 s without a broker
    finally:
        os.kill(supervisor, signal.SIGCONT)  # it sees the broker gone and starts it again
    wait_until(lambda: requests.get(f"{api}/health", timeout=10).status_code == 200, timeout_s=180)
    after = wait_until(
        lambda: (
            (
                r := requests.post(
                    f"{api}/messages", json={"data": "after the outage"}, headers=auth(api, "olga"), timeout=60
                )
            ).status_code
            == 202
            and r.json()
        ),
        timeout_s=120,
    )
    seen = wait_for_messages(api, "pavel", lambda ms: after["id"] in {m["id"] for m in ms}, timeout_s=240)
    assert [m["id"] for m in seen if m["author"] == "olga"] == [before["id"], after["id"]]  # nothing else
    wait_until(lambda: delta_rows(chat_stack, "messages", message_id=after["id"]), timeout_s=240)
    assert service_pids(chat_stack) == pids, "a service was restarted"
    assert "broker exited" in chat_stack.output()
