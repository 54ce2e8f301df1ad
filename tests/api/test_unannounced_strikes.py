"""The API blocks on the third profane message the relay serves, before the ledger announces it:
the Flask app against a real broker, with `chat_controlled` written the way the relay writes it
and no ledger running (so no notice ever comes)."""

from __future__ import annotations

import json
import secrets
import time

import pytest
from kafka import KafkaProducer

from api import create_app
from config import contract

pytestmark = pytest.mark.integration


def wait_for(predicate, timeout_s: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def app(kafka_only, tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "KAFKA_BOOTSTRAP": kafka_only,
            "DATA_DIR": tmp_path,
            "WAREHOUSE_DIR": tmp_path / "warehouse",
            "START_FEED": True,
            "GUEST_NAMES": True,  # its users sign in by name, as on the test stacks
        }
    )
    moderation = app.extensions["chat_moderation"]
    wait_for(lambda: moderation.notices.caught_up and app.extensions["chat_feed"].connected, what="the tails")
    yield app
    app.extensions["chat_feed"].stop()
    moderation.notices.stop()
    moderation.snapshot.stop()


def relay(producer: KafkaProducer, message: dict, profane: bool, offset: int) -> None:
    """What the relay publishes for a message the API accepted (the masking itself is not the point here)."""
    producer.send(
        contract.TOPIC_CONTROLLED,
        key=message["author"].encode(),
        value=json.dumps({k: message[k] for k in contract.MESSAGE_FIELDS}).encode(),
        headers=[
            (contract.MESSAGE_ID_HEADER, message["id"].encode()),
            (contract.CHAT_POSITION_HEADER, f"0:{offset}".encode()),
            (contract.PROFANE_HEADER, b"true" if profane else b"false"),
        ],
    ).get(timeout=10)


def test_the_third_profane_message_served_blocks_its_author(app, kafka_only):
    client = app.test_client()
    author = f"troll-{secrets.token_hex(3)}"
    token = client.post("/sessions", json={"author": author}).get_json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    producer = KafkaProducer(bootstrap_servers=kafka_only, acks="all")
    offset = 10**6 + secrets.randbelow(10**6)  # positions in `chat`, as the relay would name them

    def user():
        return client.get(f"/users/{author}").get_json()

    profane_ids = []
    for n, profane in enumerate([False, True, True]):
        sent = client.post("/messages", json={"data": f"message {n}"}, headers=headers)
        assert sent.status_code == 202, sent.get_json()
        relay(producer, sent.get_json(), profane, offset + n)
        profane_ids += [sent.get_json()["id"]] if profane else []
    wait_for(lambda: user().get("strikes") == 2, what="two strikes")
    assert user()["is_blocked"] is False
    assert client.get("/messages", headers=headers).status_code == 200

    third = client.post("/messages", json={"data": "message 3"}, headers=headers)
    assert third.status_code == 202
    relay(producer, third.get_json(), True, offset + 3)
    refused = wait_for(
        lambda: (r := client.get("/messages", headers=headers)).status_code == 403 and r, what="a 403 for the reader"
    )
    assert refused.get_json()["error"] == contract.blocked_error(author, 3, third.get_json()["timestamp"])
    assert client.post("/messages", json={"data": "hola"}, headers=headers).status_code == 403
    assert user() == {
        "author": author,
        "strikes": 3,
        "is_blocked": True,
        "blocked_at": third.get_json()["timestamp"],
        "messages": 0,
    }
    # nothing from the ledger: the block is the API's own count of what the relay served, and so are the
    # notices its author got at once (the ledger announces the same ids later)
    notices = client.get(f"/users/{author}/notices", headers=headers).get_json()["notices"]
    assert [(n["id"], n["kind"], n["strike"]) for n in notices] == [
        (f"{profane_ids[0]}:strike", "warning", 1),
        (f"{profane_ids[1]}:strike", "warning", 2),
        (f"{third.get_json()['id']}:strike", "blocked", 3),
    ]
    producer.close()
