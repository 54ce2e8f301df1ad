"""The per-user rate limit and the slow mode across two API processes (two "hosts", gunicorn as `make up` runs
it) on one real Kafka broker: a user flooding both at once gets at most the limit plus what the other process
accepted before its tail read it, and nothing refused reaches `chat`; a slow mode set through one host is
enforced by the other."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from kafka import KafkaConsumer, TopicPartition

from config import contract
from stack.harness import GUEST_NAMES
from tests.api.conftest import api_hosts

pytestmark = pytest.mark.integration

ADMIN = "moderators-token-for-the-flood-tests"
LIMIT = 5
WINDOW_S = 60  # longer than the flood: every post of it is in one window
MODERATOR = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture(scope="module")
def hosts(kafka_only, tmp_path_factory):
    env = {
        **GUEST_NAMES,
        "CHAT_ADMIN_TOKEN": ADMIN,
        "CHAT_RATE_LIMIT_MESSAGES": str(LIMIT),
        "CHAT_RATE_LIMIT_WINDOW_S": str(WINDOW_S),
    }
    with api_hosts(tmp_path_factory.mktemp("flood-hosts"), kafka_only, env) as pair:
        set_slow_mode(pair[0].url, 0)  # whatever an earlier test on this broker left
        for host in pair:
            wait_for_slow_mode(host.url, 0)
        yield pair


def sign_in(url: str, author: str) -> dict:
    response = requests.post(f"{url}/sessions", json={"author": author}, timeout=30)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def set_slow_mode(url: str, seconds: int) -> dict:
    response = requests.put(f"{url}/chat/slow_mode", json={"seconds": seconds}, headers=MODERATOR, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()


def wait_for_slow_mode(url: str, seconds: int) -> dict:
    """GET /chat/settings of `url` once it shows `seconds` (the host's tail has read the action)."""
    while (settings := requests.get(f"{url}/chat/settings", timeout=30).json())["slow_mode_s"] != seconds:
        time.sleep(0.1)
    return settings


def in_chat(bootstrap: str, author: str) -> list[str]:
    """The message ids of `author` in `chat`, read from the beginning to the end."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        partitions = [
            TopicPartition(contract.TOPIC_CHAT, p) for p in consumer.partitions_for_topic(contract.TOPIC_CHAT)
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        ids = []
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            for records in consumer.poll(timeout_ms=1000).values():
                ids += [
                    dict(r.headers)[contract.MESSAGE_ID_HEADER].decode() for r in records if r.key == author.encode()
                ]
        return ids
    finally:
        consumer.close()


def chat_ends(bootstrap: str) -> dict[str, int]:
    """The end offsets of `chat`, as GET /health names partitions."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        partitions = [
            TopicPartition(contract.TOPIC_CHAT, p) for p in consumer.partitions_for_topic(contract.TOPIC_CHAT)
        ]
        return {str(tp.partition): end for tp, end in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def wait_until_counted(url: str, ends: dict[str, int]) -> None:
    """Until the host's rate-limit counter has read `chat` up to `ends`."""
    while True:
        counted = requests.get(f"{url}/health", timeout=30).json()["rate_limit"]["positions"]
        if all(counted.get(p, 0) >= end for p, end in ends.items()):
            return
        time.sleep(0.1)


def test_a_user_flooding_two_hosts_gets_no_more_than_the_limit_plus_the_tails_lag(hosts, kafka_only):
    a, b = hosts
    author = f"flooder-{uuid.uuid4().hex[:8]}"
    auth = sign_in(a.url, author)  # one session, on both hosts

    def flood(url: str) -> list[tuple[int, str | None, str | None]]:
        answers = []
        with requests.Session() as http:
            for n in range(60):
                r = http.post(f"{url}/messages", json={"data": f"buy now {n}"}, headers=auth, timeout=30)
                answers.append((r.status_code, r.headers.get("Retry-After"), r.json().get("id") or r.json()["code"]))
        return answers

    with ThreadPoolExecutor(4) as pool:
        results = [pool.submit(flood, url) for url in (a.url, b.url, a.url, b.url)]
        answers = [answer for result in results for answer in result.result()]
    statuses = Counter(status for status, _, _ in answers)
    assert set(statuses) == {202, 429}, statuses
    assert all(code == "rate_limited" and retry.isdigit() and int(retry) >= 1 for s, retry, code in answers if s == 429)
    accepted = sorted(code for status, _, code in answers if status == 202)
    overshoot = len(accepted) - LIMIT
    print(
        f"\nflood on two hosts: {len(answers)} POSTs, {len(accepted)} accepted (limit {LIMIT}, overshoot {overshoot})"
    )
    # each process counts what it accepted at once: two processes let through at most twice the limit
    assert LIMIT <= len(accepted) <= 2 * LIMIT
    assert sorted(in_chat(kafka_only, author)) == accepted  # nothing refused was produced


def test_slow_mode_set_through_one_host_is_enforced_by_the_other(hosts, kafka_only):
    a, b = hosts
    author = f"chatter-{uuid.uuid4().hex[:8]}"
    auth = sign_in(b.url, author)
    action = set_slow_mode(a.url, 60)
    try:
        assert wait_for_slow_mode(a.url, 60)["slow_mode_since"] == action["timestamp"]  # set before the answer
        assert wait_for_slow_mode(b.url, 60)["slow_mode_since"] == action["timestamp"]
        assert requests.post(f"{b.url}/messages", json={"data": "hola"}, headers=auth, timeout=30).status_code == 202
        refused = requests.post(f"{b.url}/messages", json={"data": "otra"}, headers=auth, timeout=30)
        assert refused.status_code == 429 and refused.json()["code"] == "slow_mode"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        # host a learns of the post from `chat`: once its tail has read that far, it refuses too
        wait_until_counted(a.url, chat_ends(kafka_only))
        other = requests.post(f"{a.url}/messages", json={"data": "otra"}, headers=auth, timeout=30)
        assert other.status_code == 429 and other.json()["code"] == "slow_mode", other.text
    finally:
        set_slow_mode(a.url, 0)
        for host in hosts:
            wait_for_slow_mode(host.url, 0)
